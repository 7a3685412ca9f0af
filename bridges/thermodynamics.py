r"""The thermodynamic reading of a Schrödinger bridge: KL to the reference and work.

**KL = least "entropy production".** The bridge is the path measure :math:`P` closest in
KL to the reference :math:`R` (:math:`dX = \sigma dB`, same initial law) among those with
the prescribed end marginals (Schrödinger 1931; Léonard 2014). For a drift :math:`b` and
the same diffusion, Girsanov's theorem gives

.. math:: \mathrm{KL}(P\,\|\,R) = \mathbb E_P\int_0^1 \frac{|b(t, X_t)|^2}{2\sigma^2}\,dt,

estimated here along Euler–Maruyama paths of :func:`thermo.integrate.euler_maruyama`
(left-point Riemann sum; the closed form for Gaussians is
:meth:`bridges.gaussian.GaussianBridge.kl_to_reference`).

**Work.** For a Brownian reference the bridge drift is a gradient,
:math:`b = \sigma^2\nabla\log\varphi_t = -\nabla U_t` with the Schrödinger potential
:math:`\varphi_t`, which solves the backward heat equation
:math:`\partial_t\varphi + \tfrac{\sigma^2}{2}\Delta\varphi = 0`. Read the bridge as overdamped
Langevin dynamics in the driven potential :math:`U_t = -\sigma^2\log\varphi_t` at
:math:`k_BT = \sigma^2/2` (:math:`\beta = 2/\sigma^2`, unit mobility). Its Sekimoto work
:math:`W = \int_0^1 \partial_t U_t(X_t)\,dt` then has the gauge-free power

.. math:: \partial_t U_t = \tfrac12|b|^2 + \tfrac{\sigma^2}{2}\nabla\!\cdot b,

(from the heat equation), so :math:`\mathbb E[\beta W] = 2\,\mathrm{KL}(P\|R) +
\mathbb E\int_0^1\nabla\!\cdot b\,dt`; for a Gaussian bridge the last term is
:math:`\int_0^1\operatorname{tr}A_t\,dt` (:func:`gaussian_mean_work`).
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from thermo._checks import check_count
from thermo._typing import PRNGKey
from thermo.estimators import gauss_legendre
from thermo.sde import AbstractSDE

from ._common import simulate
from .gaussian import GaussianBridge

__all__ = ["MeanEstimate", "girsanov_kl", "bridge_work", "gaussian_mean_work"]


class MeanEstimate(NamedTuple):
    """A Monte Carlo mean with its standard error (``std / sqrt(n)``) and per-path values."""

    value: Float[Array, ""]
    std_err: Float[Array, ""]
    per_path: Float[Array, " n"]


def _mean(values):
    n = values.shape[0]
    return MeanEstimate(values.mean(), values.std(ddof=1) / jnp.sqrt(n), values)


def _path_integrals(key, sde, x0, n_steps, integrand):
    _, paths = simulate(key, sde, x0, n_steps, record=True)
    ts = jnp.arange(n_steps, dtype=x0.dtype) / n_steps
    vals = jax.vmap(lambda p: jax.vmap(integrand)(ts, p[:-1]))(paths)  # (n, n_steps)
    return vals.sum(axis=1) / n_steps


@eqx.filter_jit
def girsanov_kl(
    key: PRNGKey, sde: AbstractSDE, x0: Float[Array, "n d"], n_steps: int
) -> MeanEstimate:
    r"""Girsanov KL to the reference :math:`\sigma dB`: :math:`\mathbb E\sum_k |b(t_k,X_k)|^2\,dt/(2\sigma^2)`.

    ``sde`` must have a scalar, state-independent diffusion :math:`\sigma`; paths start at
    ``x0`` (``(n, d)``, samples of :math:`p_0`) and run ``n_steps`` Euler steps on
    :math:`[0, 1]`. Returns the mean over paths and its standard error.
    """
    sigma = sde.diffusion(0.0, x0[0], None)
    if jnp.ndim(sigma) != 0:
        raise ValueError("girsanov_kl needs a scalar diffusion coefficient")

    def integrand(t, x):
        b = sde.drift(t, x, None)
        return jnp.sum(b**2) / (2.0 * sigma**2)

    return _mean(_path_integrals(key, sde, x0, n_steps, integrand))


@eqx.filter_jit
def bridge_work(
    key: PRNGKey, sde: AbstractSDE, x0: Float[Array, "n d"], n_steps: int
) -> MeanEstimate:
    r"""Reduced work :math:`\beta W = \int_0^1 \big(|b|^2/\sigma^2 + \nabla\!\cdot b\big)dt` per path.

    The Sekimoto work of the Schrödinger-potential reading (module docstring), in units
    of :math:`k_BT = \sigma^2/2`; divergence by forward-mode autodiff.
    """
    sigma = sde.diffusion(0.0, x0[0], None)
    if jnp.ndim(sigma) != 0:
        raise ValueError("bridge_work needs a scalar diffusion coefficient")

    def integrand(t, x):
        b = sde.drift(t, x, None)
        div = jnp.trace(jax.jacfwd(lambda y: sde.drift(t, y, None))(x))
        return jnp.sum(b**2) / sigma**2 + div

    return _mean(_path_integrals(key, sde, x0, n_steps, integrand))


def gaussian_mean_work(bridge: GaussianBridge, n_nodes: int = 64) -> Float[Array, ""]:
    r"""Closed-form :math:`\mathbb E[\beta W] = 2\,\mathrm{KL}(P\|R) + \int_0^1\operatorname{tr}A_t\,dt` (Gauss–Legendre)."""
    nodes, weights = gauss_legendre(0.0, 1.0, check_count(n_nodes, "n_nodes"))
    ts = jnp.asarray(nodes, dtype=bridge.cov0.dtype)
    ws = jnp.asarray(weights, dtype=bridge.cov0.dtype)
    tr = jax.vmap(lambda t: jnp.trace(bridge.drift_matrix(t)))(ts)
    return 2.0 * bridge.kl_to_reference() + jnp.sum(ws * tr)
