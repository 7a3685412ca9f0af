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

**Low-density end.** The integrand's noise is :math:`\beta\sigma_P/\rho^2`, so
Gauss–Legendre nodes close to :math:`\rho = 0` dominate the error bar. Its exact limit
is the second virial coefficient of the *full* potential,

.. math:: \lim_{\rho\to 0}\frac{Z - 1}{\rho} = B_2(T)
   = -2\pi\int_0^\infty \big(e^{-\beta u(r)} - 1\big) r^2\,dr

(:func:`second_virial_coefficient`; it equals the hard-cut-plus-tail virial limit up to
:math:`O(\beta^2 u(r_c)^2)`). :func:`gauss_lobatto_densities` puts a node on
:math:`\rho' = 0`, whose integrand is :math:`B_2` with zero error, and one on the
target density, whose simulation also serves the Widom cross-check
(:func:`widom_excess_free_energy`); the interior nodes sit further from 0 than
Gauss–Legendre's (0.117ρ instead of 0.047ρ for 6 against 5 nodes).

**Widom route** (Frenkel & Smit eq. 7.2.x; a one-simulation cross-check): with
:math:`\mu_{\rm ex} = (\partial A_{\rm ex}/\partial N)_{V,T}` and
:math:`A_{\rm ex}/N = \mu_{\rm ex} - P_{\rm ex}/\rho`,

.. math:: \frac{\beta A_{\rm ex}}{N} = \beta\mu_{\rm ex} - (Z - 1).

The Frenkel–Ladd Einstein-crystal route for the FCC solid is in
:mod:`thermo.materials.solid`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float

from .._checks import check_count, check_positive
from ..estimators import estimate_log_z
from ..estimators._path import _log_mean_exp_with_error
from ..estimators._ti import gauss_legendre
from .cells import box_matrix, periodic_space
from .lj import lj_pair, tail_energy_per_particle

__all__ = [
    "DensityIntegration",
    "density_integration",
    "gauss_legendre_densities",
    "gauss_lobatto_densities",
    "second_virial_coefficient",
    "third_virial_coefficient",
    "virial_pressure_series",
    "widom_chemical_potential",
    "widom_excess_free_energy",
]


def second_virial_coefficient(temperature: float, sigma: float = 1.0, epsilon: float = 1.0):
    r"""Second virial coefficient :math:`B_2(T)` of the full (untruncated) LJ potential.

    :math:`B_2 = -2\pi\int_0^\infty (e^{-u(r)/T} - 1)\,r^2\,dr` by adaptive quadrature
    (``scipy.integrate.quad``, relative error ~1e-10); compare in units of
    :math:`b_0 = 2\pi\sigma^3/3` with Hirschfelder, Curtiss & Bird 1954, Table I-B.

    Returns:
        :math:`B_2` in units of :math:`\sigma^3` times ``sigma**3``.
    """
    from scipy import integrate

    check_positive(temperature, "temperature")

    def f(r):
        sr6 = (sigma / r) ** 6
        return np.expm1(-4.0 * epsilon * (sr6 * sr6 - sr6) / temperature) * r * r

    parts = [
        (1e-9 * sigma, sigma),
        (sigma, 2.0 ** (1.0 / 6.0) * sigma),
        (2.0 ** (1.0 / 6.0) * sigma, 5.0 * sigma),
    ]
    val = sum(integrate.quad(f, a, b, limit=200, epsabs=0, epsrel=1e-12)[0] for a, b in parts)
    val += integrate.quad(f, 5.0 * sigma, np.inf, limit=200)[0]
    return -2.0 * np.pi * val


def _mayer_lj(r, temperature, sigma, epsilon):
    s6 = (sigma / np.maximum(r, 0.3 * sigma)) ** 6
    return np.expm1(-4.0 * epsilon * (s6 * s6 - s6) / temperature)


