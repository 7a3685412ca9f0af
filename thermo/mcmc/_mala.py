r"""Metropolis-adjusted Langevin algorithm (Roberts & Tweedie 1996).

Proposal (Euler step of overdamped Langevin with step :math:`\epsilon`):

.. math:: x' = x + \epsilon \nabla \log\pi(x) + \sqrt{2\epsilon}\,\xi,

accepted with probability
:math:`\min\bigl(1, \frac{\pi(x') q(x \mid x')}{\pi(x) q(x' \mid x)}\bigr)`, where
:math:`\log q(y \mid x) = -\lVert y - x - \epsilon\nabla\log\pi(x)\rVert^2 / (4\epsilon)`.
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

__all__ = ["MALAInfo", "MALAState", "mala"]


class MALAState(NamedTuple):
    """MALA state (the log density and its gradient are cached).

    Attributes:
        position: ``(dim,)``.
        logdensity: ``()``.
        logdensity_grad: ``(dim,)``.
    """

    position: Float[Array, " dim"]
    logdensity: Float[Array, ""]
    logdensity_grad: Float[Array, " dim"]


class MALAInfo(NamedTuple):
    """Per-step information.

    Attributes:
        acceptance_rate: ``()`` Metropolis–Hastings acceptance probability.
        is_accepted: ``()``.
        n_energy_evals: ``()`` energy-and-gradient evaluations spent (1).
    """

    acceptance_rate: Float[Array, ""]
    is_accepted: Bool[Array, ""]
    n_energy_evals: Float[Array, ""]


def mala(
    logdensity_fn: Callable[[Array], Array],
    step_size: float | Array,
    *,
    project_fn: Callable[[Array], Array] | None = None,
) -> Kernel:
    r"""MALA kernel.

    Args:
        logdensity_fn: ``(dim,) -> ()`` unnormalised log target.
        step_size: :math:`\epsilon` in the proposal above (a variance-like step).
        project_fn: optional linear orthogonal projector applied to the drift and the
            noise (e.g. centre-of-mass removal for particle systems, which keeps the
            chain on the COM-free subspace where the target is normalisable).

    Returns:
        :class:`thermo.kernel.Kernel`: ``init(position) -> MALAState``,
        ``step(key, state) -> (MALAState, MALAInfo)``.

    Raises:
        ValueError: for a step size that is not positive and finite (checked when
            concrete; a traced one, e.g. under adaptation, is not).
    """
    check_positive(step_size, "step_size")
    value_and_grad = jax.value_and_grad(logdensity_fn)
    proj = (lambda v: v) if project_fn is None else project_fn

    def init(position: Float[Array, " dim"]) -> MALAState:
        position = jnp.asarray(position)
        logdensity, grad = value_and_grad(position)
        return MALAState(position, logdensity, proj(grad))

    def log_q(y, x, grad_x):
        diff = y - x - step_size * grad_x
        return -jnp.sum(diff**2) / (4.0 * step_size)

    def step(key: PRNGKey, state: MALAState) -> tuple[MALAState, MALAInfo]:
        key_prop, key_acc = jr.split(key)
        x = state.position
        noise = proj(jr.normal(key_prop, x.shape, x.dtype))
        proposal = x + step_size * state.logdensity_grad + jnp.sqrt(2.0 * step_size) * noise
        logdensity_new, grad_new = value_and_grad(proposal)
        grad_new = proj(grad_new)
        log_ratio = (
            logdensity_new
            - state.logdensity
            + log_q(x, proposal, grad_new)
            - log_q(proposal, x, state.logdensity_grad)
        )
        log_ratio = jnp.where(jnp.isnan(log_ratio), -jnp.inf, log_ratio)
        acceptance = jnp.minimum(1.0, jnp.exp(log_ratio))
        accept = jnp.log(jr.uniform(key_acc, dtype=x.dtype)) < log_ratio
        new_state = jax.tree_util.tree_map(
            lambda a, b: jnp.where(accept, a, b),
            MALAState(proposal, logdensity_new, grad_new),
            state,
        )
        return new_state, MALAInfo(acceptance, accept, jnp.ones((), jnp.float32))

    return Kernel(init, step)
