"""Exact tests of the Boltzmann / delayed-acceptance search (thermo.materials.search.boltzmann)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from thermo.kernel import run
from thermo.materials.search import boltzmann

SCORES = jnp.array([0.0, 0.4, 1.1, -0.3, 0.8, 0.2])
LAM = 1.5
# fixed, deliberately wrong cheap stages (the screens): the target must not depend on them
SCREEN_1 = jnp.array([0.5, -0.2, 0.3, 0.4, 1.2, -0.6])
SCREEN_2 = jnp.array([0.1, 0.6, 0.7, -0.5, 0.5, 0.4])


def _kernel(mask=None, logits=None):
    fns = [
        lambda i: LAM * SCREEN_1[i],
        lambda i: LAM * SCREEN_2[i],
        lambda i: LAM * SCORES[i],
    ]
    return boltzmann.delayed_acceptance(fns, 6, mask=mask, proposal_logits=logits)


def _final_positions(kernel, n_chains=10_000, n_steps=40, seed=0):
    starts = jnp.zeros((n_chains,), jnp.int32)
    states = jax.vmap(kernel.init)(starts)
    keys = jr.split(jr.key(seed), n_chains)

    def one(key, state):
        final, reached = run(key, kernel, state, n_steps, observable_fn=lambda s, i: i)
        return final.position, reached.stages_reached

    pos, reached = jax.jit(jax.vmap(one))(keys, states)
    return np.asarray(pos), np.asarray(reached)


def _z_scores(pos, p):
    """Per-candidate (p_hat - p) / SE with the multinomial SE sqrt(p (1 - p) / N)."""
    n = len(pos)
    p_hat = np.bincount(pos, minlength=len(p)) / n
    se = np.sqrt(np.where(p > 0, p * (1 - p), 1.0) / n)
    return (p_hat - p) / se, p_hat


@pytest.mark.parametrize("proposal", ["uniform", "skewed"])
def test_delayed_acceptance_stationary_distribution_is_boltzmann(proposal):
    """Independent chains' final states ~ exp(lam s)/Z: every |z| < 4 (multinomial SE).

    40 steps from candidate 0; the independence chain's distance to stationarity after t
    steps is below (1 - min_m q(m) a(m) / pi(m))^t, negligible here against the SE.
    """
    logits = None if proposal == "uniform" else jnp.array([0.3, -0.2, 0.5, 0.0, 0.1, -0.4])
    pos, reached = _final_positions(_kernel(logits=logits))
    p = np.asarray(boltzmann.boltzmann_probabilities(SCORES, LAM))
    z, _ = _z_scores(pos, p)
    assert np.all(np.abs(z) < 4.0), z
    # the screens did their job: some proposals stopped before the target stage
    assert 1.0 < reached.mean() < 3.0


def test_delayed_acceptance_without_second_stage_correction_is_biased():
    """A control: accepting on the cheap screen alone samples exp(lam screen), not the target."""
    kernel = boltzmann.delayed_acceptance([lambda i: LAM * SCREEN_1[i]], 6)
    pos, _ = _final_positions(kernel)
    p = np.asarray(boltzmann.boltzmann_probabilities(SCORES, LAM))
    z, _ = _z_scores(pos, p)
    assert np.max(np.abs(z)) > 10.0
    z_screen, _ = _z_scores(pos, np.asarray(boltzmann.boltzmann_probabilities(SCREEN_1, LAM)))
    assert np.all(np.abs(z_screen) < 4.0), z_screen


def test_delayed_acceptance_respects_the_mask():
    mask = jnp.array([True, True, False, True, False, True])
    kernel = _kernel(mask=mask)
    pos, _ = _final_positions(kernel, n_chains=8000)
    p = np.asarray(boltzmann.boltzmann_probabilities(SCORES, LAM, mask))
    z, p_hat = _z_scores(pos, p)
    assert p_hat[2] == 0 and p_hat[4] == 0
    assert np.all(np.abs(z) < 4.0), z


def test_boltzmann_smc_matches_target():
    """16 independent SMC runs: per-candidate |mean - p| < 4.5 SE of the run means."""
    stages = jnp.stack([SCREEN_1, SCORES])
    p = np.asarray(boltzmann.boltzmann_probabilities(SCORES, LAM))
    est, log_zs = [], []
    for r in range(16):
        res = boltzmann.boltzmann_smc(jr.key(100 + r), stages, LAM, n_particles=512)
        w = np.asarray(jax.nn.softmax(res.log_weights))
        idx = np.asarray(res.samples)[:, 0]
        est.append(np.bincount(idx, weights=w, minlength=6))
        log_zs.append(float(res.log_z))
        assert float(res.lambdas[res.n_temperatures]) == 1.0
    est = np.asarray(est)
    se = est.std(0, ddof=1) / np.sqrt(len(est))
    assert np.all(np.abs(est.mean(0) - p) < 4.5 * se + 1e-12), (est.mean(0), p, se)
    # log Z = log(mean_m exp(lam s_m)) (the base is uniform); Z-hat is unbiased, log Z-hat
    # biased by O(var/2): compare the mean of Z-hat with its own SE
    z_hat = np.exp(np.asarray(log_zs))
    z_true = float(np.mean(np.exp(LAM * np.asarray(SCORES))))
    assert abs(z_hat.mean() - z_true) < 4.5 * z_hat.std(ddof=1) / np.sqrt(len(z_hat))


def test_boltzmann_bad_input():
    with pytest.raises(ValueError, match="at least one stage"):
        boltzmann.delayed_acceptance([], 3)
    with pytest.raises(ValueError, match="shape"):
        boltzmann.delayed_acceptance([lambda i: 0.0], 3, mask=jnp.ones(4, bool))
    with pytest.raises(ValueError, match="no open candidate"):
        boltzmann.boltzmann_smc(jr.key(0), jnp.zeros((1, 3)), 1.0, mask=jnp.zeros(3, bool))
    with pytest.raises(ValueError, match="lam"):
        boltzmann.boltzmann_smc(jr.key(0), jnp.zeros((1, 3)), -1.0)
