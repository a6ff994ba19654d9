"""`clipit embed DIR --model M > vecs.npy` as a whole process against the transformers loop a user writes.

    .venv/bin/python benchmarks/embed_process.py                    # ViT-B/32 + BERT-base, 512 photos
    .venv/bin/python benchmarks/embed_process.py --images 128 --rounds 1

Both sides are fresh processes on the same JPEG files (500x375) and the same random-init
VisionTextDualEncoder folder saved by transformers (ViT-B/32 image tower, BERT-base text tower: the shape
of clip-italian), so interpreter start, imports, model loading and compilation are in both times:
- transformers: `VisionTextDualEncoderModel.from_pretrained`, CLIPImageProcessor, `get_image_features`
  under inference_mode in batches of `--batch-size`, vectors saved with numpy;
- clipit: the `clipit embed` command, batch size `--batch-size`.
clipit runs once cold (an empty compilation cache in a temporary XDG_CACHE_HOME) and then warm, the
sides alternating `--rounds` times; wall time and the child's peak RSS are reported, medians of the
warm rounds for the ratio. A separate process times clipit's model load alone (open_model plus
reading the image tower). Targets: >= 1.5x the transformers loop, peak memory within 1.2x of it,
model load under 1.5 s. Results go to docs/benchmarks.md ("## Embed: whole process").
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embed import write_photos  # noqa: E402  (benchmarks/ is not a package)

TORCH_LOOP = """
import sys
import numpy as np
import torch
from PIL import Image
from transformers import CLIPImageProcessor, VisionTextDualEncoderModel

model_dir, batch, out, *paths = sys.argv[1:]
batch = int(batch)
model = VisionTextDualEncoderModel.from_pretrained(model_dir).eval()
processor = CLIPImageProcessor.from_pretrained(model_dir)
vectors = []
with torch.inference_mode():
    for start in range(0, len(paths), batch):
        images = [Image.open(p).convert("RGB") for p in paths[start : start + batch]]
        features = model.get_image_features(**processor(images, return_tensors="pt"))
        features = getattr(features, "pooler_output", features)
        vectors.append(torch.nn.functional.normalize(features, dim=-1).numpy())
np.save(out, np.concatenate(vectors))
"""

LOAD_ONLY = """
import sys, time
start = time.perf_counter()
from clipit.encode import open_model
imported = time.perf_counter()
encoder = open_model(sys.argv[1])
encoder._function("image")  # reads the image tower (compilation comes with the first batch)
done = time.perf_counter()
print(f"{imported - start:.3f} {done - imported:.3f}")
"""

# Runs a command and reports its wall time and peak RSS (RUSAGE_CHILDREN of this one child only).
MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
with open(sys.argv[1], "wb") as out:
    code = subprocess.run(sys.argv[2:], stdout=out).returncode
wall = time.perf_counter() - start
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"code": code, "wall": wall, "peak_mb": peak_kb / 1024}))
"""


def write_model(folder: Path) -> Path:
    import torch
    from transformers import (
        BertConfig,
        BertTokenizer,
        CLIPImageProcessor,
        CLIPVisionConfig,
        VisionTextDualEncoderConfig,
        VisionTextDualEncoderModel,
    )

    vision = CLIPVisionConfig(
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        image_size=224,
        patch_size=32,
    )
    text = BertConfig(
        vocab_size=32102,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
    )  # dbmdz/bert-base-italian-xxl-uncased's sizes
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz"]
    torch.manual_seed(0)
    config = VisionTextDualEncoderConfig.from_vision_text_configs(vision, text, projection_dim=512)
    VisionTextDualEncoderModel(config=config).eval().save_pretrained(folder)
    BertTokenizer(vocab={w: i for i, w in enumerate(words)}).save_pretrained(folder)
    CLIPImageProcessor().save_pretrained(folder)  # 224 px, CLIP mean/std
    return folder


def measure(command: list[str], stdout: Path, env: dict) -> dict:
    process = subprocess.run(
        [sys.executable, "-c", MEASURE, str(stdout), *command],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    result = json.loads(process.stdout.strip().splitlines()[-1])
    if result["code"]:
        raise SystemExit(f"{command[:4]} failed with exit code {result['code']}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    clipit = Path(sys.executable).with_name("clipit")
    print(
        f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} at start, "
        f"{args.images} photos 500x375, batch {args.batch_size}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = write_model(tmp / "model")
        paths = [str(p) for p in write_photos(tmp / "photos", args.images)]
        env = {**os.environ, "XDG_CACHE_HOME": str(tmp / "cache"), "NO_ALBUMENTATIONS_UPDATE": "1"}
        env.pop("JAX_COMPILATION_CACHE_DIR", None)
        ours_cmd = [
            str(clipit),
            "embed",
            str(tmp / "photos"),
            "--model",
            str(model),
            "--set",
            f"embed.batch_size={args.batch_size}",
        ]
        theirs_cmd = [
            sys.executable,
            "-c",
            TORCH_LOOP,
            str(model),
            str(args.batch_size),
            str(tmp / "torch.npy"),
            *paths,
        ]
        cold = measure(ours_cmd, tmp / "clipit.npy", env)
        print(f"clipit cold (empty compilation cache): {cold['wall']:.1f} s, peak {cold['peak_mb']:.0f} MB")
        runs: dict[str, list[dict]] = {"clipit": [], "transformers": []}
        for _ in range(args.rounds):
            runs["transformers"].append(measure(theirs_cmd, tmp / "torch.log", env))
            runs["clipit"].append(measure(ours_cmd, tmp / "clipit.npy", env))
            theirs, ours = runs["transformers"][-1]["wall"], runs["clipit"][-1]["wall"]
            print(
                f"  round: transformers {theirs:.1f} s, clipit {ours:.1f} s, {theirs / ours:.2f}x "
                f"(load {os.getloadavg()[0]:.1f})"
            )
        import numpy as np

        gap = np.abs(np.load(tmp / "clipit.npy") - np.load(tmp / "torch.npy")).max()
        loads = [
            subprocess.run(
                [sys.executable, "-c", LOAD_ONLY, str(model)],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            ).stdout.split()
            for _ in range(3)
        ]
    wall = {name: statistics.median(r["wall"] for r in rs) for name, rs in runs.items()}
    peak = {name: statistics.median(r["peak_mb"] for r in rs) for name, rs in runs.items()}
    imports, load = (statistics.median(float(x[i]) for x in loads) for i in (0, 1))
    print(f"max |clipit - transformers| over {args.images} vectors: {gap:.2e}")
    print(f"transformers loop : {wall['transformers']:6.1f} s  peak {peak['transformers']:6.0f} MB")
    print(f"clipit embed      : {wall['clipit']:6.1f} s  peak {peak['clipit']:6.0f} MB")
    print(f"speed ratio       : {wall['transformers'] / wall['clipit']:.2f}x   (target >= 1.5x)")
    print(f"memory ratio      : {peak['clipit'] / peak['transformers']:.2f}x   (target <= 1.2x)")
    print(f"model load        : {load:.2f} s after {imports:.2f} s of imports   (target < 1.5 s)")
    print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
