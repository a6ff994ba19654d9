"""Embeddings of an image folder or a text file: one .npy to a stream, or a resumable folder of shards.

Stream mode (`clipit embed PATH > vecs.npy`): float32 [N, D], rows L2-normalised, in sorted
relative-path order of the readable images (or in line order of a text file). Unreadable images are
skipped, warned about and left out of the rows; `paths_out` lists the rows' paths so the two align.

Folder mode (`--out DIR`, for collections too large for one array), in clip-retrieval's layout:

    DIR/embed.json                      what was embedded (model, root, file count, shard size)
    DIR/img_emb/img_emb_0000.npy        float16 [rows, D], L2-normalised
    DIR/metadata/metadata_0000.parquet  column image_path (relative to the root), one row per vector
    DIR/failed/failed_0000.tsv          path<TAB>reason of the shard's unreadable files (when any)

Shard i always covers files [i*shard_size, (i+1)*shard_size) of the sorted listing, and each shard's
files are written atomically (vectors, then failures, then metadata, which marks it done), so a run
killed at any point resumes with the first shard that has no metadata, redoing at most one shard.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from clipit import atomic
from clipit.config.embed import EmbedConfig
from clipit.console import info
from clipit.encode import MAX_FAILURES_SHOWN, Encoder, list_images
from clipit.errors import ClipitError, ConfigError, DataError

EMBED_RECORD = "embed.json"
FORMAT_VERSION = 1


def refuse_terminal(stream) -> None:
    """Binary .npy on a terminal is garbage and can upset it: refuse before any work is done."""
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        raise ClipitError(
            "refusing to write binary .npy data to a terminal",
            "redirect stdout to a file (clipit embed DIR > vecs.npy) or use --out DIR",
        )


def write_npy(vectors: np.ndarray, stream: BinaryIO) -> None:
    np.save(stream, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
    stream.flush()


def image_paths(root: Path) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder", "pass a folder of images (searched recursively)")
    paths = list_images(root)
    if not paths:
        raise DataError(f"{root} holds no image files", "supported: " + ", ".join(sorted({".jpg", ".png", ".webp"})))
    return paths


def read_text_lines(path: Path) -> list[str]:
    """One text per line; blank lines are an error (they would silently shift the rows)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path} does not exist", "pass --text FILE with one text per line") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text: {exc}", "convert it to UTF-8") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            raise DataError(f"{path}:{number} is blank", "remove blank lines: row i of the output is line i")
    if not lines:
        raise DataError(f"{path} is empty", "put one text per line")
    return lines


def embed_images(encoder: Encoder, root: Path, *, batch_size: int) -> tuple[np.ndarray, list[str], list[tuple[str, str]]]:
    """(vectors, relative paths of the rows, [(relative path, reason)] of unreadable files)."""
    root = Path(root)
    paths = image_paths(root)
    encoded = encoder.encode_images(paths, batch_size=batch_size)
    relative = [p.relative_to(root).as_posix() for p in paths]
    failures = [(relative[i], reason) for i, reason in encoded.failures]
    return encoded.vectors, [relative[i] for i in encoded.kept], failures


def embed_texts(encoder: Encoder, text_file: Path, *, batch_size: int) -> np.ndarray:
    return encoder.encode_texts(read_text_lines(text_file), batch_size=batch_size)


