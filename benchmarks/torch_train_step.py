"""The PyTorch reference of benchmarks/train_step.py: one training step of transformers' model.

transformers' `VisionTextDualEncoderModel`, loaded from clipit's HF export of the same weights, trained
on the same batch with the same loss (symmetric InfoNCE over `logits_per_image`), the same optimizer
(AdamW with clipit's weight-decay mask, global-norm clipping) and the same precision: float32
parameters, and with bfloat16 the matrix products under `torch.autocast` (clipit's `model.dtype`
means the same: compute in bf16, parameters stay float32). `compiled=True` runs the model and the loss
under `torch.compile` (inductor); the optimizer is PyTorch's fused AdamW either way.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from clipit.config.train import OptimizerSettings
from clipit.train.optim import decay_mask


def torch_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def torch_train_step(
    folder: str,
    raw: dict[str, np.ndarray],
    settings: OptimizerSettings,
    *,
    lr: float,
    dtype_name: str,
    compiled: bool,
) -> Callable[[int], None]:
    """`run(n)`: n training steps on the batch `raw` (NHWC float pixels, ids, mask), then a sync."""
    import torch
    from transformers import VisionTextDualEncoderModel

    device = torch_device()
    model = VisionTextDualEncoderModel.from_pretrained(folder).to(device)
    model.train()
    named = dict(model.named_parameters())
    decay = decay_mask(named)  # torch tensors have .ndim; HF names hit the same no-decay patterns
    groups = [
        {"params": [p for n, p in named.items() if decay[n]], "weight_decay": settings.weight_decay},
        {"params": [p for n, p in named.items() if not decay[n]], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(
        groups, lr=lr, betas=(settings.b1, settings.b2), eps=settings.eps, fused=True
    )
    pixels = torch.from_numpy(np.ascontiguousarray(raw["pixel_values"].transpose(0, 3, 1, 2))).to(device)
    ids = torch.from_numpy(raw["input_ids"].astype(np.int64)).to(device)
    mask = torch.from_numpy(raw["attention_mask"].astype(np.int64)).to(device)
    labels = torch.arange(len(ids), device=device)
    bf16 = dtype_name == "bfloat16"

    def loss_of(ids, mask, pixels):
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
            logits = model(input_ids=ids, attention_mask=mask, pixel_values=pixels).logits_per_image
        logits = logits.float()
        return (
            torch.nn.functional.cross_entropy(logits, labels)
            + torch.nn.functional.cross_entropy(logits.T, labels)
        ) / 2

    forward = torch.compile(loss_of) if compiled else loss_of

    def run(steps: int) -> None:
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            forward(ids, mask, pixels).backward()
            if settings.clip == "global_norm":
                torch.nn.utils.clip_grad_norm_(model.parameters(), settings.clip_value, foreach=True)
            optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()

    return run


def compile_unavailable_reason() -> str | None:
    """Why `torch.compile` cannot run here, or None: inductor's CPU kernels need a C++ compiler, and on
    a GPU Triton builds its kernel launcher with a C compiler."""
    import shutil

    if torch_device() == "cpu":
        if not (shutil.which("g++") or shutil.which("clang++")):
            return "torch.compile on the CPU needs a C++ compiler (g++ or clang++), none on PATH"
    elif not any(shutil.which(name) for name in ("cc", "gcc", "clang")):
        return "torch.compile on a GPU needs a C compiler for Triton (cc, gcc or clang), none on PATH"
    return None


def timed_first_call(run: Callable[[int], None]) -> float:
    """Seconds of the first step (for a compiled step: tracing and compilation)."""
    started = time.perf_counter()
    run(1)
    return time.perf_counter() - started
