"""Weights in: each checkpoint kind, strictness, old formats, hub ids without network, image sizes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from safetensors.numpy import load_file, save_file
from transformers import BertForMaskedLM

from clipit.errors import ModelError
from clipit.models import build_model, load_dual_encoder
from clipit.models.build import POSITIONS_KEY
from clipit.models.export import hf_state_dict
from clipit.models.vit import interpolate_positions
from tests.support import tiny_hf
from tests.support.tiny_hf import model_config as tiny_model_config


def params_of(model, prefix: str) -> dict[str, np.ndarray]:
    return {k: v for k, v in hf_state_dict(model).items() if k.startswith(prefix)}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_random_init_is_reproducible_and_has_configured_sizes():
    cfg = tiny_model_config(logit_scale_init=3.0)
    a, info = build_model(cfg, seed=7)
    b, _ = build_model(cfg, seed=7)
    c, _ = build_model(cfg, seed=8)
    assert info.vision == info.text == "random init"
    state_a, state_b, state_c = hf_state_dict(a), hf_state_dict(b), hf_state_dict(c)
    assert_same(state_a, state_b)
    assert not np.array_equal(state_a["text_projection.weight"], state_c["text_projection.weight"])
    assert state_a["text_projection.weight"].shape == (tiny_hf.PROJECTION_DIM, 48)
    assert state_a["vision_model.vision_model.embeddings.position_embedding.weight"].shape == (17, 32)
    assert float(a.logit_scale[...]) == pytest.approx(3.0)
    # Built abstractly with a stand-in RNG stream class; the model keeps flax's own streams.
    assert {type(node) for _, node in nnx.iter_graph(a) if isinstance(node, nnx.RngStream)} == {nnx.RngStream}


def test_clip_model_reuse_of_projection_is_a_choice(checkpoints):
    clip = load_file(checkpoints["clip"] / "model.safetensors")
    reused, _ = build_model(tiny_model_config(vision={"pretrained": str(checkpoints["clip"])}))
    fresh, info = build_model(
        tiny_model_config(vision={"pretrained": str(checkpoints["clip"])}, reuse_clip_projection=False)
    )
    other_size, info_other = build_model(
        tiny_model_config(vision={"pretrained": str(checkpoints["clip"])}, projection_dim=24)
    )
    np.testing.assert_array_equal(
        hf_state_dict(reused)["visual_projection.weight"], clip["visual_projection.weight"]
    )
    assert not np.array_equal(
        hf_state_dict(fresh)["visual_projection.weight"], clip["visual_projection.weight"]
    )
    assert info.projections == "random init"
    assert any("does not fit projection_dim 24" in note for note in info_other.notes)
    # the vision tower itself is CLIP's in all three
    for model in (reused, fresh, other_size):
        ours = hf_state_dict(model)["vision_model.vision_model.post_layernorm.weight"]
        np.testing.assert_array_equal(ours, clip["vision_model.post_layernorm.weight"])


def test_clip_vision_keys_with_one_or_two_prefixes_load_the_same(checkpoints, tmp_path):
    """transformers 5 writes `embeddings.…` for CLIPVisionModel, 4.x `vision_model.embeddings.…`."""
    folder = tmp_path / "old_style"
    shutil.copytree(checkpoints["clip_vision"], folder)
    tensors = load_file(folder / "model.safetensors")
    assert not any(k.startswith("vision_model.") for k in tensors)  # what this transformers writes
    save_file(
        {f"vision_model.{k}": v for k, v in tensors.items()}, folder / "model.safetensors", {"format": "pt"}
    )
    a, _ = build_model(tiny_model_config(vision={"pretrained": str(checkpoints["clip_vision"])}))
    b, _ = build_model(tiny_model_config(vision={"pretrained": str(folder)}))
    assert_same(params_of(a, "vision_model."), params_of(b, "vision_model."))


@pytest.mark.parametrize("with_pooler", [True, False])
def test_bert_task_checkpoint_and_pickled_old_names(checkpoints, tmp_path, with_pooler):
    """A BertForMaskedLM `.bin` with `bert.` prefixes, `cls.*` heads and LayerNorm gamma/beta loads;
    without a pooler (masked-LM heads have none) the pooler starts from random init, with a note."""
    reference, _ = build_model(tiny_model_config(text={"pretrained": str(checkpoints["bert"])}))
    state = BertForMaskedLM.from_pretrained(checkpoints["bert"]).state_dict()
    if with_pooler:  # checkpoints converted from Google's TF ones keep the pooler
        bert = load_file(checkpoints["bert"] / "model.safetensors")
        state.update({f"bert.{k}": torch.from_numpy(v) for k, v in bert.items() if k.startswith("pooler.")})
    state = {
        k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
        for k, v in state.items()
    }
    assert any(k.startswith("cls.") for k in state) and any(k.endswith("gamma") for k in state)
    folder = tmp_path / "bert_bin"
    folder.mkdir()
    torch.save(state, folder / "pytorch_model.bin")
    shutil.copy(checkpoints["bert"] / "config.json", folder / "config.json")
    model, info = build_model(tiny_model_config(text={"pretrained": str(folder)}))
    ours, expected = params_of(model, "text_model."), params_of(reference, "text_model.")
    pooler = {k for k in expected if "pooler" in k}
    if with_pooler:
        assert_same(ours, expected)
    else:
        assert_same(
            {k: ours[k] for k in ours.keys() - pooler}, {k: expected[k] for k in expected.keys() - pooler}
        )
        assert not np.array_equal(
            ours["text_model.pooler.dense.weight"], expected["text_model.pooler.dense.weight"]
        )
        assert any("no pooler" in note for note in info.notes)
    assert any("not used" in note for note in info.notes)


def test_whole_dual_encoder_loads_every_tensor(checkpoints):
    model, folder = load_dual_encoder(checkpoints["dual"])
    source = load_file(folder / "model.safetensors")
    ours = hf_state_dict(model)
    assert len(ours) == len(source)
    for key, value in source.items():
        one_prefix = key.startswith("vision_model.") and not key.startswith("vision_model.vision_model.")
        np.testing.assert_array_equal(ours["vision_model." + key if one_prefix else key], value, err_msg=key)


def flax_tree_from_torch(model: torch.nn.Module) -> dict:
    """transformers' Flax layout of a PyTorch model, derived from the module types (not our key table)."""
    modules, tree = dict(model.named_modules()), {}
    for name, tensor in model.state_dict().items():
        module_name, _, leaf = name.rpartition(".")
        module, value = modules.get(module_name), tensor.numpy()
        if isinstance(module, torch.nn.Linear) and leaf == "weight":
            leaf, value = "kernel", value.T
        elif isinstance(module, torch.nn.Conv2d) and leaf == "weight":
            leaf, value = "kernel", value.transpose(2, 3, 1, 0)
        elif isinstance(module, torch.nn.LayerNorm) and leaf == "weight":
            leaf = "scale"
        elif isinstance(module, torch.nn.Embedding):
            leaf = "embedding"
        node = tree
        for part in filter(None, module_name.split(".")):  # top-level tensors (logit_scale) have no module
            node = node.setdefault(part, {})
        node[leaf] = np.array(value, order="C")
    return tree


