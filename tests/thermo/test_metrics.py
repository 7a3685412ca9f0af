"""Shared metrics against exact answers (thermo.metrics)."""

import numpy as np
import pytest
from scipy.stats import special_ortho_group

from thermo import metrics


def test_w2_1d_equal_sizes_is_sorted_pairing():
    a = np.array([3.0, 1.0, 2.0])
    b = np.array([0.0, 5.0, 1.0])
    # sorted: (1,2,3) vs (0,1,5): diffs 1,1,-2 -> mean sq = 2
    assert metrics.w2_1d(a, b) == pytest.approx(np.sqrt(2.0))


def test_w2_1d_unequal_sizes_exact_quantiles():
    # a = {0, 1} (mass 1/2 each), b = {0, 0, 3}: quantile pieces on (0,1/2],(1/2,2/3],(2/3,1]
    a = np.array([0.0, 1.0])
    b = np.array([0.0, 0.0, 3.0])
    expected = 0.5 * 0.0 + (1 / 6) * 1.0 + (1 / 3) * 4.0
    assert metrics.w2_1d(a, b) == pytest.approx(np.sqrt(expected))
    # duplicating every sample leaves the distribution (and W2) unchanged
    assert metrics.w2_1d(np.repeat(a, 3), b) == pytest.approx(np.sqrt(expected))


def test_w2_gaussians_converges_to_closed_form():
    # W2(N(m1,s1^2), N(m2,s2^2))^2 = (m1-m2)^2 + (s1-s2)^2; the empirical W2 of n samples
    # has O(n^{-1/2} log) fluctuations; with n = 200,000 they are < 0.02.
    rng = np.random.default_rng(0)
    x = 1.0 + 2.0 * rng.standard_normal(200_000)
    y = -0.5 + 1.0 * rng.standard_normal(150_000)
    exact = np.sqrt(1.5**2 + 1.0**2)
    assert metrics.energy_w2(x, y) == pytest.approx(exact, abs=0.02)


def test_kabsch_and_alignment_recover_rotation_and_permutation():
    rng = np.random.default_rng(1)
    n, d = 13, 3
    ref = rng.standard_normal((n, d))
    ref -= ref.mean(0)
    rot = special_ortho_group.rvs(3, random_state=2)
    perm = rng.permutation(n)
    x = ref[perm] @ rot.T + np.array([3.0, -1.0, 2.0])
    np.testing.assert_allclose(metrics.kabsch(ref @ rot.T, ref), rot.T, atol=1e-10)
    aligned, d2 = metrics.align(x.reshape(-1), ref.reshape(-1), n, d)
    assert d2 == pytest.approx(0.0, abs=1e-18)
    np.testing.assert_allclose(aligned.reshape(n, d), ref, atol=1e-9)


def test_coordinate_w2_invariant_to_rotations_and_permutations():
    rng = np.random.default_rng(3)
    n_p, d, n = 4, 2, 40
    y = rng.standard_normal((n, n_p * d))
    # x = y with every sample independently rotated, permuted and translated
    x = []
    for yi in y.reshape(n, n_p, d):
        t = rng.uniform(0, 2 * np.pi)
        r = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        x.append((yi[rng.permutation(n_p)] @ r.T + rng.standard_normal(d)).reshape(-1))
    x = np.stack(x)
    assert metrics.coordinate_w2(x, y, n_particles=n_p, spatial_dim=d) == pytest.approx(
        0.0, abs=1e-8
    )
    assert metrics.coordinate_w2(
        x[:10], y[:10], n_particles=n_p, spatial_dim=d, alignment="pairwise"
    ) == pytest.approx(0.0, abs=1e-8)
    assert metrics.coordinate_w2(x, y, alignment="none") > 0.5


def test_coordinate_w2_plain_vectors_shift():
    # identical point sets shifted by a constant vector c: W2 = |c| exactly
    rng = np.random.default_rng(4)
    y = rng.standard_normal((50, 3))
    c = np.array([0.3, -0.4, 0.0])
    assert metrics.coordinate_w2(y[::-1] + c, y) == pytest.approx(0.5)


def test_distance_histogram_metrics():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((300, 12))
    m = metrics.distance_histogram_metrics(x, x, 4, 3)
    assert m == {"tv": 0.0, "w2": 0.0}
    # scaling all coordinates by s scales every distance by s: W2 = (s-1) * rms(d)
    d = metrics.interatomic_distances(x, 4, 3)
    m2 = metrics.distance_histogram_metrics(2 * x, x, 4, 3)
    assert m2["w2"] == pytest.approx(np.sqrt(np.mean(d**2)))
    assert 0.0 < m2["tv"] <= 1.0


def test_mmd_zero_in_expectation_and_positive_for_shift():
    # Unbiased MMD^2 between two samples of the same law has mean 0 and std O(1/n);
    # we compare with its spread over 20 replicate pairs (derived, not tuned).
    rng = np.random.default_rng(6)
    same = [
        metrics.mmd(rng.standard_normal((100, 2)), rng.standard_normal((100, 2)), bandwidth=1.0)
        for _ in range(20)
    ]
    assert abs(np.mean(same)) < 4 * np.std(same) / np.sqrt(20)
    diff = metrics.mmd(rng.standard_normal((100, 2)), rng.standard_normal((100, 2)) + 2.0)
    assert diff > np.mean(same) + 10 * np.std(same)


def test_log_z_error_and_input_checks():
    assert metrics.log_z_error(1.5, 1.0) == pytest.approx(0.5)
    assert metrics.log_z_error(1.5, None) is None
    with pytest.raises(ValueError, match="NaN"):
        metrics.w2_1d([0.0, np.nan], [1.0])
    with pytest.raises(ValueError, match="empty"):
        metrics.energy_w2([], [1.0])
