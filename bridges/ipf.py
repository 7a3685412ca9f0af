r"""IPF / Diffusion Schrödinger Bridge (De Bortoli, Thornton, Heng & Doucet 2021).

Iterative proportional fitting on path space, in discrete time with :math:`N` Euler
steps of size :math:`\gamma = 1/N` on :math:`[0,1]`:

* the forward chain :math:`X_{k+1} = X_k + \gamma f(t_k, X_k) + \sigma\sqrt\gamma\,\xi_k`
  starts from :math:`p_0` (iteration 0: :math:`f = 0`, the reference :math:`\sigma dB`,
  whose Euler chain is exact);
* the backward chain :math:`X_k = X_{k+1} + \gamma b(t_{k+1}, X_{k+1}) + \sigma\sqrt\gamma\,\xi_k`
  starts from :math:`p_1`.

Each half-iteration fits the time reversal of the current chain by DSB's *mean matching*
(De Bortoli et al. 2021, Prop. 3), on cached trajectories of the other chain:

.. math:: b(t_{k+1}, X_{k+1}) \approx \frac{X_k - X_{k+1}}{\gamma} + f(t_k, X_k) - f(t_k, X_{k+1})
          \quad\text{(on forward paths)},

.. math:: f(t_k, X_k) \approx \frac{X_{k+1} - X_k}{\gamma} + b(t_{k+1}, X_{k+1}) - b(t_{k+1}, X_k)
          \quad\text{(on backward paths)}.

The backward fit makes the path measure match :math:`p_1` at the end, the forward fit
makes it match :math:`p_0` at the start (IPF's two marginal projections, Kullback 1968;
Ruschendorf 1995). Because the reference's Euler chain is exact for :math:`\sigma dB`,
the discrete-time bridge has exactly the continuous static coupling.
"""

from __future__ import annotations

from typing import Unpack

import equinox as eqx
import jax
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

__all__ = ["IPFResult", "ipf"]


class IPFResult(BridgeResult):
    """Output of :func:`ipf` (fields of :class:`bridges._common.BridgeResult`).

    ``forward`` is the forward drift ``f(t, x)`` (used at ``t_k``), ``backward`` the
    backward drift ``b(t, x)`` (used at ``t_{k+1}``), ``n_sim_steps`` the number ``N`` of
    Euler steps the drifts were fitted for (simulate :meth:`forward_sde` and
    :meth:`backward_sde` with it), ``losses[:, 0]`` the backward and ``losses[:, 1]`` the
    forward fits, ``n_iterations`` IPF iterations (each one backward + one forward fit).
    """

    __slots__ = ()


class _Zero(eqx.Module):
    def __call__(self, t, x):
        return jnp.zeros_like(x)


def _mean_matching_batch(key, paths, other_net, batch_size, n_steps, direction):
    """Minibatch ``(t, x, target)`` from forward-ordered paths ``(n, N+1, d)``."""
    k_i, k_k = jr.split(key)
    i = jr.randint(k_i, (batch_size,), 0, paths.shape[0])
    k = jr.randint(k_k, (batch_size,), 0, n_steps)
    gamma = 1.0 / n_steps
    xk = paths[i, k]
    xk1 = paths[i, k + 1]
    tk = (k / n_steps).astype(paths.dtype)
    tk1 = ((k + 1) / n_steps).astype(paths.dtype)
    other = jax.vmap(other_net)
    if direction == "backward":  # fit b(t_{k+1}, X_{k+1}) on forward paths
        target = (xk - xk1) / gamma + other(tk, xk) - other(tk, xk1)
        return tk1, xk1, target
    # fit f(t_k, X_k) on backward paths
    target = (xk1 - xk) / gamma + other(tk1, xk1) - other(tk1, xk)
    return tk, xk, target


@eqx.filter_jit
def _fit(key, net, paths, other_net, direction, n_train_steps, *, batch_size, n_steps, settings):
    def batch_fn(k):
        return _mean_matching_batch(k, paths, other_net, batch_size, n_steps, direction)

    return fit_regression(key, net, batch_fn, n_train_steps, settings)


@eqx.filter_jit
def _paths(key, sde, x, n_steps, reverse):
    _, paths = simulate(key, sde, x, n_steps, record=True)
    return paths[:, ::-1] if reverse else paths


def _ipf_init(setup: BridgeFitSetup):
    # iteration 0 runs the reference (zero drift)
    return _Zero(), setup.forward, setup.backward


def _ipf_iteration(setup: BridgeFitSetup, keys, state):
    """One IPF iteration: the backward fit on forward paths, then the forward fit on
    backward paths (the forward paths come from the last iteration's forward drift)."""
    current_fwd, fwd, bwd = state
    k1, k2, k3, k4 = keys
    sigma, n_sim_steps, settings = setup.sigma, setup.n_sim_steps, setup.settings
    fit = dict(batch_size=setup.batch_size, n_steps=n_sim_steps, settings=settings)
    fpaths = _paths(k1, NetworkSDE(current_fwd, sigma), setup.x0, n_sim_steps, False)
    bwd, loss_b = _fit(k2, bwd, fpaths, current_fwd, "backward", setup.n_train_steps, **fit)
    bpaths = _paths(k3, NetworkSDE(bwd, sigma, reverse_time=True), setup.x1, n_sim_steps, True)
    fwd, loss_f = _fit(k4, fwd, bpaths, bwd, "forward", setup.n_train_steps, **fit)
    return (fwd, fwd, bwd), (loss_b, loss_f)


_IPF = BridgeIteration(
    _ipf_init,
    _ipf_iteration,
    networks_fn=lambda state: state[1:],
    result_type=IPFResult,
    n_sim_steps=20,
    desc="IPF",
    labels=("bwd", "fwd"),
)


def ipf(
    key: PRNGKey,
    x0: Float[Array, "n d"],
    x1: Float[Array, "m d"],
    sigma: ScalarLike,
    **options: Unpack[BridgeFitOptions],
) -> IPFResult:
    r"""Diffusion Schrödinger Bridge (IPF with mean matching) between samples of ``p0`` and ``p1``.

    Reference :math:`\sigma dB` on :math:`[0,1]`, ``n_sim_steps`` Euler steps (default 20);
    see the module docstring. Each iteration fits the backward drift on cached forward paths
    (from ``x0``), then the forward drift on cached backward paths (from ``x1``). Networks
    are :class:`bridges._common.AffineDrift` by default (``network`` as in
    :func:`bridges.dsbm`), warm-started across iterations, fitted by Adam with a cosine
    step-size decay and a parameter EMA; paths are simulated with
    :func:`thermo.integrate.euler_maruyama`. The outer loop is the driver
    :func:`bridges._common.fit_bridge` shared with :func:`bridges.dsbm`.

    Arguments as in :func:`bridges.dsbm` (the options
    :class:`bridges._common.BridgeFitOptions`, with ``n_iterations`` IPF iterations of
    one backward and one forward fit each), except that ``n_sim_steps`` is the number
    ``N`` of Euler steps of the cached paths and of the fitted chains.

    Returns:
        :class:`IPFResult`.
    """
    return fit_bridge(key, x0, x1, sigma, method=_IPF, **options)
