r"""Interacting particle systems: DW-4 and Lennard-Jones clusters, in two LJ conventions.

Energy conventions follow the published reference samples exactly (checked
against them with the Stein identity; see ``shared/data/reference/README.md`` and
the tests):

* **DW-4** (Köhler, Klein & Noé, ICML 2020): 4 particles in 2-D,
  :math:`U = \sum_{i<j} a\,r_{ij} + b(r_{ij} - r_0)^2 + c(r_{ij} - r_0)^4` with
  :math:`a = 0`, :math:`b = -4`, :math:`c = 0.9`, :math:`r_0 = 4`, :math:`\beta = 1`,
  each pair counted once.
* **LJ-n, DEM/EFM convention** (Klein, Krämer & Noé, NeurIPS 2023; Akhound-Sadegh
  et al., ICML 2024): :math:`U = \sum_{i\ne j}[(r_m/r_{ij})^{12} - 2(r_m/r_{ij})^6]
  + \tfrac12\sum_i|x_i - \bar x|^2` over ORDERED pairs, :math:`\varepsilon = r_m = 1`,
  :math:`\beta = 1`.
* **LJ-n, standard convention**: one count per pair,
  :math:`U = \sum_{i<j} 4\varepsilon[(\sigma/r)^{12} - (\sigma/r)^6]`, with
  :math:`\varepsilon = \sigma = 1` (so :math:`r_m = 2^{1/6}\sigma`), no restraint,
  at :math:`k_BT = \varepsilon/2`, i.e. :math:`\beta = 2/\varepsilon`. These are the
  units of the Cambridge Cluster Database (Wales & Doye 1997), whose global minima
  are -44.326801 (LJ-13) and -279.248470 (LJ-55).

Exact relation between the two LJ conventions (tested on random configurations):
with :math:`s = 2^{1/6}` the length unit of the standard system,

.. math:: U_\mathrm{DEM}(x) = 2\,U_\mathrm{std}(s\,x) + \tfrac12\sum_i |x_i - \bar x|^2,
          \qquad \beta_\mathrm{DEM} U_\mathrm{DEM}(x) = \beta_\mathrm{std} U_\mathrm{std}(s x)
          + \tfrac12 \sum_i |x_i - \bar x|^2 .

So the DEM Boltzmann density is standard LJ at :math:`k_BT = 0.5\varepsilon` times a
harmonic restraint that pulls every particle towards the centroid (strength 1,
translation invariant: it confines the internal coordinates, which makes the
cluster's :math:`Z` finite once the centre of mass is fixed). The DEM minima are
therefore NOT twice the Cambridge values: the restraint compresses the cluster
(-83.0896 vs 2 x -44.326801 = -88.6536 for LJ-13).

Coincident particles: the pair term is a function of :math:`q = r^2/r_m^2`,
:math:`u(q) = q^{-6} - 2q^{-3}`. Below :math:`q_c = 1/4` (:math:`r < r_m/2`, where
:math:`u \approx 4\times10^3` and :math:`e^{-\beta U}` is zero to any precision) it is
replaced by its second-order Taylor polynomial about :math:`q_c`, which is
:math:`C^2`, decreasing on :math:`[0, q_c]` and finite at :math:`r = 0`
(:math:`u(0) = 113408\,\varepsilon`), with a zero gradient there. The energy at
:math:`r \ge r_m/2` is unchanged. DW-4 is finite at :math:`r = 0` as it stands; its
distance uses a double-``where`` square root whose gradient is 0 (not NaN) at 0.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import check_count, check_positive
from ._base import ParticleSystem, pairwise_distances, pairwise_squared_distances

__all__ = [
    "LennardJonesCluster",
    "MultiDoubleWell",
    "dw4",
    "lennard_jones_dem",
    "lennard_jones_standard",
    "lj_pair_energy",
]

# q = r^2 / r_m^2 below which the LJ pair term is replaced by its Taylor polynomial.
_Q_CLAMP = 0.25


def lj_pair_energy(q: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
    r"""Reduced LJ pair energy :math:`u(q) = q^{-6} - 2q^{-3}`, :math:`q = (r/r_m)^2`, regularised.

    Minimum :math:`u(1) = -1`. For :math:`q < q_c = 1/4` the second-order Taylor
    polynomial of :math:`u` about :math:`q_c` is used (finite, :math:`C^2`, see the
    module docstring).
    """
    qc = _Q_CLAMP
    q_safe = jnp.maximum(q, qc)
    inv3 = 1.0 / (q_safe * q_safe * q_safe)
    u_lj = inv3 * inv3 - 2.0 * inv3
    # u(qc), u'(qc) = -6 qc^-7 + 6 qc^-4, u''(qc) = 42 qc^-8 - 24 qc^-5 (Python floats).
    u0 = qc**-6 - 2.0 * qc**-3
    u1 = -6.0 * qc**-7 + 6.0 * qc**-4
    u2 = 42.0 * qc**-8 - 24.0 * qc**-5
    dq = q - qc
    u_taylor = u0 + u1 * dq + 0.5 * u2 * dq * dq
    return jnp.where(q >= qc, u_lj, u_taylor)


class MultiDoubleWell(ParticleSystem):
    r"""Pairwise double-well particles (DW-n; Köhler, Klein & Noé 2020), one count per pair.

    .. math:: U(x) = \sum_{i<j} a\,r_{ij} + b\,(r_{ij}-r_0)^2 + c\,(r_{ij}-r_0)^4 .

    ``dw4``: n = 4, 2-D, a = 0, b = -4, c = 0.9, r_0 = 4, :math:`\beta = 1`.
    ``log_z`` is ``None`` (unknown; and infinite unless the centre of mass is
    fixed). ``prior_scale = 2``: about the per-coordinate spread of the centred
    reference configurations (1.82 in the published DW-4 samples).
    """

    a: float = eqx.field(static=True)
    b: float = eqx.field(static=True)
    c: float = eqx.field(static=True)
    r0: float = eqx.field(static=True)

    def __init__(
        self,
        n_particles: int = 4,
        spatial_dim: int = 2,
        *,
        a: float = 0.0,
        b: float = -4.0,
        c: float = 0.9,
        r0: float = 4.0,
        beta: float = 1.0,
        prior_scale: float = 2.0,
        name: str = "dw4",
    ):
        n_particles = check_count(n_particles, f"{name}: n_particles", minimum=2)
        spatial_dim = check_count(spatial_dim, f"{name}: spatial_dim")
        self.name = name
        self.n_particles = int(n_particles)
        self.spatial_dim = int(spatial_dim)
        self.dim = self.n_particles * self.spatial_dim
        self.a, self.b, self.c, self.r0 = float(a), float(b), float(c), float(r0)
        self.beta = float(beta)
        self.log_z = None
        self.prior_scale = float(prior_scale)

    def _energy(self, x: Float[Array, " dim"]) -> Float[Array, ""]:
        r = pairwise_distances(x, self.n_particles, self.spatial_dim)
        d = r - self.r0
        d2 = d * d
        return jnp.sum(self.a * r + self.b * d2 + self.c * d2 * d2)


def dw4() -> MultiDoubleWell:
    """DW-4: 4 particles in 2-D, a = 0, b = -4, c = 0.9, r_0 = 4, beta = 1 (see :class:`MultiDoubleWell`)."""
    return MultiDoubleWell()


class LennardJonesCluster(ParticleSystem):
    r"""A Lennard-Jones cluster with an optional centroid restraint.

    .. math:: U(x) = \kappa\,\varepsilon \sum_{i<j} u\!\left(\frac{r_{ij}^2}{r_m^2}\right)
              + \frac{k}{2}\sum_i |x_i - \bar x|^2,\qquad u(q) = q^{-6} - 2q^{-3},

    which is :math:`\kappa\sum_{i<j}4\varepsilon[(\sigma/r)^{12} - (\sigma/r)^6]` with
    :math:`r_m = 2^{1/6}\sigma`. :math:`\kappa` (``pair_factor``) is 2 for the
    DEM/EFM ordered-pair sum and 1 for the standard one. ``u`` is regularised below
    :math:`r_m/2` (see :func:`lj_pair_energy`). ``log_z`` is ``None``. Use
    :func:`lennard_jones_dem` or :func:`lennard_jones_standard`.
    """

    epsilon: float = eqx.field(static=True)
    r_m: float = eqx.field(static=True)
    pair_factor: float = eqx.field(static=True)
    harmonic: float = eqx.field(static=True)

    def __init__(
        self,
        n_particles: int,
        spatial_dim: int = 3,
        *,
        epsilon: float,
        r_m: float,
        pair_factor: float,
        harmonic: float,
        beta: float,
        prior_scale: float,
        name: str,
    ):
        n_particles = check_count(n_particles, f"{name}: n_particles", minimum=2)
        spatial_dim = check_count(spatial_dim, f"{name}: spatial_dim")
        for label, value in (("epsilon", epsilon), ("r_m", r_m), ("beta", beta)):
            check_positive(value, f"{name}: {label}")
        check_positive(harmonic, f"{name}: harmonic", allow_zero=True)
        self.name = name
        self.n_particles = int(n_particles)
        self.spatial_dim = int(spatial_dim)
        self.dim = self.n_particles * self.spatial_dim
        self.epsilon = float(epsilon)
        self.r_m = float(r_m)
        self.pair_factor = float(pair_factor)
        self.harmonic = float(harmonic)
        self.beta = float(beta)
        self.log_z = None
        self.prior_scale = float(prior_scale)

    def lj_energy(self, x: Float[Array, " dim"]) -> Float[Array, ""]:
        r"""The pair part :math:`\kappa\varepsilon\sum_{i<j}u(r_{ij}^2/r_m^2)` alone (no restraint)."""
        x = self._check(x)
        q = pairwise_squared_distances(x, self.n_particles, self.spatial_dim) / self.r_m**2
        return self.pair_factor * self.epsilon * jnp.sum(lj_pair_energy(q))

    def restraint_energy(self, x: Float[Array, " dim"]) -> Float[Array, ""]:
        r"""The centroid restraint :math:`\tfrac k2 \sum_i |x_i - \bar x|^2` alone."""
        pos = jnp.reshape(self._check(x), (self.n_particles, self.spatial_dim))
        centred = pos - jnp.mean(pos, axis=0, keepdims=True)
        return 0.5 * self.harmonic * jnp.sum(centred * centred)

    def _energy(self, x: Float[Array, " dim"]) -> Float[Array, ""]:
        energy = self.lj_energy(x)
        if self.harmonic:
            energy = energy + self.restraint_energy(x)
        return energy


def lennard_jones_dem(n_particles: int) -> LennardJonesCluster:
    r"""LJ-n in the DEM/EFM convention: ordered pairs, :math:`\varepsilon = r_m = 1`, restraint k = 1, :math:`\beta = 1`.

    ``prior_scale``: 0.7 for LJ-13, about the per-coordinate spread of the
    reference configurations (0.68), grown as :math:`n^{1/3}` for larger clusters.
    """
    return LennardJonesCluster(
        n_particles,
        3,
        epsilon=1.0,
        r_m=1.0,
        pair_factor=2.0,
        harmonic=1.0,
        beta=1.0,
        prior_scale=0.7 * (n_particles / 13) ** (1 / 3),
        name=f"lj{n_particles}",
    )


def lennard_jones_standard(n_particles: int) -> LennardJonesCluster:
    r"""LJ-n, standard convention: :math:`\sum_{i<j}4\varepsilon[(\sigma/r)^{12} - (\sigma/r)^6]`, :math:`\varepsilon = \sigma = 1`.

    One count per pair, no restraint, :math:`k_BT = 0.5\varepsilon` (:math:`\beta = 2`),
    the temperature at which it matches the DEM convention (module docstring).
    Without a restraint the cluster's :math:`Z` diverges (evaporation), so samplers
    should add their own confinement. ``prior_scale`` is the DEM one times
    :math:`2^{1/6}`.
    """
    s = 2.0 ** (1.0 / 6.0)
    return LennardJonesCluster(
        n_particles,
        3,
        epsilon=1.0,
        r_m=s,
        pair_factor=1.0,
        harmonic=0.0,
        beta=2.0,
        prior_scale=0.7 * s * (n_particles / 13) ** (1 / 3),
        name=f"lj{n_particles}-standard",
    )
