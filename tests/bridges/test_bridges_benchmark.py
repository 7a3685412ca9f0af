"""Gushchin et al. (2023) mixture construction, cBW2-UVP, and LightSB (Korotin et al. 2024)."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jax.scipy.special import logsumexp

from bridges.benchmark import LightSB, cbw2_uvp, fit_lightsb, make_benchmark

EPS = 0.1


@pytest.fixture(scope="module")
def bench():
    return make_benchmark(jr.key(0), 2, EPS)


def _log_conditional(model, x, y):
    log_b, means, covs = model.conditional_components(x)
    comps = jax.vmap(jax.scipy.stats.multivariate_normal.logpdf, (None, 0, 0))(y, means, covs)
    return logsumexp(log_b + comps)


def _exact_lightsb(bench):
    """LightSB parameters that represent the ground-truth plan exactly.

    psi(y) e^{-|y|^2/2eps} = sum_k w_k N(m_k, S_k)(y) e^{-|y|^2/2eps} ∝ sum_k w_k N(m_k; 0, S_k + eps I) N(y; r_k, S~_k)
    """
    d = bench.dim
    chol = jnp.linalg.cholesky(bench.s_tilde / EPS)
    raw = jnp.tril(chol, -1) + jax.vmap(jnp.diag)(jnp.log(jnp.diagonal(chol, axis1=1, axis2=2)))
    log_alpha = bench.log_w + jax.vmap(
        lambda m, s: jax.scipy.stats.multivariate_normal.logpdf(
            m, jnp.zeros(d), s + EPS * jnp.eye(d)
        )
    )(bench.m, bench.s)
    return LightSB(log_alpha=log_alpha, r=bench.bias, chol_raw=raw, eps=EPS)


def test_plan_has_schrodinger_form(bench):
    # log pi(y|x) - log pi(y|x') - log pi(y'|x) + log pi(y'|x') = <x - x', y - y'> / eps exactly
    x, xp, y, yp = jr.normal(jr.key(1), (4, 2))
    lp = lambda a, b: _log_conditional(bench, a, b)  # noqa: E731
    dd = lp(x, y) - lp(xp, y) - lp(x, yp) + lp(xp, yp)
    assert float(dd) == pytest.approx(float(jnp.dot(x - xp, y - yp) / EPS), rel=1e-9)


def test_conditional_moments_match_samples(bench):
    x = jnp.array([0.3, -0.5])
    n = 10000
    ys = jax.vmap(bench.sample_conditional, (0, None))(jr.split(jr.key(2), n), x)
    mean, cov = bench.conditional_moments(x)
    se = jnp.sqrt(jnp.diag(cov) / n)
    assert float(jnp.max(jnp.abs(ys.mean(0) - mean) / se)) < 4.5


def test_cbw2_uvp_zero_for_truth_and_large_for_independent_plan(bench):
    x = bench.sample_p0(jr.key(3), 256)
    m, c = jax.vmap(bench.conditional_moments)(x)
    assert abs(float(cbw2_uvp(bench, x, m, c))) < 1e-10
    # the independent coupling predicts p1's moments for every x
    y = bench.sample_p1(jr.key(4), 20000)
    n = x.shape[0]
    indep = cbw2_uvp(
        bench, x, jnp.broadcast_to(y.mean(0), (n, 2)), jnp.broadcast_to(jnp.cov(y.T), (n, 2, 2))
    )
    assert float(indep) > 20.0


def test_lightsb_conditional_formula_is_exact(bench):
    model = _exact_lightsb(bench)
    x = bench.sample_p0(jr.key(5), 64)
    m, c = jax.vmap(model.conditional_moments)(x)
    assert abs(float(cbw2_uvp(bench, x, m, c))) < 1e-9
    y = jr.normal(jr.key(6), (2,))
    np.testing.assert_allclose(
        _log_conditional(model, x[0], y), _log_conditional(bench, x[0], y), rtol=1e-10
    )


def test_lightsb_training_beats_published_best_baseline(bench):
    # Gushchin et al. 2023 best-of-benchmark for d = 2, eps = 0.1 is 1.94 %; LightSB reports 0.03 %
    init = bench.sample_p1(jr.key(7), 10)
    res = fit_lightsb(
        jr.key(8),
        bench.sample_p0,
        bench.sample_p1,
        2,
        EPS,
        n_components=10,
        n_steps=300,
        batch_size=256,
        init_points=init,
    )
    x = bench.sample_p0(jr.key(9), 512)
    m, c = jax.vmap(res.model.conditional_moments)(x)
    assert float(cbw2_uvp(bench, x, m, c)) < 1.94


def test_sample_moment_floor_shrinks_with_samples(bench):
    # The true plan scored from M conditional samples: a positive bias that falls with M
    # (leading order ~ 1/M); M = 50 vs 800 are separated by far more than 4 standard errors.
    from bridges.benchmark import cbw2_uvp_estimate, sample_moments_floor

    x = bench.sample_p0(jr.key(10), 32)
    lo, lo_se = sample_moments_floor(jr.key(11), bench, x, 800)
    hi, hi_se = sample_moments_floor(jr.key(12), bench, x, 50)
    assert float(lo) > 0.0
    assert float(hi - lo) > 4 * float(jnp.hypot(lo_se, hi_se))
    # 16x more samples: the bias ratio is near 16 (within a factor 2 for the Bures term)
    assert 8.0 < float(hi / lo) < 32.0
    m, c = jax.vmap(bench.conditional_moments)(x)
    v, se = cbw2_uvp_estimate(bench, x, m, c)
    assert abs(float(v)) < 1e-10 and float(se) < 1e-10
