"""EXP, BAR, Jarzynski, cumulant and Crooks estimators on harmonic traps with exact answers,
cross-checked against pymbar 4.

Instantaneous switches between harmonic traps (beta = 1) have exact work distributions:
the work is w = u_1(x) - u_0(x) with x drawn from the initial equilibrium state.

* Dragged trap, u_0 = k x^2/2 -> u_1 = k (x - a)^2/2: Delta f = 0, and the forward work is
  Gaussian with variance k a^2 and mean k a^2 / 2 (so the cumulant estimators are exact).
* Stiffened trap, u_0 = k0 x^2/2 -> u_1 = k1 x^2/2: Delta f = log(k1/k0) / 2 and the work
  is a scaled chi-square (non-Gaussian).

Tolerances: pymbar agreement to 1e-10 (same formulas), truth within 4 standard errors.
"""

import logging

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from thermo.estimators import (
    bar,
    bootstrap,
    crooks,
    estimate_log_z,
    exp,
    exp_gauss,
    exp_reverse,
    jarzynski,
    jarzynski_cumulant,
)

pymbar = pytest.importorskip("pymbar")
from pymbar import other_estimators  # noqa: E402

logging.getLogger("pymbar").setLevel(logging.ERROR)

N = 2000


def dragged(seed, k=1.0, a=1.5):
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal(N) / np.sqrt(k)  # state 0, centre 0
    x1 = a + rng.standard_normal(N) / np.sqrt(k)  # state 1, centre a
    w_f = 0.5 * k * ((x0 - a) ** 2 - x0**2)
    w_r = 0.5 * k * (x1**2 - (x1 - a) ** 2)
    return w_f, w_r, 0.0


def stiffened(seed, k0=1.0, k1=1.6):
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal(N) / np.sqrt(k0)
    x1 = rng.standard_normal(N) / np.sqrt(k1)
    w_f = 0.5 * (k1 - k0) * x0**2
    w_r = 0.5 * (k0 - k1) * x1**2
    return w_f, w_r, 0.5 * np.log(k1 / k0)


CASES = {"dragged": dragged(11), "stiffened": stiffened(12)}


