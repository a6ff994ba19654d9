"""Throughput of our Flax dual encoder against transformers' PyTorch VisionTextDualEncoderModel.

    .venv/bin/python benchmarks/towers.py                          # CPU-sized towers, batch 32
    .venv/bin/python benchmarks/towers.py --config base --dtype bfloat16 --batch 256   # GPU: MFU

Both sides get the same architecture, the same weights (ours are exported to an HF folder that
PyTorch loads), the same batch, the same number of threads. Measured: forward+backward of the CLIP
contrastive loss (a training step without the optimizer) and forward-only embedding of images and
texts (what eval and embed do). The two sides run alternately, `--rounds` times, and the median of
each is reported, so load from other processes hits both alike; so is the median of the per-round
ratios (JAX and PyTorch timed back to back), which cancels this VM's speed drift best. Rates are
printed by wall clock and by process CPU time; with `--threads 1` (the process pinned to one core,
both sides single-threaded) the CPU-time ratio is the one that survives a shared, busy machine.
Targets: fwd+bwd >= 1.0x, forward >= 1.2x.
It prints achieved TFLOP/s of both sides from a hand count of the model's matmul FLOPs
(`model_flops`) and, given `--peak-tflops` (e.g. 989 for an H100's or H200's dense bf16), the model FLOPs
utilisation; with `--config base` (ViT-B/32 + BERT-base, 224 px, 96 tokens) that is the MFU the issue asks for. Results go to docs/benchmarks.md ("## Towers").
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from clipit.models.build import create_model
from clipit.models.export import export_hf
from clipit.models.sizes import CLIP_LOGIT_SCALE_INIT, TextSizes, VisionSizes

CONFIGS = {
    # small enough for a 2-core CPU, big enough that matmuls (not dispatch) dominate
    "small": (
        VisionSizes(
            hidden_size=256,
            num_hidden_layers=4,
            num_attention_heads=4,
            intermediate_size=1024,
            patch_size=16,
            image_size=128,
        ),
        TextSizes(
            vocab_size=8000,
            hidden_size=256,
            num_hidden_layers=4,
            num_attention_heads=4,
            intermediate_size=1024,
            max_position_embeddings=64,
        ),
        32,  # tokens per caption
        128,  # projection_dim
    ),
    "base": (VisionSizes(), TextSizes(vocab_size=32102), 96, 512),  # clip-italian's towers
}


def tokenizer_folder(vocab_size: int, folder: str) -> str:
    from transformers import BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(vocab_size - 5)]
    BertTokenizer(vocab={t: i for i, t in enumerate(vocab)}).save_pretrained(folder)
    return folder


def model_and_batch(config: str, dtype_name: str, batch: int, dropout: float = 0.0):
    """The benchmarked model (seed 0) and one batch: (model, (pixels, input_ids, attention_mask))."""
    vision, text, length, projection_dim = CONFIGS[config]
    text = TextSizes(
        **{**text.__dict__, "hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}
    )
    dtype = jnp.bfloat16 if dtype_name == "bfloat16" else jnp.float32
    model = create_model(vision, text, projection_dim, CLIP_LOGIT_SCALE_INIT, dtype, seed=0)
    rng = np.random.default_rng(0)
    pixels = rng.standard_normal((batch, vision.image_size, vision.image_size, 3), dtype=np.float32)
    ids = rng.integers(5, text.vocab_size, (batch, length)).astype(np.int32)
    ids[:, 0] = 2
    mask = np.ones_like(ids)
    for row in range(batch):  # realistic padding: captions of varying length, [PAD] (id 0) after
        end = rng.integers(length // 3, length + 1)
        mask[row, end:] = 0
        ids[row, end:] = 0
    return model, (pixels, ids, mask)


def jax_functions(model):
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def loss_fn(params, pixels, ids, mask):
        module = nnx.merge(graphdef, params, rest)
        image = module.encode_image(pixels)
        text = module.encode_text(ids, mask)
        logits = jnp.exp(params["logit_scale"][...]) * text @ image.T
        labels = jnp.arange(logits.shape[0])
        per_text = -jnp.take_along_axis(jax.nn.log_softmax(logits, -1), labels[:, None], -1)
        per_image = -jnp.take_along_axis(jax.nn.log_softmax(logits.T, -1), labels[:, None], -1)
        return (per_text.mean() + per_image.mean()) / 2

    train_step = jax.jit(jax.value_and_grad(loss_fn))

    @jax.jit
    def embed(params, pixels, ids, mask):
        module = nnx.merge(graphdef, params, rest)
        return module.encode_image(pixels), module.encode_text(ids, mask)

    return params, train_step, embed


def torch_functions(folder: str, threads: int, dtype_name: str):
    import torch
    from transformers import VisionTextDualEncoderModel

    torch.set_num_threads(threads)
    model = VisionTextDualEncoderModel.from_pretrained(folder)
    if dtype_name == "bfloat16":
        model = model.to(torch.bfloat16)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = model.to(device)

    def to_torch(pixels, ids, mask):
        dtype = torch.bfloat16 if dtype_name == "bfloat16" else torch.float32
        return (
            torch.from_numpy(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2))).to(device, dtype),
            torch.from_numpy(ids).long().to(device),
            torch.from_numpy(mask).long().to(device),
        )

    def train_step(pixels, ids, mask):
        model.train()
        model.zero_grad(set_to_none=True)
        out = model(input_ids=ids, attention_mask=mask, pixel_values=pixels, return_loss=True)
        out.loss.backward()
        if device == "cuda":
            torch.cuda.synchronize()

    def embed(pixels, ids, mask):
        model.eval()
        with torch.inference_mode():
            image = model.get_image_features(pixel_values=pixels).pooler_output
            text = model.get_text_features(input_ids=ids, attention_mask=mask).pooler_output
            out = (image / image.norm(dim=-1, keepdim=True), text / text.norm(dim=-1, keepdim=True))
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    return to_torch, train_step, embed


def pin_to_cores(count: int) -> None:
    """Run the whole process (both sides) on `count` cores, so that "1 thread" holds for XLA too.

    XLA:CPU sizes its thread pool from the cores the process may use when its backend starts (at the
    first jax call, after this), and runs independent ops of a step in parallel: an XLA flag alone
    left it on two cores while PyTorch had one.
    """
    cores = sorted(os.sched_getaffinity(0))
    if count < len(cores):
        os.sched_setaffinity(0, cores[-count:])


def model_flops(vision: VisionSizes, text: TextSizes, length: int, projection_dim: int) -> float:
    """Forward FLOPs per sample of both towers, counted by hand (matmuls only, the usual MFU convention:
    2 per multiply-add; a training step is 3x this). XLA's cost_analysis is no substitute on GPU, where
    it leaves out the cuBLAS/cuDNN custom calls (it reported a tenth of this on an H200)."""

    def blocks(tokens: int, width: int, inner: int, layers: int) -> float:
        dense = 2 * tokens * (4 * width * width + 2 * width * inner)  # Q, K, V, out; the MLP
        attention = 2 * 2 * tokens * tokens * width  # scores and the weighted sum
        return layers * (dense + attention)

    patches = (vision.image_size // vision.patch_size) ** 2
    image = 2 * patches * 3 * vision.patch_size**2 * vision.hidden_size + blocks(
        patches + 1, vision.hidden_size, vision.intermediate_size, vision.num_hidden_layers
    )
    caption = blocks(length, text.hidden_size, text.intermediate_size, text.num_hidden_layers)
    heads = 2 * text.hidden_size**2 + 2 * projection_dim * (vision.hidden_size + text.hidden_size)
    return image + caption + heads


def timed(fn, repeats: int) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) per call, after one untimed call. On a shared machine the CPU
    time of a single-threaded run is the steadier measure: waiting for a core does not count. The
    untimed call lets the other side's worker threads, which spin for a while after their last task
    (OpenMP's and XLA's pools both do), go idle first instead of competing with the timed calls."""
    fn()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - wall) / repeats, (time.process_time() - cpu) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="small")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=10, help="alternating timing rounds per side")
    parser.add_argument("--repeats", type=int, default=2, help="steps per timing round")
    parser.add_argument("--dropout", type=float, default=0.0, help="BERT dropout in the training step")
    parser.add_argument(
        "--threads",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="cores for both sides (the process is pinned to that many) and torch's thread count",
    )
    parser.add_argument("--peak-tflops", type=float, default=0.0, help="device peak, for MFU")
    parser.add_argument(
        "--skip-torch", action="store_true", help="only JAX (e.g. where torch is slow to load)"
    )
    args = parser.parse_args()

    pin_to_cores(args.threads)
    vision, text, length, projection_dim = CONFIGS[args.config]
    model, (pixels, ids, mask) = model_and_batch(args.config, args.dtype, args.batch, args.dropout)
    params, jax_train, jax_embed = jax_functions(model)
    jax_inputs = [jax.device_put(x) for x in (pixels, ids, mask)]

    def run_jax_train():
        jax.block_until_ready(jax_train(params, *jax_inputs))

    def run_jax_embed():
        jax.block_until_ready(jax_embed(params, *jax_inputs))

    flops = jax_train.lower(params, *jax_inputs).compile().cost_analysis()
    flops = (flops[0] if isinstance(flops, list) else flops).get("flops", 0.0)
    sides = {"jax": (run_jax_train, run_jax_embed)}
    if not args.skip_torch:
        with tempfile.TemporaryDirectory() as tmp:
            export_hf(model, f"{tmp}/model", tokenizer_dir=tokenizer_folder(text.vocab_size, f"{tmp}/tok"))
            to_torch, torch_train, torch_embed = torch_functions(f"{tmp}/model", args.threads, args.dtype)
        torch_inputs = to_torch(pixels, ids, mask)
        sides["torch"] = (lambda: torch_train(*torch_inputs), lambda: torch_embed(*torch_inputs))

    times = {(side, kind): [] for side in sides for kind in ("train", "embed")}
    for train, embed in sides.values():  # warm-up: compile, allocate
        train(), train(), embed(), embed()
    for _ in range(args.rounds):  # the two sides back to back for each kind: pairs close in time
        for kind, index in (("train", 0), ("embed", 1)):
            for side, functions in sides.items():
                times[side, kind].append(timed(functions[index], args.repeats))

    print(
        f"config {args.config}, {args.dtype}, batch {args.batch}, {args.threads} threads, "
        f"devices {jax.devices()[0].platform}"
    )
    # median rounds, and the best round: this VM's speed swings by up to 1.8x over seconds (every op of
    # a slow call is slower, the simple loops as much as the GEMMs), so the best round of each side is
    # the steadier estimate of what the code can do; both are printed.
    for kind, label in (("train", "fwd+bwd"), ("embed", "forward")):
        for clock, index, pick in (
            ("wall", 0, statistics.median),
            ("cpu", 1, statistics.median),
            ("best", 0, min),
        ):
            rates = {side: args.batch / pick(t[index] for t in times[side, kind]) for side in sides}
            line = "  ".join(f"{side} {rate:8.1f} samples/s" for side, rate in rates.items())
            ratio = f"  ratio {rates['jax'] / rates['torch']:.2f}x" if "torch" in rates else ""
            print(f"{label:8s} {clock:4s} {line}{ratio}")
        if "torch" in sides:  # each round's ratio of two timings a second apart: the VM's drift cancels
            paired = [t[0] / j[0] for j, t in zip(times["jax", kind], times["torch", kind], strict=True)]
            print(
                f"{label:8s} paired ratio per round: median {statistics.median(paired):.2f}x "
                f"(rounds {min(paired):.2f}-{max(paired):.2f}x)"
            )
    forward = model_flops(vision, text, length, projection_dim)
    print(
        f"model FLOPs per sample (by hand): forward {forward / 1e9:.2f} G, fwd+bwd {3 * forward / 1e9:.2f} G"
    )
    for kind, label, per_sample in (("train", "fwd+bwd", 3 * forward), ("embed", "forward", forward)):
        for side in sides:
            seconds = statistics.median(t[0] for t in times[side, kind])
            achieved = per_sample * args.batch / seconds / 1e12
            mfu = f", MFU {achieved / args.peak_tflops:.1%}" if args.peak_tflops else ""
            print(f"{label:8s} {side:5s} {achieved:8.2f} TFLOP/s{mfu}")
    seconds = statistics.median(t[0] for t in times["jax", "train"])
    print(
        f"(XLA's own count of the jax fwd+bwd step: {flops / 1e9:.1f} GFLOP, {flops / seconds / 1e12:.2f} TFLOP/s; "
        "on GPU it leaves out library calls)"
    )


if __name__ == "__main__":
    main()
