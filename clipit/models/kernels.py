"""Which kernels the towers run: one setting, chosen once from the devices the model runs on.

The maths is the same everywhere; what is fast differs by device, so each module that has a faster
variant takes the setting when it is built (a static attribute, part of the graph definition):

- "cpu": the dense layers and LayerNorms take custom backward passes (clipit.models.layers),
  attention is written out as heads-major batched matmuls (clipit.models.attention) and the
  embedding lookups are plain gathers whose autodiff is exact and fastest (clipit.models.embedding).
- "gpu": plain dense layers and LayerNorms, `jax.nn.dot_product_attention` (fused kernels), and
  embedding gradients that avoid contended atomic adds (repeated ids merged before the scatter).
- "tpu": as "gpu", without the merge (TPU scatters are not atomics).

`kernels_for(devices)` gives the setting for a set of devices: the training mesh's, or the default
devices when nothing else is named. A model built for one setting computes the same numbers on any
device, only at a different speed, so tests build the other settings on the CPU to check their maths.
"""

from __future__ import annotations

from collections.abc import Iterable

import jax

KERNELS = ("cpu", "gpu", "tpu")


def kernels_for(devices: Iterable[jax.Device] | None = None) -> str:
    """The kernel setting for `devices` (default: `jax.devices()`): their platform, GPUs of any vendor
    as "gpu". All devices must be of one platform."""
    platforms = sorted({device.platform for device in (jax.devices() if devices is None else devices)})
    if len(platforms) != 1:
        raise ValueError(f"a model runs on devices of one platform, not {platforms or 'none'}")
    return platforms[0] if platforms[0] in ("cpu", "tpu") else "gpu"


def check_kernels(kernels: str) -> str:
    """`kernels` if it is a known setting (a programming error otherwise)."""
    if kernels not in KERNELS:
        raise ValueError(f"kernels must be one of {', '.join(KERNELS)}, not {kernels!r}")
    return kernels
