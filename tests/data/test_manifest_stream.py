"""Streamed manifests: batches in, batches out, rows by number, keys unique across files, bounded groups."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow.parquet as pq
import pytest

from clipit.data import manifest, manifest_stream, string_ids
from clipit.errors import ManifestError


def rows(start: int, stop: int, source: str = "s") -> list[dict]:
    return [
        {
            "key": f"{source}/{i}",
            "source": source,
            "caption": f"c{i}",
            "status": "ok",
            "split": "train",
            "index": i,
        }
        for i in range(start, stop)
    ]


def test_writer_makes_fixed_row_groups_and_iter_batches_reads_every_row_back_in_order(tmp_path):
    path = tmp_path / "manifest.parquet"
    with manifest_stream.writer(path, row_group_size=100) as out:
        for start in range(0, 950, 70):  # batches that do not line up with the row groups
            out.write_rows(rows(start, min(950, start + 70)))
    file = pq.ParquetFile(path)
    assert [file.metadata.row_group(g).num_rows for g in range(file.num_row_groups)] == [100] * 9 + [50]
    assert file.schema_arrow.metadata[manifest.VERSION_KEY] == str(manifest.SCHEMA_VERSION).encode()
    batches = list(manifest_stream.iter_batches(path, batch_size=64))
    assert max(b.num_rows for b in batches) <= 64
    keys = [k for b in batches for k in b.column("key").to_pylist()]
    assert keys == [f"s/{i}" for i in range(950)]
    assert manifest.read(path).equals(manifest.from_rows(rows(0, 950)))
    only = next(manifest_stream.iter_batches(path, ["index", "key"]))
    assert only.column_names == ["index", "key"] and only.column("index")[3].as_py() == 3


def test_a_small_manifest_has_the_bytes_of_a_whole_table_write(tmp_path):
    with manifest_stream.writer(tmp_path / "streamed.parquet") as out:
        out.write_rows(rows(0, 10))
        out.write_rows(rows(10, 25))
    manifest.write(manifest.from_rows(rows(0, 25)), tmp_path / "whole.parquet")
    assert (tmp_path / "streamed.parquet").read_bytes() == (tmp_path / "whole.parquet").read_bytes()
    with manifest_stream.writer(tmp_path / "empty.parquet"):
        pass
    assert manifest.read(tmp_path / "empty.parquet").num_rows == 0


def test_a_failed_write_leaves_the_earlier_manifest_and_no_temporary(tmp_path):
    path = tmp_path / "manifest.parquet"
    manifest.write(manifest.from_rows(rows(0, 3)), path)
    before = path.read_bytes()
    with pytest.raises(ManifestError, match=r"row 5: status 'maybe'"):
        with manifest_stream.writer(path) as out:
            out.write_rows(rows(0, 5))
            out.write_rows([{**rows(5, 6)[0], "status": "maybe"}])  # row 5 of the file
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.parquet"]


def test_read_rows_returns_the_asked_rows_across_row_groups(tmp_path):
    path = tmp_path / "manifest.parquet"
    with manifest_stream.writer(path, row_group_size=50) as out:
        out.write_rows(rows(0, 500))
    wanted = np.array([0, 49, 50, 51, 333, 499])
    table = manifest_stream.read_rows(path, wanted, ["key", "split_fixed"])
    assert table.column("key").to_pylist() == [f"s/{i}" for i in wanted.tolist()]
    assert table.column("split_fixed").null_count == len(wanted)
    assert manifest_stream.read_rows(path, np.array([], np.int64), ["key"]).num_rows == 0


def test_iter_batches_names_the_file_row_of_a_bad_value(tmp_path):
    path = tmp_path / "manifest.parquet"
    table = manifest.from_rows(rows(0, 30))
    bad = table.set_column(table.schema.get_field_index("split"), "split", [["train"] * 29 + ["test"]])
    pq.write_table(bad.replace_schema_metadata(manifest.SCHEMA.metadata), path)
    with pytest.raises(ManifestError, match=r"manifest.parquet: row 29: split 'test'"):
        for _ in manifest_stream.iter_batches(path, batch_size=8):
            pass


def test_check_unique_keys_within_and_across_files(tmp_path):
    a, b, c = (tmp_path / name for name in ("a.parquet", "b.parquet", "c.parquet"))
    manifest.write(manifest.from_rows(rows(0, 100)), a)
    manifest.write(manifest.from_rows(rows(100, 200)), b)
    manifest_stream.check_unique_keys([a, b])  # no error
    with pytest.raises(ManifestError, match=r"key 's/5' is in both .*a.parquet and .*c.parquet"):
        manifest.write(manifest.from_rows(rows(5, 6)), c)
        manifest_stream.check_unique_keys([a, b, c])
    with pytest.raises(ManifestError, match="is in both"):
        manifest_stream.check_unique_keys([a, a])  # the same source passed twice
    with manifest_stream.writer(c, row_group_size=10) as out:  # each batch is unique; the file is not
        out.write_rows(rows(0, 40))
        out.write_rows(rows(39, 40))
    with pytest.raises(ManifestError, match=r"c.parquet: row 40: duplicate key 's/39'"):
        manifest_stream.check_unique_keys([c])


def test_string_ids_are_stable_and_keep_zero_for_missing():
    ids = string_ids.of(["a", None, "", "a", "b"])
    assert ids.dtype == np.uint64 and ids[1] == ids[2] == string_ids.NONE
    assert ids[0] == ids[3] != ids[4] and ids[0] == string_ids.one("a")
    # the first 8 bytes of BLAKE2b: the same value in every process and run
    assert string_ids.one("x") == int.from_bytes(hashlib.blake2b(b"x", digest_size=8).digest(), "big")
