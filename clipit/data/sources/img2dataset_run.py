"""The one img2dataset driver every downloaded source goes through.

A source hands over a table of unique URLs (column `url`, plus our row id `clipit_row`); this module runs
img2dataset into `<out>/images/` (webdataset tars, shorter side resized to `image_size`) and reads back a
results table (clipit.data.sources.fetched) from img2dataset's per-shard Parquet files. img2dataset does
the parallel fetching, retries and resizing; what this module adds:

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
import math
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from clipit import atomic
from clipit.config.data import DownloadSettings
from clipit.console import warn
from clipit.data.sources import fetched
from clipit.distribute import installed
from clipit.errors import ConfigError, DataError

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # else albumentations calls the network on import

ROW_COLUMN = fetched.ROW_COLUMN
IMAGES_FOLDER = "images"
_PER_SHARD_KEY = b"clipit.samples_per_shard"


def download_rows(
    row_urls: pa.Array | pa.ChunkedArray, out: Path, settings: DownloadSettings
) -> fetched.RowResults:
    """A result per input row (`row_urls`: a string array, null for a row without URL); a URL shared by
    several rows (one image, many captions) is fetched once.

    URLs refused with HTTP 429/503 (rate limits) are fetched again in later rounds, after waiting
    `rate_limit_wait` seconds, doubled each round (img2dataset's own retries follow at once).
    Unique URLs keep the order of their first row (Arrow's hash `unique`, not a dict of strings).
    """
    out = Path(out)
    row_urls = pc.if_else(pc.equal(row_urls, ""), None, row_urls)  # "" is no URL
    unique = pc.unique(row_urls).drop_null()
    image_of_row = pc.index_in(row_urls, value_set=unique)
    if settings.incremental_mode == "overwrite":  # done here: img2dataset 1.47.0's own overwrite is broken
        for path in [*out.glob(f"{IMAGES_FOLDER}*"), *out.glob("urls*.parquet")]:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    results = download(url_table(unique), out, settings)
    for round_number in range(1, settings.rate_limit_rounds + 1):
        limited = fetched.rate_limited(results)
        if not limited.size:
            break
        name = f"{IMAGES_FOLDER}-retry-{round_number}"
        if not (out / name).is_dir():  # a resumed run does not wait again
            wait = settings.rate_limit_wait * 2 ** (round_number - 1)
            warn(
                f"{limited.size} URLs were rate-limited (HTTP 429/503): retry round {round_number} in {wait:g} s"
            )
            time.sleep(wait)
        retried = download(url_table(unique.take(pa.array(limited)), limited), out, settings, name)
        results = fetched.replace(results, retried)
    return fetched.RowResults(results, image_of_row)


def url_table(urls: pa.Array | list[str], row_ids: np.ndarray | None = None) -> pa.Table:
    """The img2dataset input: our row id (default: the position in `urls`) and the URL."""
    ids = np.arange(len(urls)) if row_ids is None else row_ids
    return pa.table({ROW_COLUMN: pa.array(ids, pa.int64()), "url": pa.array(urls, pa.string())})


def download(urls: pa.Table, out: Path, settings: DownloadSettings, name: str = IMAGES_FOLDER) -> pa.Table:
    """Download every URL of `urls` into `out/<name>/` and return its results table (resumable)."""
    out = Path(out)
    _check_distributor(settings.distributor)
    claim = out / f"{name.replace(IMAGES_FOLDER, 'urls', 1)}.parquet"
    _claim_input(urls, claim, settings.samples_per_shard)
    images = out / name
    if not _finished(images, urls.num_rows, settings.samples_per_shard):
        _run_img2dataset(claim, images, settings)
    return fetched.collect(images, urls.column(ROW_COLUMN).to_numpy())


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
    if module and not installed(module):
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