def third_virial_coefficient(
    temperature: float,
    sigma: float = 1.0,
    epsilon: float = 1.0,
    *,
    mayer_fn=None,
    r_max: float = 12.0,
) -> float:
    r"""Third virial coefficient :math:`B_3(T)` of the full LJ potential (or any pair).

    .. math:: B_3 = -\frac13\int\!\!\int f(r_{12}) f(r_{13}) f(r_{23})\,d^3r_{12}\,d^3r_{13}
       = -\frac{8\pi^2}{3}\int_0^\infty\!\! r^2 f(r)\int_0^\infty\!\! s^2 f(s)
         \int_{-1}^{1} f\big(\sqrt{r^2+s^2-2rs\mu}\big)\,d\mu\,ds\,dr

    (Mayer & Mayer 1940; Hirschfelder, Curtiss & Bird 1954 sec. 3.8), by composite
    Gauss–Legendre product quadrature (breaks at 0.6, 1, 1.5, 3σ; cut at ``r_max``, where
    the neglected tail is ~1e-6 relative). ``mayer_fn(r)`` replaces the LJ Mayer function (e.g. hard
    spheres: :math:`B_3 = \tfrac58 b_0^2`).
    """
    check_positive(temperature, "temperature")
    if mayer_fn is None:

        def mayer_fn(r):
            return _mayer_lj(r, temperature, sigma, epsilon)

    edges = np.unique(np.minimum(np.array([0.0, 0.6, 1.0, 1.5, 3.0, r_max]) * sigma, r_max))
    parts = [
        gauss_legendre(a, b, 40 if a < 3.0 * sigma else 60)
        for a, b in zip(edges[:-1], edges[1:], strict=True)
    ]
    r = np.concatenate([p[0] for p in parts])
    wr = np.concatenate([p[1] for p in parts])
    mu, wm = gauss_legendre(-1.0, 1.0, 200)
    fr = mayer_fn(r)
    outer = wr * r * r * fr
    total = 0.0
    for i in range(r.size):
        d = np.sqrt(np.maximum(r[i] ** 2 + r[:, None] ** 2 - 2.0 * r[i] * r[:, None] * mu, 0.0))
        total += outer[i] * np.sum(outer * (mayer_fn(d) @ wm))
    return float(-(8.0 * np.pi**2 / 3.0) * total)


def virial_pressure_series(temperature: float, density, b2: float, b3: float):
    r"""Pressure from the truncated virial series and an estimate of its truncation error.

    :math:`P = \rho T(1 + B_2\rho + B_3\rho^2)`; the omitted :math:`B_4\rho^3` term is
    estimated by the ratio test :math:`|B_3\rho^2|\cdot|B_3\rho/B_2|` (times
    :math:`\rho T`) and returned as the standard error.

    Returns:
        ``(pressure, error)`` with the shape of ``density``.
    """
    rho = np.asarray(density, np.float64)
    p = rho * temperature * (1.0 + b2 * rho + b3 * rho**2)
    err = rho * temperature * np.abs(b3 * rho**2) * np.abs(b3 * rho / b2)
    return p, err


