"""Real-shaped source folders, made by the real `clipit download ...` (and `translate`) code paths.

Real sources differ from the synthetic set in ways that matter to build-shards:
- MSCOCO-IT: 5 captions per image, some caption strings shared by several images, and a dev file whose
  images are validation images on purpose;
- CC3M: English captions (translated here by the loopback LibreTranslate server), stock strings such as
  "actor attends the premiere" on many different images;
- WIT: one image URL on several pages (one image, several captions);
- one image in two sources: MSCOCO-IT dev image 101 is also a CC3M row, and MSCOCO-IT train image 1 is
  also on two WIT pages (same bytes: the photo server serves what the local COCO folder holds).
Images are photo-like (smooth random colour fields), not flat colours, so that perceptual hashes of
different images differ as they do for photos.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from clipit.cli.main import app
from clipit.data.sources import wit
from tests.support.image_server import ImageServer, fast_download_args
from tests.support.libre_server import LibreServer

PHOTO_SIZE = (96, 72)
TRAIN_IDS = list(range(1, 13))  # captions_ita_train.json
DEV_IDS = [101, 102, 103, 104]  # captions_ita_devset_validated.json: val on purpose
DEV_FILE = "captions_ita_devset_validated.json"
SHARED_STRINGS = {  # one caption string on several images (as MSCOCO-IT and CC3M have)
    "un uomo in bicicletta su una strada": [1, 2, 3],
    "una cucina con un frigorifero bianco": [4, 5, 102],
}


def photo_jpeg(name: str, size: tuple[int, int] = PHOTO_SIZE, quality: int = 90) -> bytes:
    """A deterministic photo-like JPEG: a 6x6 random colour grid smoothly upscaled (seeded by `name`)."""
    seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
    grid = np.random.default_rng(seed).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    image = Image.fromarray(grid).resize(size, Image.Resampling.BICUBIC)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


class PhotoServer(ImageServer):
    """The loopback image server plus `/photo/<name>`: 200 with `photo_jpeg(name)`."""

    def _respond(self, handler: BaseHTTPRequestHandler) -> None:
        parts = handler.path.strip("/").split("/")
        if parts[0] != "photo" or len(parts) != 2:
            return super()._respond(handler)
        with self._lock:
            self.requests.append((handler.path, handler.headers.get("User-Agent", ""), 0.0))
        return self._send(handler, 200, photo_jpeg(parts[1]), "image/jpeg")


@dataclass(frozen=True)
class RealShaped:
    mscoco: Path  # MSCOCO-IT source: train + dev files over a local images folder
    cc3m: Path  # CC3M source, translated
    wit: Path  # WIT source
    coco_images: Path  # the local COCO images folder (COCO_val2014_<id>.jpg)
    mscoco_dev: Path  # a second MSCOCO-IT source made of the dev file only (an evaluation set)


def _cli(*args: str) -> None:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output


def coco_image_name(image_id: int) -> str:
    return f"COCO_val2014_{image_id:012d}.jpg"


def write_mscoco_it(folder: Path, server: ImageServer) -> tuple[list[Path], Path]:
    """Annotation files (train and dev, COCO format, 5 captions per image) and a local images folder."""
    images = folder / "coco"
    images.mkdir(parents=True)
    files = []
    for name, ids in (("captions_ita_train.json", TRAIN_IDS), (DEV_FILE, DEV_IDS)):
        entries, annotations = [], []
        for image_id in ids:
            (images / coco_image_name(image_id)).write_bytes(photo_jpeg(f"coco-{image_id}"))
            entries.append({"id": image_id, "file_name": coco_image_name(image_id),
                            "coco_url": server.url(f"photo/coco-{image_id}")})  # fmt: skip
            captions = [c for c, on in SHARED_STRINGS.items() if image_id in on]
            captions += [f"immagine {image_id}: una scena numero {n} con persone e oggetti" for n in range(5)]
            for n, caption in enumerate(captions[:5]):
                # validated files spell image_id as a string, images[].id as an int
                annotations.append({"id": image_id * 10 + n, "image_id": str(image_id), "caption": caption})
        path = folder / name
        path.write_text(json.dumps({"images": entries, "annotations": annotations}), encoding="utf-8")
        files.append(path)
    return files, images


def write_cc3m_tsv(path: Path, server: ImageServer) -> Path:
    """Google's header-less caption<TAB>url: stock strings on many images, one MSCOCO-IT dev image."""
    lines = [
        ("actor attends the premiere", server.url("photo/cc-0")),
        ("actor attends the premiere", server.url("photo/cc-1")),
        ("actor attends the premiere", server.url("photo/cc-2")),
        ("a man with a tree in the park", server.url("photo/cc-3")),
        ("a woman on the street", server.url("photo/cc-4")),
        ("a kitchen with a fridge", server.url("photo/coco-101")),  # MSCOCO-IT dev image 101
        ("the street in the rain", server.url("photo/cc-6")),
        ("a missing image", server.url("missing/cc-7")),
    ]
    path.write_text("".join(f"{caption}\t{url}\n" for caption, url in lines), encoding="utf-8")
    return path


