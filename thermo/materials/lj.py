r"""Hard-cut Lennard-Jones pair potential with analytic tail corrections.

The pair potential, truncated (optionally also shifted) at :math:`r_c`,

.. math::

    u(r) = 4\varepsilon\left[\left(\tfrac{\sigma}{r}\right)^{12}
           - \left(\tfrac{\sigma}{r}\right)^{6}\right] - u_{\rm shift},
    \qquad r < r_c, \qquad u(r) = 0 \text{ otherwise},

with :math:`u_{\rm shift} = 4\varepsilon[(\sigma/r_c)^{12} - (\sigma/r_c)^6]` when
``shift=True`` and 0 otherwise. jax-md's own ``lennard_jones_pair`` switches the
potential off smoothly; the reference data (NIST SRS, JZG, RASPA) use a hard cut,
so the pair is written here and lifted to a system with ``jax_md.smap.pair`` /
``smap.pair_neighbor_list``.

Long-range (tail) corrections for a homogeneous fluid of number density
:math:`\rho` with :math:`g(r)=1` beyond :math:`r_c` (Allen & Tildesley 2017,
eqs. 2.143-2.144; the NIST LJ SRS uses the same formulas):

.. math::

    \frac{U_{\rm tail}}{N} = \frac{8}{3}\pi\rho\varepsilon\sigma^3
        \left[\frac{1}{3}\left(\frac{\sigma}{r_c}\right)^9 - \left(\frac{\sigma}{r_c}\right)^3\right],
    \qquad
    P_{\rm tail} = \frac{16}{3}\pi\rho^2\varepsilon\sigma^3
        \left[\frac{2}{3}\left(\frac{\sigma}{r_c}\right)^9 - \left(\frac{\sigma}{r_c}\right)^3\right].

The virial pressure (Allen & Tildesley eq. 2.61) is

.. math:: P = \rho k_B T - \frac{1}{3V}\sum_{i<j} r_{ij}\, u'(r_{ij}) + P_{\rm tail},

and the impulsive term of the hard cut is *not* included: with the tail
correction this estimates the pressure of the full (untruncated) potential, which
is the NIST convention.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax_md import smap, space
from jaxtyping import Array, Float

from .._checks import is_traced
from .cells import standard_promotion

__all__ = [
    "lj_beyond_cut_energy",
    "lj_pair",
    "lj_pair_virial",
    "lj_energy_fn",
    "lj_virial_fn",
    "lj_neighbor_energy_fn",
    "tail_energy_per_particle",
    "tail_pressure",
    "virial_pressure",
]

# Below this fraction of sigma the pair energy is clamped (huge, finite): it keeps
# (sigma/r)^6 finite in float32 so that s12 - s6 is +inf at worst, never NaN.
_R_MIN_FRACTION = 1e-3


def _jax_md_pair_energy(smap_fn, pair, displacement_fn):
    # jax-md 0.2.29: canonicalize_displacement_or_metric probes displacement_fn with
    # float32 inputs and smap's sums scale by f32(0.5), both float32/float64 mixes
    with jax.numpy_dtype_promotion("standard"):
        metric = space.canonicalize_displacement_or_metric(displacement_fn)
    return standard_promotion(smap_fn(pair, metric))


def _inv_powers(r, sigma):
    r_safe = jnp.maximum(r, _R_MIN_FRACTION * sigma)
    s2 = (sigma / r_safe) ** 2
    s6 = s2 * s2 * s2
    return s6, s6 * s6


def lj_pair(
    r: Float[Array, "*batch"],
    sigma: float = 1.0,
    epsilon: float = 1.0,
    r_cut: float = 2.5,
    shift: bool = False,
) -> Float[Array, "*batch"]:
    r"""Hard-cut (optionally shifted) LJ pair energy :math:`u(r)`; see module docstring.

    Args:
        r: pair distances, any shape.
        sigma, epsilon: LJ parameters (broadcast against ``r``).
        r_cut: cutoff :math:`r_c`; :math:`u = 0` for :math:`r \ge r_c`.
        shift: subtract :math:`u(r_c)` inside the cutoff.

    Returns:
        energies with the shape of ``r``.
    """
    s6, s12 = _inv_powers(r, sigma)
    u = 4.0 * epsilon * (s12 - s6)
    if shift:
        sc6 = (sigma / r_cut) ** 6
        u = u - 4.0 * epsilon * (sc6 * sc6 - sc6)
    return jnp.where(r < r_cut, u, 0.0)


def lj_pair_virial(
    r: Float[Array, "*batch"],
    sigma: float = 1.0,
    epsilon: float = 1.0,
    r_cut: float = 2.5,
) -> Float[Array, "*batch"]:
    r"""Pair virial :math:`r\,u'(r) = -24\varepsilon[2(\sigma/r)^{12} - (\sigma/r)^6]` for :math:`r<r_c`."""
    s6, s12 = _inv_powers(r, sigma)
    w = -24.0 * epsilon * (2.0 * s12 - s6)
    return jnp.where(r < r_cut, w, 0.0)


def lj_energy_fn(
    displacement_fn: Callable[..., Array],
    *,
    sigma: float = 1.0,
    epsilon: float = 1.0,
    r_cut: float = 2.5,
    shift: bool = False,
) -> Callable[[Float[Array, "n 3"]], Float[Array, ""]]:
    r"""Total pair energy :math:`\sum_{i<j} u(r_{ij})` (no tail term) via ``smap.pair``.

    All-pairs, :math:`O(N^2)` memory; fine up to a few thousand particles. For
    larger systems use :func:`lj_neighbor_energy_fn`.

    Returns:
        ``energy_fn(R) -> ()`` with ``R`` of shape ``(n, 3)``.
    """

    def pair(dr, **kw):
        return lj_pair(dr, sigma, epsilon, r_cut, shift)

    return _jax_md_pair_energy(smap.pair, pair, displacement_fn)


class CellLJEnergy(eqx.Module):
    r"""Hard-cut LJ energy :math:`\sum_{i<j} u(r_{ij})` in an orthorhombic cell, the cell traced.

    The same energy as :func:`lj_energy_fn` on :func:`~thermo.materials.periodic_space`
    (minimum image, no tail), but the cell lengths are an array field: under
    ``eqx.filter_jit`` every density with the same ``n``, cut and LJ parameters shares one
    compiled function, where a closure over a fresh ``displacement_fn`` recompiles for
    each cell.

    Attributes:
        sides: ``(3,)`` cell lengths.
        r_cut, sigma, epsilon: the pair (static).
    """

    sides: Float[Array, " 3"]
    r_cut: float = eqx.field(static=True, default=2.5)
    sigma: float = eqx.field(static=True, default=1.0)
    epsilon: float = eqx.field(static=True, default=1.0)

    def __check_init__(self):
        if np.shape(self.sides) != (3,):
            raise ValueError(f"sides must have shape (3,), got {np.shape(self.sides)}")
        if not self.r_cut > 0:
            raise ValueError(f"r_cut must be positive, got {self.r_cut}")
        if not is_traced(self.sides):  # a concrete cell: the minimum image must hold
            half = 0.5 * float(np.min(np.asarray(self.sides)))
            if self.r_cut > half:
                raise ValueError(
                    f"r_cut {self.r_cut} exceeds half the shortest side ({half}): the "
                    "minimum image would miss pairs"
                )

    def __call__(self, positions: Float[Array, "n 3"]) -> Float[Array, ""]:
        x = jnp.asarray(positions)
        sides = jnp.asarray(self.sides, x.dtype)[None, None, :]
        d = x[:, None, :] - x[None, :, :]
        d = d - sides * jnp.round(d / sides)
        off = ~jnp.eye(x.shape[0], dtype=bool)
        r2 = jnp.where(off, jnp.sum(d * d, -1), 1.0)  # no sqrt(0) on the diagonal
        u = lj_pair(jnp.sqrt(r2), self.sigma, self.epsilon, self.r_cut)
        return 0.5 * jnp.sum(jnp.where(off, u, 0.0))


def lj_virial_fn(
    displacement_fn: Callable[..., Array],
    *,
    sigma: float = 1.0,
    epsilon: float = 1.0,
    r_cut: float = 2.5,
) -> Callable[[Float[Array, "n 3"]], Float[Array, ""]]:
    r"""Total virial :math:`\mathcal{W} = \sum_{i<j} r_{ij} u'(r_{ij})` via ``smap.pair``.

    Returns:
        ``virial_fn(R) -> ()``; feed it to :func:`virial_pressure`.
    """

    def pair(dr, **kw):
        return lj_pair_virial(dr, sigma, epsilon, r_cut)

    return _jax_md_pair_energy(smap.pair, pair, displacement_fn)


def lj_neighbor_energy_fn(
    displacement_fn: Callable[..., Array],
    *,
    sigma: float = 1.0,
    epsilon: float = 1.0,
    r_cut: float = 2.5,
    shift: bool = False,
) -> Callable[..., Float[Array, ""]]:
    r"""Neighbour-list version of :func:`lj_energy_fn` via ``smap.pair_neighbor_list``.

    Returns:
        ``energy_fn(R, neighbor) -> ()``; build the list with
        :func:`thermo.materials.cells.neighbor_list` at the same ``r_cut``.
    """

    def pair(dr, **kw):
        return lj_pair(dr, sigma, epsilon, r_cut, shift)

    return _jax_md_pair_energy(smap.pair_neighbor_list, pair, displacement_fn)


def tail_energy_per_particle(density, sigma: float = 1.0, epsilon: float = 1.0, r_cut: float = 2.5):
    r""":math:`U_{\rm tail}/N = \tfrac{8}{3}\pi\rho\varepsilon\sigma^3[\tfrac13(\sigma/r_c)^9 - (\sigma/r_c)^3]`."""
    sr3 = (sigma / r_cut) ** 3
    return (8.0 / 3.0) * jnp.pi * density * epsilon * sigma**3 * (sr3**3 / 3.0 - sr3)


def tail_pressure(density, sigma: float = 1.0, epsilon: float = 1.0, r_cut: float = 2.5):
    r""":math:`P_{\rm tail} = \tfrac{16}{3}\pi\rho^2\varepsilon\sigma^3[\tfrac23(\sigma/r_c)^9 - (\sigma/r_c)^3]`."""
    sr3 = (sigma / r_cut) ** 3
    return (16.0 / 3.0) * jnp.pi * density**2 * epsilon * sigma**3 * (2.0 * sr3**3 / 3.0 - sr3)


def virial_pressure(virial, n_particles: int, volume, temperature):
    r"""Virial pressure :math:`P = N k_B T / V - \mathcal{W}/(3V)` (no tail term; :math:`k_B = 1`).

    Args:
        virial: :math:`\mathcal{W} = \sum_{i<j} r_{ij} u'(r_{ij})` (any batch shape).
        n_particles: :math:`N`.
        volume: :math:`V`.
        temperature: :math:`T` in energy units.
    """
    return n_particles * temperature / volume - virial / (3.0 * volume)


@functools.partial(jax.jit, static_argnames=("r_cut", "r_max", "sigma", "epsilon"))
def _beyond_cut_batch(x, sides, *, r_cut, r_max, sigma, epsilon):
    shifts = (
        jnp.stack(
            jnp.meshgrid(*(jnp.arange(-1, 2, dtype=x.dtype),) * 3, indexing="ij"), -1
        ).reshape(-1, 3)
        * sides[None, :]
    )
    n = x.shape[-2]
    density = n / jnp.prod(sides)

    def one(xi):
        d = xi[:, None, :] - xi[None, :, :]
        d = d - sides[None, None, :] * jnp.round(d / sides[None, None, :])  # minimum image

        def shell(shift):
            r = jnp.sqrt(jnp.sum((d + shift[None, None, :]) ** 2, -1))  # one of 27 images
            inside = (r >= r_cut) & (r < r_max)
            sr6 = (sigma / jnp.where(inside, r, 1.0)) ** 6
            return jnp.sum(jnp.where(inside, 4.0 * epsilon * (sr6 * sr6 - sr6), 0.0))

        pairs = 0.5 * jnp.sum(jax.lax.map(shell, shifts))
        return pairs + n * tail_energy_per_particle(density, sigma, epsilon, r_max)

    return jax.lax.map(one, x)


def lj_beyond_cut_energy(
    positions: Float[Array, "*batch n 3"],
    sides,
    *,
    r_cut: float,
    r_max: float | None = None,
    sigma: float = 1.0,
    epsilon: float = 1.0,
) -> Float[Array, " *batch"]:
    r""":math:`U_{\rm full} - U_{\rm cut}` of configurations in an orthorhombic cell.

    The pairs (over the periodic images) at :math:`r_c \le r < r_{\max}`, each once, plus
    the homogeneous tail beyond :math:`r_{\max}` (:func:`tail_energy_per_particle`
    times :math:`N`). Unlike the tail correction it sees the configuration's structure
    between :math:`r_c` and :math:`r_{\max}`: in a crystal with a neighbour shell near
    the cut, :math:`-k_BT\ln\langle e^{-\beta(U_{\rm full}-U_{\rm cut})}\rangle_{\rm cut}`
    over samples of the cut system is the free-energy difference to the full potential.

    Args:
        positions: ``(n, 3)`` or ``(m, n, 3)`` real coordinates (wrapped or not).
        sides: ``(3,)`` cell lengths.
        r_cut: the cut of the sampled system.
        r_max: the explicit sum's reach (default 1.4 times the shortest side; at most 1.5
            times, the reach of the 27 images summed).
    """
    x = jnp.asarray(positions)
    sides_np = np.asarray(sides, np.float64)
    if x.ndim not in (2, 3) or x.shape[-1] != 3 or sides_np.shape != (3,):
        raise ValueError(
            f"positions must be (n, 3) or (m, n, 3) and sides (3,), got {x.shape}, {sides_np.shape}"
        )
    short = float(sides_np.min())
    r_max = 1.4 * short if r_max is None else float(r_max)
    if not 0 < r_cut < r_max <= 1.5 * short:
        raise ValueError(
            f"need 0 < r_cut ({r_cut}) < r_max ({r_max}) <= 1.5 x the shortest side ({short})"
        )
    out = _beyond_cut_batch(
        x.reshape(-1, *x.shape[-2:]),
        jnp.asarray(sides_np, x.dtype),
        r_cut=float(r_cut),
        r_max=r_max,
        sigma=float(sigma),
        epsilon=float(epsilon),
    )
    return out.reshape(x.shape[:-2])
