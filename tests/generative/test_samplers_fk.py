r"""Exact checks of the Feynman–Kac (SMC) correction along a learned sampler's chain.

* Without resampling and moves the corrected weights *are* the sampler's own path
  weights, particle by particle (the incremental weights telescope).
* On a shifted Gaussian, gmm40 and mw5 (exact :math:`\log Z`) the corrected untrained
  DDS chain gives :math:`\log\hat Z` within 4 of its own standard errors over seeds.
* Rescue: a deliberately bad network (random control weights), whose uncorrected
  estimate is many standard errors off, still gives :math:`\log Z` within 4 sigma on
  gmm40 and mw5 once corrected.
* Bad input fails with clear messages.

Tolerances are 4 standard errors of the estimator (the Lee–Whiteley genealogy error of
:func:`thermo.estimators.estimate_log_z` on the resampled population).
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import thermo.systems as systems
from generative.samplers import CMCD, DDS, as_target, feynman_kac, make_sampler, sample_paths
from thermo.estimators import estimate_log_z

# The DDS reference step per stage, sigma*sqrt(1 - exp(-2 rate delta)), must be small
# against the targets' mode widths, or the reference backward kernel wastes the
# population: duration 0.01 over 64 steps moves ~1e-2 sigma per stage.
_N_STEPS = 64
_DURATION = 0.01
_N = 1000
_SEEDS = range(4)


def _shifted_gaussian():
    mean = jnp.array([2.0, -1.0, 0.5])
    scale = 0.7
    target = as_target(lambda x: -0.5 * jnp.sum((x - mean) ** 2) / scale**2, dim=3, scale=1.0)
    return target, 1.5 * math.log(2 * math.pi * scale**2)


def _exact_cases():
    gmm, mw = systems.get("gmm40"), systems.get("mw5")
    yield "gaussian", *_shifted_gaussian()
    yield "gmm40", as_target(gmm), gmm.log_z
    yield "mw5", as_target(mw), mw.log_z


def _dds(target, control):
    # The drift's displacement per stage is capped at the reference's own step.
    return DDS(
        control,
        n_steps=_N_STEPS,
        sigma=target.scale,
        duration=_DURATION,
        output_scale=1.0 / target.scale**2,
        max_displacement=target.scale * math.sqrt(2.0 * _DURATION / _N_STEPS),
    )


def _z_scores(sampler, target, log_z):
    out = []
    for seed in _SEEDS:
        r = feynman_kac(jr.PRNGKey(seed), sampler, target, _N, n_moves=3)
        assert r.samples.shape == (_N, target.dim)
        assert np.isfinite(float(r.log_z_std)) and float(r.log_z_std) > 0
        out.append((float(r.log_z) - log_z) / float(r.log_z_std))
    return np.array(out)


def test_without_resampling_and_moves_the_weights_are_the_samplers():
    target = as_target(systems.get("mw5"))
    base = make_sampler(jr.PRNGKey(0), target, "dds", n_steps=8)
    noisy = _perturbed(base, jr.PRNGKey(3), 0.3)
    r = feynman_kac(jr.PRNGKey(1), noisy, target, 64, n_moves=0, resample_threshold=0.0)
    final = r.smc.particles
    own = final.log_weight + jax.vmap(lambda s: noisy.terminal_log_weight(target, s))(final)
    np.testing.assert_allclose(r.smc.log_weights, own, rtol=1e-10, atol=1e-9)
    assert int(r.n_energy_evals) == 64 * (1 + 8)


@pytest.mark.parametrize("case", ["gaussian", "gmm40", "mw5"])
def test_corrected_log_z_matches_exact(case):
    name, target, log_z = next(c for c in _exact_cases() if c[0] == case)
    base = make_sampler(jr.PRNGKey(0), target, "dds", n_steps=_N_STEPS)
    z = _z_scores(_dds(target, base.control), target, log_z)
    assert np.all(np.abs(z) < 4.0), (name, z)


def _perturbed(sampler, key, scale):
    """The sampler with every control weight replaced by N(0, scale^2) noise."""
    params, static = eqx.partition(sampler, eqx.is_inexact_array)
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jr.split(key, len(leaves))
    leaves = [scale * jr.normal(k, a.shape, a.dtype) for k, a in zip(keys, leaves, strict=True)]
    return eqx.combine(jax.tree_util.tree_unflatten(tree, leaves), static)


@pytest.mark.parametrize("case", ["gmm40", "mw5"])
def test_rescue_of_a_bad_network(case):
    _, target, log_z = next(c for c in _exact_cases() if c[0] == case)
    base = make_sampler(jr.PRNGKey(0), target, "dds", n_steps=_N_STEPS)
    bad = _perturbed(_dds(target, base.control), jr.PRNGKey(7), 1.0)
    # The bad network alone, on its usual (duration 4) clock, is badly off.
    raw_sampler = DDS(
        bad.control,
        n_steps=_N_STEPS,
        sigma=target.scale,
        duration=4.0,
        output_scale=1.0 / target.scale**2,
        max_displacement=target.scale,
    )
    raw = estimate_log_z(sample_paths(jr.PRNGKey(0), raw_sampler, target, _N))
    assert abs(float(raw.value) - log_z) > 4.0 * float(raw.std_err)
    z = _z_scores(bad, target, log_z)
    assert np.all(np.abs(z) < 4.0), z


def test_adaptive_schedule_is_exact_and_counted():
    """``lambdas="adaptive"``: a monotone schedule from a pilot run, fixed before the main
    run, so log Z stays within 4 SE of exact on mw5; the pilot's cost is counted."""
    target = as_target(systems.get("mw5"))
    base = make_sampler(jr.PRNGKey(0), target, "dds", n_steps=_N_STEPS)
    sampler = _dds(target, base.control)
    r = feynman_kac(jr.PRNGKey(0), sampler, target, _N, n_moves=3, lambdas="adaptive")
    lam = np.asarray(r.smc.diagnostics.params[1])
    assert lam[0] == 0.0 and lam[-1] == 1.0 and np.all(np.diff(lam) >= 0) and np.all(lam[1:] > 0)
    assert not np.allclose(lam, np.linspace(0, 1, _N_STEPS + 1), atol=1e-3)
    assert int(r.n_energy_evals) > _N * (1 + _N_STEPS * 4)  # main run plus the pilot
    z = (float(r.log_z) - systems.get("mw5").log_z) / float(r.log_z_std)
    assert abs(z) < 4.0, z


