"""Devices, hosts and shardings: a mesh of `data` x `fsdp` axes; the batch is split over both.

With `fsdp` 1 (the default) parameters are replicated: pure data parallelism. Larger `fsdp` shards the
parameters and optimizer state (rules: clipit.train.sharding) while every device still takes its own
share of the batch, as FSDP does.

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
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from clipit.config.train import DistributedSettings, MeshSettings
from clipit.errors import ConfigError

DATA_AXIS = "data"
FSDP_AXIS = "fsdp"


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


def train_mesh(settings: MeshSettings, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """The `train.mesh` mesh: `data` x `fsdp` over `devices` (default: every device of the job)."""
    devices = list(devices) if devices is not None else jax.devices()
    count, fsdp = len(devices), settings.fsdp
    data = settings.data if settings.data != -1 else count // fsdp
    if fsdp > count or data * fsdp != count:
        raise ConfigError(
            f"train.mesh: data {settings.data} x fsdp {fsdp} does not cover the {count} devices",
            f"choose sizes whose product is {count} (data = -1 takes the devices left after fsdp)",
        )
    grid = np.array(devices).reshape(data, fsdp)
    return Mesh(grid, (DATA_AXIS, FSDP_AXIS), axis_types=(AxisType.Auto, AxisType.Auto))


def batch_axes(mesh: Mesh) -> tuple[str, ...]:
    """Every mesh axis: each device holds its own rows of the batch."""
    return tuple(mesh.axis_names)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec(batch_axes(mesh)))


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
    """Device arrays -> numpy on every process: a replicated one read from the local copy, a sharded
    one gathered from its shards."""

    def read(x):
        if not isinstance(x, jax.Array):
            return x
        if x.is_fully_replicated:
            return np.asarray(x.addressable_data(0))
        if x.is_fully_addressable:
            return np.asarray(x)
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))

    return jax.tree.map(read, tree)
