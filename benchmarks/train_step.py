"""Training throughput and MFU: clipit's jitted phase-2 step vs transformers' PyTorch model, same batch and loss.

    python benchmarks/train_step.py [--size tiny|small|demo|base] [--dtype float32|bfloat16] [--batch 64]
        [--steps 4] [--rounds 3] [--peak-tflops 989] [--no-torch-compile] [--skip-torch]

`--size base` is CLIP-Italian's model: ViT-B/32 at 224 px + BERT-base (vocabulary 32,102), projection
512, captions of 96 tokens (configs/clip-italian.toml's `max_text_length`); `demo` is configs/tiny.toml
as shipped (patch 16 at 64 px, 16 tokens); `tiny` the smaller-patch shape the demo used before (patch
8, 24 tokens); `small` a 384-wide, 6-block pair at 224 px / patch 32 with 64 tokens.

The step is a full phase-2 step: every parameter trainable, AdamW (weight decay 0.1, betas 0.9/0.98)
with global-norm clipping at 1.0, symmetric InfoNCE, no dropout (fixed batch, same maths on both
sides). `--dtype bfloat16` computes in bf16 with float32 parameters on both sides. The model is built
once by clipit (random init) and exported to an HF VisionTextDualEncoder folder; the reference
(benchmarks/torch_train_step.py) loads that folder in PyTorch and runs it eager and under
`torch.compile`. Every side sees the same batch (captions padded with [PAD] after a random length).
The sides take turns, `--steps` steps each, `--rounds` times, so load from other processes hits all
alike; the median round is reported. torch uses every core (its default).

FLOPs per step are counted by hand (benchmarks/step_flops.py: the towers' matrix products, backward
2x forward, plus the optimizer's per-parameter work); `--peak-tflops` (the device's dense peak for
the dtype, e.g. 989 for an H100's or H200's bf16) turns achieved TFLOP/s into MFU. The same count is
used for every row (PyTorch computes the last blocks' padding rows too; that is not useful work).
Prints one JSON line per row: samples/s, TFLOP/s, MFU and the ratio against each PyTorch row; a row
that cannot run here (torch.compile without a C++ compiler) says why instead.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
from step_flops import step_flops
from torch_train_step import compile_unavailable_reason, timed_first_call, torch_device, torch_train_step

from clipit.config import load_config
from clipit.models.build import build_model
from clipit.models.export import export_hf
from clipit.train.mesh import data_mesh, put_batch, put_replicated
from clipit.train.model_state import split_model
from clipit.train.optim import build_optimizer
from clipit.train.phases import plan_phases
from clipit.train.state import TrainState
from clipit.train.step import init_loss_params, make_train_step

SIZES = {
    "tiny": [
        "model.vision.hidden_size=128",
        "model.vision.num_hidden_layers=4",
        "model.vision.num_attention_heads=4",
        "model.vision.intermediate_size=512",
        "model.vision.patch_size=8",
        "model.vision.image_size=64",
        "model.text.hidden_size=128",
        "model.text.num_hidden_layers=2",
        "model.text.num_attention_heads=4",
        "model.text.intermediate_size=512",
        "model.text.vocab_size=256",
        "model.max_text_length=24",
        "model.projection_dim=64",
    ],
    "small": [
        "model.vision.hidden_size=384",
        "model.vision.num_hidden_layers=6",
        "model.vision.num_attention_heads=6",
        "model.vision.intermediate_size=1536",
        "model.vision.patch_size=32",
        "model.vision.image_size=224",
        "model.text.hidden_size=384",
        "model.text.num_hidden_layers=6",
        "model.text.num_attention_heads=6",
        "model.text.intermediate_size=1536",
        "model.text.vocab_size=1000",
        "model.max_text_length=64",
        "model.projection_dim=256",
    ],
    # CLIP-Italian: the [model] defaults are ViT-B/32 at 224 px and BERT-base; its tokenizer's vocabulary
    "base": ["model.text.vocab_size=32102", "model.max_text_length=96", "model.projection_dim=512"],
}
# A phase-2 step: everything trainable, AdamW with weight decay and global-norm clipping.
PHASE = (
    'train.phases=[{name="all", trainable=[".*"], steps=10000, warmup=0.0, lr=1e-4, optimizer={name="adamw", '
    'b1=0.9, b2=0.98, eps=1e-6, weight_decay=0.1, clip="global_norm", clip_value=1.0}}]'
)


def batch_for(config, batch: int) -> dict[str, np.ndarray]:
    """Normalised pixels and captions of random length: [CLS] first, [PAD] (id 0) after the end."""
    rng = np.random.default_rng(0)
    size, length = config.model.vision.image_size, config.model.max_text_length
    ids = rng.integers(5, config.model.text.vocab_size, (batch, length)).astype(np.int32)
    ids[:, 0] = 2
    mask = np.ones_like(ids)
    for row in range(batch):
        end = rng.integers(max(2, length // 3), length + 1)
        ids[row, end:], mask[row, end:] = 0, 0
    return {
        "pixel_values": rng.normal(size=(batch, size, size, 3)).astype(np.float32),
        "input_ids": ids,
        "attention_mask": mask,
        "caption_id": np.arange(batch, dtype=np.int64),
    }


def clipit_step(config, model, raw):
    """The trainer's own jitted step of the phase, its state and the batch on one device (the PyTorch
    rows run on one), the phase plan and the trainable parameters: (step, state, batch, plan, trainable).
    One device also keeps XLA's cost analysis, which counts one device's share, equal to the step's."""
    parts, params, rest = split_model(model)
    plan = plan_phases(config.train, config.data.loader, sorted(params), 10_000)[0]
    mesh = data_mesh(jax.devices()[:1])
    tx = build_optimizer(plan.optimizer)
    trainable = {k: params[k] for k in sorted(plan.trainable)}
    state = TrainState.create(params, rest, init_loss_params(config.train)).replace(opt=tx.init(trainable))
    step = make_train_step(parts, plan, config.train, tx, mesh)
    return step, put_replicated(mesh, state), put_batch(mesh, raw), plan, trainable


