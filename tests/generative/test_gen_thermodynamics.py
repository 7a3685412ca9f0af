"""Thermodynamic identities of diffusion models, checked against closed forms.

* KL(p_0 || N) - KL(p_T || N) = int_0^T (beta/2) E||grad log p_t + x||^2 dt for VP, on
  Gaussian data (all closed form, Gauss-Hermite nodes) and on a 1-D Gaussian mixture
  (grid quadrature in x), to 1e-3.
* The importance-weighted path estimate of log p(x) is unbiased for the density of the
  reverse chain, which for Gaussian data and a linear (Gaussian) score is Gaussian in
  closed form; the ELBO lies below it.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from generative.exact import (
    GaussianMixture,
    exact_score_fn,
    gaussian_kl_to_standard,
    marginal_mixture,
)
from generative.processes import VE, VP
from generative.thermodynamics import (
    elbo,
    importance_log_likelihood,
    monte_carlo_marginal,
    path_log_weights,
    relaxation_entropy_production,
)
from thermo.estimators import estimate_log_z

from ._gen_fixtures import GAUSS_COV, GAUSS_MEAN, GAUSSIAN

VP_PROCESS = VP()


def _gauss_hermite_nodes(mean, cov, n=3):
    """Tensor Gauss-Hermite nodes/weights for N(mean, cov) in 2-D (exact for quadratics)."""
    z, w = np.polynomial.hermite_e.hermegauss(n)  # weight exp(-z^2/2)
    zz = jnp.stack(jnp.meshgrid(z, z, indexing="ij"), -1).reshape(-1, 2)
    ww = jnp.outer(w, w).reshape(-1)
    chol = jnp.linalg.cholesky(cov)
    return mean[None, :] + zz @ chol.T, ww / ww.sum()


def test_entropy_production_identity_gaussian():
    vp = VP_PROCESS
    score = exact_score_fn(vp, GAUSSIAN)

    def nodes(t):
        p_t = marginal_mixture(vp, GAUSSIAN, t)
        return _gauss_hermite_nodes(p_t.means[0], p_t.covs[0])

    production = jax.jit(lambda: relaxation_entropy_production(vp, score, nodes, n_time=64))()
    p_t = marginal_mixture(vp, GAUSSIAN, vp.t1)
    kl_drop = gaussian_kl_to_standard(GAUSS_MEAN, GAUSS_COV) - gaussian_kl_to_standard(
        p_t.means[0], p_t.covs[0]
    )
    assert kl_drop > 0.5  # a non-trivial amount of relaxation
    assert jnp.abs(production - kl_drop) < 1e-3


def test_entropy_production_identity_mixture_1d():
    vp = VP_PROCESS
    mixture = GaussianMixture(
        jnp.array([0.25, 0.75]), jnp.array([[-2.0], [1.5]]), jnp.array([[[0.2]], [[0.6]]])
    )
    score = exact_score_fn(vp, mixture)
    grid = jnp.linspace(-12.0, 12.0, 4001)[:, None]  # tails beyond |x| = 12 are < 1e-30
    dx = grid[1, 0] - grid[0, 0]

    def density(t):
        return jnp.exp(jax.vmap(marginal_mixture(vp, mixture, t).log_prob)(grid))

    def nodes(t):
        return grid, density(t) * dx

    def kl_to_standard(t):
        p_t = marginal_mixture(vp, mixture, t)
        logp = jax.vmap(p_t.log_prob)(grid)
        log_n = -0.5 * grid[:, 0] ** 2 - 0.5 * jnp.log(2 * jnp.pi)
        return jnp.sum(jnp.exp(logp) * (logp - log_n)) * dx

    production, kl0, kl1 = jax.jit(
        lambda: (
            relaxation_entropy_production(vp, score, nodes, n_time=64),
            kl_to_standard(0.0),
            kl_to_standard(vp.t1),
        )
    )()
    assert kl0 - kl1 > 0.5
    assert jnp.abs(production - (kl0 - kl1)) < 1e-3


def test_entropy_production_monte_carlo_within_error():
    # The Monte Carlo version on data samples: 16 independent batches give a mean and a
    # standard error; the closed-form KL drop lies within 4 of them.
    vp = VP_PROCESS
    score = exact_score_fn(vp, GAUSSIAN)
    x0 = GAUSSIAN.sample(jr.key(3), 16 * 256).reshape(16, 256, 2)
    keys = jr.split(jr.key(4), 16)
    batches = jax.jit(
        jax.vmap(
            lambda k, x: relaxation_entropy_production(
                vp, score, monte_carlo_marginal(k, vp, x), n_time=32
            )
        )
    )(keys, x0)
    p_t = marginal_mixture(vp, GAUSSIAN, vp.t1)
    kl_drop = gaussian_kl_to_standard(GAUSS_MEAN, GAUSS_COV) - gaussian_kl_to_standard(
        p_t.means[0], p_t.covs[0]
    )
    se = jnp.std(batches, ddof=1) / jnp.sqrt(16.0)
    assert jnp.abs(batches.mean() - kl_drop) < 4 * se


@eqx.filter_jit
def _reverse_chain_log_prob(process, mean_s, cov_s, x, n_steps):
    """log-density at x of the N-step ancestral reverse chain whose score is that of N(mean_s, cov_s).

    The score -C_t^{-1}(x - a_t mean_s) is linear, so every reverse kernel is linear-Gaussian
    and the chain's marginal is N(m, C) by the recursion m <- A m + c, C <- A C A^T + sd^2 I.
    """
    ts = np.linspace(0.0, process.t1, n_steps + 1)
    eye = jnp.eye(2)
    m, c_mat = jnp.zeros(2), process.prior_std**2 * eye
    for k in range(n_steps, 0, -1):
        a_t, sd_t = process.marginal_coefficients(ts[k])
        prec = jnp.linalg.inv(a_t**2 * cov_s + sd_t**2 * eye)
        a, sd = process.transition_coefficients(ts[k - 1], ts[k])
        big_a = (eye - sd**2 * prec) / a
        m = big_a @ m + sd**2 * prec @ (a_t * mean_s) / a
        c_mat = big_a @ c_mat @ big_a.T + sd**2 * eye
    return GaussianMixture(jnp.ones(1), m[None], c_mat[None]).log_prob(x)


@pytest.mark.parametrize(
    ("process", "score_mean", "score_cov", "n_steps"),
    [
        (VP(), GAUSS_MEAN, GAUSS_COV, 10),  # exact score, coarse chain
        (VP(), jnp.zeros(2), 2.0 * jnp.eye(2), 10),  # misspecified score
        (VE(sigma_max=10.0), GAUSS_MEAN, GAUSS_COV, 30),
    ],
    ids=["vp-exact", "vp-misspecified", "ve-exact"],
)
def test_importance_weighted_likelihood_unbiased(process, score_mean, score_cov, n_steps):
    x = jnp.array([0.5, 0.2])
    score = exact_score_fn(process, GaussianMixture(jnp.ones(1), score_mean[None], score_cov[None]))
    paths = path_log_weights(jr.key(7), process, score, x, 4000, n_steps=n_steps)
    est = importance_log_likelihood(jr.key(7), process, score, x, 4000, n_steps=n_steps)
    ref = estimate_log_z(paths.log_weights)  # the same paths through the shared estimator
    assert jnp.allclose(est.value, ref.value) and jnp.allclose(est.std_err, ref.std_err)
    bound = elbo(paths.log_weights)
    truth = _reverse_chain_log_prob(process, score_mean, score_cov, x, n_steps)
    assert paths.log_weights.shape == (4000,)
    assert jnp.abs(est.value - truth) < 4 * est.std_err
    # ELBO = -mean work lies below log p(x); its gap (dissipated work) is resolved.
    assert bound.value + 4 * bound.std_err < truth
    assert bound.value < est.value
    assert jnp.allclose(bound.mean_work, -bound.value)
