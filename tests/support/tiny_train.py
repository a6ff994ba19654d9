"""Tiny synthetic shards, a tiny training config and the shared tiny run's settings, for the trainer tests.

The shards are written directly with the shard format (no download or build-shards step): 32 px
one-object synthetic images, each with two Italian captions (the plain one and a paraphrase, as the
synthetic set writes them: real data has several captions per image), and the synthetic tokenizer.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa

from clipit.config import load_config
from clipit.data.shard_format import SHARD_SCHEMA, shard_name, write_shard
from clipit.data.synthetic import draw, grammar, paraphrase, scenes
from clipit.data.synthetic.tokenizer import write_tokenizer
from clipit.models.build import build_model
from clipit.runs.checkpoints import RunCheckpoints
from clipit.train.model_state import split_model

SIDE = 32


CAPTIONS_PER_IMAGE = 2


def one_object_sample(seed: int, index: int) -> tuple[list[str], bytes, str]:
    """A synthetic scene with a single object (colour and shape): learnable in a few dozen steps."""
    rng = scenes.rng_for(seed, "trainer-test", index)
    shape, colour = rng.choice(scenes.SEEN_PAIRS)
    scene = scenes.finish_scene(rng, (grammar.Group(shape, colour, 1),), None, with_background=False)
    captions = [italian for italian, _ in paraphrase.captions(scene, CAPTIONS_PER_IMAGE, rng)]
    captions += captions[:1] * (CAPTIONS_PER_IMAGE - len(captions))  # never fewer rows than asked for
    return captions, draw.encode_jpeg(draw.render(scene, SIDE)), json.dumps(scene.labels())


def write_synthetic_shards(folder: Path, *, train: int, val: int, seed: int = 0) -> Path:
    """`train` and `val` count rows (image-caption pairs); every image's captions stay in one split."""
    folder.mkdir(parents=True, exist_ok=True)
    first_image = 0
    for split, count in (("train", train), ("val", val)):
        images = -(-count // CAPTIONS_PER_IMAGE)
        pairs = [
            (i, n, caption, jpeg, meta)
            for i in range(first_image, first_image + images)
            for (captions, jpeg, meta) in [one_object_sample(seed, i)]
            for n, caption in enumerate(captions)
        ][:count]
        first_image += images
        rows = {
            "key": [f"synthetic/{i:09d}/{n}" for i, n, _, _, _ in pairs],
            "source": ["synthetic"] * count,
            "caption": [caption for _, _, caption, _, _ in pairs],
            "caption_en": [None] * count,
            "image": [jpeg for _, _, _, jpeg, _ in pairs],
            "width": [SIDE] * count,
            "height": [SIDE] * count,
            "image_sha256": [hashlib.sha256(jpeg).hexdigest() for _, _, _, jpeg, _ in pairs],
            "meta": [meta for _, _, _, _, meta in pairs],
        }
        write_shard(
            pa.Table.from_pydict(rows, schema=SHARD_SCHEMA), folder / shard_name(split, 0), row_group_size=64
        )
    write_tokenizer(folder / "tokenizer")
    return folder


TINY_OVERRIDES = [
    "model.vision.hidden_size=32",
    "model.vision.num_hidden_layers=1",
    "model.vision.num_attention_heads=2",
    "model.vision.intermediate_size=64",
    "model.vision.patch_size=8",
    f"model.vision.image_size={SIDE}",
    "model.text.vocab_size=256",
    "model.text.hidden_size=32",
    "model.text.num_hidden_layers=1",
    "model.text.num_attention_heads=2",
    "model.text.intermediate_size=64",
    "model.text.max_position_embeddings=32",
    "model.max_text_length=24",
    "model.projection_dim=16",
    "data.loader.augment=false",
    "data.loader.prefetch=0",
    "train.batch_size=16",
    "train.log_every=2",
    "train.eval_every=4",
    "train.val_batches=2",
    "train.checkpoint_every=4",
]


def tiny_phases(heads: int = 4, full: int = 4, lr: float = 3e-3) -> str:
    return (
        f'train.phases=[{{name="heads", steps={heads}, trainable=["projection", "logit_scale"], lr={lr}}},'
        f' {{name="all", steps={full}, lr={lr}, warmup=0.25}}]'
    )


def tiny_overrides(shards: Path, out: Path, *extra: str) -> list[str]:
    return [
        *TINY_OVERRIDES,
        f"model.tokenizer={shards / 'tokenizer'}",
        f"train.data={shards}",
        f"train.out={out}",
        tiny_phases(),
        *extra,
    ]


def tiny_config(shards: Path, out: Path, *extra: str):
    return load_config(None, tiny_overrides(shards, out, *extra))


# --- the shared tiny two-phase run (in process, one device): 4 heads-only steps, then 150 all ---

HEADS, FULL = 4, 150
RUN_OVERRIDES = [
    f'train.phases=[{{name="heads", steps={HEADS}, trainable=["projection", "logit_scale"], lr=2e-3}},'
    f' {{name="all", steps={FULL}, lr=2e-3, warmup=0.1, reset_optimizer=false}}]',
    "train.keep_checkpoints=20",
    "train.log_every=1",
    "train.eval_every=25",
    "train.checkpoint_every=50",
    "model.text.dropout=0.0",  # with dropout this 32-wide text tower stays at chance for 150 steps
]


def run_overrides(shards, out) -> list[str]:
    return tiny_overrides(shards, out, *RUN_OVERRIDES)


def params_at(run_dir, step):
    checkpoints = RunCheckpoints(run_dir, read_only=True)
    try:
        template = split_model(build_model(load_config(run_dir / "config.resolved.toml").model)[0])[1]
        return checkpoints.restore_params(step, template)
    finally:
        checkpoints.close()
