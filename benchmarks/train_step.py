"""Training throughput: clipit's jitted step vs a PyTorch transformers loop, same model, batch and loss.

    python benchmarks/train_step.py [--steps 8] [--batch 64] [--size tiny|small|demo]

`--size demo` is the model of configs/tiny.toml as shipped (what `clipit demo` trains: patch 16 at
64 px, 16 tokens); `tiny` is the smaller-patch shape the demo used before (patch 8, 24 tokens).

The model is built once by clipit (random init) and exported to an HF VisionTextDualEncoder folder;
the reference loads that folder in transformers' PyTorch `VisionTextDualEncoderModel` and trains it
with torch.optim.AdamW on the symmetric InfoNCE loss (no dropout on either side: fixed batch, same
math). Both sides see the same random batch every step; torch uses every core (its default). Prints
one JSON line with samples/s for each and the ratio (clipit / torch).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from clipit.config import load_config
from clipit.models.build import build_model
from clipit.models.export import export_hf
from clipit.train.mesh import data_mesh, put_batch, put_replicated
from clipit.train.model_state import split_model
from clipit.train.optim import build_optimizer
from clipit.train.phases import plan_phases
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
}


def batch_for(config, batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    size, length = config.model.vision.image_size, config.model.max_text_length
    return {
        "pixel_values": rng.normal(size=(batch, size, size, 3)).astype(np.float32),
        "input_ids": rng.integers(5, config.model.text.vocab_size, (batch, length)).astype(np.int32),
        "attention_mask": np.ones((batch, length), np.int32),
        "caption_id": np.arange(batch, dtype=np.int64),
    }


def clipit_rate(config, model, raw, steps: int) -> float:
    parts, params, rest = split_model(model)
    plan = plan_phases(config.train, config.data.loader, sorted(params), 10_000)[0]
    mesh = data_mesh()
    tx = build_optimizer(plan.optimizer)
    state = put_replicated(
        mesh,
        {
            "params": params,
            "rest": rest,
            "opt": tx.init({k: params[k] for k in sorted(plan.trainable)}),
            "phase_step": np.zeros((), np.int32),
            "loss_params": init_loss_params(config.train),
        },
    )
    step = make_train_step(parts, plan, config.train, tx, mesh)
    batch = put_batch(mesh, raw)
    state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    started = time.perf_counter()
    for _ in range(steps):
        state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    return steps * len(raw["caption_id"]) / (time.perf_counter() - started)


def torch_rate(folder: str, raw, steps: int) -> float:
    import torch
    from transformers import VisionTextDualEncoderModel

    model = VisionTextDualEncoderModel.from_pretrained(folder)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.1)
    pixels = torch.from_numpy(raw["pixel_values"].transpose(0, 3, 1, 2).copy())
    ids = torch.from_numpy(raw["input_ids"].astype(np.int64))
    mask = torch.from_numpy(raw["attention_mask"].astype(np.int64))
    labels = torch.arange(len(ids))

    def one_step():
        out = model(input_ids=ids, attention_mask=mask, pixel_values=pixels)
        logits = out.logits_per_image
        loss = (
            torch.nn.functional.cross_entropy(logits, labels)
            + torch.nn.functional.cross_entropy(logits.T, labels)
        ) / 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    one_step()
    started = time.perf_counter()
    for _ in range(steps):
        one_step()
    return steps * len(ids) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", choices=[*sorted(SIZES), "demo"], default="tiny")
    args = parser.parse_args()
    overrides = [
        *SIZES.get(args.size, []),
        "model.text.dropout=0.0",
        f"train.batch_size={args.batch}",
        'train.phases=[{name="all", steps=100, warmup=0.0}]',
    ]
    demo_config = Path(__file__).resolve().parents[1] / "configs" / "tiny.toml"
    config = load_config(demo_config if args.size == "demo" else None, overrides)
    model, _ = build_model(config.model)
    raw = batch_for(config, args.batch)
    with tempfile.TemporaryDirectory() as tmp:
        from transformers import BertTokenizer

        tokenizer_dir = f"{tmp}/tokenizer"
        BertTokenizer(vocab={f"t{i}": i for i in range(config.model.text.vocab_size)}).save_pretrained(
            tokenizer_dir
        )
        export_hf(model, f"{tmp}/hf", tokenizer_dir=tokenizer_dir)
        ours = clipit_rate(config, model, raw, args.steps)
        theirs = torch_rate(f"{tmp}/hf", raw, args.steps)
    print(
        json.dumps(
            {
                "size": args.size,
                "batch": args.batch,
                "devices": jax.device_count(),
                "clipit_samples_per_s": round(ours, 1),
                "torch_samples_per_s": round(theirs, 1),
                "ratio": round(ours / theirs, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
