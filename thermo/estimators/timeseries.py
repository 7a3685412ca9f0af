r"""Correlated time series: statistical inefficiency, equilibration detection, subsampling.

Follows Chodera, Swope, Pitera, Seok & Dill 2007 (JCTC 3, 26), as pymbar's
``timeseries`` module does. For series :math:`A_n, B_n` of length :math:`N` with
fluctuations :math:`\delta A_n = A_n - \bar A`, the normalised (cross-)correlation
function and statistical inefficiency are

.. math:: C_t = \frac{\sum_{n=0}^{N-t-1} (\delta A_n \delta B_{n+t} + \delta B_n \delta A_{n+t})}
                   {2 (N-t)\, \overline{\delta A\,\delta B}}, \qquad
          g = 1 + 2\sum_{t=1}^{t_c - 1} C_t \Big(1 - \frac{t}{N}\Big),

where the sum stops at the first lag :math:`t_c > t_\mathrm{min}` (``mintime = 3``) with
:math:`C_{t_c} \le 0`, and :math:`g \ge 1`. The lagged sums are computed for all lags at
once with one zero-padded FFT (:math:`O(N\log N)` instead of pymbar's :math:`O(N\,t_c)`
loop); the truncation rule is pymbar's exactly, so ``g`` agrees with pymbar to round-off.
``fast=True`` evaluates only lags :math:`t = 1, 2, 4, 7, 11, \dots` (increments growing by
one), each counted ``increment`` times, as in Chodera et al.'s fast method.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, Float

from .._checks import as_float_array, check_count, is_traced

__all__ = [
    "Equilibration",
    "detect_equilibration",
    "integrated_autocorrelation_time",
    "statistical_inefficiency",
    "subsample_correlated_data",
]


def _lagged_products(da, db, n_fft):
    """``sum_n da[n] db[n+t]`` for every lag t >= 0 by FFT (zero padded, no wrap-around)."""
    fa = jnp.fft.rfft(da, n=n_fft)
    fb = jnp.fft.rfft(db, n=n_fft)
    return jnp.fft.irfft(jnp.conj(fa) * fb, n=n_fft)


def _g_from_series(da, db, length, mintime, fast):
    """Statistical inefficiency of the first ``length`` entries of the (mean-removed,
    zero-padded) series ``da, db``; traced ``length`` so one compile serves every suffix."""
    n_max = da.shape[0]
    n_fft = 2 * n_max
    sigma2 = jnp.sum(da * db) / jnp.asarray(length, dtype=da.dtype)
    ab = _lagged_products(da, db, n_fft)[:n_max]
    ba = _lagged_products(db, da, n_fft)[:n_max]
    t = jnp.arange(n_max)
    denom = 2.0 * (length - t).astype(sigma2.dtype) * sigma2
    c = (ab + ba) / jnp.where(t < length, denom, 1.0)
    if fast:
        # Evaluated lags 1, 2, 4, 7, ...: t_j = 1 + j(j+1)/2 with increment j + 1.
        j = jnp.arange(n_max)
        lags = 1 + j * (j + 1) // 2
        incr = j + 1
    else:
        lags = jnp.arange(1, n_max + 1)
        incr = jnp.ones(n_max, dtype=lags.dtype)
    valid = lags < length - 1
    c_l = jnp.where(valid, c[jnp.minimum(lags, n_max - 1)], 0.0)
    stop = valid & (c_l <= 0.0) & (lags > mintime)
    # Terms before the first stopping lag (and within the series) contribute.
    before_stop = jnp.cumsum(stop) == 0
    keep = valid & before_stop
    g = 1.0 + jnp.sum(
        jnp.where(keep, 2.0 * c_l * (1.0 - lags / length) * incr.astype(c_l.dtype), 0.0)
    )
    return jnp.maximum(g, 1.0), sigma2


@functools.partial(jax.jit, static_argnames=("mintime", "fast"))
def _statistical_inefficiency(a, b, mintime, fast):
    da = a - jnp.mean(a)
    db = b - jnp.mean(b)
    return _g_from_series(da, db, a.shape[0], mintime, fast)


def statistical_inefficiency(
    A_n: Float[Array, " n"],  # noqa: N803  (pymbar's names)
    B_n: Float[Array, " n"] | None = None,  # noqa: N803
    *,
    fast: bool = False,
    mintime: int = 3,
) -> Float[Array, ""]:
    r"""Statistical inefficiency :math:`g = 1 + 2\tau` of a (cross-correlated) time series
    (Chodera et al. 2007, JCTC 3, 26; see the module docstring for the formula).

    ``n / g`` is the number of effectively uncorrelated samples; pass ``g`` as
    ``statistical_inefficiency=`` to the estimators to correct their standard errors.

    Args:
        A_n: ``(n,)`` time series, ``n >= 2``.
        B_n: optional ``(n,)`` second series for the cross-correlation (default ``A_n``).
        fast: evaluate only lags 1, 2, 4, 7, ... (Chodera et al.'s fast method).
        mintime: minimum lag before the sum may stop at a non-positive correlation.

    Returns:
        Scalar ``g >= 1``.

    Raises:
        ValueError: on non-1-D, too short, non-finite, mismatched or constant series.
    """
    a = _check_series(A_n, "A_n")
    b = a if B_n is None else _check_series(B_n, "B_n")
    if a.shape != b.shape:
        raise ValueError(f"A_n and B_n must have the same shape, got {a.shape} and {b.shape}")
    mintime = check_count(mintime, "mintime", minimum=0)
    g, sigma2 = _statistical_inefficiency(a, b.astype(a.dtype), mintime, fast)
    if not is_traced(sigma2) and float(sigma2) == 0.0:
        raise ValueError(
            "sample covariance of A_n and B_n is zero (constant series): "
            "the statistical inefficiency is undefined"
        )
    return g


def integrated_autocorrelation_time(A_n, B_n=None, *, fast: bool = False, mintime: int = 3):  # noqa: N803
    r"""Integrated autocorrelation time :math:`\tau = (g - 1)/2` (Chodera et al. 2007)."""
    return 0.5 * (statistical_inefficiency(A_n, B_n, fast=fast, mintime=mintime) - 1.0)


def _check_series(x, name):
    arr = as_float_array(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D time series, got shape {arr.shape}")
    if arr.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 points, got {arr.shape[0]}")
    if not is_traced(arr) and not bool(jnp.all(jnp.isfinite(arr))):
        raise ValueError(f"{name} contains NaN or inf values")
    return arr


def subsample_correlated_data(
    A_t,
    g=None,
    *,
    fast: bool = False,
    conservative: bool = False,  # noqa: N803
) -> np.ndarray:
    r"""Indices of an effectively uncorrelated subsample (Chodera et al. 2007; pymbar
    ``subsample_correlated_data``).

    With ``conservative=False`` the indices are :math:`\mathrm{round}(m g)` for
    :math:`m = 0, 1, \dots` (duplicates dropped; about ``n / g`` samples); with
    ``conservative=True`` the stride is :math:`\lceil g\rceil`.

    Args:
        A_t: ``(n,)`` time series.
        g: its statistical inefficiency (computed when ``None``).
        fast: passed to :func:`statistical_inefficiency`.
        conservative: uniform stride ``ceil(g)``.

    Returns:
        NumPy ``int64`` array of indices (its length depends on the data, so this is not
        a jittable function).
    """
    a = _check_series(A_t, "A_t")
    n = a.shape[0]
    g = float(statistical_inefficiency(a, fast=fast)) if g is None else float(g)
    if not g >= 1.0:
        raise ValueError(f"g must be >= 1, got {g}")
    if conservative:
        return np.arange(0, n, int(np.ceil(g)), dtype=np.int64)
    idx = np.round(np.arange(int(np.ceil(n / g)) + 2) * g).astype(np.int64)
    idx = idx[idx < n]
    return np.unique(idx)


class Equilibration(NamedTuple):
    """Result of :func:`detect_equilibration`.

    Attributes:
        t0: first index of the equilibrated region.
        g: statistical inefficiency of ``A_t[t0:]``.
        n_eff: effective number of uncorrelated samples ``(n - t0 + 1) / g`` (pymbar's
            count).
    """

    t0: int
    g: float
    n_eff: float


@functools.partial(jax.jit, static_argnames=("fast", "batch_size"))
def _g_of_suffixes(a, starts, fast, batch_size):
    n = a.shape[0]
    t = jnp.arange(n)

    def one(t0):
        length = n - t0
        mask = t >= t0
        mean = jnp.sum(jnp.where(mask, a, 0.0)) / length.astype(a.dtype)
        # Shift the suffix to the front so that lags are measured within it.
        d = jnp.roll(jnp.where(mask, a - mean, 0.0), -t0)
        g, sigma2 = _g_from_series(d, d, length, 3, fast)
        # pymbar: a constant suffix (zero variance) gets g = n - t0 + 1.
        return jnp.where(sigma2 > 0, g, length.astype(g.dtype) + 1.0)

    return lax.map(one, starts, batch_size=batch_size)


def detect_equilibration(A_t, *, fast: bool = True, nskip: int = 1) -> Equilibration:  # noqa: N803
    r"""Automatic equilibration detection (Chodera 2016, JCTC 12, 1799; pymbar
    ``detect_equilibration``): the start :math:`t_0` maximising the number of effectively
    uncorrelated samples :math:`N_\mathrm{eff}(t_0) = (N - t_0 + 1)/g(t_0)` of the suffix
    ``A_t[t0:]``.

    All candidate suffixes are evaluated in a batched ``lax.map`` of the FFT estimator.

    Args:
        A_t: ``(n,)`` time series.
        fast: use the fast lag schedule for each ``g`` (pymbar's default here).
        nskip: evaluate every ``nskip``-th start only.

    Returns:
        :class:`Equilibration` ``(t0, g, n_eff)``; a constant series gives ``(0, 1, 1)``.
    """
    a = _check_series(A_t, "A_t")
    n = a.shape[0]
    if float(jnp.std(a)) == 0.0:
        return Equilibration(0, 1.0, 1.0)
    nskip = check_count(nskip, "nskip")
    starts = jnp.arange(0, n - 1, nskip)
    g = np.asarray(_g_of_suffixes(a, starts, fast, 64))
    # pymbar stores g and N_eff in float32 arrays; mirror that so argmax ties agree.
    g32 = g.astype(np.float32)
    n_eff = ((n - np.asarray(starts) + 1) / g32).astype(np.float32)
    i = int(np.argmax(n_eff))
    return Equilibration(int(starts[i]), float(g32[i]), float(n_eff[i]))
