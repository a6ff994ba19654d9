"""`clipit download cc3m` against a real loopback image server, through the real img2dataset."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clipit.cli.main import app
from clipit.data.sources import cc3m
from clipit.errors import DataError
from tests.data.sources.helpers import image_of, rows_by_key, summary_of
from tests.support.image_server import fast_download_args, jpeg_bytes
from tests.support.without_package import clipit_without

runner = CliRunner()


def write_tsv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f"{caption}\t{url}\n" for caption, url in rows), encoding="utf-8")
    return path


def test_read_tsv_keeps_quotes_skips_blank_lines_and_numbers_rows_by_line(tmp_path):
    tsv = tmp_path / "gcc.tsv"
    tsv.write_text(
        'a "quoted" caption\thttp://x/1\n\nsecond "\thttp://x/2\nthird\thttp://x/3\n', encoding="utf-8"
    )
    assert cc3m.read_tsv(tsv) == [
        (0, 'a "quoted" caption', "http://x/1"),
        (2, 'second "', "http://x/2"),
        (3, "third", "http://x/3"),
    ]
    assert cc3m.read_tsv(tsv, limit=2) == [
        (0, 'a "quoted" caption', "http://x/1"),
        (2, 'second "', "http://x/2"),
    ]


def test_read_tsv_names_the_line_with_a_wrong_field_count(tmp_path):
    tsv = tmp_path / "gcc.tsv"
    tsv.write_text("ok\thttp://x/1\nextra\ttab\thttp://x/2\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"gcc.tsv: line 2: expected 2 tab-separated fields .* found 3"):
        cc3m.read_tsv(tsv)


def test_download_writes_one_manifest_row_per_line_with_status_and_reason(tmp_path, image_server):
    image_server.slow_seconds = 3.0  # beyond the 1 s timeout of fast_download_args
    lines = [
        ('she said "ciao" and "bye"', image_server.url("ok/80x60/r0")),
        ("a missing image", image_server.url("missing/r1")),
        ("a slow image", image_server.url("slow/r2")),
        ("corrupt bytes", image_server.url("corrupt/r3")),
        ("a big image", image_server.url("ok/512x384/r4")),
        ("a png", image_server.url("png/64x48/r5")),
    ]
    tsv = write_tsv(tmp_path / "gcc.tsv", lines)
    out = tmp_path / "cc3m"
    args = [
        "download",
        "cc3m",
        "--tsv",
        str(tsv),
        "--out",
        str(out),
        *fast_download_args(samples_per_shard=4),
    ]

    result = runner.invoke(app, args)

    assert result.exit_code == 0, result.output
    assert result.stdout == f"{out / 'manifest.parquet'}\n"  # img2dataset's prints went to stderr
    rows = rows_by_key(out)
    assert list(rows) == [f"cc3m/{i}" for i in range(6)]
    assert [rows[f"cc3m/{i}"]["caption_en"] for i in range(6)] == [caption for caption, _ in lines]
    assert all(row["caption"] is None and row["source"] == "cc3m" for row in rows.values())
    assert {k: (r["status"], r["error"]) for k, r in rows.items()} == {
        "cc3m/0": ("ok", None),
        "cc3m/1": ("failed", "download: HTTP Error 404: Not Found"),
        "cc3m/2": ("failed", "download: timed out"),
        "cc3m/3": ("failed", "decode: Image decoding error"),
        "cc3m/4": ("ok", None),
        "cc3m/5": ("ok", None),
    }
    # Shorter side 256, never upscaled; sizes recorded are those of the stored image.
    expected_sizes = {"cc3m/0": (80, 60), "cc3m/4": (341, 256), "cc3m/5": (64, 48)}
    for key, size in expected_sizes.items():
        row = rows[key]
        assert (row["width"], row["height"]) == size
        assert image_of(out, row).size == size
        path = "/" + row["url"].split("/", 3)[3]
        fmt = "PNG" if "/png/" in path else "JPEG"
        assert (
            row["image_sha256"]
            == hashlib.sha256(jpeg_bytes(*map(int, path.split("/")[2].split("x")), path, fmt)).hexdigest()
        )
    summary = summary_of(out)
    assert (summary["rows"], summary["ok"], summary["failed"]) == (6, 3, 3)
    assert summary["failed_by_reason"] == {
        "download: HTTP Error 404: Not Found": 1,
        "download: timed out": 1,
        "decode: Image decoding error": 1,
    }
    assert (out / "config.resolved.toml").is_file()

    # A rerun of a finished download fetches nothing and rebuilds the same manifest.
    requests_before = len(image_server.paths())
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert len(image_server.paths()) == requests_before
    assert rows_by_key(out) == rows

    # Other input into the same folder is refused before anything is touched.
    manifest_bytes = (out / "manifest.parquet").read_bytes()
    refused = runner.invoke(app, [*args, "--limit", "2"])
    assert refused.exit_code == 2
    assert "already holds a download of other input" in refused.stderr
    assert (out / "manifest.parquet").read_bytes() == manifest_bytes


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "CC3M TSV {tsv} does not exist"),
        ("caption only, no tab\n", "{tsv}: line 1: expected 2 tab-separated fields"),
        (b"caption\t\xff\xfe\n", "{tsv}: not UTF-8 text"),
    ],
)
def test_bad_tsv_is_one_line_naming_the_file_and_exit_2(tmp_path, content, expected):
    tsv = tmp_path / "gcc.tsv"
    if isinstance(content, str):
        tsv.write_text(content, encoding="utf-8")
    elif content is not None:
        tsv.write_bytes(content)
    out = tmp_path / "out"
    result = runner.invoke(app, ["download", "cc3m", "--tsv", str(tsv), "--out", str(out)])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: " + expected.format(tsv=tsv))
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_missing_option_values_and_unavailable_distributor_exit_2(tmp_path):
    tsv = write_tsv(tmp_path / "gcc.tsv", [("c", "http://127.0.0.1:9/x.jpg")])
    no_value = runner.invoke(app, ["download", "cc3m", "--tsv", str(tsv), "--out"])
    assert no_value.exit_code == 2
    no_tsv = runner.invoke(app, ["download", "cc3m", "--out", str(tmp_path / "o")])
    assert no_tsv.exit_code == 2
    assert "no CC3M TSV given" in no_tsv.stderr
    ray = clipit_without(  # make install installs ray: a Python that lacks it, for real
        "ray",
        ["download", "cc3m", "--tsv", str(tsv), "--out", str(tmp_path / "o"), "--distributor", "ray"],
        tmp_path,
    )
    assert ray.returncode == 2, ray.stderr
    assert "ray is not installed" in ray.stderr


def test_kill_9_mid_download_then_rerun_loses_and_duplicates_nothing(tmp_path, image_server):
    image_server.delay_seconds = 0.4  # every request: the download is still running when it is killed
    lines = [(f"caption {i}", image_server.url(f"ok/40x30/k{i}")) for i in range(8)]
    tsv = write_tsv(tmp_path / "gcc.tsv", lines)
    out = tmp_path / "cc3m"
    args = [
        "download",
        "cc3m",
        "--tsv",
        str(tsv),
        "--out",
        str(out),
        *fast_download_args(samples_per_shard=2, threads=1),
    ]
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    with open(tmp_path / "stderr.txt", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "clipit.cli.main", *args],
            stdout=log,
            stderr=log,
            env=env,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 180
            while not list((out / "images").glob("*_stats.json")):
                assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()
                assert time.monotonic() < deadline, "no shard finished in time"
                time.sleep(0.05)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            finished = sorted(p.name for p in (out / "images").glob("*_stats.json"))
            assert len(finished) < 4 and not (out / "manifest.parquet").exists()
            time.sleep(2.5)  # an orphaned worker would finish its shard by now
            assert sorted(p.name for p in (out / "images").glob("*_stats.json")) == finished
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

    image_server.delay_seconds = 0.0
    result = runner.invoke(app, args)

    assert result.exit_code == 0, result.output
    rows = rows_by_key(out)
    assert sorted(rows) == sorted(f"cc3m/{i}" for i in range(8))
    assert all(row["status"] == "ok" for row in rows.values())
    assert [rows[f"cc3m/{i}"]["caption_en"] for i in range(8)] == [caption for caption, _ in lines]
    assert len({(row["shard"], row["index"]) for row in rows.values()}) == 8
    assert all(image_of(out, row).size == (40, 30) for row in rows.values())
    requests = Counter(image_server.paths())
    done_before_kill = {int(name.split("_")[0]) for name in finished}
    for i in range(8):
        count = requests[f"/ok/40x30/k{i}"]
        assert count == 1 if i // 2 in done_before_kill else count in (1, 2)  # finished shards are not redone


def test_paths_come_from_the_config_file_and_flags_override_them(tmp_path):
    config = tmp_path / "clipit.toml"
    config.write_text(f'[data.cc3m]\ntsv = "{tmp_path / "from_config.tsv"}"\nout = "{tmp_path / "out"}"\n')
    from_config = runner.invoke(app, ["download", "cc3m", "--config", str(config)])
    assert from_config.exit_code == 2
    assert f"CC3M TSV {tmp_path / 'from_config.tsv'} does not exist" in from_config.stderr
    from_flag = runner.invoke(
        app, ["--config", str(config), "download", "cc3m", "--tsv", str(tmp_path / "flag.tsv")]
    )
    assert from_flag.exit_code == 2
    assert f"CC3M TSV {tmp_path / 'flag.tsv'} does not exist" in from_flag.stderr


def test_rerun_skips_finished_shards_and_overwrite_mode_fetches_everything_again(tmp_path, image_server):
    lines = [(f"caption {i}", image_server.url(f"ok/40x30/o{i}")) for i in range(4)]
    tsv = write_tsv(tmp_path / "gcc.tsv", lines)
    out = tmp_path / "cc3m"
    args = [
        "download",
        "cc3m",
        "--tsv",
        str(tsv),
        "--out",
        str(out),
        *fast_download_args(samples_per_shard=2),
    ]

    assert runner.invoke(app, args).exit_code == 0
    assert runner.invoke(app, args).exit_code == 0  # incremental (the default): nothing fetched again
    assert Counter(image_server.paths()) == {f"/ok/40x30/o{i}": 1 for i in range(4)}

    result = runner.invoke(app, [*args, "--set", "data.download.incremental_mode=overwrite"])

    assert result.exit_code == 0, result.output
    assert Counter(image_server.paths()) == {f"/ok/40x30/o{i}": 2 for i in range(4)}
    rows = rows_by_key(out)
    assert sorted(rows) == [f"cc3m/{i}" for i in range(4)]
    assert all(row["status"] == "ok" and image_of(out, row).size == (40, 30) for row in rows.values())
    assert len({(row["shard"], row["index"]) for row in rows.values()}) == 4
    assert len(list((out / "images").glob("*.tar"))) == 2  # the old shards were replaced, not added to
