"""Devices, hosts and shardings: one mesh with a 'data' axis; batch sharded, parameters replicated.

The mesh is built with *auto* axes. `jax.make_mesh` defaults to explicit axes in JAX 0.10, under which
`image @ text.T` of two batch-sharded arrays is a sharding type error; with auto axes XLA inserts the
all-gather that gives every example the negatives of the whole global batch.

Multi-host: `jax.distributed.initialize` with the coordinator, process count and id from
`[train.distributed]` or the environment (JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID);
on TPU pods JAX finds them itself. Process 0's coordinator service listens on the coordinator address
itself (or `coordinator_bind` / JAX_COORDINATOR_BIND_ADDRESS), not on every interface. Each process
loads its own share of the batch and `make_array_from_process_local_data` assembles the global array
without moving data between hosts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from clipit.config.train import DistributedSettings
from clipit.errors import ConfigError

DATA_AXIS = "data"


def init_distributed(settings: DistributedSettings) -> None:
    """Join a multi-process job when one is configured; a no-op for a single process."""
    coordinator = settings.coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS")
    env_count = os.environ.get("JAX_NUM_PROCESSES")
    env_id = os.environ.get("JAX_PROCESS_ID")
    num_processes = settings.num_processes or (int(env_count) if env_count else None)
    process_id = settings.process_id if settings.process_id is not None else (int(env_id) if env_id else None)
    if coordinator is None and num_processes in (None, 1):
        if _on_tpu_pod():
            jax.distributed.initialize()  # TPU pods describe themselves
        return
    if coordinator is None or num_processes is None or process_id is None:
        raise ConfigError(
            "train.distributed: a multi-process run needs coordinator, num_processes and process_id",
            "set all three (or JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID)",
        )
    if process_id >= num_processes:
        raise ConfigError(f"train.distributed.process_id {process_id} >= num_processes {num_processes}")
    if jax.distributed.is_initialized():
        return
    jax.distributed.initialize(
        coordinator_address=coordinator,
        num_processes=num_processes,
        process_id=process_id,
        coordinator_bind_address=coordinator_bind_address(settings, coordinator),
    )


def coordinator_bind_address(settings: DistributedSettings, coordinator: str) -> str:
    """Where process 0's coordinator service listens: where asked, never silently every interface.

    JAX's own default is `[::]:PORT` (all interfaces) whatever host the coordinator address names, which
    exposes the job's control service on every network of the machine even for 127.0.0.1.
    """
    return settings.coordinator_bind or os.environ.get("JAX_COORDINATOR_BIND_ADDRESS") or coordinator


def _on_tpu_pod() -> bool:
    return bool(os.environ.get("TPU_WORKER_HOSTNAMES", "").count(","))


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    devices = list(devices) if devices is not None else jax.devices()
    return Mesh(np.array(devices), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    devices = mesh.devices.size
    if batch_size % devices:
        raise ConfigError(
            f"train.batch_size {batch_size} is not divisible by the {devices} devices of the mesh",
            f"use a multiple of {devices}, e.g. {max(devices, batch_size // devices * devices)}",
        )
    if batch_size % jax.process_count():
        raise ConfigError(
            f"train.batch_size {batch_size} is not divisible by {jax.process_count()} processes"
        )


def put_batch(mesh: Mesh, local: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    """This process's rows -> global arrays sharded over the data axis."""
    sharding = batch_sharded(mesh)
    return {
        k: jax.make_array_from_process_local_data(sharding, _device_dtype(np.asarray(v)))
        for k, v in local.items()
    }


def _device_dtype(x: np.ndarray) -> np.ndarray:
    # JAX runs without x64: int64 ids (caption hashes) wrap to int32; only their equality is used
    return x.astype(np.int32) if x.dtype == np.int64 else x


def put_replicated(mesh: Mesh, tree):
    """Values equal on every process -> arrays replicated on every device (already-placed ones stay)."""
    sharding = replicated(mesh)

    def place(x):
        if isinstance(x, jax.Array) and x.sharding == sharding:
            return x
        return jax.make_array_from_process_local_data(sharding, np.asarray(x))

    return jax.tree.map(place, tree)


def to_host(tree):
    """Replicated device arrays -> numpy (each process reads its own copy)."""
    return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array) else x, tree)
