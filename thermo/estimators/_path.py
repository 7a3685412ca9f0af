r"""Free energies from path log-weights: Jarzynski, AIS and importance-weighted ELBOs.

All of them are the same estimator. Given per-path log-weights :math:`\ell_i`
(``-beta*W`` for a driven system, the AIS log-weight for annealing, the log RN
derivative for a learned sampler),

.. math:: \widehat{\log Z} = \log \frac{1}{n} \sum_i e^{\ell_i},

with the delta-method standard error
:math:`\sigma = \sqrt{\operatorname{Var}(w)/n}\,/\,\bar w` computed stably from the
normalised weights, and Kish's effective sample size
:math:`\mathrm{ESS} = (\sum w)^2 / \sum w^2` (Kish 1965).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax.scipy.special import logsumexp
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import check_1d_finite, check_real
from ..paths import PathEnsemble

__all__ = ["Estimate", "FreeEnergy", "estimate_log_z", "jarzynski", "pareto_k"]


class Estimate(NamedTuple):
    r"""A log-normaliser estimate.

    Attributes:
        value: the estimate of ``log Z`` (reduced units).
        std_err: its asymptotic standard error.
        ess: Kish effective sample size of the weights.
        pareto_k: Pareto :math:`\hat k` of the weights' upper tail (:func:`pareto_k`;
            above 0.5 ``std_err`` does not exist as a CLT error bar); NaN with fewer
            than 10 weights or where no estimator computed it.
    """

    value: Float[Array, ""]
    std_err: Float[Array, ""]
    ess: Float[Array, ""]
    pareto_k: Float[Array, ""] | float = float("nan")


class FreeEnergy(NamedTuple):
    """A free-energy difference in units of kT.

    Attributes:
        delta_f: the estimate of ``f_1 - f_0``.
        std_err: its standard error.
    """

    delta_f: Float[Array, ""]
    std_err: Float[Array, ""]


def _check_1d_finite(x, name: str) -> jnp.ndarray:
    return check_1d_finite(x, name)


def _log_mean_exp_with_error(log_w: Float[Array, " n"]) -> Estimate:
    n = log_w.shape[0]
    log_sum = logsumexp(log_w)
    value = log_sum - jnp.log(n)
    w_norm = jnp.exp(log_w - log_sum)  # normalised weights, sum to one
    ess = 1.0 / jnp.sum(w_norm**2)
    # Var(w)/mean(w)^2 = n * sum(w_norm^2) - 1; delta method on log(mean w).
    rel_var = jnp.maximum(n * jnp.sum(w_norm**2) - 1.0, 0.0)
    std_err = jnp.sqrt(rel_var / n)
    return Estimate(value=value, std_err=std_err, ess=ess)


@jax.jit
def _bootstrap_log_mean_exp_std(key, log_w, n_bootstrap_template):
    n = log_w.shape[0]
    idx = jr.randint(key, (n_bootstrap_template.shape[0], n), 0, n)
    values = logsumexp(log_w[idx], axis=1) - jnp.log(n)
    return jnp.std(values, ddof=1)


def estimate_log_z(
    log_weights: Float[Array, " n"] | PathEnsemble,
    *,
    key: PRNGKeyArray | None = None,
    n_bootstrap: int = 0,
) -> Estimate:
    r"""Estimate ``log Z`` from per-path log-weights (Jarzynski 1997; Neal 2001).

    .. math:: \widehat{\log Z} = \log \tfrac{1}{n}\sum_i e^{\ell_i}

    This is the one estimator behind AIS, SMC, Jarzynski, learned diffusion samplers
    and importance-weighted diffusion likelihoods. The standard error is the delta
    method on the mean weight, :math:`\sigma^2 = \operatorname{Var}(w)/(n\,\bar w^2)`,
    or, with ``n_bootstrap > 0``, the bootstrap standard deviation of
    :math:`\widehat{\log Z}` over resampled paths (Efron 1979), which is more honest
    when a few weights dominate. ``ess`` is Kish's effective sample size (Kish 1965),
    ``pareto_k`` the PSIS tail index of the weights (:func:`pareto_k`, Vehtari et al.
    2024).

    Resampled populations (sequential Monte Carlo). Pass the
    :class:`thermo.paths.PathEnsemble` itself: when it carries a
    :class:`thermo.paths.Resampling`, its ``log_weights`` already include the
    accumulated log-normaliser :math:`\sum_r\log\frac1n\sum_i e^{\ell^{(r)}_i}` of the
    resampling events, so the value above is the SMC estimate :math:`\log\hat Z =
    \sum_k \log\sum_i W^i_{k-1} w^i_k` (Del Moral 2004). The paths are then dependent,
    and the standard error is the genealogy ("Eve") estimator of Lee & Whiteley (2018),
    :math:`\widehat{\mathrm{Var}}/\hat Z^2 = 1 - (\tfrac{n}{n-1})^{m+1}(1 - \sum_e
    (\sum_{i:E_i = e} W_i)^2)` with :math:`m` resampling events and :math:`W` the
    normalised final weights; ``pareto_k`` is the largest of the final weights' and of
    those met at each resampling (``Resampling.max_pareto_k``).

    Args:
        log_weights: ``(n,)`` log-weights (finite, or ``-inf`` under a transformation),
            or a :class:`thermo.paths.PathEnsemble`.
        key: PRNG key, required when ``n_bootstrap > 0``.
        n_bootstrap: number of bootstrap resamples (0: delta method; not with a
            resampled ensemble, whose paths are dependent).

    Returns:
        :class:`Estimate` ``(value, std_err, ess, pareto_k)``.

    Raises:
        ValueError: on empty, non-1-D or non-finite input, or a bootstrap request
            without a key or on a resampled ensemble.
    """
    resampling = None
    if isinstance(log_weights, PathEnsemble):
        resampling = log_weights.resampling
        log_weights = log_weights.log_weights
    log_w = _check_1d_finite(log_weights, "log_weights")
    est = _log_mean_exp_with_error(log_w)
    k = _pareto_k_jit(log_w) if log_w.shape[0] >= 10 else jnp.full((), jnp.nan, log_w.dtype)
    est = est._replace(pareto_k=k)
    if resampling is not None:
        if n_bootstrap:
            raise ValueError("estimate_log_z: no bootstrap over the dependent paths of SMC")
        n = log_w.shape[0]
        w_norm = jnp.exp(log_w - logsumexp(log_w))
        eve_mass = jax.ops.segment_sum(w_norm, resampling.eve_indices, num_segments=n)
        n_stages = resampling.n_resampling.astype(jnp.result_type(float)) + 1.0
        factor = ((n / (n - 1.0)) ** n_stages).astype(log_w.dtype)
        rel_var = jnp.maximum(1.0 - factor * (1.0 - jnp.sum(eve_mass**2)), 0.0)
        k = jnp.maximum(k, resampling.max_pareto_k) if n >= 10 else k
        est = est._replace(std_err=jnp.sqrt(rel_var), pareto_k=k)
    if n_bootstrap:
        if key is None:
            raise ValueError("estimate_log_z: n_bootstrap > 0 needs a PRNG key")
        if n_bootstrap < 2:
            raise ValueError(f"n_bootstrap must be >= 2, got {n_bootstrap}")
        std = _bootstrap_log_mean_exp_std(key, log_w, jnp.zeros(n_bootstrap))
        est = est._replace(std_err=std)
    return est


def jarzynski(w: Float[Array, " n"], *, statistical_inefficiency=None) -> FreeEnergy:
    r"""Jarzynski's equality (Jarzynski 1997, PRL 78, 2690) on reduced works ``w = beta*W``.

    .. math:: \Delta f = -\log \tfrac{1}{n}\sum_i e^{-w_i}

    Args:
        w: ``(n,)`` reduced works of forward non-equilibrium paths.
        statistical_inefficiency: optional ``g >= 1`` of correlated works; the error
            uses ``n / g`` effective samples (``g < 1`` or NaN raises ``ValueError``).

    Returns:
        :class:`FreeEnergy` with the delta-method standard error
        :math:`\operatorname{std}(e^{-w}) / (\overline{e^{-w}}\sqrt{n/g})`.
    """
    w = _check_1d_finite(w, "w")
    est = _log_mean_exp_with_error(-w)
    std_err = est.std_err
    if statistical_inefficiency is not None:
        check_real(statistical_inefficiency, "statistical_inefficiency", low=1.0)
        std_err = std_err * jnp.sqrt(jnp.asarray(statistical_inefficiency, std_err.dtype))
    return FreeEnergy(delta_f=-est.value, std_err=std_err)


def pareto_k(log_weights: Float[Array, " n"]) -> Float[Array, ""]:
    r"""Shape :math:`\hat k` of a generalised Pareto fit to the largest importance weights.

    The PSIS diagnostic (Vehtari, Simpson, Gelman, Yao & Gabry 2024, "Pareto smoothed
    importance sampling", JMLR 25(72)): the :math:`M = \lceil\min(N/5, 3\sqrt N)\rceil`
    largest weights, minus the next one, are fitted by a generalised Pareto distribution
    :math:`p(x) = \sigma^{-1}(1 + k x/\sigma)^{-1/k-1}` with the profile-likelihood
    quadrature of Zhang & Stephens (2009): on the grid
    :math:`\theta_j = -1/x_{(M)} - (1 - \sqrt{m/(j - 1/2)})/(3 x_{(\lfloor M/4 + 1/2
    \rfloor)})`, :math:`j = 1..m`, :math:`m = 30 + \lfloor\sqrt M\rfloor`, with
    :math:`k(\theta) = \overline{\log(1 + \theta x)}` and profile log-likelihood
    :math:`M(\log(\theta/k) - k - 1)`, :math:`\hat\theta` is the likelihood-weighted
    mean of the grid, :math:`\hat k = k(\hat\theta)`, shrunk towards 1/2 by the prior
    weight of 10 observations. :math:`k < 1/2`: finite variance, the CLT error bar holds;
    :math:`k > 1/2`: infinite variance, no CLT error bar; :math:`k > 0.7`: the estimate
    itself is unreliable (the weights miss mass the sampler never reached).

    Args:
        log_weights: ``(n,)`` log importance weights, ``n >= 10``.

    Returns:
        scalar :math:`\hat k` (``-inf`` when the tail is flat: all top weights equal).
    """
    n = log_weights.shape[0]
    if n < 10:
        raise ValueError(f"pareto_k needs at least 10 weights, got {n}")
    m_tail = int(np.ceil(min(0.2 * n, 3.0 * np.sqrt(n))))
    lw = jnp.sort(jnp.where(jnp.isnan(log_weights), -jnp.inf, log_weights))
    lw = lw - lw[-1]
    x = jnp.exp(lw[-m_tail:]) - jnp.exp(lw[-m_tail - 1])  # ascending exceedances
    x_max = x[-1]
    x_q = x[int(m_tail / 4 + 0.5) - 1]
    n_grid = 30 + int(np.sqrt(m_tail))
    j = jnp.arange(1, n_grid + 1, dtype=x.dtype)
    x_q = jnp.where(x_q > 0, x_q, x_max)
    theta = -1.0 / x_max - (1 - jnp.sqrt(n_grid / (j - 0.5))) / (3 * x_q)
    k_grid = jnp.mean(jnp.log1p(theta[:, None] * x[None, :]), axis=1)
    log_lik = m_tail * (jnp.log(theta / k_grid) - k_grid - 1)
    w = jnp.exp(log_lik - logsumexp(log_lik))
    theta_hat = jnp.sum(w * theta)
    k_hat = jnp.mean(jnp.log1p(theta_hat * x))
    k_hat = (m_tail * k_hat + 10 * 0.5) / (m_tail + 10)
    return jnp.where(x_max > 0, k_hat, -jnp.inf)


# Eager calls of estimate_log_z run the fit as one compiled function (inlined when traced).
_pareto_k_jit = jax.jit(pareto_k)
