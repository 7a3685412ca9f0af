r"""A bridge's simulated paths as a :class:`thermo.paths.PathEnsemble`, with Girsanov weights.

A learned (or closed-form) bridge is an SDE :math:`P_\theta:\ dX = b_\theta(t, X)\,dt +
\sigma\,dB` on :math:`[0, 1]`; the Schrödinger problem measures it against a reference
:math:`Q:\ dX = f(t, X)\,dt + \sigma\,dB` with the same noise and the same initial law
(the Brownian motion :math:`\sigma dB`, :math:`f = 0`, by default; an Ornstein–Uhlenbeck
reference is any :class:`thermo.sde.AbstractSDE` with a linear drift). Along the
Euler–Maruyama chain of :math:`P_\theta` on the grid :math:`t_k = k/N`,
:math:`\Delta t = 1/N`, each step's two transition kernels are Gaussians with the same
covariance :math:`\sigma^2\Delta t`, and the path's log Radon–Nikodym weight of the
reference against the bridge is the exact discrete-time sum
(:func:`thermo.integrate.euler_maruyama_log_prob`; Girsanov 1960 in the limit)

.. math:: \log w = \log\frac{dQ}{dP_\theta}
          = \sum_{k<N}\Big[\log\mathcal N\big(X_{k+1}; X_k + f_k\Delta t, \sigma^2\Delta t\big)
          - \log\mathcal N\big(X_{k+1}; X_k + b_k\Delta t, \sigma^2\Delta t\big)\Big]
          = -\sum_{k<N}\frac{(b_k - f_k)\cdot\big(\Delta X_k - \tfrac12(b_k + f_k)\Delta t\big)}
          {\sigma^2},

with :math:`b_k = b_\theta(t_k, X_k)`, :math:`f_k = f(t_k, X_k)`,
:math:`\Delta X_k = X_{k+1} - X_k` (for :math:`f = 0`, minus the Euler form
:math:`\sum_k b_k\cdot(\Delta X_k - \tfrac12 b_k\Delta t)/\sigma^2` of Girsanov's
exponent). Both chains are normalised path densities started from the same points, so
:math:`\mathbb E_{P_\theta}[w] = 1` exactly, for every drift and every :math:`N`: the
estimate :func:`thermo.estimators.estimate_log_z` of the ensemble estimates
:math:`\log(Z_Q/Z_{P_\theta}) = 0`, a check of the simulation and of the weights, and its
ESS says how far the bridge has moved from the reference. Their mean is minus the
discrete-time KL, :math:`\mathbb E_{P_\theta}[-\log w] = \mathrm{KL}(P_\theta\|Q) =
\mathbb E\sum_k |b_k - f_k|^2\Delta t/(2\sigma^2)`, the quantity the Schrödinger bridge
minimises among path measures with its two marginals (Léonard 2014;
:func:`bridges.girsanov_kl` is its Riemann-sum estimator on the same paths).
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from thermo._checks import check_count
from thermo._typing import Args, PRNGKey
from thermo.estimators import Estimate, estimate_log_z
from thermo.integrate import euler_maruyama, euler_maruyama_log_prob, run_population
from thermo.kernel import Kernel
from thermo.paths import PathEnsemble
from thermo.sde import AbstractSDE

from .thermodynamics import MeanEstimate, _mean

__all__ = ["BridgePaths", "path_ensemble"]


class BridgePaths(NamedTuple):
    r"""What :func:`path_ensemble` returns.

    Attributes:
        ensemble: :class:`thermo.paths.PathEnsemble`: ``samples`` the path ends
            :math:`X_N` ``(n, d)``, ``log_weights`` ``(n,)`` the Girsanov weights
            :math:`\log dQ/dP_\theta` (module docstring), ``n_energy_evals`` the drift
            evaluations of the bridge, :math:`nN`.
        log_z: :func:`thermo.estimators.estimate_log_z` of the ensemble, an estimate of
            :math:`\log(Z_Q/Z_{P_\theta}) = 0` with its standard error, ESS and Pareto
            :math:`\hat k`.
        kl: :math:`\mathrm{KL}(P_\theta\|Q)`, the mean of ``-log_weights``, with its standard
            error and per-path values.
    """

    ensemble: PathEnsemble
    log_z: Estimate
    kl: MeanEstimate


class _Driftless(AbstractSDE):
    """The reference ``dX = G(t, X) dB``: the bridge's own noise with zero drift."""

    sde: AbstractSDE

    def drift(self, t, x, args):
        return jnp.zeros_like(x)

    def diffusion(self, t, x, args):
        return self.sde.diffusion(t, x, args)