def test_power_schedule_is_exact():
    """``lambdas="power"``: the stages are :math:`(k/K)^4` and log Z stays within 4 SE of
    exact on the shifted Gaussian (whose mode lies 2.3 scales from the reference's)."""
    target, log_z = _shifted_gaussian()
    base = make_sampler(jr.PRNGKey(0), target, "dds", n_steps=_N_STEPS)
    r = feynman_kac(
        jr.PRNGKey(0), _dds(target, base.control), target, _N, n_moves=3, lambdas="power"
    )
    lam = np.asarray(r.smc.diagnostics.params[1])
    np.testing.assert_allclose(lam, np.linspace(0, 1, _N_STEPS + 1) ** 4, rtol=1e-6, atol=1e-12)
    z = (float(r.log_z) - log_z) / float(r.log_z_std)
    assert abs(z) < 4.0, z


def test_bad_input():
    target = as_target(systems.get("mw5"))
    base = make_sampler(jr.PRNGKey(0), target, "dds", n_steps=4)
    with pytest.raises(ValueError, match="reference marginals"):
        feynman_kac(jr.PRNGKey(0), CMCD(None, n_steps=4), target, 8)
    with pytest.raises(ValueError, match="lambdas"):
        feynman_kac(jr.PRNGKey(0), base, target, 8, lambdas=jnp.linspace(0.0, 0.5, 5))
    with pytest.raises(ValueError, match="n >= 2"):
        feynman_kac(jr.PRNGKey(0), base, target, 1)
    with pytest.raises(ValueError, match="'adaptive'"):
        feynman_kac(jr.PRNGKey(0), base, target, 8, lambdas="geometric")
    with pytest.raises(ValueError, match="adaptive_ess"):
        feynman_kac(jr.PRNGKey(0), base, target, 8, lambdas="adaptive", adaptive_ess=1.0)