def test_flax_msgpack_dual_encoder_loads_like_safetensors(checkpoints, tmp_path):
    """clip-italian was trained with transformers' Flax classes and published as flax_model.msgpack."""
    from flax.serialization import msgpack_serialize
    from transformers import VisionTextDualEncoderModel

    folder = tmp_path / "flax"
    shutil.copytree(checkpoints["dual"], folder)
    (folder / "model.safetensors").unlink()
    tree = flax_tree_from_torch(VisionTextDualEncoderModel.from_pretrained(checkpoints["dual"]))
    # transformers 5's CLIPVisionModel holds the embeddings itself; 4.x (and its Flax classes) nested
    # them in a `vision_model` submodule: the published Flax files have two levels
    tree["vision_model"] = {"vision_model": tree["vision_model"]}
    assert "kernel" in tree["vision_model"]["vision_model"]["embeddings"]["patch_embedding"]
    (folder / "flax_model.msgpack").write_bytes(msgpack_serialize(tree))
    from_flax, _ = load_dual_encoder(folder)
    from_safetensors, _ = load_dual_encoder(checkpoints["dual"])
    assert_same(hf_state_dict(from_flax), hf_state_dict(from_safetensors))


def test_init_from_builds_the_whole_model(checkpoints):
    a, info = build_model(tiny_model_config(init_from=str(checkpoints["dual"])))
    b, _ = load_dual_encoder(checkpoints["dual"])
    assert_same(hf_state_dict(a), hf_state_dict(b))
    assert info.tokenizer == str(checkpoints["dual"])


@pytest.mark.parametrize(
    "damage, expected",
    [
        ("missing", "missing 1: text_model.pooler.dense.bias"),
        ("extra", "unexpected 1: text_model.pooler.extra"),
        ("wrong shape", "wrong shape 1: visual_projection.weight [16, 31] != [16, 32]"),
    ],
)
def test_mismatched_checkpoint_is_a_clear_error(checkpoints, tmp_path, damage, expected):
    folder = tmp_path / "damaged"
    shutil.copytree(checkpoints["dual"], folder)
    tensors = load_file(folder / "model.safetensors")
    if damage == "missing":
        del tensors["text_model.pooler.dense.bias"]
    elif damage == "extra":
        tensors["text_model.pooler.extra"] = np.zeros(3, np.float32)
    else:
        tensors["visual_projection.weight"] = tensors["visual_projection.weight"][:, :31].copy()
    save_file(tensors, folder / "model.safetensors", {"format": "pt"})
    with pytest.raises(ModelError, match="weights do not match") as error:
        load_dual_encoder(folder)
    assert expected in error.value.message
    assert str(folder) in error.value.message


