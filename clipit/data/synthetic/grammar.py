"""The words of the synthetic world and the Italian (and English) grammar that turns a scene into a caption.

Italian agreement is the point of this module: articles depend on gender and on the first letters of the
next word ("un cerchio", "uno scudo", "un'ellisse", "una stella"), colour adjectives agree in gender and
number ("rosso/rossa/rossi/rosse", "verde/verdi", "arancione/arancioni") except the invariable ones ("blu",
"rosa", "viola"), and nouns take their plural ("cerchio/cerchi", "cuore/cuori"). Labels in the scene (and in
the manifest `meta`) are the Italian lemmas: the shape's singular and the colour's masculine singular.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Noun:
    singular: str
    plural: str
    feminine: bool
    english: str
    english_plural: str


@dataclass(frozen=True)
class Adjective:
    forms: tuple[
        str, str, str, str
    ]  # masculine singular, feminine singular, masculine plural, feminine plural
    english: str
    rgb: tuple[int, int, int]

    @property
    def lemma(self) -> str:
        return self.forms[0]


def _adj(ms: str, fs: str, mp: str, fp: str, english: str, rgb: tuple[int, int, int]) -> Adjective:
    return Adjective((ms, fs, mp, fp), english, rgb)


SHAPES: dict[str, Noun] = {
    n.singular: n
    for n in (
        Noun("cerchio", "cerchi", False, "circle", "circles"),
        Noun("quadrato", "quadrati", False, "square", "squares"),
        Noun("triangolo", "triangoli", False, "triangle", "triangles"),
        Noun("stella", "stelle", True, "star", "stars"),
        Noun("cuore", "cuori", False, "heart", "hearts"),
        Noun("rombo", "rombi", False, "diamond", "diamonds"),
    )
}

# Saturated, well separated colours: a tiny model tells them apart from the mean of a patch.
COLOURS: dict[str, Adjective] = {
    a.lemma: a
    for a in (
        _adj("rosso", "rossa", "rossi", "rosse", "red", (220, 30, 30)),
        _adj("verde", "verde", "verdi", "verdi", "green", (30, 170, 50)),
        _adj("blu", "blu", "blu", "blu", "blue", (30, 60, 225)),
        _adj("giallo", "gialla", "gialli", "gialle", "yellow", (245, 225, 30)),
        _adj("arancione", "arancione", "arancioni", "arancioni", "orange", (245, 130, 15)),
        _adj("viola", "viola", "viola", "viola", "purple", (135, 45, 195)),
        _adj("rosa", "rosa", "rosa", "rosa", "pink", (250, 150, 200)),
        _adj("bianco", "bianca", "bianchi", "bianche", "white", (245, 245, 245)),
    )
}
INVARIABLE_COLOURS = tuple(name for name, a in COLOURS.items() if len(set(a.forms)) == 1)

# "sfondo" is masculine singular, so the background takes the masculine singular form.
BACKGROUNDS: dict[str, Adjective] = {
    a.lemma: a
    for a in (
        _adj("nero", "nera", "neri", "nere", "black", (15, 15, 15)),
        _adj("grigio", "grigia", "grigi", "grigie", "grey", (120, 120, 120)),
        _adj("bianco", "bianca", "bianchi", "bianche", "white", (250, 250, 250)),
    )
}

NUMBERS = {2: ("due", "two"), 3: ("tre", "three"), 4: ("quattro", "four")}
MAX_COUNT = 4

# Relation of the first group to the second: Italian phrase, English phrase, and its mirror image.
RELATIONS: dict[str, tuple[str, str, str]] = {
    "left_of": ("a sinistra di", "to the left of", "right_of"),
    "right_of": ("a destra di", "to the right of", "left_of"),
    "above": ("sopra", "above", "below"),
    "below": ("sotto", "below", "above"),
}

_VOWELS = "aeiouàèéìòù"


@dataclass(frozen=True)
class Group:
    shape: str  # key of SHAPES
    colour: str  # key of COLOURS
    count: int  # 1..MAX_COUNT

    def as_dict(self) -> dict[str, object]:
        return {"shape": self.shape, "colour": self.colour, "count": self.count}


def indefinite_article(word: str, feminine: bool) -> str:
    """The Italian indefinite article before `word` (un, uno, una, un'); returned with its spacing."""
    w = word.lower()
    if feminine:
        return "un'" if w[0] in _VOWELS else "una "
    impure_s = w[0] == "s" and len(w) > 1 and w[1] not in _VOWELS
    if impure_s or w.startswith(("z", "gn", "ps", "pn", "x", "y")):
        return "uno "
    return "un "


def colour_form(colour: str, feminine: bool, plural: bool) -> str:
    return COLOURS[colour].forms[2 * plural + feminine]


def group_it(group: Group) -> str:
    """'una stella gialla', 'due cerchi rossi', 'tre cuori blu'."""
    noun = SHAPES[group.shape]
    plural = group.count > 1
    adjective = colour_form(group.colour, noun.feminine, plural)
    if not plural:
        return f"{indefinite_article(noun.singular, noun.feminine)}{noun.singular} {adjective}"
    return f"{NUMBERS[group.count][0]} {noun.plural} {adjective}"


def group_en(group: Group) -> str:
    """'a yellow star', 'an orange square', 'two red circles'."""
    noun = SHAPES[group.shape]
    colour = COLOURS[group.colour].english
    if group.count == 1:
        article = "an" if colour[0] in "aeiou" else "a"
        return f"{article} {colour} {noun.english}"
    return f"{NUMBERS[group.count][1]} {colour} {noun.english_plural}"


def caption_it(groups: Sequence[Group], relation: str | None, background: str | None) -> str:
    """The Italian caption: groups joined by 'e' or by a relation, then 'su sfondo X' when given."""
    text = _join(groups, relation, group_it, lambda r: RELATIONS[r][0], "e")
    if background is not None:
        text += f" su sfondo {BACKGROUNDS[background].lemma}"
    return text


def caption_en(groups: Sequence[Group], relation: str | None, background: str | None) -> str:
    text = _join(groups, relation, group_en, lambda r: RELATIONS[r][1], "and")
    if background is not None:
        text += f" on a {BACKGROUNDS[background].english} background"
    return text


def _join(groups, relation, phrase, relation_words, conjunction: str) -> str:
    if not 1 <= len(groups) <= 2:
        raise ValueError(f"a scene has one or two groups, not {len(groups)}")
    if len(groups) == 1:
        return phrase(groups[0])
    link = relation_words(relation) if relation else conjunction
    return f"{phrase(groups[0])} {link} {phrase(groups[1])}"


def mirror(relation: str | None) -> str | None:
    """The relation seen from the other group ('left_of' -> 'right_of'); None stays None."""
    return RELATIONS[relation][2] if relation else None


def grammar_words() -> set[str]:
    """Every word the grammar's captions, class names and templates can contain (lowercase); with the
    paraphrases' own words: clipit.data.synthetic.paraphrase.all_words."""
    words: set[str] = {"e", "su", "sfondo"}
    for noun in SHAPES.values():
        words |= {noun.singular, noun.plural}
        words |= set(indefinite_article(noun.singular, noun.feminine).strip(" '").split())
    for adjective in (*COLOURS.values(), *BACKGROUNDS.values()):
        words |= set(adjective.forms)
    words |= {"un", "uno", "una"} | {it for it, _ in NUMBERS.values()}
    for phrase, _, _ in RELATIONS.values():
        words |= set(phrase.split())
    return words
