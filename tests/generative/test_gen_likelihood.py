"""Probability-flow log-likelihood against the exact density of Gaussian-mixture data."""

import jax
import jax.numpy as jnp
import jax.random as jr
import pytest

from generative.exact import exact_score_fn, marginal_mixture
from generative.likelihood import log_likelihood
from generative.processes import VE, VP, SubVP

from ._gen_fixtures import MIXTURE

POINTS = jnp.array([[0.2, 2.7], [-0.5, 0.8], [1.5, 1.0]])


@pytest.mark.parametrize("process", [VP(), VE(sigma_max=10.0), SubVP()], ids=["vp", "ve", "subvp"])
def test_probability_flow_likelihood_is_exact(process):
    # With the exact score the flow's density at t=0 is the data density; the prior at T
    # is the exact marginal p_T, so the only error is the ODE solve (rtol = atol = 1e-8).
    score = exact_score_fn(process, MIXTURE)
    p_t = marginal_mixture(process, MIXTURE, process.t1)
    out = log_likelihood(
        None,
        process,
        score,
        POINTS,
        trace="exact",
        rtol=1e-8,
        atol=1e-8,
        prior_logdensity_fn=p_t.log_prob,
    )
    exact = jax.vmap(MIXTURE.log_prob)(POINTS)
    assert out.log_prob.shape == (3,)
    assert jnp.max(jnp.abs(out.log_prob - exact)) < 1e-3
    # The latent is the flow's encoding: it lies where p_T has mass (|x| < 6 sigma_T).
    assert jnp.all(jnp.abs(out.latent) < 6 * process.prior_std)


def test_hutchinson_likelihood_is_unbiased():
    # 64 independent single-probe Hutchinson estimates at one point: their mean is within
    # 4 standard errors of the exact log-density (the estimator is linear in the trace).
    vp = VP()
    score = exact_score_fn(vp, MIXTURE)
    p_t = marginal_mixture(vp, MIXTURE, vp.t1)
    x = jnp.broadcast_to(POINTS[0], (64, 2))
    out = log_likelihood(
        jr.key(11),
        vp,
        score,
        x,
        trace="hutchinson",
        n_probes=1,
        # the solve error (~1e-5) is far below the Hutchinson standard error (~1e-2)
        rtol=1e-5,
        atol=1e-5,
        prior_logdensity_fn=p_t.log_prob,
    )
    se = jnp.std(out.log_prob, ddof=1) / jnp.sqrt(64.0)
    print(f"Hutchinson: mean log p = {float(out.log_prob.mean()):.4f} +- {float(se):.4f}")
    assert se > 0
    assert jnp.abs(out.log_prob.mean() - MIXTURE.log_prob(POINTS[0])) < 4 * se


def test_likelihood_rejects_bad_input():
    vp = VP()
    score = exact_score_fn(vp, MIXTURE)
    with pytest.raises(ValueError):
        log_likelihood(None, vp, score, jnp.array([jnp.nan, 0.0]))
    with pytest.raises(ValueError):
        log_likelihood(None, vp, score, POINTS, trace="hutchinson")
