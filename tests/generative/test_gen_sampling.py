"""Samplers with the exact score reproduce the data distribution (KS tests on projections).

Test: for each sampler, 2000 samples (fixed key) of the 2-D mixture are projected on three
directions (0, 60 and 120 degrees); each projection is compared with the exact 1-D mixture
CDF by a one-sample Kolmogorov-Smirnov test. The sampler passes when every p-value
exceeds 0.01/3 (family-wise level 0.01, Bonferroni). The same test rejects prior samples,
so it has power at this sample size.
"""

import diffrax as dfx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from scipy import stats

from generative.exact import exact_score_fn
from generative.processes import VP
from generative.sampling import (
    sample_predictor_corrector,
    sample_probability_flow,
    sample_reverse_euler_maruyama,
    sample_reverse_sde,
)

from ._gen_fixtures import MIXTURE

N_SAMPLES = 2000
ALPHA = 0.01
ANGLES = np.deg2rad([0.0, 60.0, 120.0])
VP_PROCESS = VP()
SCORE = exact_score_fn(VP_PROCESS, MIXTURE)


def _projection_cdf(u):
    w = np.asarray(MIXTURE.weights)
    m = np.asarray(MIXTURE.means) @ u
    s = np.sqrt(np.einsum("i,kij,j->k", u, np.asarray(MIXTURE.covs), u))
    return lambda z: np.sum(w * stats.norm.cdf((np.asarray(z)[:, None] - m) / s), axis=-1)


def ks_pvalues(samples):
    samples = np.asarray(samples)
    out = []
    for a in ANGLES:
        u = np.array([np.cos(a), np.sin(a)])
        out.append(stats.kstest(samples @ u, _projection_cdf(u)).pvalue)
    return np.array(out)


def test_ks_has_power_against_prior():
    prior = VP_PROCESS.sample_prior(jr.key(0), (N_SAMPLES, 2))
    assert ks_pvalues(prior).min() < 1e-6


SAMPLERS = {
    "euler-maruyama": lambda k: sample_reverse_euler_maruyama(
        k, VP_PROCESS, SCORE, N_SAMPLES, 2, n_steps=500
    ),
    "diffrax-heun": lambda k: sample_reverse_sde(
        k, VP_PROCESS, SCORE, N_SAMPLES, 2, n_steps=100, solver=dfx.Heun()
    ),
    "predictor-corrector": lambda k: sample_predictor_corrector(
        k, VP_PROCESS, SCORE, N_SAMPLES, 2, n_steps=200, snr=0.16, n_corrector=1
    ),
    "probability-flow": lambda k: sample_probability_flow(
        k, VP_PROCESS, SCORE, N_SAMPLES, 2, rtol=1e-5, atol=1e-5
    ),
}


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_sampler_matches_data(name):
    samples = SAMPLERS[name](jr.key(2024))
    assert samples.shape == (N_SAMPLES, 2)
    assert bool(jnp.all(jnp.isfinite(samples)))
    p = ks_pvalues(samples)
    assert p.min() > ALPHA / len(ANGLES), p


@pytest.mark.parametrize("name", ["reverse-em", "predictor-corrector"])
def test_repeated_reverse_sampling_does_not_recompile(name):
    # A second call with another key and the same process, score and shapes reuses the
    # compiled sampler; the counter sees the first call's compilations.
    from tests._compile_count import count_compiles

    def draw(key):
        if name == "reverse-em":
            return sample_reverse_euler_maruyama(key, VP_PROCESS, SCORE, 16, 2, n_steps=7)
        return sample_predictor_corrector(key, VP_PROCESS, SCORE, 16, 2, n_steps=7)

    with count_compiles() as first:
        a = draw(jr.key(31))
    with count_compiles() as again:
        b = draw(jr.key(32))
    assert first.n > 0
    assert again.n == 0
    assert not np.array_equal(np.asarray(a), np.asarray(b))
