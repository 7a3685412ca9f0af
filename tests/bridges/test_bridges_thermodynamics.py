"""KL to the reference (Girsanov) and work along the bridge, against the closed form."""

import jax.numpy as jnp
import jax.random as jr
import pytest

from bridges import gaussian_bridge
from bridges.thermodynamics import bridge_work, gaussian_mean_work, girsanov_kl

N_PATHS, N_STEPS = 2000, 200


@pytest.fixture(scope="module")
def bridge():
    cov0 = jnp.array([[1.0, 0.3], [0.3, 0.5]])
    cov1 = jnp.array([[0.6, -0.2], [-0.2, 1.2]])
    return gaussian_bridge(jnp.zeros(2), cov0, jnp.ones(2), cov1, 0.8)


def test_girsanov_kl_matches_closed_form(bridge):
    x0 = bridge.sample_marginal(jr.key(0), 0.0, N_PATHS)
    est = girsanov_kl(jr.key(1), bridge.sde(), x0, N_STEPS)
    assert abs(float(est.value - bridge.kl_to_reference())) < 4 * float(est.std_err)


def test_reference_has_zero_kl(bridge):
    x0 = bridge.sample_marginal(jr.key(0), 0.0, 16)
    assert float(girsanov_kl(jr.key(1), bridge.reference_sde(), x0, 10).value) == 0.0


def test_work_matches_closed_form(bridge):
    x0 = bridge.sample_marginal(jr.key(2), 0.0, N_PATHS)
    est = bridge_work(jr.key(3), bridge.sde(), x0, N_STEPS)
    assert abs(float(est.value - gaussian_mean_work(bridge))) < 4 * float(est.std_err)
