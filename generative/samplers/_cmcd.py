r"""Controlled Monte Carlo Diffusions (CMCD; Vargas, Padhy, Blessing & Nüsken 2024).

CMCD controls annealed overdamped Langevin dynamics along the geometric path

.. math:: \log\pi_\lambda(x) = (1-\lambda)\log\pi_0(x) + \lambda\log\tilde\pi(x),\qquad
          \pi_0 = \mathcal N(0, s^2 I),\quad \lambda_k = (k/K)^p,

so that the forward and backward SDEs

.. math:: dX = [\nabla\log\pi_t + u_\theta]\,dt + \sqrt2\,dW,\qquad
          dX = [\nabla\log\pi_t - u_\theta]\,d\bar t + \sqrt2\,d\bar W

have the *same* marginals :math:`\pi_t` (Vargas et al. 2024, Prop. 3.1: the control
solves the continuity equation :math:`\partial_t\pi_t = -\nabla\cdot(\pi_t u_t)`). In
discrete time (their Sec. 3.3; step :math:`\delta`, annealing level :math:`\lambda_{k+1}`
in both kernels, as in :func:`thermo.integrate.overdamped_langevin`)

.. math::
    F_k(x_{k+1}\mid x_k) &= \mathcal N\big(x_k + \delta[\nabla\log\pi_{\lambda_{k+1}}(x_k)
                           + u_\theta(t_{k+1}, x_k)],\; 2\delta\big),\\
    B_k(x_k\mid x_{k+1}) &= \mathcal N\big(x_{k+1} + \delta[\nabla\log\pi_{\lambda_{k+1}}(x_{k+1})
                           - u_\theta(t_{k+1}, x_{k+1})],\; 2\delta\big),

and the path log-weight is

.. math:: \log w = \log\tilde\pi(x_K) - \log\pi_0(x_0)
          + \sum_{k=0}^{K-1}\log\frac{B_k(x_k\mid x_{k+1})}{F_k(x_{k+1}\mid x_k)},
          \qquad \mathbb E[e^{\log w}] = Z.

CMCD is trained with the **log-variance loss** (their Sec. 4). With the control switched
off (:math:`u\equiv0`) both kernels are the unadjusted Langevin kernel and the weight is
exactly that of annealed importance sampling with ULA moves and the reversal of the same
kernel as backward kernel, i.e. :func:`thermo.integrate.overdamped_langevin` run on the
protocol :math:`U(x,\lambda) = -\log\pi_\lambda(x)` (a test checks the equality to float64
rounding).
"""

from __future__ import annotations

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float

from thermo._checks import check_positive
from thermo._typing import PRNGKey, ScalarLike
from thermo.kernel import Kernel

from ._common import (
    AbstractSampler,
    SamplerState,
    Target,
    _advance,
    _check_settings,
    _init_state,
    _step_inputs,
    clip_displacement,
)

__all__ = ["CMCD"]


