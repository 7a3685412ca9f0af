"""MBAR (Shirts & Chodera 2008) against pymbar 4 and analytic harmonic-oscillator free energies.

Test data: 1-D harmonic oscillators u_k(x) = k_k (x - o_k)^2 / 2 (beta = 1), whose reduced
free energies are exact, f_k = -log sqrt(2 pi / k_k). Samples are exact draws (fixed
seeds written here). Tolerances: f_k to 1e-6 absolute and uncertainties to 1e-4 relative
against pymbar (the issue's requirement), and every estimate within 4 of its own
standard errors of the analytic value.
"""

import functools
import logging

import numpy as np
import pytest

from tests._dependencies import pymbar_promotion
from thermo.estimators import _mbar, mbar

pymbar = pytest.importorskip("pymbar")
logging.getLogger("pymbar").setLevel(logging.ERROR)


def _pymbar(method, *args):
    """``method(*args)`` of a pymbar object, under pymbar_promotion."""
    with pymbar_promotion():
        return method(*args)


def harmonic_oscillators(centers, springs, n_k, seed):
    """Exact samples, u_kn (samples ordered by state), analytic f_k - f_0, and x_n."""
    rng = np.random.default_rng(seed)
    centers, springs = np.asarray(centers, float), np.asarray(springs, float)
    x = np.concatenate(
        [
            c + rng.standard_normal(n) / np.sqrt(k)
            for c, k, n in zip(centers, springs, n_k, strict=True)
        ]
    )
    u_kn = 0.5 * springs[:, None] * (x[None, :] - centers[:, None]) ** 2
    f = -0.5 * np.log(2 * np.pi / springs)
    return u_kn, np.asarray(n_k), f - f[0], x


def _case(k):
    if k == 5:
        return harmonic_oscillators([0, 1, 2, 3, 4], [1, 2, 4, 8, 16], [200] * 5, seed=5)
    # (K = 5 x 200 samples: the zero-sample tests below reuse this (5, 1000) shape.)
    return harmonic_oscillators(np.linspace(0, 10, 50), np.linspace(1, 3, 50), [40] * 50, seed=50)


@functools.cache
def reference(k):
    """The K-state case and pymbar's solution of it (computed once per session)."""
    u_kn, n_k, f_exact, x = _case(k)
    with pymbar_promotion():
        ref = pymbar.MBAR(u_kn, n_k)
        ref_df = ref.compute_free_energy_differences()
    return dict(u_kn=u_kn, n_k=n_k, f=f_exact, x=x, ref=ref, ref_df=ref_df)


@pytest.fixture(params=[5, 50], ids=["K5", "K50"])
def case(request):
    return reference(request.param)


@pytest.fixture(params=["numpy", "jax"])
def solver_path(request, monkeypatch):
    """Force one of mbar's two solver paths (dispatched by size otherwise)."""
    monkeypatch.setattr(_mbar, "_NUMPY_MAX_ELEMENTS", 10**18 if request.param == "numpy" else 0)
    return request.param


def _check_against_pymbar_and_truth(res, ref_f, ref_ddf, f_exact, atol=1e-6, rtol=1e-4):
    f_k, df_k = np.asarray(res.f_k), np.asarray(res.df_k)
    assert f_k[0] == 0.0
    np.testing.assert_allclose(f_k, ref_f, rtol=0, atol=atol)
    np.testing.assert_allclose(df_k[1:], ref_ddf[1:], rtol=rtol)
    assert np.all(np.abs(f_k - f_exact)[1:] < 4 * df_k[1:])


def test_mbar_matches_pymbar_and_analytic(case, solver_path):
    """Both paths agree with pymbar to 1e-8 (value and relative error)."""
    res = mbar(case["u_kn"], case["n_k"])
    _check_against_pymbar_and_truth(
        res, case["ref"].f_k, case["ref_df"]["dDelta_f"][0], case["f"], atol=1e-8, rtol=1e-8
    )
    _check_against_pymbar_and_truth(res, case["ref"].f_k, case["ref_df"]["dDelta_f"][0], case["f"])
    # Full covariance: the K x K uncertainty matrix of all differences.
    _, dd = res.free_energy_differences()
    np.testing.assert_allclose(np.asarray(dd), case["ref_df"]["dDelta_f"], rtol=1e-4, atol=1e-12)
    np.testing.assert_allclose(
        float(res.overlap), _pymbar(case["ref"].compute_overlap)["scalar"], rtol=1e-6
    )


