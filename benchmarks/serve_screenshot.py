"""docs/img/serve.png: the `clipit serve` page over a trained model's index, in headless Chromium.

    .venv/bin/python benchmarks/serve_screenshot.py --index DEMO/embeddings [--out docs/img/serve.png]

`DEMO` is the folder `clipit demo` wrote: its index of the synthetic retrieval images and the model
trained on the synthetic set. The page searches "un cerchio rosso", then classifies the first result
against four labels, and the whole page is captured. Needs Debian's chromium (/usr/bin/chromium) and
Playwright for Python (both come with `make test`).
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

QUERY = "un cerchio rosso"
LABELS = ["un cerchio rosso", "un quadrato rosso", "un cerchio blu", "due cuori rossi"]
CHROMIUM = "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"clipit serve exited with {server.returncode}")
        try:
            if requests.get(url + "/api/health", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    sys.exit(f"clipit serve did not answer at {url} within {seconds:g} s")


def capture(url: str, picture: Path, out: Path) -> list[str]:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
        try:
            page = browser.new_page(locale="it-IT", viewport={"width": 1100, "height": 900})
            page.goto(url + "/")
            page.fill("#query", QUERY)
            page.fill("#k", "8")
            page.click("#text-search button")
            expect(page.locator("#results img")).to_have_count(8, timeout=60_000)
            page.wait_for_function(
                "() => [...document.querySelectorAll('#results img')]"
                ".every(img => img.complete && img.naturalWidth > 0)"
            )
            page.set_input_files("#classify-image", str(picture))
            page.fill("#labels", "\n".join(LABELS))
            page.click("#classify button")
            expect(page.locator("#probabilities li")).to_have_count(len(LABELS), timeout=90_000)
            page.wait_for_function("() => document.querySelector('#preview').naturalWidth > 0")
            page.screenshot(path=str(out), full_page=True)
            return [row.inner_text() for row in page.locator("#probabilities li").all()]
        finally:
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", type=Path, required=True, help="an `embed --out` folder")
    parser.add_argument("--model", help="the model (default: the one the index names)")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs/img/serve.png"
    )
    args = parser.parse_args()
    url = f"http://127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "clipit.cli.main", "serve", "--index", str(args.index)]
    command += ["--port", url.rsplit(":", 1)[1], *(["--model", args.model] if args.model else [])]
    server = subprocess.Popen(command)
    try:
        wait_healthy(url, server)
        first = requests.get(url + "/api/search", params={"q": QUERY, "k": 1}, timeout=60).json()["results"][
            0
        ]
        print(f"first result for {QUERY!r}: {first['path']} ({first['score']:.3f})")
        for line in capture(url, Path(first["path"]), args.out):
            print(line)
        print(f"wrote {args.out}")
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
