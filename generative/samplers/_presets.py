r"""One-call construction, training and sampling of a learned sampler on a system.

:func:`make_sampler` builds PIS, DDS or CMCD with a fresh score-informed
:class:`~generative.samplers.Control` and the settings the benchmark uses;
:func:`make_and_train` builds and trains it, :func:`fit_and_sample` also samples it (PIS and DDS with the KL loss, CMCD with the log-variance
loss, as in their papers) and draws a weighted population. The returned
:class:`~thermo.paths.PathEnsemble` gives :math:`\log Z` through
:func:`thermo.estimators.estimate_log_z`; for particle systems that is the
centre-of-mass-free :math:`\log\int_{\mathrm{COM}=0}e^{-\beta U}` of :func:`thermo.mcmc.ais`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.random as jr

from thermo._typing import PRNGKey
from thermo.paths import PathEnsemble

from ._cmcd import CMCD
from ._common import (
    AbstractSampler,
    Control,
    SamplerTrainResult,
    as_target,
    sample_paths,
    train_sampler,
)
from ._dds import DDS
from ._pis import PIS

__all__ = ["DEFAULT_LOSS", "make_sampler", "make_and_train", "FitResult", "fit_and_sample"]

#: The loss each sampler is trained with in its paper.
DEFAULT_LOSS = {"pis": "kl", "dds": "kl", "cmcd": "log_variance"}


def make_sampler(
    key: PRNGKey,
    target: Any,
    method: str,
    *,
    n_steps: int = 64,
    width: int = 64,
    depth: int = 2,
    cmcd_dt: float = 0.01,
    cmcd_schedule_power: float = 2.0,
    dds_duration: float = 4.0,
    max_displacement: float | None = 1.0,
) -> AbstractSampler:
    r"""A fresh (untrained, :math:`u\equiv0`) PIS, DDS or CMCD for ``target``.

    Scales come from the target's ``scale`` :math:`s` (``system.prior_scale``): PIS uses
    :math:`\sigma = s`, :math:`T = 1`; DDS :math:`\sigma = s`, :math:`T` = ``dds_duration``,
    rate 1, network output read as :math:`\sigma^2 f`; CMCD the base :math:`\mathcal N(0, s^2)` and Langevin step ``cmcd_dt``.
    ``max_displacement`` caps the drift displacement per step at that many :math:`s`
    (:func:`~generative.samplers.clip_displacement`; ``None`` = no cap).

    Args:
        key: key of the control's initial weights.
        target: a system or :class:`~generative.samplers.Target`.
        method: ``"pis"``, ``"dds"`` or ``"cmcd"``.
    """
    target = as_target(target)
    s = target.scale
    cap = None if max_displacement is None else float(max_displacement) * s
    if method == "pis":
        duration = 1.0
    elif method == "dds":
        duration = float(dds_duration)
    elif method == "cmcd":
        duration = int(n_steps) * float(cmcd_dt)
    else:
        raise ValueError(f"method must be 'pis', 'dds' or 'cmcd', got {method!r}")
    # CMCD's kernels already contain the annealed score; its control is a plain network
    # (Vargas et al. 2024). PIS and DDS use the score-informed form (Zhang & Chen 2022).
    control = Control(
        target.dim,
        key,
        width=width,
        depth=depth,
        time_scale=duration,
        use_score=method != "cmcd",
    )
    if method == "pis":
        return PIS(control, n_steps=n_steps, sigma=s, duration=1.0, max_displacement=cap)
    if method == "dds":
        return DDS(
            control,
            n_steps=n_steps,
            sigma=s,
            duration=duration,
            rate=1.0,
            max_displacement=cap,
            output_scale=1.0 / s**2,
        )
    return CMCD(
        control,
        n_steps=n_steps,
        dt=cmcd_dt,
        schedule_power=cmcd_schedule_power,
        max_displacement=cap,
    )


class FitResult(NamedTuple):
    """What :func:`fit_and_sample` returns.

    Attributes:
        ensemble: ``PathEnsemble(samples, log_weights, n_energy_evals)`` of the trained
            sampler (sampling evaluations only).
        training: the :class:`~generative.samplers.SamplerTrainResult` (its ``n_energy_evals``
            are the training evaluations).
    """

    ensemble: PathEnsemble
    training: SamplerTrainResult


def fit_and_sample(
    key: PRNGKey,
    system: Any,
    method: str,
    *,
    n_samples: int,
    n_iters: int = 400,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    loss: str | None = None,
    progress: bool | None = None,
    **sampler_options: Any,
) -> FitResult:
    r"""Build (:func:`make_sampler`), train (:func:`~generative.samplers.train_sampler`) and sample.

    Example (the COM-free DW-4 :math:`\log Z`, comparable with :func:`thermo.mcmc.ais`):

    .. code-block:: python

        fit = fit_and_sample(key, systems.get("dw4"), "cmcd", n_samples=2000, cmcd_dt=0.002)
        est = estimate_log_z(fit.ensemble.log_weights)

    Args:
        key: PRNG key (split into network, training and sampling keys).
        system: a system or target.
        method: ``"pis"``, ``"dds"`` or ``"cmcd"``.
        n_samples: paths drawn after training.
        n_iters, batch_size, learning_rate: training settings.
        loss: default :data:`DEFAULT_LOSS` ``[method]``.
        progress: training progress bar.
        **sampler_options: passed to :func:`make_sampler`.
    """
    key_net, key_train, key_sample = jr.split(key, 3)
    target, result = make_and_train(
        key_net,
        key_train,
        system,
        method,
        n_iters=n_iters,
        batch_size=batch_size,
        learning_rate=learning_rate,
        loss=loss,
        progress=progress,
        **sampler_options,
    )
    ensemble = sample_paths(key_sample, result.sampler, target, n_samples)
    return FitResult(ensemble, result)


def make_and_train(
    key_net: PRNGKey,
    key_train: PRNGKey,
    system: Any,
    method: str,
    *,
    n_iters: int = 400,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    loss: str | None = None,
    progress: bool | None = None,
    **sampler_options: Any,
) -> tuple[Any, SamplerTrainResult]:
    """A fresh :func:`make_sampler` (network from ``key_net``) on
    :func:`~generative.samplers.as_target` of ``system``, trained by
    :func:`~generative.samplers.train_sampler` from ``key_train``.

    Arguments as in :func:`fit_and_sample` (``loss`` defaults to
    :data:`DEFAULT_LOSS` ``[method]``). Returns ``(target, result)``: the target and the
    :class:`~generative.samplers.SamplerTrainResult` (its ``sampler``, ``losses``,
    ``n_energy_evals``).
    """
    target = as_target(system)
    sampler = make_sampler(key_net, target, method, **sampler_options)
    result = train_sampler(
        key_train,
        sampler,
        target,
        n_iters=n_iters,
        batch_size=batch_size,
        loss=DEFAULT_LOSS[method] if loss is None else loss,
        learning_rate=learning_rate,
        progress=progress,
    )
    return target, result