def test_mbar_two_phase_solver_matches(monkeypatch):
    """Force the subsample + preconditioned phase (used for large N) on the K = 50 data."""
    monkeypatch.setattr(_mbar, "_NUMPY_MAX_ELEMENTS", 0)
    case = reference(50)
    res = mbar(case["u_kn"], case["n_k"], n_subsample=8)
    _check_against_pymbar_and_truth(res, case["ref"].f_k, case["ref_df"]["dDelta_f"][0], case["f"])


def test_mbar_jax_input_and_initial_guess(case):
    import jax.numpy as jnp

    res = mbar(jnp.asarray(case["u_kn"]), case["n_k"], f_k_init=case["f"] + 0.3)
    np.testing.assert_allclose(np.asarray(res.f_k), case["ref"].f_k, rtol=0, atol=1e-6)


def test_expectations_match_pymbar(case):
    res = mbar(case["u_kn"], case["n_k"])
    mean, err = res.expectations(case["x"])
    ref = _pymbar(case["ref"].compute_expectations, case["x"])
    np.testing.assert_allclose(np.asarray(mean), ref["mu"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(err), ref["sigma"], rtol=1e-4)
    # Analytic <x>_k = o_k, the oscillator centres.
    truth = np.arange(5.0) if len(case["n_k"]) == 5 else np.linspace(0, 10, 50)
    assert np.all(np.abs(np.asarray(mean) - truth) < 4 * np.asarray(err))


def test_perturbed_free_energies_of_unsampled_states(case):
    res = mbar(case["u_kn"], case["n_k"])
    x = case["x"]
    centers = np.array([0.5, 1.5]) if len(case["n_k"]) == 5 else np.array([2.1, 7.3])
    springs = np.array([1.5, 3.0]) if len(case["n_k"]) == 5 else np.array([1.2, 2.5])
    u_ln = 0.5 * springs[:, None] * (x[None, :] - centers[:, None]) ** 2
    delta, ddelta = res.perturbed_free_energies(u_ln)
    ref = _pymbar(case["ref"].compute_perturbed_free_energies, u_ln)
    np.testing.assert_allclose(np.asarray(delta), ref["Delta_f"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(ddelta)[0, 1], ref["dDelta_f"][0, 1], rtol=1e-4)
    exact = 0.5 * np.log(springs[1] / springs[0])
    assert abs(float(delta[0, 1]) - exact) < 4 * float(ddelta[0, 1])


def test_zero_sample_states_match_pymbar(solver_path):
    u_kn, n_k, f_exact, _ = harmonic_oscillators(
        [0, 1, 2, 3, 4], [1, 2, 4, 8, 16], [300, 0, 400, 0, 300], seed=7
    )
    with pymbar_promotion():
        ref = pymbar.MBAR(u_kn, n_k)
        ref_ddf = ref.compute_free_energy_differences()["dDelta_f"][0]
    res = mbar(u_kn, n_k)
    _check_against_pymbar_and_truth(res, ref.f_k, ref_ddf, f_exact)
    # State 0 unsampled too: f_0 = 0 is still the reference.
    u2, n2, f2, _ = harmonic_oscillators(
        [0, 1, 2, 3, 4], [1, 2, 4, 8, 16], [0, 300, 400, 0, 300], seed=8
    )
    with pymbar_promotion():
        ref2 = pymbar.MBAR(u2, n2)
    res2 = mbar(u2, n2)
    _check_against_pymbar_and_truth(
        res2, ref2.f_k, _pymbar(ref2.compute_free_energy_differences)["dDelta_f"][0], f2
    )


def test_pmf_of_harmonic_oscillator(case):
    """1-D PMF in state 0 (k = 1, centre 0): F(x) = x^2/2 up to a constant, bin-averaged."""
    from scipy.special import ndtr

    res = mbar(case["u_kn"], case["n_k"])
    edges = np.linspace(-2.0, 2.0, 9)
    centers, pmf, err = res.pmf(case["x"], edges)
    p = ndtr(edges[1:]) - ndtr(edges[:-1])
    exact = -np.log(p / np.diff(edges))
    ref = int(np.argmin(np.asarray(pmf)))
    exact = exact - exact[ref]
    others = np.arange(len(p)) != ref
    assert np.all(np.abs(np.asarray(pmf) - exact)[others] < 4 * np.asarray(err)[others])
    np.testing.assert_allclose(np.asarray(centers), 0.5 * (edges[1:] + edges[:-1]))


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda u, n: (np.where(np.arange(u.size).reshape(u.shape) == 3, np.nan, u), n), "NaN"),
        (lambda u, n: (np.where(np.arange(u.size).reshape(u.shape) == 3, np.inf, u), n), "inf"),
        (lambda u, n: (u, n + np.array([1, 0, 0, 0, 0])), "sums to"),
        (lambda u, n: (u, n + np.array([0, 0, -40, 0, 40])), "non-negative"),
        (lambda u, n: (u[0], n), "2-D"),
        (lambda u, n: (u, n[:4]), "shape"),
    ],
    ids=["nan", "inf", "sum", "negative", "1d", "n_k_shape"],
)
def test_bad_input_is_refused(mutate, match):
    u_kn, n_k, _, _ = harmonic_oscillators([0, 1, 2, 3, 4], [1, 2, 4, 8, 16], [20] * 5, seed=1)
    u_bad, n_bad = mutate(u_kn, n_k)
    with pytest.raises(ValueError, match=match):
        mbar(u_bad, n_bad)


