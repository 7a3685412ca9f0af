r"""Scale-out: shard chains, replicas and particles across all local devices.

Populations are arrays with a leading "chains" axis. :func:`shard_chains` places that
axis on a 1-D :class:`jax.sharding.Mesh` over ``jax.local_devices()`` with
``NamedSharding(mesh, PartitionSpec("chains"))``; jitted, vmapped kernels then run
chain-parallel (GSPMD propagates the sharding). Per-chain random keys are split
*before* sharding, so results are identical to a single-device run up to float
round-off. On CPU, test with ``XLA_FLAGS=--xla_force_host_platform_device_count=4``.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["chain_mesh", "chain_sharding", "shard_chains"]

AXIS = "chains"


def chain_mesh(devices: Any = None) -> Mesh:
    """A 1-D mesh named ``"chains"`` over ``devices`` (default: all local devices)."""
    devices = jax.local_devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (AXIS,))


def chain_sharding(mesh: Mesh | None = None) -> NamedSharding:
    """``NamedSharding`` splitting the leading (chains) axis over the mesh."""
    mesh = chain_mesh() if mesh is None else mesh
    return NamedSharding(mesh, PartitionSpec(AXIS))


def shard_chains(tree: Any, mesh: Mesh | None = None) -> Any:
    """Place every leaf's leading axis across devices (``jax.device_put``).

    Args:
        tree: a pytree of arrays with a common leading chains axis (states, keys,
            positions). The axis length must be divisible by the number of devices.
        mesh: optional mesh (default: :func:`chain_mesh`).

    Returns:
        The same pytree, sharded.

    Raises:
        ValueError: if a leaf's leading axis is not divisible by the device count.
    """
    sharding = chain_sharding(mesh)
    n_dev = sharding.mesh.devices.size

    def put(x):
        if x.ndim == 0 or x.shape[0] % n_dev != 0:
            raise ValueError(f"leading axis of shape {x.shape} is not divisible by {n_dev} devices")
        return jax.device_put(x, sharding)

    return jax.tree_util.tree_map(put, tree)