def embed_to_folder(encoder: Encoder, root: Path, out: Path, *, batch_size: int, shard_size: int) -> dict:
    """Embed `root` into `out` shard by shard, skipping shards already done; returns a summary."""
    root, out = Path(root), Path(out)
    relative = [p.relative_to(root).as_posix() for p in image_paths(root)]
    record = {
        "format_version": FORMAT_VERSION,
        "model": encoder.name,
        "dtype": encoder.dtype,
        "root": str(root.resolve()),
        "files": len(relative),
        "shard_size": shard_size,
        "dim": encoder.dim,
    }
    _check_or_write_record(out, record)
    for sub in ("img_emb", "metadata", "failed"):  # leftovers of writes a kill interrupted
        if (out / sub).is_dir():
            atomic.remove_stale_temporaries(out / sub)
    shards = range(0, -(-len(relative) // shard_size))
    done = skipped = 0
    for shard in shards:
        names = relative[shard * shard_size : (shard + 1) * shard_size]
        metadata = out / "metadata" / f"metadata_{shard:04d}.parquet"
        vectors_file = out / "img_emb" / f"img_emb_{shard:04d}.npy"
        if metadata.is_file() and vectors_file.is_file():
            skipped += 1
            continue
        encoded = encoder.encode_images(
            [root / n for n in names], batch_size=batch_size, description=f"shard {shard + 1}/{len(shards)}"
        )
        with atomic.atomic_path(vectors_file) as tmp, open(tmp, "wb") as f:
            np.save(f, encoded.vectors.astype(np.float16), allow_pickle=False)
        failed = out / "failed" / f"failed_{shard:04d}.tsv"
        if encoded.failures:
            atomic.write_text(failed, "".join(f"{names[i]}\t{' '.join(r.split())}\n" for i, r in encoded.failures))
        table = pa.table({"image_path": pa.array([names[i] for i in encoded.kept], pa.string())})
        with atomic.atomic_path(metadata) as tmp:
            pq.write_table(table, tmp)
        done += 1
    rows = sum(pq.read_metadata(p).num_rows for p in sorted((out / "metadata").glob("metadata_*.parquet")))
    failed_files = sorted((out / "failed").glob("failed_*.tsv")) if (out / "failed").is_dir() else []
    failures = sum(len(p.read_text().splitlines()) for p in failed_files)
    summary = {"out": str(out), "files": len(relative), "rows": rows, "unreadable": failures,
               "shards": len(shards), "shards_written": done, "shards_resumed": skipped}
    info(f"{out}: {rows} vectors in {len(shards)} shards ({skipped} already done), {failures} unreadable files")
    return summary


def _check_or_write_record(out: Path, record: dict) -> None:
    """A folder is resumed only for the same model, root, files and shard size: anything else would
    mix two embeddings in one index."""
    path = out / EMBED_RECORD
    if path.is_file():
        try:
            existing = json.loads(path.read_text())
        except json.JSONDecodeError:
            existing = None
        if existing != record:
            differs = sorted(k for k in record if not existing or existing.get(k) != record[k])
            raise DataError(
                f"{out} already holds embeddings made differently ({', '.join(differs)} differ)",
                "use a new --out folder, or delete this one to start over",
            )
        return
    if out.is_dir() and any(out.iterdir()):
        raise DataError(f"{out} exists and is not a clipit embed folder", "use a new or empty --out folder")
    atomic.write_text(path, json.dumps(record, indent=2) + "\n")


def run(cfg: EmbedConfig, stdout) -> dict:
    """`clipit embed`: check the inputs, refuse a terminal, then embed (see the module docstring)."""
    from clipit.encode import open_model

    if (cfg.images is None) == (cfg.text is None):
        raise ConfigError(
            "give either an image folder (PATH) or --text FILE" if cfg.images is None else "give PATH or --text, not both",
            "clipit embed images/ > vecs.npy, or clipit embed --text captions.txt > vecs.npy",
        )
    if cfg.text is not None and (cfg.out is not None or cfg.paths_out is not None):
        raise ConfigError("--out and --paths-out are for image folders", "drop them with --text")
    if cfg.model is None:
        raise ConfigError("no model given", "pass --model M or set embed.model")
    if cfg.out is None:
        refuse_terminal(stdout)
    elif cfg.paths_out is not None:
        raise ConfigError("--paths-out is for stdout mode", "with --out the paths are in DIR/metadata/*.parquet")
    encoder = open_model(cfg.model, dtype=cfg.dtype)
    if cfg.text is not None:
        vectors = embed_texts(encoder, cfg.text, batch_size=cfg.batch_size)
        write_npy(vectors, stdout.buffer)
        return {"rows": len(vectors), "dim": int(vectors.shape[1])}
    if cfg.out is not None:
        return embed_to_folder(encoder, cfg.images, cfg.out, batch_size=cfg.batch_size, shard_size=cfg.shard_size)
    vectors, paths, failures = embed_images(encoder, cfg.images, batch_size=cfg.batch_size)
    write_npy(vectors, stdout.buffer)
    if cfg.paths_out is not None:
        atomic.write_text(cfg.paths_out, "".join(f"{p}\n" for p in paths))
    info(f"{len(vectors)} images embedded ({vectors.shape[1]}-d), {len(failures)} unreadable")
    if len(failures) > MAX_FAILURES_SHOWN:  # encode warned about the first ones only: list them all
        for path, reason in failures:
            info(f"unreadable: {path}\t{reason}")
    return {"rows": len(vectors), "dim": int(vectors.shape[1]), "unreadable": [p for p, _ in failures]}
