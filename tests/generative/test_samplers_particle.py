"""iDEM (generative.samplers._particle): the MC score estimator against the exact noised
score of a harmonic particle system, its E(n) equivariance, a decreasing training loss,
and log Z from the path log-weights against the closed form."""

from __future__ import annotations

import dataclasses
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import thermo.systems as systems
from generative.processes import VE
from generative.samplers._particle import (
    IDEMSettings,
    idem_loss,
    init_idem,
    mc_score,
    mc_score_estimate,
    probability_flow_log_weights,
    reverse_path_log_weights,
    train_idem,
)
from thermo.estimators import estimate_log_z
from thermo.systems import remove_com

# A harmonic "cluster": U = k/2 sum_i |x_i - xbar|^2, E(n)-invariant. On the CoM-free
# subspace (dimension (n-1)D) the Boltzmann density is N(0, P/(beta k)), so
#   log Z = (n-1)D/2 * log(2 pi / (beta k)),
# and the VE-noised density is N(0, (1/(beta k) + sigma^2) P), whose score is
#   -x / (1/(beta k) + sigma^2).
K_SPRING = 4.0
BETA = 1.0


def harmonic_energy(n: int, dim: int):
    def energy(x):
        xp = x.reshape(n, dim)
        return 0.5 * K_SPRING * jnp.sum((xp - jnp.mean(xp, axis=0, keepdims=True)) ** 2)

    return energy


def exact_log_z(n: int, dim: int) -> float:
    return 0.5 * (n - 1) * dim * math.log(2.0 * math.pi / (BETA * K_SPRING))


# ---------------------------------------------------------------- the score estimator
N3, D3 = 3, 2
_ENERGY3 = harmonic_energy(N3, D3)


@pytest.mark.parametrize("n_mc", [64, 4096])
def test_mc_score_matches_exact_noised_score_within_its_standard_error(n_mc):
    x = remove_com(jr.normal(jr.key(11), (N3 * D3,), jnp.float64), N3, D3)
    sigma = 0.7
    exact = -x / (1.0 / (BETA * K_SPRING) + sigma**2)
    est = jax.jit(
        lambda k: mc_score_estimate(k, _ENERGY3, x, sigma, n_mc, beta=BETA, particles=(N3, D3))
    )(jr.key(3))
    z = np.abs(np.asarray(est.score - exact)) / np.asarray(est.std_err)
    print(f"K={n_mc}: max |S_K - exact| / se = {z.max():.2f}, se {np.asarray(est.std_err)}")
    assert np.all(z < 4.0)
    # the estimate stays in the CoM-free subspace
    np.testing.assert_allclose(est.score.reshape(N3, D3).sum(0), 0.0, atol=1e-10)


def _rotation_2d(angle):
    c, s = math.cos(angle), math.sin(angle)
    return jnp.array([[c, -s], [s, c]], jnp.float64)


def test_mc_score_is_e_n_equivariant_on_dw4():
    system = systems.get("dw4")
    n, dim = system.n_particles, system.spatial_dim
    k_x, k_e = jr.split(jr.key(7))
    x = 2.0 * jr.normal(k_x, (n * dim,), jnp.float64)
    eps = remove_com(jr.normal(k_e, (32, n * dim), jnp.float64), n, dim)

    @jax.jit
    def score(x, eps):
        return mc_score(system.energy, x, 0.8, eps, beta=1.0, particles=(n, dim)).score

    base = score(x, eps).reshape(n, dim)
    rot = _rotation_2d(0.9) @ jnp.diag(jnp.array([1.0, -1.0]))  # rotation and reflection

    def act(v):
        return (v.reshape(-1, n, dim) @ rot.T).reshape(v.shape)

    np.testing.assert_allclose(score(act(x), act(eps)).reshape(n, dim), base @ rot.T, atol=1e-6)
    perm = jnp.array([2, 0, 3, 1])

    def permute(v):
        return v.reshape(-1, n, dim)[:, perm].reshape(v.shape)

    np.testing.assert_allclose(
        score(permute(x), permute(eps)).reshape(n, dim), base[perm], atol=1e-6
    )
    shifted = (x.reshape(n, dim) + jnp.array([3.0, -1.5])[None, :]).reshape(-1)
    np.testing.assert_allclose(score(shifted, eps).reshape(n, dim), base, atol=1e-6)
    # a non-equivariant perturbation is detected: rotating x but not the noise changes S_K
    assert float(jnp.max(jnp.abs(score(act(x), eps).reshape(n, dim) - base @ rot.T))) > 1e-3


# ---------------------------------------------------------------- path log-weights
N2, D2 = 2, 3
_ENERGY2 = harmonic_energy(N2, D2)
_PROCESS2 = VE(sigma_min=0.01, sigma_max=2.0, particles=(N2, D2))


_paths = eqx.filter_jit(reverse_path_log_weights)


def _check_log_z(paths, label: str, digits: int = 4):
    """``estimate_log_z`` of the paths' weights, asserted within 4 standard errors of the
    closed form; returns the estimate and the closed form."""
    est = estimate_log_z(paths.log_weights)
    truth = exact_log_z(N2, D2)
    n = paths.log_weights.shape[0]
    print(
        f"{label}: log Z {float(est.value):.{digits}f} +- {float(est.std_err):.{digits}f} "
        f"(exact {truth:.{digits}f}), ESS {float(est.ess):.0f}/{n}"
    )
    assert abs(float(est.value) - truth) < 4.0 * float(est.std_err)
    return est, truth


