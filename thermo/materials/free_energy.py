r"""Free energies of the Lennard-Jones fluid: density integration and Widom insertion.

**Thermodynamic integration along the density path from the ideal gas**
(Frenkel & Smit, *Understanding Molecular Simulation*, 2nd ed., eq. 7.1.1; Johnson,
Zollweg & Gubbins 1993 use the same route). With :math:`Z = \beta P/\rho`,

.. math::

    \frac{\beta A_{\rm ex}(\rho)}{N} = \int_0^{\rho} \frac{Z(\rho') - 1}{\rho'}\,d\rho'
        = \int_0^{\rho} \frac{\beta P(\rho') - \rho'}{\rho'^2}\,d\rho',

a coupling path from the ideal gas (:math:`\rho' = 0`, where the integrand tends to
the second virial coefficient :math:`B_2(T)`) to the target state. It is evaluated
by Gauss–Legendre quadrature on :math:`[0, \rho]`; the nodes are NVT simulations at
the same temperature (supercritical paths cross no phase transition). The standard
error propagates the pressures' independent errors,
:math:`\sigma^2 = \sum_k w_k^2 \beta^2 \sigma_{P,k}^2/\rho_k^4`.

**Widom test-particle insertion** (Widom 1963):

.. math:: \beta\mu_{\rm ex} = -\log\langle e^{-\beta \Delta U}\rangle_N + \beta\mu_{\rm tail},
   \qquad \mu_{\rm tail} = \tfrac{16}{3}\pi\rho\varepsilon\sigma^3
   \left[\tfrac13(\sigma/r_c)^9 - (\sigma/r_c)^3\right] = 2 U_{\rm tail}/N,

with :math:`\Delta U` the hard-cut interaction of a ghost particle inserted uniformly
into stored configurations. The log-mean-exp goes through the project's
:func:`thermo.estimators.estimate_log_z`, applied to per-configuration mean weights
so that correlated insertions into the same configuration are not counted as
independent.

The Frenkel–Ladd Einstein-crystal route for the FCC solid is not implemented yet.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float

from ..estimators import estimate_log_z
from .cells import box_matrix, periodic_space
from .lj import lj_pair, tail_energy_per_particle

__all__ = [
    "DensityIntegration",
    "density_integration",
    "gauss_legendre_densities",
    "widom_chemical_potential",
]


def gauss_legendre_densities(density: float, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Gauss–Legendre nodes and weights on :math:`[0, \rho]`, shapes ``(n_nodes,)``."""
    if density <= 0 or n_nodes < 1:
        raise ValueError(f"need density > 0 and n_nodes >= 1, got {density}, {n_nodes}")
    x, w = np.polynomial.legendre.leggauss(n_nodes)
    return 0.5 * density * (x + 1.0), 0.5 * density * w


class DensityIntegration(NamedTuple):
    """Result of :func:`density_integration` (reduced units).

    Attributes:
        beta_free_energy: :math:`\\beta A_{\\rm ex}/N`.
        free_energy: :math:`A_{\\rm ex}/(N\\varepsilon) = T\\,\\beta A_{\\rm ex}/N`.
        std_err: standard error of ``free_energy``.
        integrand: ``(n_nodes,)`` :math:`(Z-1)/\\rho` at the nodes.
    """

    beta_free_energy: float
    free_energy: float
    std_err: float
    integrand: np.ndarray


def density_integration(
    temperature: float,
    densities: Float[Array, " k"],
    weights: Float[Array, " k"],
    pressures: Float[Array, " k"],
    pressure_std_errs: Float[Array, " k"],
) -> DensityIntegration:
    r"""Excess free energy from pressures on a quadrature in density (module docstring).

    Args:
        temperature: :math:`T^*`.
        densities, weights: quadrature on :math:`[0,\rho]` (e.g.
            :func:`gauss_legendre_densities`), shape ``(k,)``, densities > 0.
        pressures: tail-corrected :math:`P^*` at the nodes, ``(k,)``.
        pressure_std_errs: their independent standard errors, ``(k,)``.

    Returns:
        :class:`DensityIntegration`.
    """
    rho = np.asarray(densities, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    p = np.asarray(pressures, dtype=np.float64)
    sp = np.asarray(pressure_std_errs, dtype=np.float64)
    if not (rho.shape == w.shape == p.shape == sp.shape) or rho.ndim != 1 or rho.size == 0:
        raise ValueError("densities, weights, pressures and std errs must be equal-length 1-D")
    if np.any(rho <= 0) or not np.all(np.isfinite(np.concatenate([rho, w, p, sp]))):
        raise ValueError("densities must be positive and all inputs finite")
    beta = 1.0 / temperature
    f = (beta * p - rho) / rho**2
    beta_a = float(np.sum(w * f))
    se = float(np.sqrt(np.sum((w * beta * sp / rho**2) ** 2)))
    return DensityIntegration(beta_a, temperature * beta_a, temperature * se, f)


def widom_chemical_potential(
    key,
    configurations: Float[Array, "m n 3"],
    box,
    *,
    temperature: float,
    n_insertions: int = 1000,
    sigma: float = 1.0,
    epsilon: float = 1.0,
    r_cut: float = 2.5,
    tail: bool = True,
):
    r"""Widom excess chemical potential :math:`\beta\mu_{\rm ex}` of a one-component LJ fluid.

    Args:
        key: PRNG key.
        configurations: ``(m, n, 3)`` equilibrium configurations (real coordinates).
        box: cell (see :func:`thermo.materials.cells.box_matrix`).
        temperature: :math:`T^*`.
        n_insertions: ghost insertions per configuration.
        tail: add :math:`\beta\mu_{\rm tail}` (module docstring).

    Returns:
        :class:`thermo.estimators.Estimate` of :math:`\beta\mu_{\rm ex}` (``value``,
        ``std_err`` over configurations, ``ess``).
    """
    conf = jnp.asarray(configurations)
    if conf.ndim != 3 or conf.shape[-1] != 3:
        raise ValueError(f"configurations must be (m, n, 3), got {conf.shape}")
    t = box_matrix(box)
    disp, _ = periodic_space(t)
    m, n, _ = conf.shape
    beta = 1.0 / temperature
    t_j = jnp.asarray(t)

    def ghost_energy(positions, x):
        dr = jax.vmap(lambda r: disp(x, r))(positions)
        return jnp.sum(lj_pair(jnp.sqrt(jnp.sum(dr * dr, -1)), sigma, epsilon, r_cut))

    @jax.jit
    def log_mean_w(keys, conf):
        def one(k, positions):
            frac = jr.uniform(k, (n_insertions, 3), dtype=positions.dtype)
            u = jax.vmap(lambda f: ghost_energy(positions, t_j @ f))(frac)
            return jax.scipy.special.logsumexp(-beta * u) - jnp.log(n_insertions)

        return jax.lax.map(lambda a: one(*a), (keys, conf))

    log_w = log_mean_w(jr.split(key, m), conf)
    est = estimate_log_z(log_w)
    rho = n / float(np.linalg.det(t))
    mu_tail = 2.0 * tail_energy_per_particle(rho, sigma, epsilon, r_cut) if tail else 0.0
    return est._replace(value=-est.value + beta * mu_tail)
