"""`clipit translate` through the CLI: flags over config, stdout/stderr, one-line errors with exit 2."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from clipit.cli.main import app
from clipit.data import manifest
from tests.support.libre_server import fake_translate
from tests.support.translate_data import captions, write_manifest


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_translate_command_end_to_end(server, tmp_path):
    english = captions(25, seed=9)
    source = write_manifest(tmp_path / "src" / "manifest.parquet", english)
    config = tmp_path / "clipit.toml"
    config.write_text(
        f'[translate]\nbackend = "google"\ncache = "{tmp_path / "cache.sqlite"}"\nrequests_per_second = 500.0\n'
    )
    result = _invoke(
        "--config", str(config), "translate", "--input", str(tmp_path / "src"), "--to", "it",
        "--backend", "libre", "--endpoint", server.url.rstrip("/"), "--sample", "5",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(source)  # the result on stdout: the manifest written
    assert "translated 25, cached 0, failed 0" in result.stderr
    assert f"requests sent {server.requests}" in result.stderr
    rows = manifest.read(source).to_pylist()
    assert [row["caption"] for row in rows] == [fake_translate(text) for text in english]
    assert (tmp_path / "src" / "manifest.review.csv").is_file()
    assert (tmp_path / "src" / "manifest.review.html").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "{tmp}/nope.parquet"], "nope.parquet does not exist"),
        (["--backend", "babelfish"], "unknown backend 'babelfish'"),
        (["--backend", "libre"], "the libre backend needs a server URL"),
        (["--backend", "libre", "--endpoint", "localhost:5000"], "is not an http(s) URL"),
        (
            ["--backend", "deepl", "--set", "translate.api_key_env=CLIPIT_TEST_NO_SUCH_KEY"],
            "CLIPIT_TEST_NO_SUCH_KEY",
        ),
        (["--to", "en"], "is the source language"),
        (
            ["--backend", "libre", "--endpoint", "http://127.0.0.1:9/", "--to", "xx"],
            "does not support 'en' -> 'xx'",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    write_manifest(tmp_path / "manifest.parquet", ["a red dog"])
    base = [
        "translate",
        "--input",
        str(tmp_path / "manifest.parquet"),
        "--set",
        f"translate.cache={tmp_path}/c.sqlite",
    ]
    result = _invoke(*base, *[arg.replace("{tmp}", str(tmp_path)) for arg in args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error: ")
    assert manifest.read(tmp_path / "manifest.parquet").column("caption").null_count == 1  # nothing changed
