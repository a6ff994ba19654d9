"""build-shards' memory is bounded: its peak grows by far less per input row than a row held as a dict.

Each build runs in its own process (workers=0, so the jobs run there too), which reports its peak RSS
from /proc (VmHWM: its own memory only; getrusage's ru_maxrss would also count the memory of the test
process it was forked from).
Holding the manifest as Python dicts cost about 4 KB a row; the streamed build keeps about 100 bytes a
row of numpy arrays, so the growth between a small and a five times larger source stays far under 500.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.big_source import write_big_source

REPO = Path(__file__).resolve().parents[2]
BUILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from clipit.config.data import ShardSettings
    from clipit.data import shards
    summary = shards.run(ShardSettings(workers=0, rows_per_shard=2000), Path(sys.argv[2]), [Path(sys.argv[1])])
    peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:")).split()[1]
    print(summary["rows"], summary["ok"], peak)
    """
)


def build_peak_kb(source: Path, out: Path) -> tuple[int, int, int]:
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", BUILD, str(source), str(out)],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    rows, ok, peak = map(int, result.stdout.split()[-3:])
    return rows, ok, peak


def test_peak_rss_grows_by_far_less_than_a_kilobyte_a_row(tmp_path):
    small, large = 20_000, 100_000  # both past the fixed-size batches and row groups
    small_rows, _, small_peak = build_peak_kb(
        write_big_source(tmp_path / "small", small, failed=0.9), tmp_path / "a"
    )
    large_rows, large_ok, large_peak = build_peak_kb(
        write_big_source(tmp_path / "large", large, failed=0.9), tmp_path / "b"
    )
    assert (small_rows, large_rows, large_ok) == (small, large, large // 10)  # every row planned, 10% built
    growth = (large_peak - small_peak) * 1024 / (large - small)  # bytes of peak RSS per extra row
    print(f"peak RSS growth: {growth:.0f} bytes a row")
    assert growth < 500, f"{growth:.0f} bytes a row ({small_peak // 1024} MB -> {large_peak // 1024} MB)"