def test_non_overlapping_states_are_refused(solver_path):
    # Two pairs of states 60 length units apart: no sample has weight in both groups.
    u_kn, n_k, _, _ = harmonic_oscillators([0, 0.5, 60, 60.5], [1, 1, 1, 1], [20] * 4, seed=3)
    with pytest.raises(ValueError, match="do not overlap"):
        mbar(u_kn, n_k)


@pytest.mark.parametrize("c", [35.0, 100.0, 1000.0])
def test_large_free_energy_difference_with_perfect_overlap(c, solver_path):
    """Identical samples, u_1 = u_0 + c: Delta f = c exactly and the overlap is perfect
    (states c kT apart used to be refused as non-overlapping from c ~ 35)."""
    u0 = 0.5 * np.random.default_rng(11).standard_normal(400) ** 2
    res = mbar(np.stack([u0, u0 + c]), [200, 200])
    assert abs(float(res.f_k[1]) - c) <= 1e-12 * c
    assert float(res.df_k[1]) < 1e-6
    np.testing.assert_allclose(float(res.overlap), 1.0, atol=1e-12)


def test_large_free_energy_offsets_match_pymbar(solver_path):
    """Oscillators whose states carry offsets of 0, 300, 600, 1000 kT (f shifts by them)."""
    u_kn, n_k, f_exact, _ = harmonic_oscillators([0, 0.5, 1, 1.5], [1, 2, 3, 4], [100] * 4, seed=4)
    offsets = np.array([0.0, 300.0, 600.0, 1000.0])
    with pymbar_promotion():
        ref = pymbar.MBAR(u_kn, n_k)
        ref_ddf = ref.compute_free_energy_differences()["dDelta_f"][0]
    res = mbar(u_kn + offsets[:, None], n_k)
    _check_against_pymbar_and_truth(
        res, ref.f_k + offsets, ref_ddf, f_exact + offsets, atol=1e-8, rtol=1e-8
    )


