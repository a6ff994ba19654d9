"""The checkpoint's on-disk tree is the dict of the train state's five names: a TrainState saves and
restores through it unchanged, and a tree written in that dict layout restores into a TrainState."""

from __future__ import annotations

import numpy as np
import optax

from clipit.runs.checkpoints import FORMAT_VERSION, RunCheckpoints
from clipit.runs.layout import checkpoint_dir, has_checkpoints, is_run_dir
from clipit.train.state import FIELDS, TrainState


def _state() -> TrainState:
    rng = np.random.default_rng(0)
    params = {
        "logit_scale": np.float32(2.5),
        "visual_projection/kernel": rng.normal(size=(4, 3)).astype(np.float32),
    }
    rest = {"rngs/dropout/key": np.array([1, 2], np.uint32), "rngs/dropout/count": np.array(7, np.uint32)}
    opt = optax.adam(1e-3).init(params)
    return TrainState(
        params=params,
        rest=rest,
        opt=opt,
        phase_step=np.array(5, np.int32),
        loss_params={"logit_bias": np.float32(-10)},
    )


def _assert_equal(a, b) -> None:
    import jax

    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_train_state_round_trips_through_the_dict_layout_on_disk(tmp_path):
    state = _state()
    assert list(state.as_tree()) == list(FIELDS) == ["params", "rest", "opt", "phase_step", "loss_params"]
    checkpoints = RunCheckpoints(tmp_path, keep=2)
    try:
        checkpoints.save(3, state.as_tree(), {"phase": 1, "phase_step": 5, "loader": None, "val_loss": 0.5})
        assert checkpoints.read_meta(3)["format_version"] == FORMAT_VERSION
        blank = TrainState.from_tree({k: _zeros(v) for k, v in state.as_tree().items()})
        restored = TrainState.from_tree(checkpoints.restore_state(3, blank.as_tree()))
    finally:
        checkpoints.close()
    _assert_equal(restored, state)
    # a checkpoint written as a plain dict of those names (the format's own layout) reads the same way
    plain = {name: getattr(state, name) for name in FIELDS}
    other = tmp_path / "plain"
    checkpoints = RunCheckpoints(other)
    try:
        checkpoints.save(1, plain, {"phase": 0, "phase_step": 1, "loader": None, "val_loss": None})
        _assert_equal(TrainState.from_tree(checkpoints.restore_state(1, plain)), state)
    finally:
        checkpoints.close()
    reader = RunCheckpoints(other, read_only=True)  # what eval and export open
    try:
        _assert_equal(reader.restore_params(1, state.params), state.params)
    finally:
        reader.close()


def _zeros(tree):
    import jax

    return jax.tree.map(lambda x: np.zeros_like(np.asarray(x)), tree)


def test_run_folder_detection(tmp_path):
    run = tmp_path / "run"
    assert not is_run_dir(run) and not has_checkpoints(run)
    checkpoint_dir(run).mkdir(parents=True)
    assert not is_run_dir(run), "no resolved config yet"
    (run / "config.resolved.toml").write_text("")
    assert is_run_dir(run) and not has_checkpoints(run)
    (checkpoint_dir(run) / "12").mkdir()
    assert has_checkpoints(run)
    hf_folder = tmp_path / "hf"
    hf_folder.mkdir()
    (hf_folder / "config.json").write_text("{}")
    assert not is_run_dir(hf_folder)
