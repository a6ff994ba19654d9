"""The synthetic zero-shot sets (one per attribute) and the retrieval set.

Zero-shot, in CLIP_benchmark's form: `zeroshot/<attribute>/<NN-class>/<i:05d>.jpg`, with
`classnames.json` and `templates.json` (`{"synthetic": [...]}`, `{c}` is the class name) beside the class
folders; folders sort in class order. Each set varies one attribute and keeps the words of the others in
the templates, so a class name and a template always make a grammatical training-like caption:

- colour: one object of a masculine shape; classes are colours ("rosso"), templates "un cerchio {c}", ...
- shape: one object in an invariable colour (blu, rosa, viola); classes "un cerchio", "una stella", ...;
  templates "{c} blu", ...
- count: 1 to 4 circles in one invariable colour; classes "un cerchio", "due cerchi", ...
- composition: one object of a (shape, colour) pair held out of every training caption.
- relation: two single objects of seen pairs (RELATION_PAIRS) placed as the class says; classes are the
  relation words ("a sinistra di", "sopra", ...), templates "un cerchio blu {c} una stella rosa", ... for
  each pair. Telling "a sinistra di" from "a destra di" needs the relation bound to the right object,
  CLIP's known weak spot; the set measures it, the demo sets no bar for it.

Retrieval, in MSCOCO-IT's COCO caption form: `retrieval/images/<id:06d>.jpg` and `retrieval/captions.json`
with `images[{id, file_name}]` and `annotations[{id, image_id, caption}]`, 2 or 3 captions per image.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

from clipit.data.synthetic import draw, grammar, scenes
from clipit.data.synthetic.grammar import Group

MASCULINE_SHAPES = tuple(s for s, n in grammar.SHAPES.items() if not n.feminine)
COUNT_SHAPE = "cerchio"
# (first, second) objects of the relation set: invariable colours, so never a held-out pair.
RELATION_PAIRS = (
    (("cerchio", "blu"), ("stella", "rosa")),
    (("quadrato", "viola"), ("cuore", "blu")),
    (("triangolo", "rosa"), ("rombo", "viola")),
)


def _background_templates(bases: list[str]) -> list[str]:
    return [*bases, *(f"{b} su sfondo {bg}" for b in bases for bg in grammar.BACKGROUNDS)]


def _one_object(shape: str, colour: str, count: int = 1) -> Callable[[random.Random], scenes.Scene]:
    return lambda rng: scenes.finish_scene(rng, (Group(shape, colour, count),), None, with_background=False)


def _seen(shape: str, colours: tuple[str, ...] | list[str]) -> list[str]:
    return [c for c in colours if (shape, c) not in scenes.HELD_OUT]


def attribute_sets() -> dict[str, dict]:
    """For each attribute: class names, templates, and per class a scene sampler."""
    invariable = list(grammar.INVARIABLE_COLOURS)
    sets: dict[str, dict] = {}
    colour_classes = list(grammar.COLOURS)
    sets["colour"] = {
        "classnames": colour_classes,
        "templates": _background_templates([f"un {s} {{c}}" for s in MASCULINE_SHAPES]),
        "samplers": [
            lambda rng, c=c: _one_object(
                rng.choice([s for s in MASCULINE_SHAPES if (s, c) not in scenes.HELD_OUT]), c
            )(rng)
            for c in colour_classes
        ],
    }
    shape_classes = list(grammar.SHAPES)
    sets["shape"] = {
        "classnames": [grammar.group_it(Group(s, invariable[0], 1)).rsplit(" ", 1)[0] for s in shape_classes],
        "templates": _background_templates([f"{{c}} {c}" for c in invariable]),
        "samplers": [
            lambda rng, s=s: _one_object(s, rng.choice(_seen(s, invariable)))(rng) for s in shape_classes
        ],
    }
    counts = list(range(1, grammar.MAX_COUNT + 1))
    sets["count"] = {
        "classnames": [
            grammar.group_it(Group(COUNT_SHAPE, invariable[0], n)).rsplit(" ", 1)[0] for n in counts
        ],
        "templates": _background_templates([f"{{c}} {c}" for c in invariable]),
        "samplers": [
            lambda rng, n=n: _one_object(COUNT_SHAPE, rng.choice(_seen(COUNT_SHAPE, invariable)), n)(rng)
            for n in counts
        ],
    }
    sets["composition"] = {
        "classnames": [grammar.group_it(Group(s, c, 1)) for s, c in scenes.HELD_OUT],
        "templates": _background_templates(["{c}"]),
        "samplers": [_one_object(s, c) for s, c in scenes.HELD_OUT],
    }
    relations = list(grammar.RELATIONS)
    sets["relation"] = {
        "classnames": [grammar.RELATIONS[r][0] for r in relations],
        "templates": _background_templates(
            [
                f"{grammar.group_it(Group(*a, 1))} {{c}} {grammar.group_it(Group(*b, 1))}"
                for a, b in RELATION_PAIRS
            ]
        ),
        "samplers": [lambda rng, r=r: _related_pair(rng, r) for r in relations],
    }
    return sets


def _related_pair(rng: random.Random, relation: str) -> scenes.Scene:
    first, second = rng.choice(RELATION_PAIRS)
    return scenes.finish_scene(rng, (Group(*first, 1), Group(*second, 1)), relation, with_background=False)


def class_folder(number: int, name: str) -> str:
    return f"{number:02d}-{name.replace(' ', '-')}"


def write_zeroshot(folder: Path, seed: int, side: int, per_class: int) -> dict:
    """Write every attribute set under `folder`; returns {attribute: {classes, images, chance}}."""
    index = {}
    for attribute, spec in attribute_sets().items():
        base = folder / attribute
        for number, (name, sampler) in enumerate(zip(spec["classnames"], spec["samplers"], strict=True)):
            target = base / class_folder(number, name)
            target.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                scene = sampler(scenes.rng_for(seed, f"zeroshot/{attribute}/{number}", i))
                (target / f"{i:05d}.jpg").write_bytes(draw.encode_jpeg(draw.render(scene, side)))
        _write_json(base / "classnames.json", {"synthetic": spec["classnames"]})
        _write_json(base / "templates.json", {"synthetic": spec["templates"]})
        classes = len(spec["classnames"])
        index[attribute] = {"classes": classes, "images": classes * per_class, "chance": 1 / classes}
    _write_json(folder / "index.json", index)
    return index


def retrieval_captions(scene: scenes.Scene) -> list[str]:
    """2-3 captions of one image: with and without the background, and the groups the other way round."""
    bg = scene.background
    variants = [
        grammar.caption_it(scene.groups, scene.relation, bg),
        grammar.caption_it(scene.groups, scene.relation, None),
    ]
    if len(scene.groups) == 2:
        variants.append(grammar.caption_it(scene.groups[::-1], grammar.mirror(scene.relation), bg))
    return list(dict.fromkeys(variants))


def write_retrieval(folder: Path, seed: int, side: int, n_images: int) -> dict:
    images, annotations = [], []
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for image_id in range(n_images):
        scene = scenes.sample_training_scene(scenes.rng_for(seed, "retrieval", image_id))
        file_name = f"{image_id:06d}.jpg"
        (folder / "images" / file_name).write_bytes(draw.encode_jpeg(draw.render(scene, side)))
        images.append({"id": image_id, "file_name": file_name, "width": side, "height": side})
        for caption in retrieval_captions(scene):
            annotations.append({"id": len(annotations), "image_id": image_id, "caption": caption})
    _write_json(folder / "captions.json", {"images": images, "annotations": annotations})
    return {"images": len(images), "captions": len(annotations)}


def _write_json(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
