"""Random scenes: which groups of objects, in which relation, where, on which background.

A scene is sampled from its own `random.Random` seeded by (seed, stream, index), so image i of a stream
is the same whatever else is generated and in whatever order (the basis of determinism and of drawing
in parallel). Geometry is in unit coordinates (0..1); `draw.render` scales it to pixels.

Held-out compositions: HELD_OUT (shape, colour) pairs never appear in the training stream, in any group;
the zero-shot set "composition" asks for exactly those pairs.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from clipit.data.synthetic.grammar import BACKGROUNDS, COLOURS, MAX_COUNT, RELATIONS, SHAPES, Group

# One pair per shape; no invariable colour (blu, rosa, viola), which the shape and count zero-shot
# templates use, so those templates never spell a held-out composition.
HELD_OUT: tuple[tuple[str, str], ...] = (
    ("cerchio", "giallo"),
    ("quadrato", "rosso"),
    ("triangolo", "verde"),
    ("stella", "arancione"),
    ("cuore", "bianco"),
    ("rombo", "rosso"),
)
SEEN_PAIRS = tuple((s, c) for s in SHAPES for c in COLOURS if (s, c) not in HELD_OUT)

# Counts of the two groups of a two-group scene: at most MAX_COUNT objects in all.
TWO_GROUP_COUNTS = tuple(
    (a, b) for a in range(1, MAX_COUNT) for b in range(1, MAX_COUNT) if a + b <= MAX_COUNT
)

MIN_SIZE, MAX_SIZE = 0.55, 0.85  # object size as a share of its cell
CELL_MARGIN = 0.05  # share of the cell kept free on each side
MAX_OBJECT = 0.6  # no object wider than 60% of the image (sizes still vary for a lone object)
_HALVES = {  # region (x, y, w, h) of the first and second group for each relation
    "left_of": ((0.0, 0.0, 0.5, 1.0), (0.5, 0.0, 0.5, 1.0)),
    "right_of": ((0.5, 0.0, 0.5, 1.0), (0.0, 0.0, 0.5, 1.0)),
    "above": ((0.0, 0.0, 1.0, 0.5), (0.0, 0.5, 1.0, 0.5)),
    "below": ((0.0, 0.5, 1.0, 0.5), (0.0, 0.0, 1.0, 0.5)),
}


@dataclass(frozen=True)
class Placed:
    shape: str
    colour: str
    cx: float
    cy: float
    size: float


@dataclass
class Scene:
    groups: tuple[Group, ...]
    relation: str | None  # of groups[0] to groups[1]
    background: str
    with_background: bool  # whether the training caption names the background
    objects: list[Placed] = field(default_factory=list)
    jitter: int = 0  # seed of the per-image colour jitter

    def labels(self) -> dict[str, object]:
        """The structured labels written to the manifest `meta`."""
        return {
            "groups": [g.as_dict() for g in self.groups],
            "relation": self.relation,
            "background": self.background,
            "objects": sum(g.count for g in self.groups),
        }


def rng_for(seed: int, stream: str, index: int) -> random.Random:
    return random.Random(f"clipit-synthetic/{seed}/{stream}/{index}")


def sample_training_scene(rng: random.Random) -> Scene:
    """One or two groups of seen (shape, colour) pairs; two groups in a relation two times in three."""
    if rng.random() < 0.5:
        shape, colour = rng.choice(SEEN_PAIRS)
        groups: tuple[Group, ...] = (Group(shape, colour, rng.randint(1, MAX_COUNT)),)
        relation = None
    else:
        first, second = rng.sample(
            SEEN_PAIRS, 2
        )  # distinct pairs: "un cerchio rosso e due cerchi rossi" reads oddly
        a, b = rng.choice(TWO_GROUP_COUNTS)
        groups = (Group(*first, a), Group(*second, b))
        relation = rng.choice((None, *RELATIONS))
    return finish_scene(rng, groups, relation, with_background=rng.random() < 0.5)


def finish_scene(
    rng: random.Random, groups: tuple[Group, ...], relation: str | None, with_background: bool
) -> Scene:
    """Choose a background that no object shares and place the objects."""
    colours = {g.colour for g in groups}
    background = rng.choice([b for b in BACKGROUNDS if b not in colours])
    scene = Scene(groups, relation, background, with_background, jitter=rng.getrandbits(32))
    scene.objects = _place(rng, groups, relation)
    return scene


def _place(rng: random.Random, groups: tuple[Group, ...], relation: str | None) -> list[Placed]:
    if relation is not None:
        placed: list[Placed] = []
        for group, region in zip(groups, _HALVES[relation], strict=True):
            placed += _fill(rng, region, [(group.shape, group.colour)] * group.count)
        return placed
    kinds = [(g.shape, g.colour) for g in groups for _ in range(g.count)]
    rng.shuffle(kinds)  # without a relation the groups mix anywhere in the image
    return _fill(rng, (0.0, 0.0, 1.0, 1.0), kinds)


def _fill(
    rng: random.Random, region: tuple[float, float, float, float], kinds: list[tuple[str, str]]
) -> list[Placed]:
    """Put one object per cell of the grid with the largest cells, in random cells, with jitter."""
    x, y, w, h = region
    n = len(kinds)
    grids = [(cols, math.ceil(n / cols)) for cols in range(1, n + 1)]
    best = max(min(w / c, h / r) for c, r in grids)
    cols, rows = rng.choice([(c, r) for c, r in grids if math.isclose(min(w / c, h / r), best)])
    cells = rng.sample(range(cols * rows), n)
    cell_w, cell_h = w / cols, h / rows
    placed = []
    margin = CELL_MARGIN * min(cell_w, cell_h)  # objects in neighbouring cells never touch
    for (shape, colour), cell in zip(kinds, cells, strict=True):
        size = min(cell_w, cell_h, MAX_OBJECT / MAX_SIZE) * rng.uniform(MIN_SIZE, MAX_SIZE)
        left = x + (cell % cols) * cell_w + margin
        top = y + (cell // cols) * cell_h + margin
        cx = left + size / 2 + rng.random() * (cell_w - 2 * margin - size)
        cy = top + size / 2 + rng.random() * (cell_h - 2 * margin - size)
        placed.append(Placed(shape, colour, cx, cy, size))
    return placed
