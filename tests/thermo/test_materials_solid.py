"""Frenkel–Ladd pieces for the LJ FCC solid: exact lattice sums, the fixed-COM Einstein
crystal, the sampler's λ = 0 and low-temperature (harmonic) limits, the assembly."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from scipy import integrate

from thermo.kernel import run
from thermo.materials import (
    einstein_energy,
    einstein_log_partition_com,
    extrapolate_finite_size,
    fcc_lattice,
    fcc_lattice_energy,
    frenkel_ladd_free_energy,
    frenkel_ladd_mc,
    lj_energy_fn,
    periodic_space,
    tail_energy_per_particle,
    to_arrays,
)


def _fcc_points(density, radius):
    """All FCC lattice vectors within ``radius`` (numpy, exact)."""
    a_c = (4.0 / density) ** (1 / 3)
    m = int(np.ceil(radius / a_c)) + 1
    g = np.arange(-m, m + 1)
    cells = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    pts = (cells[:, None, :] + basis[None]).reshape(-1, 3) * a_c
    r = np.linalg.norm(pts, axis=1)
    return r[(r > 1e-9) & (r < radius)]


def test_fcc_lattice_energy_matches_direct_lattice_sum():
    # Direct sum to R = 25 sigma plus the (smooth, g = 1) tail beyond it, which is 1e-5.
    rho, big_r = 1.28, 25.0
    r = _fcc_points(rho, big_r)
    direct = 0.5 * np.sum(4 * (r**-12 - r**-6)) + float(tail_energy_per_particle(rho, r_cut=big_r))
    np.testing.assert_allclose(float(fcc_lattice_energy(rho)), direct, atol=2e-5)


def test_periodic_lattice_energy_with_cutoff_matches_direct_sum():
    # The hard-cut sum on the periodic N = 256 cell equals the infinite-lattice sum over
    # the same shells (minimum image is exact for r_c < L/2).
    rho, rc = 1.28, 2.1
    pos, box, _ = to_arrays(fcc_lattice(4, rho))
    disp, _ = periodic_space(box)
    u = float(lj_energy_fn(disp, r_cut=rc)(jnp.asarray(pos))) / pos.shape[0]
    r = _fcc_points(rho, rc)
    np.testing.assert_allclose(u, 0.5 * np.sum(4 * (r**-12 - r**-6)), rtol=1e-10)


@pytest.mark.parametrize("n", [2, 3])
def test_einstein_partition_function_with_fixed_com_is_exact(n):
    # Q factorises over Cartesian components: q = int d^n x delta(mean x) e^{-b sum x^2}
    # = n * int d^{n-1} x e^{-b (sum_{i<n} x_i^2 + (sum_{i<n} x_i)^2)}; Q = q^3.
    t, spring = 0.7, 3.0
    b = spring / t
    if n == 2:
        q = 2 * integrate.quad(lambda x: np.exp(-b * 2 * x * x), -np.inf, np.inf)[0]
    else:
        q = (
            3
            * integrate.dblquad(
                lambda y, x: np.exp(-b * (x * x + y * y + (x + y) ** 2)),
                -10,
                10,
                -10,
                10,
                epsabs=1e-13,
            )[0]
        )
    np.testing.assert_allclose(einstein_log_partition_com(n, t, spring), 3 * np.log(q), rtol=1e-9)


N_CELLS, RHO = 2, 1.28  # N = 32 FCC
_POS, _BOX, _ = to_arrays(fcc_lattice(N_CELLS, RHO))
_DISP, _ = periodic_space(_BOX)
_N = _POS.shape[0]


def _sample(temperature, spring, lam, step, n_chains, n_sweeps, key):
    sites = jnp.asarray(_POS)
    kernel = frenkel_ladd_mc(
        _DISP, sites, temperature=temperature, spring=spring, lam=lam, step_size=step, r_cut=1.45
    )
    u_lat = float(lj_energy_fn(_DISP, r_cut=1.45)(sites))

    def obs(s, i):
        acc = i.acceptance_rate.astype(s.u_pair.dtype)  # the sweep's rate is float32
        return jnp.stack([einstein_energy(s, spring), s.u_pair - u_lat, acc])

    @jax.jit
    def go(keys):
        s0 = kernel.init(sites)
        return jax.vmap(lambda k: run(k, kernel, s0, n_sweeps, observable_fn=obs)[1])(keys)

    return np.asarray(go(jr.split(key, n_chains)))  # (chains, sweeps, 3)


def test_lambda_zero_samples_the_com_free_einstein_crystal():
    # At lambda = 0 only the springs act, with the centre of mass removed: 3(N-1)
    # quadratic degrees of freedom, so <U_E> = 3(N-1) T / 2 exactly (equipartition).
    t, spring = 2.0, 1000.0
    tr = _sample(t, spring, 0.0, 0.06, 64, 60, jr.key(3))
    chain_means = tr[:, 10:, 0].mean(axis=1)
    se = chain_means.std(ddof=1) / np.sqrt(chain_means.size)
    assert 0.2 < tr[:, :, 2].mean() < 0.8
    assert abs(chain_means.mean() - 1.5 * (_N - 1) * t) < 4 * se


def test_lambda_one_is_harmonic_at_low_temperature():
    # At lambda = 1 and low T the LJ crystal is harmonic around its sites: with the
    # centre of mass free, <U_LJ - U_lat> = 3(N-1) T / 2 (1 + O(T)); at T = 1e-3 the
    # anharmonic term is ~1e-3 relative, below the 4-sigma band (~1e-2).
    t = 1e-3
    tr = _sample(t, 1000.0, 1.0, 0.002, 32, 100, jr.key(4))
    chain_means = tr[:, 30:, 1].mean(axis=1)  # equilibrated after ~25 sweeps
    se = chain_means.std(ddof=1) / np.sqrt(chain_means.size)
    assert abs(chain_means.mean() - 1.5 * (_N - 1) * t) < 4 * se


def test_assembly_and_extrapolation_are_consistent():
    # A pure Einstein "solid" (integrand 0) gives the closed-form fixed-COM Einstein
    # excess free energy; the extrapolation recovers a known a + b ln N/N + c/N exactly.
    n, rho, t, k = 256, 1.28, 2.0, 1000.0
    fl = frenkel_ladd_free_energy(n, rho, t, k, [1.0], [0.0], [0.0], lattice_energy_full=-3.0)
    from scipy.special import gammaln

    expected = (
        ((n - 1) * np.log(n / rho) - gammaln(n + 1)) / n
        - (1.5 * (n - 1) * np.log(np.pi * t / k) + 1.5 * np.log(n)) / n
        - 3.0 / t
    )
    np.testing.assert_allclose(fl.beta_free_energy, expected, rtol=1e-12)
    # thermal tail: (1/2) rho int_rc^inf 4 pi r^2 (MSD/3) lap(-4 r^-6) dr, by quadrature
    msd, rc = 0.01, 2.1
    tail = integrate.quad(
        lambda r: 0.5 * rho * 4 * np.pi * r**2 * msd / 3 * (-120 * r**-8), rc, np.inf
    )
    fl2 = frenkel_ladd_free_energy(
        n, rho, t, k, [1.0], [0.0], [0.0], lattice_energy_full=-3.0, msd=msd, r_cut=rc
    )
    np.testing.assert_allclose(fl2.terms["thermal_tail"], tail[0] / t, rtol=1e-8)
    ns = np.array([108.0, 256.0, 500.0, 864.0])
    y = 3.3 - 2.0 * np.log(ns) / ns + 5.0 / ns
    a, _, coef = extrapolate_finite_size(ns, y, np.full(4, 1e-3))
    np.testing.assert_allclose([a, *coef[1:]], [3.3, -2.0, 5.0], rtol=1e-8)
    a2, _, _ = extrapolate_finite_size(ns, y, np.full(4, 1e-3), log_coefficient=-2.0)
    np.testing.assert_allclose(a2, 3.3, rtol=1e-10)


def test_harmonic_free_energy_on_the_k_grid_equals_the_exact_hessian():
    # The periodic N = 32 cell allows N wave vectors; with pairs up to 1.45 sigma (the 12
    # nearest neighbours, r_c < L/2) the dynamical-matrix eigenvalues over that grid are
    # exactly the non-zero eigenvalues of the 96 x 96 Hessian.
    from scipy.special import gammaln

    from thermo.materials import fcc_harmonic_free_energy

    t, rc = 2.0, 1.45
    energy = lj_energy_fn(_DISP, r_cut=rc)
    hess = jax.hessian(lambda x: energy(x.reshape(-1, 3)))(jnp.asarray(_POS).reshape(-1))
    kappa = np.linalg.eigvalsh(np.asarray(hess))[3:]  # drop the 3 translations
    n = _N
    direct = (
        ((n - 1) * np.log(n / RHO) - gammaln(n + 1)) / n
        + float(fcc_lattice_energy(RHO)) / t
        + (-1.5 * np.log(n) - 0.5 * np.sum(np.log(2 * np.pi * t / kappa))) / n
    )
    grid = fcc_harmonic_free_energy(RHO, t, N_CELLS, r_max=rc)
    np.testing.assert_allclose(grid, direct, rtol=1e-12)
    # and the N -> infinity zone average is converged on the default shifted grid
    a12 = fcc_harmonic_free_energy(RHO, t, None, r_max=rc, n_zone=12)
    a16 = fcc_harmonic_free_energy(RHO, t, None, r_max=rc, n_zone=16)
    assert abs(a12 - a16) < 1e-4
