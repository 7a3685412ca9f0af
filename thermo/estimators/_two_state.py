r"""Two-state free-energy estimators on reduced works: EXP, its Gaussian (cumulant) form,
BAR, and Crooks' crossing point.

Conventions (as pymbar ``other_estimators``): ``w_f = u_1(x) - u_0(x)`` for ``x ~ p_0``
(or the reduced work of a forward switch 0 -> 1), ``w_r = u_0(x) - u_1(x)`` for
``x ~ p_1`` (the reverse switch), and every ``delta_f`` is ``f_1 - f_0`` in kT.

All estimators are pure JAX after the boundary checks, so they ``jit``/``vmap`` (e.g.
inside :func:`thermo.estimators.bootstrap`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy.special import logsumexp
from jaxtyping import Array, Float

from .._checks import check_1d_finite, is_traced
from ._path import FreeEnergy

__all__ = [
    "CrooksResult",
    "bar",
    "crooks",
    "exp",
    "exp_gauss",
    "exp_reverse",
    "jarzynski_cumulant",
]


def _n_eff(n, statistical_inefficiency):
    if statistical_inefficiency is None:
        return n
    g = jnp.asarray(statistical_inefficiency)
    if not is_traced(g) and not bool(g >= 1.0):
        raise ValueError(f"statistical_inefficiency must be >= 1, got {float(g)}")
    return n / g


def exp(w_f: Float[Array, " n"], *, statistical_inefficiency=None) -> FreeEnergy:
    r"""One-sided exponential averaging, EXP / free-energy perturbation (Zwanzig 1954,
    J. Chem. Phys. 22, 1420).

    .. math:: \Delta f = -\log \tfrac{1}{n}\sum_i e^{-w_i}, \qquad
              \sigma = \frac{\operatorname{std}(e^{-w})}{\overline{e^{-w}}\sqrt{n/g}}

    (delta method, as pymbar ``exp``; ``std`` with ``ddof=0``), computed with shifted
    exponentials so that it never overflows.

    Args:
        w_f: ``(n,)`` reduced forward works ``u_1 - u_0`` on samples of state 0.
        statistical_inefficiency: ``g >= 1`` of correlated samples (see
            :func:`thermo.estimators.timeseries.statistical_inefficiency`); the error uses
            ``n / g`` effective samples.

    Returns:
        :class:`FreeEnergy` ``(delta_f = f_1 - f_0, std_err)``.
    """
    w = check_1d_finite(w_f, "w_f")
    n = w.shape[0]
    log_sum = logsumexp(-w)
    delta_f = -(log_sum - jnp.log(n))
    x = jnp.exp(-w - log_sum)  # normalised so that sum(x) = 1
    rel_var = jnp.maximum(n * jnp.sum(x**2) - 1.0, 0.0)  # Var(e^-w) / mean(e^-w)^2
    return FreeEnergy(delta_f, jnp.sqrt(rel_var / _n_eff(n, statistical_inefficiency)))


def exp_reverse(w_r: Float[Array, " n"], *, statistical_inefficiency=None) -> FreeEnergy:
    r"""Reverse EXP (Zwanzig 1954): :math:`\Delta f = f_1 - f_0 = \log \overline{e^{-w_r}}`
    from reverse works ``w_r = u_0 - u_1`` on samples of state 1; same error as :func:`exp`.
    """
    est = exp(check_1d_finite(w_r, "w_r"), statistical_inefficiency=statistical_inefficiency)
    return FreeEnergy(-est.delta_f, est.std_err)


def exp_gauss(w_f: Float[Array, " n"], *, statistical_inefficiency=None) -> FreeEnergy:
    r"""Second-order cumulant (Gaussian) approximation to EXP (Zwanzig 1954; Hummer 2001,
    J. Chem. Phys. 114, 7330), exact when the work is Gaussian.

    .. math:: \Delta f \approx \langle w\rangle - \tfrac12 \operatorname{Var}(w), \qquad
              \sigma^2 = \frac{\operatorname{Var}(w)}{n_\mathrm{eff}}
                       + \frac{\operatorname{Var}(w)^2}{2(n_\mathrm{eff}-1)}

    (variance of a mean plus that of a sample variance under normality; pymbar
    ``exp_gauss``, ``Var`` with ``ddof=0``).

    Args:
        w_f: ``(n,)`` reduced works, ``n >= 2``.
        statistical_inefficiency: optional ``g``; ``n_eff = n / g``.

    Returns:
        :class:`FreeEnergy`.
    """
    w = check_1d_finite(w_f, "w_f")
    n = w.shape[0]
    if n < 2:
        raise ValueError("exp_gauss needs at least 2 work values")
    var = jnp.var(w)
    n_eff = _n_eff(n, statistical_inefficiency)
    err2 = var / n_eff + 0.5 * var**2 / (n_eff - 1.0)
    return FreeEnergy(jnp.mean(w) - 0.5 * var, jnp.sqrt(err2))


def jarzynski_cumulant(w: Float[Array, " n"], *, statistical_inefficiency=None) -> FreeEnergy:
    r"""Jarzynski's equality to second order in the cumulant expansion (Jarzynski 1997,
    PRE 56, 5018; Hummer 2001): :math:`\Delta f \approx \langle w\rangle - \operatorname{Var}(w)/2`,
    exact for Gaussian work. Same estimator and error as :func:`exp_gauss`.

    Args:
        w: ``(n,)`` reduced works ``beta W`` of forward non-equilibrium paths.
        statistical_inefficiency: optional ``g`` of correlated works.
    """
    return exp_gauss(check_1d_finite(w, "w"), statistical_inefficiency=statistical_inefficiency)


def _bar_zero(w_f, w_r, delta_f):
    """pymbar ``bar_zero``: log of Bennett's two Fermi sums; increasing in ``delta_f``."""
    m = jnp.log(w_f.shape[0] / w_r.shape[0])
    log_num = logsumexp(-jax.nn.softplus(m + w_f - delta_f))
    log_den = logsumexp(-jax.nn.softplus(-m + w_r + delta_f))
    return log_num - log_den


