r"""A multi-fidelity Gaussian process (autoregressive co-kriging) in JAX.

Kennedy & O'Hagan (2000), *Biometrika* 87, 1: fidelity :math:`l = 0, \dots, L-1` (cheap to
expensive) is

.. math:: f_l(x) = \rho_{l-1} f_{l-1}(x) + \delta_l(x),\qquad
          \delta_l \sim \mathcal{GP}(0, k_l),

with independent ARD squared-exponential kernels
:math:`k_l(x, x') = s_l^2 \exp(-\tfrac12 \sum_d (x_d - x'_d)^2/\ell_{l,d}^2)`, so

.. math:: \mathrm{Cov}[f_i(x), f_j(x')] = \sum_{l \le \min(i,j)} c_{l,i}\, c_{l,j}\, k_l(x, x'),
          \qquad c_{l,j} = \prod_{m=l}^{j-1} \rho_m ,

and observations :math:`y = f_l(x) + \varepsilon`, :math:`\varepsilon \sim \mathcal N(0,
\sigma_l^2)`. Hyperparameters maximise the log marginal likelihood (Rasmussen & Williams
2006, eq. 2.30) by Adam (optax), warm-started from the previous fit. Observations live in a
fixed-capacity buffer with a mask (padding rows are an identity block with zero target, which
adds nothing to the likelihood or the posterior), so one compilation serves a whole search.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int

__all__ = ["GPParams", "init_params", "fit_params", "posterior", "log_marginal_likelihood"]

_JITTER = 1e-6


class GPParams(NamedTuple):
    """Unconstrained hyperparameters of an ``L``-fidelity GP on ``d`` features.

    Attributes:
        log_lengthscale: ``(L, d)`` ARD length scales of the kernels :math:`k_l`.
        log_scale: ``(L,)`` signal standard deviations :math:`s_l`.
        rho: ``(L - 1,)`` the autoregressive factors :math:`\rho_l`.
        log_noise: ``(L,)`` observation-noise standard deviations :math:`\\sigma_l`.
    """

    log_lengthscale: Float[Array, "L d"]
    log_scale: Float[Array, " L"]
    rho: Float[Array, " Lm1"]
    log_noise: Float[Array, " L"]


def init_params(n_fidelities: int, n_features: int, *, noise: float = 0.05) -> GPParams:
    """Unit length scales and scales, :math:`\\rho = 1`, the given noise (standardised data)."""
    L = int(n_fidelities)
    return GPParams(
        jnp.zeros((L, n_features)),
        jnp.zeros((L,)) - jnp.log(jnp.arange(1, L + 1, dtype=float)),
        jnp.ones((max(L - 1, 0),)),
        jnp.full((L,), np.log(noise)),
    )


def _coefficients(rho, n_fidelities):
    """``c[l, j] = prod_{m=l}^{j-1} rho_m`` for ``l <= j`` (0 above the diagonal)."""
    L = n_fidelities
    rows = []
    for l_ in range(L):
        row = []
        for j in range(L):
            if l_ > j:
                row.append(jnp.zeros(()))
            else:
                prod = jnp.ones(())
                for m in range(l_, j):
                    prod = prod * rho[m]
                row.append(prod)
        rows.append(jnp.stack(row))
    return jnp.stack(rows)  # (L, L)


def _cov(params: GPParams, xa, fa, xb, fb):
    """Cross-covariance of ``f_{fa}(xa)`` and ``f_{fb}(xb)``, shapes ``(na, nb)``."""
    L = params.log_scale.shape[0]
    c = _coefficients(params.rho, L)
    out = 0.0
    for l_ in range(L):
        ls = jnp.exp(params.log_lengthscale[l_])
        d2 = jnp.sum(((xa[:, None, :] - xb[None, :, :]) / ls) ** 2, axis=-1)
        k = jnp.exp(2.0 * params.log_scale[l_]) * jnp.exp(-0.5 * d2)
        out = out + c[l_, fa][:, None] * c[l_, fb][None, :] * k
    return out


def _gram(params, x, f, mask):
    k = _cov(params, x, f, x, f)
    noise = jnp.exp(2.0 * params.log_noise)[f] + _JITTER
    k = k + jnp.diag(noise)
    m = mask.astype(k.dtype)
    mm = m[:, None] * m[None, :]
    return k * mm + jnp.diag(1.0 - m)


def log_marginal_likelihood(
    params: GPParams,
    x: Float[Array, "n d"],
    fidelity: Int[Array, " n"],
    y: Float[Array, " n"],
    mask: Float[Array, " n"],
) -> Float[Array, ""]:
    r""":math:`-\tfrac12 y^\top K^{-1} y - \tfrac12\log|K| - \tfrac n2 \log 2\pi` over the
    unmasked observations."""
    k = _gram(params, x, fidelity, mask)
    chol = jnp.linalg.cholesky(k)
    ym = jnp.where(mask, y, 0.0)
    alpha = jax.scipy.linalg.cho_solve((chol, True), ym)
    n = jnp.sum(mask)
    return -0.5 * ym @ alpha - jnp.sum(jnp.log(jnp.diag(chol))) - 0.5 * n * jnp.log(2.0 * jnp.pi)


def _neg_objective(params, x, f, y, mask):
    # a weak log-normal prior on the length scales keeps them off 0 and infinity
    prior = 0.5 * jnp.sum((params.log_lengthscale / 2.0) ** 2)
    return -log_marginal_likelihood(params, x, f, y, mask) + prior


_OPTIMIZER = optax.adam(0.05)


@eqx.filter_jit
def fit_params(params: GPParams, x, fidelity, y, mask, n_steps: int = 100) -> GPParams:
    """``n_steps`` Adam steps on the negative log marginal likelihood (plus a weak prior on
    the log length scales, :math:`\\mathcal N(0, 2^2)`), from ``params``."""
    opt_state = _OPTIMIZER.init(params)

    def step(carry, _):
        p, s = carry
        g = jax.grad(_neg_objective)(p, x, fidelity, y, mask)
        g = jax.tree_util.tree_map(lambda a: jnp.where(jnp.isfinite(a), a, 0.0), g)
        u, s = _OPTIMIZER.update(g, s, p)
        p = optax.apply_updates(p, u)
        p = p._replace(log_noise=jnp.clip(p.log_noise, np.log(1e-3), np.log(1.0)))
        return (p, s), None

    (params, _), _ = jax.lax.scan(step, (params, opt_state), None, length=n_steps)
    return params


@eqx.filter_jit
def posterior(
    params: GPParams, x, fidelity, y, mask, x_star, fidelity_star
) -> tuple[Float[Array, " m"], Float[Array, " m"]]:
    r"""Posterior mean and variance of the latent :math:`f_{l^*}(x^*)` (no noise), ``(m,)``."""
    k = _gram(params, x, fidelity, mask)
    chol = jnp.linalg.cholesky(k)
    ym = jnp.where(mask, y, 0.0)
    alpha = jax.scipy.linalg.cho_solve((chol, True), ym)
    ks = _cov(params, x_star, fidelity_star, x, fidelity) * mask[None, :]
    mean = ks @ alpha
    v = jax.scipy.linalg.solve_triangular(chol, ks.T, lower=True)
    prior_var = jnp.diagonal(_cov(params, x_star, fidelity_star, x_star, fidelity_star))
    var = jnp.maximum(prior_var - jnp.sum(v * v, axis=0), 1e-12)
    return mean, var


@eqx.filter_jit
def posterior_cross(params: GPParams, x, fidelity, y, mask, x_star, fa, fb):
    r"""Posterior covariance of :math:`f_{fa}(x^*_i)` and :math:`f_{fb}(x^*_i)` at the same
    points (``(m,)``), and the noise variance of a new observation at fidelity ``fb``."""
    k = _gram(params, x, fidelity, mask)
    chol = jnp.linalg.cholesky(k)
    ka = _cov(params, x_star, fa, x, fidelity) * mask[None, :]
    kb = _cov(params, x_star, fb, x, fidelity) * mask[None, :]
    va = jax.scipy.linalg.solve_triangular(chol, ka.T, lower=True)
    vb = jax.scipy.linalg.solve_triangular(chol, kb.T, lower=True)
    prior = jax.vmap(lambda xs, a, b: _cov(params, xs[None], a[None], xs[None], b[None])[0, 0])(
        x_star, fa, fb
    )
    noise_b = jnp.exp(2.0 * params.log_noise)[fb]
    return prior - jnp.sum(va * vb, axis=0), noise_b
