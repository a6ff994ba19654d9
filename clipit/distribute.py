"""Where independent jobs run: in this process, in a pool of local processes, or on a Ray cluster.

`build-shards` (one job = one output shard) and `embed --out` (one job = one embedding shard) hand their
jobs to `run`, which yields `(job, result)` as jobs finish, so the caller's progress bar and bookkeeping
are the same wherever the work ran. Every job writes its own files (atomically) and returns a small
result; a job is a pure function of its arguments, so the output does not depend on where it ran.

- `local`: `workers` spawned processes (0: this process). What a single machine uses.
- `ray`: one Ray task per job (or, with `state`, one call on one of `workers` Ray actors that each
  build the state once, e.g. load a model). `address` names a running cluster (`ray start --head`
  prints it; "auto" finds the local one); none starts a Ray instance on this machine for the run (or
  joins the one `RAY_ADDRESS` names). Every node must have clipit installed and see the output folder at
  the same path (NFS, Lustre, a shared disk).

Jobs are taken from their iterable only as workers free up (at most two per worker in flight), so a
listing of millions of files is never all in memory at once. A job that fails in a worker re-raises
here: a ClipitError as itself, anything else as one ClipitError naming the job; the jobs that finished
have written their files, and a rerun resumes after them.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import multiprocessing
import os
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from clipit import parent_watch
from clipit.errors import ClipitError, ConfigError

KINDS = ("local", "ray")
AHEAD = 2  # jobs in flight per worker: one running, one ready to start
# Ray itself waits minutes for an address that does not answer (a host that drops packets): a plain
# TCP connect first tells a wrong address in seconds.
CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Distributor:
    kind: str = "local"  # "local" or "ray"
    workers: int = 2  # local: processes (0 = this process); ray with state: actors; ray tasks: ignored
    address: str | None = None  # ray: cluster address; None: a Ray instance started here (or RAY_ADDRESS)
    setting: str = "distributor"  # the config key, named in errors

    def check(self) -> None:
        """Before any work: the kind is known and, for Ray, ray is installed."""
        if self.kind not in KINDS:
            raise ConfigError(
                f"{self.setting} = {self.kind!r} is not a distributor", f"use one of {', '.join(KINDS)}"
            )
        if self.kind == "ray" and not installed("ray"):
            raise ConfigError(
                f"{self.setting} = 'ray' but ray is not installed",
                "pip install 'clipit-jax[distributed]' (on every node of the cluster too)",
            )
        if self.kind == "ray":
            self._check_reachable(self.address or os.environ.get("RAY_ADDRESS"))

    def _check_reachable(self, address: str | None) -> None:
        """A `host:port` (or `ray://host:port`) address accepts a TCP connection within
        CONNECT_TIMEOUT_S; "auto", "local" and none are Ray's to resolve."""
        if not address or address in ("auto", "local"):
            return
        host, _, port = address.removeprefix("ray://").rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(
                f"{self.setting}: Ray address {address!r} is not host:port",
                "use the address `ray start --head` printed (e.g. 10.0.0.5:6379), ray://host:port or auto",
            )
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as exc:
            raise ClipitError(
                f"{self.setting}: cannot reach the Ray cluster at {address}: {exc.strerror or exc}",
                "start the cluster (ray start --head) and check the address and the firewall",
            ) from None


def installed(package: str) -> bool:
    """Whether `package` is installed: a folder of that name in the working directory (a namespace
    package, which `python -m` would find) does not count."""
    spec = importlib.util.find_spec(package)
    return spec is not None and spec.origin is not None


def run(
    dist: Distributor,
    fn: Callable,
    jobs: Iterable[tuple],
    *,
    state: Callable[[], Any] | None = None,
) -> Iterator[tuple[tuple, Any]]:
    """Yield `(job, fn(*job))` (or `fn(state, *job)`, the state built once per worker by `state()`) as
    jobs finish, in any order. `fn`, the jobs and `state` must pickle, except in this process."""
    dist.check()
    if dist.kind == "ray":
        yield from _ray(dist, fn, jobs, state)
    elif state is not None or dist.workers == 0:
        built = state() if state is not None else None
        for job in jobs:
            yield job, (fn(built, *job) if state is not None else fn(*job))
    else:
        yield from _processes(dist.workers, fn, jobs)


