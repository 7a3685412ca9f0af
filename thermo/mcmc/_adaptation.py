r"""Step-size adaptation by dual averaging (Nesterov 2009; Hoffman & Gelman 2014, alg. 5).

With :math:`\delta` the target acceptance and :math:`\alpha_t` the observed one,

.. math::
    \bar H_t = (1 - \tfrac{1}{t + t_0}) \bar H_{t-1} + \tfrac{1}{t+t_0}(\delta - \alpha_t),\quad
    \log\epsilon_t = \mu - \tfrac{\sqrt t}{\gamma}\bar H_t,\quad
    \log\bar\epsilon_t = t^{-\kappa}\log\epsilon_t + (1 - t^{-\kappa})\log\bar\epsilon_{t-1},

with :math:`\mu = \log(10\,\epsilon_0)`, :math:`\gamma = 0.05`, :math:`t_0 = 10`,
:math:`\kappa = 0.75`: the constants recommended by Hoffman & Gelman (2014, §3.2.1).
After warm-up the averaged :math:`\bar\epsilon` is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float

from .._checks import check_count, check_positive, check_real
from .._typing import PRNGKey
from ..kernel import Kernel

__all__ = ["DualAveragingState", "adapt_step_size", "dual_averaging"]


class DualAveragingState(NamedTuple):
    """Dual-averaging state (all scalars).

    Attributes:
        log_step_size: current :math:`\\log\\epsilon_t`.
        log_step_size_avg: averaged :math:`\\log\\bar\\epsilon_t`.
        step: iteration :math:`t`.
        avg_error: :math:`\\bar H_t`.
        mu: shrinkage target :math:`\\mu = \\log(10\\epsilon_0)`.
    """

    log_step_size: Float[Array, ""]
    log_step_size_avg: Float[Array, ""]
    step: Float[Array, ""]
    avg_error: Float[Array, ""]
    mu: Float[Array, ""]


def dual_averaging(
    target_acceptance: float = 0.8,
    gamma: float = 0.05,
    t0: float = 10.0,
    kappa: float = 0.75,
) -> tuple[
    Callable[[Any], DualAveragingState], Callable[[DualAveragingState, Any], DualAveragingState]
]:
    """Dual-averaging step-size schedule as an optax-style ``(init, update)`` pair.

    Args:
        target_acceptance: :math:`\\delta` (0.8 is Stan's HMC default; use ~0.57 for MALA,
            Roberts & Rosenthal 1998).
        gamma, t0, kappa: Hoffman & Gelman's constants (see the module docstring).

    Returns:
        ``init(initial_step_size) -> state`` and ``update(state, acceptance) -> state``.
    """
    check_real(
        target_acceptance, "target_acceptance", low=0.0, high=1.0, low_open=True, high_open=True
    )
    check_positive(gamma, "gamma")
    check_positive(t0, "t0", allow_zero=True)
    check_real(kappa, "kappa", low=0.5, high=1.0, low_open=True)

    def init(initial_step_size) -> DualAveragingState:
        log_eps = jnp.log(jnp.asarray(initial_step_size, dtype=float))
        zero = jnp.zeros_like(log_eps)
        return DualAveragingState(log_eps, zero, zero, zero, jnp.log(10.0) + log_eps)

    def update(state: DualAveragingState, acceptance) -> DualAveragingState:
        t = state.step + 1.0
        weight = 1.0 / (t + t0)
        avg_error = (1.0 - weight) * state.avg_error + weight * (target_acceptance - acceptance)
        log_eps = state.mu - jnp.sqrt(t) / gamma * avg_error
        eta = t ** (-kappa)
        log_eps_avg = eta * log_eps + (1.0 - eta) * state.log_step_size_avg
        return DualAveragingState(log_eps, log_eps_avg, t, avg_error, state.mu)

    return init, update


def adapt_step_size(
    key: PRNGKey,
    kernel_factory: Callable[[Array], Kernel],
    states: Any,
    n_steps: int,
    *,
    initial_step_size: float,
    target_acceptance: float = 0.8,
) -> tuple[Any, Float[Array, ""]]:
    r"""Warm up a population of chains with one shared step size tuned by dual averaging.

    Every step runs ``kernel_factory(step_size).step`` vmapped over the chains (leading
    axis of ``states``) and feeds the chain-averaged acceptance rate to dual averaging.

    Args:
        key: PRNG key.
        kernel_factory: ``step_size -> Kernel`` (e.g. ``lambda e: hmc(logdensity_fn, e, 10)``).
        states: batched kernel states, leading axis = chains.
        n_steps: number of warm-up steps (static).
        initial_step_size: :math:`\epsilon_0`.
        target_acceptance: :math:`\delta`.

    Returns:
        ``(states, step_size)``: the warmed-up states and the averaged step size
        :math:`\bar\epsilon`.
    """
    n_steps = check_count(n_steps, "n_steps")
    check_positive(initial_step_size, "initial_step_size")
    da_init, da_update = dual_averaging(target_acceptance)

    def body(carry, key):
        states, da = carry
        kernel = kernel_factory(jnp.exp(da.log_step_size))
        n_chains = jax.tree_util.tree_leaves(states)[0].shape[0]
        states, info = jax.vmap(kernel.step)(jr.split(key, n_chains), states)
        acceptance = jnp.mean(info.acceptance_rate)
        return (states, da_update(da, acceptance)), acceptance

    (states, da), _ = jax.lax.scan(
        body, (states, da_init(initial_step_size)), jr.split(key, n_steps)
    )
    return states, jnp.exp(da.log_step_size_avg)
