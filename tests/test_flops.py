"""The hand count of a training step's FLOPs (benchmarks/step_flops.py) against XLA's own count.

XLA's `cost_analysis()` of the compiled step on the CPU counts every operation it runs, matrix products
(2 per multiply-add) and elementwise work alike. The hand count leaves out LayerNorms, activations and
softmaxes, so the two agree within a few percent at a width where products dominate. The optimizer's
count is compared alone, where nothing is left out (XLA reports the square root as a transcendental).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import jax
import numpy as np
import optax
import pytest

from clipit.config import load_config
from clipit.config.train import OptimizerSettings
from clipit.models.build import build_model
from clipit.train.optim import build_optimizer

# the benchmark scripts import each other as top-level modules, as `python benchmarks/x.py` runs them
sys.path.append(str(Path(__file__).resolve().parents[1] / "benchmarks"))
import step_flops  # noqa: E402
from train_step import PHASE, batch_for, clipit_step  # noqa: E402

TINY = [  # two blocks per tower, so the [CLS]-only last block is half of each tower
    "model.vision.hidden_size=128",
    "model.vision.num_hidden_layers=2",
    "model.vision.num_attention_heads=4",
    "model.vision.intermediate_size=512",
    "model.vision.patch_size=8",
    "model.vision.image_size=32",
    "model.text.hidden_size=128",
    "model.text.num_hidden_layers=2",
    "model.text.num_attention_heads=4",
    "model.text.intermediate_size=512",
    "model.text.vocab_size=128",
    "model.text.dropout=0.0",
    "model.max_text_length=16",
    "model.projection_dim=64",
    "train.batch_size=8",
    PHASE,
]


def xla_flops(jitted, *args) -> tuple[float, float]:
    """(flops, transcendentals) of the compiled function."""
    cost = jitted.lower(*args).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return cost["flops"], cost.get("transcendentals", 0.0)


@pytest.mark.model
def test_step_count_matches_xla_within_ten_percent(monkeypatch):
    config = load_config(None, TINY)
    model, _ = build_model(config.model)
    step, state, batch, plan, trainable = clipit_step(config, model, batch_for(config, 8))
    flops, _ = xla_flops(step, state, batch)  # the jitted step the benchmark times, for its real inputs

    count = step_flops.step_flops(config.model, 8, trainable, plan.optimizer)
    assert count["backward"] == 2 * count["forward"]
    assert count["total"] == pytest.approx(flops, rel=0.10)

    # the test tells: counting every row of the last blocks (the step computes [CLS] alone) is off
    def whole_blocks(tokens, width, inner, layers):
        return layers * step_flops.block_flops(tokens, width, inner)

    monkeypatch.setattr(step_flops, "tower_flops", whole_blocks)
    wrong = step_flops.step_flops(config.model, 8, trainable, plan.optimizer)
    assert wrong["total"] > 1.2 * flops


@pytest.mark.parametrize(
    ("settings", "tolerance"),
    [
        # XLA computes the clipped gradient once more in a second fusion: one op per parameter more
        (OptimizerSettings(weight_decay=0.1, clip="global_norm", clip_value=1.0), 0.06),
        (OptimizerSettings(weight_decay=0.1, clip="none"), 0.01),
        (OptimizerSettings(weight_decay=0.0, clip="none"), 0.01),
    ],
    ids=["adamw-clip", "adamw", "adam"],
)
def test_optimizer_count_matches_xla(settings, tolerance):
    """The optimizer update and apply as clipit's step writes them, with the grad_norm metric."""
    params = {
        "layer/kernel": np.ones((300, 200), np.float32),  # decayed
        "layer/bias": np.ones((200,), np.float32),  # not decayed (name and ndim)
        "norm/scale": np.ones((300,), np.float32),
        "logit_scale": np.ones((), np.float32),
    }
    tx = build_optimizer(settings)

    def update(grads, opt_state, params):
        updates, opt_state = tx.update(grads, opt_state, params)
        new = optax.apply_updates(params, jax.tree.map(lambda u: -1e-3 * u, updates))
        return new, opt_state, optax.tree.norm(grads)

    flops, transcendentals = xla_flops(jax.jit(update), params, tx.init(params), params)
    assert step_flops.optimizer_flops(params, settings) == pytest.approx(
        flops + transcendentals, rel=tolerance
    )


def test_optimizer_count_refuses_what_it_does_not_cover():
    with pytest.raises(ValueError, match="adabelief"):
        step_flops.optimizer_flops({"w": (2, 2)}, OptimizerSettings(name="adabelief"))


def test_torch_compile_row_says_why_without_a_compiler(tmp_path, monkeypatch):
    """Without a compiler on PATH the benchmark reports the compiled row as unavailable, and why."""
    from torch_train_step import compile_unavailable_reason

    cpp = shutil.which("g++") or shutil.which("clang++")  # the CPU's requirement (tests run on CPUs)
    assert (compile_unavailable_reason() is None) == bool(cpp)
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no compiler at all
    assert "compiler" in compile_unavailable_reason()
