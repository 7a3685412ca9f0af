"""Static entropic OT through ott-jax, its cost convention, and the Sinkhorn bridge."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from ott.geometry import costs, pointcloud

from bridges.gaussian import gaussian_bridge
from bridges.sinkhorn import (
    entropic_plan,
    epsilon_from_sigma,
    plan_cross_covariance,
    sinkhorn_bridge,
)

SIGMA = 0.8
COV0 = jnp.array([[1.0, 0.3], [0.3, 0.5]])
COV1 = jnp.array([[0.6, -0.2], [-0.2, 1.2]])


def test_ott_cost_is_unhalved_squared_euclidean():
    x = jr.normal(jr.key(0), (4, 3))
    y = jr.normal(jr.key(1), (5, 3))
    geom = pointcloud.PointCloud(x, y, cost_fn=costs.SqEuclidean(), scale_cost=1.0)
    np.testing.assert_allclose(
        geom.cost_matrix, jnp.sum((x[:, None] - y[None]) ** 2, -1), atol=1e-12
    )
    assert float(epsilon_from_sigma(SIGMA)) == pytest.approx(2 * SIGMA**2)


def test_plan_has_brownian_kernel():
    """log P_ij = f_i + g_j - |x_i - y_j|^2 / (2 sigma^2): double differences are exact."""
    x = jr.normal(jr.key(2), (30, 2))  # same shapes as below: one compilation
    y = jr.normal(jr.key(3), (40, 2)) + 1.0
    plan = entropic_plan(x, y, SIGMA)
    assert bool(plan.converged)
    logp = jnp.log(plan.matrix)
    sq = jnp.sum((x[:, None] - y[None]) ** 2, -1)
    dd = lambda m: m[1:, 1:] - m[1:, :1] - m[:1, 1:] + m[:1, :1]  # noqa: E731
    np.testing.assert_allclose(dd(logp), -dd(sq) / (2 * SIGMA**2), atol=1e-8)
    np.testing.assert_allclose(plan.matrix.sum(1), jnp.full(30, 1 / 30), atol=1e-6)
    np.testing.assert_allclose(plan.matrix.sum(0), jnp.full(40, 1 / 40), atol=1e-6)


def test_bad_input():
    with pytest.raises(ValueError, match="dimensions differ"):
        entropic_plan(jnp.zeros((3, 2)), jnp.zeros((3, 3)), 1.0)
    with pytest.raises(ValueError, match="shape"):
        entropic_plan(jnp.zeros((0, 2)), jnp.zeros((3, 2)), 1.0)


def test_sinkhorn_plan_approaches_closed_form():
    """Entropic plans between independent Gaussian samples recover the Bunne et al. C."""
    br = gaussian_bridge(jnp.zeros(2), COV0, jnp.ones(2), COV1, SIGMA)
    n, n_rep = 1000, 8

    @jax.jit
    @jax.vmap
    def one(key):
        k0, k1 = jr.split(key)
        x = br.sample_marginal(k0, 0.0, n)
        y = br.sample_marginal(k1, 1.0, n)
        return plan_cross_covariance(entropic_plan(x, y, SIGMA).matrix, x, y)

    c_hats = one(jr.split(jr.key(7), n_rep))
    mean = c_hats.mean(0)
    se = c_hats.std(0, ddof=1) / np.sqrt(n_rep)
    # Student t with 7 dof: |t| < 5 has two-sided p = 0.0016 per entry
    assert float(jnp.max(jnp.abs(mean - br.cross_cov) / se)) < 5.0
    # the wrong convention (eps = sigma^2 for |x-y|^2 cost) is the bridge at sigma/sqrt(2): rejected
    wrong = gaussian_bridge(jnp.zeros(2), COV0, jnp.ones(2), COV1, SIGMA / np.sqrt(2)).cross_cov
    assert float(jnp.max(jnp.abs(mean - wrong) / se)) > 10.0


def test_sinkhorn_bridge_drift_reproduces_plan_at_t0():
    x = jr.normal(jr.key(4), (30, 2))
    y = jr.normal(jr.key(5), (40, 2)) * 0.5 + 2.0
    bridge, plan = sinkhorn_bridge(x, y, SIGMA)
    w = jax.vmap(lambda xi: bridge.conditional_weights(0.0, xi))(x)
    np.testing.assert_allclose(w, plan.matrix / plan.matrix.sum(1, keepdims=True), atol=1e-6)
    # drift at t=0 is the barycentric displacement E[X1 | X0 = x] - x
    drift = jax.vmap(lambda xi: bridge.drift(0.0, xi))(x)
    np.testing.assert_allclose(drift, w @ y - x, atol=1e-10)
