"""A folder of text embeddings (`clipit embed --text FILE --out DIR`), in clip-retrieval's layout:

    DIR/embed.json                        kind "text", format, model, dtype, root (the text file, absolute),
                                          files (its line count), shard size, dimension
    DIR/text_emb/text_emb_0000.npy        float16 [rows, D], L2-normalised, row i = line i of the shard
    DIR/metadata/metadata_0000.parquet    column caption, one row per vector

clip-retrieval writes the same names (text_emb_{i}, metadata_{i} with a caption column), so its tools and
autofaiss read the folder as they read its own text embeddings. Shard i covers lines
[i*shard_size, (i+1)*shard_size); its metadata, written last and atomically, marks it done and holds a
digest of its lines. A rerun resumes with the first shard not done, and after the file changed
re-embeds exactly the shards whose lines changed (all from an inserted or deleted line on). The model,
dtype, file, shard size and dimension must stay the same (clipit.embed_index.IDENTITY).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from clipit import atomic, embed_index, folder_lock
from clipit.console import info
from clipit.encode import Encoder
from clipit.errors import DataError


def vectors_file(folder: Path, shard: int) -> Path:
    return Path(folder) / "text_emb" / f"text_emb_{shard:04d}.npy"


def write(
    encoder: Encoder, text_file: Path, texts: Sequence[str], out: Path, *, batch_size: int, shard_size: int
) -> dict:
    """Embed `texts` (the lines of `text_file`) into `out`, keeping the shards that are still current;
    returns a summary. One run at a time writes a folder (`DIR/.clipit.lock`)."""
    out = Path(out)
    with folder_lock.hold(out, "embed"):
        record = {
            "format_version": embed_index.FORMAT_VERSION,
            "kind": "text",
            "model": embed_index.model_reference(encoder.name),
            "dtype": encoder.dtype,
            "root": str(Path(text_file).resolve()),
            "files": len(texts),
            "shard_size": shard_size,
            "dim": encoder.dim,
        }
        embed_index.check_or_write_record(out, record)
        for sub in ("text_emb", "metadata"):  # leftovers of writes a kill interrupted
            if (out / sub).is_dir():
                atomic.remove_stale_temporaries(out / sub)
        count = -(-len(texts) // shard_size)
        shards = [list(texts[i * shard_size : (i + 1) * shard_size]) for i in range(count)]
        digests = [hashlib.sha256(json.dumps(lines).encode("utf-8")).hexdigest() for lines in shards]
        changed = _drop_stale_shards(out, digests)
        if changed:
            info(f"{out}: {changed} shard(s) no longer match {text_file}: re-embedding them")
        done = 0
        for shard in range(count):
            if embed_index.metadata_file(out, shard).is_file():
                continue
            vectors = encoder.encode_texts(shards[shard], batch_size=batch_size)
            with atomic.atomic_path(vectors_file(out, shard)) as tmp, open(tmp, "wb") as f:
                np.save(f, vectors.astype(np.float16), allow_pickle=False)
            table = pa.table({"caption": pa.array(shards[shard], pa.string())})
            table = table.replace_schema_metadata({embed_index.DIGEST_KEY: digests[shard].encode()})
            with atomic.atomic_path(embed_index.metadata_file(out, shard)) as tmp:
                pq.write_table(table, tmp)
            done += 1
        info(f"{out}: {len(texts)} texts in {count} shards ({count - done} already done)")
        return {
            "out": str(out),
            "rows": len(texts),
            "shards": count,
            "shards_written": done,
            "shards_resumed": count - done,
        }


def read(folder: Path) -> tuple[np.ndarray, list[str], dict]:
    """(float32 vectors, their texts, the record) of a finished text folder."""
    folder = Path(folder)
    try:
        record = json.loads((folder / embed_index.RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise DataError(
            f"{folder} is not an embedded folder (no readable {embed_index.RECORD})",
            "make one with clipit embed --text FILE --out DIR",
        ) from None
    if not isinstance(record, dict) or record.get("kind") != "text":
        raise DataError(
            f"{folder} does not hold text embeddings", "make one with clipit embed --text FILE --out DIR"
        )
    vectors, texts = [], []
    count = -(-record["files"] // record["shard_size"])
    for shard in range(count):
        metadata, emb = embed_index.metadata_file(folder, shard), vectors_file(folder, shard)
        if not metadata.is_file() or not emb.is_file():
            raise DataError(
                f"{folder}: shard {shard} is not finished", "rerun the same clipit embed --out command"
            )
        vectors.append(np.load(emb, allow_pickle=False).astype(np.float32))
        texts += pq.read_table(metadata, columns=["caption"]).column("caption").to_pylist()
    return np.concatenate(vectors), texts, record


def _drop_stale_shards(out: Path, digests: list[str]) -> int:
    """Delete the metadata (the "done" mark) of every shard whose lines changed, then the vectors past
    the end; returns how many shards were dropped."""
    dropped = 0
    metadata_dir = out / "metadata"
    for metadata in sorted(metadata_dir.glob("metadata_*.parquet")) if metadata_dir.is_dir() else []:
        shard = int(metadata.stem.split("_")[-1])
        stored = (pq.read_schema(metadata).metadata or {}).get(embed_index.DIGEST_KEY, b"").decode()
        if shard >= len(digests) or stored != digests[shard] or not vectors_file(out, shard).is_file():
            metadata.unlink()
            dropped += 1
    for path in (out / "text_emb").glob("text_emb_*.npy") if (out / "text_emb").is_dir() else []:
        if int(path.stem.split("_")[-1]) >= len(digests):
            path.unlink()
    return dropped
