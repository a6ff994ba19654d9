"""Where the train state lives on the mesh: the rule that shards parameters and optimizer state over `fsdp`.

The rule reads only an array's shape: a weight with two or more dimensions (kernels, embedding
tables, the patch and position tables) is split over the `fsdp` axis along its largest dimension that
the axis size divides; everything else (biases, LayerNorm scales, the logit scale, RNG keys, step
counters) is small and stays replicated. Because Adam's moments have their parameter's shape, the
same rule shards the optimizer state like the parameters, with no table of names to keep in step
with the optimizer.

The jitted step receives the state in these shardings and pins its output to them, so XLA all-gathers
each weight where a layer uses it and reduce-scatters its gradient: per-device parameter and optimizer
bytes fall by about the `fsdp` factor. With `fsdp` 1 every array is replicated (pure data parallelism).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from clipit.train.mesh import FSDP_AXIS, to_host


def fsdp_size(mesh: Mesh) -> int:
    return dict(mesh.shape).get(FSDP_AXIS, 1)


def spec_for(shape: tuple[int, ...], fsdp: int) -> PartitionSpec:
    """The rule: split the largest dimension `fsdp` divides, for arrays of two or more dimensions."""
    if fsdp == 1 or len(shape) < 2:
        return PartitionSpec()
    fits = [(size, axis) for axis, size in enumerate(shape) if size % fsdp == 0]
    if not fits:
        return PartitionSpec()
    _, axis = max(fits, key=lambda fit: (fit[0], -fit[1]))  # the largest; the first among equals
    return PartitionSpec(*(FSDP_AXIS if i == axis else None for i in range(len(shape))))


def state_shardings(tree: Any, mesh: Mesh) -> Any:
    """A NamedSharding for every array leaf of `tree` (parameters, optimizer state, the whole TrainState)."""
    fsdp = fsdp_size(mesh)
    return jax.tree.map(lambda x: NamedSharding(mesh, spec_for(np.shape(x), fsdp)), tree)


def constrain(tree: Any, mesh: Mesh) -> Any:
    """Inside jit: pin `tree` to the rule's shardings (what the step returns is laid out as it came in)."""
    return jax.lax.with_sharding_constraint(tree, state_shardings(tree, mesh))


def gathered(tree: Any, mesh: Mesh) -> Any:
    """Inside jit: `tree` whole on every device, where it is read (a no-op for replicated arrays)."""
    return jax.lax.with_sharding_constraint(tree, NamedSharding(mesh, PartitionSpec()))


def place(mesh: Mesh, tree: Any) -> Any:
    """Host values (equal on every process) or device arrays -> arrays in the rule's shardings.

    Arrays already in place stay; each process builds only the shards its own devices hold.
    Every array this process holds whole comes back committed to exactly the rule's NamedSharding, also
    where another sharding lays it out the same (a SingleDeviceSharding on a one-device mesh;
    device_put then reuses the buffer): jit compiles a separate program for each kind of sharding, and the step returns
    NamedSharding arrays. A state of other kinds (fresh model and optimizer arrays, or a resume's
    arrays restored in their shardings) would compile the step once more per phase, and a resume would
    miss the persistent compilation cache a fresh run filled.
    """

    def put(x, sharding: NamedSharding):
        if isinstance(x, jax.Array):
            if x.sharding == sharding and x.committed:
                return x
            if x.is_fully_addressable:
                return jax.device_put(x, sharding)
            if x.sharding.is_equivalent_to(sharding, x.ndim):
                return x  # spread over several processes: relabelling it would cost a host round trip
            x = to_host(x)  # spread over several processes: each reads the whole value once
        host = _device_dtype(np.asarray(x))
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(put, tree, state_shardings(tree, mesh))


def bytes_per_device(tree: Any, device: jax.Device) -> int:
    """Bytes of `tree`'s arrays held on `device` (every shard it holds)."""
    return sum(
        shard.data.nbytes
        for x in jax.tree.leaves(tree)
        if isinstance(x, jax.Array)
        for shard in x.addressable_shards
        if shard.device == device
    )


def _device_dtype(x: np.ndarray) -> np.ndarray:
    # JAX runs without x64: int64 host values would be truncated with a warning; say so explicitly
    return x.astype(np.int32) if x.dtype == np.int64 else x
