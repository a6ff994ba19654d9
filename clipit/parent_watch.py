"""Worker processes that exit when the clipit process that started them is gone (even after `kill -9`).

Download workers, loader workers and build-shards workers call `exit_with_parent(parent_pid)` once when
they start. A daemon thread then compares `os.getppid()` with the pid of the process that started the
worker, every `POLL_S` seconds, and ends the worker with `os._exit` when they differ.

Why polling the parent *process* and not PR_SET_PDEATHSIG: Linux sends the death signal when the
*thread* that forked the child exits, not the process. multiprocessing pools fork replacement workers
from a helper thread, and that thread exits inside `Pool.terminate()`; the signal then killed workers
of a parent that was still alive, sometimes while they held the pool's queue lock, and the parent hung
forever. `getppid()` changes only when every thread of the parent has exited (the kernel then reparents
the worker to init or a subreaper), so this check cannot fire while the parent lives.
"""

from __future__ import annotations

import os
import threading

POLL_S = 0.25  # how long an orphan lives at most; a getppid() call per poll costs nothing measurable

_watching_pid: int | None = None  # the process (after a fork: a new one) that already has a watcher
_lock = threading.Lock()


def exit_with_parent(parent_pid: int, *, exit_code: int = 1) -> None:
    """In a worker process: exit as soon as `parent_pid` is no longer its parent (idempotent per process).

    `parent_pid` is the pid of the starting process, recorded *there* (a worker that asked `getppid()`
    itself could already be an orphan and would then watch init).
    """
    global _watching_pid
    with _lock:
        if _watching_pid == os.getpid():
            return
        _watching_pid = os.getpid()
    if os.getppid() != parent_pid:  # the parent died before this worker got here
        os._exit(exit_code)
    thread = threading.Thread(
        target=_watch, args=(parent_pid, exit_code), daemon=True, name="clipit-parent-watch"
    )
    thread.start()


def _watch(parent_pid: int, exit_code: int) -> None:
    stop = threading.Event()  # never set: Event.wait is an interruptible sleep
    while not stop.wait(POLL_S):
        if os.getppid() != parent_pid:
            # os._exit, not sys.exit: no atexit handlers or pool joins that could wait on the dead parent.
            os._exit(exit_code)
