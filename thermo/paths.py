r"""The currency every sampler reports: a population of paths and their log-weights.

A :class:`PathEnsemble` holds the final samples of a non-equilibrium process and, per
path, the log Radon–Nikodym derivative of the *target* path measure against the
*sampling* one, :math:`\log w = \log \frac{d\mathbb{P}^{\leftarrow}}{d\mathbb{P}^{\rightarrow}}`.
For a driven physical system this is :math:`-\beta W` (plus the initial log-normaliser,
so that :math:`\mathbb{E}[e^{\log w}] = Z_1 / Z_0`; Jarzynski 1997, Crooks 1999). For AIS
it is the usual sum of incremental weights (Neal 2001). Free energies come from
:func:`thermo.estimators.estimate_log_z` applied to the ensemble (or its ``log_weights``).

A population that was resampled along the way (sequential Monte Carlo) is still one:
its ``log_weights`` are the weights since the last resampling plus the accumulated
log-normaliser :math:`\sum_r \log\frac1n\sum_i e^{\ell_i^{(r)}}` of the resampling
events, so ``logmeanexp(log_weights)`` is the SMC estimate of :math:`\log Z` (Del Moral
2004), and :class:`Resampling` records the genealogy the standard error needs.
"""

from __future__ import annotations

from typing import NamedTuple

from jaxtyping import Array, Float, Int

__all__ = ["PathEnsemble", "Resampling"]


class Resampling(NamedTuple):
    r"""What resampling along the path leaves behind (sequential Monte Carlo).

    Attributes:
        eve_indices: ``(n,)`` index of each final path's ancestor at the start (its "Eve",
            Lee & Whiteley 2018), for the standard error of :math:`\log\hat Z`.
        n_resampling: ``()`` number of resampling events.
        log_normalizer: ``()`` the part of every ``log_weights`` entry accumulated at
            the resampling events, :math:`\sum_r \log\frac1n\sum_i e^{\ell_i^{(r)}}`.
        max_pareto_k: ``()`` the largest Pareto :math:`\hat k` of the weights met at a
            resampling event (each one an importance-sampling step; ``-inf`` if none).
    """

    eve_indices: Int[Array, " n"]
    n_resampling: Int[Array, ""]
    log_normalizer: Float[Array, ""]
    max_pareto_k: Float[Array, ""]


class PathEnsemble(NamedTuple):
    """Final samples, per-path log-weights, and the cost that produced them.

    Attributes:
        samples: ``(n, dim)`` final positions of the paths.
        log_weights: ``(n,)`` log RN derivative (target path measure over sampling
            one); ``logmeanexp(log_weights)`` estimates ``log Z_target - log Z_base``.
        n_energy_evals: total number of energy (or energy-and-gradient) evaluations
            spent on the whole population.
        resampling: :class:`Resampling` when the population was resampled along the
            way (its paths are then dependent), else ``None``.
    """

    samples: Float[Array, "n dim"]
    log_weights: Float[Array, " n"]
    n_energy_evals: Int[Array, ""] | int
    resampling: Resampling | None = None
