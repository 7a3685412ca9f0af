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

:func:`train` runs optax steps in chunks of one compiled ``lax.scan``. Step ``k`` draws
its batch and noise from ``jr.fold_in(key, k)``, so the result does not depend on how the
run is chunked, and a run resumed from a checkpoint (``eqx.tree_serialise_leaves`` of
``(model, opt_state, step)``) reproduces an uninterrupted one.
"""

from __future__ import annotations

import os
from typing import Any, Literal, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, Float

from thermo._checks import check_count, check_real
from thermo._typing import PRNGKey

from .score import ScoreModel

__all__ = ["dsm_loss", "train", "TrainResult", "EMAState", "with_ema", "ema_model"]

Weighting = Literal["noise", "likelihood"]

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
    model: ScoreModel,
    key: PRNGKey,
    x0: Float[Array, "batch d"],
    *,
    weighting: Weighting = "noise",
    t_min: float = 1e-3,
    importance_sampling: bool = False,
) -> Float[Array, ""]:
    r"""Monte Carlo estimate of the denoising score-matching loss on a batch ``x0`` (see module doc).

    Args:
        model: the :class:`~generative.score.ScoreModel` (network + process).
        key: PRNG key for the times and noises.
        x0: ``(batch, d)`` data (CoM-free for particle processes).
        weighting: ``"noise"`` (:math:`\lambda=\sigma^2`) or ``"likelihood"`` (:math:`\lambda=g^2`).
        t_min: smallest diffusion time (the score blows up as :math:`t\to0`; Song et al.
            use :math:`10^{-5}` for VE and :math:`10^{-3}` for VP in their App. C).
        importance_sampling: for ``"likelihood"``, draw :math:`t\propto g^2/\sigma^2`.

    Returns:
        The scalar loss.
    """
    if x0.ndim != 2:
        raise ValueError(f"x0 must have shape (batch, d), got {x0.shape}")
    importance = importance_sampling and weighting == "likelihood"
    return _dsm_loss(model, key, x0, float(t_min), importance, weighting)


def _dsm_loss(model, key, x0, t_min, importance, weighting):
    process = model.process
    n, d = x0.shape
    key_t, key_eps = jr.split(key)
    t, inv_q = _sample_times(key_t, n, process, t_min, importance)
    eps = process.noise(key_eps, x0.shape).astype(x0.dtype)
    a, std = jax.vmap(process.marginal_coefficients)(t)
    xt = a[:, None] * x0 + std[:, None] * eps
    eps_hat = jax.vmap(model.noise_prediction)(t, xt)
    sq = jnp.sum((eps_hat - eps) ** 2, axis=-1)
    if weighting == "noise":
        return jnp.mean(sq) / process.n_free_dims(d)
    if weighting == "likelihood":
        g2 = jax.vmap(process.diffusion_coefficient)(t) ** 2
        return jnp.mean(0.5 * inv_q * g2 / std**2 * sq)
    raise ValueError(f"weighting must be 'noise' or 'likelihood', got {weighting!r}")


class TrainResult(NamedTuple):
    """Output of :func:`train`.

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


