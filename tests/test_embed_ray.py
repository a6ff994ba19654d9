"""`embed --out` on a real 2-CPU Ray cluster (one task per shard on actors that load the model once) and
the streaming listing: the same paths and vectors as the single-machine run, resumable, and the folder
listed shard by shard instead of all at once."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from clipit import embed, embed_index
from clipit.config.embed import EmbedConfig
from clipit.errors import ConfigError
from clipit.image_files import iter_images, list_images
from tests.support.images import write_corrupt, write_images
from tests.support.ray_cluster import ray_cluster  # noqa: F401  (fixture)
from tests.support.without_package import clipit_without


def photo_tree(root: Path) -> Path:
    """Names whose sorted order differs from a plain folder-by-folder walk ("a.jpg" < "a/..." < "a0")."""
    write_images(root / "a", [(24, 24), (30, 20)])
    write_images(root, [(26, 28)], prefix="a")  # a00.png: after a/ in path order
    write_images(root / "a-b", [(40, 22), (22, 36)], seed=1)
    write_images(root / "a" / "deep", [(32, 32)], seed=2)
    write_images(root, [(28, 30)], prefix="a.", seed=3)  # a.00.png: before a/ ("." < "/")
    write_images(root / ".hidden", [(20, 20)])
    write_corrupt(root / "a-b" / "broken.jpg")
    write_images(root / "z", [(30, 30), (20, 40), (36, 24)], seed=4)
    os.symlink(root / "z", root / "link-to-z")  # a link to a folder: not followed, like os.walk
    return root


def folder_contents(out: Path) -> tuple[np.ndarray, list[str], dict, str]:
    vectors, paths, record = embed_index.read(out)
    failed = "".join(p.read_text() for p in sorted((out / "failed").glob("*.tsv")))
    return vectors, paths, record, failed


def test_iter_images_is_list_images_in_order(tmp_path):
    root = photo_tree(tmp_path / "photos")
    assert list(iter_images(root)) == list_images(root)
    assert len(list_images(root)) == 11


@pytest.mark.slow
@pytest.mark.model
def test_ray_embed_equals_local_and_resumes(tiny_model, tmp_path, ray_cluster):  # noqa: F811
    root = photo_tree(tmp_path / "photos")
    common = {"images": root, "model": str(tiny_model), "shard_size": 3, "batch_size": 2}
    local = embed.run(EmbedConfig(**common, out=tmp_path / "local"), None)
    on_ray = EmbedConfig(**common, out=tmp_path / "ray", distributor="ray", ray_workers=2)
    summary = embed.run(on_ray, None)
    assert summary["shards"] == summary["shards_written"] == 4 and summary["rows"] == local["rows"] == 10
    l_vectors, l_paths, l_record, l_failed = folder_contents(tmp_path / "local")
    r_vectors, r_paths, r_record, r_failed = folder_contents(tmp_path / "ray")
    listed = [p.relative_to(root).as_posix() for p in list_images(root)]
    assert r_paths == l_paths == [p for p in listed if p != "a-b/broken.jpg"]  # the unreadable one
    np.testing.assert_allclose(r_vectors, l_vectors, atol=2e-3)
    assert r_record == l_record and r_failed == l_failed and "a-b/broken.jpg" in r_failed

    # An interrupted run: shard 1 never got its metadata (the "done" mark). Only it is embedded again.
    kept = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "ray" / "metadata").iterdir()}
    embed_index.metadata_file(tmp_path / "ray", 1).unlink()
    again = embed.run(on_ray, None)
    assert (again["shards_written"], again["shards_resumed"]) == (1, 3)
    for name, mtime in kept.items():
        if name != "metadata_0001.parquet":
            assert (tmp_path / "ray" / "metadata" / name).stat().st_mtime_ns == mtime
    assert folder_contents(tmp_path / "ray")[1] == l_paths


class WatchedListing:
    """A listing that records, each time a file is handed out, which shards were already finished."""

    def __init__(self, root: Path, out: Path):
        self.paths, self.out, self.seen = list_images(root), out, []

    def __iter__(self):
        for path in self.paths:
            self.seen.append(len(list((self.out / "metadata").glob("*.parquet"))))
            yield path


@pytest.mark.model
def test_embed_out_lists_shard_by_shard(encoder, tmp_path):
    root = photo_tree(tmp_path / "photos")
    listing = WatchedListing(root, tmp_path / "index")
    embed_index.write(encoder, root, listing, tmp_path / "index", batch_size=4, shard_size=3)
    second_pass = listing.seen[11:]  # the first pass only hashes each shard's names
    # the files of shard s are taken once shards 0..s-1 are written: one shard's names at a time
    assert second_pass == [i // 3 for i in range(11)]
    record = json.loads((tmp_path / "index" / "embed.json").read_text())
    assert record["files"] == 11
    assert pq.read_metadata(embed_index.metadata_file(tmp_path / "index", 3)).num_rows == 2


def test_ray_distributor_needs_out(tmp_path):
    cfg = EmbedConfig(images=tmp_path, model="m", distributor="ray")
    with pytest.raises(ConfigError, match="embed.distributor = 'ray' is for --out DIR"):
        embed.check_inputs(cfg, open(os.devnull, "wb"))


def test_ray_not_installed_is_refused_before_the_model_loads(tmp_path):
    write_images(tmp_path / "photos", [(20, 20)])
    args = [
        "embed",
        str(tmp_path / "photos"),
        "--model",
        str(tmp_path / "no-model"),
        "--out",
        str(tmp_path / "i"),
    ]
    result = clipit_without("ray", [*args, "--distributor", "ray"], tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "embed.distributor = 'ray' but ray is not installed" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "i" / "img_emb").exists()
