"""clipit.distribute on a real 2-CPU Ray cluster and on local processes: every job runs once, results come
back whole, a failure in a worker is one ClipitError, and jobs are taken lazily."""

from __future__ import annotations

import os

import pytest

from clipit import distribute
from clipit.errors import ClipitError, ConfigError, DataError
from tests.support.ray_cluster import ray_cluster  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow  # starts a Ray cluster


def square(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


def fail_on_three(x: int) -> int:
    if x == 3:
        raise DataError(f"row {x} is bad", "fix row 3")
    if x == 4:
        raise ZeroDivisionError("division by zero\nsecond line")
    return x


def scaled(state: dict, x: int) -> tuple[int, int]:
    return x * state["factor"], state["pid"]


def make_state() -> dict:
    return {"factor": 10, "pid": os.getpid()}


@pytest.mark.parametrize(
    "dist",
    [distribute.Distributor("local", 0), distribute.Distributor("local", 2), distribute.Distributor("ray")],
    ids=["here", "processes", "ray"],
)
def test_every_job_once_with_its_result(dist, ray_cluster):  # noqa: F811
    results = dict(distribute.run(dist, square, ((i,) for i in range(9))))
    assert {job[0]: value for job, (value, _) in results.items()} == {i: i * i for i in range(9)}
    pids = {pid for _, pid in results.values()}
    assert (pids == {os.getpid()}) == (dist.workers == 0 and dist.kind == "local")


def test_ray_actors_build_state_once_each(ray_cluster):  # noqa: F811
    dist = distribute.Distributor("ray", workers=2)
    results = list(distribute.run(dist, scaled, ((i,) for i in range(8)), state=make_state))
    assert sorted(value for _, (value, _) in results) == [i * 10 for i in range(8)]
    assert len({pid for _, (_, pid) in results}) == 2  # two actors, none of them this process
    assert os.getpid() not in {pid for _, (_, pid) in results}


def test_ray_failures_are_one_line_clipit_errors(ray_cluster):  # noqa: F811
    dist = distribute.Distributor("ray")
    with pytest.raises(DataError, match="row 3 is bad"):
        list(distribute.run(dist, fail_on_three, [(3,)]))
    with pytest.raises(ClipitError) as caught:
        list(distribute.run(dist, fail_on_three, [(4,)]))
    assert "fail_on_three failed: ZeroDivisionError: division by zero" in caught.value.one_line()
    assert "\n" not in caught.value.one_line()


def test_jobs_are_taken_as_workers_free_up(ray_cluster):  # noqa: F811
    taken = []

    def jobs():
        for i in range(20):
            taken.append(i)
            yield (i,)

    stream = distribute.run(distribute.Distributor("ray"), square, jobs())
    next(stream)
    assert len(taken) <= 2 * distribute.AHEAD + 1  # 2 CPUs, AHEAD each: not the whole listing
    assert len(list(stream)) == 19


def test_unknown_distributor_is_a_config_error():
    with pytest.raises(ConfigError, match="embed.distributor = 'spark' is not a distributor"):
        list(distribute.run(distribute.Distributor("spark", setting="embed.distributor"), square, [(1,)]))


def test_a_folder_named_like_the_package_is_not_an_installation(tmp_path, monkeypatch):
    """`python -m clipit` from a folder holding `ray/` (Ray's own session folder is /tmp/ray) finds that
    folder as a namespace package; it must not pass for Ray."""
    import importlib.util

    (tmp_path / "ray_lookalike_pkg").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path))
    assert importlib.util.find_spec("ray_lookalike_pkg") is not None  # what the plain check accepted
    assert not distribute.installed("ray_lookalike_pkg")
    assert distribute.installed("numpy")
