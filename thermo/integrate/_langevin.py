r"""Overdamped Langevin kernel with work, heat and log-RN bookkeeping."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, Int

from .._typing import PRNGKey, ScalarLike
from ..kernel import Kernel
from ..protocols import Protocol, as_protocol
from ._common import (
    _check_position,
    _initial_energy,
    _positive,
    _switch_protocol,
    _value_and_grad,
)


class LangevinState(NamedTuple):
    r"""State of :func:`overdamped_langevin` for one path.

    Attributes:
        position: ``(d,)`` :math:`x_k`.
        energy: ``()`` :math:`U(x_k, \lambda_k)`.
        grad: ``(d,)`` :math:`\nabla_x U(x_k, \lambda_k)`.
        step: ``()`` step counter :math:`k`; the time is :math:`t_0 + k\,dt`.
        work: ``()`` accumulated work :math:`W` (energy units).
        heat: ``()`` accumulated heat :math:`Q` absorbed by the system.
        log_weight: ``()`` exact discrete-time log RN weight, boundary terms included
            (see :mod:`thermo.protocols`); estimates :math:`\log Z_k - \log Z_0`.
        n_energy_evals: ``()`` energy-and-gradient evaluations spent on this path.
    """

    position: Float[Array, " d"]
    energy: Float[Array, ""]
    grad: Float[Array, " d"]
    step: Int[Array, ""]
    work: Float[Array, ""]
    heat: Float[Array, ""]
    log_weight: Float[Array, ""]
    n_energy_evals: Int[Array, ""]


class LangevinInfo(NamedTuple):
    """Per-step increments of the path functionals (work, heat, log weight)."""

    work: Float[Array, ""]
    heat: Float[Array, ""]
    log_weight: Float[Array, ""]


def overdamped_langevin(
    energy: Callable[[Float[Array, " d"]], Float[Array, ""]] | Protocol,
    *,
    beta: ScalarLike,
    dt: ScalarLike,
    t0: ScalarLike = 0.0,
) -> Kernel:
    r"""Overdamped Langevin dynamics :math:`dx = -\nabla U\,dt + \sqrt{2/\beta}\,dW` by
    Euler–Maruyama (the unadjusted Langevin algorithm), with work bookkeeping.

    One step :math:`k \to k+1` (:math:`\lambda_k = \lambda(t_0 + k\,dt)`):

    1. switch :math:`\lambda_k\to\lambda_{k+1}` at fixed :math:`x_k`:
       :math:`W \mathrel{+}= U(x_k,\lambda_{k+1}) - U(x_k,\lambda_k)`;
    2. move with the forward kernel
       :math:`F = \mathcal N(x_{k+1};\, x_k - dt\,\nabla U_{k+1}(x_k),\, 2dt/\beta)`:
       :math:`Q \mathrel{+}= U(x_{k+1},\lambda_{k+1}) - U(x_k,\lambda_{k+1})`;
    3. score against the backward kernel, the same Euler kernel run from :math:`x_{k+1}`,
       :math:`B = \mathcal N(x_k;\, x_{k+1} - dt\,\nabla U_{k+1}(x_{k+1}),\, 2dt/\beta)`:
       :math:`\log w \mathrel{+}= -\beta(\Delta W + \Delta Q) + \log B - \log F`.

    With :math:`x_0 \sim e^{-\beta U(\cdot,\lambda_0)}/Z_0` exactly,
    :math:`\mathbb E[e^{\log w}] = Z_N/Z_0` for every ``dt`` (Crooks 1999; Neal 2001),
    while :math:`\mathbb E[e^{-\beta W}] = Z_N/Z_0` (Jarzynski 1997) holds up to the
    :math:`O(dt)` bias of the unadjusted kernel; :math:`\log w \to -\beta W` as
    :math:`dt\to0` (for quadratic :math:`U` the difference is exactly
    :math:`-\tfrac{\beta\,dt}{4}\sum_k(|\nabla U_{k+1}(x_{k+1})|^2 - |\nabla U_{k+1}(x_k)|^2)`).

    Cost: one energy-and-gradient evaluation per step for a static energy, two when
    :math:`\lambda` changes.

    Args:
        energy: ``energy_fn(x) -> scalar`` or a :class:`~thermo.protocols.Protocol`.
        beta: inverse temperature :math:`\beta = 1/k_BT` (energy units of ``U``).
        dt: step size (the mobility is one, so time is in units of it).
        t0: the protocol time of step zero.

    Returns:
        ``Kernel(init(position) -> LangevinState, step(key, state))``.
    """
    protocol = as_protocol(energy)
    _positive(beta, "beta")
    _positive(dt, "dt")

    def init(position: Float[Array, " d"]) -> LangevinState:
        x = _check_position(position, "position")
        u, g, zero = _initial_energy(protocol, x, t0)
        return LangevinState(
            x, u, g, jnp.zeros((), jnp.int32), zero, zero, zero, jnp.ones((), jnp.int32)
        )

    def step(key: PRNGKey, state: LangevinState):
        x = state.position
        k_next, lam_next, u_x, g_x, d_work, evals = _switch_protocol(protocol, x, state, t0, dt)
        mean_f = x - dt * g_x
        x_next = mean_f + jnp.sqrt(2.0 * dt / beta) * jr.normal(key, x.shape, x.dtype)
        u_next, g_next = _value_and_grad(protocol, x_next, lam_next)
        d_heat = u_next - u_x
        mean_b = x_next - dt * g_next
        # log B - log F; the Gaussian normalisers (same variance 2dt/beta) cancel.
        log_ratio = (
            -beta / (4.0 * dt) * (jnp.sum((x - mean_b) ** 2) - jnp.sum((x_next - mean_f) ** 2))
        )
        d_log_w = -beta * (d_work + d_heat) + log_ratio
        new = LangevinState(
            x_next,
            u_next,
            g_next,
            k_next,
            state.work + d_work,
            state.heat + d_heat,
            state.log_weight + d_log_w,
            state.n_energy_evals + evals,
        )
        return new, LangevinInfo(d_work, d_heat, d_log_w)

    return Kernel(init, step)
