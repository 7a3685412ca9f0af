"""Out-of-core MBAR (``thermo.estimators.mbar_out_of_core``) against the in-memory solve.

Data: 1-D harmonic oscillators u_k(x) = k_k (x - o_k)^2 / 2 with exact draws (seed written
here), K = 20 states x N = 1e5 samples, one in-memory solve shared by the tests. The
streamed solve (memmap, ``.npy`` path, callable blocks, Fortran order, a memmap slice)
must give the in-memory f_k to 1e-10 (both solvers converge far below that; the
difference is round-off in sums over N samples), the covariance to 1e-6 relative (both
take W^T W at a point within the last Newton step, ~1e-8, of the solution), and the
analytic f_k within 4 of its standard errors. Small blocks (``block_elements``) force
many blocks per pass.
"""

import functools

import numpy as np
import pytest

from thermo.estimators import mbar, mbar_out_of_core

K, N_PER = 20, 5000
BLOCK = 20 * 4096  # 4096 columns per block: 25 blocks per pass


@functools.cache
def _data():
    rng = np.random.default_rng(20)
    centers, springs = 0.25 * np.arange(K), np.linspace(1.0, 3.0, K)
    n_k = np.full(K, N_PER)
    own = np.repeat(np.arange(K), n_k)
    x = centers[own] + rng.standard_normal(own.size) / np.sqrt(springs[own])
    u_kn = 0.5 * springs[:, None] * (x[None, :] - centers[:, None]) ** 2
    f = 0.5 * np.log(springs / springs[0])
    return u_kn, n_k, f, x


@functools.cache
def _in_memory():
    u_kn, n_k, _, _ = _data()
    return mbar(u_kn, n_k)


@pytest.fixture(scope="module")
def npy_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("ooc") / "u_kn.npy"
    np.save(path, _data()[0])
    return path


def _blocks_fn(u_kn, widths=(3000, 7001, 12345)):
    """A callable yielding column blocks of varying widths (restarts on each call)."""

    def blocks():
        a, i = 0, 0
        while a < u_kn.shape[1]:
            b = min(a + widths[i % len(widths)], u_kn.shape[1])
            yield u_kn[:, a:b]
            a, i = b, i + 1

    return blocks


def _check_same(res, ref, f_exact):
    f, df = np.asarray(res.f_k), np.asarray(res.df_k)
    np.testing.assert_allclose(f, np.asarray(ref.f_k), rtol=0, atol=1e-10)
    np.testing.assert_allclose(df[1:], np.asarray(ref.df_k)[1:], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(res.theta), np.asarray(ref.theta), rtol=0, atol=1e-10)
    np.testing.assert_allclose(
        np.asarray(res.overlap_matrix), np.asarray(ref.overlap_matrix), rtol=0, atol=1e-7
    )
    assert np.all(np.abs(f[1:] - f_exact[1:]) < 4 * df[1:])


@pytest.mark.parametrize("kind", ["memmap", "path", "callable"])
def test_streamed_solve_equals_in_memory(kind, npy_path):
    u_kn, n_k, f_exact, _ = _data()
    src = {
        "memmap": lambda: np.load(npy_path, mmap_mode="r"),
        "path": lambda: str(npy_path),
        "callable": lambda: _blocks_fn(u_kn),
    }[kind]()
    if kind == "callable":
        res = mbar_out_of_core(src, n_k, block_elements=BLOCK)
    else:
        res = mbar(src, n_k)  # the public entry point dispatches memmaps and paths
    _check_same(res, _in_memory(), f_exact)
    assert 2 <= res.n_passes <= 8
    np.testing.assert_allclose(
        np.asarray(res.log_denominator_n), np.asarray(_in_memory().log_denominator_n), atol=1e-10
    )


def test_fortran_order_slice_and_small_blocks(tmp_path):
    u_kn, n_k, f_exact, _ = _data()
    path = tmp_path / "u_kn_f.npy"
    np.save(path, np.asfortranarray(u_kn))
    res = mbar_out_of_core(np.load(path, mmap_mode="r"), n_k, block_elements=BLOCK)
    _check_same(res, _in_memory(), f_exact)
    # A slice of a memmap (read by slicing, not pread): the first 10 states only, against
    # the same columns given as blocks (the pread path's result above is the reference).
    big = np.load(path, mmap_mode="r")
    part = mbar(big[:10, : 10 * N_PER], n_k[:10])
    same = mbar_out_of_core(_blocks_fn(u_kn[:10, : 10 * N_PER]), n_k[:10])
    np.testing.assert_allclose(np.asarray(part.f_k), np.asarray(same.f_k), atol=1e-10)
    assert np.all(np.abs(np.asarray(part.f_k)[1:] - f_exact[1:10]) < 4 * np.asarray(part.df_k)[1:])


