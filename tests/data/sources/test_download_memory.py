"""`clipit download cc3m` writes its manifest in bounded memory: peak RSS grows by far less per TSV line
than a row held as Python objects.

Each download is a real `clipit download cc3m` subprocess on a CC3M-shaped TSV whose lines share a few
URLs of the loopback image server, so img2dataset fetches a handful of images while the manifest has
every line. The process reports its own peak RSS from /proc (VmHWM; img2dataset's workers are other
processes and not counted).

Measured on 20k and 80k lines (captions of about 70 characters): holding the lines as tuples, the
results as a dict of dataclasses and the manifest as row dicts grew the peak by about 1,600 bytes a
line; the streamed download grows it by about 380 (the lines kept as Arrow columns, the manifest
built and written 8,192 rows at a time), so the bound of 800 holds the streamed code with room and
fails the old one by a factor of two.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.data.sources.helpers import summary_of
from tests.support.cc3m_tsv import write_shared_url_tsv
from tests.support.image_server import fast_download_args
from tests.support.processes import REPO_ROOT

URLS = 6  # distinct images: the download itself stays a few requests whatever the line count
BOUND = 800  # bytes of peak RSS per extra line
DOWNLOAD = textwrap.dedent(
    """
    import sys
    from clipit.cli.main import app
    try:
        app(sys.argv[1:], standalone_mode=False)
    finally:
        peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:")).split()[1]
        print("peak", peak, file=sys.stderr)
    """
)


def download_peak_kb(tsv: Path, out: Path) -> int:
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "PYTHONPATH": str(REPO_ROOT)}
    args = [
        "download",
        "cc3m",
        "--tsv",
        str(tsv),
        "--out",
        str(out),
        *fast_download_args(samples_per_shard=4),
    ]
    result = subprocess.run(
        [sys.executable, "-c", DOWNLOAD, *args], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return int(result.stderr.split("peak")[-1].split()[0])


def test_peak_rss_grows_by_far_less_than_a_row_of_python_objects(tmp_path, image_server):
    small, large = 20_000, 80_000
    peaks = {}
    for lines in (small, large):
        tsv = write_shared_url_tsv(tmp_path / f"gcc-{lines}.tsv", lines, image_server.base_url, URLS)
        peaks[lines] = download_peak_kb(tsv, tmp_path / f"cc3m-{lines}")
        summary = summary_of(tmp_path / f"cc3m-{lines}")
        assert (summary["rows"], summary["ok"]) == (lines, lines)  # every line a row, every image fetched
    assert len(set(image_server.paths())) == URLS
    growth = (peaks[large] - peaks[small]) * 1024 / (large - small)  # bytes of peak RSS per extra line
    print(f"peak RSS growth: {growth:.0f} bytes a line ({peaks[small] >> 10} MB -> {peaks[large] >> 10} MB)")
    assert growth < BOUND, f"{growth:.0f} bytes a line ({peaks[small] >> 10} MB -> {peaks[large] >> 10} MB)"
