"""Paraphrased captions of the synthetic set: Italian wording, agreement, length, and what they keep."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from clipit.data.synthetic import grammar, paraphrase, scenes
from clipit.data.synthetic.grammar import Group
from clipit.data.synthetic.paraphrase import Style

G = Group


@pytest.mark.parametrize(
    ("groups", "relation", "style", "italian", "english"),
    [
        (
            (G("cerchio", "rosso", 1),),
            None,
            Style(opening="ce"),
            "c'è un cerchio rosso",
            "there is a red circle",
        ),
        (
            (G("cerchio", "rosso", 2),),
            None,
            Style(opening="ce"),
            "ci sono due cerchi rossi",
            "there are two red circles",
        ),
        (
            (G("cerchio", "rosso", 1),),
            None,
            Style(di_colore=True),
            "un cerchio di colore rosso",
            "a red circle",
        ),
        # "colore" is masculine singular: the adjective keeps that form after a feminine plural noun
        (
            (G("stella", "giallo", 3),),
            None,
            Style(di_colore=True),
            "tre stelle di colore giallo",
            "three yellow stars",
        ),
        (
            (G("stella", "bianco", 2),),
            None,
            Style(opening="si_vede", background="su_uno"),
            "si vedono due stelle bianche su uno sfondo nero",
            "one can see two white stars on a black background",
        ),
        (
            (G("rombo", "viola", 1),),
            None,
            Style(opening="immagine", background="con"),
            "immagine di un rombo viola con sfondo nero",
            "a picture of a purple diamond on a black background",
        ),
        (
            (G("cerchio", "rosso", 1), G("stella", "giallo", 1)),
            "left_of",
            Style(swapped=True),
            "una stella gialla a destra di un cerchio rosso",
            "a yellow star to the right of a red circle",
        ),
        (
            (G("cerchio", "rosso", 2), G("cuore", "blu", 1)),
            None,
            Style(opening="ce", swapped=True),
            "c'è un cuore blu e due cerchi rossi",
            "there is a blue heart and two red circles",
        ),
    ],
)
def test_paraphrase_table(groups, relation, style, italian, english):
    assert paraphrase.render(groups, relation, "nero", style) == (italian, english)


def test_the_plain_style_is_the_plain_caption():
    groups = (G("triangolo", "verde", 2), G("stella", "rosa", 1))
    for relation in (None, *grammar.RELATIONS):
        assert paraphrase.render(groups, relation, "grigio", Style())[0] == grammar.caption_it(
            groups, relation, None
        )
        assert paraphrase.render(groups, relation, "grigio", Style(background="su"))[0] == grammar.caption_it(
            groups, relation, "grigio"
        )


def _scenes(n: int, seed: int = 3):
    return [scenes.sample_training_scene(scenes.rng_for(seed, "train", i)) for i in range(n)]


def test_each_image_gets_k_distinct_captions_that_fit_and_name_only_its_own_facts():
    for i, scene in enumerate(_scenes(400)):
        found = paraphrase.captions(scene, 5, random.Random(i))
        background = scene.background if scene.with_background else None
        assert found[0] == (
            grammar.caption_it(scene.groups, scene.relation, background),
            grammar.caption_en(scene.groups, scene.relation, background),
        )
        italian = [c for c, _ in found]
        assert len(italian) == len(set(italian)) == 5
        for caption in italian:
            assert paraphrase.token_count(caption) <= paraphrase.MAX_TOKENS, caption
            # the facts are the scene's: every group's number word and noun, the relation phrase, the background
            for group in scene.groups:
                noun = grammar.SHAPES[group.shape]
                assert (noun.singular if group.count == 1 else noun.plural) in caption.split()
                if group.count > 1:
                    assert grammar.NUMBERS[group.count][0] in caption.split()
            if scene.relation is not None:
                assert any(
                    grammar.RELATIONS[r][0] in caption
                    for r in (scene.relation, grammar.mirror(scene.relation))
                )
            if "sfondo" in caption:
                assert caption.endswith(f"sfondo {scene.background}")


def test_fewer_captions_only_when_fewer_fit(monkeypatch):
    scene = scenes.finish_scene(
        random.Random(0),
        (G("triangolo", "arancione", 3), G("quadrato", "bianco", 1)),
        "left_of",
        with_background=True,
    )
    found = paraphrase.captions(scene, 8, random.Random(0))  # the longest kind of scene still gets 8
    assert len(found) == 8 and all(paraphrase.token_count(c) <= paraphrase.MAX_TOKENS for c, _ in found)
    assert paraphrase.captions(scene, 1, random.Random(0)) == found[:1]
    # with room for 9 tokens only the two background-less orders fit beside the plain caption (12 tokens)
    monkeypatch.setattr(paraphrase, "MAX_TOKENS", 9)
    short = [c for c, _ in paraphrase.captions(scene, 8, random.Random(0))]
    assert (
        short[0] == f"tre triangoli arancioni a sinistra di un quadrato bianco su sfondo {scene.background}"
    )
    assert sorted(short[1:]) == [
        "tre triangoli arancioni a sinistra di un quadrato bianco",
        "un quadrato bianco a destra di tre triangoli arancioni",
    ]


def test_caption_strings_recur_across_images_as_in_mscoco():
    counts = Counter(
        c for i, s in enumerate(_scenes(500)) for c, _ in paraphrase.captions(s, 3, random.Random(i))
    )
    shared = [c for c, n in counts.items() if n > 1]
    assert len(shared) > 20  # short captions such as "un cerchio rosso" belong to several images
    assert any(c.startswith(("c'è", "ci sono", "si vede", "immagine di")) for c in shared)
