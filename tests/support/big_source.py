"""A source folder of any number of manifest rows that fits on a small disk: many rows, few image files.

The tar holds `images` small JPEGs; row i points at member `(i // 2) % images`. Every row claims its own
image (a distinct SHA-256 and URL, two caption rows per image), and build-shards trusts a manifest's
SHA-256, so the plan sees as many distinct images as a real download of that size while the bytes on disk
stay a few KB. A share of the images is `failed` (as in a real CC3M download, where many URLs are dead).
The manifest is written in batches, so writing 3 million rows takes little memory.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

from PIL import Image

from clipit.data import manifest, manifest_stream

SOURCE = "big"


def write_big_source(folder: Path, rows: int, images: int = 16, failed: float = 0.2) -> Path:
    """Write `folder/00000.tar` and `folder/manifest.parquet`; a share `failed` of the images failed."""
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(folder / "00000.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
        for member in range(images):
            data = io.BytesIO()
            colour = (member * 37 % 256, member * 91 % 256, member * 53 % 256)
            Image.new("RGB", (48, 40), colour).save(data, format="JPEG", quality=80)
            info = tarfile.TarInfo(f"{member:09d}.jpg")
            info.size = data.tell()
            tar.addfile(info, io.BytesIO(data.getvalue()))
    with manifest_stream.writer(folder / manifest.MANIFEST_NAME) as out:
        for start in range(0, rows, manifest_stream.ROW_GROUP_ROWS):
            out.write_rows(
                _row(i, images, failed)
                for i in range(start, min(rows, start + manifest_stream.ROW_GROUP_ROWS))
            )
    return folder


def _row(i: int, images: int, share: float) -> dict:
    image = i // 2
    failed = image % 100 < round(share * 100)
    return {
        "key": f"{SOURCE}/{image}/{i % 2}",
        "source": SOURCE,
        "url": f"http://images.invalid/{image}.jpg",
        "caption": f"una fotografia numero {image}, variante {i % 2}",
        "caption_en": f"a photograph number {image}, variant {i % 2}",
        "lang": "it",
        "status": manifest.STATUS_FAILED if failed else manifest.STATUS_OK,
        "error": "HTTP 404" if failed else None,
        "split": "train",
        "shard": None if failed else "00000.tar",
        "index": None if failed else image % images,
        "image_sha256": None if failed else hashlib.sha256(f"image {image}".encode()).hexdigest(),
    }
