"""Two-phase coexistence from free-energy curves (thermo.materials.coexistence).

Exact checks: polynomial free energies recovered from their compressibility factors (from
the ideal gas and from an anchor), a coexistence point built to sit at a known density
and pressure, error bars against the spread over repeated noisy fits, and the JZG liquid
integrated from its own pressures. All numpy: no compilation.
"""

import numpy as np
import pytest
from scipy.optimize import brentq

from thermo.materials import (
    coexistence,
    fit_compressibility,
    fit_excess_free_energy,
    jzg_excess_free_energy,
    jzg_pressure,
)
from thermo.materials.coexistence import FreeEnergyCurve

P = np.polynomial.polynomial

# a stiff "solid" around rho = 1.13 and a softer "liquid" (beta a_ex, ascending powers)
LIQUID = np.array([0.0, 1.5, 2.0, 1.2])
RHO_S, T = 1.13, 2.0


def _beta_p(c, rho):
    return rho + rho**2 * P.polyval(rho, P.polyder(c))


def _beta_mu(c, rho):
    return np.log(rho) - 1 + P.polyval(rho, c) + _beta_p(c, rho) / rho


def _z(c, rho):
    return _beta_p(c, rho) / rho


def _solid_at_coexistence():
    """Solid coefficients whose coexistence with LIQUID is exactly at RHO_S."""
    b, c = 9.0, 40.0  # beta a_ex = A + b (rho - RHO_S) + c (rho - RHO_S)^2
    shape = P.polyadd(P.polymul([-RHO_S, 1.0], [b]), c * P.polypow([-RHO_S, 1.0], 2))
    bp = _beta_p(shape, RHO_S)
    rho_l = brentq(lambda r: _beta_p(LIQUID, r) - bp, 0.1, RHO_S)
    a = _beta_mu(LIQUID, rho_l) - _beta_mu(shape, RHO_S)
    return P.polyadd(shape, [a]), bp, rho_l


def test_compressibility_fit_recovers_a_polynomial_exactly():
    rho = np.linspace(0.1, 1.1, 7)
    z = _z(LIQUID, rho)
    free = fit_compressibility(rho, z, np.full(7, 0.01), degree=2)
    assert np.allclose(free.coefficients, LIQUID, atol=1e-10)
    fixed = fit_compressibility(rho, z, np.full(7, 0.01), degree=2, second_virial=LIQUID[1])
    assert np.allclose(fixed.coefficients, LIQUID, atol=1e-10)
    assert np.all(fixed.covariance[:2] == 0)  # c_0 = 0 and c_1 = B_2 are fixed
    # from an anchor instead of the ideal gas: the same curve on the nodes' window
    rho_hi = np.linspace(0.8, 1.1, 4)
    a0 = float(P.polyval(0.9, LIQUID))
    anch = fit_compressibility(
        rho_hi, _z(LIQUID, rho_hi), np.full(4, 0.01), degree=2, anchor=(0.9, a0, 0.003)
    )
    assert np.allclose(anch.coefficients, LIQUID, atol=1e-9)
    assert anch.density_range == (0.8, 1.1)
    # the anchor's own error is the curve's error there
    g = 0.9 ** np.arange(4)
    assert np.sqrt(g @ anch.covariance @ g) == pytest.approx(0.003, rel=1e-9)


def test_coexistence_at_the_constructed_point():
    solid, bp, rho_l = _solid_at_coexistence()
    s = FreeEnergyCurve(solid, np.zeros((3, 3)), (1.05, 1.2), float("nan"))
    liq = FreeEnergyCurve(LIQUID, np.zeros((4, 4)), (0.3, 1.1), float("nan"))
    co = coexistence(T, s, liq, n_draws=0)
    assert co.densities == pytest.approx((RHO_S, rho_l), abs=1e-9)
    assert co.pressure == pytest.approx(T * bp, rel=1e-10)
    assert co.beta_mu == pytest.approx(_beta_mu(LIQUID, rho_l), abs=1e-9)
    # phases given the other way round: the same point
    co2 = coexistence(T, liq, s, n_draws=0)
    assert co2.densities == pytest.approx((rho_l, RHO_S), abs=1e-9)


