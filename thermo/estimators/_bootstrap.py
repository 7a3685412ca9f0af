r"""Nonparametric bootstrap standard errors for any estimator (Efron 1979, Ann. Stat. 7, 1).

Each data array is resampled with replacement along its leading axis (independently of
the others, e.g. forward and reverse works), the estimator is ``vmap``-ped over the
``n_bootstrap`` resamples, and the standard error of every output leaf is the standard
deviation over resamples (``ddof=1``):

.. math:: \hat\sigma_B = \Big(\tfrac{1}{B-1}\sum_b (\hat\theta^*_b - \bar\theta^*)^2\Big)^{1/2}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
from jaxtyping import PRNGKeyArray

from .._checks import check_count

__all__ = ["BootstrapResult", "bootstrap"]


class BootstrapResult(NamedTuple):
    """Bootstrap summary of an estimator.

    Attributes:
        estimate: the estimator on the original data (a pytree like its output).
        std_err: bootstrap standard error of every leaf (same pytree structure).
        samples: every leaf stacked over resamples, leading axis ``n_bootstrap``.
    """

    estimate: Any
    std_err: Any
    samples: Any


def bootstrap(
    key: PRNGKeyArray,
    estimator_fn: Callable[..., Any],
    *data,
    n_bootstrap: int = 200,
    batch_size: int | None = None,
) -> BootstrapResult:
    r"""Bootstrap uncertainty of ``estimator_fn(*data)`` (Efron 1979).

    Args:
        key: PRNG key; split once per data array.
        estimator_fn: pure JAX function of the data arrays returning a pytree of arrays
            (e.g. :func:`thermo.estimators.bar`, or ``lambda w: exp(w).delta_f``). It is
            called under ``vmap``, so its value checks must tolerate tracing (all
            estimators in :mod:`thermo.estimators` except :func:`~thermo.estimators.mbar`
            do).
        *data: arrays whose leading axis indexes independent samples; each is resampled
            separately with replacement, keeping its length.
        n_bootstrap: number of resamples ``B >= 2``.
        batch_size: resamples per vectorised batch (``lax.map``), to bound memory;
            ``None`` vmaps all at once.

    Returns:
        :class:`BootstrapResult` ``(estimate, std_err, samples)``.
    """
    n_bootstrap = check_count(n_bootstrap, "n_bootstrap", minimum=2)
    if not data:
        raise ValueError("bootstrap needs at least one data array")
    arrays = [jnp.asarray(d) for d in data]
    for i, a in enumerate(arrays):
        if a.ndim == 0 or a.shape[0] == 0:
            raise ValueError(f"data[{i}] must have a non-empty leading axis, got shape {a.shape}")
    estimate = estimator_fn(*arrays)
    keys = jr.split(key, len(arrays))
    idx = [
        jr.randint(k, (n_bootstrap, a.shape[0]), 0, a.shape[0])
        for k, a in zip(keys, arrays, strict=False)
    ]

    def one(indices):
        return estimator_fn(*[a[i] for a, i in zip(arrays, indices, strict=False)])

    samples = jax.lax.map(one, idx, batch_size=batch_size or n_bootstrap)
    std_err = jtu.tree_map(lambda s: jnp.std(s, axis=0, ddof=1), samples)
    return BootstrapResult(estimate, std_err, samples)
