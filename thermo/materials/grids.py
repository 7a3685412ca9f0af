r"""Framework energy grids: tabulated framework–site energies with tricubic interpolation.

A rigid framework's interaction with an adsorbate site of a given pseudo-atom type
(Lennard-Jones :math:`\varepsilon, \sigma`) and charge :math:`q` is a fixed periodic field
of the site position :math:`r`,

.. math::

    u(r) = \sum_{j} u_{\rm LJ}(|r - r_j|; \varepsilon_{ij}, \sigma_{ij})
        + q\,\phi(r),\qquad
    \phi(r) = C\sum_j q_j\frac{\operatorname{erfc}(\alpha|r-r_j|)}{|r-r_j|}
        + 2C\sum_{k}w_k\,\mathrm{Re}\big[S_f(k)^*e^{ik\cdot r}\big],

the sums over the framework atoms within :math:`r_c` (minimum image in the supercell)
and over the half k-space of :mod:`thermo.materials.ewald` (weights :math:`w_k`
counting :math:`\pm k`). :math:`\phi` is the framework's full Ewald potential (real space
plus reciprocal), so the framework–molecule Fourier cross term
:math:`2C\sum_k w_k\mathrm{Re}[S_f^*s_m]` of the ``ewaldFourier`` energy is exactly
:math:`\sum_{i\in m}q_i\phi_{\rm rec}(r_i)` and leaves the per-move k-space sum; only
the molecule–molecule part :math:`C\sum_k w_k|S_m|^2` stays there. As RASPA and RASPA3
do (Dubbeldam et al. 2013, *Mol. Simul.* 39, 1253, sec. 4.1; RASPA3's
``InterpolationEnergyGrid``, one grid per pseudo-atom type and one Ewald grid for a
unit charge), the fields are tabulated once on a regular grid over the framework's
**unit cell** in fractional coordinates (the field is unit-cell periodic), ``n_a =
ceil(|a_a| / spacing)`` points along cell vector :math:`a_a`.

Interpolation: tensor-product cubic Lagrange (4 × 4 × 4 nodes around the point, nodes
at :math:`-1, 0, 1, 2` in units of the grid step with the point at :math:`t \in [0, 1)`),
exact at the nodes and for polynomials of degree 3 per axis; the per-axis remainder is
:math:`\frac{h^4}{24}|f^{(4)}(\xi)|\,|(t+1)t(t-1)(t-2)| \le \frac{9}{384}h^4\max|f^{(4)}|`,
so the error falls as :math:`h^4`. Unlike RASPA3's tricubic Hermite scheme it needs
only the values (no analytic derivatives) and is local (no global spline prefilter,
so the steep repulsive core cannot ring into the pores).

Blocking: a site whose stencil holds an LJ value at or above ``block_energy`` is
*blocked*: the molecule's energy is the overlap clamp (rejection). The LJ core inside
which the field exceeds ``block_energy`` is far wider than a grid step, so no blocked
region hides between nodes, and an interpolation is only ever made from nodes all
below ``block_energy`` (the steep core never enters one).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erfc

from .lj import lj_pair

__all__ = ["DEFAULT_BLOCK_ENERGY", "DEFAULT_GRID_MAX_BYTES", "grid_shape"]

#: Per-site LJ energy (K) at and above which a stencil node blocks the site (rejection).
DEFAULT_BLOCK_ENERGY = 3.0e4
#: Default memory budget of one framework's grids, bytes.
DEFAULT_GRID_MAX_BYTES = 2 * 1024**3


def grid_shape(unit_cell_rows, spacing: float) -> tuple[int, int, int]:
    """Grid points per unit-cell vector: ``ceil(|a_a| / spacing)``, at least 4."""
    if not (isinstance(spacing, (int, float)) and math.isfinite(spacing) and spacing > 0):
        raise ValueError(f"grid_spacing must be a positive finite number (Å), got {spacing!r}")
    lengths = np.linalg.norm(np.asarray(unit_cell_rows, dtype=np.float64), axis=1)
    return tuple(int(max(4, math.ceil(length / spacing))) for length in lengths)


def check_grid_budget(shape, n_fields: int, max_bytes: float) -> int:
    """Bytes of ``n_fields`` float64 grids of ``shape``; a clear error above ``max_bytes``."""
    n_bytes = int(np.prod(shape)) * int(n_fields) * 8
    if not max_bytes > 0:
        raise ValueError(f"grid_max_bytes must be positive, got {max_bytes!r}")
    if n_bytes > max_bytes:
        raise ValueError(
            f"energy grids of {shape[0]}x{shape[1]}x{shape[2]} points x {n_fields} fields need "
            f"{n_bytes / 2**20:.1f} MiB, above grid_max_bytes = {max_bytes / 2**20:.1f} MiB: "
            "raise grid_spacing or grid_max_bytes"
        )
    return n_bytes


@functools.partial(jax.jit, static_argnames="shifted")
def _real_space_chunk(points_frac, nbrs, frame_frac, eps, sig, q, cell, alpha, r_cut, shifted):
    """LJ per type ``(P, T)`` and real-space Coulomb potential per unit charge ``(P,)``.

    Minimum image in supercell fractional coordinates, one scalar gather per axis (much
    faster on CPU than gathering 3-vectors and a 3 × 3 product per pair); the padding
    atom index ``M`` is masked out.
    """
    m = frame_frac.shape[0]
    real = nbrs < m
    idx = jnp.minimum(nbrs, m - 1)
    df = []
    for a in range(3):
        x = points_frac[:, a, None] - frame_frac[:, a][idx]
        df.append(x - jnp.round(x))
    r2 = jnp.zeros(nbrs.shape, dtype=points_frac.dtype)
    for j in range(3):
        dj = df[0] * cell[0, j] + df[1] * cell[1, j] + df[2] * cell[2, j]
        r2 = r2 + dj * dj
    r = jnp.sqrt(r2)
    keep = real & (r < r_cut)
    r_safe = jnp.where(keep, jnp.maximum(r, 1e-6), 2.0 * r_cut)
    lj = jax.vmap(
        lambda e, s: jnp.sum(
            jnp.where(keep, lj_pair(r_safe, s[idx], e[idx], r_cut, shifted), 0.0), -1
        ),
        out_axes=1,
    )(eps, sig)
    coul = jnp.sum(jnp.where(keep, q[idx] * erfc(alpha * r_safe) / r_safe, 0.0), -1)
    return lj, coul


def build_framework_grids(
    *,
    frame_frac,
    frame_q,
    frame_eps,
    frame_sig,
    type_eps,
    type_sig,
    supercell_rows,
    reps,
    shape,
    r_cut: float,
    shifted: bool,
    coulomb: bool,
    alpha: float,
    coulomb_constant: float,
    k_ranges=None,
    k_weights=None,
    s_frame=None,
    block_energy: float = DEFAULT_BLOCK_ENERGY,
    chunk: int = 1024,
) -> np.ndarray:
    r"""The ``(n_1, n_2, n_3, T + c)`` grids: LJ of each of ``T`` site types, then (when
    ``coulomb``) :math:`\phi` per unit charge (module docstring), on the unit-cell nodes
    :math:`r = \sum_a (j_a / n_a) a_a`. LJ values are capped at ``block_energy``.

    Args:
        frame_frac: ``(M, 3)`` supercell fractional coordinates of the framework atoms.
        frame_q, frame_eps, frame_sig: ``(M,)`` charges (e) and atom LJ parameters.
        type_eps, type_sig: ``(T,)`` site-type LJ parameters (Lorentz–Berthelot mixing).
        supercell_rows: ``(3, 3)`` supercell vectors as rows, Å; reps: unit cells per axis.
        shape: the grid points per unit-cell axis.
        k_ranges, k_weights, s_frame: the half k-grid of :func:`adsorption._fourier_grid`.
    """
    from .adsorption import _bin_lists  # local: adsorption imports nothing from here

    reps_a = np.asarray(reps, dtype=np.float64)
    sc = np.asarray(supercell_rows, dtype=np.float64)
    n1, n2, n3 = shape
    m = frame_frac.shape[0]
    idx = np.stack(np.meshgrid(np.arange(n1), np.arange(n2), np.arange(n3), indexing="ij"), -1)
    frac_super = idx.reshape(-1, 3) / np.asarray(shape, dtype=np.float64) / reps_a
    n_types = len(type_eps)
    n_fields = n_types + (1 if coulomb else 0)
    out = np.zeros((n1 * n2 * n3, n_fields))
    if m:
        lists, n_bins = _bin_lists(frame_frac, sc.T, reps, 0.0, float(r_cut), 1.0)
        uc = frac_super * reps_a  # in [0, 1)
        b = np.clip((uc * n_bins).astype(int), 0, n_bins - 1)
        point_bins = (b[:, 0] * n_bins[1] + b[:, 1]) * n_bins[2] + b[:, 2]
        eps = jnp.asarray(np.sqrt(np.asarray(type_eps)[:, None] * np.asarray(frame_eps)[None, :]))
        sig = jnp.asarray(0.5 * (np.asarray(type_sig)[:, None] + np.asarray(frame_sig)[None, :]))
        q = jnp.asarray(np.asarray(frame_q, dtype=np.float64))
        lists_j = jnp.asarray(lists, dtype=jnp.int32)
        ff = jnp.asarray(np.asarray(frame_frac, dtype=np.float64))
        args = (jnp.asarray(sc), float(alpha), float(r_cut), bool(shifted))
        n_pts = frac_super.shape[0]
        for start in range(0, n_pts, chunk):
            stop = min(start + chunk, n_pts)
            p = np.zeros((chunk, 3))
            p[: stop - start] = frac_super[start:stop]
            pb = np.zeros(chunk, dtype=np.int32)
            pb[: stop - start] = point_bins[start:stop]
            lj, coul = _real_space_chunk(jnp.asarray(p), lists_j[pb], ff, eps, sig, q, *args)
            out[start:stop, :n_types] = np.minimum(np.asarray(lj)[: stop - start], block_energy)
            if coulomb:
                out[start:stop, n_types] = coulomb_constant * np.asarray(coul)[: stop - start]
    grids = out.reshape(n1, n2, n3, n_fields)
    if coulomb and k_weights is not None:
        grids[..., n_types] += _reciprocal_potential(
            shape, reps_a, k_ranges, k_weights, s_frame, coulomb_constant
        )
    return grids


def _reciprocal_potential(shape, reps_a, k_ranges, k_weights, s_frame, coulomb_constant):
    r""":math:`2C\sum_{\rm half} w_k\mathrm{Re}[S_f^*e^{2\pi i n\cdot f}]` on the nodes, by
    three staged one-axis contractions (the k-grid is a product of integer ranges)."""
    c = np.conj(np.asarray(s_frame)) * np.asarray(k_weights)  # (K1, K2, K3)
    e = []
    for a in range(3):
        f = np.arange(shape[a]) / shape[a] / reps_a[a]
        e.append(np.exp(2j * np.pi * np.asarray(k_ranges[a])[:, None] * f[None, :]))
    t = np.einsum("abc,ck->abk", c, e[2])
    t = np.einsum("abk,bj->ajk", t, e[1])
    t = np.einsum("ajk,ai->ijk", t, e[0])
    return 2.0 * coulomb_constant * t.real


def lagrange_weights(t):
    """Cubic Lagrange weights of the nodes -1, 0, 1, 2 at ``t`` in [0, 1): ``(..., 4)``."""
    tm1, tm2, tp1 = t - 1.0, t - 2.0, t + 1.0
    return jnp.stack(
        [-t * tm1 * tm2 / 6.0, tp1 * tm1 * tm2 / 2.0, -tp1 * t * tm2 / 2.0, tp1 * t * tm1 / 6.0],
        axis=-1,
    )


def interpolate(grids, shape, frac):
    """Interpolate all fields at one point of unit-cell fractional coordinates ``frac (3,)``.

    ``grids`` ``(N1, N2, N3, F)`` (possibly padded beyond ``shape``, the live
    ``(3,)`` int32 point counts). Returns ``(values (F,), stencil_max (F,))``.
    """
    n_f = shape.astype(frac.dtype)
    u = jnp.mod(frac, 1.0) * n_f
    base = jnp.floor(u)
    t = u - base
    i0 = base.astype(jnp.int32) - 1
    offs = jnp.arange(4, dtype=jnp.int32)
    ia = jnp.mod(i0[0] + offs, shape[0])
    ib = jnp.mod(i0[1] + offs, shape[1])
    ic = jnp.mod(i0[2] + offs, shape[2])
    st = grids[ia[:, None, None], ib[None, :, None], ic[None, None, :]].astype(frac.dtype)
    w = lagrange_weights(t)  # (3, 4)
    vals = jnp.einsum("ijkf,i,j,k->f", st, w[0], w[1], w[2])
    return vals, jnp.max(st, axis=(0, 1, 2))
