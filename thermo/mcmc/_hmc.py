r"""Hamiltonian Monte Carlo with a leapfrog integrator (Duane et al. 1987; Neal 2011).

With a diagonal inverse mass matrix :math:`M^{-1}`, the Hamiltonian is
:math:`H(x, p) = -\log\pi(x) + \tfrac12 p^\top M^{-1} p`. One step draws
:math:`p \sim \mathcal N(0, M)`, runs ``n_integration_steps`` leapfrog steps of size
:math:`\epsilon`,

.. math:: p_{1/2} = p + \tfrac\epsilon2 \nabla\log\pi(x),\quad
          x' = x + \epsilon M^{-1} p_{1/2},\quad
          p' = p_{1/2} + \tfrac\epsilon2 \nabla\log\pi(x'),

and accepts with probability :math:`\min(1, e^{-\Delta H})`. Each step costs
``n_integration_steps`` gradient evaluations (the gradient at the start is cached).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Bool, Float

from .._checks import check_count, check_positive
from .._typing import PRNGKey
from ..kernel import Kernel

__all__ = ["HMCInfo", "HMCState", "hmc", "leapfrog"]

# A trajectory whose energy error exceeds this is flagged divergent (Stan's default).
DIVERGENCE_THRESHOLD = 1000.0


class HMCState(NamedTuple):
    """HMC state (log density and gradient cached at ``position``).

    Attributes:
        position: ``(dim,)``.
        logdensity: ``()``.
        logdensity_grad: ``(dim,)``.
        aux: what ``logdensity_fn`` returns beside the value with ``has_aux=True``,
            else ``None``.
    """

    position: Float[Array, " dim"]
    logdensity: Float[Array, ""]
    logdensity_grad: Float[Array, " dim"]
    aux: Any = None


class HMCInfo(NamedTuple):
    """Per-step information.

    Attributes:
        acceptance_rate: ``()`` :math:`\\min(1, e^{-\\Delta H})`.
        is_accepted: ``()``.
        is_divergent: ``()`` :math:`\\Delta H > 1000`.
        energy_error: ``()`` :math:`\\Delta H` of the proposal.
        n_energy_evals: ``()`` gradient evaluations spent (``n_integration_steps``).
    """

    acceptance_rate: Float[Array, ""]
    is_accepted: Bool[Array, ""]
    is_divergent: Bool[Array, ""]
    energy_error: Float[Array, ""]
    n_energy_evals: Float[Array, ""]


def _as_dense(inverse_mass_matrix: float | Array, x: Array) -> Array:
    """The diagonal inverse mass as a ``(dim,)`` array, a compile-time constant when it is one."""
    if isinstance(inverse_mass_matrix, jax.core.Tracer):
        return jnp.broadcast_to(inverse_mass_matrix.astype(x.dtype), x.shape)
    return np.broadcast_to(np.asarray(inverse_mass_matrix, dtype=x.dtype), x.shape)


def leapfrog(
    value_and_grad_fn: Callable[[Array], tuple[Array, Array]],
    position: Float[Array, " dim"],
    momentum: Float[Array, " dim"],
    logdensity_grad: Float[Array, " dim"],
    step_size: float | Array,
    n_steps: int,
    inverse_mass_matrix: float | Array = 1.0,
) -> tuple[Array, Array, Array, Array]:
    r"""``n_steps`` leapfrog (velocity Verlet) steps for :math:`H = -\log\pi + \tfrac12 p^\top M^{-1}p`.

    Args:
        value_and_grad_fn: ``x -> (log pi(x), grad log pi(x))``; the value may be any
            pytree (e.g. ``(log pi(x), aux)``), returned as it is at the end point.
        position, momentum, logdensity_grad: ``(dim,)`` each; the gradient at ``position``.
        step_size: :math:`\epsilon`.
        n_steps: number of leapfrog steps (static).
        inverse_mass_matrix: scalar or ``(dim,)`` diagonal :math:`M^{-1}`.

    Returns:
        ``(position, momentum, logdensity, logdensity_grad)`` at the end.
    """
    n_steps = check_count(n_steps, "n_steps")

    def body(carry, _):
        x, p, _, g = carry
        p = p + 0.5 * step_size * g
        x = x + step_size * inverse_mass_matrix * p
        logdensity, g = value_and_grad_fn(x)
        p = p + 0.5 * step_size * g
        return (x, p, logdensity, g), None

    value_shape = jax.eval_shape(value_and_grad_fn, position)[0]
    value0 = jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), value_shape)
    init = (position, momentum, value0, logdensity_grad)
    (x, p, logdensity, g), _ = jax.lax.scan(body, init, None, length=n_steps)
    return x, p, logdensity, g


def hmc(
    logdensity_fn: Callable[[Array], Array],
    step_size: float | Array,
    n_integration_steps: int,
    *,
    inverse_mass_matrix: float | Array = 1.0,
    project_fn: Callable[[Array], Array] | None = None,
    has_aux: bool = False,
) -> Kernel:
    r"""HMC kernel with a fixed number of leapfrog steps.

    Args:
        logdensity_fn: ``(dim,) -> ()`` unnormalised log target.
        step_size: leapfrog step :math:`\epsilon` (may be traced, e.g. during adaptation).
        n_integration_steps: leapfrog steps per proposal (trajectory length
            :math:`L\epsilon`); static.
        inverse_mass_matrix: scalar or ``(dim,)`` diagonal.
        project_fn: optional orthogonal projector applied to momenta and gradients
            (centre-of-mass removal for translation-invariant particle systems).
        has_aux: ``logdensity_fn`` returns ``(value, aux)``; ``aux`` (any pytree) is
            cached in :attr:`HMCState.aux` and follows the accepted position.

    Returns:
        :class:`thermo.kernel.Kernel`: ``init(position) -> HMCState``,
        ``step(key, state) -> (HMCState, HMCInfo)``.

    Raises:
        ValueError: for a step size or inverse mass that is not positive and finite
            (checked when concrete), or ``n_integration_steps`` not a whole number >= 1.
    """
    n_integration_steps = check_count(n_integration_steps, "n_integration_steps")
    check_positive(step_size, "step_size")
    check_positive(inverse_mass_matrix, "inverse_mass_matrix")
    proj = (lambda v: v) if project_fn is None else project_fn
    raw_value_and_grad = jax.value_and_grad(logdensity_fn, has_aux=has_aux)

    def value_and_grad(x):
        # The value slot holds (log pi, aux) with has_aux: leapfrog carries it through.
        value, grad = raw_value_and_grad(x)
        return value, proj(grad)

    def init(position: Float[Array, " dim"]) -> HMCState:
        position = jnp.asarray(position)
        value, grad = value_and_grad(position)
        logdensity, aux = value if has_aux else (value, None)
        return HMCState(position, logdensity, grad, aux)

    def kinetic(p):
        return 0.5 * jnp.sum(inverse_mass_matrix * p**2)

    def step(key: PRNGKey, state: HMCState) -> tuple[HMCState, HMCInfo]:
        key_mom, key_acc = jr.split(key)
        x = state.position
        # A (dim,) array, as blackjax carries it: with a scalar here XLA (0.10, CPU) did not
        # hoist loop-invariant work of the target (e.g. pair-index tables) out of the
        # leapfrog loop (the cost is measured by experiments/benchmarks/bench_hmc_throughput).
        inverse_mass = _as_dense(inverse_mass_matrix, x)
        momentum = proj(jr.normal(key_mom, x.shape, x.dtype) / jnp.sqrt(inverse_mass))
        x_new, p_new, value_new, grad_new = leapfrog(
            value_and_grad,
            x,
            momentum,
            state.logdensity_grad,
            step_size,
            n_integration_steps,
            inverse_mass,
        )
        logdensity_new, aux_new = value_new if has_aux else (value_new, None)
        energy_error = (kinetic(p_new) - logdensity_new) - (kinetic(momentum) - state.logdensity)
        energy_error = jnp.where(jnp.isnan(energy_error), jnp.inf, energy_error)
        acceptance = jnp.minimum(1.0, jnp.exp(-energy_error))
        accept = jnp.log(jr.uniform(key_acc, dtype=x.dtype)) < -energy_error
        new_state = jax.tree_util.tree_map(
            lambda a, b: jnp.where(accept, a, b),
            HMCState(x_new, logdensity_new, grad_new, aux_new),
            state,
        )
        info = HMCInfo(
            acceptance,
            accept,
            energy_error > DIVERGENCE_THRESHOLD,
            energy_error,
            jnp.full((), n_integration_steps, jnp.float32),
        )
        return new_state, info

    return Kernel(init, step)
