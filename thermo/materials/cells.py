r"""Periodic cells: orthorhombic and triclinic boxes on top of jax-md.

A cell is described by the ``(3, 3)`` matrix :math:`T` whose **columns** are the
lattice vectors (jax-md's convention; ASE stores them as rows, so
``T = atoms.cell.T``). A point with fractional coordinates :math:`u \in [0, 1)^3`
sits at :math:`x = T u`.

The minimum-image convention used by jax-md's ``space.periodic_general`` wraps
fractional displacements into :math:`[-1/2, 1/2)`. It returns the true nearest
image of every pair closer than half the smallest perpendicular width
:math:`w_{\min}/2` of the cell, where :math:`w_k = V / |a_l \times a_m|`
(Allen & Tildesley, *Computer Simulation of Liquids*, 2nd ed. 2017, sec. 1.6 and
appendix B): if :math:`|d| < w_{\min}/2` then every fractional component
:math:`|d \cdot b_k| \le |d|/w_k < 1/2`. A pair cutoff :math:`r_c` is therefore safe
iff :math:`r_c \le w_{\min}/2`; :func:`check_cutoff` enforces it and
:func:`replicas_for_cutoff` gives the smallest supercell that satisfies it.

Displacements and neighbour lists are jax-md's (``space``, ``partition``); this
module only picks the right constructor and checks the geometry. jax-md 0.2.29's
``space`` mixes its float32 literals (``f32(0.5)``, ``f32(1.0)``) into float64 positions,
which JAX's strict dtype promotion rejects; :func:`standard_promotion` runs such a
function under standard promotion (the values are unchanged: 0.5 and 1.0 are exact).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax_md import partition, space
from jaxtyping import Array, Float

__all__ = [
    "box_matrix",
    "check_cutoff",
    "is_orthorhombic",
    "neighbor_list",
    "perpendicular_widths",
    "periodic_space",
    "replicas_for_cutoff",
    "standard_promotion",
    "volume",
]


def standard_promotion(fn: Callable) -> Callable:
    """``fn`` traced under JAX's standard dtype promotion, for a jax-md space function.

    jax-md 0.2.29's ``space.periodic``/``periodic_general`` displacement and shift
    functions add its float32 constants (``f32(0.5) * side``, ``f32(1.0)``) to the
    caller's float64 arrays, an implicit float32/float64 mix that strict promotion
    rejects. Standard promotion gives the float64 result it always gave.
    """

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with jax.numpy_dtype_promotion("standard"):
            return fn(*args, **kwargs)

    return wrapped


def box_matrix(box) -> np.ndarray:
    r"""Return the ``(3, 3)`` column-vector cell matrix :math:`T` of a box.

    Args:
        box: a scalar side (cube), a length-3 vector of sides (orthorhombic), or a
            ``(3, 3)`` matrix whose columns are the lattice vectors.

    Returns:
        ``(3, 3)`` float64 numpy array.
    """
    b = np.asarray(box, dtype=np.float64)
    if b.ndim == 0:
        b = np.full(3, float(b))
    if b.ndim == 1:
        if b.shape != (3,):
            raise ValueError(f"box vector must have 3 sides, got shape {b.shape}")
        b = np.diag(b)
    if b.shape != (3, 3):
        raise ValueError(f"box must be a scalar, (3,) or (3, 3), got shape {b.shape}")
    if not np.all(np.isfinite(b)):
        raise ValueError("box contains NaN or inf")
    if np.linalg.det(b) <= 0:
        raise ValueError("box matrix must have positive determinant (right-handed)")
    return b


def volume(box) -> float:
    r"""Cell volume :math:`V = \det T`."""
    return float(np.linalg.det(box_matrix(box)))


def perpendicular_widths(box) -> np.ndarray:
    r"""Perpendicular widths :math:`w_k = V / |a_l \times a_m|` of the cell, shape ``(3,)``.

    Equivalently :math:`w_k = 1/|b_k|` with :math:`b_k` the rows of :math:`T^{-1}`.
    """
    t = box_matrix(box)
    return 1.0 / np.linalg.norm(np.linalg.inv(t), axis=1)


def is_orthorhombic(box, atol: float = 1e-10) -> bool:
    """True when the cell matrix is diagonal."""
    t = box_matrix(box)
    return bool(np.all(np.abs(t - np.diag(np.diag(t))) <= atol * np.max(np.abs(t))))


def check_cutoff(box, r_cutoff: float) -> None:
    r"""Raise ``ValueError`` unless :math:`r_c \le w_{\min}/2` (minimum-image criterion)."""
    w = perpendicular_widths(box)
    if not r_cutoff > 0:
        raise ValueError(f"cutoff must be positive, got {r_cutoff}")
    if r_cutoff > 0.5 * w.min() * (1 + 1e-12):
        raise ValueError(
            f"cutoff {r_cutoff} exceeds half the smallest perpendicular width "
            f"{0.5 * w.min():.6g} of the cell (widths {np.round(w, 6).tolist()}); the "
            "minimum-image convention would miss or double-count pairs. Use a "
            "larger supercell (see replicas_for_cutoff)."
        )


def replicas_for_cutoff(box, r_cutoff: float) -> tuple[int, int, int]:
    r"""Smallest replication :math:`(n_a, n_b, n_c)` with :math:`n_k w_k \ge 2 r_c`.

    This is the rule RASPA uses to pick the number of unit cells.
    """
    w = perpendicular_widths(box)
    return tuple(int(math.ceil(2.0 * r_cutoff / wk - 1e-12)) for wk in w)


def periodic_space(
    box, *, fractional_coordinates: bool = False
) -> tuple[Callable[..., Array], Callable[..., Array]]:
    r"""jax-md ``(displacement_fn, shift_fn)`` for an orthorhombic or triclinic cell.

    Orthorhombic cells use ``space.periodic(sides)`` (real coordinates, cheapest);
    triclinic ones ``space.periodic_general(T)``. ``displacement_fn(Ra, Rb)``
    returns the minimum-image :math:`R_a - R_b`, valid for pairs closer than
    :math:`w_{\min}/2`.

    Args:
        box: see :func:`box_matrix`.
        fractional_coordinates: store positions as fractions in :math:`[0,1)^3`
            (forces ``periodic_general``).

    Returns:
        ``(displacement_fn, shift_fn)``.
    """
    t = box_matrix(box)
    if is_orthorhombic(t) and not fractional_coordinates:
        disp, shift = space.periodic(jnp.asarray(np.diag(t)))
    else:
        disp, shift = space.periodic_general(
            jnp.asarray(t), fractional_coordinates=fractional_coordinates
        )
    return standard_promotion(disp), standard_promotion(shift)


def neighbor_list(
    displacement_fn: Callable[..., Array],
    box,
    r_cutoff: float,
    *,
    skin: float = 0.3,
    capacity_multiplier: float = 1.25,
    fractional_coordinates: bool = False,
    sparse: bool = False,
):
    r"""A jax-md neighbour-list function pair with the cutoff checked against the cell.

    Thin wrapper over ``jax_md.partition.neighbor_list`` with
    ``r_cutoff + skin`` as list radius (``dr_threshold = skin/2``: the list is
    rebuilt when any particle has moved half the skin). Allocation (``.allocate``)
    happens outside jit; ``.update`` inside; check ``nbrs.did_buffer_overflow``.
    Tested for orthorhombic cells; for triclinic cells jax-md's cell list expects
    ``fractional_coordinates=True`` (with the matching ``periodic_space``).

    Returns:
        ``jax_md.partition.NeighborListFns``.
    """
    check_cutoff(box, r_cutoff + skin)
    t = box_matrix(box)
    box_arg = (
        jnp.asarray(np.diag(t))
        if is_orthorhombic(t) and not fractional_coordinates
        else jnp.asarray(t)
    )
    fmt = (
        partition.NeighborListFormat.OrderedSparse if sparse else partition.NeighborListFormat.Dense
    )
    fns = partition.neighbor_list(
        displacement_fn,
        box_arg,
        r_cutoff + skin,
        dr_threshold=skin / 2,
        capacity_multiplier=capacity_multiplier,
        fractional_coordinates=fractional_coordinates,
        format=fmt,
    )

    # jax-md 0.2.29's list builder compares int32 with int64 indices (mask_self_fn):
    # allocation, updates and the list's own ``update_fn`` run under standard promotion
    def allocate(position, extra_capacity: int = 0, **kwargs):
        with jax.numpy_dtype_promotion("standard"):
            nbrs = fns.allocate(position, extra_capacity, **kwargs)
        return dataclasses.replace(nbrs, update_fn=standard_promotion(nbrs.update_fn))

    return partition.NeighborListFns(allocate, standard_promotion(fns.update))


def wrap_fractional(frac: Float[Array, "n 3"]) -> Float[Array, "n 3"]:
    """Wrap fractional coordinates into ``[0, 1)``."""
    return jnp.mod(frac, 1.0)
