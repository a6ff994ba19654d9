"""Requests and wall time per 10k captions: `clipit translate` against deep-translator's `translate_batch`.

Both talk to the same loopback LibreTranslate-compatible server (tests/support/libre_server.py), which
can add a fixed delay per request to stand in for a real provider's round trip. deep-translator sends one
request per caption, one after the other; clipit packs captions up to the character limit and keeps
`concurrency` requests in flight. The run is scaled down (2,000 captions by default) and extrapolated
to 10k. clipit's time includes reading and writing the manifest and the cache.

    python benchmarks/translate.py                       # 2,000 captions; 0 and 20 ms per request
    python benchmarks/translate.py --n 500 --latency 0.1
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the repo

from deep_translator import LibreTranslator  # noqa: E402

from clipit.config.translate import TranslateConfig  # noqa: E402
from clipit.data import manifest  # noqa: E402
from clipit.data.translate import run  # noqa: E402
from tests.support.libre_server import LibreServer, fake_translate  # noqa: E402
from tests.support.translate_data import captions  # noqa: E402


def baseline(texts: list[str], latency: float) -> tuple[int, float]:
    with LibreServer() as server:
        server.delay = latency
        translator = LibreTranslator(source="en", target="it", api_key="bench", custom_url=server.url)
        started = time.perf_counter()
        out = translator.translate_batch(texts)
        seconds = time.perf_counter() - started
        assert out == [fake_translate(t) for t in texts]
        return server.requests, seconds


def clipit(texts: list[str], latency: float, concurrency: int, folder: Path) -> tuple[int, float]:
    rows = [
        {"key": f"b/{i}", "source": "bench", "caption_en": t, "status": "ok", "split": "train"}
        for i, t in enumerate(texts)
    ]
    path = manifest.write(manifest.from_rows(rows), folder / "manifest.parquet")
    with LibreServer() as server:
        server.delay = latency
        cfg = TranslateConfig(
            input=path,
            backend="libre",
            endpoint=server.url,
            cache=folder / f"cache-{latency}.sqlite",
            concurrency=concurrency,
            requests_per_second=1e6,  # the provider's own limit is what a real run would set here
        )
        started = time.perf_counter()
        summary = run(cfg)
        seconds = time.perf_counter() - started
        assert summary.failed == 0 and server.requests == summary.requests
        captions_out = manifest.read(path).column("caption").to_pylist()
        assert captions_out == [fake_translate(t) for t in texts]
        return server.requests, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="captions (distinct, about 40 characters)")
    parser.add_argument("--latency", type=float, nargs="+", default=[0.0, 0.02], help="seconds per request")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    texts = captions(args.n, seed=0)
    scale = 10_000 / args.n
    print(f"{args.n} captions, extrapolated per 10k; clipit concurrency {args.concurrency}")
    print("| latency per request | deep-translator requests | s | clipit requests | s | speed-up |")
    print("|---|---|---|---|---|---|")
    for latency in args.latency:
        base_requests, base_seconds = baseline(texts, latency)
        with tempfile.TemporaryDirectory() as tmp:
            ours_requests, ours_seconds = clipit(texts, latency, args.concurrency, Path(tmp))
        print(
            f"| {latency * 1000:.0f} ms | {base_requests * scale:,.0f} | {base_seconds * scale:.1f} "
            f"| {ours_requests * scale:,.0f} | {ours_seconds * scale:.2f} | {base_seconds / ours_seconds:.0f}x |"
        )


if __name__ == "__main__":
    main()