@pytest.mark.parametrize("name", list(CASES))
def test_bar_matches_pymbar_and_truth(name):
    w_f, w_r, truth = CASES[name]
    for method in ("BAR", "MBAR"):
        est = bar(w_f, w_r, uncertainty_method=method)
        ref = other_estimators.bar(w_f, w_r, uncertainty_method=method)
        np.testing.assert_allclose(float(est.delta_f), ref["Delta_f"], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(float(est.std_err), ref["dDelta_f"], rtol=1e-10)
        assert abs(float(est.delta_f) - truth) < 4 * float(est.std_err)


def test_bar_unequal_sample_sizes_match_pymbar():
    w_f, w_r, truth = CASES["stiffened"]
    est = bar(w_f[:700], w_r)
    ref = other_estimators.bar(w_f[:700], w_r)
    np.testing.assert_allclose(float(est.delta_f), ref["Delta_f"], rtol=1e-10)
    np.testing.assert_allclose(float(est.std_err), ref["dDelta_f"], rtol=1e-10)
    assert abs(float(est.delta_f) - truth) < 4 * float(est.std_err)


@pytest.mark.parametrize("name", list(CASES))
def test_exp_forward_reverse_and_jarzynski(name):
    w_f, w_r, truth = CASES[name]
    fwd, rev, jar = exp(w_f), exp_reverse(w_r), jarzynski(w_f)
    ref_f = other_estimators.exp(w_f)
    ref_r = other_estimators.exp(w_r)
    np.testing.assert_allclose(float(fwd.delta_f), ref_f["Delta_f"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(float(fwd.std_err), ref_f["dDelta_f"], rtol=1e-10)
    np.testing.assert_allclose(float(rev.delta_f), -ref_r["Delta_f"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(float(rev.std_err), ref_r["dDelta_f"], rtol=1e-10)
    np.testing.assert_allclose(float(jar.delta_f), float(fwd.delta_f), rtol=1e-14, atol=1e-15)
    for est in (fwd, rev, jar):
        assert abs(float(est.delta_f) - truth) < 4 * float(est.std_err)


def test_cumulant_estimators_exact_for_gaussian_work():
    w_f, w_r, truth = CASES["dragged"]
    for w, sign in ((w_f, 1.0), (w_r, -1.0)):
        est = jarzynski_cumulant(w)
        ref = other_estimators.exp_gauss(w)
        np.testing.assert_allclose(float(est.delta_f), ref["Delta_f"], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(float(est.std_err), ref["dDelta_f"], rtol=1e-10)
        assert abs(sign * float(est.delta_f) - truth) < 4 * float(est.std_err)
    np.testing.assert_allclose(
        float(exp_gauss(w_f).delta_f), float(jarzynski_cumulant(w_f).delta_f)
    )


def test_statistical_inefficiency_scales_errors_like_pymbar_timeseries():
    from pymbar import timeseries

    w_f = CASES["stiffened"][0]
    x = np.exp(-w_f - np.max(-w_f))
    g = timeseries.statistical_inefficiency(x, x)
    ref = other_estimators.exp(w_f, is_timeseries=True)
    np.testing.assert_allclose(
        float(exp(w_f, statistical_inefficiency=g).std_err), ref["dDelta_f"], rtol=1e-10
    )
    g2 = 4.0
    np.testing.assert_allclose(
        float(jarzynski(w_f, statistical_inefficiency=g2).std_err),
        2.0 * float(jarzynski(w_f).std_err),
        rtol=1e-12,
    )
    with pytest.raises(ValueError, match=">= 1"):
        exp(w_f, statistical_inefficiency=0.5)


def test_crooks_crossing_and_bar():
    """Dragged trap: P_F(w) and P_R(-w) cross at w = Delta f = 0 (Crooks 1999)."""
    w_f, w_r, truth = CASES["dragged"]
    res = crooks(w_f, w_r)
    np.testing.assert_allclose(float(res.bar.delta_f), float(bar(w_f, w_r).delta_f))
    boot = bootstrap(jr.key(3), lambda f, r: crooks(f, r).crossing, w_f, w_r, n_bootstrap=64)
    sigma = float(boot.std_err)
    assert np.isfinite(sigma) and sigma > 0
    assert abs(float(res.crossing) - truth) < 4 * sigma


def test_bootstrap_of_a_mean_and_of_bar():
    """Bootstrap SE of a mean equals std/sqrt(n) up to its own sampling error
    (relative SE of a standard deviation from B resamples ~ 1/sqrt(2(B-1)))."""
    w_f, w_r, _ = CASES["stiffened"]
    b = 400
    res = bootstrap(jr.key(0), jnp.mean, w_f, n_bootstrap=b)
    expected = np.std(w_f) / np.sqrt(N)
    assert abs(float(res.std_err) / expected - 1) < 4 / np.sqrt(2 * (b - 1))
    res_bar = bootstrap(jr.key(1), bar, w_f, w_r, n_bootstrap=b)
    asym = float(bar(w_f, w_r).std_err)
    assert abs(float(res_bar.std_err.delta_f) / asym - 1) < 4 / np.sqrt(2 * (b - 1))
    assert res_bar.samples.delta_f.shape == (b,)


def test_estimate_log_z_bootstrap_option():
    w_f, _, truth = CASES["dragged"]
    b = 400
    delta = estimate_log_z(-w_f)
    boot = estimate_log_z(-w_f, key=jr.key(2), n_bootstrap=b)
    assert float(boot.value) == float(delta.value)
    assert abs(float(boot.std_err) / float(delta.std_err) - 1) < 4 / np.sqrt(2 * (b - 1))
    assert abs(-float(boot.value) - truth) < 4 * float(boot.std_err)
    with pytest.raises(ValueError, match="key"):
        estimate_log_z(-w_f, n_bootstrap=10)


@pytest.mark.parametrize(
    ("fn", "args", "match"),
    [
        (exp, (np.array([]),), "empty"),
        (exp, (np.array([1.0, np.nan]),), "NaN"),
        (jarzynski, (np.array([1.0, np.inf]),), "inf"),
        (exp_gauss, (np.ones((2, 2)),), "1-D"),
        (bar, (np.array([1.0, 2.0]), np.array([])), "empty"),
        (bar, (np.array([1.0, np.nan]), np.array([1.0])), "NaN"),
        (crooks, (np.array([np.inf, 1.0]), np.array([1.0, 2.0])), "inf"),
    ],
)
def test_bad_work_arrays_are_refused(fn, args, match):
    with pytest.raises(ValueError, match=match):
        fn(*args)


@pytest.mark.parametrize("method", ["BAR", "MBAR"])
def test_bar_without_overlap_reports_an_infinite_error(method):
    """Forward works near +100 and reverse works near +100 (so -w_r near -100): no sample
    has weight in both states. The error is inf (it used to be NaN), never a small number;
    the same data with overlap keep a finite error."""
    rng = np.random.default_rng(21)
    w_f, w_r = rng.normal(100.0, 1.0, 50), rng.normal(100.0, 1.0, 50)
    res = bar(w_f, w_r, uncertainty_method=method)
    assert np.isfinite(float(res.delta_f))
    assert float(res.std_err) == np.inf
    ok = bar(rng.normal(1.0, 1.0, 50), rng.normal(-1.0, 1.0, 50), uncertainty_method=method)
    assert 0.0 < float(ok.std_err) < 1.0
