r"""MCMC diagnostics: ESS and split R-hat (from numpyro), integrated autocorrelation time.

* ESS and split :math:`\hat R` are numpyro's (``numpyro.diagnostics.effective_sample_size``
  and ``split_gelman_rubin``; Gelman et al. 2013, BDA3 §11.4-11.5; Vehtari et al. 2021).
* The integrated autocorrelation time
  :math:`\tau_{\mathrm{int}} = 1 + 2\sum_{t=1}^{M}\rho_t` uses Sokal's automatic window:
  the smallest :math:`M` with :math:`M \ge c\,\hat\tau(M)`, ``c = 5`` (Sokal 1997,
  "Monte Carlo methods in statistical mechanics", §3; also emcee's ``integrated_time``).
  The autocorrelation :math:`\rho_t` is averaged over chains (numpyro's FFT
  ``autocorrelation``).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

__all__ = [
    "acceptance_rate",
    "effective_sample_size",
    "integrated_autocorr_time",
    "split_rhat",
    "swap_acceptance_rates",
]


def _as_chains(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2:
        raise ValueError(f"expected samples of shape (n_chains, n_draws, ...), got shape {x.shape}")
    if x.shape[1] < 4:
        raise ValueError(f"need at least 4 draws per chain, got {x.shape[1]}")
    if not np.all(np.isfinite(x)):
        raise ValueError("samples contain NaN or inf")
    return x


def effective_sample_size(samples: Float[Array, "n_chains n_draws ..."]) -> np.ndarray:
    """Effective sample size over all chains, per coordinate (numpyro; BDA3 eq. 11.8).

    Args:
        samples: ``(n_chains, n_draws, ...)``.

    Returns:
        ``(...)`` ESS of each coordinate (summed over chains).
    """
    from numpyro.diagnostics import effective_sample_size as _ess

    return np.asarray(_ess(_as_chains(samples)))


def split_rhat(samples: Float[Array, "n_chains n_draws ..."]) -> np.ndarray:
    r"""Split :math:`\hat R` (numpyro ``split_gelman_rubin``; BDA3 §11.4).

    Args:
        samples: ``(n_chains, n_draws, ...)``.

    Returns:
        ``(...)`` split R-hat per coordinate (1 at convergence).
    """
    from numpyro.diagnostics import split_gelman_rubin

    return np.asarray(split_gelman_rubin(_as_chains(samples)))


def integrated_autocorr_time(
    samples: Float[Array, "n_chains n_draws ..."], c: float = 5.0
) -> np.ndarray:
    r"""Integrated autocorrelation time :math:`\tau_{\mathrm{int}}` with Sokal's window.

    Args:
        samples: ``(n_chains, n_draws, ...)``; the autocorrelation is averaged over
            chains before summing.
        c: window constant (Sokal recommends 4-10; 5 as in emcee).

    Returns:
        ``(...)`` :math:`\tau_{\mathrm{int}}` in units of draws (1 for independent draws).
    """
    from numpyro.diagnostics import autocorrelation

    x = _as_chains(samples)
    rho = np.asarray(autocorrelation(x, axis=1)).mean(axis=0)  # (n_draws, ...)
    taus = 2.0 * np.cumsum(rho, axis=0) - 1.0  # tau(M) = 1 + 2 sum_{t=1}^{M} rho_t
    m = np.arange(rho.shape[0]).reshape((-1,) + (1,) * (rho.ndim - 1))
    ok = m >= c * taus
    window = np.where(ok.any(axis=0), ok.argmax(axis=0), rho.shape[0] - 1)
    return np.maximum(np.take_along_axis(taus, window[None], axis=0)[0], 1.0 / x.shape[1])


def acceptance_rate(info: Any) -> Float[Array, "*batch"]:
    """Mean acceptance over steps (axis 0 of a trace of Infos with ``acceptance_rate``)."""
    return jnp.mean(jnp.asarray(info.acceptance_rate), axis=0)


def swap_acceptance_rates(info: Any) -> Float[Array, "... n_pairs"]:
    """Replica-exchange swap acceptance per neighbour pair, averaged over attempted swaps.

    Args:
        info: a trace of :class:`thermo.mcmc.ReplicaExchangeInfo` (leading axis = steps;
            further leading axes, e.g. independent PT runs, are kept).

    Returns:
        ``(..., n_replicas - 1)`` mean swap acceptance probability per pair; NaN for a
        pair never attempted in the trace (e.g. a trace thinned by an even stride records
        only one parity of the even/odd scheme).
    """
    attempted = jnp.asarray(info.swap_attempted).astype(float)
    rate = jnp.asarray(info.swap_acceptance_rate)
    n_attempted = jnp.sum(attempted, axis=0)
    mean = jnp.sum(rate * attempted, axis=0) / jnp.maximum(n_attempted, 1.0)
    return jnp.where(n_attempted > 0, mean, jnp.nan)
