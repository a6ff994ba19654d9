"""The manifest schema: round trip, validation errors, version check, merge, atomic writes."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clipit.data import manifest
from clipit.errors import ManifestError


def rows(n: int, source: str = "cc3m", **extra):
    return [
        {
            "key": f"{source}/{i}",
            "source": source,
            "url": f"http://127.0.0.1/{i}.jpg",
            "caption": f"un gatto {i}",
            "caption_en": f"a cat {i}",
            "lang": "it",
            "status": "ok",
            "split": manifest.split_for_key(f"{source}/{i}", 0.2),
            "shard": "00000.tar",
            "index": i,
            "width": 64,
            "height": 48,
            "image_sha256": "ab" * 32,
            "meta": {"n": i},
            **extra,
        }
        for i in range(n)
    ]


def test_round_trip_keeps_values_and_version(tmp_path):
    table = manifest.from_rows(rows(5))
    path = manifest.write(table, tmp_path / "manifest.parquet")
    back = manifest.read(tmp_path)  # a folder means folder/manifest.parquet
    assert back.to_pylist() == table.to_pylist()
    assert back.schema.equals(manifest.SCHEMA)
    assert pq.read_schema(path).metadata[manifest.VERSION_KEY] == b"2"
    assert manifest.meta_of(back.to_pylist()[3]) == {"n": 3}


def test_optional_columns_default_to_null():
    table = manifest.from_rows(
        [{"key": "a/1", "source": "a", "status": "failed", "error": "404", "split": "train"}]
    )
    row = table.to_pylist()[0]
    assert row["caption"] is None and row["shard"] is None and row["error"] == "404"


def test_split_is_stable_and_roughly_proportional():
    keys = [f"k/{i}" for i in range(4000)]
    first = [manifest.split_for_key(k, 0.1) for k in keys]
    assert first == [manifest.split_for_key(k, 0.1) for k in keys]
    assert 300 < first.count("val") < 500
    assert all(manifest.split_for_key(k, 0.0) == "train" for k in keys[:100])


def test_missing_column_is_named(tmp_path):
    table = manifest.from_rows(rows(2)).drop_columns(["caption_en"])
    path = tmp_path / "m.parquet"
    pq.write_table(table.replace_schema_metadata(manifest.SCHEMA.metadata), path)
    with pytest.raises(ManifestError, match=r"m\.parquet: missing column\(s\) caption_en"):
        manifest.read(path)


def test_a_version_1_manifest_without_split_fixed_is_still_read(tmp_path):
    table = manifest.from_rows(rows(3)).drop_columns(["split_fixed"])
    path = tmp_path / "m.parquet"
    pq.write_table(table.replace_schema_metadata({manifest.VERSION_KEY: b"1"}), path)
    back = manifest.read(path)
    assert back.schema.equals(manifest.SCHEMA)
    assert back.column("split_fixed").to_pylist() == [None] * 3
    assert back.column("key").to_pylist() == table.column("key").to_pylist()


def test_split_for_image_names_the_image_by_its_bytes_then_its_url():
    by_sha = manifest.split_for_image(0.5, "ab" * 32, "http://x/1.jpg", "k")
    assert by_sha == manifest.split_for_key("sha256:" + "ab" * 32, 0.5)
    assert manifest.split_for_image(0.5, None, "http://x/1.jpg", "k") == manifest.split_for_key(
        "url:http://x/1.jpg", 0.5
    )
    assert manifest.split_for_image(0.5, None, None, "k") == manifest.split_for_key("k", 0.5)


def test_other_schema_version_is_refused(tmp_path):
    table = manifest.from_rows(rows(2)).replace_schema_metadata({manifest.VERSION_KEY: b"99"})
    path = tmp_path / "m.parquet"
    pq.write_table(table, path)
    with pytest.raises(ManifestError, match="version 99"):
        manifest.read(path)


def test_foreign_parquet_and_missing_file(tmp_path):
    path = tmp_path / "m.parquet"
    pq.write_table(pa.table({"x": [1]}), path)
    with pytest.raises(ManifestError, match="no clipit manifest version"):
        manifest.read(path)
    with pytest.raises(ManifestError, match="does not exist"):
        manifest.read(tmp_path / "nope")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(ManifestError, match="not a readable Parquet"):
        manifest.read(tmp_path / "junk.parquet")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"status": "done"}, r"row 1: status 'done'"),
        ({"split": "test"}, r"row 1: split 'test'"),
        ({"key": "cc3m/0"}, r"row 1: duplicate key 'cc3m/0'"),
        ({"source": None}, r"row 1: 'source' is empty"),
    ],
)
def test_bad_values_name_the_row(change, message):
    data = rows(3)
    data[1].update(change)
    with pytest.raises(ManifestError, match=message):
        manifest.from_rows(data)


def test_unknown_column_in_rows():
    with pytest.raises(ManifestError, match="unknown columns"):
        manifest.from_rows([{**rows(1)[0], "colour": "red"}])


def test_merge_concatenates_and_refuses_duplicate_keys():
    a = manifest.from_rows(rows(3, "cc3m"))
    b = manifest.from_rows(rows(2, "wit"))
    merged = manifest.merge([a, b], ["cc3m", "wit"])
    assert merged.num_rows == 5
    with pytest.raises(ManifestError, match="in both cc3m and again"):
        manifest.merge([a, a], ["cc3m", "again"])


def test_failed_write_keeps_old_manifest_and_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "manifest.parquet"
    manifest.write(manifest.from_rows(rows(2)), path)
    before = path.read_bytes()

    def crash(table, where, **kwargs):
        with open(where, "wb") as f:
            f.write(b"PAR1 partial")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", crash)
    with pytest.raises(OSError, match="disk full"):
        manifest.write(manifest.from_rows(rows(4)), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.parquet"]
