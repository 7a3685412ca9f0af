r"""Path Integral Sampler (PIS; Zhang & Chen 2022): a controlled Schrödinger–Föllmer process.

The sampler is controlled Brownian motion started at a Dirac mass at the origin,

.. math:: dX_t = u_\theta(t, X_t)\,dt + \sigma\,dW_t,\qquad X_0 = 0,\quad t\in[0, T],

and the reference (uncontrolled, :math:`u = 0`) process ends at
:math:`X_T\sim\mathcal N(0, \sigma^2 T\,I)`. The target path measure is the reference
conditioned on its end point, reweighted to end at :math:`\pi`:
:math:`\mathbb Q = \frac{\pi(X_T)}{\mathcal N(X_T; 0, \sigma^2T)}\,\mathbb P^0`. Its
optimal control is the Föllmer drift
:math:`u^*(t, x) = \sigma^2\nabla\log \mathbb E_{\mathbb P^0}[\tfrac{\tilde\pi}{\mathcal N}(X_T)\mid X_t = x]`
(Föllmer 1985; Dai Pra 1991), which makes :math:`X_T\sim\pi` exactly. By Girsanov's
theorem

.. math:: \log w = \log\tilde\pi(X_T) - \log\mathcal N(X_T; 0, \sigma^2 T)
          - \int_0^T \frac{|u|^2}{2\sigma^2}dt - \int_0^T \frac{u}{\sigma}\cdot dW_t,

with :math:`\mathbb E[e^{\log w}] = Z`. In discrete time (Euler–Maruyama, steps
:math:`\delta = T/K`) the exact counterpart replaces the Girsanov integrals by the ratio
of the Gaussian transition densities of the reference and the controlled chain,
:math:`\sum_k \log\mathcal N(x_{k+1}; x_k, \sigma^2\delta) - \log\mathcal N(x_{k+1};
x_k + u\,\delta, \sigma^2\delta)` (both computed by
:func:`thermo.integrate.euler_maruyama_log_prob`): the reference chain *is* Brownian motion
sampled at the grid, so the weight is unbiased for any :math:`K` (Vargas, Grathwohl &
Doucet 2023, Sec. 3).
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float

from thermo._typing import PRNGKey
from thermo.integrate import euler_maruyama_log_prob
from thermo.kernel import Kernel
from thermo.sde import SDE

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

__all__ = ["PIS"]


class PIS(_FixedDurationSampler):
    r"""The Path Integral Sampler (Zhang & Chen 2022) with exact discrete-time weights.

    Attributes:
        control: :math:`u(t, x, \nabla\log\tilde\pi(x)) \to (d,)`, usually a
            :class:`~generative.samplers.Control`; any callable (e.g. an analytic drift)
            works for sampling, only eqx modules with arrays can be trained.
        n_steps: Euler–Maruyama steps :math:`K`.
        sigma: diffusion coefficient :math:`\sigma` (the reference ends at
            :math:`\mathcal N(0,\sigma^2T)`; a good default is the target's scale, so
            that :math:`\sigma\sqrt T` matches it).
        duration: :math:`T` (PIS uses :math:`T = 1`).
        max_displacement: optional cap on :math:`|u|\delta` per step
            (:func:`~generative.samplers.clip_displacement`; weights stay exact).

    Cost: one energy-and-gradient evaluation per step (the score feeds the control) plus
    one at :math:`x_0`.

    Example:
        >>> import jax.random as jr, thermo.systems as systems
        >>> from generative.samplers import PIS, Control, train_sampler, sample_paths
        >>> system = systems.get("gaussian-2")
        >>> pis = PIS(Control(2, jr.PRNGKey(0)), n_steps=32, sigma=1.0)
        >>> pis = train_sampler(jr.PRNGKey(1), pis, system, n_iters=100, batch_size=64).sampler
        >>> ens = sample_paths(jr.PRNGKey(2), pis, system, 1000)  # PathEnsemble
    """

    control: Any
    n_steps: int = eqx.field(static=True)
    sigma: float = eqx.field(static=True)
    duration: float = eqx.field(static=True)
    max_displacement: float | None = eqx.field(static=True)

    def __init__(
        self,
        control: Any,
        *,
        n_steps: int = 64,
        sigma: float = 1.0,
        duration: float = 1.0,
        max_displacement: float | None = None,
    ):
        self.n_steps, self.max_displacement = _check_settings(
            "PIS", n_steps, max_displacement, sigma=sigma, duration=duration
        )
        self.control = control
        self.sigma = float(sigma)
        self.duration = float(duration)

    def initial_positions(
        self, key: PRNGKey, target: Target, n: int, dtype: Any = None
    ) -> Float[Array, "n dim"]:
        """The Dirac start: ``(n, dim)`` zeros (``key`` unused, kept for the protocol)."""
        del key
        return jnp.zeros((n, target.dim), jnp.result_type(float) if dtype is None else dtype)

    def kernel(self, target: Target, *, detach: bool = False) -> Kernel:
        r"""One Euler–Maruyama step :math:`x' = x + u\,\delta + \sigma\sqrt\delta\,P\xi` with
        :math:`\log w \mathrel{+}= \log\mathcal N(x'; x, \sigma^2\delta) - \log\mathcal N(x';
        x + u\delta, \sigma^2\delta)`."""
        dt, sigma, control = self.dt, self.sigma, self.control
        reference = SDE(lambda t, x, a: jnp.zeros_like(x), lambda t, x, a: sigma)

        def init(x: Float[Array, " dim"]) -> SamplerState:
            return _init_state(target, x)

        def step(key: PRNGKey, state: SamplerState):
            x, score = _step_inputs(state, detach)
            t = state.step.astype(x.dtype) * dt
            u = clip_displacement(target.project(control(t, x, score)), dt, self.max_displacement)
            controlled = SDE(lambda t_, x_, a: u, lambda t_, x_, a: sigma)
            noise = target.project(jr.normal(key, x.shape, x.dtype))
            x_next = x + u * dt + sigma * jnp.sqrt(dt) * noise
            if detach:
                x_next = jax.lax.stop_gradient(x_next)
            inc = euler_maruyama_log_prob(reference, t, dt, x, x_next) - euler_maruyama_log_prob(
                controlled, t, dt, x, x_next
            )
            return _advance(state, x_next, *target.value_and_score(x_next), inc)

        return Kernel(init, step)

    def reference_log_marginal(
        self, target: Target, step: Any, x: Float[Array, " dim"]
    ) -> Float[Array, ""]:
        r""":math:`\log q_k(x) = \log\mathcal N(x; 0, \sigma^2 t_k I)`, :math:`t_k = k\delta`,
        the reference Brownian motion's marginal (a Dirac at :math:`k = 0`, where the
        Feynman–Kac correction gives it weight zero; :math:`t_0` is floored at
        :math:`\delta` to stay finite)."""
        t = jnp.maximum(step, 1) * (self.duration / self.n_steps)
        return gaussian_log_prob(x, 0.0, variance=self.sigma**2 * t, n_dims=target.sub_dim)

    def terminal_log_weight(self, target: Target, state: SamplerState) -> Float[Array, ""]:
        r""":math:`\log\tilde\pi(x_K) - \log\mathcal N(x_K; 0, \sigma^2 T)` (on the COM-free
        subspace for particles)."""
        var = self.sigma**2 * self.duration
        return state.log_prob - gaussian_log_prob(
            state.position, 0.0, variance=var, n_dims=target.sub_dim
        )
