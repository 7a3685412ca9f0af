r"""Boundary checks shared by the integrators (private)."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from .._checks import check_positive
from ..protocols import Protocol


def _check_position(x: Array, name: str = "x0") -> Array:
    x = jnp.asarray(x)
    if x.ndim != 1:
        raise ValueError(
            f"{name} must be one flat state of shape (d,), got shape {x.shape}; "
            "vmap over a population instead of passing a batch"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return eqx.error_if(x, ~jnp.all(jnp.isfinite(x)), f"{name} contains NaN or inf")


def _check_diffusion_shape(g_shape: tuple[int, ...], d: int) -> None:
    ok = (
        len(g_shape) == 0
        or (len(g_shape) == 1 and g_shape[0] == d)
        or (len(g_shape) == 2 and g_shape[0] == d)
    )
    if not ok:
        raise ValueError(
            f"diffusion must have shape () (scalar), ({d},) (diagonal) or ({d}, m) (full) "
            f"for a state of dimension {d}; got {g_shape}"
        )


def _positive(value: Any, name: str) -> None:
    check_positive(value, name)  # skips a traced value


def _value_and_grad(protocol: Protocol, x, lam):
    return jax.value_and_grad(protocol.energy_fn)(x, lam)


def _initial_energy(protocol: Protocol, x: Array, t0: Any) -> tuple[Array, Array, Array]:
    r"""``(U, \nabla U, 0)`` at the initial position and :math:`\lambda(t_0)` of a Langevin
    kernel's ``init`` (a non-finite energy fails there), the zero in the energy's dtype."""
    u, g = _value_and_grad(protocol, x, protocol.lam(t0))
    u = eqx.error_if(u, ~jnp.isfinite(u), "energy is not finite at the initial position")
    return u, g, jnp.zeros((), u.dtype)


def _switch_protocol(protocol: Protocol, x: Array, state: Any, t0: Any, dt: Any):
    r"""The protocol switch :math:`\lambda_k\to\lambda_{k+1}` at fixed ``x`` that opens one
    step of :func:`overdamped_langevin` and :func:`baoab`.

    Returns ``(k_next, lam_next, u_x, g_x, d_work, evals)``: :math:`U, \nabla U` at ``x``
    and :math:`\lambda_{k+1} = \lambda(t_0 + (k+1)\,dt)`, the work increment
    :math:`U(x,\lambda_{k+1}) - U(x,\lambda_k)` and the energy evaluations the step will
    have spent (1 for a static energy, whose state already holds them; 2 otherwise).
    """
    k_next = state.step + 1
    if protocol.static:
        u_x, g_x = state.energy, state.grad
        lam_next = protocol.lam(t0)
        evals = 1
    else:
        lam_next = protocol.lam(t0 + k_next.astype(jnp.result_type(dt)) * dt)
        u_x, g_x = _value_and_grad(protocol, x, lam_next)
        evals = 2
    return k_next, lam_next, u_x, g_x, u_x - state.energy, evals
