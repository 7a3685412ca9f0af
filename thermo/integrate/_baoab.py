r"""Underdamped Langevin by BAOAB (Leimkuhler & Matthews 2013) with work bookkeeping."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

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


class BAOABState(NamedTuple):
    r"""State of :func:`baoab` for one path.

    Attributes:
        position: ``(d,)`` :math:`x_k`.
        momentum: ``(d,)`` :math:`p_k`.
        energy: ``()`` :math:`U(x_k, \lambda_k)`.
        grad: ``(d,)`` :math:`\nabla_x U(x_k, \lambda_k)`.
        step: ``()`` step counter :math:`k`.
        work: ``()`` protocol work :math:`W` (switching :math:`\lambda` at fixed phase point).
        heat: ``()`` heat absorbed, :math:`Q = \Delta H - W` with :math:`H = U + p^\top M^{-1}p/2`.
        shadow_work: ``()`` :math:`Q - Q_O`: the energy error of the deterministic B and A
            substeps (Sivak, Chodera & Crooks 2013); zero for exact dynamics.
        log_weight: ``()`` exact discrete-time log RN weight
            :math:`-\beta(W + W_{\rm shadow})`, boundary terms included.
        n_energy_evals: ``()`` energy-and-gradient evaluations on this path.
    """

    position: Float[Array, " d"]
    momentum: Float[Array, " d"]
    energy: Float[Array, ""]
    grad: Float[Array, " d"]
    step: Int[Array, ""]
    work: Float[Array, ""]
    heat: Float[Array, ""]
    shadow_work: Float[Array, ""]
    log_weight: Float[Array, ""]
    n_energy_evals: Int[Array, ""]


class BAOABInfo(NamedTuple):
    """Per-step increments: work, heat, shadow work and log weight."""

    work: Float[Array, ""]
    heat: Float[Array, ""]
    shadow_work: Float[Array, ""]
    log_weight: Float[Array, ""]


def maxwell_boltzmann(
    key: PRNGKey,
    shape: tuple[int, ...],
    *,
    beta: ScalarLike,
    mass: ScalarLike | Float[Array, " d"] = 1.0,
    dtype: Any = None,
) -> Array:
    r"""Momenta from the Maxwell–Boltzmann density :math:`\propto e^{-\beta p^\top M^{-1} p/2}`,

    i.e. :math:`p \sim \mathcal N(0, M/\beta)` for a scalar or diagonal mass ``M``.
    """
    _positive(beta, "beta")
    _positive(mass, "mass")
    dtype = jnp.result_type(float) if dtype is None else dtype
    return jnp.sqrt(jnp.asarray(mass, dtype) / beta) * jr.normal(key, shape, dtype)


def baoab(
    energy: Callable[[Float[Array, " d"]], Float[Array, ""]] | Protocol,
    *,
    beta: ScalarLike,
    dt: ScalarLike,
    friction: ScalarLike = 1.0,
    mass: ScalarLike | Float[Array, " d"] = 1.0,
    t0: ScalarLike = 0.0,
) -> Kernel:
    r"""Underdamped Langevin dynamics by the BAOAB splitting (Leimkuhler & Matthews 2013).

    .. math:: dx = M^{-1}p\,dt,\qquad dp = -\nabla U\,dt - \gamma p\,dt
              + \sqrt{2\gamma M/\beta}\,dW,

    one step being B (half kick :math:`p \mathrel{-}= \tfrac{dt}2\nabla U`),
    A (half drift :math:`x \mathrel{+}= \tfrac{dt}2 M^{-1}p`),
    O (exact Ornstein–Uhlenbeck :math:`p \leftarrow c_1 p + \sqrt{(1-c_1^2)M/\beta}\,\xi`,
    :math:`c_1 = e^{-\gamma\,dt}`), A, B. Its configurational marginal is exact for
    harmonic :math:`U` and has :math:`O(dt^2)` error in general (Leimkuhler & Matthews 2013).

    With a :class:`~thermo.protocols.Protocol`, each step first switches
    :math:`\lambda_k\to\lambda_{k+1}` at fixed :math:`(x, p)` (work), then takes the BAOAB
    step at :math:`\lambda_{k+1}`; the heat is the remaining energy change and splits into
    the O-step heat :math:`Q_O` (the kinetic-energy change in O) and the shadow work. As
    the B and A maps are volume preserving and time-reversible under momentum flip, the
    log ratio of backward to forward path densities is :math:`\beta Q_O`, so the exact
    discrete-time log RN weight is

    .. math:: \log w = -\beta\,\Delta H + \beta Q_O = -\beta\,(W + W_{\rm shadow}),

    and :math:`\mathbb E[e^{\log w}] = Z_N/Z_0` for any ``dt`` when :math:`(x_0, p_0)` are
    drawn from :math:`e^{-\beta H(\cdot,\lambda_0)}` (Sivak, Chodera & Crooks 2013).

    Cost: one energy-and-gradient evaluation per step (two when :math:`\lambda` changes).

    Args:
        energy: ``energy_fn(x) -> scalar`` or a :class:`~thermo.protocols.Protocol`.
        beta: inverse temperature.
        dt: step size.
        friction: :math:`\gamma` (inverse time).
        mass: scalar or ``(d,)`` diagonal mass :math:`M`.
        t0: the protocol time of step zero.

    Returns:
        ``Kernel(init(position, momentum=None) -> BAOABState, step(key, state))``; a
        missing momentum starts at zero (draw it with :func:`maxwell_boltzmann` to start in
        equilibrium, as Jarzynski/Crooks estimates require).
    """
    protocol = as_protocol(energy)
    _positive(beta, "beta")
    _positive(dt, "dt")
    _positive(friction, "friction")
    _positive(mass, "mass")
    c1 = jnp.exp(-friction * dt)
    c2 = jnp.sqrt(-jnp.expm1(-2.0 * friction * dt))  # sqrt(1 - c1^2), stable for small dt

    def kinetic(p):
        return 0.5 * jnp.sum(p**2 / mass)

    def init(
        position: Float[Array, " d"], momentum: Float[Array, " d"] | None = None
    ) -> BAOABState:
        x = _check_position(position, "position")
        p = jnp.zeros_like(x) if momentum is None else jnp.asarray(momentum, x.dtype)
        if p.shape != x.shape:
            raise ValueError(f"momentum shape {p.shape} differs from position shape {x.shape}")
        u, g, zero = _initial_energy(protocol, x, t0)
        return BAOABState(
            x, p, u, g, jnp.zeros((), jnp.int32), zero, zero, zero, zero, jnp.ones((), jnp.int32)
        )

    def step(key: PRNGKey, state: BAOABState):
        x, p = state.position, state.momentum
        k_next, lam_next, u_x, g_x, d_work, evals = _switch_protocol(protocol, x, state, t0, dt)
        h_start = u_x + kinetic(p)
        p = p - 0.5 * dt * g_x  # B
        x = x + 0.5 * dt * p / mass  # A
        k_before = kinetic(p)
        p = c1 * p + c2 * jnp.sqrt(mass / beta) * jr.normal(key, p.shape, p.dtype)  # O
        q_o = kinetic(p) - k_before
        x = x + 0.5 * dt * p / mass  # A
        u_new, g_new = _value_and_grad(protocol, x, lam_next)
        p = p - 0.5 * dt * g_new  # B
        d_heat = u_new + kinetic(p) - h_start
        d_shadow = d_heat - q_o
        d_log_w = -beta * (d_work + d_shadow)
        new = BAOABState(
            x,
            p,
            u_new,
            g_new,
            k_next,
            state.work + d_work,
            state.heat + d_heat,
            state.shadow_work + d_shadow,
            state.log_weight + d_log_w,
            state.n_energy_evals + evals,
        )
        return new, BAOABInfo(d_work, d_heat, d_shadow, d_log_w)

    return Kernel(init, step)