@jax.jit
def _bar_solve(w_f, w_r):
    """Bracketed Newton (Newton steps inside a bisection bracket) on ``_bar_zero`` to
    machine tolerance; the bracket starts at the two EXP estimates (pymbar's choice)."""
    z = lambda d: _bar_zero(w_f, w_r, d)  # noqa: E731
    dz = jax.grad(z)
    lo0 = logsumexp(-w_r) - jnp.log(w_r.shape[0])  # -EXP(reverse)
    hi0 = -(logsumexp(-w_f) - jnp.log(w_f.shape[0]))  # EXP(forward)
    lo, hi = jnp.minimum(lo0, hi0), jnp.maximum(lo0, hi0)
    # Widen until bracketed (z is increasing): z(lo) <= 0 <= z(hi).
    width = jnp.maximum(hi - lo, 1.0)

    def widen(c):
        lo, hi, w = c
        lo = jnp.where(z(lo) > 0, lo - w, lo)
        hi = jnp.where(z(hi) < 0, hi + w, hi)
        return lo, hi, 2.0 * w

    lo, hi, _ = lax.while_loop(lambda c: (z(c[0]) > 0) | (z(c[1]) < 0), widen, (lo, hi, width))
    eps = jnp.finfo(w_f.dtype).eps

    def body(c):
        lo, hi, x, it, _ = c
        fx = z(x)
        lo = jnp.where(fx < 0, x, lo)
        hi = jnp.where(fx > 0, x, hi)
        newton = x - fx / dz(x)
        inside = (newton > lo) & (newton < hi)
        x_new = jnp.where(inside, newton, 0.5 * (lo + hi))
        x_new = jnp.where(fx == 0, x, x_new)
        return lo, hi, x_new, it + 1, jnp.abs(x_new - x)

    def cond(c):
        lo, hi, x, it, step = c
        return (step > 4 * eps * jnp.maximum(1.0, jnp.abs(x))) & (it < 200)

    x0 = 0.5 * (lo + hi)
    _, _, x, _, _ = lax.while_loop(cond, body, (lo, hi, x0, 0, jnp.asarray(jnp.inf, x0.dtype)))
    return x


#: Two-state overlap (``1 - lambda_2`` of the MBAR overlap matrix) below which BAR's
#: standard error is reported as infinite: the same cutoff as MBAR's disconnected-states
#: verdict (``thermo.estimators._mbar._MIN_OVERLAP_GAP``).
_MIN_BAR_OVERLAP = 1e-10


