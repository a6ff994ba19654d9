"""The folder lock: a second writer is refused with the holder's details; a killed holder blocks nothing."""

from __future__ import annotations

import fcntl
import os
import signal
import socket

import pytest

from clipit import folder_lock
from clipit.errors import ClipitError
from clipit.folder_lock import LOCK_NAME, FolderBusyError, hold
from tests.support.folder_race import holder_pid, holding_process


def free(folder) -> bool:
    """Whether another open file description can take the lock now (flock is per open file)."""
    fd = os.open(folder / LOCK_NAME, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


@pytest.fixture
def holder(tmp_path):
    folder = tmp_path / "out"
    with holding_process(folder, "build-shards") as process:
        yield folder, process


def test_a_held_folder_is_refused_naming_the_holder(holder):
    folder, process = holder
    with pytest.raises(FolderBusyError) as info, hold(folder, "train"):
        pass
    line = info.value.one_line()
    assert line.startswith(f"clipit build-shards (pid {process.pid} on {socket.gethostname()}, started 20")
    assert f"is already writing to {folder}" in line and "wait for it to finish, or stop it" in line
    assert holder_pid(folder) == process.pid  # the refused run changed nothing


def test_a_lock_left_by_kill_9_does_not_block(holder):
    folder, process = holder
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert holder_pid(folder) == process.pid  # the stale record is still there ...
    with hold(folder, "train"):  # ... but the lock died with its holder
        assert holder_pid(folder) == os.getpid() and not free(folder)
    assert holder_pid(folder) is None and free(folder)


def test_hold_creates_the_folder_and_is_reentrant_in_one_process(tmp_path):
    folder = tmp_path / "new" / "out"
    with hold(folder, "train"), hold(folder, "train"):
        assert not free(folder)
    assert free(folder) and [p.name for p in folder.iterdir()] == [LOCK_NAME]


def test_scoped_releases_what_acquire_took_on_return_and_on_error(tmp_path):
    @folder_lock.scoped
    def write(fail: bool) -> bool:
        folder_lock.acquire(tmp_path, "build-shards")
        if fail:
            raise ValueError("boom")
        return free(tmp_path)

    assert write(False) is False
    assert free(tmp_path)
    with pytest.raises(ValueError, match="boom"):
        write(True)
    assert free(tmp_path)


def test_acquire_needs_a_scoped_caller(tmp_path):
    with pytest.raises(RuntimeError, match="scoped"):
        folder_lock.acquire(tmp_path, "train")


def test_an_output_path_that_is_a_file_is_a_clipit_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with (
        pytest.raises(ClipitError, match=f"cannot write to {tmp_path / 'file'}"),
        hold(tmp_path / "file", "train"),
    ):
        pass
