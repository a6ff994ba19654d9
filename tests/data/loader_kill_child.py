"""A training-like process for test_loader_orphans.py: loads batches with 2 worker processes forever.

argv: shards folder, tokenizer folder. Prints "ready" once batches flow; the test then kills it with -9.
"""

from __future__ import annotations

import sys
import time

from clipit.config.data import LoaderSettings
from clipit.data.loader import make_loader


def main() -> None:
    shards, tokenizer = sys.argv[1:3]
    settings = LoaderSettings(workers=2, shuffle_window=2, prefetch=2)
    loader = make_loader(
        shards, "train", global_batch_size=8, tokenizer=tokenizer, max_text_length=10, image_size=64,
        settings=settings,
    )  # fmt: skip
    for step, _ in enumerate(loader):
        if step == 2:
            print("ready", flush=True)
        time.sleep(0.05)  # slower than the workers: their buffers (shared memory) stay full


if __name__ == "__main__":
    main()
