"""Shared toy data for the generative tests: a 2-D Gaussian mixture and a 2-D Gaussian."""

import jax.numpy as jnp

from generative.exact import GaussianMixture

# A two-component 2-D mixture with unequal weights and correlated components (values
# arbitrary but fixed; modes ~2 apart so the mixture is clearly bimodal).
MIXTURE = GaussianMixture(
    weights=jnp.array([0.3, 0.7]),
    means=jnp.array([[1.0, 2.0], [-1.0, 0.5]]),
    covs=jnp.stack([0.3 * jnp.eye(2), jnp.array([[0.5, 0.2], [0.2, 0.4]])]),
)

GAUSS_MEAN = jnp.array([1.0, -0.5])
GAUSS_COV = jnp.array([[0.5, 0.1], [0.1, 0.3]])
GAUSSIAN = GaussianMixture(jnp.ones(1), GAUSS_MEAN[None], GAUSS_COV[None])
