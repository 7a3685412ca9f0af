r"""Two-phase coexistence from the phases' free energies.

Each phase is described by a smooth fit of its excess Helmholtz free energy per
particle, :math:`\beta a_{\rm ex}(\rho) = \beta A_{\rm ex}/N` (in excess of the ideal gas
at the same density and temperature), over a density window. From it

.. math::

    \beta a = \ln\rho - 1 + \beta a_{\rm ex},\qquad
    \beta P = \rho + \rho^2\,\beta a_{\rm ex}'(\rho),\qquad
    \beta\mu = \beta a + \beta P/\rho

(the thermal wavelength cancels between phases at the same temperature). Two phases
coexist where :math:`P_1 = P_2` and :math:`\mu_1 = \mu_2`: :func:`coexistence` inverts
each phase's :math:`P(\rho)` in its window and finds the pressure at which the chemical
potentials cross. Its error bars come from the fits' coefficient covariances
(parametric draws of the coefficients, each solved again), so the data's standard errors
carry through to :math:`P`, :math:`\rho_1` and :math:`\rho_2`.

Two fits make a curve:

* :func:`fit_excess_free_energy` fits values of :math:`\beta a_{\rm ex}` at a few
  densities (e.g. a solid's free energies from path weights or Frenkel–Ladd);
* :func:`fit_compressibility` is density integration: it fits
  :math:`(Z - 1)/\rho` from simulated pressures (with the exact second virial coefficient
  as its value at :math:`\rho = 0` when given) and integrates the polynomial exactly,
  :math:`\beta a_{\rm ex}(\rho) = \int_0^\rho (Z - 1)/\rho'\,d\rho'`.

Units are reduced (:math:`\epsilon`, :math:`\sigma`): pressures are returned as
:math:`P^* = T^*\,\beta P`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.optimize import brentq

__all__ = [
    "Coexistence",
    "FreeEnergyCurve",
    "coexistence",
    "fit_compressibility",
    "fit_excess_free_energy",
]


def _polyval(x, c):
    """``numpy.polynomial.polynomial.polyval`` (same Horner order, so the same floats), with
    a plain-Python path for a scalar ``x``: the root finders call it a million times."""
    if np.ndim(x) == 0:
        x, y = float(x), 0.0
        for ck in np.asarray(c, np.float64).tolist()[::-1]:
            y = y * x + ck
        return y
    return np.polynomial.polynomial.polyval(x, c)


class FreeEnergyCurve(NamedTuple):
    r"""A phase's :math:`\beta a_{\rm ex}(\rho) = \sum_k c_k \rho^k` on a density window.

    Attributes:
        coefficients: ``(d + 1,)`` polynomial coefficients, ascending powers of :math:`\rho`.
        covariance: ``(d + 1, d + 1)`` their covariance (zero rows for fixed ones).
        density_range: ``(low, high)``, the window the data cover; :func:`coexistence`
            never looks outside it.
        chi2_dof: reduced :math:`\chi^2` of the fit (``nan`` when it has no degrees of
            freedom left); well above 1 means the polynomial is too stiff for the data.
    """

    coefficients: np.ndarray
    covariance: np.ndarray
    density_range: tuple[float, float]
    chi2_dof: float

    def excess_free_energy(self, density, coefficients=None):
        r""":math:`\beta a_{\rm ex}(\rho)`."""
        c = self.coefficients if coefficients is None else coefficients
        return _polyval(density, c)

    def beta_pressure(self, density, coefficients=None):
        r""":math:`\beta P = \rho + \rho^2 \beta a_{\rm ex}'(\rho)`."""
        c = np.asarray(self.coefficients if coefficients is None else coefficients, np.float64)
        rho = density if np.ndim(density) == 0 else np.asarray(density, np.float64)
        return rho + rho**2 * _polyval(rho, c[1:] * np.arange(1.0, c.size))

    def beta_chemical_potential(self, density, coefficients=None):
        r""":math:`\beta\mu = \ln\rho - 1 + \beta a_{\rm ex} + \beta P/\rho`."""
        rho = density if np.ndim(density) == 0 else np.asarray(density, np.float64)
        return (
            np.log(rho)
            - 1.0
            + self.excess_free_energy(rho, coefficients)
            + self.beta_pressure(rho, coefficients) / rho
        )


class Coexistence(NamedTuple):
    """Coexistence point of two phases at one temperature (reduced units).

    Attributes:
        temperature: :math:`T^*`.
        pressure, pressure_std_err: :math:`P^*` and its standard error.
        densities, densities_std_err: ``(rho_1, rho_2)`` of the two phases, in the order
            the curves were given, and their standard errors.
        beta_mu: :math:`\\beta\\mu` at coexistence (thermal wavelength omitted).
        n_draws_failed: parametric draws whose curves did not cross in the windows (left
            out of the error bars; a large count means the windows are too narrow).
    """

    temperature: float
    pressure: float
    pressure_std_err: float
    densities: tuple[float, float]
    densities_std_err: tuple[float, float]
    beta_mu: float
    n_draws_failed: int


def _check_data(densities, values, std_errs, name):
    rho = np.asarray(densities, np.float64)
    y = np.asarray(values, np.float64)
    s = np.asarray(std_errs, np.float64)
    if rho.ndim != 1 or not (rho.shape == y.shape == s.shape):
        raise ValueError(
            f"{name}: densities, values and std_errs must be equal-length 1-D arrays, got "
            f"shapes {rho.shape}, {y.shape}, {s.shape}"
        )
    if not np.all(np.isfinite(np.concatenate([rho, y, s]))):
        raise ValueError(f"{name}: non-finite input")
    if np.any(rho <= 0):
        raise ValueError(f"{name}: densities must be positive, got {rho}")
    if np.any(s <= 0):
        raise ValueError(f"{name}: std_errs must be positive, got {s}")
    if np.unique(rho).size != rho.size:
        raise ValueError(f"{name}: densities must be distinct, got {rho}")
    return rho, y, s


def _weighted_lstsq(x, y, s):
    wx = x / s[:, None]
    cov = np.linalg.inv(wx.T @ wx)
    coef = cov @ (wx.T @ (y / s))
    dof = y.size - x.shape[1]
    chi2 = float(np.sum(((x @ coef - y) / s) ** 2))
    return coef, cov, (chi2 / dof if dof > 0 else float("nan"))


def fit_excess_free_energy(densities, values, std_errs, *, degree: int = 2) -> FreeEnergyCurve:
    r"""Weighted least-squares polynomial :math:`\beta a_{\rm ex}(\rho)` through measured values.

    Args:
        densities: ``(m,)`` distinct densities.
        values: ``(m,)`` :math:`\beta A_{\rm ex}/N` at them.
        std_errs: ``(m,)`` their independent standard errors.
        degree: polynomial degree (needs ``m > degree``).
    """
    rho, y, s = _check_data(densities, values, std_errs, "fit_excess_free_energy")
    degree = int(degree)
    if degree < 1 or rho.size <= degree:
        raise ValueError(f"degree {degree} needs more than {degree} densities, got {rho.size}")
    x = rho[:, None] ** np.arange(degree + 1)
    coef, cov, chi2 = _weighted_lstsq(x, y, s)
    return FreeEnergyCurve(coef, cov, (float(rho.min()), float(rho.max())), chi2)


def fit_compressibility(
    densities,
    compressibility,
    std_errs,
    *,
    degree: int = 5,
    second_virial: float | None = None,
    anchor: tuple[float, float, float] | None = None,
) -> FreeEnergyCurve:
    r"""Density integration: fit :math:`(Z-1)/\rho = \sum_k q_k \rho^k`, integrate exactly.

    Args:
        densities: ``(m,)`` distinct densities of the simulated nodes.
        compressibility: ``(m,)`` :math:`Z = \beta P/\rho` at them.
        std_errs: ``(m,)`` standard errors of :math:`Z`.
        degree: degree of the polynomial :math:`(Z - 1)/\rho`.
        second_virial: the exact :math:`B_2`, fixing :math:`q_0` (the low-density limit;
            only without ``anchor``).
        anchor: ``(rho_0, value, std_err)``, a known :math:`\beta a_{\rm ex}(\rho_0)`
            (e.g. from a temperature integration) to integrate from instead of the ideal
            gas, for an isotherm below the critical temperature whose path from
            :math:`\rho = 0` would cross the vapour–liquid region.

    Returns:
        the curve :math:`\beta a_{\rm ex}(\rho) = \sum_k q_k\rho^{k+1}/(k+1)` on
        :math:`[0, \max\rho]` (plus the anchor's constant, on the nodes' window, with
        ``anchor``).
    """
    rho, z, s = _check_data(densities, compressibility, std_errs, "fit_compressibility")
    if anchor is not None and second_virial is not None:
        raise ValueError("give second_virial (integrate from rho = 0) or anchor, not both")
    degree = int(degree)
    powers = np.arange(degree + 1)
    y = z - 1.0
    x = rho[:, None] ** (powers + 1)  # Z - 1 = sum_k q_k rho^(k+1)
    if second_virial is not None:
        y = y - float(second_virial) * rho
        x = x[:, 1:]
    if degree < 0 or rho.size <= x.shape[1] - 1:
        raise ValueError(f"degree {degree} needs more than {x.shape[1] - 1} nodes, got {rho.size}")
    q, cov_q, chi2 = _weighted_lstsq(x, y, s)
    if second_virial is not None:
        q = np.concatenate([[float(second_virial)], q])
        cov_q = np.pad(cov_q, ((1, 0), (1, 0)))
    scale = 1.0 / (powers + 1.0)
    if anchor is None:
        coef = np.concatenate([[0.0], q * scale])
        cov = np.pad(cov_q * np.outer(scale, scale), ((1, 0), (1, 0)))
        return FreeEnergyCurve(coef, cov, (0.0, float(rho.max())), chi2)
    rho0, value, value_se = (float(v) for v in anchor)
    if not (rho0 > 0 and np.isfinite(value) and value_se >= 0):
        raise ValueError(f"anchor must be (rho_0 > 0, finite value, std_err >= 0), got {anchor}")
    # c = J @ (value, q): c_0 = value - sum_k q_k rho0^(k+1)/(k+1), c_(k+1) = q_k/(k+1)
    jac = np.zeros((degree + 2, degree + 2))
    jac[0, 0] = 1.0
    jac[0, 1:] = -scale * rho0 ** (powers + 1)
    jac[1:, 1:] = np.diag(scale)
    theta_cov = np.zeros((degree + 2, degree + 2))
    theta_cov[0, 0] = value_se**2
    theta_cov[1:, 1:] = cov_q
    coef = jac @ np.concatenate([[value], q])
    window = (float(min(rho.min(), rho0)), float(max(rho.max(), rho0)))
    return FreeEnergyCurve(coef, jac @ theta_cov @ jac.T, window, chi2)


def _invert_pressure(curve, coef, beta_p, lo, hi):
    f = lambda r: curve.beta_pressure(r, coef) - beta_p  # noqa: E731
    return brentq(f, lo, hi, xtol=1e-13)


def _solve(curve_1, curve_2, c1, c2, windows):
    (lo1, hi1), (lo2, hi2) = windows
    p1 = curve_1.beta_pressure(np.array([lo1, hi1]), c1)
    p2 = curve_2.beta_pressure(np.array([lo2, hi2]), c2)
    p_lo, p_hi = max(p1[0], p2[0]), min(p1[1], p2[1])
    if not p_lo < p_hi:
        return None

    def dmu(bp):
        r1 = _invert_pressure(curve_1, c1, bp, lo1, hi1)
        r2 = _invert_pressure(curve_2, c2, bp, lo2, hi2)
        return curve_1.beta_chemical_potential(r1, c1) - curve_2.beta_chemical_potential(r2, c2)

    a, b = dmu(p_lo), dmu(p_hi)
    if not np.sign(a) != np.sign(b):
        return None
    bp = brentq(dmu, p_lo, p_hi, xtol=1e-12)
    r1 = _invert_pressure(curve_1, c1, bp, lo1, hi1)
    r2 = _invert_pressure(curve_2, c2, bp, lo2, hi2)
    return bp, r1, r2, float(curve_1.beta_chemical_potential(r1, c1))


def _window(curve, window, name):
    lo, hi = curve.density_range if window is None else window
    lo = max(float(lo), 1e-12)
    grid = np.linspace(lo, float(hi), 257)
    if np.any(np.diff(curve.beta_pressure(grid)) <= 0):
        raise ValueError(
            f"{name}: the fitted pressure is not increasing on [{lo:.4g}, {hi:.4g}] (a "
            "mechanically unstable fit); narrow the window or lower the degree"
        )
    return lo, float(hi)


def coexistence(
    temperature: float,
    curve_1: FreeEnergyCurve,
    curve_2: FreeEnergyCurve,
    *,
    windows=(None, None),
    n_draws: int = 400,
    seed: int = 0,
) -> Coexistence:
    r"""Coexistence of two phases from their free-energy curves at one temperature.

    Args:
        temperature: :math:`T^*`.
        curve_1, curve_2: the phases (e.g. solid, liquid), each a :class:`FreeEnergyCurve`.
        windows: per phase the density window to search, ``(low, high)`` or ``None`` for
            the curve's own ``density_range``; the fitted pressure must increase there.
        n_draws: parametric draws of the coefficients for the error bars (0: none).
        seed: seed of those draws.

    Raises:
        ValueError: when the pressures of the two windows do not overlap or the chemical
            potentials do not cross inside them (the message gives the ranges).
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    w = (_window(curve_1, windows[0], "phase 1"), _window(curve_2, windows[1], "phase 2"))
    sol = _solve(curve_1, curve_2, curve_1.coefficients, curve_2.coefficients, w)
    if sol is None:
        p1 = temperature * curve_1.beta_pressure(np.array(w[0]))
        p2 = temperature * curve_2.beta_pressure(np.array(w[1]))
        raise ValueError(
            f"no coexistence in the windows: phase 1 spans P* {p1[0]:.4g}..{p1[1]:.4g} on "
            f"rho {w[0]}, phase 2 spans P* {p2[0]:.4g}..{p2[1]:.4g} on rho {w[1]}, and the "
            "chemical potentials do not cross where they overlap"
        )
    bp, r1, r2, mu = sol
    rng = np.random.default_rng(seed)
    draws = []
    failed = 0
    for _ in range(int(n_draws)):
        c1 = rng.multivariate_normal(curve_1.coefficients, curve_1.covariance)
        c2 = rng.multivariate_normal(curve_2.coefficients, curve_2.covariance)
        try:
            d = _solve(curve_1, curve_2, c1, c2, w)
        except ValueError:  # a draw whose pressure is not monotone in a window
            d = None
        if d is None:
            failed += 1
        else:
            draws.append(d[:3])
    if draws:
        sd = np.std(np.asarray(draws), axis=0, ddof=1) if len(draws) > 1 else np.zeros(3)
    else:
        sd = np.full(3, np.nan)
    return Coexistence(
        float(temperature),
        float(temperature * bp),
        float(temperature * sd[0]),
        (float(r1), float(r2)),
        (float(sd[1]), float(sd[2])),
        mu,
        failed,
    )
