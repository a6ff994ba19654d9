"""`clipit translate` against a real loopback server that refuses, times out or is gone.

Secrets never reach stderr or any file; a run where too many captions fail exits 2 naming the most
common error and keeps what succeeded; bad outputs fail before any request; caches are per endpoint.
"""

from __future__ import annotations

import socket

from typer.testing import CliRunner

from clipit.cli.main import app
from clipit.config.translate import TranslateConfig
from clipit.data import manifest
from clipit.data.translate.redact import redact, secrets_of
from tests.support.libre_server import LibreServer, fake_translate
from tests.support.translate_data import captions, write_manifest

KEY = "sk-live-SECRET-4711"
PASSWORD = "pw-SECRET-0815"


class RefusingServer(LibreServer):
    """Answers every request 403, echoing the key it was sent (as some real servers do)."""

    def _answer(self, number: int, params: dict[str, str]) -> tuple[int, dict[str, str] | None]:
        return 403, {"error": f"Invalid API key: {params.get('api_key')}"}


def _invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, list(args), env=env)


def _translate(tmp_path, endpoint: str, *extra: str, env: dict[str, str] | None = None):
    return _invoke(
        "translate", "--input", str(tmp_path / "src"), "--to", "it", "--backend", "libre",
        "--endpoint", endpoint, "--set", f"translate.cache={tmp_path / 'cache.sqlite'}",
        "--set", "translate.backoff=0.01", "--set", "translate.requests_per_second=1000.0", *extra,
        env=env,
    )  # fmt: skip


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_refused_key_appears_nowhere(tmp_path):
    english = captions(6, seed=1)
    source = write_manifest(tmp_path / "src" / "manifest.parquet", english)
    with RefusingServer() as server:
        endpoint = server.url.replace("http://", f"http://bob:{PASSWORD}@")
        result = _translate(tmp_path, endpoint, "--sample", "3", env={"CLIPIT_TRANSLATE_API_KEY": KEY})
    assert result.exit_code == 2, result.output
    assert "HTTP 403" in result.stderr and "***" in result.stderr  # the error is named, the key is not
    assert len(result.stderr.strip().splitlines()) == 1
    for text in (KEY, PASSWORD, "SECRET"):
        assert text not in result.output
        for path in tmp_path.rglob("*"):  # manifest (written in place), review sheets, cache and its WAL
            if path.is_file():
                assert text.encode() not in path.read_bytes(), path
    errors = manifest.read(source).column("error").to_pylist()
    assert all(error.startswith("translate: ") for error in errors)


def test_written_config_never_holds_endpoint_credentials(tmp_path):
    endpoint = f"http://bob:{PASSWORD}@translate.example:5000/?api_key={KEY}"
    result = _invoke("config", "show", "--set", f"translate.endpoint={endpoint}")
    assert result.exit_code == 0, result.output
    assert 'endpoint = "http://***@translate.example:5000/?api_key=***"' in result.stdout
    assert "SECRET" not in result.stdout


def test_redact_covers_every_secret_of_the_config(monkeypatch):
    monkeypatch.setenv("CLIPIT_TEST_KEY", "k/ey+1")
    cfg = TranslateConfig(
        backend="libre", endpoint="http://robert:p%40ss@h/?token=abcd", api_key_env="CLIPIT_TEST_KEY"
    )
    secrets = secrets_of(cfg)
    text = "key k/ey+1 or k%2Fey%2B1, user robert, password p@ss or p%40ss, token abcd, a u"
    assert redact(text, secrets) == "key *** or ***, user ***, password *** or ***, token ***, a u"


def test_all_failed_exits_2_naming_the_error_and_a_rerun_pays_only_for_the_rest(tmp_path):
    english = captions(10, seed=2)
    source = write_manifest(tmp_path / "src" / "manifest.parquet", english)
    with LibreServer() as server:
        server.reject = set(english[:6])  # the packed request is refused, then these six one by one
        result = _translate(tmp_path, server.url)
        assert result.exit_code == 2, result.output
        assert "6 of 10 rows failed (60%" in result.stderr
        assert "most common error: HTTP 400" in result.stderr
        rows = manifest.read(source).to_pylist()
        assert [row["caption"] for row in rows[6:]] == [fake_translate(text) for text in english[6:]]
        assert all(row["caption"] is None for row in rows[:6])

        server.reject = set()
        again = _translate(tmp_path, server.url)
        assert again.exit_code == 0, again.output
        assert "translated 6, cached 0, failed 0" in again.stderr  # the other four are in the manifest
        assert all(server.translated[text] == 1 for text in english)  # nothing paid for twice
    assert [row["caption"] for row in manifest.read(source).to_pylist()] == [
        fake_translate(t) for t in english
    ]