def train(
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
    steps_per_call: int = 100,
    checkpoint_path: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    progress: bool = True,
) -> TrainResult:
    r"""Train a score model by denoising score matching with an optax optimiser.

    Each step draws a batch (with replacement) from ``data`` and one :math:`(t,\varepsilon)`
    per example, all from ``jr.fold_in(key, step)``, and applies one optimiser update to the
    inexact-array leaves of ``model.network``.

    Args:
        key: PRNG key of the whole run (the same key must be passed to resume).
        model: initial :class:`~generative.score.ScoreModel`.
        data: ``(n, d)`` training data (projected to the CoM-free subspace for particles).
        n_steps: total number of optimiser steps of the run.
        batch_size: examples per step.
        optimizer: an optax transformation (default ``optax.adam(1e-3)``).
        weighting, t_min, importance_sampling: see :func:`dsm_loss`.
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
    data = model.process.project(data)
    optimizer = _DEFAULT_OPTIMIZER if optimizer is None else optimizer
    importance = importance_sampling and weighting == "likelihood"

    params, static = eqx.partition(model, eqx.is_inexact_array)
    opt_state = optimizer.init(params)
    step0 = 0
    if checkpoint_path is not None and os.path.exists(checkpoint_path):
        params, opt_state, step_arr = eqx.tree_deserialise_leaves(
            checkpoint_path, (params, opt_state, jnp.asarray(0, dtype=jnp.int32))
        )
        step0 = int(step_arr)
        if step0 > n_steps:
            raise ValueError(f"checkpoint is at step {step0}, beyond n_steps={n_steps}")

    every = checkpoint_every if checkpoint_every is not None else steps_per_call
    losses = []
    last_saved = step0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_steps, initial=step0, desc="dsm", unit="step")
    step = step0
    while step < n_steps:
        hi = min(step + steps_per_call, n_steps)
        (params, opt_state), chunk_losses = _train_chunk(
            params,
            opt_state,
            jnp.arange(step, hi),
            key,
            data,
            static,
            optimizer,
            batch_size,
            float(t_min),
            importance,
            weighting,
        )
        losses.append(chunk_losses)
        step = hi
        if bar is not None:
            bar.update(len(chunk_losses))
            bar.set_postfix(loss=float(chunk_losses[-1]))
        if checkpoint_path is not None and (step - last_saved >= every or step == n_steps):
            _save(checkpoint_path, (params, opt_state, jnp.asarray(step, dtype=jnp.int32)))
            last_saved = step
    if bar is not None:
        bar.close()
    all_losses = jnp.concatenate(losses) if losses else jnp.zeros((0,))
    if not bool(jnp.all(jnp.isfinite(all_losses))):
        raise FloatingPointError("DSM loss became non-finite during training")
    return TrainResult(eqx.combine(params, static), opt_state, all_losses, step0)


@eqx.filter_jit
def _train_chunk(
    params, opt_state, steps, key, data, static, optimizer, batch_size, t_min, importance, weighting
):
    """``len(steps)`` optimiser steps in one ``lax.scan``; step ``k`` uses ``fold_in(key, k)``.

    Module-level so that repeated runs with the same optimiser object and model structure
    reuse one compilation.
    """

    def loss_fn(p, k):
        k_idx, k_loss = jr.split(k)
        idx = jr.randint(k_idx, (batch_size,), 0, data.shape[0])
        model = eqx.combine(p, static)
        return _dsm_loss(model, k_loss, data[idx], t_min, importance, weighting)

    def one_step(carry, step):
        p, s = carry
        loss, grads = jax.value_and_grad(loss_fn)(p, jr.fold_in(key, step))
        updates, s = optimizer.update(grads, s, p)
        p = optax.apply_updates(p, updates)
        return (p, s), loss

    return jax.lax.scan(one_step, (params, opt_state), steps)


class EMAState(NamedTuple):
    """State of :func:`with_ema`.

    Attributes:
        inner: the wrapped optimiser's state.
        ema: the exponential moving average of the parameters (same pytree as them).
        count: ``()`` int32, number of updates so far.
    """

    inner: optax.OptState
    ema: Any
    count: Array


def with_ema(optimizer: optax.GradientTransformation, decay: float) -> optax.GradientTransformation:
    r"""Wrap an optax optimiser so that its state also tracks an EMA of the parameters.

    After each update :math:`\theta_{k+1} = \theta_k + u_k` the state holds
    :math:`\bar\theta_{k+1} = d_k\bar\theta_k + (1 - d_k)\theta_{k+1}` with
    :math:`d_k = \min(d, (1 + k)/(10 + k))`, the warm-started decay of TensorFlow's
    ``ExponentialMovingAverage`` (``num_updates``), so early averages are not dominated by
    the initial weights. Diffusion models are sampled with the averaged weights (Song &
    Ermon 2020, "Improved techniques", Technique 5; Ho et al. 2020 use :math:`d = 0.9999`).
    The updates themselves are those of ``optimizer``. Because the average lives in the
    optimiser state, :func:`train` checkpoints and resumes it with everything else; read
    it with :func:`ema_model`.

    Args:
        optimizer: the optax transformation to wrap.
        decay: :math:`d\in[0, 1)`.
    """
    check_real(decay, "EMA decay", low=0.0, high=1.0, high_open=True)

    def init(params):
        return EMAState(
            optimizer.init(params),
            jax.tree_util.tree_map(jnp.asarray, params),
            jnp.zeros((), jnp.int32),
        )

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("with_ema needs the parameters in update(updates, state, params)")
        updates, inner = optimizer.update(updates, state.inner, params)
        new_params = optax.apply_updates(params, updates)
        k = state.count.astype(jnp.float32)
        d = jnp.minimum(decay, (1.0 + k) / (10.0 + k))
        ema = jax.tree_util.tree_map(
            lambda e, p: (d * e + (1.0 - d) * p).astype(e.dtype), state.ema, new_params
        )
        return updates, EMAState(inner, ema, state.count + 1)

    return optax.GradientTransformation(init, update)


def ema_model(result: TrainResult) -> ScoreModel:
    """The model with the averaged parameters of a run trained with :func:`with_ema`."""
    if not isinstance(result.opt_state, EMAState):
        raise ValueError("the run was not trained with a with_ema(...) optimiser")
    _, static = eqx.partition(result.model, eqx.is_inexact_array)
    return eqx.combine(result.opt_state.ema, static)


def _save(path, tree):
    tmp = f"{path}.tmp"
    eqx.tree_serialise_leaves(tmp, tree)
    os.replace(tmp, path)
