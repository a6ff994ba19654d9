"""Zero-shot classification of one image, with a localisation heatmap per label.

Probabilities: each label's prompts (the templates filled with it) are embedded, normalised, averaged
and re-normalised, exactly as `clipit eval zero-shot` builds its classifier; the image's cosine to each
label vector, times the model's logit scale, goes through a softmax over the labels.

Heatmap (the sliding-window method of CLIP-Italian's localisation demo): the image is cut into a grid
of GRID x GRID cells; every window of WINDOW x WINDOW cells is cropped, resized like any image and
embedded; each window gets the label probabilities above; a cell's value is the mean over the windows
that cover it, rescaled per label to [0, 1] so that the page can draw it as an overlay.
"""

from __future__ import annotations

import asyncio

import numpy as np
from PIL import Image

from clipit.eval.classnames import fill
from clipit.serve.batcher import Batcher

GRID = 6  # cells per side of the heatmap
WINDOW = 3  # window side in cells: half the image, big enough for CLIP to see an object
DEFAULT_TEMPLATES = [  # Italian prompts in the style of CLIP's ImageNet templates
    "una foto di {}.",
    "una foto di un {}.",
    "una foto di una {}.",
    "un'immagine di {}.",
    "una bella foto di {}.",
    "una foto ravvicinata di {}.",
]


def windows(image: Image.Image, grid: int = GRID, window: int = WINDOW) -> list[tuple[int, int, Image.Image]]:
    """(row, column, crop) of every window of `window` x `window` cells, row-major."""
    width, height = image.size
    xs = np.linspace(0, width, grid + 1).round().astype(int)
    ys = np.linspace(0, height, grid + 1).round().astype(int)
    out = []
    for row in range(grid - window + 1):
        for col in range(grid - window + 1):
            box = (xs[col], ys[row], xs[col + window], ys[row + window])
            out.append((row, col, image.crop(tuple(int(v) for v in box))))
    return out


def label_vectors(text_vectors: np.ndarray, labels: int, templates: int) -> np.ndarray:
    vectors = text_vectors.reshape(labels, templates, -1)
    mean = (vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)).mean(axis=1)
    return mean / np.linalg.norm(mean, axis=-1, keepdims=True)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def logit_scale(encoder) -> float:
    """The model's learned temperature (stored as a log), capped at CLIP's 100."""
    value = getattr(encoder.model, "logit_scale", None)
    if value is None:
        return 100.0
    return float(min(100.0, np.exp(np.asarray(value[...], np.float32))))


async def classify(batcher: Batcher, image: Image.Image, labels: list[str], templates: list[str]) -> dict:
    """{"results": [{"label", "probability", "heatmap": [[GRID x GRID]]}], sorted by probability."""
    prompts = [fill(template, label) for label in labels for template in templates]
    crops = windows(image)
    texts, images = await asyncio.gather(
        asyncio.wrap_future(batcher.encode_texts(prompts)),
        asyncio.wrap_future(batcher.encode_images([image] + [crop for _, _, crop in crops])),
    )
    classifier = label_vectors(texts, len(labels), len(templates))
    probabilities = softmax(logit_scale(batcher.encoder) * images @ classifier.T)  # [1 + windows, labels]
    heat = np.zeros((GRID, GRID, len(labels)))
    cover = np.zeros((GRID, GRID, 1))
    for (row, col, _), window_probs in zip(crops, probabilities[1:], strict=True):
        heat[row : row + WINDOW, col : col + WINDOW] += window_probs
        cover[row : row + WINDOW, col : col + WINDOW] += 1
    heat /= cover
    low, high = heat.min(axis=(0, 1)), heat.max(axis=(0, 1))
    heat = (heat - low) / np.maximum(high - low, 1e-9)
    results = [
        {
            "label": label,
            "probability": float(probabilities[0, i]),
            "heatmap": heat[:, :, i].round(4).tolist(),
        }
        for i, label in enumerate(labels)
    ]
    results.sort(key=lambda r: -r["probability"])
    return {"results": results, "grid": GRID, "templates": templates}
