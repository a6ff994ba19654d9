"""A real Ray cluster on this machine for the distributed tests: 2 CPUs, so 2 workers run at once.

Started once per test module (about 5 s); clipit's own `ray.init` is skipped while it runs, and a
subprocess reaches it through its address, as a user's command reaches a real cluster.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def ray_cluster():
    """The address of a local 2-CPU Ray cluster, shut down after the module."""
    import ray  # the distributed extra, which make install installs

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
