"""Class names and templates: the pinned download (cache, checksum) and the file forms users pass.

The real files are read from ../shared/data/imagenet-it (byte-identical to CLIP_benchmark's at the pinned
commit) and served from a loopback HTTP server, so the download path runs for real without internet.
"""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest

from clipit.errors import DataError, NetworkError
from clipit.eval import classnames

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "imagenet-it"


class Server:
    """Serves a dict {name: bytes} on 127.0.0.1 and counts the requests."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                outer.requests.append(self.path)
                body = outer.files.get(self.path.rsplit("/", 1)[-1])
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/datasets/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    files = {
        name: (SHARED / name).read_bytes()
        for name in ("it_classnames.json", "it_zeroshot_classification_templates.json")
    }
    srv = Server(files)
    yield srv
    srv.close()


def test_download_then_cache(server, tmp_path):
    path = classnames.fetch_pinned(classnames.CLASSNAMES_FILE, tmp_path, base_url=server.url)
    assert path.read_bytes() == (SHARED / "it_classnames.json").read_bytes()
    assert server.requests == ["/datasets/it_classnames.json"]
    again = classnames.fetch_pinned(classnames.CLASSNAMES_FILE, tmp_path, base_url=server.url)
    assert again == path
    assert len(server.requests) == 1  # served from the cache
    names = classnames.read_classnames(path, "imagenet1k")
    assert len(names) == 1000 and names[0] == "una tinca"


def test_damaged_cache_is_fetched_again(server, tmp_path):
    path = classnames.fetch_pinned(classnames.TEMPLATES_FILE, tmp_path, base_url=server.url)
    path.write_bytes(b"{}")
    classnames.fetch_pinned(classnames.TEMPLATES_FILE, tmp_path, base_url=server.url)
    assert len(server.requests) == 2
    assert len(classnames.read_templates(path, "imagenet1k")) == 49


def test_checksum_mismatch_is_refused_and_not_cached(server, tmp_path):
    server.files["it_classnames.json"] = server.files["it_classnames.json"].replace(b"tinca", b"trota")
    with pytest.raises(NetworkError, match="sha256"):
        classnames.fetch_pinned(classnames.CLASSNAMES_FILE, tmp_path, base_url=server.url)
    assert not list(tmp_path.rglob("it_classnames.json"))


def test_unreachable_server_is_a_clear_error(tmp_path):
    srv = Server({})
    url = srv.url
    srv.close()
    with pytest.raises(NetworkError, match="cannot download"):
        classnames.fetch_pinned(classnames.CLASSNAMES_FILE, tmp_path, base_url=url)


def test_pinned_checksums_match_the_shared_copies():
    import hashlib

    for pinned in (classnames.CLASSNAMES_FILE, classnames.TEMPLATES_FILE):
        assert hashlib.sha256((SHARED / pinned.name).read_bytes()).hexdigest() == pinned.sha256


def test_clip_italian_tsv_and_text_templates():
    names = classnames.read_classnames(SHARED / "imagenet_labels_IT.tsv", "imagenet1k")
    assert len(names) == 1000
    assert names[:2] == ["una tinca", "un pesce rosso"]
    assert classnames.default_templates_for(SHARED / "imagenet_labels_IT.tsv") == ["{}"]
    assert classnames.default_templates_for(SHARED / "it_classnames.json") is None
    templates = classnames.read_templates(SHARED / "italian_templates_IT.txt", "imagenet1k")
    assert len(templates) == 49
    assert classnames.fill(templates[0], "una tinca") == "una brutta foto di una tinca"
    json_templates = classnames.read_templates(
        SHARED / "it_zeroshot_classification_templates.json", "imagenet1k"
    )
    assert classnames.fill(json_templates[0], "una tinca") == "una brutta foto di una tinca"
    assert classnames.fill("{c} {x}", "gatto") == "gatto {x}"


def test_bad_files_name_the_file(tmp_path):
    wrong_key = tmp_path / "names.json"
    wrong_key.write_text('{"a": ["x"], "b": ["y"]}')
    with pytest.raises(DataError, match="names.json has no key 'imagenet1k'"):
        classnames.read_classnames(wrong_key, "imagenet1k")
    no_placeholder = tmp_path / "templates.txt"
    no_placeholder.write_text("una foto di {}\nuna foto\n")
    with pytest.raises(DataError, match="template 2"):
        classnames.read_templates(no_placeholder, "imagenet1k")
    with pytest.raises(DataError, match="does not exist"):
        classnames.read_classnames(tmp_path / "missing.json", "imagenet1k")
    broken = tmp_path / "broken.json"
    broken.write_text("[1, 2")
    with pytest.raises(DataError, match="not valid JSON"):
        classnames.read_classnames(broken, "imagenet1k")


def test_config_default_url_is_the_pinned_one():
    from clipit.config.eval import EvalConfig

    assert EvalConfig().classnames_url == classnames.CLIP_BENCHMARK_BASE_URL


def _fake_package(root: Path, files: dict[str, bytes]) -> Path:
    """A clip_benchmark package folder on sys.path holding only its datasets/ files."""
    package = root / "clip_benchmark"
    (package / "datasets").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for name, data in files.items():
        (package / "datasets" / name).write_bytes(data)
    return package


@pytest.mark.parametrize("pinned", [classnames.CLASSNAMES_FILE, classnames.TEMPLATES_FILE])
def test_installed_package_copy_is_read_without_network(pinned, tmp_path, monkeypatch):
    package = _fake_package(tmp_path / "site", {pinned.name: (SHARED / pinned.name).read_bytes()})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    unreachable = "http://127.0.0.1:9/datasets/"  # port 9: nothing listens; any download would fail
    path = classnames.locate_pinned(pinned, tmp_path / "cache", base_url=unreachable)
    assert path == package / "datasets" / pinned.name
    assert not (tmp_path / "cache").exists()  # nothing downloaded or cached


def test_a_packaged_file_with_another_checksum_is_not_used(server, tmp_path, monkeypatch):
    _fake_package(tmp_path / "site", {"it_classnames.json": b'{"imagenet1k": ["altro"]}'})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    path = classnames.locate_pinned(classnames.CLASSNAMES_FILE, tmp_path / "cache", base_url=server.url)
    assert path.is_relative_to(tmp_path / "cache") and len(server.requests) == 1  # the pinned download


def test_the_installed_clip_benchmark_ships_the_pinned_files(tmp_path):
    from tests.eval.clip_benchmark_code import package_dir

    for pinned in (classnames.CLASSNAMES_FILE, classnames.TEMPLATES_FILE):
        path = classnames.locate_pinned(pinned, tmp_path / "cache", base_url="http://127.0.0.1:9/datasets/")
        assert path == package_dir() / "datasets" / pinned.name
