r"""Denoising Diffusion Sampler (DDS; Vargas, Grathwohl & Doucet 2023): a controlled OU process.

The reference is the Ornstein–Uhlenbeck (VP) process that keeps
:math:`\mathcal N(0,\sigma^2 I)` invariant,

.. math:: dY_t = -\beta\,Y_t\,dt + \sigma\sqrt{2\beta}\,dW_t,\qquad Y_0\sim\mathcal N(0,\sigma^2 I),

and the sampler adds a learned drift, :math:`dY_t = [-\beta Y_t + 2\beta\sigma^2
f_\theta(t, Y_t)]dt + \sigma\sqrt{2\beta}\,dW_t`, the time reversal of the noising OU
process started at :math:`\pi` when :math:`f = \nabla\log p_{T-t}` (Vargas et al. 2023,
eq. 9). The **exponential integrator** (their eq. 22) is exact for the linear part:
with :math:`a = e^{-\beta\delta}` and :math:`\alpha = 1 - a^2`,

.. math:: y_{k+1} = a\,y_k + 2\sigma^2(1 - a)\,f_\theta(t_k, y_k) + \sigma\sqrt{\alpha}\,\xi_k.

The reference chain is the *exact* OU transition :math:`\mathcal N(a y_k, \sigma^2\alpha)`,
reversible with respect to :math:`\mathcal N(0,\sigma^2)`, so the target path measure
:math:`\mathbb Q = \frac{\pi(y_K)}{\mathcal N(y_K; 0, \sigma^2)}\,\mathbb P^{\rm ref}`
gives the exact discrete-time weight (their eq. 23 without the :math:`\delta\to0` limit)

.. math:: \log w = \log\tilde\pi(y_K) - \log\mathcal N(y_K; 0,\sigma^2)
          + \sum_k \log\frac{\mathcal N(y_{k+1}; a y_k, \sigma^2\alpha)}
                            {\mathcal N(y_{k+1}; a y_k + 2\sigma^2(1-a) f_\theta, \sigma^2\alpha)},

:math:`\mathbb E[e^{\log w}] = Z` for every :math:`\delta`. A constant rate
:math:`\beta` is used (DDS uses a cosine schedule of the :math:`\alpha_k`; the estimator is
exact either way).
"""

from __future__ import annotations

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float

from thermo._typing import PRNGKey
from thermo.kernel import Kernel

from ._common import (
    SamplerState,
    Target,
    _advance,
    _check_settings,
    _FixedDurationSampler,
    _init_state,
    _step_inputs,
    clip_displacement,
    gaussian_log_prob,
)

__all__ = ["DDS"]


class DDS(_FixedDurationSampler):
    r"""The Denoising Diffusion Sampler (Vargas, Grathwohl & Doucet 2023).

    Attributes:
        control: :math:`f(t, y, \nabla\log\tilde\pi(y)) \to (d,)` (a
            :class:`~generative.samplers.Control`; zero = the reference OU process).
        n_steps: exponential-integrator steps :math:`K`.
        sigma: the reference's stationary standard deviation :math:`\sigma` (default in
            the experiments: the target's scale).
        duration: :math:`T = K\delta`.
        rate: the OU rate :math:`\beta` (mixing time :math:`1/\beta`).
        max_displacement: optional cap on :math:`2\sigma^2(1-a)|f|` per step
            (:func:`~generative.samplers.clip_displacement`; weights stay exact).
        output_scale: :math:`f = \mathtt{output\_scale}\cdot\mathrm{control}(\ldots)`;
            :math:`1/\sigma^2` lets a network with :math:`O(1)` outputs represent
            :math:`\sigma^2 f`, whose scale does not grow with :math:`\sigma` (the
            benchmark presets use it).

    Cost: one energy-and-gradient evaluation per step plus one at :math:`y_0`.
    """

    control: Any
    n_steps: int = eqx.field(static=True)
    sigma: float = eqx.field(static=True)
    duration: float = eqx.field(static=True)
    rate: float = eqx.field(static=True)
    max_displacement: float | None = eqx.field(static=True)
    output_scale: float = eqx.field(static=True)

    def __init__(
        self,
        control: Any,
        *,
        n_steps: int = 64,
        sigma: float = 1.0,
        duration: float = 4.0,
        rate: float = 1.0,
        max_displacement: float | None = None,
        output_scale: float = 1.0,
    ):
        self.n_steps, self.max_displacement = _check_settings(
            "DDS", n_steps, max_displacement, sigma=sigma, duration=duration, rate=rate
        )
        self.control = control
        self.sigma = float(sigma)
        self.duration = float(duration)
        self.rate = float(rate)
        self.output_scale = float(output_scale)

    def initial_positions(
        self, key: PRNGKey, target: Target, n: int, dtype: Any = None
    ) -> Float[Array, "n dim"]:
        """``(n, dim)`` draws of :math:`\\mathcal N(0, \\sigma^2 I)` (COM-free for particles)."""
        dtype = jnp.result_type(float) if dtype is None else dtype
        x = self.sigma * jr.normal(key, (n, target.dim), dtype)
        return jax.vmap(target.project)(x)

    def kernel(self, target: Target, *, detach: bool = False) -> Kernel:
        r"""One exponential-integrator step with its exact log-RN increment."""
        dt, sigma, control = self.dt, self.sigma, self.control
        a = math.exp(-self.rate * dt)
        alpha = -math.expm1(-2.0 * self.rate * dt)  # 1 - a^2, stable for small steps
        shift = 2.0 * sigma**2 * (1.0 - a)
        var = sigma**2 * alpha
        n_dim = target.sub_dim

        def init(x: Float[Array, " dim"]) -> SamplerState:
            return _init_state(target, x)

        def step(key: PRNGKey, state: SamplerState):
            y, score = _step_inputs(state, detach)
            t = state.step.astype(y.dtype) * dt
            f = clip_displacement(
                self.output_scale * target.project(control(t, y, score)),
                shift,
                self.max_displacement,
            )
            mean_ref = a * y
            mean = mean_ref + shift * f
            noise = target.project(jr.normal(key, y.shape, y.dtype))
            y_next = mean + sigma * math.sqrt(alpha) * noise
            if detach:
                y_next = jax.lax.stop_gradient(y_next)
            inc = gaussian_log_prob(
                y_next, mean_ref, variance=var, n_dims=n_dim
            ) - gaussian_log_prob(y_next, mean, variance=var, n_dims=n_dim)
            return _advance(state, y_next, *target.value_and_score(y_next), inc)

        return Kernel(init, step)

    def reference_log_marginal(
        self, target: Target, step: Any, x: Float[Array, " dim"]
    ) -> Float[Array, ""]:
        r""":math:`\log q_k(x) = \log\mathcal N(x; 0, \sigma^2 I)` at every step ``k``
        (the reference OU chain is stationary; used by the Feynman–Kac correction)."""
        del step
        return gaussian_log_prob(x, 0.0, variance=self.sigma**2, n_dims=target.sub_dim)

    def terminal_log_weight(self, target: Target, state: SamplerState) -> Float[Array, ""]:
        r""":math:`\log\tilde\pi(y_K) - \log\mathcal N(y_K; 0, \sigma^2)`."""
        return state.log_prob - gaussian_log_prob(
            state.position, 0.0, variance=self.sigma**2, n_dims=target.sub_dim
        )
