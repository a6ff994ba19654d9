"""BERT's embedding lookups, forward + backward: ours (clipit/models/embedding.py) against autodiff of
`nnx.Embed`, in one process, on a batch shaped like real captions.

    .venv/bin/python benchmarks/embedding_grad.py                      # base sizes, CPU or GPU
    .venv/bin/python benchmarks/embedding_grad.py --dtype bfloat16     # what a GPU run trains in

The batch: [CLS] first, [SEP] last, Zipf-distributed word ids (a few words in most captions), captions of
15-30 tokens padded with [PAD] (id 0) to `--length`, the upstream gradient zero at padded positions (as
the towers' backward pass makes it). The reference is what bert.py did before: `nnx.Embed(dtype=...)`
for words, positions (gathered by index) and token types, differentiated by jax; in bf16 its backward
pass scatter-adds into bf16 tables, which on a GPU are compare-and-swap loops under contention. Also
printed: the largest error of each side's word-table gradient against a float64 sum.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from clipit.models.embedding import lookup
from clipit.models.kernels import KERNELS, kernels_for


def caption_batch(batch: int, length: int, vocab: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = np.zeros((batch, length), np.int32)
    for row in range(batch):
        end = rng.integers(15, 31) if length > 30 else length
        words = np.minimum(rng.zipf(1.2, end - 2) + 4, vocab - 1)
        ids[row, :end] = [2, *words, 3]  # [CLS] words [SEP], then [PAD]s
    return ids, (ids != 0).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--length", type=int, default=96)
    parser.add_argument("--vocab", type=int, default=32102)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--kernels", choices=KERNELS, help="kernel setting (default: the devices')")
    args = parser.parse_args()
    kernels = args.kernels or kernels_for()
    dtype = jnp.bfloat16 if args.dtype == "bfloat16" else jnp.float32

    ids, mask = caption_batch(args.batch, args.length, args.vocab)
    rng = np.random.default_rng(1)
    upstream = rng.standard_normal((args.batch, args.length, args.width)).astype(np.float32) * mask[..., None]
    tables = [
        rng.standard_normal((rows, args.width)).astype(np.float32) * 0.02 for rows in (args.vocab, 512, 2)
    ]
    inputs = [jax.device_put(x) for x in (ids, np.zeros_like(ids), jnp.asarray(upstream, dtype))]

    def reference(tables, ids, types):
        """nnx.Embed(dtype=...)'s lookup, as flax writes it: the table cast to the compute dtype, then
        jnp.take (the modules themselves are not built here so no random init lands in the step)."""
        word, position, token_type = (table.astype(dtype) for table in tables)
        positions = jnp.arange(ids.shape[1])[None, :]
        return (
            jnp.take(word, ids, axis=0)
            + jnp.take(position, positions, axis=0)
            + jnp.take(token_type, types, axis=0)
        )

    def ours(tables, ids, types):
        word, position, token_type = tables
        return (
            lookup(word, ids, kernels) + position[: ids.shape[1]] + lookup(token_type, types, kernels)
        ).astype(dtype)

    steps = {}
    for name, embed in (("nnx.Embed", reference), ("clipit", ours)):

        def loss(tables, ids, types, upstream, embed=embed):
            return (embed(tables, ids, types).astype(jnp.float32) * upstream.astype(jnp.float32)).sum()

        steps[name] = jax.jit(jax.grad(loss))
    device_tables = [jax.device_put(t) for t in tables]
    expected = np.zeros((args.vocab, args.width))
    np.add.at(expected, ids.reshape(-1), np.asarray(inputs[2], np.float64).reshape(-1, args.width))
    errors = {}
    for name, step in steps.items():
        grads = jax.block_until_ready(step(device_tables, *inputs))  # compile and warm up
        errors[name] = float(np.abs(np.asarray(grads[0], np.float64) - expected).max())
    times = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            jax.block_until_ready(step(device_tables, *inputs))
            times[name].append(time.perf_counter() - start)

    print(
        f"embeddings fwd+bwd, batch {args.batch} x {args.length} tokens ({mask.mean():.0%} not padding), "
        f"vocab {args.vocab}, width {args.width}, {args.dtype}, {jax.devices()[0].platform}"
    )
    for name, t in times.items():
        print(
            f"{name:10s} median {statistics.median(t) * 1e3:8.2f} ms  best {min(t) * 1e3:8.2f} ms  "
            f"word-table gradient max error {errors[name]:.2e} (largest entry {np.abs(expected).max():.1f})"
        )
    ratio = statistics.median(times["nnx.Embed"]) / statistics.median(times["clipit"])
    print(f"speed-up (median): {ratio:.2f}x")


if __name__ == "__main__":
    main()