def test_unreadable_or_foreign_checkpoints_are_clear_errors(checkpoints, tmp_path):
    with pytest.raises(ModelError, match="no such folder"):
        load_dual_encoder(tmp_path / "nowhere")
    with pytest.raises(ModelError, match="expected 'vision-text-dual-encoder'"):
        load_dual_encoder(checkpoints["bert"])
    with pytest.raises(ModelError, match="must be a CLIP checkpoint"):
        build_model(tiny_model_config(vision={"pretrained": str(checkpoints["bert"])}))
    broken = tmp_path / "broken"
    shutil.copytree(checkpoints["dual"], broken)
    (broken / "model.safetensors").write_bytes(b"\x00" * 40)
    with pytest.raises(ModelError, match="cannot read safetensors"):
        load_dual_encoder(broken)
    cut = (checkpoints["dual"] / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(cut[: len(cut) - 5])  # the last tensor cut short
    with pytest.raises(ModelError, match="cannot read safetensors .*lies outside the file"):
        load_dual_encoder(broken)  # found from the header, before any weight is read
    (broken / "config.json").write_text(json.dumps({"model_type": "vision-text-dual-encoder"})[:-3])
    with pytest.raises(ModelError, match="not valid JSON"):
        load_dual_encoder(broken)


def test_hub_id_without_network_says_to_pass_a_folder(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": "."}
    code = (
        "from clipit.models import load_dual_encoder\n"
        "from clipit.errors import ModelError\n"
        "try:\n    load_dual_encoder('clip-italian/clip-italian')\n"
        "except ModelError as e:\n    print(e.one_line())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "clip-italian/clip-italian: not a local folder" in done.stdout
    assert "pass the local folder" in done.stdout


def test_other_image_size_interpolates_positions(checkpoints, pixels):
    model, info = build_model(
        tiny_model_config(vision={"pretrained": str(checkpoints["clip_vision"]), "image_size": 48})
    )
    source = load_file(checkpoints["clip_vision"] / "model.safetensors")[
        "embeddings.position_embedding.weight"
    ]
    table = hf_state_dict(model)[POSITIONS_KEY]
    assert table.shape == (1 + 6 * 6, 32) and model.vision_sizes.image_size == 48
    np.testing.assert_array_equal(table[0], source[0])  # the CLS position is kept as it is
    assert any("interpolated from 32 px to 48 px" in note for note in info.notes)
    # on the fly for inputs of another size; the table of the native size is returned as it is
    np.testing.assert_allclose(interpolate_positions(jnp.asarray(table), 6, 6), table, atol=1e-6)
    assert model.vision_model.positions_for(4, 4).shape == (17, 32)
    big = jnp.asarray(np.random.default_rng(1).standard_normal((1, 64, 64, 3), dtype=np.float32))
    assert nnx.jit(lambda m, x: m.image_features(x))(model, big).shape == (1, 32)


def test_one_tower_read_now_the_other_later_after_checking_both(checkpoints, tmp_path):
    import jax

    from clipit.models.build import IMAGE_PARTS, TEXT_PARTS, fill_dual_encoder

    full = hf_state_dict(load_dual_encoder(checkpoints["dual"])[0])
    model, folder = load_dual_encoder(checkpoints["dual"], read=IMAGE_PARTS)
    unread = {
        str(path[0])
        for path, variable in nnx.to_flat_state(nnx.state(model, nnx.Param))
        if isinstance(variable.get_value(), jax.ShapeDtypeStruct)
    }
    assert unread == {"text_model", "text_projection", "logit_scale"}  # shapes only: nothing read or drawn
    fill_dual_encoder(model, folder, TEXT_PARTS + ("logit_scale",))
    assert_same(hf_state_dict(model), full)
    # The tower not read is still checked up front: a wrong shape there fails the image-only load.
    damaged = tmp_path / "damaged"
    shutil.copytree(checkpoints["dual"], damaged)
    tensors = load_file(damaged / "model.safetensors")
    tensors["text_projection.weight"] = tensors["text_projection.weight"][:, :-1].copy()
    save_file(tensors, damaged / "model.safetensors", {"format": "pt"})
    with pytest.raises(ModelError, match="wrong shape 1: text_projection.weight"):
        load_dual_encoder(damaged, read=IMAGE_PARTS)


def test_bfloat16_and_sharded_safetensors_load_like_one_float32_file(checkpoints, tmp_path):
    from safetensors.torch import save_file as save_torch

    tensors = load_file(checkpoints["dual"] / "model.safetensors")
    half = {k: torch.from_numpy(v).to(torch.bfloat16) for k, v in tensors.items()}
    folder = tmp_path / "sharded"
    shutil.copytree(checkpoints["dual"], folder)
    (folder / "model.safetensors").unlink()
    names = sorted(half)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for file, keys in shards.items():
        save_torch({k: half[k] for k in keys}, folder / file, {"format": "pt"})
    weight_map = {k: file for file, keys in shards.items() for k in keys}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    ours = hf_state_dict(load_dual_encoder(folder)[0])
    for key, value in half.items():
        one_prefix = key.startswith("vision_model.") and not key.startswith("vision_model.vision_model.")
        np.testing.assert_array_equal(
            ours["vision_model." + key if one_prefix else key], value.float().numpy()
        )
