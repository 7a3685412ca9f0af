"""Lattice-relative Gaussian model and its AIS free energy: exact checks.

Einstein crystal (fixed centre of mass, closed form), harmonic lattice (Gaussian target,
exact log-determinant), wrapping invariance, lattice-symmetry equivariance, and the
free-energy assembly against the project's Frenkel–Ladd assembly.
"""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from generative.periodic import (
    crystal_excess_free_energy,
    lattice_free_energy,
    lattice_gaussian_from_covariance,
    lattice_gaussian_from_hessian,
    lattice_gaussian_from_samples,
    lattice_symmetries,
)
from thermo.materials import (
    einstein_log_partition_com,
    fcc_lattice,
    frenkel_ladd_free_energy,
    lj_energy_fn,
    periodic_space,
    to_arrays,
)
from thermo.materials._harmonic import harmonic_free_energy

T = 2.0
POS, BOX, _ = to_arrays(fcc_lattice(2, 1.28))
N = POS.shape[0]
DISP, _ = periodic_space(BOX)
U_LJ = lj_energy_fn(DISP, r_cut=1.45)
MODEL = lattice_gaussian_from_hessian(U_LJ, POS, BOX, T)
MSD = float(jnp.sum(MODEL.scales**2)) / N
SPRING = 3.0 * T / (2.0 * MSD)  # an Einstein crystal with the model's MSD
SITES = jnp.asarray(POS)
H_LJ = np.asarray(harmonic_free_energy(U_LJ, SITES, temperature=T).hessian)


def einstein_fn(x):
    d = MODEL.displacements(x)
    d = d - jnp.mean(d, axis=0, keepdims=True)
    return SPRING * jnp.sum(d * d)


def harmonic_fn(x):
    d = MODEL.displacements(x).reshape(-1)
    return 0.5 * d @ (H_LJ @ d)


EINSTEIN_MODEL = lattice_gaussian_from_covariance(POS, BOX, np.eye(3 * N) * T / (2 * SPRING))


def test_einstein_crystal_free_energy_within_4_sigma():
    # the LJ-Hessian model is not the Einstein crystal: the path has work to do
    res = lattice_free_energy(jr.key(0), MODEL, einstein_fn, T, n_chains=128, n_stages=100)
    exact = einstein_log_partition_com(N, T, SPRING)
    assert float(res.ess) > 0.1 * 128
    assert abs(float(res.log_q_com) - exact) < 4 * float(res.log_z_std)


def test_harmonic_lattice_free_energy_within_4_sigma():
    exact = -float(harmonic_free_energy(harmonic_fn, SITES, temperature=T).free_energy) / T
    res = lattice_free_energy(jr.key(1), EINSTEIN_MODEL, harmonic_fn, T, n_chains=128, n_stages=100)
    assert abs(float(res.log_z) - exact) < 4 * float(res.log_z_std)


def test_einstein_model_is_exact_for_the_einstein_crystal():
    exact = einstein_log_partition_com(N, T, SPRING)
    res = lattice_free_energy(jr.key(6), EINSTEIN_MODEL, einstein_fn, T, n_chains=16, n_stages=0)
    np.testing.assert_allclose(np.asarray(res.log_weights) + 1.5 * np.log(N), exact, atol=1e-8)


def test_harmonic_model_is_exact_for_its_own_harmonic_target():
    # q = exp(-beta U_h) / Z exactly, so every importance weight equals log Z
    exact = -float(harmonic_free_energy(harmonic_fn, SITES, temperature=T).free_energy) / T
    res = lattice_free_energy(jr.key(2), MODEL, harmonic_fn, T, n_chains=16, n_stages=0)
    np.testing.assert_allclose(np.asarray(res.log_weights), exact, rtol=0, atol=1e-8)


def test_wrapping_invariance_of_energy_and_log_density():
    x = MODEL.sample(jr.key(3), 1)[0]
    side = np.diag(np.asarray(BOX)) if np.ndim(BOX) == 2 else np.full(3, BOX)
    xw = x.at[5].add(jnp.asarray([side[0], -side[1], 2 * side[2]]))
    np.testing.assert_allclose(MODEL.log_prob(xw), MODEL.log_prob(x), rtol=1e-12)
    np.testing.assert_allclose(U_LJ(xw), U_LJ(x), rtol=1e-12)
    # a rigid translation changes neither (the COM mode is outside the model)
    np.testing.assert_allclose(MODEL.log_prob(x + 0.3), MODEL.log_prob(x), rtol=1e-12)


def test_equivariance_under_lattice_symmetries():
    trans, (rots, perms) = lattice_symmetries(POS, BOX)
    assert trans.shape == (N, N) and rots.shape[0] == 48
    x = np.asarray(MODEL.sample(jr.key(4), 1)[0])
    # a model fitted to a few samples, symmetrised: invariant under every group element
    fitted = lattice_gaussian_from_samples(MODEL.sample(jr.key(5), 64), POS, BOX)
    unsym = lattice_gaussian_from_samples(MODEL.sample(jr.key(5), 256), POS, BOX, symmetrize=False)
    lp = float(fitted.log_prob(jnp.asarray(x)))
    moved = []
    for k in (1, 7, 20):
        xp = np.empty_like(x)
        xp[trans[k]] = x + (POS[k] - POS[0])
        moved.append(xp)
    for g in (5, 23, 47):
        xp = np.empty_like(x)
        xp[perms[g]] = POS[0] + (x - POS[0]) @ rots[g].T
        moved.append(xp)
    for xp in moved:
        np.testing.assert_allclose(float(fitted.log_prob(jnp.asarray(xp))), lp, rtol=1e-10)
    # the claim is not vacuous: without the group average it fails
    lps = [float(unsym.log_prob(jnp.asarray(xp))) for xp in moved]
    assert np.max(np.abs(np.array(lps) - float(unsym.log_prob(jnp.asarray(x))))) > 1e-3


def test_assembly_matches_frenkel_ladd():
    c, u_cut, u_full = 0.37, -3.1, -3.4
    fl = frenkel_ladd_free_energy(
        N,
        1.28,
        T,
        SPRING,
        np.ones(1),
        np.full(1, c),
        np.full(1, 0.01),
        lattice_energy_full=u_full,
    )
    log_q_com = einstein_log_partition_com(N, T, SPRING) - N * (u_cut + c) / T
    ours = crystal_excess_free_energy(
        N, 1.28, T, log_q_com, 0.01 * N / T, lattice_energy_cut=u_cut, lattice_energy_full=u_full
    )
    np.testing.assert_allclose(ours["value"], fl.beta_free_energy, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours["std_err"], fl.std_err, rtol=1e-12)


def test_bad_input_fails_fast():
    with pytest.raises(ValueError, match="covariance must have shape"):
        lattice_gaussian_from_covariance(POS, BOX, np.eye(5))
    with pytest.raises(ValueError, match="positive definite"):
        lattice_gaussian_from_covariance(POS, BOX, np.zeros((3 * N, 3 * N)))
    with pytest.raises(ValueError, match="n_chains"):
        lattice_free_energy(jr.key(0), MODEL, U_LJ, T, n_chains=1, n_stages=3)
