"""The embedded folder (`clipit embed --out DIR`): its layout, writing it shard by shard, reading it back.

The layout is clip-retrieval's, plus a record of what was embedded:

    DIR/embed.json                      format, model (absolute path or hub id), dtype, root (absolute),
                                        file count, shard size, dimension
    DIR/img_emb/img_emb_0000.npy        float16 [rows, D], L2-normalised
    DIR/metadata/metadata_0000.parquet  column image_path (relative to the root), one row per vector
    DIR/failed/failed_0000.tsv          path<TAB>reason of the shard's unreadable files (when any)
    DIR/ann/img_emb.usearch             ANN index of all the vectors, from embed.ann_threshold rows on
                                        (clipit.ann; its parameters under "ann" in embed.json)

Shard i covers files [i*shard_size, (i+1)*shard_size) of the sorted listing. Its files are written
atomically, the metadata last: a shard is done when its metadata exists, so a run killed at any point
resumes with the first shard that has none. The metadata also holds a digest of its files' names, sizes
and modification times: a rerun after the folder changed (files added, removed or modified) deletes the
metadata of every shard whose files are no longer the same, first, and re-embeds those shards; the
others are kept. Since shards are ranges of the sorted listing, a file added or removed re-embeds its
shard and the ones after it. The model, dtype, root, shard size and dimension must stay the same: a
folder is never a mix of two embeddings, and one run at a time writes it (it holds `DIR/.clipit.lock`).

Memory does not grow with the collection: the folder is listed in sorted order one folder at a time
(clipit.image_files.iter_images), twice (first each shard's digest, then the shards to embed), and one
shard's names and vectors are held at a time per worker. Shards are embedded here or, with a Ray
distributor, as Ray tasks (clipit.embed_shard is the unit of work).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from clipit import ann, atomic, distribute, folder_lock
from clipit.console import info, warn
from clipit.embed_shard import embed_shard
from clipit.encode import Encoder, open_model
from clipit.errors import DataError
from clipit.image_files import iter_images

RECORD = "embed.json"
FORMAT_VERSION = 2  # 2: absolute model path, files digest in each shard's metadata
IDENTITY = (
    "format_version",
    "kind",
    "model",
    "dtype",
    "root",
    "shard_size",
    "dim",
)  # what a resumed run must match
DIGEST_KEY = ann.DIGEST_KEY  # the per-shard digest of the embedded files, beside the fingerprint reading it


def model_reference(spec: str) -> str:
    """What the record stores for `--model spec`: a local path made absolute (so the index works from any
    folder), a hub id as given."""
    path = Path(spec).expanduser()
    return str(path.resolve()) if path.exists() else str(spec)


def vectors_file(folder: Path, shard: int) -> Path:
    return Path(folder) / "img_emb" / f"img_emb_{shard:04d}.npy"


def metadata_file(folder: Path, shard: int) -> Path:
    return Path(folder) / "metadata" / f"metadata_{shard:04d}.parquet"


def failed_file(folder: Path, shard: int) -> Path:
    return Path(folder) / "failed" / f"failed_{shard:04d}.tsv"


def check_folder(out: Path) -> None:
    """Before any work: `out` is new, empty, or an embedded folder (to resume)."""
    out = Path(out)
    if (
        out.is_dir()
        and not (out / RECORD).is_file()
        and any(p.name != folder_lock.LOCK_NAME for p in out.iterdir())
    ):
        raise DataError(f"{out} exists and is not a clipit embed folder", "use a new or empty --out folder")


def write(
    encoder: Encoder,
    root: Path,
    paths: Sequence[Path] | None,
    out: Path,
    *,
    batch_size: int,
    shard_size: int,
    ann_threshold: int = ann.DEFAULT_THRESHOLD,
    distributor: distribute.Distributor | None = None,
    compilation_cache: bool = True,
) -> dict:
    """Embed `paths` (the sorted listing of `root`; None: listed here, one folder at a time) into `out`,
    keeping the shards that are still current, then build its ANN index when it holds at least
    `ann_threshold` vectors (clipit.ann); returns a summary. One run at a time writes a folder
    (`DIR/.clipit.lock`). Shards are embedded here with `encoder`, or with `distributor` (Ray) as one
    task per shard on actors that each load the same model once."""
    with folder_lock.hold(out, "embed"):
        summary = _write(
            encoder,
            Path(root),
            paths,
            Path(out),
            batch_size=batch_size,
            shard_size=shard_size,
            distributor=distributor or distribute.Distributor("local", 0),
            compilation_cache=compilation_cache,
        )
        record = json.loads((Path(out) / RECORD).read_text(encoding="utf-8"))
        updated = ann.update(
            Path(out), record, ann_threshold, rows=summary["rows"], load_vectors=lambda: read(out)[0]
        )
        if updated != record:
            atomic.write_text(Path(out) / RECORD, json.dumps(updated, indent=2) + "\n")
        return {**summary, "ann": "ann" in updated}


def shard_names(root: Path, paths: Iterable[Path] | None, shard_size: int) -> Iterator[list[str]]:
    """The relative paths of each shard's files, shard after shard: only one shard's names in memory."""
    listing = iter(iter_images(root) if paths is None else paths)
    while names := [p.relative_to(root).as_posix() for p in itertools.islice(listing, shard_size)]:
        yield names


def _write(
    encoder: Encoder,
    root: Path,
    paths: Sequence[Path] | None,
    out: Path,
    *,
    batch_size: int,
    shard_size: int,
    distributor: distribute.Distributor,
    compilation_cache: bool,
) -> dict:
    # First pass: each shard's digest only (a hash per shard), so that the shards whose files changed
    # lose their "done" mark before any new work; the second pass embeds, reading the listing again.
    digests, files = [], 0
    for names in shard_names(root, paths, shard_size):
        digests.append(_digest(root, names))
        files += len(names)
    record = {
        "format_version": FORMAT_VERSION,
        "model": model_reference(encoder.name),
        "dtype": encoder.dtype,
        "root": str(root.resolve()),
        "files": files,
        "shard_size": shard_size,
        "dim": encoder.dim,
    }
    check_or_write_record(out, record)
    for sub in ("img_emb", "metadata", "failed", "ann"):  # leftovers of writes a kill interrupted
        if (out / sub).is_dir():
            atomic.remove_stale_temporaries(out / sub)
    count = len(digests)
    changed = _drop_stale_shards(out, digests)
    if changed:
        info(
            f"{out}: {changed} shard(s) no longer match {root} (files added, removed or modified): re-embedding them"
        )
    jobs = (
        (str(root), _files(out, shard), names, _digest(root, names), batch_size, f"shard {shard + 1}/{count}")
        for shard, names in enumerate(itertools.islice(shard_names(root, paths, shard_size), count))
        if not _current(out, shard, digests[shard])
    )
    if distributor.kind == "local":
        state = lambda: encoder  # noqa: E731  (this process: the model already loaded)
    else:  # each Ray actor loads the model once, by its absolute path (or hub id)
        state = functools.partial(
            open_model, record["model"], dtype=encoder.dtype, compilation_cache=compilation_cache
        )
    done = 0
    for (_, (_, _, metadata), *_), rows in distribute.run(distributor, embed_shard, jobs, state=state):
        done += 1
        if distributor.kind != "local":  # the workers' own progress bars do not reach this terminal
            info(f"{Path(metadata).name} embedded: {rows} vectors")
    skipped = count - done
    rows = sum(pq.read_metadata(metadata_file(out, i)).num_rows for i in range(count))
    failures = sum(
        failed_file(out, i).read_text(encoding="utf-8").count("\n")
        for i in range(count)
        if failed_file(out, i).is_file()
    )
    info(f"{out}: {rows} vectors in {count} shards ({skipped} already done), {failures} unreadable files")
    if rows == 0:
        raise DataError(
            f"none of the {files} image files under {root} could be read",
            f"see the warnings above and {out / 'failed'}",
        )
    return {
        "out": str(out),
        "files": files,
        "rows": rows,
        "unreadable": failures,
        "shards": count,
        "shards_written": done,
        "shards_resumed": skipped,
    }


def _files(out: Path, shard: int) -> tuple[str, str, str]:
    return tuple(str(f(out, shard)) for f in (vectors_file, failed_file, metadata_file))


def _current(out: Path, shard: int, digest: str) -> bool:
    """Whether the shard is done and was made from the files it covers now."""
    metadata = metadata_file(out, shard)
    if not metadata.is_file():
        return False
    return (pq.read_schema(metadata).metadata or {}).get(DIGEST_KEY, b"").decode() == digest


def read(folder: Path) -> tuple[np.ndarray, list[str], dict]:
    """(float32 vectors, their paths relative to the root, the record) of the finished shards."""
    folder = Path(folder)
    record_path = folder / RECORD
    if not record_path.is_file():
        raise DataError(
            f"{folder} is not an embedded folder (no {RECORD})", "make one with clipit embed DIR --out"
        )
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(
            f"{record_path} is not valid JSON: {exc}", "re-embed into a new --out folder"
        ) from None
    if record.get("kind") == "text":
        raise DataError(
            f"{folder} holds text embeddings (text_emb/), not images",
            "search an image folder's index (clipit embed DIR --out), or read it with clipit.text_index",
        )
    vectors, paths = [], []
    for metadata in sorted((folder / "metadata").glob("metadata_*.parquet")):
        emb_file = vectors_file(folder, int(metadata.stem.split("_")[-1]))
        if not emb_file.is_file():
            raise DataError(
                f"{emb_file} is missing", "rerun the same clipit embed --out command to finish it"
            )
        shard_vectors = np.load(emb_file, allow_pickle=False)
        shard_paths = pq.read_table(metadata, columns=["image_path"]).column("image_path").to_pylist()
        if len(shard_vectors) != len(shard_paths):
            raise DataError(
                f"{emb_file} has {len(shard_vectors)} rows, {metadata} {len(shard_paths)}", "re-embed"
            )
        vectors.append(shard_vectors.astype(np.float32))
        paths += shard_paths
    if not vectors:
        raise DataError(f"{folder} holds no finished shards", "rerun the clipit embed --out command")
    expected = -(-record["files"] // record["shard_size"])
    if len(vectors) < expected:
        warn(f"{folder}: only {len(vectors)} of {expected} shards are finished; searching those")
    return np.concatenate(vectors), paths, record


def check_or_write_record(out: Path, record: dict) -> None:
    """A folder is resumed only with the same identity (IDENTITY keys; "kind" is "text" for a folder of
    text embeddings, absent for images); the file count may change."""
    path = out / RECORD
    if path.is_file():
        try:
            existing = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            existing = {}
        existing = existing if isinstance(existing, dict) else {}
        differs = [k for k in IDENTITY if existing.get(k) != record.get(k)]
        if differs:
            raise DataError(
                f"{out} already holds embeddings made differently ({', '.join(differs)} differ)",
                "use a new --out folder, or delete this one to start over",
            )
        if existing == record:
            return
        if "ann" in existing:  # kept: clipit.ann checks it still matches the vectors
            record = {**record, "ann": existing["ann"]}
        if existing == record:
            return
    else:
        check_folder(out)
    atomic.write_text(path, json.dumps(record, indent=2) + "\n")


def _digest(root: Path, names: Sequence[str]) -> str:
    """Names, sizes and modification times of a shard's files: what a resume compares."""
    entries = []
    for name in names:
        try:
            stat = os.stat(root / name)
            entries.append([name, stat.st_size, stat.st_mtime_ns])
        except OSError:
            entries.append([name, -1, -1])  # unreadable now; it is reported when encoded
    return hashlib.sha256(json.dumps(entries).encode("utf-8")).hexdigest()


def _drop_stale_shards(out: Path, digests: list[str]) -> int:
    """Delete the metadata (the "done" mark) of every shard that no longer matches, then the files of
    shards past the end; returns how many shards were dropped."""
    dropped = 0
    existing = sorted((out / "metadata").glob("metadata_*.parquet")) if (out / "metadata").is_dir() else []
    for metadata in existing:
        shard = int(metadata.stem.split("_")[-1])
        stored = (pq.read_schema(metadata).metadata or {}).get(DIGEST_KEY, b"").decode()
        if shard >= len(digests) or stored != digests[shard] or not vectors_file(out, shard).is_file():
            metadata.unlink()
            dropped += 1
    for sub, pattern in (("img_emb", "img_emb_*.npy"), ("failed", "failed_*.tsv")):
        for path in (out / sub).glob(pattern) if (out / sub).is_dir() else []:
            if int(path.stem.split("_")[-1]) >= len(digests):
                path.unlink()
    return dropped