def _processes(workers: int, fn: Callable, jobs: Iterable[tuple]) -> Iterator[tuple[tuple, Any]]:
    # spawn, not fork: the parent may hold JAX or other threads that a fork would copy half-way
    with concurrent.futures.ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=parent_watch.exit_with_parent,  # after a kill -9 of clipit, workers exit too
        initargs=(os.getpid(),),
    ) as pool:
        pending: dict[concurrent.futures.Future, tuple] = {}
        todo = iter(jobs)
        while True:
            for job in _take(todo, workers * AHEAD - len(pending)):
                pending[pool.submit(fn, *job)] = job
            if not pending:
                return
            done, _ = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                yield pending.pop(future), future.result()


def _take(jobs: Iterator[tuple], count: int) -> list[tuple]:
    taken = []
    for _ in range(max(count, 0)):
        job = next(jobs, None)
        if job is None:
            break
        taken.append(job)
    return taken


def _ray(dist: Distributor, fn: Callable, jobs: Iterable[tuple], state) -> Iterator[tuple[tuple, Any]]:
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        try:
            # log_to_driver off: workers' prints would land on clipit's stdout, which carries results only
            ray.init(address=dist.address, log_to_driver=False, logging_level="WARNING")
        except (ConnectionError, ValueError, RuntimeError) as exc:
            where = dist.address or os.environ.get("RAY_ADDRESS") or "a local instance"
            raise ClipitError(
                f"{dist.setting}: cannot start or reach Ray at {where}: {_first_line(exc)}",
                "start the cluster (ray start --head) and check the address, or leave the address unset",
            ) from None
    try:
        if state is None:
            task = ray.remote(num_cpus=1)(fn)
            slots = [task] * max(int(ray.cluster_resources().get("CPU", 1)), 1)
        else:
            holder = ray.remote(num_cpus=1)(_StateHolder)
            slots = [holder.remote(state) for _ in range(max(dist.workers, 1))]
        yield from _dispatch(ray, slots, fn, jobs, state is not None)
    finally:
        if started_here:
            ray.shutdown()


def _dispatch(ray, slots: list, fn: Callable, jobs: Iterable[tuple], actors: bool):
    """Keep every slot (an actor, or one task's worth of cluster CPU) busy with up to AHEAD jobs."""
    in_flight: dict[Any, tuple[int, tuple]] = {}  # object ref -> (slot, job)
    load = [0] * len(slots)
    todo = iter(jobs)
    while True:
        for slot in range(len(slots)):
            for job in _take(todo, AHEAD - load[slot]):
                ref = slots[slot].call.remote(fn, *job) if actors else slots[slot].remote(*job)
                in_flight[ref] = (slot, job)
                load[slot] += 1
        if not in_flight:
            return
        [ready], _ = ray.wait(list(in_flight), num_returns=1)
        slot, job = in_flight.pop(ready)
        load[slot] -= 1
        yield job, _result(ray, ready, fn)


def _result(ray, ref, fn: Callable):
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, ClipitError):
            raise cause from None
        raise ClipitError(
            f"a Ray task of {fn.__name__} failed: {type(cause).__name__}: {_first_line(cause)}",
            "rerun with CLIPIT_DEBUG=1 for the traceback; finished jobs are kept",
        ) from exc
    except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as exc:
        raise ClipitError(
            f"a Ray worker running {fn.__name__} died: {_first_line(exc)}",
            "check the node's memory and logs (/tmp/ray/session_latest/logs), then rerun to resume",
        ) from None


def _first_line(exc: BaseException | None) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class _StateHolder:
    """A Ray actor that builds the state once (e.g. loads a model) and runs jobs with it."""

    def __init__(self, factory: Callable[[], Any]):
        self.state = factory()

    def call(self, fn: Callable, *job):
        return fn(self.state, *job)
