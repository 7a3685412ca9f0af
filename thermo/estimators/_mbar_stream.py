r"""Out-of-core MBAR: ``u_kn`` streamed from disk (or from a generator) in column blocks.

The estimator is the one of :mod:`thermo.estimators._mbar` (Shirts & Chodera 2008, JCP
129, 124105): the free energies minimise the convex objective

.. math:: F(f) = \sum_n \log \sum_k N_k e^{f_k - u_{kn}} - \sum_k N_k f_k ,

and their covariance is pymbar's ``svd-ew`` formula applied to the ``K x K`` Gram matrix
:math:`W^\top W` of the weights :math:`W_{nk} = e^{f_k - u_{kn}} / \sum_l N_l e^{f_l -
u_{ln}}` (App. D). Both only need *sums over samples*, so a ``(K, N)`` matrix larger
than memory can be read once per pass, one ``(K, B)`` column block at a time: per block
and per sample the log-sum-exp is shifted by the sample's own maximum
:math:`m_n = \max_k (\log N_k + f_k - u_{kn})` (every exponential is then ``<= 1``, so
there is no overflow whatever the energies), and the block's contributions to
:math:`F`, to :math:`\sum_n W_{nk}` (the gradient :math:`\partial_k F = N_k(\sum_n
W_{nk} - 1)`) and, when asked, to :math:`W^\top W` (the Hessian
:math:`\mathrm{diag}(N \circ \sum_n W_{n\cdot}) - N W^\top W N`) are added on the host in
float64.

**Passes.** A Gram pass costs ``K^2 N`` flops against ``K N`` exponentials for a
gradient pass, so the solver follows the same two-phase design as the in-memory one
with the pass count kept small:

1. *Subsample Newton* (in memory, no full pass): up to ``n_subsample`` samples per state
   (a few contiguous runs spread over each state's samples, so that a memory-mapped
   file is read with few seeks), reweighted by :math:`N_k / N_k^{\mathrm{sub}}`, solved
   by exact Newton with an Armijo line search; its Hessian estimates the full one.
2. *Preconditioned passes*: each full pass gives :math:`F` and :math:`\nabla F` at one
   point; the step is :math:`-H_{\mathrm{sub}}^{-1}\nabla F`, accepted on Armijo's
   condition (the next pass evaluates it; a rejected step is halved). When the steps
   stop shrinking fast (ratio above 1/2) one Gram pass replaces the preconditioner by
   the exact full-data Hessian.
3. *One Gram pass* once the predicted step is below ``tol``: it gives
   :math:`W^\top W` (the covariance, exactly as the in-memory path) and one exact Newton
   step, which leaves an error of order ``tol**2`` (quadratic convergence). States with
   ``N_k = 0`` are set self-consistently (eq. 14) in every pass and moved with that last
   step to first order (:math:`\delta f_j = \sum_k N_k (W^\top W)_{jk} \delta f_k`).

Peak memory: the subsample (at most about 1 GB), two column blocks in flight and their
temporaries (``block_elements`` floats each), ``K x K`` matrices; the ``(N,)`` vector
``log_denominator_n`` is computed by one more pass on first use.

**Inputs.** A ``.npy`` path or an ``np.memmap`` opened with ``np.load(path,
mmap_mode="r")`` (C or Fortran order) is read with ``pread`` into fresh buffers, not
through the mapping, so file pages never count towards the process's resident memory;
any other ``np.memmap`` (a slice of one) is read by slicing. A callable ``u_kn_fn()``
must return an iterable of ``(K, B_i)`` blocks covering the N columns in order (the
widths may differ); it is called once per pass, plus once to read K and once to gather
the subsample (a file is read at the subsample's columns only).
"""

from __future__ import annotations

import logging
import math
import mmap
import os
import time
from collections.abc import Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_n_k
from ._mbar import (
    _MIN_OVERLAP_GAP,
    MBAR,
    _factor,
    _newton_direction,
    _overlap_eigenvalues,
    _raise_disconnected,
    _theta_svd_ew,
)

__all__ = ["is_out_of_core_input", "mbar_out_of_core"]

_log = logging.getLogger("thermo.estimators.mbar_out_of_core")

#: Floats per column block (``K * B``): 2^23 float64 = 64 MiB per block; with the kernel's
#: few temporaries and two blocks in flight this bounds the working set to well under 1 GB.
_BLOCK_ELEMENTS = 1 << 23
#: Largest subsample (floats, ``K * K * n_subsample``) held in memory: 2^27 float64 = 1 GiB.
_SUBSAMPLE_ELEMENTS = 1 << 27
#: Contiguous runs per state in the subsample (few seeks in a C-ordered file, yet spread
#: over the state's samples so that a correlated time series is not represented by one
#: stretch only).
_SUBSAMPLE_RUNS = 4
#: Input size (``K * N``) from which the progress bar is shown by default.
_PROGRESS_ELEMENTS = 10**9
#: Armijo sufficient-decrease constant (Nocedal & Wright, Alg. 3.1 use 1e-4).
_ARMIJO = 1e-4
#: Step-ratio above which the subsample preconditioner is replaced by the exact Hessian.
_SLOW_RATIO = 0.5


