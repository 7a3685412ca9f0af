"""Torus diffusion: network symmetries, wrapped-Gaussian kernel, sampler against an exact target."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from generative.periodic import (
    PeriodicScoreNet,
    WrappedVE,
    sample_torus,
    torus_dsm_loss,
    train_torus_score,
    wrap,
    wrapped_gaussian_log_prob,
    wrapped_gaussian_score,
)
from generative.processes import AbstractDiffusionProcess

_BOX = np.array([[3.0, 0.3, 0.0], [0.0, 3.2, 0.2], [0.0, 0.0, 3.4]])  # triclinic
_N = 8


@pytest.fixture(scope="module")
def net_fn():
    net = PeriodicScoreNet(_BOX, jr.key(0), width=16, n_rbf=8)
    return net, eqx.filter_jit(lambda n, s, u: n(s, u))


@pytest.fixture(scope="module")
def points():
    return jr.uniform(jr.key(1), (_N, 3))


def test_translation_invariance_and_periodicity(net_fn, points):
    net, f = net_fn
    s = f(net, 0.1, points)
    shifted = f(net, 0.1, wrap(points + jnp.array([0.3, 0.7, 0.2])[None]))
    assert float(jnp.max(jnp.abs(shifted - s))) < 1e-6
    images = jnp.zeros_like(points).at[2].set(jnp.array([1.0, -2.0, 3.0]))
    assert float(jnp.max(jnp.abs(f(net, 0.1, points + images) - s))) < 1e-6
    # the score of a translation-invariant density has no centre-of-mass component
    assert float(jnp.max(jnp.abs(jnp.sum(s, axis=0)))) < 1e-6
    assert float(jnp.max(jnp.abs(s))) > 1e-6  # not trivially zero


def test_permutation_equivariance(net_fn, points):
    net, f = net_fn
    perm = jr.permutation(jr.key(3), _N)
    s = f(net, 0.1, points)
    assert float(jnp.max(jnp.abs(f(net, 0.1, points[perm]) - s[perm]))) < 1e-6


def test_wrapped_gaussian_score_matches_finite_differences():
    u = jr.uniform(jr.key(4), (6,))
    mean = jr.uniform(jr.key(5), (6,))
    h = 1e-5
    log_p = jax.jit(jax.vmap(wrapped_gaussian_log_prob, (0, None, None)))
    for sigma in (0.05, 0.3, 0.6):
        eye = h * jnp.eye(6)
        fd = (log_p(u[None] + eye, mean, sigma) - log_p(u[None] - eye, mean, sigma)) / (2 * h)
        score = wrapped_gaussian_score(u, mean, sigma)
        np.testing.assert_allclose(np.asarray(score), np.asarray(fd), atol=1e-6 / sigma**2)


def test_wrapped_gaussian_is_normalised_on_the_circle():
    x = jnp.linspace(0.0, 1.0, 4001)[:-1]
    for sigma in (0.1, 0.6):
        dens = jnp.exp(jax.vmap(wrapped_gaussian_log_prob, (0, None, None))(x, 0.3, sigma))
        assert abs(float(jnp.mean(dens)) - 1.0) < 1e-9


def test_reverse_sampler_with_exact_score_recovers_the_target():
    # Data: one particle, each coordinate wrapped N(mu, s0^2). The forward marginal is the
    # wrapped N(mu, s0^2 + sigma^2), so its exact score drives the sampler. The target's
    # circular moment is E cos(2 pi (u - mu)) = exp(-2 pi^2 s0^2); the tolerance is
    # 4 standard errors of the sample mean of the cosine.
    mu, s0 = jnp.array([0.2, 0.5, 0.9]), 0.08
    proc = WrappedVE(sigma_min=1e-3, sigma_max=0.6)

    def exact_score(sigma, u):
        return wrapped_gaussian_score(u, mu, jnp.sqrt(s0**2 + sigma**2))

    u = sample_torus(jr.key(6), exact_score, proc, n_samples=2000, n_particles=1, n_steps=200)
    c = np.cos(2 * np.pi * (np.asarray(u[:, 0, :]) - np.asarray(mu))).ravel()
    target = np.exp(-2 * np.pi**2 * s0**2)
    se = c.std(ddof=1) / np.sqrt(c.size)
    assert abs(c.mean() - target) < 4 * se, (c.mean(), target, se)
    s = np.sin(2 * np.pi * (np.asarray(u[:, 0, :]) - np.asarray(mu))).ravel()
    assert abs(s.mean()) < 4 * s.std(ddof=1) / np.sqrt(s.size)


def test_dsm_training_reduces_the_loss_below_its_start(net_fn):
    # Two particles whose separation is wrapped-Gaussian: DSM must learn a nonzero score,
    # so the trained loss (on fresh noise) falls below the untrained one by many standard errors.
    net, _ = net_fn
    proc = WrappedVE(sigma_min=1e-2, sigma_max=0.6)
    base = jnp.array([[0.1, 0.1, 0.1], [0.45, 0.5, 0.55]])
    data = wrap(base[None] + 0.03 * jr.normal(jr.key(7), (256, 2, 3)))
    data = jnp.concatenate(
        [data, jnp.zeros((256, _N - 2, 3)) + jnp.arange(_N - 2)[None, :, None] / 8 + 0.06], 1
    )
    res = train_torus_score(jr.key(8), net, data, proc, n_steps=40, batch_size=16, n_chunks=1)
    loss_fn = eqx.filter_jit(
        lambda n, k: jax.vmap(lambda kk: torus_dsm_loss(kk, n, data[:32], proc))(jr.split(k, 16))
    )
    before = np.asarray(loss_fn(net, jr.key(9)))
    after = np.asarray(loss_fn(res.net, jr.key(9)))
    diff = before - after
    assert diff.mean() > 4 * diff.std(ddof=1) / np.sqrt(diff.size), (before.mean(), after.mean())
    assert np.all(np.isfinite(res.losses)) and res.losses.shape == (40,)


def test_wrapped_ve_is_a_shared_process_and_checks_its_arguments():
    # The torus process is a process of the shared type: its marginal width is sigma(t)
    # (SMLD convention), it wraps after a step, and its DSM target is the wrapped score.
    proc = WrappedVE(sigma_min=1e-2, sigma_max=0.6)
    assert isinstance(proc, AbstractDiffusionProcess)
    a, std = proc.marginal_coefficients(0.5)
    assert float(a) == 1.0 and abs(float(std) - float(proc.sigma(0.5))) < 1e-15
    np.testing.assert_array_equal(np.asarray(proc.retract(jnp.array([-0.25, 1.5]))), [0.75, 0.5])
    x0, xt = jnp.full((1, 3), 0.1), jnp.array([[0.95, 0.2, 0.1]])
    target = proc.denoising_target(x0, xt, None, jnp.full((1, 1), 0.3))
    np.testing.assert_allclose(
        np.asarray(target), -0.3 * np.asarray(wrapped_gaussian_score(xt, x0, 0.3))
    )
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        WrappedVE(sigma_min=0.6, sigma_max=0.1)
