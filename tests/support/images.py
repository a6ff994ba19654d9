"""Image files for the tests: random-noise pictures of several shapes, and a corrupt one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# Sizes chosen to exercise the resize + centre crop both ways (portrait, landscape, square, odd).
IMAGE_SHAPES = [(40, 30), (32, 32), (50, 80), (64, 64), (33, 47), (90, 41)]


def write_images(folder: Path, shapes=IMAGE_SHAPES, *, seed: int = 0, prefix: str = "img") -> list[Path]:
    """Random-noise images (PNG and JPEG alternately); returns their paths in the order written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (width, height) in enumerate(shapes):
        path = folder / f"{prefix}{i:02d}.{'png' if i % 2 == 0 else 'jpg'}"
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def write_corrupt(path: Path) -> Path:
    """A file that claims to be a JPEG (magic bytes) and is not."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return path


def write_pictures(root):
    """A few noise images plus two plain-colour ones (something the heatmap and the page can show)."""
    write_images(root / "x", [(40, 30), (32, 32), (50, 80), (64, 64)])
    write_images(root / "y", [(33, 47), (90, 41), (48, 48)], seed=3)
    (root / "plain").mkdir()
    Image.new("RGB", (60, 40), (200, 30, 30)).save(root / "plain" / "rosso.png")
    Image.new("RGB", (60, 40), (30, 30, 200)).save(root / "plain" / "blu.jpg")