def is_out_of_core_input(u_kn) -> bool:
    """True for the inputs :func:`mbar` hands to :func:`mbar_out_of_core`: an ``np.memmap``,
    a path to a ``.npy`` file, or a callable yielding column blocks."""
    if isinstance(u_kn, np.memmap):
        return True
    if isinstance(u_kn, (str, os.PathLike)):
        return os.fspath(u_kn).endswith(".npy")
    return callable(u_kn) and not hasattr(u_kn, "shape")


# ----------------------------------------------------------------------------------
# Sources: where the column blocks come from
# ----------------------------------------------------------------------------------


class _Source:
    """A ``(K, N)`` matrix read in column blocks."""

    n_states: int
    n_samples: int | None  # None for a callable until the first pass
    dtype: np.dtype

    def blocks(self, width: int) -> Iterator[tuple[int, np.ndarray]]:
        raise NotImplementedError

    def gather(self, runs: list[tuple[int, int]]) -> np.ndarray:
        """Columns ``[a, b)`` of every (sorted, disjoint) run, concatenated:
        ``(K, sum(b - a))``; one pass over the blocks."""
        out = None
        pos, j = 0, 0
        for start, block in self.blocks(_block_width(self.n_states, self.n_samples)):
            if out is None:
                out = np.empty((block.shape[0], sum(b - a for a, b in runs)), block.dtype)
            stop = start + block.shape[1]
            while j < len(runs) and runs[j][0] < stop:
                a, b = runs[j]
                lo, hi = max(a, start), min(b, stop)
                if hi > lo:
                    out[:, pos + lo - a : pos + hi - a] = block[:, lo - start : hi - start]
                if b > stop:
                    break  # the run continues in the next block
                pos += b - a
                j += 1
        return out


class _NpyFile(_Source):
    """A ``.npy`` file (or the memmap ``np.load`` returned for it), read with ``pread``."""

    def __init__(self, path, shape, dtype, offset, fortran):
        self.path = os.fspath(path)
        self.n_states, self.n_samples = (int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.offset = int(offset)
        self.fortran = bool(fortran)

    @classmethod
    def from_path(cls, path):
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"u_kn file {path!r} does not exist")
        try:
            mapped = np.load(path, mmap_mode="r")  # header only: no page is touched
        except ValueError as err:
            raise ValueError(f"u_kn file {path!r} is not a .npy array: {err}") from err
        if not isinstance(mapped, np.memmap):
            raise ValueError(f"u_kn file {path!r} is not a .npy array")
        _check_shape_dtype(mapped.shape, mapped.dtype, f"u_kn file {path!r}")
        fortran = mapped.flags.f_contiguous and not mapped.flags.c_contiguous
        return cls(path, mapped.shape, mapped.dtype, mapped.offset, fortran)

    def _pread(self, fd, buf: memoryview, pos: int):
        while len(buf):
            n = os.preadv(fd, [buf], pos)
            if n == 0:
                raise ValueError(f"u_kn file {self.path!r} is shorter than its header says")
            buf, pos = buf[n:], pos + n

    def _read(self, fd, a: int, b: int) -> np.ndarray:
        k, n, item = self.n_states, self.n_samples, self.dtype.itemsize
        if self.fortran:  # columns contiguous: one read
            out = np.empty((b - a, k), self.dtype)
            self._pread(fd, memoryview(out).cast("B"), self.offset + a * k * item)
            return out.T
        out = np.empty((k, b - a), self.dtype)
        for row in range(k):
            self._pread(fd, memoryview(out[row]).cast("B"), self.offset + (row * n + a) * item)
        return out

    def blocks(self, width):
        fd = os.open(self.path, os.O_RDONLY)
        try:
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            for a in range(0, self.n_samples, width):
                yield a, self._read(fd, a, min(a + width, self.n_samples))
        finally:
            os.close(fd)

    def gather(self, runs):
        fd = os.open(self.path, os.O_RDONLY)
        try:
            if hasattr(os, "posix_fadvise"):  # no read-ahead for scattered reads
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
            return np.concatenate([self._read(fd, a, b) for a, b in runs], axis=1)
        finally:
            os.close(fd)


class _Array(_Source):
    """Any other array-like with ``shape``/``dtype`` (a memmap slice): read by slicing."""

    def __init__(self, array):
        _check_shape_dtype(array.shape, array.dtype, "u_kn")
        self.array = array
        self.n_states, self.n_samples = array.shape
        self.dtype = np.dtype(array.dtype)

    def blocks(self, width):
        for a in range(0, self.n_samples, width):
            yield a, np.array(self.array[:, a : a + width])

    def gather(self, runs):
        return np.concatenate([np.array(self.array[:, a:b]) for a, b in runs], axis=1)