def clipit_runner(step, state, batch):
    """`run(n)`: n steps (the state is donated and replaced each step), then a sync."""
    holder = {"state": state}

    def run(steps: int) -> None:
        metrics = None
        for _ in range(steps):
            holder["state"], metrics = step(holder["state"], batch)
        jax.block_until_ready(metrics)

    return run


def measure(runs: dict, steps: int, rounds: int) -> dict[str, float]:
    """Median seconds per step of each side; the sides take turns, `steps` steps each, `rounds` times."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            started = time.perf_counter()
            run(steps)
            times[name].append((time.perf_counter() - started) / steps)
    return {name: statistics.median(seconds) for name, seconds in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=[*sorted(SIZES), "demo"], default="tiny")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4, help="steps per side per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of turns; the median is reported")
    parser.add_argument("--peak-tflops", type=float, default=0.0, help="device peak for --dtype, for MFU")
    parser.add_argument(
        "--torch-compile",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the PyTorch step under torch.compile",
    )
    parser.add_argument("--skip-torch", action="store_true", help="only clipit's step")
    args = parser.parse_args()
    overrides = [
        *SIZES.get(args.size, []),
        "model.text.dropout=0.0",
        f"model.dtype={args.dtype}",
        f"train.batch_size={args.batch}",
        PHASE,
    ]
    demo_config = Path(__file__).resolve().parents[1] / "configs" / "tiny.toml"
    config = load_config(demo_config if args.size == "demo" else None, overrides)
    model, _ = build_model(config.model)
    raw = batch_for(config, args.batch)
    runs, first_step_s, unavailable = {}, {}, {}
    step, state, batch, plan, trainable = clipit_step(config, model, raw)
    runs["clipit"] = clipit_runner(step, state, batch)
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_torch:
            from transformers import BertTokenizer

            vocab = {f"t{i}": i for i in range(config.model.text.vocab_size)}
            BertTokenizer(vocab=vocab).save_pretrained(f"{tmp}/tokenizer")
            export_hf(model, f"{tmp}/hf", tokenizer_dir=f"{tmp}/tokenizer")
            sides = {"torch eager": False, **({"torch compile": True} if args.torch_compile else {})}
            for name, compiled in sides.items():
                reason = compile_unavailable_reason() if compiled else None
                if reason is None:
                    run = torch_train_step(
                        f"{tmp}/hf", raw, plan.optimizer, lr=plan.lr, dtype_name=args.dtype, compiled=compiled
                    )
                    try:
                        first_step_s[name] = timed_first_call(run)
                    except Exception as exc:  # noqa: BLE001 - inductor's failures are many; the row says which
                        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
                if reason is None:
                    runs[name] = run
                else:
                    unavailable[name] = reason
        first_step_s["clipit"] = timed_first_call(runs["clipit"])
        for run in runs.values():  # one more untimed step each: allocations, caches, thread pools
            run(1)
        seconds = measure(runs, args.steps, args.rounds)
    flops = step_flops(config.model, args.batch, trainable, plan.optimizer)
    common = {
        "size": args.size,
        "dtype": args.dtype,
        "batch": args.batch,
        "jax_device": jax.devices()[0].device_kind,
        "torch_device": None if args.skip_torch else torch_device(),
        "gflop_per_step": round(flops["total"] / 1e9, 3),
        "optimizer_share": round(flops["optimizer"] / flops["total"], 4),
    }
    rates = {name: args.batch / s for name, s in seconds.items()}
    for name in [*runs, *unavailable]:
        row = {"row": name, **common}
        if name in unavailable:
            print(json.dumps({**row, "available": False, "reason": unavailable[name]}))
            continue
        achieved = flops["total"] / seconds[name] / 1e12
        row.update(
            available=True,
            samples_per_s=round(rates[name], 2),
            step_s=round(seconds[name], 4),
            first_step_s=round(first_step_s[name], 2),
            tflops=round(achieved, 4),
            mfu=round(achieved / args.peak_tflops, 4) if args.peak_tflops else None,
        )
        for other, key in (("torch eager", "vs_torch_eager"), ("torch compile", "vs_torch_compile")):
            if other in rates and other != name:
                row[key] = round(rates[name] / rates[other], 3)
        print(json.dumps(row))


if __name__ == "__main__":
    main()
