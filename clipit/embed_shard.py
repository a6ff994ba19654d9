"""One shard of an embedded folder (`clipit embed --out`): embed its files, write its three files.

The unit of work that runs in this process or, with `embed.distributor = "ray"`, in a Ray actor that
loaded the model once (clipit.distribute); clipit.embed_index owns the layout and decides which shards
to run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from clipit import atomic
from clipit.ann import DIGEST_KEY
from clipit.encode import Encoder

# Characters that end a line for str.splitlines (and, for \r, for text-mode reading): in a one-name-per-line
# file a name holding one would shift every later row.
LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")


def embed_shard(
    encoder: Encoder,
    root: str,
    files: tuple[str, str, str],
    names: list[str],
    digest: str,
    batch_size: int,
    description: str,
) -> int:
    """Embed one shard's files and write its vectors, failures and (last, the "done" mark) metadata;
    returns its row count. `files` are the shard's vectors, failures and metadata files (the layout is
    clipit.embed_index's). Runs here or in a Ray actor."""
    root_path = Path(root)
    vectors, failed, metadata = (Path(f) for f in files)
    encoded = encoder.encode_images(
        [root_path / n for n in names], batch_size=batch_size, description=description
    )
    with atomic.atomic_path(vectors) as tmp, open(tmp, "wb") as f:
        np.save(f, encoded.vectors.astype(np.float16), allow_pickle=False)
    if encoded.failures:
        lines = (f"{_tsv_field(names[i])}\t{_tsv_field(' '.join(r.split()))}\n" for i, r in encoded.failures)
        atomic.write_text(failed, "".join(lines))
    else:
        failed.unlink(missing_ok=True)  # from an earlier run of this shard
    table = pa.table({"image_path": pa.array([names[i] for i in encoded.kept], pa.string())})
    table = table.replace_schema_metadata({DIGEST_KEY: digest.encode()})
    with atomic.atomic_path(metadata) as tmp:
        pq.write_table(table, tmp)
    return len(encoded.kept)


def _tsv_field(text: str) -> str:
    """Backslash, tab and line breaks written as Python escapes (\\\\, \\t, \\n, \\x1c, ...): one record
    per line, whatever the file name."""
    return "".join(_ESCAPES.get(c, c) for c in text)


_ESCAPES = {"\\": "\\\\", "\t": "\\t", **{c: repr(c)[1:-1] for c in LINE_BREAKS}}
