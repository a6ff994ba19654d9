"""The processes a test started, read from /proc: to prove that workers do not outlive a killed parent."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]  # for PYTHONPATH: subprocesses import this checkout's clipit


def session_processes(session: int) -> list[int]:
    """Live (non-zombie) processes of a session, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[3]) == session and fields[0] != "Z":  # state, ppid, pgrp, session
                    found.append(int(entry.name))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) these processes have used so far: evidence that they are working."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def shared_memory_of(pids: list[int]) -> set[str]:
    """Names of the /dev/shm segments these processes map or hold open (other tests' are not counted)."""
    names = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
                if " /dev/shm/" in line:
                    names.add(line.rsplit("/", 1)[1].split()[0])
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("/dev/shm/"):
                        names.add(target.rsplit("/", 1)[1].split()[0])
    return names
