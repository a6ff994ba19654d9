"""build-shards: source folders -> train/val Parquet shards + manifest.parquet + summary.json.

Order of work, and why it resumes:
1. The plan (plan.py) is computed from the inputs alone (the sources, and the evaluation sets to
   exclude, indexed once by exclude.py); each job (one shard) has a hash of its rows, locations, image
   settings and exclude index.
2. Each job decodes, filters and re-encodes its images, writes its shard atomically, then a small record
   `DIR/.build/<shard>.json` (hash + per-row outcome). A job whose record has the current hash and whose
   shard holds exactly the recorded keys is finished and skipped on a rerun; anything else is redone.
3. The manifest (every input row with its status) and summary.json are written last, atomically.
A kill at any point leaves finished shards and records intact; the rerun redoes only the rest and, the
work being deterministic, ends with the same bytes as one clean run.

Memory stays bounded at any number of rows: the plan keeps compact arrays, a job carries row numbers and
reads its rows itself, and the final manifest is written batch by batch from the inputs and the records.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from clipit import atomic, distribute, folder_lock
from clipit.config.data import ShardSettings
from clipit.console import progress
from clipit.data import manifest, manifest_stream, shard_format
from clipit.data.shards import cleanup, exclude, images, locate, report
from clipit.data.shards.jobs import Job
from clipit.data.shards.plan import CANDIDATE, Plan, code_of, make_plan, reason_of
from clipit.errors import ConfigError, ManifestError

RECORDS = ".build"  # per-shard records of finished jobs


@folder_lock.scoped
def run(cfg: ShardSettings, out: Path | None = None, sources: list[Path] | None = None) -> dict:
    """Build the shards of `sources` (default cfg.sources) into `out` (default cfg.out); return the summary."""
    out = Path(out if out is not None else cfg.out)
    folders = [Path(s) for s in (sources if sources else cfg.sources)]
    if not folders:
        raise ConfigError("build-shards: no source folders", "pass SOURCE_DIR... or set data.shards.sources")
    if out.resolve() in {f.resolve() for f in folders}:
        raise ConfigError(f"build-shards: output folder {out} is also a source", "choose another --out")
    _check_exclude(cfg.exclude, folders, out)
    cleanup.check_out(out)  # a folder of someone else's files is refused before any work
    started = time.perf_counter()
    excluded = exclude.build_index(list(cfg.exclude), cfg.exclude_max_distance)
    plan = make_plan(folders, cfg, excluded)  # reads and checks every input before anything is written
    folder_lock.acquire(out, "build-shards")  # before the clean-ups below touch another run's files
    records = out / RECORDS
    records.mkdir(parents=True, exist_ok=True)
    cleanup.remove_stale(out, records, {job.name for job in plan.jobs})

    near = (
        dataclasses.replace(excluded, sha256=frozenset()) if excluded else None
    )  # jobs need only the pHashes
    settings = images.ImageSettings(
        cfg.image_side, cfg.jpeg_quality, cfg.min_image_side, cfg.max_image_pixels, near
    )
    todo: list[tuple[Job, str]] = []
    for job in plan.jobs:
        if not _finished(out, job):
            todo.append((job, job.digest))
    reused = len(plan.jobs) - len(todo)

    with progress() as bar:
        task = bar.add_task("building shards", total=sum(len(j) for j, _ in todo))
        for job, _ in _execute(todo, settings, out, cfg):
            bar.advance(task, len(job))

    from clipit.data.shards.tokenizer import copy_source_tokenizer  # the tokenizer travels with the data

    copy_source_tokenizer(folders, out)  # before the manifest, which marks a finished build
    tally = _write_manifest(plan, out)
    same_bytes = int(np.count_nonzero(plan.code == code_of(exclude.EVAL_OVERLAP)))
    summary = tally.summarize(folders, plan.jobs, excluded, same_bytes)
    atomic.write_text(out / shard_format.SUMMARY_NAME, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    # not in summary.json, whose bytes must not depend on how the run went
    return {
        **summary,
        "out": str(out),
        "shards_reused": reused,
        "seconds": round(time.perf_counter() - started, 2),
    }


def _check_exclude(entries: list[Path], folders: list[Path], out: Path) -> None:
    """An exclude entry that is also a source or the output would empty the build: a config error."""
    for entry in entries:
        entry = Path(entry)
        folder = entry.parent if entry.is_file() else entry
        if folder.resolve() == out.resolve():
            raise ConfigError(
                f"build-shards: --exclude {entry} is the output folder", "exclude evaluation sets only"
            )
        if folder.resolve() in {f.resolve() for f in folders}:
            raise ConfigError(
                f"build-shards: {entry} is both a source and an --exclude entry (every image of it would be removed)",
                "pass it either as SOURCE_DIR or as --exclude",
            )


def _execute(todo: list[tuple[Job, str]], settings: images.ImageSettings, out: Path, cfg: ShardSettings):
    """Yield (job, outcomes) as jobs finish: one job (one shard) per task of the configured distributor."""
    dist = distribute.Distributor(
        cfg.distributor,
        min(cfg.workers, len(todo)) if len(todo) > 1 else 0,  # one job: no process pool to start
        cfg.ray_address,
        "data.shards.distributor",
    )
    jobs = ((job, digest, settings, str(out), cfg.row_group_size) for job, digest in todo)
    for (job, *_), outcomes in distribute.run(dist, build_job, jobs):
        yield job, outcomes


def build_job(job: Job, digest: str, settings: images.ImageSettings, out: str, row_group_size: int) -> int:
    """Decode and re-encode one job's images, write its shard, then its record; return its rows in the shard.

    The record holds one outcome per row: [key, status, error, index in shard, width, height].
    """
    rows, outcomes = [], []
    with contextlib.ExitStack() as stack:
        files: dict[str, object] = {}
        for candidate in job.candidates():
            location = candidate.location
            try:  # the plan read every file; one can still become unreadable before its job runs
                if isinstance(location, str):
                    raise FileNotFoundError(location)
                if location.path not in files:
                    files[location.path] = stack.enter_context(open(location.path, "rb"))
                handle = files[location.path]
                handle.seek(location.offset)
                result = images.reencode(handle.read(location.size), settings)
            except OSError:
                result = locate.UNREADABLE
            if isinstance(result, str):
                outcomes.append([candidate.key, manifest.STATUS_FILTERED, result, None, None, None])
                continue
            outcomes.append([candidate.key, manifest.STATUS_OK, None, len(rows), result.width, result.height])
            rows.append(
                {
                    "key": candidate.key,
                    "source": candidate.source,
                    "caption": candidate.caption,
                    "caption_en": candidate.caption_en,
                    "image": result.jpeg,
                    "width": result.width,
                    "height": result.height,
                    "image_sha256": candidate.sha256,
                    "meta": candidate.meta,
                }
            )
    table = pa.Table.from_pylist(rows, schema=shard_format.SHARD_SCHEMA)
    shard_format.write_shard(table, Path(out) / job.name, row_group_size=row_group_size)
    record = {"digest": digest, "outcomes": outcomes}
    atomic.write_text(Path(out) / RECORDS / f"{job.name}.json", json.dumps(record, ensure_ascii=False))
    return len(rows)


def _record(out: Path, job: Job) -> list[list] | None:
    """The outcomes recorded for the job with its current digest, or None."""
    try:
        record = json.loads((out / RECORDS / f"{job.name}.json").read_text(encoding="utf-8"))
        outcomes = record["outcomes"]
        if record.get("digest") != job.digest or len(outcomes) != len(job):  # the digest covers the keys
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return outcomes


def _finished(out: Path, job: Job) -> bool:
    """Whether an earlier run finished the job: its record has the current digest and its shard holds
    exactly the recorded keys."""
    outcomes = _record(out, job)
    if outcomes is None:
        return False
    try:
        shard = shard_format.open_shard(out / job.name)
        keys = shard.read(columns=["key"]).column("key").to_pylist()
    except (OSError, ValueError, KeyError, TypeError, IndexError, pa.ArrowException, ManifestError):
        return False
    return keys == [o[0] for o in outcomes if o[1] == manifest.STATUS_OK]


def _write_manifest(plan: Plan, out: Path) -> report.Tally:
    """Every input row: status and error, the new split, and for ok rows where it lives in the shards.

    Written batch by batch in input order. Each split's kept rows come in the order of its jobs, so one
    job's record per split is open at a time.
    """
    tally = report.Tally()
    records = {name: iter([j for j in plan.jobs if j.split == name]) for name in manifest.SPLITS}
    current: dict[str, collections.deque] = {name: collections.deque() for name in manifest.SPLITS}
    with manifest_stream.writer(out / manifest.MANIFEST_NAME) as written:
        for source in plan.inputs:
            row = source.first
            for table in manifest_stream.iter_batches(source.manifest):
                rows = []
                for value in table.to_pylist():
                    split = manifest.SPLITS[plan.split[row]]
                    new = {**value, "split": split, "shard": None, "index": None}
                    code = int(plan.code[row])
                    if code >= 2:
                        new["status"], new["error"] = manifest.STATUS_FILTERED, reason_of(code)
                    elif code == CANDIDATE:
                        queue = current[split]
                        if not queue:
                            queue.extend(_outcomes(out, next(records[split])))
                        name, (key, status, error, index, width, height) = queue.popleft()
                        if key != value["key"]:  # the records belong to another plan
                            raise ManifestError(
                                f"build-shards: the record of {name} is stale", "rerun build-shards"
                            )
                        sha = value["image_sha256"] or plan.shas[row]
                        new.update(
                            status=status, error=error, caption=value["caption"].strip(), image_sha256=sha
                        )
                        if status == manifest.STATUS_OK:
                            new.update(shard=name, index=index, width=width, height=height)
                    rows.append(new)
                    row += 1
                batch = manifest.from_rows(rows)
                written.write(batch)
                tally.add(batch)
    return tally


def _outcomes(out: Path, job: Job) -> list[tuple[str, list]]:
    outcomes = _record(out, job)
    if outcomes is None:  # written by this run a moment ago: only another writer could have removed it
        raise ManifestError(
            f"build-shards: the record of {job.name} is missing or stale", "rerun build-shards"
        )
    return [(job.name, outcome) for outcome in outcomes]