class _Callable(_Source):
    """``u_kn_fn()`` returns an iterable of ``(K, B_i)`` blocks; called once per pass."""

    def __init__(self, fn, n_states=None, n_samples=None):
        self.fn = fn
        self.n_states = n_states
        self.n_samples = n_samples
        self.dtype = None

    def blocks(self, width):  # the callable decides the widths
        del width
        blocks = self.fn()
        if not isinstance(blocks, Iterable):
            raise TypeError(
                "u_kn callable must return an iterable of (K, B) column blocks, "
                f"got {type(blocks).__name__}"
            )
        start = 0
        for i, block in enumerate(blocks):
            block = np.asarray(block)
            where = f"u_kn block {i} (columns {start}..)"
            if block.ndim != 2:
                raise ValueError(f"{where} must be 2-D (K, B), got shape {block.shape}")
            if self.n_states is None:
                self.n_states = block.shape[0]
            if block.shape[0] != self.n_states:
                raise ValueError(
                    f"{where} has {block.shape[0]} rows, the first block had {self.n_states}"
                )
            if not np.issubdtype(block.dtype, np.floating):
                block = block.astype(np.float64)
            self.dtype = block.dtype if self.dtype is None else self.dtype
            if self.n_samples is not None and start + block.shape[1] > self.n_samples:
                raise ValueError(
                    f"{where}: the blocks yield more than the N = {self.n_samples} columns "
                    "that N_k sums to"
                )
            yield start, block
            start += block.shape[1]
        if start == 0:
            raise ValueError("u_kn callable yielded no blocks")
        if self.n_samples is not None and start != self.n_samples:
            raise ValueError(
                f"u_kn blocks have {start} columns in all but N_k sums to {self.n_samples}"
            )

    def first_block_rows(self) -> int:
        for _, block in self.blocks(0):
            return block.shape[0]
        raise AssertionError  # blocks() raised already


def _check_shape_dtype(shape, dtype, name):
    if len(shape) != 2:
        raise ValueError(f"{name} must be 2-D (K states, N samples), got shape {tuple(shape)}")
    if shape[0] == 0 or shape[1] == 0:
        raise ValueError(f"{name} is empty, shape {tuple(shape)}")
    if not np.issubdtype(np.dtype(dtype), np.floating):
        raise ValueError(f"{name} must hold floating-point reduced potentials, got {dtype}")


def _make_source(u_kn, n_states_hint=None) -> _Source:
    if isinstance(u_kn, (str, os.PathLike)):
        return _NpyFile.from_path(u_kn)
    if isinstance(u_kn, np.memmap):
        base = u_kn.base
        # The whole mapping of a file whose bytes are what the array shows (not a view,
        # not copy-on-write): read the file itself.
        whole = isinstance(base, mmap.mmap) and u_kn.filename is not None and u_kn.mode != "c"
        if whole and (u_kn.flags.c_contiguous or u_kn.flags.f_contiguous) and u_kn.ndim == 2:
            _check_shape_dtype(u_kn.shape, u_kn.dtype, "u_kn")
            fortran = u_kn.flags.f_contiguous and not u_kn.flags.c_contiguous
            return _NpyFile(u_kn.filename, u_kn.shape, u_kn.dtype, u_kn.offset, fortran)
        return _Array(u_kn)
    if callable(u_kn):
        return _Callable(u_kn, n_states_hint)
    return _Array(u_kn)


