"""A CC3M-shaped TSV (caption<TAB>url, no header) of many lines over a few shared image URLs: the
manifest has every line while img2dataset fetches only a handful of images."""

from __future__ import annotations

from pathlib import Path


def write_shared_url_tsv(path: Path, lines: int, base_url: str, urls: int = 6) -> Path:
    """`lines` lines, each its own caption (about 70 characters), over `urls` JPEGs of the image server."""
    with open(path, "w", encoding="utf-8") as out:
        for i in range(lines):
            url = f"{base_url}/ok/64x48/shared-{i % urls}.jpg"
            out.write(f"a photo of object number {i} standing on a table next to a window\t{url}\n")
    return path
