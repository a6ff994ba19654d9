"""Every download refuses an output folder that holds files clipit did not write (a rerun there cleans up
by name), before fetching or writing anything; a folder of an earlier clipit download is accepted."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from clipit.cli.main import app
from tests.data.sources.test_sources_lock import cc3m_args, mscoco_args, wit_args


@pytest.mark.parametrize("make_args", [cc3m_args, wit_args, mscoco_args])
def test_a_download_into_a_folder_of_other_files_is_refused(tmp_path, make_args):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"not clipit's")
    (out / "images").mkdir()  # a name a download writes and may clean up
    args = [*make_args(tmp_path), "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "holds no clipit output" in lines[0], result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["holiday.jpg", "images"]  # nothing touched or added
    assert not any((out / "images").iterdir())

    fresh = tmp_path / "fresh"
    assert CliRunner().invoke(app, [*args[:-1], str(fresh)]).exit_code == 0
    rerun = CliRunner().invoke(app, [*args[:-1], str(fresh)])  # clipit's own folder: accepted again
    assert rerun.exit_code == 0, rerun.output
