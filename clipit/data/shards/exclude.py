"""Decontamination: the images of evaluation sets, indexed once, so build-shards can keep them out.

An exclude entry is a folder of images (an ImageNet-IT val folder, searched recursively), a source
folder (one with manifest.parquet, e.g. an MSCOCO-IT val download) or a manifest file. Every image of
it gives two keys:
- the SHA-256 of its bytes: rows with the same bytes are removed in the plan, before any decoding;
- a 64-bit perceptual hash (pHash, from the `imagehash` library: the DCT of a 32x32 grey thumbnail,
  which survives re-encoding, resizing and small colour changes): a row whose own pHash is within
  `exclude_max_distance` bits of any excluded image is removed when its job decodes it.
The pHashes sit in one uint64 array; a row is compared against all of them at once (XOR + popcount in
numpy), so the cost per row is one vector operation, not a Python loop over the eval set.
A flat image (a single colour) has no structure for pHash to describe: every flat image hashes alike, so
flat images are matched by SHA-256 only.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageStat

from clipit.data import manifest, manifest_stream
from clipit.data.decode import upright_rgb
from clipit.data.shards import locate
from clipit.errors import ConfigError, ManifestError

EVAL_OVERLAP = "eval_overlap"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
FLAT_STDDEV = 2.0  # grey-level spread (0-255) under which an image is flat (no pHash)
_DECODE_SIDE = 256  # exclude images are decoded at about the size shard images have when they are hashed


@dataclass(frozen=True)
class ExcludeIndex:
    sha256: frozenset[str] = frozenset()
    phash: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    max_distance: int = 0
    images: int = 0  # images found in the exclude entries
    entries: tuple[str, ...] = ()
    digest: str = ""  # changes whenever the index does: part of each shard job's hash

    def __bool__(self) -> bool:
        return self.images > 0

    def near(self, value: int | None) -> bool:
        """Whether a pHash is within max_distance bits of any excluded image's (one vector operation)."""
        if value is None or not self.phash.size:
            return False
        distances = np.bitwise_count(self.phash ^ np.uint64(value))
        return bool(distances.min() <= self.max_distance)


def perceptual_hash(image: Image.Image) -> int | None:
    """The 64-bit pHash of a decoded image, or None for a flat image (see the module docstring)."""
    import imagehash  # imports scipy: only paid for when there is something to exclude

    grey = upright_rgb(image).convert("L")  # as build-shards sees it: EXIF-rotated, 16-bit scaled
    if ImageStat.Stat(grey).stddev[0] < FLAT_STDDEV:
        return None
    bits = imagehash.phash(grey).hash.flatten()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def hash_bytes(data: bytes) -> int | None:
    """pHash of encoded image bytes (decoded at reduced size where JPEG allows); None if undecodable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            scale = _DECODE_SIDE / max(1, min(image.size))
            if scale < 1:
                image.draft("RGB", (max(1, int(image.width * scale)), max(1, int(image.height * scale))))
            image.load()
    except Exception:  # PIL raises many types for garbage; such a file is matched by SHA-256 only
        return None
    return perceptual_hash(image)


def build_index(entries: list[Path], max_distance: int) -> ExcludeIndex:
    """Read every exclude entry; a missing one, or one with no image, is a one-line error."""
    if not entries:
        return ExcludeIndex(max_distance=max_distance)
    images = 0
    shas: set[str] = set()
    hashes: list[int] = []
    for entry in entries:
        found = 0
        for names, data in _entry_images(Path(entry)):  # one image in memory at a time
            found += 1
            shas.update(names)
            value = hash_bytes(data) if data is not None else None
            if value is not None:
                hashes.append(value)
        if not found:
            raise ConfigError(
                f"build-shards --exclude {entry}: no images found there",
                "pass an image folder, a source folder with manifest.parquet, or a manifest file",
            )
        images += found
    phash = np.unique(np.array(hashes, dtype=np.uint64))
    digest = hashlib.sha256(
        "\n".join([str(max_distance), *sorted(shas), *(str(h) for h in phash.tolist())]).encode()
    ).hexdigest()
    return ExcludeIndex(
        sha256=frozenset(shas),
        phash=phash,
        max_distance=max_distance,
        images=images,
        digest=digest,
        entries=tuple(str(e) for e in entries),
    )


def _entry_images(entry: Path) -> Iterator[tuple[list[str], bytes | None]]:
    """([SHA-256...], bytes) of each image of one exclude entry (bytes None where only a hash is known)."""
    if entry.is_dir() and (entry / manifest.MANIFEST_NAME).is_file():
        entry = entry / manifest.MANIFEST_NAME
    if entry.is_file() and entry.suffix == ".parquet":
        return _manifest_images(entry)
    if entry.is_dir():
        files = sorted(p for p in entry.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        return (_read_file(p) for p in files)
    if entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES:
        return iter([_read_file(entry)])
    raise ConfigError(
        f"build-shards --exclude {entry}: no such folder or manifest",
        "pass an image folder, a source folder with manifest.parquet, or a manifest file",
    )


def _manifest_images(path: Path) -> Iterator[tuple[list[str], bytes | None]]:
    try:
        manifest_stream.open_file(path)
    except ManifestError as exc:
        raise ConfigError(
            f"build-shards --exclude {path}: {exc}", "pass a manifest written by clipit"
        ) from None
    return _manifest_rows(path)


def _manifest_rows(path: Path) -> Iterator[tuple[list[str], bytes | None]]:
    source = locate.SourceImages(path.parent)
    seen: set[tuple] = set()
    columns = ["status", "shard", "index", "image_sha256"]
    try:
        for table in manifest_stream.iter_batches(
            path, columns
        ):  # streamed: an evaluation manifest of any size
            for row in table.to_pylist():
                place = (row["image_sha256"], row["shard"], row["index"])
                if row["status"] != manifest.STATUS_OK or place in seen:
                    continue  # an image with several captions is one image
                seen.add(place)
                location = source.locate(row["shard"], row["index"])
                data = None
                if not isinstance(
                    location, str
                ):  # else (e.g. a Parquet training shard) only its hash is compared
                    try:
                        data = locate.read_bytes(location)
                    except OSError:
                        pass
                # the manifest's hash names the original bytes, which may differ from the stored ones
                names = {row["image_sha256"]} if row["image_sha256"] else set()
                if data is not None:
                    names.add(hashlib.sha256(data).hexdigest())
                if names:
                    yield sorted(names), data
    except ManifestError as exc:
        raise ConfigError(
            f"build-shards --exclude {path}: {exc}", "pass a manifest written by clipit"
        ) from None


def _read_file(path: Path) -> tuple[list[str], bytes]:
    try:
        data = path.read_bytes()
    except OSError as exc:  # an eval image we cannot read is one we cannot keep out of training
        raise ConfigError(
            f"build-shards --exclude: cannot read {path}: {exc.strerror}", "fix its permissions"
        ) from None
    return [hashlib.sha256(data).hexdigest()], data
