r"""The currency every sampler reports: a population of paths and their log-weights.

A :class:`PathEnsemble` holds the final samples of a non-equilibrium process and, per
path, the log Radon–Nikodym derivative of the *target* path measure against the
*sampling* one, :math:`\log w = \log \frac{d\mathbb{P}^{\leftarrow}}{d\mathbb{P}^{\rightarrow}}`.
For a driven physical system this is :math:`-\beta W` (plus the initial log-normaliser,
so that :math:`\mathbb{E}[e^{\log w}] = Z_1 / Z_0`; Jarzynski 1997, Crooks 1999). For AIS
it is the usual sum of incremental weights (Neal 2001). Free energies come from
:func:`thermo.estimators.estimate_log_z` applied to ``log_weights``.
"""

from __future__ import annotations

from typing import NamedTuple

from jaxtyping import Array, Float, Int

__all__ = ["PathEnsemble"]


class PathEnsemble(NamedTuple):
    """Final samples, per-path log-weights, and the cost that produced them.

    Attributes:
        samples: ``(n, dim)`` final positions of the paths.
        log_weights: ``(n,)`` log RN derivative (target path measure over sampling
            one); ``logmeanexp(log_weights)`` estimates ``log Z_target - log Z_base``.
        n_energy_evals: total number of energy (or energy-and-gradient) evaluations
            spent on the whole population.
    """

    samples: Float[Array, "n dim"]
    log_weights: Float[Array, " n"]
    n_energy_evals: Int[Array, ""] | int
