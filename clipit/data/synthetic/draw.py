"""Render a scene with PIL and encode it as JPEG (deterministic: same scene, same bytes)."""

from __future__ import annotations

import io
import math
import random

from PIL import Image, ImageDraw

from clipit.data.synthetic.grammar import BACKGROUNDS, COLOURS
from clipit.data.synthetic.scenes import Placed, Scene

JPEG_QUALITY = 95  # high: JPEG's chroma loss must not blur small objects' colours together
COLOUR_JITTER = 12  # per-channel shift of each image's colours, so colour is a range, not one pixel value


def render(scene: Scene, side: int) -> Image.Image:
    rng = random.Random(scene.jitter)
    image = Image.new("RGB", (side, side), _jittered(BACKGROUNDS[scene.background].rgb, rng))
    pen = ImageDraw.Draw(image)
    for obj in scene.objects:
        _draw(pen, obj, side, _jittered(COLOURS[obj.colour].rgb, rng))
    return image


def encode_jpeg(image: Image.Image, quality: int = JPEG_QUALITY) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _jittered(rgb: tuple[int, int, int], rng: random.Random) -> tuple[int, int, int]:
    return tuple(min(255, max(0, c + rng.randint(-COLOUR_JITTER, COLOUR_JITTER))) for c in rgb)  # type: ignore[return-value]


def _draw(pen: ImageDraw.ImageDraw, obj: Placed, side: int, fill: tuple[int, int, int]) -> None:
    cx, cy, r = obj.cx * side, obj.cy * side, obj.size * side / 2
    if obj.shape == "cerchio":
        pen.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif obj.shape == "quadrato":
        q = r * 0.85  # a square of the full size looks much bigger than the other shapes
        pen.rectangle((cx - q, cy - q, cx + q, cy + q), fill=fill)
    elif obj.shape == "triangolo":
        pen.polygon([(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)], fill=fill)
    elif obj.shape == "stella":
        points = []
        for k in range(10):
            radius = r if k % 2 == 0 else r * 0.45
            angle = -math.pi / 2 + k * math.pi / 5
            points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
        pen.polygon(points, fill=fill)
    elif obj.shape == "cuore":
        lobe = r * 0.52
        for dx in (-lobe, lobe):
            pen.ellipse((cx + dx - lobe, cy - r * 0.75, cx + dx + lobe, cy - r * 0.75 + 2 * lobe), fill=fill)
        pen.polygon([(cx - 2 * lobe, cy - r * 0.2), (cx + 2 * lobe, cy - r * 0.2), (cx, cy + r)], fill=fill)
    elif obj.shape == "rombo":
        pen.polygon([(cx, cy - r), (cx + r * 0.7, cy), (cx, cy + r), (cx - r * 0.7, cy)], fill=fill)
    else:
        raise ValueError(f"unknown shape {obj.shape!r}")
