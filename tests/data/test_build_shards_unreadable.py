"""An image file or a tar that exists but cannot be read is filtered (`unreadable_image`), not fatal.

The files are made unreadable with chmod 000. Root reads such files anyway, so when the tests run as
root, build-shards runs as the unprivileged user `nobody` (setpriv): the open() then fails with the
same PermissionError a user meets on a file another account owns.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from clipit.data import manifest, synthetic
from tests.support import clipit_cli
from tests.support.synthetic_source import tiny_synthetic_config

SETS = [
    "--set",
    "data.shards.workers=0",
    "--set",
    "data.shards.image_side=32",
    "--set",
    "data.shards.rows_per_shard=50",
]


def _unprivileged() -> tuple[list[str], int, int]:
    """A command prefix that drops root (empty when not root), and the uid/gid that the run has."""
    if os.geteuid() != 0:
        return [], os.getuid(), os.getgid()
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot make a file unreadable")
    nobody = pwd.getpwnam("nobody")
    prefix = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups"]
    return prefix, nobody.pw_uid, nobody.pw_gid


@pytest.fixture
def world(tmp_path_factory):
    """A folder every user can enter (pytest's own temporary folders are private to their owner)."""
    folder = Path(tempfile.mkdtemp(prefix="clipit-unreadable-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _plain_file_source(folder: Path, images: list[Path]) -> None:
    """A source whose rows point at plain image files (as mscoco-it with local images), with image_sha256."""
    (folder / "images").mkdir(parents=True)
    rows = []
    for i, image in enumerate(images):
        shutil.copy(image, folder / "images" / image.name)
        rows.append(
            {
                "key": f"files/{i}",
                "source": "files",
                "caption": f"un'immagine numero {i}",
                "lang": "it",
                "status": manifest.STATUS_OK,
                "split": "train",
                "shard": f"images/{image.name}",
                "index": None,
                "image_sha256": hashlib.sha256(image.read_bytes()).hexdigest(),
            }
        )
    manifest.write(manifest.from_rows(rows), folder / manifest.MANIFEST_NAME)


@pytest.mark.slow
def test_an_unreadable_image_file_and_an_unreadable_tar_are_filtered_with_their_reason(world):
    prefix, uid, gid = _unprivileged()
    tars = world / "tars"
    synthetic.generate(tiny_synthetic_config(n=40, samples_per_shard=20, retrieval_images=4), tars)
    files = world / "files"
    _plain_file_source(files, sorted((tars / "retrieval" / "images").glob("*.jpg")))
    (tars / "00001.tar").chmod(0)
    (files / "images" / "000002.jpg").chmod(0)
    out = world / "shards"
    out.mkdir()
    os.chown(out, uid, gid)  # the run writes its output as that user

    code, stdout, err = clipit_cli.run(
        "build-shards", "--out", "shards", "tars", "files", *SETS, cwd=world, prefix=prefix
    )
    assert code == 0, err
    assert "Error" not in err
    rows = manifest.read(out).to_pylist()
    unreadable = {r["key"] for r in rows if r["error"] == "unreadable_image"}
    assert all(r["status"] == manifest.STATUS_FILTERED for r in rows if r["key"] in unreadable)
    in_second_tar = {r["key"] for r in manifest.read(tars).to_pylist() if r["shard"] == "00001.tar"}
    assert unreadable == in_second_tar | {"files/2"}
    assert all(r["status"] == manifest.STATUS_OK for r in rows if r["key"] not in unreadable)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["filtered"] == {"unreadable_image": len(unreadable)}
    assert stat.S_IMODE((tars / "00001.tar").stat().st_mode) == 0  # the inputs are left as they were