def _bar_variance(w_f, w_r, delta_f, method):
    """Asymptotic variance of BAR (Bennett 1976 eq. 10a as corrected in pymbar, or the
    MBAR form, Shirts & Chodera 2008 eq. E9), in log space so that it never divides 0 by 0.

    With ``x = w + log(n_f/n_r) - delta_f`` on forward and ``-w_r``-side terms on reverse
    works, the Fisher information is ``I = sum_n F(x_n) F(-x_n)`` (``F`` the Fermi
    function, over all samples) and the two-state MBAR overlap ``1 - lambda_2`` equals
    ``I (1/n_f + 1/n_r)``. Below ``_MIN_BAR_OVERLAP`` the states share no sample and the
    variance is infinite (Bennett's form would otherwise report a small, false one).
    """
    t_f, t_r = w_f.shape[0], w_r.shape[0]
    c = jnp.log(t_f / t_r) - delta_f
    log_ff = -jax.nn.softplus(w_f + c)  # log Fermi(-x) on forward works
    log_fr = -jax.nn.softplus(w_r - c)
    # log F(x) F(-x) = log_f + log(1 - F): the information terms, summed in log space.
    log_info = logsumexp(
        jnp.concatenate(
            [log_ff - jax.nn.softplus(-(w_f + c)), log_fr - jax.nn.softplus(-(w_r - c))]
        )
    )
    nrat = (t_f + t_r) / (t_f * t_r)
    if method == "BAR":
        l1f, l2f = logsumexp(log_ff), logsumexp(2 * log_ff)
        l1r, l2r = logsumexp(log_fr), logsumexp(2 * log_fr)
        var = jnp.exp(l2f - 2 * l1f) + jnp.exp(l2r - 2 * l1r) - nrat
    else:
        var = jnp.exp(-log_info) - nrat
    overlap = jnp.exp(log_info) * nrat
    return jnp.where(overlap < _MIN_BAR_OVERLAP, jnp.inf, jnp.maximum(var, 0.0))


def bar(
    w_f: Float[Array, " n_f"],
    w_r: Float[Array, " n_r"],
    *,
    uncertainty_method: str = "BAR",
    statistical_inefficiency=None,
) -> FreeEnergy:
    r"""Bennett acceptance ratio (Bennett 1976, J. Comput. Phys. 22, 245; maximum-likelihood
    form of Shirts, Bair, Hooker & Pande 2003, PRL 91, 140601).

    Solves, to machine precision by bracketed Newton, the self-consistent equation in log
    space (pymbar ``bar_zero``), with :math:`M = \log(n_f/n_r)`,

    .. math:: \log\sum_i \frac{1}{1+e^{M + w^F_i - \Delta f}}
            = \log\sum_j \frac{1}{1+e^{-M + w^R_j + \Delta f}} .

    The standard error is the asymptotic one: ``"BAR"`` (Bennett's eq. 10a, pymbar's
    default) or ``"MBAR"`` (Shirts & Chodera 2008, eq. E9; equals two-state MBAR). It is
    ``inf`` when the two states do not overlap (the two-state MBAR overlap
    ``1 - lambda_2`` is below ``1e-10``: no sample has weight in both states), never NaN.

    Args:
        w_f: ``(n_f,)`` forward reduced works (samples of state 0).
        w_r: ``(n_r,)`` reverse reduced works (samples of state 1).
        uncertainty_method: ``"BAR"`` or ``"MBAR"``.
        statistical_inefficiency: optional ``g`` (scalar, or a pair for the forward and
            reverse series); the variance is multiplied accordingly (``n -> n/g``).

    Returns:
        :class:`FreeEnergy` with ``delta_f = f_1 - f_0``.
    """
    w_f = check_1d_finite(w_f, "w_f")
    w_r = check_1d_finite(w_r, "w_r")
    if uncertainty_method not in ("BAR", "MBAR"):
        raise ValueError(f"uncertainty_method must be 'BAR' or 'MBAR', got {uncertainty_method!r}")
    dtype = jnp.result_type(w_f, w_r)
    w_f, w_r = w_f.astype(dtype), w_r.astype(dtype)
    delta_f = _bar_solve(w_f, w_r)
    var = _bar_variance(w_f, w_r, delta_f, uncertainty_method)
    if statistical_inefficiency is not None:
        g = jnp.broadcast_to(jnp.asarray(statistical_inefficiency, dtype), (2,))
        if not is_traced(g) and not bool(jnp.all(g >= 1.0)):
            raise ValueError("statistical_inefficiency must be >= 1")
        var = var * jnp.max(g)  # conservative: the larger inefficiency of the two series
    return FreeEnergy(delta_f, jnp.sqrt(var))


