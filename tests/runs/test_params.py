"""Parameter paths as the checkpoint keys them, and the path examples the docs and hints give."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import clipit
from clipit.config import load_config
from clipit.errors import ConfigError
from clipit.models.build import build_model
from clipit.runs.params import model_params, set_model_params
from clipit.train import model_state
from clipit.train.phases import plan_phases

TINY = Path(clipit.__file__).parent / "configs" / "tiny.toml"


@pytest.fixture(scope="module")
def tiny():
    config = load_config(TINY)
    return config, build_model(config.model, seed=0)[0]


def _quoted_paths(text: str) -> list[str]:
    return [p.removesuffix("...") for p in re.findall(r"'([a-z_]+/[^' ]+)'", text)]


def test_documented_path_examples_are_real_paths(tiny):
    config, model = tiny
    names = sorted(model_params(model))
    with pytest.raises(ConfigError) as caught:
        phases = config.train.phases[0].model_copy(update={"trainable": ["no_such_parameter"]})
        train = config.train.model_copy(update={"phases": [phases]})
        plan_phases(train, config.data.loader, names, 100)
    examples = _quoted_paths(model_state.__doc__) + _quoted_paths(caught.value.one_line())
    assert len(examples) >= 3, examples
    for example in examples:
        assert any(name.startswith(example) for name in names), f"{example!r} is not a parameter path"


def test_set_model_params_puts_checkpoint_values_into_the_model(tiny):
    config, _ = tiny
    model = build_model(config.model, seed=0)[0]
    values = {k: np.full(np.shape(v), 0.25, np.float32) for k, v in model_params(model).items()}
    set_model_params(model, values)
    assert all(np.all(np.asarray(v) == 0.25) for v in model_params(model).values())
    assert float(np.asarray(model.logit_scale.get_value())) == 0.25