def _girsanov_kernel(sde: AbstractSDE, reference: AbstractSDE, dt: float, args: Args) -> Kernel:
    """Euler–Maruyama on ``sde`` whose state's ``log_weight`` accumulates
    ``log q(X_{k+1} | X_k) - log p(X_{k+1} | X_k)`` (the same step and key as
    :func:`bridges._common.simulate`)."""
    em = euler_maruyama(sde, dt, t0=0.0, args=args)

    def step(key, state):
        new, info = em.step(key, state)
        x, t, x_next = state.position, state.time, new.position
        inc = euler_maruyama_log_prob(reference, t, dt, x, x_next, args) - euler_maruyama_log_prob(
            sde, t, dt, x, x_next, args
        )
        return new._replace(log_weight=state.log_weight + inc), info

    return Kernel(em.init, step)


@eqx.filter_jit
def _simulate_weights(key, sde, reference, x0, n_steps, args):
    kernel = _girsanov_kernel(sde, reference, 1.0 / n_steps, args)
    final, _ = run_population(key, kernel, jax.vmap(kernel.init)(x0), n_steps)
    return final.position, final.log_weight


def path_ensemble(
    key: PRNGKey,
    sde: AbstractSDE,
    x0: Float[Array, "n d"],
    n_steps: int,
    *,
    reference_sde: AbstractSDE | None = None,
    args: Args = None,
) -> BridgePaths:
    r"""Simulate a bridge SDE from ``x0`` and weigh each path against the reference.

    ``n_steps`` Euler–Maruyama steps on :math:`[0, 1]` through
    :func:`thermo.integrate.euler_maruyama` (the same paths as
    :func:`bridges._common.simulate` with the same key), each path carrying the exact
    discrete-time Girsanov weight :math:`\log dQ/dP_\theta` of the module docstring, with
    :math:`\mathbb E[w] = 1`. Use it on any bridge SDE: :meth:`bridges.IPFResult.forward_sde`,
    :meth:`bridges.DSBMResult.backward_sde` (from ``x1`` in the clock :math:`s = 1 - t`),
    :meth:`bridges.GaussianBridge.sde`, :meth:`bridges.SinkhornBridge.sde`.

    Args:
        key: PRNG key.
        sde: the bridge :math:`dX = b(t, X)\,dt + G\,dB` (any
            :class:`thermo.sde.AbstractSDE`).
        x0: ``(n, d)`` start points, ``n >= 2`` (samples of the initial law the bridge and
            the reference share).
        n_steps: Euler steps :math:`N`.
        reference_sde: the reference :math:`Q`; default the driftless process with the
            bridge's own noise (:math:`\sigma dB` for the bridges here). Its diffusion must
            equal the bridge's: otherwise the two path measures are mutually singular and
            no weight exists (checked at ``t = 0`` and the first start point).
        args: passed to both drifts and diffusions.

    Returns:
        :class:`BridgePaths` ``(ensemble, log_z, kl)``.

    Raises:
        ValueError: ``x0`` not ``(n, d)`` with ``n >= 2`` or not finite, ``n_steps < 1``,
            ``sde`` or ``reference_sde`` not an SDE, or the two diffusions differ.
    """
    if not isinstance(sde, AbstractSDE):
        raise ValueError(f"sde must be a thermo.sde.AbstractSDE, got {type(sde).__name__}")
    x0 = jnp.asarray(x0)
    if x0.ndim != 2 or x0.shape[0] < 2 or x0.shape[1] < 1:
        raise ValueError(f"x0 must have shape (n, d) with n >= 2 and d >= 1, got {x0.shape}")
    if not jnp.issubdtype(x0.dtype, jnp.floating):
        x0 = x0.astype(jnp.result_type(float))
    if not bool(jnp.all(jnp.isfinite(x0))):
        raise ValueError("x0 contains NaN or inf")
    n_steps = check_count(n_steps, "n_steps")
    if reference_sde is None:
        reference_sde = _Driftless(sde)
    elif not isinstance(reference_sde, AbstractSDE):
        raise ValueError(
            f"reference_sde must be a thermo.sde.AbstractSDE, got {type(reference_sde).__name__}"
        )
    else:
        g = np.asarray(sde.diffusion(0.0, x0[0], args))
        g_ref = np.asarray(reference_sde.diffusion(0.0, x0[0], args))
        if g.shape != g_ref.shape or not np.allclose(g, g_ref, rtol=1e-12, atol=0.0):
            raise ValueError(
                "reference_sde's diffusion differs from sde's (at t = 0, x0[0]): the two path "
                "measures are mutually singular and have no Girsanov weight"
            )
    samples, log_w = _simulate_weights(key, sde, reference_sde, x0, n_steps, args)
    ensemble = PathEnsemble(samples, log_w, int(x0.shape[0]) * n_steps)
    return BridgePaths(ensemble, estimate_log_z(ensemble), _mean(-log_w))
