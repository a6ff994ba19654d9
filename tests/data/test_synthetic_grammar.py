"""Italian (and English) grammar of the synthetic captions: a table of cases, then agreement rules."""

from __future__ import annotations

import pytest

from clipit.data.synthetic import grammar
from clipit.data.synthetic.grammar import Group

G = Group


@pytest.mark.parametrize(
    ("groups", "relation", "background", "italian", "english"),
    [
        ((G("cerchio", "rosso", 1),), None, None, "un cerchio rosso", "a red circle"),
        ((G("stella", "rosso", 1),), None, None, "una stella rossa", "a red star"),
        ((G("stella", "giallo", 3),), None, None, "tre stelle gialle", "three yellow stars"),
        ((G("cerchio", "rosso", 2),), None, None, "due cerchi rossi", "two red circles"),
        ((G("cuore", "arancione", 1),), None, None, "un cuore arancione", "an orange heart"),
        ((G("cuore", "arancione", 4),), None, None, "quattro cuori arancioni", "four orange hearts"),
        ((G("stella", "arancione", 2),), None, None, "due stelle arancioni", "two orange stars"),
        ((G("stella", "verde", 1),), None, None, "una stella verde", "a green star"),
        ((G("rombo", "verde", 2),), None, None, "due rombi verdi", "two green diamonds"),
        ((G("cuore", "blu", 3),), None, None, "tre cuori blu", "three blue hearts"),
        ((G("stella", "rosa", 2),), None, None, "due stelle rosa", "two pink stars"),
        ((G("triangolo", "viola", 4),), None, None, "quattro triangoli viola", "four purple triangles"),
        ((G("stella", "bianco", 2),), None, None, "due stelle bianche", "two white stars"),
        ((G("quadrato", "bianco", 3),), None, None, "tre quadrati bianchi", "three white squares"),
        (
            (G("cerchio", "rosso", 2), G("stella", "giallo", 1)),
            None,
            "nero",
            "due cerchi rossi e una stella gialla su sfondo nero",
            "two red circles and a yellow star on a black background",
        ),
        (
            (G("quadrato", "verde", 1), G("cuore", "blu", 3)),
            "left_of",
            None,
            "un quadrato verde a sinistra di tre cuori blu",
            "a green square to the left of three blue hearts",
        ),
        (
            (G("triangolo", "giallo", 2), G("stella", "bianco", 1)),
            "right_of",
            "grigio",
            "due triangoli gialli a destra di una stella bianca su sfondo grigio",
            "two yellow triangles to the right of a white star on a grey background",
        ),
        (
            (G("stella", "rosa", 1), G("rombo", "arancione", 2)),
            "above",
            "bianco",
            "una stella rosa sopra due rombi arancioni su sfondo bianco",
            "a pink star above two orange diamonds on a white background",
        ),
        (
            (G("cerchio", "viola", 3), G("quadrato", "giallo", 1)),
            "below",
            None,
            "tre cerchi viola sotto un quadrato giallo",
            "three purple circles below a yellow square",
        ),
    ],
)
def test_caption_table(groups, relation, background, italian, english):
    assert grammar.caption_it(groups, relation, background) == italian
    assert grammar.caption_en(groups, relation, background) == english


@pytest.mark.parametrize(
    ("word", "feminine", "article"),
    [
        ("cerchio", False, "un "),
        ("albero", False, "un "),  # masculine before a vowel: un, no apostrophe
        ("scudo", False, "uno "),  # s + consonant
        ("zaino", False, "uno "),
        ("gnomo", False, "uno "),
        ("psicologo", False, "uno "),
        ("sole", False, "un "),  # s + vowel is not impure
        ("stella", True, "una "),  # feminine never takes uno
        ("ellisse", True, "un'"),  # feminine before a vowel elides
    ],
)
def test_indefinite_article(word, feminine, article):
    assert grammar.indefinite_article(word, feminine) == article


def test_every_group_agrees_in_gender_and_number():
    """Plural nouns and colour forms follow the noun's gender for every combination."""
    for shape, noun in grammar.SHAPES.items():
        for colour, adjective in grammar.COLOURS.items():
            for count in range(1, grammar.MAX_COUNT + 1):
                words = grammar.group_it(Group(shape, colour, count)).split()
                expected_noun = noun.singular if count == 1 else noun.plural
                expected_adjective = adjective.forms[2 * (count > 1) + noun.feminine]
                assert words[-2:] == [expected_noun, expected_adjective]
                if count == 1:
                    assert words[0] == ("una" if noun.feminine else "un")
                else:
                    assert words[0] == grammar.NUMBERS[count][0]


def test_invariable_colours_are_blu_rosa_viola():
    assert set(grammar.INVARIABLE_COLOURS) == {"blu", "rosa", "viola"}
    assert grammar.COLOURS["arancione"].forms == ("arancione", "arancione", "arancioni", "arancioni")


def test_mirror_relation_reads_the_same_scene_the_other_way():
    a, b = G("quadrato", "verde", 1), G("cuore", "blu", 3)
    assert (
        grammar.caption_it((b, a), grammar.mirror("left_of"), None)
        == "tre cuori blu a destra di un quadrato verde"
    )
    assert grammar.mirror("above") == "below" and grammar.mirror(None) is None
