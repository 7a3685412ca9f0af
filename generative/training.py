r"""Denoising score matching with optax, likelihood weighting, checkpoint/resume and a progress bar.

Denoising score matching (Vincent 2011; Song et al. 2021, eq. 7) in the noise-prediction
parameterisation :math:`s_\theta = -\varepsilon_\theta/\sigma(t)` minimises

.. math:: \mathcal L(\theta) = \mathbb E_{t,x_0,\varepsilon}\Big[\frac{\lambda(t)}{\sigma(t)^2}
          \big\|\varepsilon_\theta(t, a(t)x_0 + \sigma(t)\varepsilon) - \varepsilon\big\|^2\Big],

since :math:`\|s_\theta - \nabla\log p_{0t}\|^2 = \|\varepsilon_\theta - \varepsilon\|^2/\sigma^2`.

* ``weighting="noise"``: :math:`\lambda = \sigma^2`, DDPM's "simple" loss (Ho et al. 2020)
  averaged over dimensions.
* ``weighting="likelihood"``: :math:`\lambda = g(t)^2`, Song, Durkan, Murray & Ermon
  (2021), "Maximum likelihood training of score-based diffusion models", Thm. 1: then
  :math:`\tfrac{T - t_{\min}}{2}\,\mathbb E[\lambda/\sigma^2\,\|\cdot\|^2]` is the score-matching part
  of an upper bound on the negative log-likelihood, up to a :math:`\theta`-free constant.
  With ``importance_sampling=True`` the time is drawn from :math:`q(t)\propto g^2/\sigma^2` (their
  Sec. 4.1 variance reduction; VP/sub-VP/VE are all supported by inverting the CDF on a
  grid), and the loss is reweighted by :math:`1/q(t)`.

:func:`train_score_model` runs on the shared training driver :func:`thermo.fit.fit`: optax steps in
chunks of one compiled ``lax.scan``. Step ``k`` draws its batch and noise from
``jr.fold_in(key, k)``, so the result does not depend on how the run is chunked, and a run
resumed from a checkpoint (``eqx.tree_serialise_leaves`` of ``(model, opt_state, step)``)
reproduces an uninterrupted one. :func:`with_ema` (re-exported from :mod:`thermo.fit`)
keeps an EMA of the weights in the optimiser state.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, Float

from thermo._checks import check_count, check_real
from thermo._typing import PRNGKey
from thermo.fit import EMAState, ema_params, fit, with_ema

from .score import ScoreModel

__all__ = ["dsm_loss", "train_score_model", "TrainResult", "EMAState", "with_ema", "ema_model"]

Weighting = Literal["noise", "likelihood"]
AugmentFn = Callable[[PRNGKey, Float[Array, "batch d"]], Float[Array, "batch d"]]

# One module-level instance, so that runs with the default optimiser share a compilation.
_DEFAULT_OPTIMIZER = optax.adam(1e-3)


def _sample_times(key, n, process, t_min: float, importance: bool, n_grid: int = 2048):
    """Draw ``n`` times and their inverse densities ``1/q(t)``: uniform on ``[t_min, T]``, or
    ``q(t) \\propto g^2/\\sigma^2`` (CDF tabulated on a grid by the trapezoid rule and inverted
    by interpolation)."""
    t1 = float(process.t1)
    if not importance:
        t = jr.uniform(key, (n,), minval=t_min, maxval=t1)
        return t, jnp.full((n,), t1 - t_min)

    def rate(t):
        g = process.diffusion_coefficient(t)
        _, std = process.marginal_coefficients(t)
        return g**2 / std**2

    grid = jnp.linspace(t_min, t1, n_grid)
    r = jax.vmap(rate)(grid)
    cdf = jnp.concatenate([jnp.zeros(1), jnp.cumsum(0.5 * (r[1:] + r[:-1]) * jnp.diff(grid))])
    t = jnp.interp(jr.uniform(key, (n,)), cdf / cdf[-1], grid)
    return t, cdf[-1] / jax.vmap(rate)(t)


def dsm_loss(
    key: PRNGKey,
    model: ScoreModel,
    x0: Float[Array, "batch d"],
    *,
    weighting: Weighting = "noise",
    t_min: float = 1e-3,
    importance_sampling: bool = False,
    augment_fn: AugmentFn | None = None,
) -> Float[Array, ""]:
    r"""Monte Carlo estimate of the denoising score-matching loss on a batch ``x0`` (see module doc).

    Args:
        key: PRNG key for the times and noises.
        model: the :class:`~generative.score.ScoreModel` (network + process).
        x0: ``(batch, d)`` data (CoM-free for particle processes).
        weighting: ``"noise"`` (:math:`\lambda=\sigma^2`) or ``"likelihood"`` (:math:`\lambda=g^2`).
        t_min: smallest diffusion time (the score blows up as :math:`t\to0`; Song et al.
            use :math:`10^{-5}` for VE and :math:`10^{-3}` for VP in their App. C).
        importance_sampling: for ``"likelihood"``, draw :math:`t\propto g^2/\sigma^2`.
        augment_fn: optional ``(key, x0) -> x0`` applied to the batch first (an exact
            symmetry of the data, e.g. :func:`generative.periodic.random_translation`);
            it takes its own key, split off before the times and noises.

    The noised point is ``process.retract(a x0 + sigma eps)`` and the regression target
    ``process.denoising_target(x0, xt, eps, sigma)`` (``eps`` for Gaussian kernels).

    Returns:
        The scalar loss.
    """
    if x0.ndim != 2:
        raise ValueError(f"x0 must have shape (batch, d), got {x0.shape}")
    importance = importance_sampling and weighting == "likelihood"
    return _dsm_loss(model, key, x0, float(t_min), importance, weighting, augment_fn)


def _dsm_loss(model, key, x0, t_min, importance, weighting, augment_fn=None):
    process = model.process
    if augment_fn is not None:
        key_aug, key = jr.split(key)
        x0 = augment_fn(key_aug, x0)
    n, d = x0.shape
    key_t, key_eps = jr.split(key)
    t, inv_q = _sample_times(key_t, n, process, t_min, importance)
    eps = process.noise(key_eps, x0.shape).astype(x0.dtype)
    a, std = jax.vmap(process.marginal_coefficients)(t)
    # data may be float32 under x64: the noising runs in the promoted dtype, explicitly
    dtype = np.promote_types(a.dtype, x0.dtype)
    x0, eps = x0.astype(dtype), eps.astype(dtype)
    xt = process.retract(a[:, None] * x0 + std[:, None] * eps)
    target = process.denoising_target(x0, xt, eps, std[:, None])
    eps_hat = jax.vmap(model.noise_prediction)(t, xt)
    sq = jnp.sum((eps_hat - target) ** 2, axis=-1)
    if weighting == "noise":
        return jnp.mean(sq) / process.n_free_dims(d)
    if weighting == "likelihood":
        g2 = jax.vmap(process.diffusion_coefficient)(t) ** 2
        return jnp.mean(0.5 * inv_q * g2 / std**2 * sq)
    raise ValueError(f"weighting must be 'noise' or 'likelihood', got {weighting!r}")


class TrainResult(NamedTuple):
    """Output of :func:`train_score_model`.

    Attributes:
        model: the trained :class:`~generative.score.ScoreModel`.
        opt_state: the final optax state.
        losses: ``(n_steps - start_step,)`` per-step losses of the steps run in this call.
        start_step: the step this call started from (``> 0`` when resumed).
    """

    model: ScoreModel
    opt_state: optax.OptState
    losses: Float[Array, " steps"]
    start_step: int


def train_score_model(
    key: PRNGKey,
    model: ScoreModel,
    data: Float[Array, "n d"],
    *,
    n_steps: int,
    batch_size: int = 256,
    optimizer: optax.GradientTransformation | None = None,
    weighting: Weighting = "noise",
    t_min: float = 1e-3,
    importance_sampling: bool = False,
    augment_fn: AugmentFn | None = None,
    steps_per_call: int = 100,
    checkpoint_path: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    progress: bool = True,
) -> TrainResult:
    r"""Train a score model by denoising score matching with an optax optimiser.

    Each step draws a batch (with replacement) from ``data`` and one :math:`(t,\varepsilon)`
    per example, all from ``jr.fold_in(key, step)``, and applies one optimiser update to the
    inexact-array leaves of ``model.network``. The loop is the shared driver
    :func:`thermo.fit.fit` (chunks, checkpoint/resume, progress bar).

    Args:
        key: PRNG key of the whole run (the same key must be passed to resume).
        model: initial :class:`~generative.score.ScoreModel`.
        data: ``(n, d)`` training data (projected to the CoM-free subspace for particles).
        n_steps: total number of optimiser steps of the run.
        batch_size: examples per step.
        optimizer: an optax transformation (default ``optax.adam(1e-3)``).
        weighting, t_min, importance_sampling, augment_fn: see :func:`dsm_loss`.
        steps_per_call: steps per compiled ``lax.scan`` chunk (progress/checkpoint granularity).
        checkpoint_path: file for ``eqx.tree_serialise_leaves`` of ``(model, opt_state, step)``;
            if it exists the run resumes from it.
        checkpoint_every: save every this many steps (rounded up to whole chunks); default
            at the end of every chunk when ``checkpoint_path`` is set.
        progress: show a tqdm progress bar.

    Returns:
        :class:`TrainResult`.
    """
    data = jnp.asarray(data)
    if data.ndim != 2 or data.shape[0] == 0:
        raise ValueError(f"data must be a non-empty (n, d) array, got shape {data.shape}")
    if not bool(jnp.all(jnp.isfinite(data))):
        raise ValueError("data contains NaN or inf")
    n_steps = check_count(n_steps, "n_steps")
    batch_size = check_count(batch_size, "batch_size")
    steps_per_call = check_count(steps_per_call, "steps_per_call")
    check_real(t_min, "t_min", low=0.0)
    if weighting not in ("noise", "likelihood"):
        raise ValueError(f"weighting must be 'noise' or 'likelihood', got {weighting!r}")
    data = model.process.project(data)
    optimizer = _DEFAULT_OPTIMIZER if optimizer is None else optimizer
    importance = bool(importance_sampling) and weighting == "likelihood"
    result = fit(
        key,
        model,
        _dsm_step_loss,
        optimizer,
        n_steps,
        args=(data, int(batch_size), float(t_min), importance, weighting, augment_fn),
        steps_per_call=steps_per_call,
        checkpoint_path=checkpoint_path,
        checkpoint_every=checkpoint_every,
        progress=progress,
        desc="dsm",
    )
    return TrainResult(result.model, result.opt_state, result.losses, result.start_step)


def _dsm_step_loss(model, key, args):
    """One step's DSM loss: a batch drawn with replacement, then :func:`dsm_loss`'s estimate."""
    data, batch_size, t_min, importance, weighting, augment_fn = args
    k_idx, k_loss = jr.split(key)
    idx = jr.randint(k_idx, (batch_size,), 0, data.shape[0])
    return _dsm_loss(model, k_loss, data[idx], t_min, importance, weighting, augment_fn)


def ema_model(result: TrainResult) -> ScoreModel:
    """The model with the averaged parameters of a run trained with :func:`with_ema`."""
    return ema_params(result.model, result.opt_state)
