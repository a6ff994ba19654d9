"""`clipit download synthetic` killed with SIGKILL at several points, each rerun going on from the last.

Every rerun must start (a kill while an eval set's folder was being written used to leave a temporary
folder that no rerun could remove), and the last one must leave exactly the files of one clean run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import clipit_cli

ARGS = (
    "--n",
    "60",
    "--seed",
    "3",
    "--set",
    "data.synthetic.samples_per_shard=20",
    "--set",
    "data.synthetic.zeroshot_per_class=12",
    "--set",
    "data.synthetic.retrieval_images=300",
)


def _temp_folder(out: Path, name: str):
    """True once a clipit temporary folder for `name` (an atomic_folder being written) exists."""
    return lambda: any(p.is_dir() for p in out.glob(f".*{name}*.tmp"))


@pytest.mark.slow
def test_kills_while_drawing_and_while_writing_each_eval_set_all_rerun_to_a_clean_result(tmp_path):
    code, _, err = clipit_cli.run("download", "synthetic", "--out", "clean", *ARGS, cwd=tmp_path)
    assert code == 0, err
    clean = clipit_cli.tree_bytes(tmp_path / "clean")

    out = tmp_path / "killed"
    points = [
        lambda: (out / "00000_stats.json").is_file(),  # one training shard finished, the others not
        _temp_folder(out, "zeroshot"),
        _temp_folder(out, "retrieval"),
    ]
    for ready in points:  # each run is a rerun of the killed one before it
        process = clipit_cli.start("download", "synthetic", "--out", "killed", *ARGS, cwd=tmp_path)
        clipit_cli.kill_when(process, ready)
    assert any(p.is_dir() for p in out.glob(".*.tmp")), "the last kill left no temporary folder to clean up"

    code, stdout, err = clipit_cli.run("download", "synthetic", "--out", "killed", *ARGS, cwd=tmp_path)
    assert code == 0, err
    assert stdout.strip() == "killed/manifest.parquet"
    assert clipit_cli.tree_bytes(out) == clean  # also: no temporary file or folder is left
