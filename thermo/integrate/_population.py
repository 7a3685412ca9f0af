r""":func:`run_population`: a vmapped population of a kernel through :func:`thermo.kernel.run`."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr

from .._checks import DivergenceWarning, warn_if_diverged
from .._typing import PRNGKey
from ..kernel import Kernel, run


def run_population(
    key: PRNGKey,
    kernel: Kernel,
    states: Any,
    n_steps: int,
    *,
    thin: int = 1,
    observable_fn: Callable[[Any, Any], Any] | None = None,
    progress: bool = False,
) -> tuple[Any, Any]:
    r"""Run a kernel on a vmapped population of states with :func:`thermo.kernel.run`.

    Each path gets its own key (``jr.split(key, n)``) and runs ``run`` under ``vmap``.
    With ``progress=True`` the population instead steps together (one ``vmap`` -ed step
    per scan iteration, so that :func:`thermo.kernel.run` can show a tqdm bar over host-side
    chunks); the law is the same, the random stream differs. Build ``states`` with
    ``jax.vmap(kernel.init)(positions)``.

    Args:
        key: PRNG key.
        kernel: any :class:`~thermo.kernel.Kernel`.
        states: a batched state whose leaves have leading axis ``n``.
        n_steps: steps per path (a positive multiple of ``thin``).
        thin: record every ``thin``-th step.
        observable_fn: what to record, ``(state, info) -> pytree`` for one path; ``None``
            records nothing.
        progress: show a progress bar (not under an outer ``jit``).

    Returns:
        ``(final_states, trace)``: trace leaves have shape ``(n, n_steps // thin, ...)``
        (``None`` without ``observable_fn``).
    """
    leaves = jax.tree_util.tree_leaves(states)
    if not leaves:
        raise ValueError("states is empty")
    n = leaves[0].shape[0] if leaves[0].ndim else 0
    if n == 0:
        raise ValueError("states must be batched with a non-empty leading axis")
    if progress:
        step_fn = kernel.step if isinstance(kernel, Kernel) else kernel

        def batched_step(k, s):
            return jax.vmap(step_fn)(jr.split(k, n), s)

        obs = None if observable_fn is None else jax.vmap(observable_fn)
        with warnings.catch_warnings():  # warned once below, for the population
            warnings.simplefilter("ignore", DivergenceWarning)
            final, trace = run(
                key, batched_step, states, n_steps, thin=thin, observable_fn=obs, progress=True
            )
        warn_if_diverged(states, final, "run_population")
        if trace is not None:
            trace = jax.tree_util.tree_map(lambda a: jnp.moveaxis(a, 0, 1), trace)
        return final, trace

    keys = jr.split(key, n)

    def one(k, s):
        return run(k, kernel, s, n_steps, thin=thin, observable_fn=observable_fn)

    final, trace = jax.vmap(one)(keys, states)
    warn_if_diverged(states, final, "run_population")
    return final, trace
