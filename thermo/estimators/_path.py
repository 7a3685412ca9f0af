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

import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from jaxtyping import Array, Float

__all__ = ["Estimate", "FreeEnergy", "estimate_log_z", "jarzynski"]


class Estimate(NamedTuple):
    """A log-normaliser estimate.

    Attributes:
        value: the estimate of ``log Z`` (reduced units).
        std_err: its asymptotic standard error.
        ess: Kish effective sample size of the weights.
    """

    value: Float[Array, ""]
    std_err: Float[Array, ""]
    ess: Float[Array, ""]


class FreeEnergy(NamedTuple):
    """A free-energy difference in units of kT.

    Attributes:
        delta_f: the estimate of ``f_1 - f_0``.
        std_err: its standard error.
    """

    delta_f: Float[Array, ""]
    std_err: Float[Array, ""]


def _check_1d_finite(x, name: str) -> jnp.ndarray:
    arr = jnp.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if not bool(np.all(np.isfinite(np.asarray(arr)))):
        raise ValueError(f"{name} contains NaN or inf values")
    return arr


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


def estimate_log_z(log_weights: Float[Array, " n"]) -> Estimate:
    r"""Estimate ``log Z`` from per-path log-weights (Jarzynski 1997; Neal 2001).

    .. math:: \widehat{\log Z} = \log \tfrac{1}{n}\sum_i e^{\ell_i}

    This is the one estimator behind AIS, SMC, Jarzynski, learned diffusion samplers
    and importance-weighted diffusion likelihoods. The standard error is the delta
    method on the mean weight; ``ess`` is Kish's effective sample size.

    Args:
        log_weights: ``(n,)`` finite log-weights.

    Returns:
        :class:`Estimate` ``(value, std_err, ess)``.

    Raises:
        ValueError: on empty, non-1-D or non-finite input.
    """
    log_w = _check_1d_finite(log_weights, "log_weights")
    return _log_mean_exp_with_error(log_w)


def jarzynski(w: Float[Array, " n"]) -> FreeEnergy:
    r"""Jarzynski's equality (Jarzynski 1997, PRL 78, 2690) on reduced works ``w = beta*W``.

    .. math:: \Delta f = -\log \tfrac{1}{n}\sum_i e^{-w_i}

    Args:
        w: ``(n,)`` reduced works of forward non-equilibrium paths.

    Returns:
        :class:`FreeEnergy` with the delta-method standard error.
    """
    w = _check_1d_finite(w, "w")
    est = _log_mean_exp_with_error(-w)
    return FreeEnergy(delta_f=-est.value, std_err=est.std_err)
