r"""Iterative Markovian fitting / Diffusion Schrödinger Bridge Matching (Shi et al. 2023).

DSBM alternates two projections that both keep the Schrödinger bridge fixed:

* **Reciprocal projection**: given a coupling :math:`\Pi_{01}` (pairs :math:`(x_0,x_1)`),
  mix Brownian bridges of the reference :math:`\sigma dB` over it,
  :math:`X_t = (1-t)x_0 + t x_1 + \sigma\sqrt{t(1-t)}\,Z`.
* **Markovian projection**: the Markov process with the same marginals, whose drift is
  the conditional expectation of the bridge drift. Forward and backward versions are
  fitted by *bridge matching* (regression):

  .. math:: v^{\rightarrow} = \arg\min_v \mathbb E\Big|v(t,X_t) - \frac{x_1 - X_t}{1-t}\Big|^2,
            \qquad
            v^{\leftarrow} = \arg\min_v \mathbb E\Big|v(t,X_t) - \frac{x_0 - X_t}{t}\Big|^2.

Iteration (DSBM, Shi et al. 2023, Alg. 1, forward–backward variant): start from the
independent coupling :math:`p_0\otimes p_1`; fit :math:`v^\rightarrow`; simulate it from
:math:`p_0` to get the coupling :math:`(x_0, \hat x_1)`; fit :math:`v^\leftarrow` on it;
simulate backward from :math:`p_1` to get :math:`(\hat x_0, x_1)`; repeat. Simulating
from the *true* end marginal each time keeps one marginal exact and stops errors from
accumulating. Each IMF step does not increase the KL to the Schrödinger bridge
(Shi et al. 2023, Prop. 7; Peluchetti 2023).
"""

from __future__ import annotations

from typing import Unpack

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float

from thermo._typing import PRNGKey, ScalarLike

from ._common import (
    BridgeFitOptions,
    BridgeFitSetup,
    BridgeIteration,
    BridgeResult,
    NetworkSDE,
    fit_bridge,
    fit_regression,
    simulate,
)

__all__ = ["DSBMResult", "dsbm", "bridge_matching_batch"]


class DSBMResult(BridgeResult):
    """Output of :func:`dsbm` (fields of :class:`bridges._common.BridgeResult`).

    ``forward`` is the forward drift ``v(t, x)`` on ``[0, 1]``, ``backward`` the backward
    drift (in forward time ``t``), ``n_sim_steps`` the Euler steps of the regenerated
    couplings, ``losses[:, 0]`` the forward and ``losses[:, 1]`` the backward regression
    losses, ``n_iterations`` IMF iterations (each one forward + one backward fit).
    """

    __slots__ = ()


def bridge_matching_batch(
    key: PRNGKey,
    x0: Float[Array, "n d"],
    x1: Float[Array, "n d"],
    sigma: ScalarLike,
    batch_size: int,
    direction: str,
    t_margin: float,
) -> tuple[Float[Array, " b"], Float[Array, "b d"], Float[Array, "b d"], Float[Array, " b"]]:
    r"""One bridge-matching minibatch ``(t, x_t, target, weight)`` from the coupling ``(x0[i], x1[i])``.

    :math:`x_t = (1-t)x_0 + t x_1 + \sigma\sqrt{t(1-t)}z`; forward target
    :math:`(x_1-x_t)/(1-t) = x_1 - x_0 - \sigma\sqrt{t/(1-t)}\,z`, backward target
    :math:`(x_0-x_t)/t`. Times are uniform on :math:`[0, 1-m]` (forward) or :math:`[m, 1]`
    (backward) with ``m = t_margin``: the Euler grid never evaluates the drift closer to
    the singular end.

    Weights: the forward target's noise variance per coordinate is
    :math:`\sigma^2 t/(1-t)`, unbounded as :math:`t\to1`; the weight
    :math:`w = 1-t` (backward: :math:`w = t`) is the inverse of
    :math:`1 + t/(1-t)`, i.e. inverse-variance weighting for a unit-scale signal,
    which keeps the late times from dominating the gradient noise. It does not move
    the regression's minimiser (:func:`bridges._common.fit_regression`).
    """
    k_idx, k_t, k_z = jr.split(key, 3)
    idx = jr.randint(k_idx, (batch_size,), 0, x0.shape[0])
    a, b = x0[idx], x1[idx]
    u = jr.uniform(k_t, (batch_size,), dtype=x0.dtype) * (1.0 - t_margin)
    t = u if direction == "forward" else 1.0 - u
    z = jr.normal(k_z, a.shape, dtype=x0.dtype)
    tt = t[:, None]
    xt = (1.0 - tt) * a + tt * b + sigma * jnp.sqrt(tt * (1.0 - tt)) * z
    if direction == "forward":
        target = (b - xt) / (1.0 - tt)
        weight = 1.0 - t
    else:
        target = (a - xt) / tt
        weight = t
    return t, xt, target, weight


