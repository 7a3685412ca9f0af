r"""Shared pieces of the learned bridge solvers: drift networks as SDEs, path simulation
through :mod:`thermo.integrate`, a regression fitting loop, and coupling statistics.

The fitting loop is a plain optax/Adam regression :math:`\min_\theta \mathbb E\,|v_\theta(t,x)
- \text{target}|^2` run by ``lax.scan``; it is kept here because
:func:`generative.training.train` is specialised to denoising score matching.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, Float

from thermo._typing import Args, PRNGKey, ScalarLike
from thermo.integrate import euler_maruyama, run_population
from thermo.sde import AbstractSDE

__all__ = ["NetworkSDE", "simulate", "fit_regression", "coupling_stats", "relative_error"]


class NetworkSDE(AbstractSDE):
    r""":math:`dX_s = v(\tau(s), X_s)\,ds + \sigma\,dB_s` for a network ``v(t, x)``.

    With ``reverse_time=True`` the network is a *backward* drift in the forward time
    :math:`t`, simulated in the forward-running clock :math:`s = 1 - t`
    (:math:`\tau(s) = 1 - s`), so that a path from :math:`p_1` at :math:`s=0` ends near
    :math:`p_0` at :math:`s = 1`.
    """

    network: Callable[[ScalarLike, Float[Array, " d"]], Float[Array, " d"]]
    sigma: Float[Array, ""]
    reverse_time: bool = eqx.field(static=True, default=False)

    def drift(self, t, x, args):
        tau = 1.0 - t if self.reverse_time else t
        return self.network(tau, x)

    def diffusion(self, t, x, args):
        return self.sigma


def simulate(
    key: PRNGKey,
    sde: AbstractSDE,
    x0: Float[Array, "n d"],
    n_steps: int,
    *,
    record: bool = False,
    args: Args = None,
) -> tuple[Float[Array, "n d"], Any]:
    r"""Euler–Maruyama on :math:`[0, 1]` with ``n_steps`` steps, through :func:`thermo.integrate.euler_maruyama`.

    Returns ``(x1 (n, d), paths)``; ``paths`` is ``(n, n_steps + 1, d)`` (including
    ``x0``) when ``record`` is set, else ``None``.
    """
    dt = 1.0 / n_steps
    kernel = euler_maruyama(sde, dt, t0=0.0, args=args)
    states = jax.vmap(kernel.init)(x0)
    obs = (lambda s, i: s.position) if record else None
    final, trace = run_population(key, kernel, states, n_steps, observable_fn=obs)
    if record:
        trace = jnp.concatenate([x0[:, None, :], trace], axis=1)
    return final.position, trace


def fit_regression(
    key: PRNGKey,
    network: eqx.Module,
    batch_fn: Callable[[PRNGKey], tuple[Array, Array, Array]],
    n_steps: int,
    learning_rate: float = 1e-3,
) -> tuple[eqx.Module, Float[Array, " n_steps"]]:
    r"""Fit ``network(t, x)`` to regression targets by Adam, :math:`\min \mathbb E|v(t,x)-y|^2`.

    ``batch_fn(key) -> (t (b,), x (b, d), y (b, d))`` draws one minibatch. The loop is a
    single ``lax.scan`` over ``n_steps`` (call it under ``jit``). Returns the fitted
    network and the per-step losses.
    """
    optimiser = optax.adam(learning_rate)
    params, static = eqx.partition(network, eqx.is_inexact_array)
    opt_state = optimiser.init(params)

    def loss_fn(p, t, x, y):
        net = eqx.combine(p, static)
        pred = jax.vmap(net)(t, x)
        return jnp.mean(jnp.sum((pred - y) ** 2, axis=-1))

    def step(carry, k):
        p, s = carry
        t, x, y = batch_fn(k)
        loss, grads = jax.value_and_grad(loss_fn)(p, t, x, y)
        updates, s = optimiser.update(grads, s, p)
        p = optax.apply_updates(p, updates)
        return (p, s), loss

    (params, _), losses = jax.lax.scan(step, (params, opt_state), jr.split(key, n_steps))
    return eqx.combine(params, static), losses


def coupling_stats(
    x0: Float[Array, "n d"], x1: Float[Array, "n d"]
) -> tuple[Float[Array, "d d"], Float[Array, "d d"]]:
    r"""Sample cross-covariance :math:`\widehat{\mathrm{Cov}}(X_0, X_1)` and :math:`\widehat{\mathrm{Cov}}(X_1)` (``n - 1`` normalised)."""
    n = x0.shape[0]
    x0c = x0 - x0.mean(0)
    x1c = x1 - x1.mean(0)
    return x0c.T @ x1c / (n - 1), x1c.T @ x1c / (n - 1)


def relative_error(estimate: Float[Array, "d d"], truth: Float[Array, "d d"]) -> Float[Array, ""]:
    r"""Relative Frobenius error :math:`\|\hat M - M\|_F / \|M\|_F`."""
    return jnp.linalg.norm(estimate - truth) / jnp.linalg.norm(truth)