def test_error_bars_match_the_spread_of_repeated_fits():
    """The parametric error bar of P against the spread over independent noisy data sets."""
    solid, _, _ = _solid_at_coexistence()
    rng = np.random.default_rng(7)
    rho_s = np.array([1.08, 1.13, 1.18])
    rho_l = np.linspace(0.2, 1.25, 8)
    se_a, se_z = 0.002, 0.005
    ps, ses = [], []
    for i in range(100):
        s = fit_excess_free_energy(
            rho_s, P.polyval(rho_s, solid) + se_a * rng.standard_normal(3), np.full(3, se_a)
        )
        liq = fit_compressibility(
            rho_l,
            _z(LIQUID, rho_l) + se_z * rng.standard_normal(8),
            np.full(8, se_z),
            degree=3,
            second_virial=LIQUID[1],
        )
        co = coexistence(T, s, liq, windows=(None, (0.6, 1.15)), n_draws=40, seed=i)
        assert co.n_draws_failed <= 3  # a draw whose crossing leaves the window
        ps.append(co.pressure)
        ses.append(co.pressure_std_err)
    spread = np.std(ps, ddof=1)
    # the sample std of 100 data sets has a relative standard error of about 7 %, and the
    # mean of 100 reported SEs (40 draws each) about 1 %: outside [0.75, 1.33] is 4 sigma
    assert 0.75 < np.mean(ses) / spread < 1.33, (np.mean(ses), spread)


def test_anchored_isotherm_of_the_jzg_liquid():
    """The experiment's liquid window: 4 JZG nodes, (Z - 1)/rho quadratic, JZG anchor.

    A quadratic over a 0.15-wide window leaves about 3e-4 in beta a_ex and 0.1 % in P.
    """
    for t, rho_l in ((2.0, 1.0627), (1.0, 0.9186)):
        rho = rho_l + np.array([-0.1, -0.05, 0.0, 0.05])
        z = np.array([float(jzg_pressure(t, r)) / (r * t) for r in rho])
        a0 = float(jzg_excess_free_energy(t, rho[0])) / t
        curve = fit_compressibility(rho, z, np.full(4, 0.01), degree=2, anchor=(rho[0], a0, 0.0))
        for r in rho:
            assert curve.excess_free_energy(r) == pytest.approx(
                float(jzg_excess_free_energy(t, r)) / t, abs=1e-3
            )
            assert t * curve.beta_pressure(r) == pytest.approx(float(jzg_pressure(t, r)), rel=2e-3)


def test_bad_input_is_named():
    rho = np.linspace(0.1, 1.1, 5)
    with pytest.raises(ValueError, match="equal-length"):
        fit_compressibility(rho, np.ones(4), np.ones(5))
    with pytest.raises(ValueError, match="std_errs must be positive"):
        fit_excess_free_energy(rho, np.ones(5), np.zeros(5))
    with pytest.raises(ValueError, match="not both"):
        fit_compressibility(rho, np.ones(5), np.ones(5), second_virial=1.0, anchor=(1, 0, 0))
    with pytest.raises(ValueError, match="needs more than"):
        fit_excess_free_energy(rho[:2], np.ones(2), np.ones(2), degree=2)
    solid, _, _ = _solid_at_coexistence()
    s = FreeEnergyCurve(solid, np.zeros((3, 3)), (1.05, 1.2), float("nan"))
    liq = FreeEnergyCurve(LIQUID, np.zeros((4, 4)), (0.3, 0.5), float("nan"))
    with pytest.raises(ValueError, match="no coexistence in the windows"):
        coexistence(T, s, liq, n_draws=0)
    unstable = FreeEnergyCurve(np.array([0.0, 0.0, -3.0]), np.zeros((3, 3)), (0.3, 1.0), 1.0)
    with pytest.raises(ValueError, match="not increasing"):
        coexistence(T, s, unstable, n_draws=0)
