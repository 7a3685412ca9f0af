r"""Metropolis-adjusted Langevin algorithm (Roberts & Tweedie 1996).

Proposal (Euler step of overdamped Langevin with step :math:`\epsilon`):

.. math:: x' = x + \epsilon \nabla \log\pi(x) + \sqrt{2\epsilon}\,\xi,

accepted with probability
:math:`\min\bigl(1, \frac{\pi(x') q(x \mid x')}{\pi(x) q(x' \mid x)}\bigr)`, where
:math:`\log q(y \mid x) = -\lVert y - x - \epsilon\nabla\log\pi(x)\rVert^2 / (4\epsilon)`.

Preconditioned (a diagonal inverse mass :math:`m`, constant or position-dependent):
:math:`x' = x + \epsilon\, m(x)\odot\nabla\log\pi(x) + \sqrt{2\epsilon\, m(x)}\odot\xi`
with :math:`\log q(y \mid x) = -\sum_i (y - x - \epsilon m\nabla\log\pi)_i^2/(4\epsilon
m_i) - \tfrac12\sum_i\log m_i(x)`, the simplified manifold MALA of Girolami &
Calderhead (2011) with a diagonal metric.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Bool, Float

from .._checks import check_positive
from .._typing import PRNGKey
from ..kernel import Kernel
from ._hmc import HMCState

__all__ = ["MALAInfo", "MALAState", "mala"]


class MALAState(HMCState):
    """MALA state: the fields of :class:`thermo.mcmc.HMCState` (position, the cached log
    density and its gradient, and the optional ``aux``)."""

    __slots__ = ()


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
    inverse_mass_matrix: float | Array | None = None,
    inverse_mass_fn: Callable[[Array, Any], Array] | None = None,
    has_aux: bool = False,
) -> Kernel:
    r"""MALA kernel.

    Args:
        logdensity_fn: ``(dim,) -> ()`` unnormalised log target (``-> ((), aux)`` with
            ``has_aux``).
        step_size: :math:`\epsilon` in the proposal above (a variance-like step).
        project_fn: optional linear orthogonal projector applied to the drift and the
            noise (e.g. centre-of-mass removal for particle systems, which keeps the
            chain on the COM-free subspace where the target is normalisable).
        inverse_mass_matrix: constant diagonal preconditioner :math:`m`, scalar or
            ``(dim,)`` (``None``: the plain kernel, :math:`m = 1`).
        inverse_mass_fn: position-dependent diagonal :math:`m(x)`, called as
            ``inverse_mass_fn(position, aux) -> (dim,)`` (``aux`` is ``None`` without
            ``has_aux``); the MH ratio then carries the proposals' log-determinants.
        has_aux: ``logdensity_fn`` returns ``(value, aux)``; ``aux`` (any pytree) is
            cached in :attr:`MALAState.aux` and follows the accepted position.

    Returns:
        :class:`thermo.kernel.Kernel`: ``init(position) -> MALAState``,
        ``step(key, state) -> (MALAState, MALAInfo)``.

    Raises:
        ValueError: for a step size that is not positive and finite (checked when
            concrete; a traced one, e.g. under adaptation, is not).
    """
    check_positive(step_size, "step_size")
    if inverse_mass_matrix is not None and inverse_mass_fn is not None:
        raise ValueError("give inverse_mass_matrix or inverse_mass_fn, not both")
    raw_value_and_grad = jax.value_and_grad(logdensity_fn, has_aux=has_aux)
    proj = (lambda v: v) if project_fn is None else project_fn

    def value_and_grad(x):
        out, grad = raw_value_and_grad(x)
        value, aux = out if has_aux else (out, None)
        return value, proj(grad), aux

    def init(position: Float[Array, " dim"]) -> MALAState:
        position = jnp.asarray(position)
        logdensity, grad, aux = value_and_grad(position)
        return MALAState(position, logdensity, grad, aux)

    def metric(state):
        if inverse_mass_fn is not None:
            return inverse_mass_fn(state.position, state.aux)
        return inverse_mass_matrix  # None: the plain kernel

    def log_q(y, x, grad_x, m):
        if m is None:
            diff = y - x - step_size * grad_x
            return -jnp.sum(diff**2) / (4.0 * step_size)
        diff = y - x - step_size * m * grad_x
        out = -jnp.sum(diff**2 / m) / (4.0 * step_size)
        if inverse_mass_fn is not None:  # the proposal covariance depends on x
            out = out - 0.5 * jnp.sum(jnp.log(m))
        return out

    def step(key: PRNGKey, state: MALAState) -> tuple[MALAState, MALAInfo]:
        key_prop, key_acc = jr.split(key)
        x = state.position
        m_x = metric(state)
        noise = proj(jr.normal(key_prop, x.shape, x.dtype))
        if m_x is None:
            proposal = x + step_size * state.logdensity_grad + jnp.sqrt(2.0 * step_size) * noise
        else:
            drift = step_size * m_x * state.logdensity_grad
            proposal = x + drift + jnp.sqrt(2.0 * step_size * m_x) * noise
        logdensity_new, grad_new, aux_new = value_and_grad(proposal)
        new = MALAState(proposal, logdensity_new, grad_new, aux_new)
        m_y = metric(new)
        log_ratio = (
            logdensity_new
            - state.logdensity
            + log_q(x, proposal, grad_new, m_y)
            - log_q(proposal, x, state.logdensity_grad, m_x)
        )
        log_ratio = jnp.where(jnp.isnan(log_ratio), -jnp.inf, log_ratio)
        acceptance = jnp.minimum(1.0, jnp.exp(log_ratio))
        accept = jnp.log(jr.uniform(key_acc, dtype=x.dtype)) < log_ratio
        new_state = jax.tree_util.tree_map(lambda a, b: jnp.where(accept, a, b), new, state)
        return new_state, MALAInfo(acceptance, accept, jnp.ones((), jnp.float32))

    return Kernel(init, step)
