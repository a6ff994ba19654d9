"""The one img2dataset driver every downloaded source goes through.

A source hands over a table of unique URLs (column `url`, plus our row id `clipit_row`); this module runs
img2dataset into `<out>/images/` (webdataset tars, shorter side resized to `image_size`) and reads back one
`Fetched` per row id from img2dataset's per-shard Parquet files. img2dataset does the parallel fetching,
retries and resizing; what this module adds:

- Resume: img2dataset's incremental mode skips shards whose `NNNNN_stats.json` exists (written last, after
  the tar and Parquet are closed), so a rerun after a kill redoes only unfinished shards. That is only
  sound when the rerun shards the same input the same way, so the URL table is kept as
  `<out>/urls.parquet` and a rerun with other input is refused instead of mixing two downloads.
- Orphans and start-up: workers that die with clipit (after `kill -9` they would go on writing the
  shard the rerun writes) and a progress thread instead of img2dataset's logger process
  (img2dataset_workers.py).
- Output hygiene: img2dataset prints progress to stdout (also from its workers); it is sent to stderr so
  stdout carries only clipit's results. Its SIGINT handler (which exits 0) is undone afterwards.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import math
import os
import shutil
import signal
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from clipit import atomic
from clipit.config.data import DownloadSettings
from clipit.console import warn
from clipit.errors import ConfigError, DataError

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # else albumentations calls the network on import

ROW_COLUMN = "clipit_row"
IMAGES_FOLDER = "images"
_PER_SHARD_KEY = b"clipit.samples_per_shard"
_RESULT_COLUMNS = [
    "key",
    "status",
    "error_message",
    "width",
    "height",
    "original_width",
    "original_height",
    "sha256",
]


@dataclass(frozen=True)
class Fetched:
    """What happened to one URL. `shard` is relative to the source folder; `index` is the tar member key."""

    ok: bool
    error: str | None = None
    shard: str | None = None
    index: int | None = None
    width: int | None = None  # of the stored (resized) image
    height: int | None = None
    original_width: int | None = None
    original_height: int | None = None
    sha256: str | None = None  # of the downloaded bytes, before resizing

    def manifest_fields(self) -> dict:
        """The manifest columns this result fills (status, error, where the image lives)."""
        return {
            "status": "ok" if self.ok else "failed",
            "error": self.error,
            "shard": self.shard,
            "index": self.index,
            "width": self.width,
            "height": self.height,
            "image_sha256": self.sha256,
        }

    @property
    def rate_limited(self) -> bool:
        return not self.ok and any(
            code in (self.error or "") for code in ("HTTP Error 429", "HTTP Error 503")
        )

    def meta(self) -> dict:
        if not self.ok:
            return {}
        return {"original_width": self.original_width, "original_height": self.original_height}


def download_rows(row_urls: list[str | None], out: Path, settings: DownloadSettings) -> list[Fetched]:
    """A result per input row; a URL shared by several rows (one image, many captions) is fetched once.

    URLs refused with HTTP 429/503 (rate limits) are fetched again in later rounds, after waiting
    `rate_limit_wait` seconds, doubled each round (img2dataset's own retries follow at once).
    """
    out = Path(out)
    unique = list(dict.fromkeys(url for url in row_urls if url))
    if settings.incremental_mode == "overwrite":  # done here: img2dataset 1.47.0's own overwrite is broken
        for path in [*out.glob(f"{IMAGES_FOLDER}*"), *out.glob("urls*.parquet")]:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    fetched = download(url_table(unique), out, settings)
    for round_number in range(1, settings.rate_limit_rounds + 1):
        limited = [i for i, result in fetched.items() if result.rate_limited]
        if not limited:
            break
        name = f"{IMAGES_FOLDER}-retry-{round_number}"
        if not (out / name).is_dir():  # a resumed run does not wait again
            wait = settings.rate_limit_wait * 2 ** (round_number - 1)
            warn(
                f"{len(limited)} URLs were rate-limited (HTTP 429/503): retry round {round_number} in {wait:g} s"
            )
            time.sleep(wait)
        fetched.update(download(url_table([unique[i] for i in limited], limited), out, settings, name))
    by_url = {url: fetched[i] for i, url in enumerate(unique)}
    no_url = Fetched(ok=False, error="no image URL")
    return [by_url[url] if url else no_url for url in row_urls]


def url_table(urls: list[str], row_ids: list[int] | None = None) -> pa.Table:
    """The img2dataset input: our row id (default: the position in `urls`) and the URL."""
    ids = range(len(urls)) if row_ids is None else row_ids
    return pa.table({ROW_COLUMN: pa.array(ids, pa.int64()), "url": pa.array(urls, pa.string())})


def download(
    urls: pa.Table, out: Path, settings: DownloadSettings, name: str = IMAGES_FOLDER
) -> dict[int, Fetched]:
    """Download every URL of `urls` into `out/<name>/` and return a result per row id (resumable)."""
    out = Path(out)
    _check_distributor(settings.distributor)
    claim = out / f"{name.replace(IMAGES_FOLDER, 'urls', 1)}.parquet"
    _claim_input(urls, claim, settings.samples_per_shard)
    images = out / name
    if not _finished(images, urls.num_rows, settings.samples_per_shard):
        _run_img2dataset(claim, images, settings)
    return collect(images, urls.column(ROW_COLUMN).to_pylist())


def collect(images: Path, row_ids: list[int]) -> dict[int, Fetched]:
    """Read the results of finished shards; a row of an unfinished shard is a failure saying so."""
    results: dict[int, Fetched] = {}
    for stats in sorted(images.glob("*_stats.json")):
        shard_id = stats.name.split("_")[0]
        parquet, tar = images / f"{shard_id}.parquet", images / f"{shard_id}.tar"
        table = pq.read_table(parquet, columns=[ROW_COLUMN, *_RESULT_COLUMNS])
        members = _tar_member_keys(tar)
        shard = f"{images.name}/{tar.name}"
        for row in table.to_pylist():
            results[row[ROW_COLUMN]] = _fetched(row, shard, members)
    missing = Fetched(ok=False, error="not downloaded: its img2dataset shard did not finish (rerun to retry)")
    return {row_id: results.get(row_id, missing) for row_id in row_ids}


def _fetched(row: dict, shard: str, members: set[int]) -> Fetched:
    status, key = row["status"], int(row["key"])
    if status == "success" and key in members:
        return Fetched(
            ok=True,
            shard=shard,
            index=key,
            width=row["width"],
            height=row["height"],
            original_width=row["original_width"],
            original_height=row["original_height"],
            sha256=row["sha256"],
        )
    if status == "success":
        return Fetched(ok=False, error=f"download: image missing from {shard}")
    stage = "decode" if status == "failed_to_resize" else "download"
    return Fetched(ok=False, error=f"{stage}: {row['error_message'] or status}")


def _tar_member_keys(tar: Path) -> set[int]:
    """Integer keys of the images in a tar (member names `{key}.jpg`)."""
    try:
        with tarfile.open(tar) as archive:
            return {int(name.split(".")[0]) for name in archive.getnames() if name.endswith(".jpg")}
    except (OSError, tarfile.TarError, ValueError):
        return set()  # unreadable tar: its rows become failures instead of pointing at nothing


def _claim_input(urls: pa.Table, path: Path, samples_per_shard: int) -> None:
    """Keep the input beside the download; refuse a rerun that would shard differently (shards would mix)."""
    urls = urls.replace_schema_metadata({_PER_SHARD_KEY: str(samples_per_shard)})
    if path.is_file():
        previous = pq.read_table(path)
        before = (previous.schema.metadata or {}).get(_PER_SHARD_KEY, b"?").decode()
        if not previous.equals(urls) or before != str(samples_per_shard):
            raise DataError(
                f"{path.parent} already holds a download of other input ({previous.num_rows} URLs, "
                f"{before} per shard; now {urls.num_rows}, {samples_per_shard} per shard)",
                "use another --out, or delete that folder to start over",
            )
        return
    atomic.remove_stale_temporaries(path.parent)
    with atomic.atomic_path(path) as tmp:
        pq.write_table(urls, tmp)


def _finished(images: Path, rows: int, samples_per_shard: int) -> bool:
    """Whether every shard has its stats file (then there is nothing for img2dataset to do)."""
    done = {int(p.name.split("_")[0]) for p in images.glob("*_stats.json")}
    return done >= set(range(math.ceil(rows / samples_per_shard)))


def _check_distributor(name: str) -> None:
    # img2dataset's ray distributor silently downloads nothing when ray is missing: check first.
    module = {"pyspark": "pyspark", "ray": "ray"}.get(name)
    if module and importlib.util.find_spec(module) is None:
        raise ConfigError(
            f"data.download.distributor = {name!r} but {module} is not installed",
            "pip install 'clipit-jax[distributed]' and start the cluster first (see docs/distributed.md)",
        )


def _run_img2dataset(input_parquet: Path, images: Path, settings: DownloadSettings) -> None:
    # Heavy (cv2, albumentations, wandb): imported only when downloading. By module name, because the
    # package attribute `img2dataset.main` is the CLI function, not the module.
    importlib.import_module("clipit.data.sources.img2dataset_workers")  # loads img2dataset, without torch
    i2d = importlib.import_module("img2dataset.main")

    previous_sigint = signal.getsignal(signal.SIGINT)
    try:
        with _stdout_to_stderr(), _adapted_workers(i2d, settings.distributor), _spark(settings):
            i2d.download(
                url_list=str(input_parquet),
                input_format="parquet",
                url_col="url",
                save_additional_columns=[ROW_COLUMN],
                output_folder=str(images),
                output_format="webdataset",
                image_size=settings.image_size,
                resize_mode="keep_ratio",  # shorter side = image_size
                resize_only_if_bigger=True,  # never upscale small images
                encode_format="jpg",
                encode_quality=95,
                processes_count=settings.processes,
                thread_count=settings.threads,
                timeout=settings.timeout,
                retries=settings.retries,
                number_sample_per_shard=settings.samples_per_shard,
                incremental_mode="incremental",
                distributor=settings.distributor,
                user_agent_token=settings.user_agent_token,
                compute_hash="sha256",
                extract_exif=False,
                enable_wandb=False,
            )
    except SystemExit:
        raise KeyboardInterrupt from None  # img2dataset's SIGINT handler calls sys.exit(0)
    finally:
        signal.signal(signal.SIGINT, previous_sigint)


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send img2dataset's prints (ours and its child processes') to stderr."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 1)
        os.close(saved)


@contextlib.contextmanager
def _spark(settings: DownloadSettings) -> Iterator[None]:
    """For the pyspark distributor: Python workers that run this interpreter (the default `python3` on
    PATH lacks img2dataset), and a session on `spark_master` when one is set (img2dataset uses the active
    session, else starts local[processes]). A session started here is stopped afterwards."""
    if settings.distributor != "pyspark":
        yield
        return
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if settings.spark_master is None:
        yield
        return
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    session = (
        active or SparkSession.builder.master(settings.spark_master).appName("clipit download").getOrCreate()
    )
    try:
        yield
    finally:
        if active is None:
            session.stop()


@contextlib.contextmanager
def _adapted_workers(i2d, distributor: str) -> Iterator[None]:
    """Swap in clipit's progress thread and, for local processes only, workers that die with clipit."""
    from clipit.data.sources import img2dataset_workers as workers

    saved = i2d.Downloader, i2d.LoggerProcess
    i2d.LoggerProcess = workers.ProgressThread
    if distributor == "multiprocessing":  # cluster workers are not our children
        i2d.Downloader = workers.OrphanSafeDownloader
    try:
        yield
    finally:
        i2d.Downloader, i2d.LoggerProcess = saved
