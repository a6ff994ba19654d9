"""translate's memory is bounded: its peak grows by far less per manifest row than a row held whole.

Each run is its own process, which reports its peak RSS from /proc (VmHWM: its own memory only); the
loopback Libre server runs in the test process, so its bookkeeping is not counted. Holding the manifest
and its columns as Python lists cost about 1.1 KB a row; in chunks, about 100 bytes (the 8-byte ids
that prove the keys unique, and the Arrow and allocator overhead of reading and writing row groups).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from clipit.data import manifest_stream
from tests.support.libre_server import LibreServer

REPO = Path(__file__).resolve().parents[3]
DISTINCT = 2_000  # captions repeat, so both sizes send the same few requests
TRANSLATE = textwrap.dedent(
    """
    import sys
    from clipit.config.translate import TranslateConfig
    from clipit.data.translate import runner
    cfg = TranslateConfig(input=sys.argv[1], output=sys.argv[2], backend="libre", endpoint=sys.argv[3],
                          cache=sys.argv[4], requests_per_second=1e6, sample=20)
    summary = runner.run(cfg)
    peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:")).split()[1]
    print(summary.rows_translated, summary.unique_texts, peak)
    """
)


def _write_manifest(path: Path, rows: int) -> Path:
    with manifest_stream.writer(path) as out:
        for start in range(0, rows, manifest_stream.ROW_GROUP_ROWS):
            out.write_rows(
                {
                    "key": f"cc3m/{i:07d}",
                    "source": "cc3m",
                    "caption_en": f"a small red dog and the big blue house n{i % DISTINCT}",
                    "status": "ok",
                    "split": "train",
                    "meta": {"width": 640, "height": 480},
                }
                for i in range(start, min(rows, start + manifest_stream.ROW_GROUP_ROWS))
            )
    return path


def translate_peak_kb(server: LibreServer, folder: Path, rows: int) -> tuple[int, int, int]:
    folder.mkdir()
    source = _write_manifest(folder / "in.parquet", rows)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-c", TRANSLATE, str(source), str(folder / "out.parquet"), server.url,
               str(folder / "cache.sqlite")]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    filled, unique, peak = map(int, result.stdout.split()[-3:])
    return filled, unique, peak


def test_peak_rss_grows_by_far_less_than_a_kilobyte_a_row(tmp_path):
    small, large = 20_000, 100_000  # both many chunks
    with LibreServer() as server:
        small_filled, small_unique, small_peak = translate_peak_kb(server, tmp_path / "a", small)
        large_filled, large_unique, large_peak = translate_peak_kb(server, tmp_path / "b", large)
    assert (small_filled, large_filled, small_unique, large_unique) == (small, large, DISTINCT, DISTINCT)
    growth = (large_peak - small_peak) * 1024 / (large - small)  # bytes of peak RSS per extra row
    print(f"peak RSS growth: {growth:.0f} bytes a row")
    assert growth < 400, f"{growth:.0f} bytes a row ({small_peak // 1024} MB -> {large_peak // 1024} MB)"