class CMCD(AbstractSampler):
    r"""Controlled Monte Carlo Diffusion (Vargas et al. 2024) on the geometric path.

    Attributes:
        control: :math:`u(t, x, \nabla\log\tilde\pi(x)) \to (d,)` or ``None`` for
            :math:`u\equiv0` (uncorrected annealed Langevin AIS).
        n_steps: annealing steps :math:`K`.
        dt: Langevin step :math:`\delta` (the process runs for :math:`T = K\delta`).
        schedule_power: :math:`p` in :math:`\lambda_k = (k/K)^p` (the polynomial schedule of
            :func:`thermo.mcmc.ais`).
        base_scale: :math:`s` of :math:`\pi_0`; ``None`` = the target's scale.
        max_displacement: optional cap on the drift displacement :math:`\delta|b|` of both
            kernels (:func:`~generative.samplers.clip_displacement`; the weights stay exact,
            but ``CMCD(None)`` then differs from plain annealed ULA where the cap binds).

    Cost: one energy-and-gradient evaluation per step plus one at :math:`x_0` (the
    score at :math:`x_{k+1}` serves both the backward kernel and the next forward step).
    """

    control: Any
    n_steps: int = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    schedule_power: float = eqx.field(static=True)
    base_scale: float | None = eqx.field(static=True)
    max_displacement: float | None = eqx.field(static=True)

    def __init__(
        self,
        control: Any = None,
        *,
        n_steps: int = 64,
        dt: float = 0.01,
        schedule_power: float = 1.0,
        base_scale: float | None = None,
        max_displacement: float | None = None,
    ):
        self.n_steps, self.max_displacement = _check_settings(
            "CMCD", n_steps, max_displacement, dt=dt
        )
        if base_scale is not None:
            check_positive(base_scale, "CMCD: base_scale")
        check_positive(schedule_power, "CMCD: schedule_power")
        self.control = control
        self.dt = float(dt)
        self.schedule_power = float(schedule_power)
        self.base_scale = None if base_scale is None else float(base_scale)

    @property
    def duration(self) -> float:
        """:math:`T = K\\delta`."""
        return self.n_steps * self.dt

    def scale(self, target: Target) -> float:
        """The base standard deviation :math:`s`."""
        return float(target.scale if self.base_scale is None else self.base_scale)

    def schedule(self, t: ScalarLike) -> Array:
        r""":math:`\lambda(t) = \mathrm{clip}(t/T, 0, 1)^p`; :math:`\lambda_k = \lambda(k\delta)`."""
        return jnp.clip(t / self.duration, 0.0, 1.0) ** self.schedule_power

    def base_log_prob(self, target: Target, x: Float[Array, " dim"]) -> Float[Array, ""]:
        r"""Normalised :math:`\log\pi_0(x) = -|x|^2/(2s^2) - \tfrac{n}{2}\log 2\pi s^2`."""
        s2 = self.scale(target) ** 2
        return -0.5 * jnp.sum(x * x) / s2 - 0.5 * target.sub_dim * math.log(2.0 * math.pi * s2)

    def initial_positions(
        self, key: PRNGKey, target: Target, n: int, dtype: Any = None
    ) -> Float[Array, "n dim"]:
        """``(n, dim)`` exact draws :math:`s\\,\\xi` of :math:`\\pi_0` (COM-free for particles)."""
        dtype = jnp.result_type(float) if dtype is None else dtype
        x = self.scale(target) * jr.normal(key, (n, target.dim), dtype)
        return jax.vmap(target.project)(x)

    def kernel(self, target: Target, *, detach: bool = False) -> Kernel:
        r"""One controlled annealed-Langevin step with :math:`\log B_k - \log F_k`."""
        dt, control = self.dt, self.control
        s2 = self.scale(target) ** 2

        def annealed_score(lam, x, score):
            return (1.0 - lam) * (-x / s2) + lam * score

        def ctrl(t, x, score):
            if control is None:
                return jnp.zeros_like(x)
            return target.project(control(t, x, score))

        def init(x: Float[Array, " dim"]) -> SamplerState:
            return _init_state(target, x, -self.base_log_prob(target, x))

        def step(key: PRNGKey, state: SamplerState):
            x, score = _step_inputs(state, detach)
            k_next = state.step + 1
            t_next = k_next.astype(x.dtype) * dt
            lam = self.schedule(t_next)
            cap = self.max_displacement
            drift_f = annealed_score(lam, x, score) + ctrl(t_next, x, score)
            mean_f = x + dt * clip_displacement(drift_f, dt, cap)
            noise = target.project(jr.normal(key, x.shape, x.dtype))
            x_next = mean_f + jnp.sqrt(2.0 * dt) * noise
            if detach:
                x_next = jax.lax.stop_gradient(x_next)
            log_p, score_next = target.value_and_score(x_next)
            drift_b = annealed_score(lam, x_next, score_next) - ctrl(t_next, x_next, score_next)
            mean_b = x_next + dt * clip_displacement(drift_b, dt, cap)
            # log B - log F; both have variance 2 dt, so the normalisers cancel.
            inc = -(jnp.sum((x - mean_b) ** 2) - jnp.sum((x_next - mean_f) ** 2)) / (4.0 * dt)
            return _advance(state, x_next, log_p, score_next, inc)

        return Kernel(init, step)

    def terminal_log_weight(self, target: Target, state: SamplerState) -> Float[Array, ""]:
        r""":math:`\log\tilde\pi(x_K)` (the start term :math:`-\log\pi_0(x_0)` is in the state)."""
        return state.log_prob
