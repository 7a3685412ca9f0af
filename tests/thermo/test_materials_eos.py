"""JZG 1993 LJ equation of state: published values and thermodynamic consistency."""

import jax
import numpy as np
import pytest

from thermo.materials import jzg_excess_energy, jzg_excess_free_energy, jzg_pressure


@pytest.mark.parametrize(
    ("t", "rho", "expected"),
    [(2.0, 0.5, -0.686026), (1.5, 0.8, -1.167480)],
)
def test_jzg_excess_free_energy_published(t, rho, expected):
    assert abs(float(jzg_excess_free_energy(t, rho)) - expected) < 5e-7


def test_jzg_beta_excess_free_energy_published():
    assert abs(float(jzg_excess_free_energy(1.35, 0.6)) / 1.35 - (-1.237403)) < 5e-7


def test_jzg_pressure_and_energy_are_consistent_with_free_energy():
    # P = rho T + rho^2 d(A/N)/d rho ;  U/N = d(beta A/N)/d beta.
    t, rho = 1.2, 0.7
    da_drho = jax.grad(lambda r: jzg_excess_free_energy(t, r))(rho)
    np.testing.assert_allclose(
        float(jzg_pressure(t, rho)), rho * t + rho**2 * float(da_drho), rtol=1e-12
    )
    d_beta_a = jax.grad(lambda b: b * jzg_excess_free_energy(1.0 / b, rho))(1.0 / t)
    np.testing.assert_allclose(float(jzg_excess_energy(t, rho)), float(d_beta_a), rtol=1e-10)


def test_jzg_zero_density_limit():
    assert float(jzg_excess_free_energy(2.0, 0.0)) == 0.0
