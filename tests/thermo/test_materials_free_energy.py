"""LJ fluid free energies: density-integration quadrature and Widom insertion, exact checks."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from scipy import integrate

from thermo.materials import (
    density_integration,
    gauss_legendre_densities,
    gauss_lobatto_densities,
    jzg_excess_free_energy,
    jzg_pressure,
    second_virial_coefficient,
    third_virial_coefficient,
    virial_pressure_series,
    widom_chemical_potential,
)
from thermo.materials.lj import lj_pair


@pytest.mark.parametrize(("t", "rho"), [(2.0, 0.5), (1.5, 0.8)])
def test_density_integration_of_jzg_pressure_recovers_jzg_free_energy(t, rho):
    # With the EOS's own pressure the integral must give the EOS free energy
    # (the two are independent formulas of JZG 1993).
    nodes, weights = gauss_legendre_densities(rho, 8)
    p = np.asarray(jzg_pressure(t, nodes))
    res = density_integration(t, nodes, weights, p, np.full(8, 0.01))
    np.testing.assert_allclose(res.free_energy, float(jzg_excess_free_energy(t, rho)), atol=1e-7)
    expected_se = t * np.sqrt(np.sum((weights * 0.01 / t / nodes**2) ** 2))
    np.testing.assert_allclose(res.std_err, expected_se, rtol=1e-12)


def test_density_integration_rejects_bad_input():
    with pytest.raises(ValueError):
        density_integration(1.0, [0.0, 0.1], [0.1, 0.1], [0.0, 0.1], [0.0, 0.0])
    with pytest.raises(ValueError):
        density_integration(1.0, [0.1], [0.1, 0.1], [0.1], [0.0])


def test_widom_in_uncorrelated_configurations_is_exact():
    # For configurations of n independent uniform particles (no interactions among
    # them), <exp(-beta dU)> = [1 + (1/V) int (e^{-beta u} - 1) d^3 r]^n exactly.
    side, n, t, rc = 5.0, 5, 2.0, 2.4

    def mayer(r):
        return 4 * np.pi * r**2 * (np.exp(-float(lj_pair(r, r_cut=rc)) / t) - 1.0)

    b = integrate.quad(mayer, 1e-6, rc, limit=200, points=[1.0])[0]
    exact = -n * np.log1p(b / side**3)
    conf = jr.uniform(jr.key(31), (400, n, 3), minval=0.0, maxval=side)
    est = widom_chemical_potential(
        jr.key(32), conf, side, temperature=t, n_insertions=64, r_cut=rc, tail=False
    )
    assert abs(float(est.value) - exact) < 4 * float(est.std_err)


def test_gauss_lobatto_rule_is_exact_to_degree_2n_minus_3():
    x, w = gauss_lobatto_densities(0.7, 6)
    assert x[0] == 0.0 and np.isclose(x[-1], 0.7)
    for k in range(2 * 6 - 2):  # degrees 0 .. 9 = 2n - 3
        np.testing.assert_allclose(np.sum(w * x**k), 0.7 ** (k + 1) / (k + 1), rtol=1e-12)


def test_second_virial_coefficient_matches_the_closed_form_series():
    # Hirschfelder, Curtiss & Bird 1954, eq. 3.6-9: in units of b0 = 2 pi sigma^3 / 3,
    # B2*(T) = -sum_j 2^(j + 1/2) / (4 j!) Gamma((2j - 1)/4) T^(-(2j + 1)/4).
    from scipy.special import gamma, gammaln

    for t in (1.5, 2.0, 3.4):
        j = np.arange(80)
        terms = (
            -(2.0 ** (j + 0.5))
            / 4.0
            * gamma((2 * j - 1) / 4.0)
            * np.exp(-gammaln(j + 1.0))
            * t ** (-(2 * j + 1) / 4.0)
        )
        b0 = 2 * np.pi / 3
        np.testing.assert_allclose(second_virial_coefficient(t), b0 * terms.sum(), rtol=1e-9)


def test_third_virial_coefficient_of_hard_spheres_is_exact():
    # Hard spheres: B3 = (5/8) b0^2 exactly (Boltzmann); the step of f limits the
    # mu-quadrature to ~1e-4 relative.
    b0 = 2 * np.pi / 3
    b3 = third_virial_coefficient(1.0, mayer_fn=lambda r: np.where(r < 1.0, -1.0, 0.0), r_max=1.0)
    np.testing.assert_allclose(b3, 5 / 8 * b0**2, rtol=2e-4)


def test_lobatto_with_zero_density_node_recovers_jzg():
    # JZG's own low-density limit a1/T = lim (Z-1)/rho at the node rho = 0; the other nodes
    # take JZG pressures. An 8-node Lobatto rule is then exact to quadrature error (<1e-4).
    from thermo.materials.eos import _ab

    for t, rho in [(2.0, 0.5), (1.5, 0.8)]:  # float64 (tests/conftest.py)
        x, w = gauss_lobatto_densities(rho, 8)
        p = np.asarray(jzg_pressure(t, np.where(x == 0, 1.0, x)))
        b2_jzg = float(_ab(jnp.asarray(t))[0][0]) / t
        res = density_integration(t, x, w, p, np.full(8, 0.01), second_virial=b2_jzg)
        np.testing.assert_allclose(
            res.free_energy, float(jzg_excess_free_energy(t, rho)), atol=1e-4
        )
    with pytest.raises(ValueError, match="second_virial"):
        density_integration(t, x, w, p, np.full(8, 0.01))


def test_virial_series_pressure():
    p, err = virial_pressure_series(2.0, 0.1, -1.3, 1.9)
    np.testing.assert_allclose(p, 0.2 * (1 - 0.13 + 0.019))
    np.testing.assert_allclose(err, 0.2 * 0.019 * (0.19 / 1.3))
