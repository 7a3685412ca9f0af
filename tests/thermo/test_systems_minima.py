"""LJ-13 and LJ-55 minima by L-BFGS from Mackay icosahedra, in both LJ conventions.

Reference values: Cambridge Cluster Database (Wales & Doye 1997) for the
standard convention, 4 eps[(sigma/r)^12 - (sigma/r)^6] with eps = sigma = 1; the
DEM/EFM values from ``shared/data/reference/README.md`` (given to 4 decimals).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import thermo.systems as systems

SHELLS = {13: 1, 55: 2}


@functools.cache
def _relaxed(name: str) -> systems.Relaxed:
    system = systems.get(name)
    x0 = systems.mackay_icosahedron(SHELLS[system.n_particles], system.r_m).ravel()
    return jax.jit(lambda x: systems.relax(system.energy, x, gtol=1e-9))(jnp.asarray(x0))


def test_mackay_icosahedra_have_the_magic_numbers_and_shell_radii():
    for shells, n in [(0, 1), (1, 13), (2, 55), (3, 147)]:
        pos = systems.mackay_icosahedron(shells, 1.0)
        assert pos.shape == (n, 3)
        np.testing.assert_allclose(pos.mean(0), 0.0, atol=1e-12)
    pos = systems.mackay_icosahedron(2, 1.0)
    radii = np.sort(np.linalg.norm(pos, axis=1))
    np.testing.assert_allclose(radii[1:13], 1.0, rtol=1e-12)  # first shell vertices
    np.testing.assert_allclose(radii[-12:], 2.0, rtol=1e-12)  # second shell vertices
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    assert d[np.triu_indices(55, 1)].min() == pytest.approx(1.0)  # no overlaps


@pytest.mark.parametrize(
    ("name", "expected", "tol"),
    [
        ("lj13-standard", -44.326801, 1e-5),
        ("lj55-standard", -279.248470, 1e-5),
        # quoted to 4 decimals: half a unit of the last digit
        ("lj13", -83.0896, 5e-5),
        ("lj55", -491.6413, 5e-5),
    ],
)
def test_lbfgs_from_mackay_icosahedron_finds_the_known_minimum(name, expected, tol):
    result = _relaxed(name)
    print(
        f"\n{name}: E_min = {float(result.energy):.6f} (reference {expected}), "
        f"|grad| = {float(result.grad_norm):.1e}, {int(result.n_steps)} L-BFGS steps"
    )
    assert float(result.grad_norm) < 1e-6
    assert abs(float(result.energy) - expected) < tol


@pytest.mark.parametrize("n", [13, 55])
def test_dem_minimum_is_the_compressed_standard_minimum(n):
    """What the DEM minima imply: U_DEM(x) = 2 U_std(s x) + restraint(x), s = 2^(1/6).

    Its minimum lies below 2 U_std* + restraint at the (rescaled) standard minimum,
    and above 2 U_std* (the restraint is non-negative), so the DEM minimum is NOT
    twice the Cambridge value.
    """
    dem, std = systems.get(f"lj{n}"), systems.get(f"lj{n}-standard")
    s = 2.0 ** (1.0 / 6.0)
    x_std, x_dem = _relaxed(f"lj{n}-standard").position, _relaxed(f"lj{n}").position
    u_std, u_dem = float(_relaxed(f"lj{n}-standard").energy), float(_relaxed(f"lj{n}").energy)

    @jax.jit
    def terms(x_std, x_dem):
        return (
            dem.restraint_energy(x_std / s),
            dem.restraint_energy(x_dem),
            dem.energy(x_dem),
            std.energy(s * x_dem),
        )

    restraint_at_std, restraint_at_dem, dem_at_dem, std_at_dem = map(float, terms(x_std, x_dem))
    assert 2 * u_std < u_dem < 2 * u_std + restraint_at_std
    # at the DEM minimum the restraint compresses the cluster: smaller radius of gyration
    assert restraint_at_dem < restraint_at_std
    assert dem_at_dem == pytest.approx(2 * std_at_dem + restraint_at_dem, rel=1e-12)