@eqx.filter_jit
def _fit(key, net, x0, x1, sigma, direction, *, batch_size, t_margin, n_train_steps, settings):
    def batch_fn(k):
        return bridge_matching_batch(k, x0, x1, sigma, batch_size, direction, t_margin)

    return fit_regression(key, net, batch_fn, n_train_steps, settings)


@eqx.filter_jit
def _simulate(key, sde, x, n_sim_steps):
    return simulate(key, sde, x, n_sim_steps)[0]


def _dsbm_init(setup: BridgeFitSetup):
    # the first coupling is the independent one, p0 x p1 (samples are drawn independently)
    n = min(setup.x0.shape[0], setup.x1.shape[0])
    return setup.forward, setup.backward, setup.x0[:n], setup.x1[:n]


def _dsbm_iteration(setup: BridgeFitSetup, keys, state):
    """One IMF iteration: fit forward on the coupling, simulate it from ``x0``, fit
    backward on that coupling, simulate it from ``x1`` (the next coupling)."""
    fwd, bwd, c0, c1 = state
    k1, k2, k3, k4 = keys
    n = c0.shape[0]
    x0, x1, sigma, n_sim_steps = setup.x0[:n], setup.x1[:n], setup.sigma, setup.n_sim_steps
    fit = dict(
        batch_size=setup.batch_size,
        t_margin=1.0 / n_sim_steps,
        n_train_steps=setup.n_train_steps,
        settings=setup.settings,
    )
    fwd, loss_f = _fit(k1, fwd, c0, c1, sigma, "forward", **fit)
    # forward coupling (x0, x1_hat): x0 exact
    x1_hat = _simulate(k2, NetworkSDE(fwd, sigma), x0, n_sim_steps)
    bwd, loss_b = _fit(k3, bwd, x0, x1_hat, sigma, "backward", **fit)
    # backward coupling (x0_hat, x1): x1 exact
    x0_hat = _simulate(k4, NetworkSDE(bwd, sigma, reverse_time=True), x1, n_sim_steps)
    return (fwd, bwd, x0_hat, x1), (loss_f, loss_b)


_DSBM = BridgeIteration(
    _dsbm_init,
    _dsbm_iteration,
    networks_fn=lambda state: state[:2],
    result_type=DSBMResult,
    n_sim_steps=50,
    desc="DSBM",
    labels=("fwd", "bwd"),
)


def dsbm(
    key: PRNGKey,
    x0: Float[Array, "n d"],
    x1: Float[Array, "m d"],
    sigma: ScalarLike,
    **options: Unpack[BridgeFitOptions],
) -> DSBMResult:
    r"""Diffusion Schrödinger Bridge Matching between samples ``x0 ~ p0`` and ``x1 ~ p1``.

    Reference :math:`\sigma dB` on :math:`[0,1]`; see the module docstring for the
    iteration. Networks are :class:`bridges._common.AffineDrift` (affine in ``x`` plus an
    MLP residual; ``network="mlp"`` gives a plain :class:`generative.networks.mlp.MLP`),
    warm-started across iterations and fitted by Adam with a cosine step-size decay and
    a parameter EMA (:class:`bridges._common.TrainSettings`); paths are simulated with
    :func:`thermo.integrate.euler_maruyama` on ``n_sim_steps`` steps. The outer loop is
    the driver :func:`bridges._common.fit_bridge` shared with :func:`bridges.ipf`.

    Args:
        key: PRNG key.
        x0, x1: ``(n, d)`` and ``(m, d)`` samples of the two marginals.
        sigma: reference diffusion coefficient.
        **options: :class:`bridges._common.BridgeFitOptions` (``n_iterations`` IMF
            iterations, each fitting the forward then the backward drift;
            ``n_train_steps``, ``batch_size``, ``width``, ``depth``, ``learning_rate``,
            ``network``, ``ema_decay``, ``final_lr_fraction``; ``n_sim_steps``, default
            50, the Euler–Maruyama steps used to regenerate couplings; ``progress``).

    Returns:
        :class:`DSBMResult`.
    """
    return fit_bridge(key, x0, x1, sigma, method=_DSBM, **options)