def _block_width(n_states: int, n_samples: int | None, block_elements: int = _BLOCK_ELEMENTS):
    """Columns per block: ``block_elements / K`` rounded to a multiple of 256, at most the
    next power of two above N (small problems get one block and few compiled shapes)."""
    width = max(256, (block_elements // max(n_states, 1)) // 256 * 256)
    if n_samples is not None:
        width = min(width, 1 << max(8, math.ceil(math.log2(n_samples))))
    return width


# ----------------------------------------------------------------------------------
# The block kernel (NumPy: the blocks arrive from disk as NumPy arrays, column
# reductions are row-vector adds and the Gram matrix is one BLAS call; XLA's CPU column
# reductions were the slower choice here)
# ----------------------------------------------------------------------------------


def _block_stats(u, weight, own, f, c, unsampled, gram):
    """Sums over the columns of one ``(K, B)`` float64 block at free energies ``f``.

    ``weight`` ``(B,)``: 1 (full data) or ``N_k / N_k^sub`` (subsample); ``own`` ``(B,)``:
    the state each sample came from; ``c = f + log N_k`` (``-inf`` on unsampled rows).
    The log-sum-exp is shifted per sample by its own state's term (a gather, not a
    reduction; ``e_kn <= 1`` then only fails when another state outweighs the own one by
    ``e^709``, and the block is redone with the per-sample maximum).

    Returns ``obj = sum_n w_n log D_n`` with ``D_n = sum_k N_k e^{f_k - u_kn}``,
    ``colsum_k = sum_n w_n N_k W_nk``, for the unsampled rows the max and shifted sum of
    ``log w_n - u_kn - log D_n``, ``log D`` ``(B,)``, and ``sum_n w_n W_nk W_nl`` (gram).
    """
    cols = np.arange(u.shape[1])
    for use_max in (False, True):
        e = np.subtract(c[:, None], u)  # a_kn = log N_k + f_k - u_kn
        m = np.max(e[c > -np.inf], axis=0) if use_max else e[own, cols]
        e -= m[None, :]
        with np.errstate(over="ignore"):
            np.exp(e, out=e)
        s = np.add.reduce(e, axis=0)  # row adds: no BLAS call (threads) for a reduction
        if np.all(np.isfinite(s)):
            break
    log_d = m + np.log(s)
    colsum = e @ (weight / s)  # sum_n w_n N_k W_nk (N_k W_nk = e_kn / s_n): one gemv
    out = {"obj": float(weight @ log_d), "colsum": colsum, "log_d": log_d}
    if unsampled:
        t = np.log(weight)[None, :] - u[list(unsampled)] - log_d[None, :]
        mx = np.max(t, axis=1)
        out["lse_max"] = mx
        out["lse_sum"] = np.exp(t - mx[:, None]).sum(axis=1)
    if gram:
        n_k = np.exp(c - f)
        scale = np.where(n_k > 0, 1.0 / np.where(n_k > 0, n_k, 1.0), 0.0)
        e *= (np.sqrt(weight) / s)[None, :]
        e *= scale[:, None]  # sqrt(w_n) W_nk (unsampled rows: 0)
        if unsampled:
            # Unsampled rows with the caller's f (self-consistent from the previous pass,
            # so that each W_nk <= e^{|change|}); rescaled exactly afterwards.
            idx = list(unsampled)
            with np.errstate(over="ignore"):  # inf only while f is far off (masked then)
                e[idx] = np.exp(f[idx][:, None] - u[idx] - log_d[None, :]) * np.sqrt(weight)
        out["gram"] = _syrk(e)
    return out


def _syrk(e):
    """``e @ e.T`` by BLAS ``dsyrk`` (half the flops of a general product)."""
    from scipy.linalg.blas import dsyrk

    g = dsyrk(1.0, e.T, trans=1)  # e.T is Fortran-ordered: no copy; upper triangle
    return np.triu(g) + np.triu(g, 1).T


def _weights_cross(u, f, log_d, w_extra):
    """``w_extra @ W^T`` for one block: ``W_nk = exp(f_k - u_kn - log D_n)``."""
    return w_extra @ np.exp(f[:, None] - u - log_d[None, :]).T


def _prefetch(iterator, depth=2):
    """Run ``iterator`` in a thread, ``depth`` items ahead (reads overlap the compute)."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def work():
        try:
            for item in iterator:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as err:  # re-raised in the consumer
            q.put(err)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get(timeout=0.1)
            except queue.Empty:
                pass


_factor_jit = jax.jit(_factor)
_newton_direction_jit = jax.jit(_newton_direction)
_theta_jit = jax.jit(_theta_svd_ew)
_overlap_jit = jax.jit(_overlap_eigenvalues)


class _PassResult:
    """Host (float64) sums of one pass."""

    def __init__(self, n_states, unsampled, gram):
        self.obj = 0.0
        self.colsum = np.zeros(n_states)
        self.lse_max = np.full(len(unsampled), -np.inf)
        self.lse_sum = np.zeros(len(unsampled))
        self.gram = np.zeros((n_states, n_states)) if gram else None
        self.log_d: list[np.ndarray] | None = None
        self.n_columns = 0

    def add(self, out, n_valid, keep_log_d):
        self.obj += float(out["obj"])
        self.colsum += np.asarray(out["colsum"], np.float64)
        if "lse_max" in out:
            c, s = np.asarray(out["lse_max"], np.float64), np.asarray(out["lse_sum"], np.float64)
            new = np.maximum(self.lse_max, c)
            with np.errstate(invalid="ignore"):
                self.lse_sum = np.where(
                    np.isfinite(new),
                    self.lse_sum * np.exp(self.lse_max - new) + s * np.exp(c - new),
                    0.0,
                )
            self.lse_max = new
        if self.gram is not None:
            self.gram += np.asarray(out["gram"], np.float64)
        if keep_log_d:
            self.log_d.append(np.asarray(out["log_d"], np.float64)[:n_valid])
        self.n_columns += n_valid


class _Engine:
    """Runs passes of :func:`_block_stats` over a source (or an in-memory subsample)."""

    def __init__(self, source, n_k_np, block_width, progress):
        self.source = source
        self.n_k_np = n_k_np
        self.width = block_width
        self.progress = progress
        sampled = n_k_np > 0
        with np.errstate(divide="ignore"):
            self.log_n_k = np.where(sampled, np.log(np.where(sampled, n_k_np, 1)), -np.inf)
        self.bounds = np.cumsum(n_k_np)
        self.unsampled = tuple(int(k) for k in np.flatnonzero(~sampled))
        self.n_passes = 0
        self.pass_seconds: list[float] = []

    def own(self, start, stop):
        """The state each column in ``[start, stop)`` was drawn from."""
        return np.searchsorted(self.bounds, np.arange(start, stop), side="right")

    def run(self, f, *, gram=False, keep_log_d=False, blocks=None, label="pass"):
        """One pass at ``f``; ``blocks`` (an iterable of ``(start, block, weight, own)``)
        defaults to the full data with unit weights (counted in ``n_passes``)."""
        full = blocks is None
        if full:
            blocks = _prefetch(self.source.blocks(self.width))
        n_states = self.n_k_np.shape[0]
        res = _PassResult(n_states, self.unsampled, gram)
        if keep_log_d:
            res.log_d = []
        f = np.asarray(f, np.float64)
        c = f + self.log_n_k
        t0 = time.perf_counter()
        bar = None
        if full and self.progress and self.source.n_samples is not None:
            from tqdm.auto import tqdm

            total = -(-self.source.n_samples // self.width)
            bar = tqdm(total=total, desc=f"MBAR {label}", unit="block", mininterval=5.0)
        try:
            for i, item in enumerate(blocks):
                if full:
                    start, block = item
                    weight = np.ones(block.shape[1])
                    own = self.own(start, start + block.shape[1])
                else:
                    start, block, weight, own = item
                if block.shape[0] != n_states:
                    raise ValueError(
                        f"u_kn block {i} has {block.shape[0]} rows but N_k has {n_states} states"
                    )
                block = np.asarray(block, np.float64)
                total = np.sum(block)  # one cheap reduction; the exact test only if needed
                if not np.isfinite(total) and not np.all(np.isfinite(block)):
                    raise ValueError(
                        f"u_kn block {i} (columns {start}..{start + block.shape[1] - 1}) "
                        "contains NaN or inf values; reduced potentials must be finite"
                    )
                out = _block_stats(block, weight, own, f, c, self.unsampled, gram)
                res.add(out, block.shape[1], keep_log_d)
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        if full:
            self.n_passes += 1
            self.pass_seconds.append(time.perf_counter() - t0)
            if res.n_columns != self.source.n_samples:
                raise ValueError(
                    f"u_kn has {res.n_columns} columns but N_k sums to {self.source.n_samples}"
                )
        return res


# ----------------------------------------------------------------------------------
# The solver
# ----------------------------------------------------------------------------------


def _subsample_runs(n_k_np, m):
    """Per state up to ``m`` samples in up to :data:`_SUBSAMPLE_RUNS` contiguous runs spread
    evenly over its samples; returns the runs and the per-column weights ``N_k / m_k``."""
    starts = np.concatenate([[0], np.cumsum(n_k_np)[:-1]])
    runs, weights = [], []
    for start, count in zip(starts, n_k_np, strict=True):
        if count == 0:
            continue
        take = min(int(count), m)
        n_runs = min(_SUBSAMPLE_RUNS, take)
        lengths = np.full(n_runs, take // n_runs)
        lengths[: take % n_runs] += 1
        for j, length in enumerate(lengths):
            a = int(start + (j * count) // n_runs)
            runs.append((a, a + int(length)))
        weights.append(np.full(take, count / take))
    return runs, np.concatenate(weights)


class _Point:
    """Objective, gradient (and Hessian) at ``f`` from one pass."""

    def __init__(self, f, res, n_k_np, unsampled):
        self.f = np.array(f, np.float64)
        sampled = n_k_np > 0
        self.obj = res.obj - float(n_k_np[sampled] @ self.f[sampled])
        self.grad = np.where(sampled, res.colsum - n_k_np, 0.0)
        self.f_unsampled = -(res.lse_max + np.log(res.lse_sum)) if unsampled else None
        self.res = res
        scale = np.abs(res.obj) + np.abs(n_k_np @ np.where(sampled, self.f, 0.0)) + 1.0
        self.slack = 64 * np.finfo(np.float64).eps * scale

    def hessian(self, n_k_np):
        """``diag(N o sum_n W) - N W^T W N`` on the sampled states (zero elsewhere)."""
        sampled = n_k_np > 0
        g = np.where(np.outer(sampled, sampled), self.res.gram, 0.0)
        return np.diag(np.where(sampled, self.res.colsum, 0.0)) - n_k_np[:, None] * g * n_k_np


def _direction(pre, grad, sampled, ref):
    h_reg, chol, ok = pre
    d = -np.asarray(_newton_direction_jit(h_reg, chol, ok, jnp.asarray(grad, h_reg.dtype)))
    return np.where(sampled, d - d[ref], 0.0)


def _with_unsampled(f, point, unsampled):
    f = np.array(f, np.float64)
    if unsampled:
        f[list(unsampled)] = point.f_unsampled
    return f


def mbar_out_of_core(
    u_kn,
    N_k,  # noqa: N803  (pymbar's name)
    *,
    f_k_init=None,
    tol: float = 1e-7,
    max_passes: int = 50,
    n_subsample: int = 1024,
    block_elements: int = _BLOCK_ELEMENTS,
    progress: bool | None = None,
) -> MBAR:
    r"""MBAR (Shirts & Chodera 2008) for ``u_kn`` that does not fit in memory.

    .. math:: f_i = -\log \sum_{n=1}^{N} \frac{e^{-u_i(x_n)}}{\sum_k N_k e^{f_k - u_k(x_n)}}

    The same estimator, covariance (App. D, pymbar's ``svd-ew``) and overlap check as
    :func:`thermo.estimators.mbar`, which calls this function for the inputs below; the
    data are streamed in column blocks through subsample Newton, a few preconditioned
    full passes and one Gram pass (see :mod:`thermo.estimators._mbar_stream`).

    Args:
        u_kn: ``(K, N)`` reduced potentials, samples ordered by state, as one of: a path
            to a ``.npy`` file; an ``np.memmap`` (``np.load(path, mmap_mode="r")``); a
            callable ``u_kn_fn()`` returning an iterable of ``(K, B_i)`` column blocks in
            order (called once per pass, and once more to read K from its first block,
            so it must restart each time).
        N_k: ``(K,)`` samples drawn from each state (non-negative, summing to N).
        f_k_init: optional initial guess ``(K,)``.
        tol: the preconditioned passes stop when the predicted Newton step is below
            ``tol`` kT (relative to ``max|f|`` when that exceeds 1); the closing exact
            Newton step then leaves an error of order ``tol**2``.
        max_passes: most full passes over the data before giving up.
        n_subsample: largest number of samples per state in the in-memory subsample
            (also capped at ``N_k / 4`` and at :data:`_SUBSAMPLE_ELEMENTS` floats).
        block_elements: floats per column block (``K * B``).
        progress: tqdm bar per pass (default: when ``K * N >= 1e9``).

    Returns:
        An :class:`~thermo.estimators.MBAR` (``f_k``, ``df_k``, ``theta``, overlap
        diagnostics) with ``n_passes`` (full passes) and ``pass_seconds``.
        ``log_denominator_n`` (``(N,)``) is computed by one more pass on first access;
        ``expectations``, ``perturbed_free_energies`` and ``pmf`` need their ``u_ln`` /
        ``u_n`` given explicitly (the defaults would load rows of ``u_kn``), and stream
        the data for the cross terms of the covariance.

    Raises:
        ValueError: wrong shapes; ``N_k`` negative or not summing to N; a block with
            NaN/inf (named by index and columns); states that do not overlap.
        RuntimeError: when the passes do not converge within ``max_passes``.
    """
    source = _make_source(u_kn)
    if isinstance(source, _Callable):
        n_k_arr = np.asarray(N_k)
        if n_k_arr.ndim != 1:
            raise ValueError(f"N_k must be a 1-D array (K,), got shape {n_k_arr.shape}")
        source.n_states = source.first_block_rows()
        n_k_np = check_n_k(N_k, source.n_states, int(np.sum(n_k_arr)))
        source.n_samples = int(n_k_np.sum())
    else:
        n_k_np = check_n_k(N_k, source.n_states, source.n_samples)
    n_states, n_samples = source.n_states, source.n_samples
    dtype = jnp.asarray(np.zeros(1, source.dtype)).dtype
    if progress is None:
        progress = n_states * n_samples >= _PROGRESS_ELEMENTS
    width = _block_width(n_states, n_samples, block_elements)
    engine = _Engine(source, n_k_np, width, progress)
    sampled = n_k_np > 0
    ref = int(np.flatnonzero(sampled)[0])
    unsampled = engine.unsampled
    n_k_f = n_k_np.astype(np.float64)
    f = np.zeros(n_states) if f_k_init is None else np.asarray(f_k_init, np.float64)
    if f.shape != (n_states,):
        raise ValueError(f"f_k_init must have shape ({n_states},), got {f.shape}")
    if not np.all(np.isfinite(f)):
        raise ValueError("f_k_init contains NaN or inf values")
    n_iter = 0

    # -- 1. subsample Newton -----------------------------------------------------------
    m = int(min(n_subsample, max(8, _SUBSAMPLE_ELEMENTS // max(n_states * n_states, 1))))
    m = int(max(1, min(m, max(1, int(n_k_np[sampled].min()) // 4), n_subsample)))
    runs, omega = _subsample_runs(n_k_np, m)
    u_sub = source.gather(runs)
    if not np.all(np.isfinite(u_sub)):
        bad = np.flatnonzero(~np.all(np.isfinite(u_sub), axis=0))[0]
        col = _run_column(runs, int(bad))
        raise ValueError(
            f"u_kn contains NaN or inf values (column {col}, a sample of state "
            f"{int(engine.own(col, col + 1)[0])}); reduced potentials must be finite"
        )

    own_sub = np.concatenate([engine.own(a, b) for a, b in runs])

    def sub_blocks():
        for a in range(0, u_sub.shape[1], width):
            sl = slice(a, a + width)
            yield a, u_sub[:, sl], omega[sl], own_sub[sl]

    pre = None
    if int(sampled.sum()) > 1:
        point = _Point(f, engine.run(f, gram=True, blocks=sub_blocks()), n_k_f, unsampled)
        for _ in range(200):
            f = _with_unsampled(f, point, unsampled)
            pre = _factor_jit(jnp.asarray(point.hessian(n_k_f)), jnp.asarray(n_k_f))
            delta = _direction(pre, point.grad, sampled, ref)
            point, t = _line_search(
                lambda x: _Point(x, engine.run(x, blocks=sub_blocks()), n_k_f, unsampled),
                point, delta, n_k_f, unsampled,
            )  # fmt: skip
            n_iter += 1
            step = t * np.max(np.abs(delta))
            if step <= 1e-8 * max(1.0, np.max(np.abs(point.f))) or t == 0.0:
                break
            point = _Point(point.f, engine.run(point.f, gram=True, blocks=sub_blocks()),
                           n_k_f, unsampled)  # fmt: skip
        f = _with_unsampled(point.f, point, unsampled)
        _log.info("subsample Newton: %d columns, %d iterations", omega.shape[0], n_iter)
    u_sub = None  # free the subsample before the full passes

    # -- 2. preconditioned full passes ------------------------------------------------
    def full(x, gram=False, label="pass"):
        return _Point(x, engine.run(x, gram=gram, label=label), n_k_f, unsampled)

    def limit(x):
        return tol * max(1.0, float(np.max(np.abs(x))))

    if pre is None:  # one sampled state: nothing to solve, the rest are perturbations
        if unsampled:
            f = _with_unsampled(f, full(f, label="pass 1"), unsampled)
        point = None
    else:
        point = full(f, label="pass 1")
        delta = _direction(pre, point.grad, sampled, ref)
        prev = np.inf
        while True:
            size = float(np.max(np.abs(delta)))
            _log.info("pass %d: predicted step %.3g kT", engine.n_passes, size)
            if size <= limit(point.f):
                break
            _check_passes(engine, max_passes, size, tol)
            if size > _SLOW_RATIO * prev:  # slow: exact Hessian from one Gram pass
                point = full(point.f, gram=True, label=f"pass {engine.n_passes + 1} (Gram)")
                pre = _factor_jit(jnp.asarray(point.hessian(n_k_f)), jnp.asarray(n_k_f))
                delta = _direction(pre, point.grad, sampled, ref)
                prev = np.inf
                continue
            prev = size
            point, t = _line_search(
                lambda x, p=point: full(_with_unsampled(x, p, unsampled),
                                        label=f"pass {engine.n_passes + 1}"),
                point, delta, n_k_f, unsampled, max_halvings=8,
            )  # fmt: skip
            n_iter += 1
            if t == 0.0:
                break  # no decrease beyond round-off: at the minimum to float precision
            delta = _direction(pre, point.grad, sampled, ref)
        f = _with_unsampled(point.f, point, unsampled)

    # -- 3. Gram pass: covariance and one exact Newton step ---------------------------
    while True:
        f_used = f.copy()
        final = full(f_used, gram=True, label=f"pass {engine.n_passes + 1} (Gram)")
        f = _with_unsampled(f_used, final, unsampled)
        if point is None:
            delta_final = np.zeros(n_states)
            break
        pre = _factor_jit(jnp.asarray(final.hessian(n_k_f)), jnp.asarray(n_k_f))
        delta_final = _direction(pre, final.grad, sampled, ref)
        n_iter += 1
        size = float(np.max(np.abs(delta_final)))
        _log.info("pass %d (Gram): exact Newton step %.3g kT", engine.n_passes, size)
        if size <= 10 * limit(f) or not np.isfinite(size):
            break  # the last step leaves an error of order size**2
        _check_passes(engine, max_passes, size, tol)
        f = f + delta_final  # the preconditioner was poor: exact Newton once more

    wtw = final.res.gram
    if unsampled:  # rows computed with the f passed in; rescale to the self-consistent f
        d = np.where(sampled, 1.0, np.exp(f - f_used))
        wtw = d[:, None] * wtw * d[None, :]
    wtw_dev = jnp.asarray(wtw, dtype)
    n_k_dev = jnp.asarray(n_k_f, dtype)
    theta = _theta_jit(wtw_dev, n_k_dev)
    eig = np.asarray(_overlap_jit(wtw_dev, n_k_dev))
    if int(sampled.sum()) > 1 and 1.0 - eig[1] < _MIN_OVERLAP_GAP:
        idx = np.flatnonzero(sampled)
        _raise_disconnected((wtw * n_k_f[None, :])[np.ix_(idx, idx)], idx)
    gnorm = float(np.max(np.abs(final.grad) / np.maximum(n_k_f, 1.0)))
    if point is not None and not (np.all(np.isfinite(delta_final)) and gnorm < 1e-4):
        raise RuntimeError(
            f"MBAR (out of core) did not converge: max relative gradient {gnorm:.3g} after "
            f"{engine.n_passes} passes"
        )
    f_out = f + delta_final
    if unsampled:  # first order in the last step: df_j = sum_k N_k (W^T W)_jk df_k
        idx = list(unsampled)
        f_out[idx] = f[idx] + wtw[idx] @ (n_k_f * delta_final)
    f_out = f_out - f_out[0]
    result = _OutOfCoreMBAR(
        source, n_k_np, jnp.asarray(f_out, dtype), theta, wtw_dev, jnp.asarray(eig), n_iter,
        engine,
    )  # fmt: skip
    return result


def _check_passes(engine, max_passes, size, tol):
    if engine.n_passes >= max_passes:
        raise RuntimeError(
            f"MBAR (out of core) did not converge: predicted step {size:.3g} kT after "
            f"{engine.n_passes} passes (tol {tol:g})"
        )


def _run_column(runs, j):
    for a, b in runs:
        if j < b - a:
            return a + j
        j -= b - a
    return -1


def _line_search(evaluate, point, delta, n_k_np, unsampled, max_halvings=40):
    """Armijo backtracking from ``point`` along ``delta``: ``(accepted point, t)``; ``t = 0``
    (and the old point) when no step decreases ``F`` beyond round-off."""
    slope = float(point.grad @ delta)
    t = 1.0
    for _ in range(max_halvings):
        trial = evaluate(point.f + t * delta)
        if trial.obj <= point.obj + _ARMIJO * t * slope + point.slack:
            return trial, t
        t *= 0.5
    return point, 0.0


class _OutOfCoreMBAR(MBAR):
    """:class:`MBAR` whose ``u_kn`` stays on disk: weights are recomputed by streaming."""

    def __init__(self, source, n_k, f_k, theta, wtw, eig, n_iter, engine):
        self._log_d = None
        super().__init__(source, n_k, f_k, theta, wtw, eig, None, n_iter)
        self._log_d = None  # the base class stored a placeholder for the None above
        self._engine = engine
        self.n_passes = engine.n_passes
        self.pass_seconds = list(engine.pass_seconds)

    @property
    def log_denominator_n(self):
        """``(N,)`` ``log sum_k N_k exp(f_k - u_kn)`` at ``f_k``: one pass on first use."""
        if self._log_d is None:
            res = self._engine.run(np.asarray(self.f_k, np.float64), keep_log_d=True,
                                   label="log denominators")  # fmt: skip
            self._log_d = jnp.asarray(np.concatenate(res.log_d), self.f_k.dtype)
        return self._log_d

    @log_denominator_n.setter
    def log_denominator_n(self, value):
        self._log_d = value

    def _u_kn_device(self):
        raise ValueError(
            "this MBAR was solved out of core: u_kn is not loaded into memory; pass the "
            "states explicitly (u_ln / u_n, shape (L, N)) to expectations / pmf"
        )

    def _augmented_theta(self, log_w_extra):
        """As :meth:`MBAR._augmented_theta`, the cross Gram ``W_extra^T W`` streamed."""
        w_extra = np.exp(np.asarray(log_w_extra, np.float64))
        f = np.asarray(self.f_k, np.float64)
        log_d = np.asarray(self.log_denominator_n, np.float64)
        cross = np.zeros((w_extra.shape[0], f.shape[0]))
        for a, block in _prefetch(self._engine.source.blocks(self._engine.width)):
            b = a + block.shape[1]
            cross += _weights_cross(np.asarray(block, np.float64), f, log_d[a:b], w_extra[:, a:b])
        dtype = self.f_k.dtype
        wtw = np.asarray(self._wtw, np.float64)
        gram = np.block([[wtw, cross.T], [cross, w_extra @ w_extra.T]])
        n_aug = np.concatenate([np.asarray(self.n_k, np.float64), np.zeros(w_extra.shape[0])])
        return _theta_jit(jnp.asarray(gram, dtype), jnp.asarray(n_aug, dtype))