def test_a_dead_endpoint_exits_2_even_with_one_request(tmp_path):
    # five captions are one packed request: a single failure, which never reached the abort rule
    write_manifest(tmp_path / "src" / "manifest.parquet", captions(5, seed=3))
    result = _translate(tmp_path, f"http://127.0.0.1:{_closed_port()}/", "--set", "translate.retries=1")
    assert result.exit_code == 2, result.output
    assert "5 of 5 rows failed (100%" in result.stderr
    assert "most common error: gave up after 1 retries: ConnectionError" in result.stderr


def test_timeouts_exit_2(tmp_path):
    write_manifest(tmp_path / "src" / "manifest.parquet", captions(3, seed=4))
    with LibreServer() as server:
        server.delay = 1.0
        result = _translate(
            tmp_path, server.url, "--set", "translate.retries=0", "--set", "translate.timeout=0.2"
        )
    assert result.exit_code == 2, result.output
    assert "most common error: gave up after 0 retries" in result.stderr
    assert "Timeout" in result.stderr


def test_max_failed_fraction_allows_a_few_failures(tmp_path):
    english = captions(10, seed=5)
    write_manifest(tmp_path / "src" / "manifest.parquet", english)
    with LibreServer() as server:
        server.reject = {english[0]}
        allowed = _translate(tmp_path, server.url, "--set", "translate.max_failed_fraction=0.1")
        assert allowed.exit_code == 0, allowed.output
        strict = _translate(tmp_path, server.url, "--set", "translate.max_failed_fraction=0")
    assert strict.exit_code == 2, strict.output
    assert "1 of 1 rows failed" in strict.stderr  # the rerun selects only the missing row


def test_a_bad_output_fails_before_any_request(tmp_path):
    write_manifest(tmp_path / "src" / "manifest.parquet", captions(4, seed=6))
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "a-file").write_text("not a folder")
    with LibreServer() as server:
        for output, message in (
            (tmp_path / "a-folder", "is a folder, not a manifest file"),
            (tmp_path / "a-file" / "manifest.parquet", "is not a writable folder"),
        ):
            result = _translate(tmp_path, server.url, "--output", str(output))
            assert result.exit_code == 2, result.output
            assert message in result.stderr
            assert len(result.stderr.strip().splitlines()) == 1
        assert server.requests == 0
    assert not (tmp_path / "cache.sqlite").exists()


def test_each_libre_endpoint_has_its_own_cache_entries(tmp_path):
    english = captions(4, seed=7)
    write_manifest(tmp_path / "src" / "manifest.parquet", english)
    with LibreServer() as first, LibreServer() as second:
        assert _translate(tmp_path, first.url, "--output", str(tmp_path / "first.parquet")).exit_code == 0
        result = _translate(tmp_path, second.url, "--output", str(tmp_path / "second.parquet"))
        assert result.exit_code == 0, result.output
        assert "translated 4, cached 0" in result.stderr
        assert second.served == 1


def test_a_human_caption_with_an_empty_lang_is_kept(tmp_path):
    english = ["a red dog", "a blue car", "a green tree"]
    source = write_manifest(
        tmp_path / "src" / "manifest.parquet",
        english,
        caption=["un cane rosso (umano)", "una macchina blu (umana)", None],
        lang=["", None, None],
    )
    with LibreServer() as server:
        result = _translate(tmp_path, server.url)
    assert result.exit_code == 0, result.output
    rows = manifest.read(source).to_pylist()
    assert [row["caption"] for row in rows] == [
        "un cane rosso (umano)",
        "una macchina blu (umana)",
        fake_translate("a green tree"),
    ]
    assert [row["lang"] for row in rows] == ["", None, "it"]
