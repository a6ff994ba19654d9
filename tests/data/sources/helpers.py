"""Reading back what a download wrote: manifest rows and the image bytes a row points at."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from PIL import Image

from clipit.data import manifest


def rows_by_key(folder: Path) -> dict[str, dict]:
    return {row["key"]: row for row in manifest.read(folder).to_pylist()}


def image_of(folder: Path, row: dict) -> Image.Image:
    """The image a manifest row points at: a tar member `{index}.jpg` or, with index null, a plain file."""
    if row["index"] is None:
        return Image.open(Path(folder) / row["shard"])
    with tarfile.open(Path(folder) / row["shard"]) as archive:
        for member in archive.getmembers():
            stem, _, ext = member.name.partition(".")
            if ext == "jpg" and int(stem) == row["index"]:
                return Image.open(io.BytesIO(archive.extractfile(member).read()))
    raise AssertionError(f"{row['key']}: no member {row['index']}.jpg in {row['shard']}")


def summary_of(folder: Path) -> dict:
    return json.loads((Path(folder) / "summary.json").read_text())