def _exact_score(t, x, args=None):
    _, std = _PROCESS2.marginal_coefficients(t)
    return -x / (1.0 / (BETA * K_SPRING) + std**2)


def test_path_log_weights_with_the_exact_score_give_log_z():
    paths = _paths(
        jr.key(0), _PROCESS2, _exact_score, _ENERGY2, 2000, N2 * D2, beta=BETA, n_steps=50
    )
    est, truth = _check_log_z(paths, "exact score")
    assert float(est.ess) > 1000  # the exact score leaves only discretisation noise
    # the samples live in the CoM-free subspace
    np.testing.assert_allclose(paths.samples.reshape(-1, N2, D2).sum(1), 0.0, atol=1e-10)
    # dropping the prior term (a wrong weight) is far outside the error bar
    wrong = estimate_log_z(paths.log_weights + jax.vmap(_PROCESS2.prior_log_prob)(paths.samples))
    assert abs(float(wrong.value) - truth) > 10.0 * float(est.std_err)


# ---------------------------------------------------------------- training
_SETTINGS = IDEMSettings(
    sigma_min=0.01,
    sigma_max=2.0,
    hidden=8,
    n_layers=1,
    n_outer=3,
    n_inner=100,
    batch_size=32,
    n_mc=64,
    buffer_size=256,
    n_new=128,
    n_sample_steps=20,
    learning_rate=5e-3,
    max_target_norm=10.0,
)


@pytest.fixture(scope="module")
def trained():
    return train_idem(jr.key(42), _ENERGY2, N2, D2, beta=BETA, settings=_SETTINGS)


def test_training_decreases_the_loss_on_a_fixed_batch(trained):
    x0 = remove_com(jr.normal(jr.key(1), (256, N2 * D2), jnp.float64) / math.sqrt(K_SPRING), N2, D2)
    init = init_idem(jr.split(jr.key(42))[0], N2, D2, _SETTINGS).model

    @eqx.filter_jit
    def loss(model):
        return idem_loss(
            jr.key(9),
            model,
            x0,
            _ENERGY2,
            beta=BETA,
            n_mc=64,
            t_min=_SETTINGS.t_min,
            max_target_norm=_SETTINGS.max_target_norm,
        )

    before, after = float(loss(init)), float(loss(trained.model))
    print(f"iDEM loss on a fixed batch: {before:.3f} -> {after:.3f}")
    assert after < 0.8 * before
    assert trained.losses.shape == (_SETTINGS.n_outer * _SETTINGS.n_inner,)
    assert trained.n_train_energy_evals == (
        _SETTINGS.n_outer
        * (_SETTINGS.n_inner * _SETTINGS.batch_size * _SETTINGS.n_mc + _SETTINGS.n_new)
    )


def test_trained_score_approaches_the_exact_noised_score(trained):
    x0 = remove_com(jr.normal(jr.key(2), (512, N2 * D2), jnp.float64) / math.sqrt(K_SPRING), N2, D2)
    t = jnp.linspace(0.05, 1.0, 512)
    init = init_idem(jr.split(jr.key(42))[0], N2, D2, _SETTINGS).model

    @eqx.filter_jit
    def error(model):
        # sigma_t-weighted score error at x_t = x0 + sigma_t eps, the quantity iDEM regresses
        _, std = jax.vmap(_PROCESS2.marginal_coefficients)(t)
        xt = x0 + std[:, None] * _PROCESS2.noise(jr.key(4), x0.shape)
        diff = jax.vmap(model)(t, xt) - jax.vmap(_exact_score)(t, xt)
        return jnp.mean(jnp.sum((std[:, None] * diff) ** 2, axis=-1))

    before, after = float(error(init)), float(error(trained.model))
    print(f"sigma-weighted score error vs the closed form: {before:.3f} -> {after:.3f}")
    assert after < 0.5 * before


def test_path_log_weights_are_unbiased_for_a_wrong_score():
    # E[w] = Z holds for ANY score: a 20 %-too-weak score spreads the weights but the
    # estimate stays within its standard error of the closed form.
    def weak(t, x, args=None):
        return 0.8 * _exact_score(t, x)

    paths = _paths(jr.key(1), _PROCESS2, weak, _ENERGY2, 2000, N2 * D2, beta=BETA, n_steps=50)
    est, _ = _check_log_z(paths, "weak score")
    assert float(est.ess) < 1900  # the weights really are spread


def test_probability_flow_log_weights_give_log_z():
    paths = probability_flow_log_weights(
        jr.key(2),
        _PROCESS2,
        _exact_score,
        _ENERGY2,
        200,
        N2 * D2,
        beta=BETA,
        t_min=1e-3,
        rtol=1e-6,
        atol=1e-6,
    )
    _check_log_z(paths, "probability flow, exact score", digits=5)


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="n_new"):
        train_idem(jr.key(0), _ENERGY2, N2, D2, settings=dataclasses.replace(_SETTINGS, n_new=512))
    with pytest.raises(ValueError, match="positive"):
        reverse_path_log_weights(jr.key(0), _PROCESS2, _exact_score, _ENERGY2, 0, N2 * D2)
