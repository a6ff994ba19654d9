"""The `clipit serve` page in headless Chromium (the system's, driven by Playwright): a text search whose
result images load, then an upload with labels that shows probabilities and the heatmap."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium package (/usr/bin/chromium)"
)


def test_search_and_classify_in_the_page(server, served_index, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    picture = tmp_path / "scena.png"  # a red square on the left, a blue disc on the right
    scene = Image.new("RGB", (240, 160), "white")
    ImageDraw.Draw(scene).rectangle((15, 40, 95, 120), fill=(210, 20, 20))
    ImageDraw.Draw(scene).ellipse((140, 30, 230, 120), fill=(20, 20, 210))
    scene.save(picture)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(locale="it-IT", viewport={"width": 1100, "height": 1000})
            outside = []  # any request that leaves the server: the page must work offline
            local = (server.url, "blob:" + server.url, "data:")  # the preview of the upload is a blob: URL
            page.on("request", lambda r: None if r.url.startswith(local) else outside.append(r.url))
            page.goto(server.url + "/")
            expect(page.locator("#status")).to_have_text("pronto: 9 immagini")
            expect(page.locator("#text-search button")).to_have_text("Cerca")

            page.fill("#query", "un quadrato rosso")
            page.fill("#k", "6")
            page.click("#text-search button")
            images = page.locator("#results img")
            expect(images).to_have_count(6, timeout=60_000)
            page.wait_for_function(
                "() => [...document.querySelectorAll('#results img')]"
                ".every(img => img.complete && img.naturalWidth > 0)"
            )

            page.set_input_files("#classify-image", str(picture))
            page.fill("#labels", "un quadrato rosso\nun cerchio blu\nun gatto")
            page.click("#classify button")
            rows = page.locator("#probabilities li")
            expect(rows).to_have_count(3, timeout=90_000)  # the first classify compiles the batch shapes
            expect(page.locator("#classify-message")).to_have_text("")
            shown = [float(row.get_attribute("data-probability")) for row in rows.all()]
            assert sum(shown) == pytest.approx(1.0, abs=1e-4) and shown == sorted(shown, reverse=True)
            assert "%" in rows.first.inner_text()
            page.wait_for_function("() => document.querySelector('#preview').naturalWidth > 0")
            painted = page.evaluate(
                """() => { const c = document.querySelector('#heatmap');
                           const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                           let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
                           return [c.width, c.height, n]; }"""
            )
            assert painted[0] > 0 and painted[1] > 0 and painted[2] == painted[0] * painted[1]

            page.click("#lang")
            expect(page.locator("#text-search button")).to_have_text("Search")
            screenshot = tmp_path / "serve.png"
            page.screenshot(path=str(screenshot), full_page=True)
            assert screenshot.stat().st_size > 10_000
            assert outside == []
        finally:
            browser.close()
    docs_copy = Path(__file__).resolve().parents[2] / "docs" / "img" / "serve.png"
    if docs_copy.parent.is_dir() and not docs_copy.exists():
        shutil.copyfile(screenshot, docs_copy)  # the docs' picture of the page, made once
