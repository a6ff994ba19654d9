"""`clipit download wit`: WIT's real TSV layout, filters, citation stripping, user agent and 429 retries."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clipit.cli.main import app
from clipit.config.data import WitSource
from clipit.data.sources import wit
from tests.data.sources.helpers import image_of, rows_by_key, summary_of
from tests.support.image_server import fast_download_args

runner = CliRunner()
FILE = "wit_v1.train.all-00000-of-00010.tsv.gz"


def wit_row(
    language: str, image_url: str, caption: str, mime_type: str = "image/jpeg", title: str = "Pagina"
) -> dict:
    row = dict.fromkeys(wit.COLUMNS, "")
    row.update(
        language=language,
        page_url=f"https://{language}.wikipedia.org/wiki/{title}",
        image_url=image_url,
        page_title=title,
        section_title="Storia",
        caption_reference_description=caption,
        mime_type=mime_type,
        original_height="600",
        original_width="800",
        is_main_image="false",
    )
    return row


def write_wit_tsv(path: Path, rows: list[dict], columns: tuple[str, ...] = wit.COLUMNS) -> Path:
    lines = ["\t".join(columns)] + ["\t".join(row[c] for c in columns) for row in rows]
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


def test_citation_markers_are_stripped():
    assert wit.strip_citations("Il Duomo[3] di Milano [27].") == "Il Duomo di Milano."
    assert wit.strip_citations("Anno [1861] [ 4 ]") == "Anno"
    assert wit.strip_citations("Nota [a] resta") == "Nota [a] resta"


@pytest.mark.parametrize(
    ("caption", "fraction"),
    [
        ("Giuseppe Garibaldi", 1.0),  # the opening word is not counted, Garibaldi is
        ("Roma", 1.0),  # a lone capitalised word counts
        ("Il Duomo di Milano visto dalla piazza", 0.5),  # Duomo, Milano of Duomo/Milano/visto/piazza
        ("Veduta del porto di Genova", 0.5),
        ("una strada di campagna", 0.0),
        ("", 0.0),
    ],
)
def test_proper_noun_fraction(caption, fraction):
    assert wit.proper_noun_fraction(caption) == fraction


def test_jpeg_or_png_by_mime_type_else_by_url_suffix():
    assert wit.is_jpeg_or_png("image/jpeg", "x.svg") and wit.is_jpeg_or_png("image/png", "")
    assert not wit.is_jpeg_or_png("image/svg+xml", "x.jpg")
    assert wit.is_jpeg_or_png("", "https://upload.wikimedia.org/a/B.JPG") and not wit.is_jpeg_or_png(
        "", "a.gif"
    )


def test_limit_counts_kept_rows_and_stops_reading(tmp_path):
    rows = [wit_row("it", f"http://x/{i}.jpg", f"una foto numero {i}") for i in range(5)]
    rows.insert(1, wit_row("it", "http://x/e.jpg", ""))
    tsv = write_wit_tsv(tmp_path / FILE, rows)
    kept, read = wit.read_rows(WitSource(tsv=[tsv], limit=2))
    assert [(r["row"], r["reason"]) for r in kept] == [
        (0, None),
        (1, "empty caption_reference_description"),
        (2, None),
    ]
    assert read == 6  # one chunk was read


def test_download_filters_strips_identifies_itself_and_survives_a_429(tmp_path, image_server):
    image_server.required_agent = "clipit-jax/0.1"  # like Wikimedia: generic user agents get 403
    duplicate = image_server.url("ok/120x90/w0.jpg")
    rows = [
        wit_row("it", duplicate, "Il Duomo di Milano visto dalla piazza[1] [27].", title="Duomo_di_Milano"),
        wit_row("en", image_server.url("ok/50x50/w1.jpg"), "An English caption"),
        wit_row("it", image_server.url("ok/50x50/w2.jpg"), ""),
        wit_row("it", image_server.url("ok/50x50/w3.svg"), "Una mappa della regione", "image/svg+xml"),
        wit_row("it", image_server.url("ok/50x50/w4.jpg"), "Giuseppe Garibaldi"),
        wit_row(
            "it", image_server.url("flaky/64x48/w5.png"), 'Una "vecchia" stazione ferroviaria', "image/png"
        ),
        wit_row("it", duplicate, "Piazza del Duomo al tramonto"),
        wit_row("it", image_server.url("missing/w7.jpg"), "Un ponte sul fiume"),
    ]
    tsv = write_wit_tsv(tmp_path / FILE, rows)
    out = tmp_path / "wit"
    args = ["download", "wit", "--tsv", str(tsv), "--lang", "it", "--out", str(out)]

    # No immediate retry: the 429 is left to clipit's rate-limit round, after a wait.
    settings = fast_download_args(samples_per_shard=10, retries=0, rate_limit_rounds=1, rate_limit_wait=0.5)
    result = runner.invoke(app, [*args, *settings])

    assert result.exit_code == 0, result.output
    got = rows_by_key(out)
    key = f"wit/{FILE}/"
    assert {k.removeprefix(key): (r["status"], r["error"], r["caption"]) for k, r in got.items()} == {
        "0": ("ok", None, "Il Duomo di Milano visto dalla piazza."),
        "2": ("filtered", "empty caption_reference_description", None),
        "3": ("filtered", "not JPEG/PNG (image/svg+xml)", "Una mappa della regione"),
        "4": ("filtered", "mostly proper nouns", "Giuseppe Garibaldi"),
        "5": ("ok", None, 'Una "vecchia" stazione ferroviaria'),
        "6": ("ok", None, "Piazza del Duomo al tramonto"),
        "7": ("failed", "download: HTTP Error 404: Not Found", "Un ponte sul fiume"),
    }
    assert all(r["lang"] == "it" and r["caption_en"] is None and r["source"] == "wit" for r in got.values())
    # One image on two pages: fetched once, both rows point at it, and it sits in one split only.
    first, second = got[key + "0"], got[key + "6"]
    assert (first["shard"], first["index"], first["split"]) == (
        second["shard"],
        second["index"],
        second["split"],
    )
    assert image_of(out, first).size == (120, 90) and image_of(out, got[key + "5"]).size == (64, 48)
    requests = image_server.paths()
    assert requests.count("/ok/120x90/w0.jpg") == 1
    first_try, second_try = image_server.times("/flaky/64x48/w5.png")  # 429, then the retry round got it
    assert second_try - first_try >= 0.5
    assert got[key + "5"]["shard"] == "images-retry-1/00000.tar"
    assert "1 URLs were rate-limited (HTTP 429/503): retry round 1 in 0.5 s" in result.stderr
    assert not any(path.endswith(("w1.jpg", "w2.jpg", "w3.svg", "w4.jpg")) for path in requests)
    assert all("clipit-jax/0.1" in agent for agent in image_server.agents())
    summary = summary_of(out)
    assert (summary["rows"], summary["ok"], summary["failed"], summary["filtered"], summary["rows_read"]) == (
        7,
        3,
        1,
        3,
        8,
    )


def test_proper_noun_filter_can_be_turned_off(tmp_path):
    tsv = write_wit_tsv(tmp_path / FILE, [wit_row("it", "http://x/a.jpg", "Giuseppe Garibaldi")])
    kept, _ = wit.read_rows(WitSource(tsv=[tsv], proper_noun_filter=False))
    assert kept[0]["reason"] is None


def test_bad_wit_tsv_is_one_line_naming_the_file_and_exit_2(tmp_path):
    short = write_wit_tsv(
        tmp_path / "short.tsv.gz", [wit_row("it", "http://x/a.jpg", "c")], columns=wit.COLUMNS[:3]
    )
    result = runner.invoke(app, ["download", "wit", "--tsv", str(short), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"error: {short}: missing column(s) caption_reference_description, mime_type"
    )
    good = "\t".join(["it"] * 17)
    for name, bad_line, fields in (
        ("ragged.tsv", "\t".join(["it"] * 18), 18),
        ("cut.tsv", "it\thttp://x/b.jpg", 2),
    ):
        tsv = tmp_path / name  # a stray tab, or a line cut short: named, not padded into a row
        tsv.write_text("\n".join(["\t".join(wit.COLUMNS), good, bad_line, good]) + "\n")
        result = runner.invoke(app, ["download", "wit", "--tsv", str(tsv), "--out", str(tmp_path / "o")])
        assert result.exit_code == 2
        assert result.stderr.startswith(
            f"error: {tsv}: malformed TSV: a row has {fields} fields, the header 17: {bad_line!r}"
        )
        assert len(result.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "o").exists()


def test_quoted_fields_empty_fields_and_number_like_text_are_read_as_written(tmp_path):
    """A quoted description may hold tabs, newlines and doubled quotes; an empty field is "" (filtered as
    such), and a field that looks like a number stays text."""
    row = wit_row("it", "http://x/a.jpg", "")
    lines = ["\t".join(wit.COLUMNS)]
    quoted = dict(row, caption_reference_description='"Il ""Duomo""\tdi\nMilano"', original_height="0042")
    lines.append("\t".join(quoted[c] for c in wit.COLUMNS))
    lines.append("\t".join(row[c] for c in wit.COLUMNS))
    tsv = tmp_path / FILE
    with gzip.open(tsv, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    rows, read = wit.read_rows(WitSource(tsv=[tsv], proper_noun_filter=False))
    assert read == 2 and [r["row"] for r in rows] == [0, 1]
    assert rows[0]["caption"] == 'Il "Duomo" di Milano' and rows[0]["reason"] is None
    assert rows[0]["record"]["original_height"] == "0042"
    assert rows[1]["caption"] == "" and rows[1]["reason"] == "empty caption_reference_description"
