"""LJ fluid free energies: density-integration quadrature and Widom insertion, exact checks."""

import jax.random as jr
import numpy as np
import pytest
from scipy import integrate

from thermo.materials import (
    density_integration,
    gauss_legendre_densities,
    jzg_excess_free_energy,
    jzg_pressure,
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
