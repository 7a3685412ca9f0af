r"""Random-walk Metropolis (Metropolis et al. 1953; Hastings 1970).

Proposal :math:`x' = x + \sigma \xi`, :math:`\xi \sim \mathcal N(0, I)`, accepted with
probability :math:`\min(1, \pi(x')/\pi(x))` (the proposal is symmetric).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Bool, Float

from .._checks import check_positive
from .._typing import PRNGKey
from ..kernel import Kernel

__all__ = ["RWMInfo", "RWMState", "rwm"]


class RWMState(NamedTuple):
    """Random-walk Metropolis state.

    Attributes:
        position: ``(dim,)`` current point.
        logdensity: ``()`` unnormalised log density at ``position``.
    """

    position: Float[Array, " dim"]
    logdensity: Float[Array, ""]


class RWMInfo(NamedTuple):
    """Per-step information.

    Attributes:
        acceptance_rate: ``()`` Metropolis acceptance probability of the proposal.
        is_accepted: ``()`` whether the proposal was accepted.
        n_energy_evals: ``()`` energy evaluations spent by the step (1).
    """

    acceptance_rate: Float[Array, ""]
    is_accepted: Bool[Array, ""]
    n_energy_evals: Float[Array, ""]


def rwm(logdensity_fn: Callable[[Array], Array], step_size: float | Array) -> Kernel:
    r"""Gaussian random-walk Metropolis kernel.

    Args:
        logdensity_fn: ``(dim,) -> ()`` unnormalised log target, e.g. ``-beta*U(x)``.
        step_size: proposal standard deviation :math:`\sigma` (scalar or ``(dim,)``).

    Returns:
        :class:`thermo.kernel.Kernel` with ``init(position) -> RWMState`` and
        ``step(key, state) -> (RWMState, RWMInfo)``.

    Raises:
        ValueError: for a step size that is not positive and finite (every entry; checked
            when concrete).
    """
    check_positive(step_size, "step_size")

    def init(position: Float[Array, " dim"]) -> RWMState:
        position = jnp.asarray(position)
        return RWMState(position, logdensity_fn(position))

    def step(key: PRNGKey, state: RWMState) -> tuple[RWMState, RWMInfo]:
        key_prop, key_acc = jr.split(key)
        noise = jr.normal(key_prop, state.position.shape, state.position.dtype)
        proposal = state.position + step_size * noise
        logdensity_new = logdensity_fn(proposal)
        log_ratio = logdensity_new - state.logdensity
        log_ratio = jnp.where(jnp.isnan(log_ratio), -jnp.inf, log_ratio)
        acceptance = jnp.minimum(1.0, jnp.exp(log_ratio))
        accept = jnp.log(jr.uniform(key_acc, dtype=state.position.dtype)) < log_ratio
        new_state = jax.tree_util.tree_map(
            lambda a, b: jnp.where(accept, a, b),
            RWMState(proposal, logdensity_new),
            state,
        )
        return new_state, RWMInfo(acceptance, accept, jnp.ones((), jnp.float32))

    return Kernel(init, step)
