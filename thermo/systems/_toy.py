r"""Toy targets with an exact :math:`\log Z`: Gaussian, GMM-40, many-well, Neal's funnel.

All use :math:`\beta = 1`, so ``energy`` is :math:`-\log` of the (possibly
unnormalised) density and ``log_z`` is :math:`\log\int e^{-U(x)}dx`.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax.scipy.special import logsumexp
from jaxtyping import Array, Float

from .._typing import PRNGKey
from ._base import System

__all__ = [
    "Funnel",
    "Gaussian",
    "GaussianMixture",
    "ManyWell",
    "fab_many_well",
    "gmm40",
    "symmetric_many_well",
]

_LOG_2PI = math.log(2.0 * math.pi)


class Gaussian(System):
    r"""Isotropic Gaussian :math:`U(x) = |x|^2 / (2 s^2)`, :math:`\beta = 1`.

    Exact :math:`\log Z = \tfrac d2 \log(2\pi s^2)` (closed form) and exact samples.
    ``prior_scale = s``.
    """

    name: str = eqx.field(static=True)
    dim: int = eqx.field(static=True)
    scale: float = eqx.field(static=True)
    beta: float = eqx.field(static=True)
    log_z: float | None = eqx.field(static=True)
    n_particles: None = eqx.field(static=True)
    spatial_dim: None = eqx.field(static=True)
    prior_scale: float = eqx.field(static=True)

    def __init__(self, dim: int, scale: float = 1.0, name: str | None = None):
        if dim < 1:
            raise ValueError(f"Gaussian: dim must be >= 1, got {dim}")
        if not scale > 0:
            raise ValueError(f"Gaussian: scale must be positive, got {scale}")
        self.name = name or f"gaussian-{dim}"
        self.dim = int(dim)
        self.scale = float(scale)
        self.beta = 1.0
        self.log_z = 0.5 * self.dim * math.log(2.0 * math.pi * self.scale**2)
        self.n_particles = None
        self.spatial_dim = None
        self.prior_scale = self.scale

    def _energy(self, x: Float[Array, " dim"]) -> Float[Array, ""]:
        return 0.5 * jnp.sum(x * x) / self.scale**2

    def sample(self, key: PRNGKey, n: int) -> Float[Array, "n dim"]:
        """Exact samples :math:`x = s\\,\\xi`, :math:`\\xi \\sim \\mathcal N(0, I)`."""
        return self.scale * jr.normal(key, (n, self.dim))


def _softplus(v: float) -> float:
    return math.log1p(math.exp(v))


class GaussianMixture(System):
    r"""Equal-weight isotropic Gaussian mixture, normalised: :math:`\log Z = 0`.

    .. math:: U(x) = -\log \frac1K \sum_{k=1}^K \mathcal N(x;\mu_k, s^2 I), \quad \beta = 1.

    ``means`` has shape ``(K, dim)``; exact samples pick a component uniformly.
    ``prior_scale`` is the per-coordinate standard deviation of the mixture,
    :math:`\sqrt{\overline{\mathrm{Var}(\mu)} + s^2}`.
    """

    name: str = eqx.field(static=True)
    dim: int = eqx.field(static=True)
    means: np.ndarray
    scale: float = eqx.field(static=True)
    beta: float = eqx.field(static=True)
    log_z: float | None = eqx.field(static=True)
    n_particles: None = eqx.field(static=True)
    spatial_dim: None = eqx.field(static=True)
    prior_scale: float = eqx.field(static=True)

    def __init__(self, means, scale: float, name: str = "gmm"):
        means = np.asarray(means, dtype=np.float64)
        if means.ndim != 2 or means.shape[0] == 0:
            raise ValueError(f"GaussianMixture: means must be (K, dim), got {means.shape}")
        if not np.all(np.isfinite(means)):
            raise ValueError("GaussianMixture: means contain NaN or inf")
        if not scale > 0:
            raise ValueError(f"GaussianMixture: scale must be positive, got {scale}")
        self.name = name
        self.dim = int(means.shape[1])
        self.means = means
        self.scale = float(scale)
        self.beta = 1.0
        self.log_z = 0.0
        self.n_particles = None
        self.spatial_dim = None
        self.prior_scale = float(np.sqrt(np.mean(np.var(means, axis=0)) + scale**2))

    @property
    def n_components(self) -> int:
        """Number of mixture components K."""
        return int(self.means.shape[0])

    def _energy(self, x: Float[Array, " dim"]) -> Float[Array, ""]:
        means = jnp.asarray(self.means, dtype=x.dtype)
        sq = jnp.sum((x[None, :] - means) ** 2, axis=-1) / self.scale**2
        log_norm = 0.5 * self.dim * (_LOG_2PI + 2.0 * math.log(self.scale))
        log_p = logsumexp(-0.5 * sq) - math.log(self.n_components) - log_norm
        return -log_p

    def sample(self, key: PRNGKey, n: int) -> Float[Array, "n dim"]:
        """Exact samples: :math:`k \\sim \\mathrm{Uniform}\\{1..K\\}`, :math:`x = \\mu_k + s\\xi`."""
        key_k, key_x = jr.split(key)
        k = jr.randint(key_k, (n,), 0, self.n_components)
        means = jnp.asarray(self.means)
        return means[k] + self.scale * jr.normal(key_x, (n, self.dim), dtype=means.dtype)


def gmm40(seed: int = 0) -> GaussianMixture:
    r"""GMM-40 of FAB (Midgley et al., ICLR 2023, §5.1): 40 modes in 2-D.

    The definition is FAB's: K = 40 equal-weight components, means uniform on
    :math:`[-40, 40]^2`, isotropic standard deviation :math:`s = \mathrm{softplus}(1)
    = \log(1 + e) \approx 1.3133` (FAB's ``log_var_scaling = 1`` passed through
    ``softplus`` as a standard deviation; DEM/iDEM reuse this target). The other
    published variant (the DDS/PIS-style benchmark suites) uses unit variance.

    FAB draws the means with ``torch.manual_seed(0)``, which cannot be reproduced
    without torch. Here they are drawn reproducibly, independent of the JAX
    version and of the x64 flag, with NumPy's PCG64:
    ``np.random.default_rng(seed).uniform(-40, 40, size=(40, 2))``. So the layout
    of the modes differs from FAB's, while every statistic that does not depend on
    the particular draw (mode count, spread, width, :math:`\log Z = 0`) matches.
    """
    means = np.random.default_rng(seed).uniform(-40.0, 40.0, size=(40, 2))
    return GaussianMixture(means, scale=_softplus(1.0), name="gmm40")


def _log_integral_1d(c4: float, c2: float, c1: float, c0: float, beta: float) -> float:
    r""":math:`\log\int_{\mathbb R} e^{-\beta(c_4x^4 + c_2x^2 + c_1x + c_0)}dx` by the trapezoid rule.

    The integrand is entire and decays like :math:`e^{-\beta c_4 x^4}`, so the
    trapezoid rule on a wide uniform grid converges geometrically (Trefethen &
    Weideman 2014); with 400,001 points on the range where the integrand exceeds
    :math:`e^{-60}` of its maximum the error is far below 1e-12.
    """
    coarse = np.linspace(-50.0, 50.0, 200_001)
    e = beta * (c4 * coarse**4 + c2 * coarse**2 + c1 * coarse + c0)
    inside = coarse[e - e.min() < 60.0]
    lo, hi = inside.min() - 0.5, inside.max() + 0.5
    x = np.linspace(lo, hi, 400_001)
    e = beta * (c4 * x**4 + c2 * x**2 + c1 * x + c0)
    m = e.min()
    h = x[1] - x[0]
    return float(-m + np.log(np.trapezoid(np.exp(-(e - m)), dx=h)))


class ManyWell(System):
    r"""Separable quartic "many-well": :math:`U(x) = \sum_i c_{4,i}x_i^4 + c_{2,i}x_i^2 + c_{1,i}x_i + c_{0,i}`.

    :math:`\beta = 1`. Because :math:`e^{-U}` factorises over coordinates,
    :math:`\log Z = \sum_i \log \int e^{-p_i(x)}dx` is exact up to 1-D quadrature
    (trapezoid rule, error < 1e-12; see :func:`_log_integral_1d`), computed once
    at construction. Each coordinate needs :math:`c_4 > 0`, or :math:`c_4 = 0` and
    :math:`c_2 > 0`. ``prior_scale`` is 2 (the wells of both registered versions sit
    at :math:`|x| \approx 1.7`–2).
    """

    name: str = eqx.field(static=True)
    dim: int = eqx.field(static=True)
    coefficients: np.ndarray  # (4, dim): rows c4, c2, c1, c0
    beta: float = eqx.field(static=True)
    log_z: float | None = eqx.field(static=True)
    n_particles: None = eqx.field(static=True)
    spatial_dim: None = eqx.field(static=True)
    prior_scale: float = eqx.field(static=True)

    def __init__(self, coefficients, name: str, prior_scale: float = 2.0):
        coefficients = np.asarray(coefficients, dtype=np.float64)
        if coefficients.ndim != 2 or coefficients.shape[0] != 4:
            raise ValueError(
                f"ManyWell: coefficients must be (4, dim) rows c4, c2, c1, c0; "
                f"got {coefficients.shape}"
            )
        c4, c2 = coefficients[0], coefficients[1]
        if not np.all((c4 > 0) | ((c4 == 0) & (c2 > 0))):
            raise ValueError("ManyWell: every coordinate needs c4 > 0, or c4 == 0 and c2 > 0")
        self.name = name
        self.dim = int(coefficients.shape[1])
        self.coefficients = coefficients
        self.beta = 1.0
        unique, counts = np.unique(coefficients.T, axis=0, return_counts=True)
        self.log_z = float(
            sum(c * _log_integral_1d(*row, beta=1.0) for row, c in zip(unique, counts, strict=True))
        )
        self.n_particles = None
        self.spatial_dim = None
        self.prior_scale = float(prior_scale)

    def _energy(self, x: Float[Array, " dim"]) -> Float[Array, ""]:
        c = jnp.asarray(self.coefficients, dtype=x.dtype)
        x2 = x * x
        return jnp.sum(c[0] * x2 * x2 + c[1] * x2 + c[2] * x + c[3])

    def sample(self, key: PRNGKey, n: int) -> Float[Array, "n dim"]:
        """Not available.

        Raises:
            NotImplementedError: no exact sampler is implemented for the quartic wells.
        """
        raise NotImplementedError(
            f"{self.name}: no exact sampler is implemented (log_z is exact by "
            "quadrature); use MCMC for samples."
        )


def symmetric_many_well(dim: int = 5, a: float = 4.0) -> ManyWell:
    r"""``mw5``: :math:`U(x) = \sum_{i=1}^d (x_i^2 - a)^2`, :math:`a = 4`, :math:`d = 5`, :math:`\beta = 1`.

    :math:`2^d` modes at :math:`x_i = \pm 2`. Per coordinate
    :math:`(x^2-a)^2 = x^4 - 2a x^2 + a^2`; the 1-D integral also has the closed
    form :math:`\int e^{-(x^2-a)^2}dx = \tfrac{\pi}{2}\sqrt{a}\,e^{-a^2/2}
    [I_{-1/4}(a^2/2) + I_{1/4}(a^2/2)]` (checked in the tests).
    """
    row = np.array([1.0, -2.0 * a, 0.0, a * a])
    return ManyWell(np.tile(row[:, None], (1, dim)), name=f"mw{dim}")


def fab_many_well(dim: int = 32) -> ManyWell:
    r"""``mw32``: FAB's many-well (Midgley et al., ICLR 2023, §5.2), :math:`\beta = 1`.

    ``dim/2`` independent copies of the 2-D double well
    :math:`U(x_1, x_2) = x_1^4 - 6x_1^2 - \tfrac12 x_1 + \tfrac12 x_2^2` on the
    coordinate pairs ``(x[2k], x[2k+1])`` (FAB's ``ManyWellEnergy`` with
    ``a = -0.5, b = -6, c = 1``: log p = -x1^4 + 6x1^2 + 0.5x1 - 0.5x2^2).
    :math:`2^{16}` modes for d = 32; :math:`\log Z = 164.6957` (quadrature).
    """
    if dim % 2:
        raise ValueError(f"fab_many_well: dim must be even, got {dim}")
    well = np.array([1.0, -6.0, -0.5, 0.0])
    harmonic = np.array([0.0, 0.5, 0.0, 0.0])
    pair = np.stack([well, harmonic], axis=1)  # (4, 2)
    return ManyWell(np.tile(pair, (1, dim // 2)), name=f"mw{dim}")


class Funnel(System):
    r"""Neal's funnel (Neal 2003, "Slice sampling", §8), normalised: :math:`\log Z = 0`.

    .. math:: x_0 \sim \mathcal N(0, \sigma^2),\quad
              x_{1..d-1} \mid x_0 \sim \mathcal N(0, e^{x_0} I),

    so :math:`U(x) = \frac{x_0^2}{2\sigma^2} + \frac12\log(2\pi\sigma^2)
    + \sum_{i\ge1}\big[\frac{x_i^2}{2}e^{-x_0} + \frac{x_0}{2} + \frac12\log 2\pi\big]`,
    :math:`\beta = 1`, with :math:`\sigma = 3`, :math:`d = 10` as in the diffusion
    sampler benchmarks (PIS, DDS). Exact samples. ``prior_scale = \sigma``.
    """

    name: str = eqx.field(static=True)
    dim: int = eqx.field(static=True)
    sigma: float = eqx.field(static=True)
    beta: float = eqx.field(static=True)
    log_z: float | None = eqx.field(static=True)
    n_particles: None = eqx.field(static=True)
    spatial_dim: None = eqx.field(static=True)
    prior_scale: float = eqx.field(static=True)

    def __init__(self, dim: int = 10, sigma: float = 3.0, name: str = "funnel"):
        if dim < 2:
            raise ValueError(f"Funnel: dim must be >= 2, got {dim}")
        self.name = name
        self.dim = int(dim)
        self.sigma = float(sigma)
        self.beta = 1.0
        self.log_z = 0.0
        self.n_particles = None
        self.spatial_dim = None
        self.prior_scale = self.sigma

    def _energy(self, x: Float[Array, " dim"]) -> Float[Array, ""]:
        x0, rest = x[0], x[1:]
        u0 = 0.5 * x0**2 / self.sigma**2 + 0.5 * (_LOG_2PI + 2.0 * math.log(self.sigma))
        k = self.dim - 1
        u_rest = 0.5 * jnp.sum(rest * rest) * jnp.exp(-x0) + 0.5 * k * (x0 + _LOG_2PI)
        return u0 + u_rest

    def sample(self, key: PRNGKey, n: int) -> Float[Array, "n dim"]:
        """Exact ancestral samples: :math:`x_0 = \\sigma\\xi_0`, :math:`x_i = e^{x_0/2}\\xi_i`."""
        xi = jr.normal(key, (n, self.dim))
        x0 = self.sigma * xi[:, :1]
        return jnp.concatenate([x0, jnp.exp(0.5 * x0) * xi[:, 1:]], axis=1)
