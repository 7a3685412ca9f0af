"""Statistical inefficiency, equilibration detection and subsampling (Chodera et al. 2007)
against pymbar 4's timeseries module on fixed-seed AR(1) series."""

import numpy as np
import pytest

from thermo.estimators import timeseries as ts

pymbar_ts = pytest.importorskip("pymbar.timeseries")


def ar1(n, phi, seed):
    rng = np.random.default_rng(seed)
    e = rng.standard_normal(n)
    x = np.empty(n)
    x[0] = e[0] / np.sqrt(1 - phi**2)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + e[i]
    return x


X = ar1(4000, 0.9, seed=0)
Y = X + 0.5 * np.random.default_rng(1).standard_normal(X.size)


@pytest.mark.parametrize("fast", [False, True])
def test_statistical_inefficiency_matches_pymbar(fast):
    g = float(ts.statistical_inefficiency(X, fast=fast))
    np.testing.assert_allclose(g, pymbar_ts.statistical_inefficiency(X, fast=fast), rtol=1e-12)
    g_ab = float(ts.statistical_inefficiency(X, Y, fast=fast))
    np.testing.assert_allclose(
        g_ab, pymbar_ts.statistical_inefficiency(X, Y, fast=fast), rtol=1e-12
    )
    np.testing.assert_allclose(
        float(ts.integrated_autocorrelation_time(X, fast=fast)), 0.5 * (g - 1), rtol=1e-14
    )


def test_statistical_inefficiency_of_white_noise_and_ar1():
    # AR(1): g = (1 + phi) / (1 - phi) = 19 for phi = 0.9; the estimate's spread for
    # n = 4000 is ~ g sqrt(2 * 2 t_c / n) (Bartlett), so a factor-of-1.5 band is > 4 sigma.
    g = float(ts.statistical_inefficiency(X))
    assert 19 / 1.5 < g < 19 * 1.5
    noise = np.random.default_rng(2).standard_normal(4000)
    assert float(ts.statistical_inefficiency(noise)) < 1.2


def test_detect_equilibration_matches_pymbar():
    drift = np.concatenate([np.linspace(8.0, 0.0, 300) + X[:300], X[300:1500]])
    for fast, nskip in ((True, 1), (False, 5)):
        ours = ts.detect_equilibration(drift, fast=fast, nskip=nskip)
        t0, g, n_eff = pymbar_ts.detect_equilibration(drift, fast=fast, nskip=nskip)
        assert ours.t0 == int(t0)
        np.testing.assert_allclose(ours.g, float(g), rtol=1e-6)
        np.testing.assert_allclose(ours.n_eff, float(n_eff), rtol=1e-6)
    assert ts.detect_equilibration(np.ones(50)) == (0, 1.0, 1.0)


@pytest.mark.parametrize("conservative", [False, True])
def test_subsample_matches_pymbar(conservative):
    ours = ts.subsample_correlated_data(X, conservative=conservative)
    ref = pymbar_ts.subsample_correlated_data(X, conservative=conservative)
    np.testing.assert_array_equal(ours, np.asarray(ref))
    ours_g = ts.subsample_correlated_data(X, g=7.3)
    np.testing.assert_array_equal(ours_g, np.asarray(pymbar_ts.subsample_correlated_data(X, g=7.3)))


@pytest.mark.parametrize(
    ("series", "match"),
    [
        (np.ones(10), "zero"),
        (np.array([1.0, np.nan, 2.0]), "NaN"),
        (np.ones((3, 3)), "1-D"),
        (np.ones(1), "at least 2"),
    ],
)
def test_bad_series_refused(series, match):
    with pytest.raises(ValueError, match=match):
        ts.statistical_inefficiency(series)