class CrooksResult(NamedTuple):
    """Crooks analysis of forward/reverse works.

    Attributes:
        bar: BAR estimate of ``f_1 - f_0`` (the optimal use of Crooks' theorem).
        crossing: the work ``w*`` where the forward density ``P_F(w)`` meets the
            reflected reverse density ``P_R(-w)``; by Crooks' theorem ``w* = Delta f``.
        bandwidths: the Gaussian KDE bandwidths ``(h_F, h_R)`` used.
    """

    bar: FreeEnergy
    crossing: Float[Array, ""]
    bandwidths: Float[Array, " 2"]


def _kde_log_density(samples, grid, h):
    z = (grid[:, None] - samples[None, :]) / h
    return logsumexp(-0.5 * z**2, axis=1) - jnp.log(samples.shape[0] * h * jnp.sqrt(2 * jnp.pi))


@jax.jit
def _crossing(w_f, w_r, guess):
    # Scott's rule bandwidth (Scott 1992): h = 1.06 sigma n^{-1/5}.
    h_f = 1.06 * jnp.std(w_f) * w_f.shape[0] ** (-0.2)
    h_r = 1.06 * jnp.std(w_r) * w_r.shape[0] ** (-0.2)
    lo = jnp.maximum(jnp.min(w_f), jnp.min(-w_r))
    hi = jnp.minimum(jnp.max(w_f), jnp.max(-w_r))
    lo, hi = jnp.minimum(lo, hi), jnp.maximum(lo, hi)
    grid = jnp.linspace(lo, hi, 1024)
    diff = _kde_log_density(w_f, grid, h_f) - _kde_log_density(-w_r, grid, h_r)
    # Sign changes of log P_F(w) - log P_R(-w): P_F / P_R(-w) = e^{w - Delta f} grows with w.
    change = (diff[:-1] < 0) & (diff[1:] >= 0)
    t = diff[:-1] / (diff[:-1] - diff[1:])
    roots = grid[:-1] + t * (grid[1:] - grid[:-1])
    dist = jnp.where(change, jnp.abs(roots - guess), jnp.inf)
    i = jnp.argmin(dist)
    crossing = jnp.where(jnp.isfinite(dist[i]), roots[i], jnp.nan)
    return crossing, jnp.stack([h_f, h_r])


def crooks(w_f: Float[Array, " n_f"], w_r: Float[Array, " n_r"]) -> CrooksResult:
    r"""Crooks fluctuation theorem analysis (Crooks 1999, PRE 60, 2721; 2000, PRE 61, 2361).

    .. math:: \frac{P_F(w)}{P_R(-w)} = e^{\,w - \Delta f}

    Returns BAR on the forward/reverse works (the maximum-likelihood estimator of
    :math:`\Delta f` given Crooks' theorem; Shirts et al. 2003) and the crossing point
    of the two work densities, where :math:`P_F(w) = P_R(-w)` and hence
    :math:`w = \Delta f`. The densities are Gaussian kernel density estimates with
    Scott's bandwidth (``1.06 sigma n^{-1/5}``) on a 1024-point grid over the overlap of
    the two supports; the crossing is the linearly interpolated upward zero of
    ``log P_F(w) - log P_R(-w)`` closest to the BAR estimate (``nan`` if the densities do
    not cross on the grid, i.e. no overlap). The crossing is a diagnostic with no
    closed-form error; use :func:`thermo.estimators.bootstrap` for one.

    Args:
        w_f: ``(n_f,)`` forward reduced works.
        w_r: ``(n_r,)`` reverse reduced works.
    """
    w_f = check_1d_finite(w_f, "w_f")
    w_r = check_1d_finite(w_r, "w_r")
    if w_f.shape[0] < 2 or w_r.shape[0] < 2:
        raise ValueError("crooks needs at least 2 forward and 2 reverse works")
    est = bar(w_f, w_r)
    crossing, bw = _crossing(w_f, w_r, est.delta_f)
    return CrooksResult(est, crossing, bw)
