"""Images/s of `clipit embed`'s encoder against transformers' PyTorch pipeline, same model and files.

    .venv/bin/python benchmarks/embed.py                      # ViT-S/32-like tower, 224 px, 128 photos
    .venv/bin/python benchmarks/embed.py --size base --images 64   # ViT-B/32 (clip-italian's tower)

Both sides start from the same JPEG files on disk (500x375, the size of a typical COCO photo) and end
with L2-normalised image embeddings, so decoding and preprocessing are in both times:
- PyTorch: PIL open + convert, CLIPImageProcessor, `get_image_features` under inference_mode, batch by
  batch (what a transformers user writes);
- clipit: `open_model(folder).encode_images(paths)`, what `clipit embed` runs (decode and transform in
  threads ahead of a jitted forward pass).
The model is one random-init VisionTextDualEncoder folder that both load. Sides alternate `--rounds`
times (after a warm-up that includes jit compilation) and the median of each is reported, so load from
other processes hits both alike. Target: ratio >= 1.2x. Results go to docs/benchmarks.md ("## Embed").
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

SIZES = {
    # hidden, layers, heads, mlp; patch 32 at 224 px (49 tokens) as in ViT-B/32
    "small": (384, 6, 6, 1536),
    "base": (768, 12, 12, 3072),
}


def write_model(folder: Path, size: str) -> Path:
    import torch
    from transformers import (
        BertConfig,
        BertTokenizer,
        CLIPImageProcessor,
        CLIPVisionConfig,
        VisionTextDualEncoderConfig,
        VisionTextDualEncoderModel,
    )

    hidden, layers, heads, mlp = SIZES[size]
    vision = CLIPVisionConfig(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=mlp,
        image_size=224,
        patch_size=32,
    )
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz", "gatto", "foto"]
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(words)})  # not vocab_file= (ignored in v5)
    text = BertConfig(
        vocab_size=len(tokenizer.vocab),
        hidden_size=128,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=256,
    )
    torch.manual_seed(0)
    config = VisionTextDualEncoderConfig.from_vision_text_configs(vision, text, projection_dim=512)
    VisionTextDualEncoderModel(config=config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessor().save_pretrained(folder)  # 224 px, CLIP mean/std
    return folder


def write_photos(folder: Path, count: int) -> list[Path]:
    """Smooth random colour fields (JPEG-realistic, unlike pure noise)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((500, 375), Image.Resampling.BICUBIC)
        path = folder / f"{i:05d}.jpg"
        image.save(path, quality=90)
        paths.append(path)
    return paths


def torch_pipeline(folder: Path, batch_size: int):
    import torch
    from transformers import CLIPImageProcessor, VisionTextDualEncoderModel

    model = VisionTextDualEncoderModel.from_pretrained(folder).eval()
    processor = CLIPImageProcessor.from_pretrained(folder)

    def run(paths: list[Path]) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for start in range(0, len(paths), batch_size):
                images = [Image.open(p).convert("RGB") for p in paths[start : start + batch_size]]
                pixels = processor(images, return_tensors="pt")["pixel_values"]
                features = model.get_image_features(pixel_values=pixels)
                features = getattr(features, "pooler_output", features)
                out.append(torch.nn.functional.normalize(features, dim=-1).numpy())
        return np.concatenate(out)

    return run


def clipit_pipeline(folder: Path, batch_size: int, dtype: str):
    from clipit.encode import open_model

    encoder = open_model(str(folder), dtype=dtype)
    return lambda paths: encoder.encode_images(paths, batch_size=batch_size).vectors


def timed(fn, paths) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    result = fn(paths)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    args = parser.parse_args()
    import torch

    print(
        f"cpus {os.cpu_count()}, torch threads {torch.get_num_threads()}, size {args.size}, "
        f"{args.images} photos 500x375, batch {args.batch_size}, dtype {args.dtype}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_model(Path(tmp) / "model", args.size)
        paths = write_photos(Path(tmp) / "photos", args.images)
        ours, theirs = (
            clipit_pipeline(folder, args.batch_size, args.dtype),
            torch_pipeline(folder, args.batch_size),
        )
        _, a = timed(ours, paths[: args.batch_size])  # warm-up: jit compile, caches, thread pools
        _, b = timed(theirs, paths[: args.batch_size])
        print(f"max |clipit - torch| on the warm-up batch: {np.abs(a - b).max():.2e}")
        times = {"clipit": [], "torch": []}
        for _ in range(args.rounds):
            times["clipit"].append(timed(ours, paths)[0])
            times["torch"].append(timed(theirs, paths)[0])
    rate = {name: args.images / statistics.median(values) for name, values in times.items()}
    print(f"clipit embed : {rate['clipit']:8.1f} images/s")
    print(f"transformers : {rate['torch']:8.1f} images/s")
    print(f"ratio        : {rate['clipit'] / rate['torch']:.2f}x")


if __name__ == "__main__":
    main()