def gauss_lobatto_densities(density: float, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Gauss–Lobatto nodes and weights on :math:`[0, \rho]`, both ends included.

    On :math:`[-1, 1]` the nodes are :math:`\pm 1` and the roots of
    :math:`P'_{n-1}`, with weights :math:`2/(n(n-1)P_{n-1}(x_i)^2)` (Abramowitz & Stegun
    25.4.32); exact for polynomials of degree :math:`2n-3`.

    Returns:
        ``(nodes, weights)`` of shape ``(n_nodes,)``, ``nodes[0] = 0``, ``nodes[-1] = density``.
    """
    check_positive(density, "density")
    n_nodes = check_count(n_nodes, "n_nodes", minimum=3)
    leg = np.polynomial.legendre.Legendre.basis(n_nodes - 1)
    x = np.concatenate([[-1.0], np.sort(leg.deriv().roots().real), [1.0]])
    w = 2.0 / (n_nodes * (n_nodes - 1) * leg(x) ** 2)
    return 0.5 * density * (x + 1.0), 0.5 * density * w


def widom_excess_free_energy(
    temperature: float,
    density: float,
    beta_mu_ex: float,
    beta_mu_std_err: float,
    pressure: float,
    pressure_std_err: float,
) -> tuple[float, float]:
    r"""Excess free energy from one state point: :math:`A_{\rm ex}/N = \mu_{\rm ex} - (Z-1)T`.

    Args:
        temperature, density: :math:`T^*, \rho^*`.
        beta_mu_ex, beta_mu_std_err: Widom :math:`\beta\mu_{\rm ex}` (tail-corrected).
        pressure, pressure_std_err: tail-corrected :math:`P^*`.

    Returns:
        ``(A_ex/(N eps), std_err)``; the two errors are added in quadrature (they come
        from different estimators on the same run; their covariance is neglected).
    """
    z = pressure / (density * temperature)
    a = temperature * (beta_mu_ex - (z - 1.0))
    se = temperature * float(np.hypot(beta_mu_std_err, pressure_std_err / (density * temperature)))
    return float(a), se


def gauss_legendre_densities(density: float, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Gauss–Legendre nodes and weights on :math:`[0, \rho]`, shapes ``(n_nodes,)``."""
    check_positive(density, "density")
    n_nodes = check_count(n_nodes, "n_nodes")
    return gauss_legendre(0.0, density, n_nodes)


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
    *,
    second_virial: float | None = None,
) -> DensityIntegration:
    r"""Excess free energy from pressures on a quadrature in density (module docstring).

    Args:
        temperature: :math:`T^*`.
        densities, weights: quadrature on :math:`[0,\rho]` (e.g.
            :func:`gauss_legendre_densities`), shape ``(k,)``, densities > 0.
        pressures: tail-corrected :math:`P^*` at the nodes, ``(k,)``.
        pressure_std_errs: their independent standard errors, ``(k,)``.
        second_virial: :math:`B_2(T)` (:func:`second_virial_coefficient`), the exact
            integrand at nodes with density 0 (their pressures are ignored); required
            when a node is at 0.

    Returns:
        :class:`DensityIntegration`.
    """
    rho = np.asarray(densities, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    p = np.asarray(pressures, dtype=np.float64)
    sp = np.asarray(pressure_std_errs, dtype=np.float64)
    if not (rho.shape == w.shape == p.shape == sp.shape) or rho.ndim != 1 or rho.size == 0:
        raise ValueError("densities, weights, pressures and std errs must be equal-length 1-D")
    if np.any(rho < 0) or not np.all(np.isfinite(np.concatenate([rho, w, p, sp]))):
        raise ValueError("densities must be non-negative and all inputs finite")
    zero = rho == 0
    if np.any(zero) and second_virial is None:
        raise ValueError("a node at density 0 needs second_virial (its exact integrand B2)")
    beta = 1.0 / temperature
    safe = np.where(zero, 1.0, rho)
    f = np.where(
        zero, second_virial if second_virial is not None else 0.0, (beta * p - rho) / safe**2
    )
    beta_a = float(np.sum(w * f))
    se = float(np.sqrt(np.sum(np.where(zero, 0.0, w * beta * sp / safe**2) ** 2)))
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
    check_positive(temperature, "temperature")
    n_insertions = check_count(n_insertions, "n_insertions")
    check_positive(r_cut, "r_cut")
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
            # the per-configuration log-mean-exp of the shared estimator (traced: no checks)
            return _log_mean_exp_with_error(-beta * u).value

        return jax.lax.map(lambda a: one(*a), (keys, conf))

    log_w = log_mean_w(jr.split(key, m), conf)
    est = estimate_log_z(log_w)
    rho = n / float(np.linalg.det(t))
    mu_tail = 2.0 * tail_energy_per_particle(rho, sigma, epsilon, r_cut) if tail else 0.0
    return est._replace(value=-est.value + beta * mu_tail)
