r"""The one stepper protocol and the one ``lax.scan`` driver.

Every MCMC kernel, Langevin integrator with work bookkeeping, reverse-SDE sampler
and bridge iteration in the project is a :class:`Kernel`:

.. code-block:: python

    state = kernel.init(position, ...)
    state, info = kernel.step(key, state)

``State`` and ``Info`` are NamedTuples (pytrees). :func:`run` drives any kernel
with ``jax.lax.scan``, optionally thinning, recording an observable, and showing a
progress bar by running the scan in host-side chunks (which is also what makes a
long run resumable: each chunk ends in a plain pytree that can be checkpointed).
The protocol follows blackjax's ``init``/``step`` split (Cabezas et al. 2024).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

from ._checks import DivergenceWarning, check_count, warn_if_diverged
from ._typing import PRNGKey

__all__ = ["DivergenceWarning", "Kernel", "run"]


class Kernel(NamedTuple):
    """A pair of pure functions.

    Attributes:
        init: ``init(position, *args, **kwargs) -> State``.
        step: ``step(key, state) -> (State, Info)``; pure, un-jitted, vmappable.
    """

    init: Callable[..., Any]
    step: Callable[[PRNGKey, Any], tuple[Any, Any]]


def _default_observable(state: Any, info: Any) -> Any:
    del info
    return state


def run(
    key: PRNGKey,
    kernel: Kernel | Callable[[PRNGKey, Any], tuple[Any, Any]],
    state: Any,
    n_steps: int,
    *,
    thin: int = 1,
    observable_fn: Callable[[Any, Any], Any] | None = _default_observable,
    progress: bool = False,
    n_chunks: int = 20,
) -> tuple[Any, Any]:
    r"""Run ``n_steps`` of a kernel with ``lax.scan`` and return ``(final_state, trace)``.

    The trace stacks ``observable_fn(state, info)`` after every ``thin``-th step, so it
    has leading length ``n_steps // thin``. Pass ``observable_fn=None`` to record
    nothing (the trace is then ``None``).

    Args:
        key: PRNG key; split into one key per step (per record, then per step when
            ``thin > 1``), never reused.
        kernel: a :class:`Kernel` or a bare ``step(key, state)`` function.
        state: the initial state (from ``kernel.init``).
        n_steps: number of steps; must be a positive multiple of ``thin``.
        thin: record every ``thin``-th state.
        observable_fn: what to record, ``(state, info) -> pytree``.
        progress: show a tqdm bar; the scan then runs in ``n_chunks`` host-side chunks
            of one compiled function (one compile, same result as a single scan).
        n_chunks: number of chunks when ``progress`` is set.

    Returns:
        ``(final_state, trace)``.

    Raises:
        ValueError: when ``n_steps`` or ``thin`` is not a whole number >= 1, or
            ``n_steps`` is not a multiple of ``thin``.

    Warns:
        DivergenceWarning: called outside ``jit``/``vmap``, when the final state's
            ``position`` is NaN/inf or has grown more than ``1e6`` times its initial scale
            (an unstable step size); checked once on the host after the run.
    """
    step_fn = kernel.step if isinstance(kernel, Kernel) else kernel
    n_steps = check_count(n_steps, "n_steps")
    thin = check_count(thin, "thin")
    if n_steps % thin != 0:
        raise ValueError(f"n_steps={n_steps} must be a positive multiple of thin={thin}")
    n_records = n_steps // thin

    inner = functools.partial(_record_step, step_fn, thin, observable_fn)

    keys = jr.split(key, n_records)
    if not progress:
        final, trace = jax.lax.scan(inner, state, keys)
        warn_if_diverged(state, final, "run")
        return final, trace
    initial = state

    from tqdm.auto import tqdm

    n_chunks = max(1, min(int(n_chunks), n_records))
    bounds = jnp.linspace(0, n_records, n_chunks + 1).astype(int).tolist()
    traces = []
    with tqdm(total=n_steps, desc="run", unit="step") as bar:
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            if hi == lo:
                continue
            state, tr = _scan_chunk(step_fn, thin, observable_fn, state, keys[lo:hi])
            traces.append(tr)
            bar.update((hi - lo) * thin)
    warn_if_diverged(initial, state, "run")
    if observable_fn is None:
        return state, None
    trace = jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs, axis=0), *traces)
    return state, trace


def _record_step(step_fn, thin, observable_fn, state, key):
    """One record of :func:`run`: ``thin`` steps, then the observable."""
    if thin == 1:
        # One step on the record's own key: no inner scan of length 1 and no extra
        # split per step (a visible share of a single-chain HMC step on CPU).
        state, info = step_fn(key, state)
        obs = None if observable_fn is None else observable_fn(state, info)
        return state, obs
    keys = jr.split(key, thin)

    def one(s, k):
        s, info = step_fn(k, s)
        return s, info

    state, infos = jax.lax.scan(one, state, keys)
    last_info = jax.tree_util.tree_map(lambda a: a[-1], infos)
    obs = None if observable_fn is None else observable_fn(state, last_info)
    return state, obs


@eqx.filter_jit
def _scan_chunk(step_fn, thin, observable_fn, state, keys):
    """One host-side chunk of :func:`run` with ``progress``; module-level, so a repeated
    call with the same kernel and chunk length reuses the compiled scan."""
    return jax.lax.scan(functools.partial(_record_step, step_fn, thin, observable_fn), state, keys)
