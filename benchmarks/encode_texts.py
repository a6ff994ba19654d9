"""Captions per second of `Encoder.encode_texts` with length-bucketed batches vs one padded length.

    .venv/bin/python benchmarks/encode_texts.py

What retrieval eval pays for its captions (25k of them for MSCOCO-IT, where the text tower costs more
than the image tower): 4,096 synthetic captions with COCO-like lengths (mostly 10-20 words, 1% at the
64-token limit), the CPU-sized text tower of benchmarks/towers.py, batch 64. The reference is the
previous behaviour, in the same process: every batch padded to the call's longest caption, which one
long caption makes the model's limit. Both sides run twice, alternating; each is compiled for its
shapes before timing. Results go to docs/benchmarks.md ("## Embed").
"""

from __future__ import annotations

import tempfile
import time

import jax.numpy as jnp
import numpy as np
from towers import CONFIGS, tokenizer_folder

import clipit.encode as encode
from clipit.models.build import create_model
from clipit.models.sizes import CLIP_LOGIT_SCALE_INIT

MAX_TOKENS = 64


def main() -> None:
    vision, text, _, projection_dim = CONFIGS["small"]
    model = create_model(vision, text, projection_dim, CLIP_LOGIT_SCALE_INIT, jnp.float32, seed=0)
    tmp = (
        tempfile.TemporaryDirectory()
    )  # kept until main returns: the encoder loads the tokenizer on first use
    tokenizer = str(tokenizer_folder(text.vocab_size, tmp.name))
    rng = np.random.default_rng(0)
    words = np.clip(rng.normal(14, 4, 4096).astype(int), 3, MAX_TOKENS - 2)
    words[rng.choice(len(words), len(words) // 100, replace=False)] = MAX_TOKENS - 2
    captions = [" ".join(f"w{rng.integers(1, 7000)}" for _ in range(n)) for n in words]
    encoder = encode.Encoder(model, tokenizer, vision.image_size, MAX_TOKENS, name="benchmark")

    buckets = encode._length_bucket
    sides = {"one padded length": lambda tokens: MAX_TOKENS, "length buckets": buckets}
    rates: dict[str, list[float]] = {name: [] for name in sides}
    results = {}
    for name, bucket in sides.items():  # compile every shape each side uses
        encode._length_bucket = bucket
        results[name] = encoder.encode_texts(captions, batch_size=64)
    for _ in range(2):
        for name, bucket in sides.items():
            encode._length_bucket = bucket
            start = time.perf_counter()
            encoder.encode_texts(captions, batch_size=64)
            rates[name].append(len(captions) / (time.perf_counter() - start))
    encode._length_bucket = buckets
    difference = np.abs(results["length buckets"] - results["one padded length"]).max()
    for name, values in rates.items():
        print(f"{name:18s} {max(values):8.0f} captions/s")
    ratio = max(rates["length buckets"]) / max(rates["one padded length"])
    print(f"speed-up {ratio:.2f}x; largest difference between the embeddings {difference:.1e}")


if __name__ == "__main__":
    main()