def write_wit_tsv(path: Path, server: ImageServer) -> Path:
    """A gzipped WIT TSV: one image URL on several pages, and MSCOCO-IT train image 1 on two pages."""
    pages = [
        ("photo/wit-a", "Duomo", "la facciata della cattedrale vista dalla piazza"),
        ("photo/wit-a", "Piazza", "la piazza con la cattedrale sullo sfondo"),
        ("photo/wit-a", "Architettura", "un esempio di architettura gotica in pietra"),
        ("photo/coco-1", "Bicicletta", "una bicicletta su una strada di città"),
        ("photo/coco-1", "Ciclismo", "un ciclista in strada di mattina"),
        ("photo/wit-b", "Porto", "le barche nel porto al tramonto"),
        ("photo/wit-c", "Montagna", "una valle di montagna in estate"),
    ]
    rows = []
    for url, title, caption in pages:
        row = dict.fromkeys(wit.COLUMNS, "")
        row.update(language="it", page_url=f"https://it.wikipedia.org/wiki/{title}", image_url=server.url(url),
                   page_title=title, section_title="Storia", caption_reference_description=caption,
                   mime_type="image/jpeg", original_height="72", original_width="96", is_main_image="false")  # fmt: skip
        rows.append(row)
    lines = ["\t".join(wit.COLUMNS)] + ["\t".join(row[c] for c in wit.COLUMNS) for row in rows]
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


def make_sources(folder: Path) -> RealShaped:
    """All three sources (and an MSCOCO-IT dev-only source), downloaded and translated for real."""
    folder.mkdir(parents=True, exist_ok=True)
    server = PhotoServer().start()
    try:
        files, images = write_mscoco_it(folder / "inputs", server)
        mscoco, mscoco_dev, cc3m, wit_out = (
            folder / n for n in ("mscoco-it", "mscoco-it-dev", "cc3m", "wit")
        )
        _cli("download", "mscoco-it", "--annotations", str(files[0]), "--annotations", str(files[1]),
             "--images", str(images), "--out", str(mscoco))  # fmt: skip
        _cli(
            "download",
            "mscoco-it",
            "--annotations",
            str(files[1]),
            "--images",
            str(images),
            "--out",
            str(mscoco_dev),
        )
        tsv = write_cc3m_tsv(folder / "inputs" / "gcc.tsv", server)
        _cli(
            "download",
            "cc3m",
            "--tsv",
            str(tsv),
            "--out",
            str(cc3m),
            *fast_download_args(samples_per_shard=4),
        )
        with LibreServer() as libre:
            _cli("translate", "--input", str(cc3m), "--to", "it", "--backend", "libre", "--endpoint", libre.url,
                 "--set", f"translate.cache={folder / 'inputs' / 'cache.sqlite'}",
                 "--set", "translate.requests_per_second=1000.0")  # fmt: skip
        wit_tsv = write_wit_tsv(folder / "inputs" / "wit_v1.train.all-00000-of-00010.tsv.gz", server)
        _cli("download", "wit", "--tsv", str(wit_tsv), "--lang", "it", "--out", str(wit_out),
             *fast_download_args(samples_per_shard=4))  # fmt: skip
    finally:
        server.stop()
    return RealShaped(mscoco, cc3m, wit_out, images, mscoco_dev)