def test_float32_with_large_reduced_potentials(solver_path):
    """float32 u_kn near 1e4: identical samples 1 kT apart give Delta f = 1 to float32
    round-off, and oscillators give the float64 answer on the same (float32) data to
    float32 accuracy (tolerance 100 eps32 ~ 1e-5 on f ~ 1)."""
    eps32 = float(np.finfo(np.float32).eps)
    u0 = (1e4 + 0.5 * np.random.default_rng(12).standard_normal(400) ** 2).astype(np.float32)
    res = mbar(np.stack([u0, u0 + np.float32(1.0)]), [200, 200])
    assert res.f_k.dtype == np.float32
    assert abs(float(res.f_k[1]) - 1.0) <= 8 * eps32
    u_kn, n_k, _, _ = harmonic_oscillators([0, 1], [1, 2], [2000, 2000], seed=13)
    u32 = (u_kn + np.array([[1e4], [1e4 + 1.0]])).astype(np.float32)
    r32 = mbar(u32, n_k)
    r64 = mbar(u32.astype(np.float64), n_k)
    assert r32.f_k.dtype == np.float32
    assert abs(float(r32.f_k[1]) - float(r64.f_k[1])) <= 100 * eps32
    np.testing.assert_allclose(float(r32.df_k[1]), float(r64.df_k[1]), rtol=1e-3)


def test_jax_path_compiles_once_per_sample_bucket(monkeypatch):
    """A new sample count inside a shape bucket compiles nothing (K fixed, N varies)."""
    from tests._compile_count import count_compiles

    monkeypatch.setattr(_mbar, "_NUMPY_MAX_ELEMENTS", 0)
    sizes = [(40, 40, 40, 40, 40), (42, 42, 42, 42, 42), (46, 46, 46, 46, 46)]
    assert len({_mbar._bucket(sum(n)) for n in sizes}) == 1
    counts = []
    for n_k in sizes:
        u_kn, _, f_exact, _ = harmonic_oscillators(
            [0, 1, 2, 3, 4], [1, 2, 4, 8, 16], n_k, seed=sum(n_k)
        )
        with count_compiles() as c:
            res = mbar(u_kn, n_k)
        counts.append(c.n)
        assert np.all(np.abs(np.asarray(res.f_k) - f_exact)[1:] < 4 * np.asarray(res.df_k)[1:])
    assert counts[0] > 0  # the first call in the bucket compiles the solver ...
    assert counts[1] == 0 and counts[2] == 0  # ... the next ones nothing


def test_numpy_path_compiles_nothing(monkeypatch):
    from tests._compile_count import count_compiles

    monkeypatch.setattr(_mbar, "_NUMPY_MAX_ELEMENTS", 10**18)
    u_kn, n_k, _, _ = harmonic_oscillators([0, 1, 2], [1, 2, 4], [37, 41, 43], seed=14)
    with count_compiles() as c:
        mbar(u_kn, n_k)
    assert c.n == 0


def test_numpy_solver_stops_at_the_round_off_floor():
    """A per-sample constant leaves MBAR unchanged but raises the gradient's float64
    round-off floor: with energies ~1e6 kT (total energies in the reduced potentials, as
    in alchemtest's expanded-ensemble case 3, which ran 10,000 iterations) the floor is
    above the 1e-12 target. The solver must stop once Newton no longer reduces the
    gradient, at the f of the unshifted problem."""
    c = reference(5)
    u_kn, n_k = c["u_kn"], c["n_k"]
    shifted = u_kn + 1e6 * np.random.default_rng(0).random(u_kn.shape[1])[None, :]
    omega, f0 = np.ones(u_kn.shape[1]), np.zeros(len(n_k))
    f_ok, *_, n_ok, _ = _mbar._np_solve(
        u_kn, n_k, omega, f0, gtol=_mbar._GTOL_F64, max_iterations=300
    )
    f, *_, n_iter, gnorm = _mbar._np_solve(
        shifted, n_k, omega, f0, gtol=_mbar._GTOL_F64, max_iterations=300
    )
    assert gnorm > _mbar._GTOL_F64  # the target is below this problem's floor
    assert n_iter <= n_ok + 5  # a few iterations past the unshifted solve, not 300
    np.testing.assert_allclose(f, f_ok, rtol=0, atol=1e-8)
