r"""Exact marginals and scores of the forward processes applied to Gaussian-mixture data.

For data :math:`p_0 = \sum_k w_k \mathcal N(\mu_k, \Sigma_k)` and a linear forward
process with kernel :math:`x_t = a(t)x_0 + \sigma(t)\varepsilon`, the marginal is again a
Gaussian mixture (a linear map of a mixture plus independent Gaussian noise),

.. math:: p_t = \sum_k w_k\, \mathcal N\big(a\mu_k,\; a^2\Sigma_k + \sigma^2 I\big),

so the exact score :math:`\nabla\log p_t` is available in closed form. This is the
ground truth behind the sampler, likelihood and thermodynamic checks (e.g. Song et al.
2021, Sec. 4, use the same construction on toy data).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jax.scipy.special import logsumexp
from jaxtyping import Array, Float

from thermo._checks import check_count, check_finite, check_positive, check_psd, is_traced
from thermo._typing import Args, PRNGKey, ScalarLike

from .processes import AbstractDiffusionProcess

__all__ = ["GaussianMixture", "marginal_mixture", "exact_score_fn", "gaussian_kl_to_standard"]


class GaussianMixture(eqx.Module):
    r"""A Gaussian mixture :math:`\sum_k w_k\mathcal N(\mu_k, \Sigma_k)` on :math:`\mathbb R^d`.

    Attributes:
        weights: ``(K,)`` non-negative, summing to one.
        means: ``(K, d)``.
        covs: ``(K, d, d)`` symmetric positive definite.

    Raises:
        ValueError: on inconsistent shapes, negative or non-normalised weights,
            non-finite means, or a covariance that is not symmetric positive definite
            (value checks run on concrete arrays only).
    """

    weights: Float[Array, " K"]
    means: Float[Array, "K d"]
    covs: Float[Array, "K d d"]

    def __check_init__(self):
        k, d = self.means.shape
        if self.weights.shape != (k,) or self.covs.shape != (k, d, d):
            raise ValueError(
                f"inconsistent shapes: weights {self.weights.shape}, means {self.means.shape}, "
                f"covs {self.covs.shape}"
            )
        if is_traced((self.weights, self.means, self.covs)):
            return
        check_positive(self.weights, "weights", allow_zero=True)
        total = float(jnp.sum(self.weights))
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"weights must sum to one, got {total}")
        check_finite(self.means, "means")
        check_psd(self.covs, "covs")

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def component_log_probs(self, x: Float[Array, " d"]) -> Float[Array, " K"]:
        r""":math:`\log w_k + \log\mathcal N(x;\mu_k,\Sigma_k)` for every component."""
        chol = jnp.linalg.cholesky(self.covs)  # (K, d, d)
        r = x[None, :] - self.means
        z = jax.scipy.linalg.solve_triangular(chol, r[..., None], lower=True)[..., 0]
        log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
        return (
            jnp.log(self.weights)
            - 0.5 * jnp.sum(z**2, axis=-1)
            - 0.5 * log_det
            - 0.5 * self.dim * math.log(2 * math.pi)
        )

    def log_prob(self, x: Float[Array, " d"]) -> Float[Array, ""]:
        r""":math:`\log p(x) = \operatorname{logsumexp}_k[\log w_k + \log\mathcal N(x;\mu_k,\Sigma_k)]`."""
        return logsumexp(self.component_log_probs(x))

    def score(self, x: Float[Array, " d"]) -> Float[Array, " d"]:
        r""":math:`\nabla\log p(x) = \sum_k r_k(x)\,\Sigma_k^{-1}(\mu_k - x)`, :math:`r_k` the responsibilities."""
        resp = jax.nn.softmax(self.component_log_probs(x))
        prec_r = jnp.linalg.solve(self.covs, (self.means - x[None, :])[..., None])[..., 0]
        return jnp.sum(resp[:, None] * prec_r, axis=0)

    def sample(self, key: PRNGKey, n: int) -> Float[Array, "n d"]:
        """Draw ``n`` samples: a component by its weight, then a Gaussian draw."""
        n = check_count(n, "n", minimum=0)
        key_c, key_z = jr.split(key)
        comp = jr.choice(key_c, self.weights.shape[0], (n,), p=self.weights)
        chol = jnp.linalg.cholesky(self.covs)[comp]  # (n, d, d)
        z = jr.normal(key_z, (n, self.dim), dtype=self.means.dtype)
        return self.means[comp] + jnp.einsum("nij,nj->ni", chol, z)

    def mean(self) -> Float[Array, " d"]:
        return self.weights @ self.means

    def covariance(self) -> Float[Array, "d d"]:
        """Total covariance :math:`\\sum_k w_k(\\Sigma_k + \\mu_k\\mu_k^T) - \\mu\\mu^T`."""
        m = self.mean()
        second = jnp.einsum("k,kij->ij", self.weights, self.covs) + jnp.einsum(
            "k,ki,kj->ij", self.weights, self.means, self.means
        )
        return second - jnp.outer(m, m)


def marginal_mixture(
    process: AbstractDiffusionProcess, mixture: GaussianMixture, t: ScalarLike
) -> GaussianMixture:
    r"""The forward marginal :math:`p_t = \sum_k w_k\mathcal N(a\mu_k, a^2\Sigma_k + \sigma^2 I)`.

    Not for ``particles`` processes (whose noise is projected; use a mixture already in
    the CoM-free coordinates instead).
    """
    if process.particles is not None:
        raise ValueError("marginal_mixture does not support particle (CoM-free) processes")
    a, std = process.marginal_coefficients(t)
    eye = jnp.eye(mixture.dim, dtype=mixture.covs.dtype)
    return GaussianMixture(
        weights=mixture.weights,
        means=a * mixture.means,
        covs=a**2 * mixture.covs + std**2 * eye[None],
    )


def exact_score_fn(process: AbstractDiffusionProcess, mixture: GaussianMixture):
    r"""The exact score :math:`s(t, x, \text{args}) = \nabla\log p_t(x)` of mixture data.

    Returns a function with thermo's score signature ``(t, x, args) -> (d,)``.
    """

    def score_fn(t: ScalarLike, x: Float[Array, " d"], args: Args = None) -> Float[Array, " d"]:
        del args
        return marginal_mixture(process, mixture, t).score(x)

    return score_fn


def gaussian_kl_to_standard(mean: Float[Array, " d"], cov: Float[Array, "d d"]) -> Float[Array, ""]:
    r""":math:`\mathrm{KL}(\mathcal N(\mu,\Sigma)\,\|\,\mathcal N(0,I)) = \tfrac12[\operatorname{tr}\Sigma + |\mu|^2 - d - \log\det\Sigma]`."""
    d = mean.shape[0]
    _, logdet = jnp.linalg.slogdet(cov)
    return 0.5 * (jnp.trace(cov) + mean @ mean - d - logdet)
