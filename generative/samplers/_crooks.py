r"""Crooks' fluctuation theorem on a small case: forward and reverse switching of a trap.

A particle in the harmonic trap :math:`U(x,\lambda) = \tfrac{k(\lambda)}{2}|x|^2`,
:math:`k(\lambda) = (1-\lambda)k_0 + \lambda k_1`, is driven by overdamped Langevin
dynamics (:func:`thermo.integrate.overdamped_langevin`) from :math:`\lambda = 0` to 1 in
time :math:`\tau` (forward), and from 1 to 0 (reverse), each started from its exact
equilibrium. Crooks' theorem (Crooks 1999, PRE 60, 2721)

.. math:: \frac{P_F(w)}{P_R(-w)} = e^{\,w - \Delta f},\qquad
          \Delta f = \beta\Delta F = \tfrac d2\log\frac{k_1}{k_0},

says that the forward reduced-work density and the mirrored reverse one cross at
:math:`w = \Delta f` (:func:`thermo.estimators.crooks` locates the crossing of their
kernel density estimates). The learned samplers of this package are the same kind of
process, with a control added to the drift.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float

from thermo._checks import check_1d_finite
from thermo._typing import PRNGKey
from thermo.estimators import bootstrap, crooks
from thermo.integrate import overdamped_langevin, run_population
from thermo.protocols import Protocol, linear_schedule

__all__ = ["SwitchingWorks", "trap_switching_works", "CrooksCrossing", "crooks_crossing"]


class SwitchingWorks(NamedTuple):
    """Reduced works :math:`\\beta W` of forward and reverse switching, and the exact answer.

    Attributes:
        forward: ``(n,)`` forward works (:math:`k_0\\to k_1`).
        reverse: ``(n,)`` reverse works (:math:`k_1\\to k_0`).
        delta_f: exact :math:`\\beta\\Delta F = \\tfrac d2\\log(k_1/k_0)`.
    """

    forward: Float[Array, " n"]
    reverse: Float[Array, " n"]
    delta_f: float


def trap_switching_works(
    key: PRNGKey,
    *,
    n_paths: int,
    k0: float = 1.0,
    k1: float = 4.0,
    beta: float = 1.0,
    duration: float = 0.5,
    dt: float = 1e-3,
    dim: int = 1,
) -> SwitchingWorks:
    r"""Forward and reverse reduced works of a harmonic trap whose stiffness is switched.

    Both directions run :func:`thermo.integrate.overdamped_langevin` on the protocol
    :math:`U(x,\lambda(t))` with a linear schedule over ``duration``; starts are exact
    equilibrium draws :math:`x\sim\mathcal N(0, (\beta k)^{-1})`. The unadjusted kernel's
    :math:`O(dt)` bias on the work statistics is :math:`\approx\tfrac d2\cdot\tfrac{k\,dt}{2}`
    in :math:`\Delta f` (the ULA variance is :math:`1/(\beta k(1-k\,dt/2))`), far below
    the crossing's sampling error at the default ``dt``.

    Returns:
        :class:`SwitchingWorks`.
    """
    if not (k0 > 0 and k1 > 0):
        raise ValueError(f"stiffnesses must be positive, got k0={k0}, k1={k1}")
    n_steps = max(1, round(duration / dt))

    @jax.jit
    def works(key, ka, kb):  # one compile for both directions (stiffnesses traced)
        protocol = Protocol(
            lambda x, lam: 0.5 * lam * jnp.sum(x * x), linear_schedule(ka, kb, 0.0, duration)
        )
        kernel = overdamped_langevin(protocol, beta=beta, dt=dt)
        key_x, key_run = jr.split(key)
        x0 = jr.normal(key_x, (n_paths, dim)) / jnp.sqrt(beta * ka)
        final, _ = run_population(key_run, kernel, jax.vmap(kernel.init)(x0), n_steps)
        return beta * final.work

    key_f, key_r = jr.split(key)
    k0_, k1_ = jnp.asarray(float(k0)), jnp.asarray(float(k1))
    w_f = works(key_f, k0_, k1_)
    w_r = works(key_r, k1_, k0_)
    return SwitchingWorks(w_f, w_r, 0.5 * dim * math.log(k1 / k0))


class CrooksCrossing(NamedTuple):
    """The crossing of the forward and mirrored reverse work densities.

    Attributes:
        crossing: :math:`w^*` where :math:`P_F(w^*) = P_R(-w^*)`.
        std_err: its bootstrap standard error.
        bar: BAR's :math:`\\Delta f` and its standard error (Bennett 1976).
    """

    crossing: Float[Array, ""]
    std_err: Float[Array, ""]
    bar: tuple


def crooks_crossing(
    key: PRNGKey, w_f: Float[Array, " n_f"], w_r: Float[Array, " n_r"], *, n_bootstrap: int = 100
) -> CrooksCrossing:
    r"""Locate the crossing of :math:`P_F(w)` and :math:`P_R(-w)` (:func:`thermo.estimators.crooks`)
    with a bootstrap standard error (:func:`thermo.estimators.bootstrap`, Efron 1979;
    forward and reverse works resampled independently)."""
    w_f, w_r = check_1d_finite(w_f, "w_f"), check_1d_finite(w_r, "w_r")
    if int(n_bootstrap) < 2:
        raise ValueError(f"n_bootstrap must be >= 2, got {n_bootstrap}")
    return _crooks_crossing_jit(key, w_f, w_r, int(n_bootstrap))


@functools.partial(jax.jit, static_argnums=3)
def _crooks_crossing_jit(key, w_f, w_r, n_bootstrap):
    res = crooks(w_f, w_r)
    boot = bootstrap(key, lambda a, b: crooks(a, b).crossing, w_f, w_r, n_bootstrap=n_bootstrap)
    return CrooksCrossing(res.crossing, boot.std_err, (res.bar.delta_f, res.bar.std_err))
