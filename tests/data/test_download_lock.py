"""One writer per source folder: a second `clipit download` into a folder being written is refused
(exit 2), and the first run's folder ends as one run leaves it."""

from __future__ import annotations

import pytest

from tests.support.folder_race import frozen_while_holding, run, start

SMALL = ["--set", "data.synthetic.zeroshot_per_class=2", "--set", "data.synthetic.retrieval_images=4"]


def synthetic_args(out, n: int, samples_per_shard: int) -> list[str]:
    return ["download", "synthetic", "--out", str(out), "--n", str(n), *SMALL,
            "--set", f"data.synthetic.samples_per_shard={samples_per_shard}"]  # fmt: skip


def outputs(folder) -> dict[str, bytes]:
    """Every file of the source, except the resolved config (it names the output folder)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "config.resolved.toml"
    }


@pytest.mark.slow
def test_a_second_download_into_the_same_folder_is_refused(tmp_path):
    reference = tmp_path / "reference"
    assert run(*synthetic_args(reference, 60, 20)).returncode == 0
    out = tmp_path / "synthetic"
    first = start(*synthetic_args(out, 60, 20))
    with frozen_while_holding(first, out):
        second = run(*synthetic_args(out, 40, 16))
    assert second.returncode == 2, second.stderr
    lines = [line for line in second.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, second.stderr
    assert lines[0].startswith(f"error: clipit download synthetic (pid {first.pid} on ")
    assert f"is already writing to {out}" in lines[0]
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert outputs(out) == outputs(reference)
