"""Several captions per image, worded the ways an Italian speaker would write them.

A real caption set (MSCOCO-IT) has about five captions per image, written by different people, and the
same short caption under many images. The synthetic set imitates both: besides its plain caption
(`grammar.caption_it`, always the first), an image gets paraphrases that change the wording but never
the facts:

- an opening: "c'è un cerchio rosso" / "ci sono due cerchi rossi", "si vede" / "si vedono",
  "immagine di ...";
- the colour as "di colore": "un cerchio di colore rosso", "due stelle di colore giallo" ("colore" is
  masculine singular, so the adjective takes that form whatever the noun);
- two groups in the other order, with the mirrored relation: "una stella gialla a destra di un cerchio
  rosso" for "un cerchio rosso a sinistra di una stella gialla";
- the background named or not, as "su sfondo nero", "su uno sfondo nero" or "con sfondo nero".

Short captions ("un cerchio rosso", "c'è un cerchio rosso") recur under many images, as in real data.
Every caption fits in MAX_TOKENS tokens of the synthetic tokenizer, so a 16-token text tower never cuts
one: a paraphrase that would not fit is not used, and an image gets fewer captions when fewer fit.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from clipit.data.synthetic import grammar
from clipit.data.synthetic.grammar import Group
from clipit.data.synthetic.scenes import Scene

MAX_TOKENS = 14  # + [CLS] and [SEP] = 16, the tiny config's max_text_length
_TRIES = 40  # random styles tried per image before settling for fewer captions

# Italian (singular, plural) and English (singular, plural) of each opening; the verb agrees with the
# first group, as Italian does with the nearest noun.
OPENINGS: dict[str | None, tuple[tuple[str, str], tuple[str, str]]] = {
    None: (("", ""), ("", "")),
    "ce": (("c'è", "ci sono"), ("there is", "there are")),
    "si_vede": (("si vede", "si vedono"), ("one can see", "one can see")),
    "immagine": (("immagine di", "immagine di"), ("a picture of", "a picture of")),
}
# How the background is named (None: not named). English always says "on a ... background".
BACKGROUND_WORDS: dict[str | None, str] = {
    None: "",
    "su": "su sfondo",
    "su_uno": "su uno sfondo",
    "con": "con sfondo",
}


@dataclass(frozen=True)
class Style:
    opening: str | None = None  # key of OPENINGS
    di_colore: bool = False  # "un cerchio di colore rosso" instead of "un cerchio rosso"
    swapped: bool = False  # two groups in the other order (relation mirrored)
    background: str | None = None  # key of BACKGROUND_WORDS


def words() -> set[str]:
    """Every word the paraphrases add to the grammar's, as the tokenizer splits them ("c'è" is c ' è)."""
    found: set[str] = {"di", "colore"}
    for (singular, plural), _ in OPENINGS.values():
        found |= set(_pretokens(f"{singular} {plural}")) - set("'")
    for phrase in BACKGROUND_WORDS.values():
        found |= set(phrase.split())
    return found


def all_words() -> set[str]:
    """Every word any caption, class name or template of the synthetic set can contain (lowercase)."""
    return grammar.grammar_words() | words()


def token_count(text: str) -> int:
    """Tokens of `text` for the synthetic tokenizer: every word is one token, punctuation splits off."""
    return len(_pretokens(text))


def _pretokens(text: str) -> list[str]:
    return re.findall(r"\w+|[^\w\s]", text.lower())


def render(groups: Sequence[Group], relation: str | None, background: str, style: Style) -> tuple[str, str]:
    """(Italian, English) caption of the scene in `style`; `background` is the scene's background lemma."""
    if style.swapped and len(groups) == 2:
        groups, relation = tuple(groups[::-1]), grammar.mirror(relation)
    phrase = _group_di_colore if style.di_colore else grammar.group_it
    italian = grammar._join(groups, relation, phrase, lambda r: grammar.RELATIONS[r][0], "e")
    english = grammar.caption_en(groups, relation, None)
    (it_one, it_many), (en_one, en_many) = OPENINGS[style.opening]
    plural = groups[0].count > 1
    if style.opening is not None:
        italian = f"{it_many if plural else it_one} {italian}"
        english = f"{en_many if plural else en_one} {english}"
    if style.background is not None:
        italian += f" {BACKGROUND_WORDS[style.background]} {grammar.BACKGROUNDS[background].lemma}"
        english += f" on a {grammar.BACKGROUNDS[background].english} background"
    return italian, english


def captions(scene: Scene, k: int, rng: random.Random) -> list[tuple[str, str]]:
    """Up to `k` distinct (Italian, English) captions of a training scene; the plain caption first."""
    background = scene.background if scene.with_background else None
    plain = (
        grammar.caption_it(scene.groups, scene.relation, background),
        grammar.caption_en(scene.groups, scene.relation, background),
    )
    found = {plain[0]: plain}
    for _ in range(_TRIES):
        if len(found) >= k:
            break
        style = Style(
            opening=rng.choice(list(OPENINGS)),
            di_colore=rng.random() < 0.5,
            swapped=len(scene.groups) == 2 and rng.random() < 0.5,
            background=rng.choice(list(BACKGROUND_WORDS)),
        )
        italian, english = render(scene.groups, scene.relation, scene.background, style)
        if token_count(italian) <= MAX_TOKENS:
            found.setdefault(italian, (italian, english))
    return list(found.values())


def _group_di_colore(group: Group) -> str:
    """'un cerchio di colore rosso', 'due stelle di colore giallo'."""
    noun = grammar.SHAPES[group.shape]
    colour = grammar.COLOURS[group.colour].lemma  # agrees with "colore" (masculine singular)
    if group.count == 1:
        return f"{grammar.indefinite_article(noun.singular, noun.feminine)}{noun.singular} di colore {colour}"
    return f"{grammar.NUMBERS[group.count][0]} {noun.plural} di colore {colour}"
