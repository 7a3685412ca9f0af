r"""The one training driver: optax steps in compiled chunks, EMA, checkpoint/resume, progress.

Every network in :mod:`generative` and :mod:`bridges` is trained by the same loop:

.. math:: \theta_{k+1} = \theta_k + \mathrm{update}\big(\nabla_\theta\,
          \mathcal L(\theta_k;\, \kappa_k,\, \text{args})\big),

where :math:`\kappa_k` is step :math:`k`'s PRNG key and ``args`` is a pytree of arrays
(data, settings as arrays) that the loss reads. Two pieces:

* :func:`fit_steps` — the pure, traceable loop: one ``lax.scan`` over a ``(steps, 2)``
  array of keys. Use it inside your own ``jit`` (an inner loop of iDEM, a bridge
  iteration).
* :func:`fit` — the host driver: it runs :func:`fit_steps` in chunks of
  ``steps_per_call`` steps through one module-level ``eqx.filter_jit`` (so a repeated call
  with the same loss function object, optimiser object and shapes reuses the compilation),
  shows a tqdm bar, checkpoints ``(trainable leaves, optimiser state, step)`` with
  ``eqx.tree_serialise_leaves`` and resumes from the checkpoint.

**Keys.** Step :math:`k`'s key depends only on ``key`` and :math:`k`, never on how the run
is chunked or where it was resumed: ``step_keys="fold_in"`` gives
:math:`\kappa_k = \mathrm{fold\_in}(\text{key}, k)`, ``step_keys="split"`` gives
:math:`\kappa_k = \mathrm{split}(\text{key}, n_\text{steps})[k]`. A run killed after a
checkpoint and resumed with the same arguments therefore ends bit-identical to an
uninterrupted run.

**EMA.** :func:`with_ema` wraps any optax optimiser so that its state also carries an
exponential moving average of the parameters (so it is checkpointed with the rest);
:func:`ema_params` reads it.

**Loss functions** must be stable objects (a module-level function or an
``eqx.Partial``/``functools.partial`` of one with hashable static settings): they are a
static argument of the compiled chunk, and a fresh closure per call recompiles.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, Float

from ._typing import PRNGKey

__all__ = ["FitResult", "fit", "fit_steps", "step_keys", "EMAState", "with_ema", "ema_params"]

StepKeys = Literal["fold_in", "split"]


class FitResult(NamedTuple):
    """Output of :func:`fit`.

    Attributes:
        model: the trained pytree (the ``model`` passed in, with its inexact-array leaves
            updated).
        opt_state: the final optimiser state (holds the EMA under :func:`with_ema`).
        losses: ``(n_steps - start_step,)`` losses of the steps run by this call.
        aux: the stacked auxiliary outputs of those steps (``has_aux=True``), else ``None``.
        start_step: the step this call started from (``> 0`` when resumed).
    """

    model: Any
    opt_state: optax.OptState
    losses: Float[Array, " steps"]
    aux: Any
    start_step: int


def step_keys(key: PRNGKey, start: int, stop: int, n_steps: int, scheme: StepKeys) -> Array:
    r"""Keys :math:`\kappa_k` of steps ``start <= k < stop`` of an ``n_steps`` run (module doc)."""
    if scheme == "fold_in":
        return jax.vmap(lambda k: jr.fold_in(key, k))(jnp.arange(start, stop))
    if scheme == "split":
        return jr.split(key, n_steps)[start:stop]
    raise ValueError(f"step_keys must be 'fold_in' or 'split', got {scheme!r}")


def fit_steps(
    model: Any,
    opt_state: optax.OptState,
    keys: Array,
    loss_fn: Callable,
    optimizer: optax.GradientTransformation,
    args: Any = None,
    *,
    has_aux: bool = False,
):
    r"""``len(keys)`` optimiser steps in one ``lax.scan`` (pure; call it under ``jit``).

    Step :math:`k` computes ``loss_fn(model_k, keys[k], args)`` (with ``has_aux``, a
    ``(loss, aux)`` pair), differentiates it with respect to the inexact-array leaves of
    the model and applies ``optimizer``'s update.

    Args:
        model: the pytree to train (an ``eqx.Module``, a parameter pytree).
        opt_state: ``optimizer.init`` of the model's inexact-array leaves.
        keys: ``(steps, ...)`` one PRNG key per step.
        loss_fn: ``(model, key, args) -> loss`` (or ``(loss, aux)``).
        optimizer: an optax transformation.
        args: pytree of arrays the loss reads (traced, so new data does not recompile).
        has_aux: whether ``loss_fn`` returns ``(loss, aux)``.

    Returns:
        ``(model, opt_state, losses (steps,), aux)`` with ``aux`` stacked over steps
        (``None`` without ``has_aux``).
    """
    params, static = eqx.partition(model, eqx.is_inexact_array)

    def objective(p, k):
        return loss_fn(eqx.combine(p, static), k, args)

    grad_fn = jax.value_and_grad(objective, has_aux=has_aux)

    def one_step(carry, k):
        p, s = carry
        value, grads = grad_fn(p, k)
        loss, aux = value if has_aux else (value, None)
        # optax 0.2.8 (adam's bias correction) computes float ** int32 step count
        with jax.numpy_dtype_promotion("standard"):
            updates, s = optimizer.update(grads, s, p)
        p = optax.apply_updates(p, updates)
        return (p, s), (loss, aux)

    (params, opt_state), (losses, aux) = jax.lax.scan(one_step, (params, opt_state), keys)
    return eqx.combine(params, static), opt_state, losses, aux


@eqx.filter_jit
def _fit_chunk(model, opt_state, keys, loss_fn, optimizer, args, has_aux):
    return fit_steps(model, opt_state, keys, loss_fn, optimizer, args, has_aux=has_aux)


def _check_count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not float(value).is_integer():
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def fit(
    key: PRNGKey,
    model: Any,
    loss_fn: Callable,
    optimizer: optax.GradientTransformation,
    n_steps: int,
    *,
    args: Any = None,
    has_aux: bool = False,
    opt_state: optax.OptState | None = None,
    step_keys_scheme: StepKeys | Array = "fold_in",
    steps_per_call: int = 100,
    checkpoint_path: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    progress: bool = False,
    desc: str = "fit",
) -> FitResult:
    r"""Train ``model`` for ``n_steps`` optimiser steps of ``loss_fn`` (module doc).

    Args:
        key: PRNG key of the whole run (pass the same key to resume).
        model: the pytree to train; its inexact-array leaves are the parameters.
        loss_fn: ``(model, key, args) -> loss`` (``(loss, aux)`` with ``has_aux``); a stable
            object (module-level function or partial), not a fresh closure per call.
        optimizer: an optax transformation (wrap it with :func:`with_ema` for an EMA).
        n_steps: total steps of the run (resumed runs count from 0 too).
        args: pytree of arrays passed to ``loss_fn`` (traced).
        has_aux: ``loss_fn`` returns ``(loss, aux)``; ``aux`` is stacked over steps.
        opt_state: initial optimiser state (default ``optimizer.init`` of the parameters).
        step_keys_scheme: ``"fold_in"`` or ``"split"`` (module doc, "Keys"), or an explicit
            ``(n_steps, ...)`` array of the steps' keys (for a caller with its own scheme).
        steps_per_call: steps per compiled chunk (progress and checkpoint granularity).
        checkpoint_path: file of ``(parameters, opt_state, step)``; resumed from when it
            exists. Written atomically (temporary file and ``os.replace``).
        checkpoint_every: save at least this many steps apart (rounded up to whole chunks);
            default every chunk. The final step is always saved.
        progress: tqdm bar with the last loss.
        desc: the bar's label.

    Returns:
        :class:`FitResult`.

    Raises:
        ValueError: non-integer or non-positive counts, a checkpoint beyond ``n_steps``.
        FloatingPointError: a non-finite loss (the checkpoint before it is kept).
    """
    n_steps = _check_count("n_steps", n_steps, 1)
    steps_per_call = _check_count("steps_per_call", steps_per_call, 1)
    every = (
        steps_per_call
        if checkpoint_every is None
        else _check_count("checkpoint_every", checkpoint_every, 1)
    )
    if isinstance(step_keys_scheme, str):
        step_keys(key, 0, 0, 1, step_keys_scheme)  # validates the scheme name
        all_keys = jr.split(key, n_steps) if step_keys_scheme == "split" else None
    else:
        all_keys = jnp.asarray(step_keys_scheme)
        if all_keys.shape[:1] != (n_steps,):
            raise ValueError(
                f"explicit step keys must have leading dimension n_steps={n_steps}, "
                f"got shape {all_keys.shape}"
            )
    params, static = eqx.partition(model, eqx.is_inexact_array)
    if not jax.tree_util.tree_leaves(params):
        raise ValueError("the model has no inexact-array leaves to train")
    if opt_state is None:
        opt_state = optimizer.init(params)
    step0 = 0
    if checkpoint_path is not None and os.path.exists(checkpoint_path):
        params, opt_state, step_arr = eqx.tree_deserialise_leaves(
            checkpoint_path, (params, opt_state, jnp.asarray(0, dtype=jnp.int32))
        )
        step0 = int(step_arr)
        if step0 > n_steps:
            raise ValueError(
                f"checkpoint {checkpoint_path} is at step {step0}, beyond n_steps={n_steps}"
            )
    model = eqx.combine(params, static)

    from tqdm.auto import tqdm

    losses, auxes = [], []
    last_saved = step0
    step = step0
    with tqdm(total=n_steps, initial=step0, desc=desc, unit="step", disable=not progress) as bar:
        while step < n_steps:
            hi = min(step + steps_per_call, n_steps)
            if all_keys is not None:
                keys = all_keys[step:hi]
            else:
                keys = step_keys(key, step, hi, n_steps, "fold_in")
            model, opt_state, chunk_losses, chunk_aux = _fit_chunk(
                model, opt_state, keys, loss_fn, optimizer, args, has_aux
            )
            if not bool(jnp.all(jnp.isfinite(chunk_losses))):
                bad = step + int(np.argmax(~np.isfinite(np.asarray(chunk_losses))))
                raise FloatingPointError(
                    f"{desc}: the loss became non-finite at step {bad}"
                    + (f"; the checkpoint at step {last_saved} is kept" if checkpoint_path else "")
                )
            losses.append(chunk_losses)
            auxes.append(chunk_aux)
            step = hi
            bar.update(len(chunk_losses))
            if progress:
                bar.set_postfix(loss=f"{float(chunk_losses[-1]):.4g}")
            if checkpoint_path is not None and (step - last_saved >= every or step == n_steps):
                params, _ = eqx.partition(model, eqx.is_inexact_array)
                _save(checkpoint_path, (params, opt_state, jnp.asarray(step, dtype=jnp.int32)))
                last_saved = step
    losses_all = jnp.concatenate(losses) if losses else jnp.zeros((0,))
    aux_all = None
    if has_aux and auxes:
        aux_all = jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *auxes)
    return FitResult(model, opt_state, losses_all, aux_all, step0)


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


def with_ema(
    optimizer: optax.GradientTransformation, decay: float, *, warmup: bool = True
) -> optax.GradientTransformation:
    r"""Wrap an optax optimiser so that its state also tracks an EMA of the parameters.

    After each update :math:`\theta_{k+1} = \theta_k + u_k` the state holds
    :math:`\bar\theta_{k+1} = d_k\bar\theta_k + (1 - d_k)\theta_{k+1}`, starting from
    :math:`\bar\theta_0 = \theta_0`. With ``warmup`` (default)
    :math:`d_k = \min(d, (1 + k)/(10 + k))`, the warm-started decay of TensorFlow's
    ``ExponentialMovingAverage`` (``num_updates``), so early averages are not dominated by
    the initial weights; without it :math:`d_k = d`. Diffusion models are sampled with the
    averaged weights (Song & Ermon 2020, "Improved techniques", Technique 5; Ho et al. 2020
    use :math:`d = 0.9999`). The updates themselves are those of ``optimizer``; because the
    average lives in the optimiser state, :func:`fit` checkpoints and resumes it with
    everything else. Read it with :func:`ema_params`.

    Args:
        optimizer: the optax transformation to wrap.
        decay: :math:`d\in[0, 1)`.
        warmup: use the warm-started decay.
    """
    if not 0.0 <= float(decay) < 1.0:
        raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
    decay = float(decay)

    def init(params):
        return EMAState(
            optimizer.init(params),
            jax.tree_util.tree_map(jnp.asarray, params),
            jnp.zeros((), jnp.int32),
        )

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("with_ema needs the parameters in update(updates, state, params)")
        # optax 0.2.8 (adam's bias correction) computes float ** int32 step count
        with jax.numpy_dtype_promotion("standard"):
            updates, inner = optimizer.update(updates, state.inner, params)
        new_params = optax.apply_updates(params, updates)
        if warmup:
            k = state.count.astype(jnp.float32)
            d = jnp.minimum(decay, (1.0 + k) / (10.0 + k))
        else:
            d = decay
        ema = jax.tree_util.tree_map(
            lambda e, p: (d * e + (1.0 - d) * p).astype(e.dtype), state.ema, new_params
        )
        return updates, EMAState(inner, ema, state.count + 1)

    return optax.GradientTransformation(init, update)


def ema_params(model: Any, opt_state: optax.OptState) -> Any:
    """``model`` with its inexact-array leaves replaced by the EMA held in ``opt_state``."""
    if not isinstance(opt_state, EMAState):
        raise ValueError("the run was not trained with a with_ema(...) optimiser")
    _, static = eqx.partition(model, eqx.is_inexact_array)
    return eqx.combine(opt_state.ema, static)


def _save(path, tree):
    tmp = f"{path}.tmp"
    eqx.tree_serialise_leaves(tmp, tree)
    os.replace(tmp, path)