def test_float32_file(tmp_path):
    # u_kn up to ~40 kT stored in float32 (relative rounding 6e-8): each u_kn moves by at
    # most ~3e-6 kT, and so can the f_k; the streamed sums are float64.
    u_kn, n_k, _, _ = _data()
    path = tmp_path / "u32.npy"
    np.save(path, u_kn.astype(np.float32))
    res = mbar_out_of_core(str(path), n_k, progress=True)
    np.testing.assert_allclose(np.asarray(res.f_k), np.asarray(_in_memory().f_k), atol=1e-5)


def test_unsampled_state_and_expectations(npy_path):
    u_kn, n_k, _, x = _data()
    # State 3 unsampled: its samples are counted as state 4's (the same (K, N) shape as
    # the shared case, so the in-memory solver's compiled kernels are reused).
    n_k0 = n_k.copy()
    n_k0[4] += n_k0[3]
    n_k0[3] = 0
    u0, x0 = u_kn, x
    ref = mbar(u0, n_k0)
    res = mbar(np.load(npy_path, mmap_mode="r"), n_k0)
    np.testing.assert_allclose(np.asarray(res.f_k), np.asarray(ref.f_k), atol=1e-9)
    np.testing.assert_allclose(np.asarray(res.df_k)[1:], np.asarray(ref.df_k)[1:], rtol=1e-6)
    # Expectations with explicit states (the cross terms of the covariance are streamed).
    u_ln = u0[[0, 3, 7]]
    m_ref, s_ref = ref.expectations(x0, u_ln)
    m, s = res.expectations(x0, u_ln)
    np.testing.assert_allclose(np.asarray(m), np.asarray(m_ref), atol=1e-9)
    np.testing.assert_allclose(np.asarray(s), np.asarray(s_ref), rtol=1e-6)
    with pytest.raises(ValueError, match="solved out of core"):
        res.expectations(x0)


def _nan_blocks():
    u_kn = _data()[0].copy()
    u_kn[5, 30_300] = np.nan  # outside the subsample (its runs start at 30000)
    return _blocks_fn(u_kn, widths=(10_000,))


@pytest.mark.parametrize(
    ("make", "n_k", "match"),
    [
        (lambda p: str(p), np.full(K, N_PER - 1), "N_k sums to"),
        (lambda p: str(p), np.full(K - 1, N_PER), r"N_k must have shape \(20,\)"),
        (lambda p: _nan_blocks(), np.full(K, N_PER), r"block 3 \(columns 30000\.\.39999\)"),
        (lambda p: _blocks_fn(_data()[0][:, :-5]), np.full(K, N_PER), "columns in all"),
        (lambda p: str(p.with_name("missing.npy")), np.full(K, N_PER), "does not exist"),
    ],
    ids=["n_k_sum", "n_k_shape", "nan_block", "short_blocks", "missing_file"],
)
def test_bad_input_is_named(make, n_k, match, npy_path):
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        mbar_out_of_core(make(npy_path), n_k)


def test_nan_in_file_and_ragged_blocks(tmp_path):
    u_kn = _data()[0][:, :4000].copy()
    u_kn[2, 3999] = np.inf
    path = tmp_path / "bad.npy"
    np.save(path, u_kn)
    with pytest.raises(ValueError, match=r"u_kn contains NaN or inf values \(column 3999\)|block"):
        mbar(np.load(path, mmap_mode="r"), np.full(K, 200))

    def ragged():
        yield np.zeros((K, 10))
        yield np.zeros((K - 1, 10))

    with pytest.raises(ValueError, match="block 1 .* has 19 rows"):
        mbar_out_of_core(ragged, np.full(K, 1))


def test_disconnected_states_are_refused(tmp_path):
    # Two groups of states 1000 kT apart in x: no sample connects them.
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.standard_normal(500), 1000 + rng.standard_normal(500)])
    centers = np.array([0.0, 0.5, 1000.0, 1000.5])
    u_kn = 0.5 * (x[None, :] - centers[:, None]) ** 2
    path = tmp_path / "disc.npy"
    np.save(path, u_kn)
    with pytest.raises(ValueError, match="do not overlap"):
        mbar(np.load(path, mmap_mode="r"), [250, 250, 250, 250])
