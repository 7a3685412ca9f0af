r"""Toy targets with an exact :math:`\log Z`: Gaussian, GMM-40, many-well, Neal's funnel.

All use :math:`\beta = 1`, so ``energy`` is :math:`-\log` of the (possibly
unnormalised) density and ``log_z`` is :math:`\log\int e^{-U(x)}dx`.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax.scipy.special import logsumexp
from jaxtyping import Array, Float

from .._checks import check_count, check_positive
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


def _frozen(a) -> tuple:
    """A NumPy array as nested tuples of Python floats: hashable, so it can be a static
    field and ``jax.jit(system.energy)`` works; JAX embeds it as a constant."""
    a = np.asarray(a, dtype=np.float64)
    return tuple(_frozen(row) for row in a) if a.ndim > 1 else tuple(float(v) for v in a)


class Gaussian(System):
    r"""Isotropic Gaussian :math:`U(x) = |x|^2 / (2 s^2)`, :math:`\beta = 1`.

    Exact :math:`\log Z = \tfrac d2 \log(2\pi s^2)` (closed form) and exact samples.
    ``prior_scale = s``.
    """

    scale: float = eqx.field(static=True)

    def __init__(self, dim: int, scale: float = 1.0, name: str | None = None):
        dim = check_count(dim, "Gaussian: dim")
        check_positive(scale, "Gaussian: scale")
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
        n = check_count(n, "n", minimum=0)
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

    means: tuple = eqx.field(static=True)  # (K, dim) as nested tuples
    scale: float = eqx.field(static=True)

    def __init__(self, means, scale: float, name: str = "gmm"):
        means = np.asarray(means, dtype=np.float64)
        if means.ndim != 2 or means.shape[0] == 0:
            raise ValueError(f"GaussianMixture: means must be (K, dim), got {means.shape}")
        if not np.all(np.isfinite(means)):
            raise ValueError("GaussianMixture: means contain NaN or inf")
        check_positive(scale, "GaussianMixture: scale")
        self.name = name
        self.dim = int(means.shape[1])
        self.means = _frozen(means)
        self.scale = float(scale)
        self.beta = 1.0
        self.log_z = 0.0
        self.n_particles = None
        self.spatial_dim = None
        self.prior_scale = float(np.sqrt(np.mean(np.var(means, axis=0)) + scale**2))

    @property
    def n_components(self) -> int:
        """Number of mixture components K."""
        return len(self.means)

    def _energy(self, x: Float[Array, " dim"]) -> Float[Array, ""]:
        means = jnp.asarray(self.means, dtype=x.dtype)
        sq = jnp.sum((x[None, :] - means) ** 2, axis=-1) / self.scale**2
        log_norm = 0.5 * self.dim * (_LOG_2PI + 2.0 * math.log(self.scale))
        log_p = logsumexp(-0.5 * sq) - math.log(self.n_components) - log_norm
        return -log_p

    def sample(self, key: PRNGKey, n: int) -> Float[Array, "n dim"]:
        """Exact samples: :math:`k \\sim \\mathrm{Uniform}\\{1..K\\}`, :math:`x = \\mu_k + s\\xi`."""
        n = check_count(n, "n", minimum=0)
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


def _quartic(row, x):
    c4, c2, c1, c0 = row
    return c4 * x**4 + c2 * x**2 + c1 * x + c0


def _grid_1d(row) -> np.ndarray:
    """400,001 points covering where exp(-p) exceeds e^-60 of its maximum, plus 0.5 each side."""
    coarse = np.linspace(-50.0, 50.0, 200_001)
    e = _quartic(row, coarse)
    inside = coarse[e - e.min() < 60.0]
    return np.linspace(inside.min() - 0.5, inside.max() + 0.5, 400_001)


def _log_integral_1d(row) -> float:
    r""":math:`\log\int_{\mathbb R} e^{-(c_4x^4 + c_2x^2 + c_1x + c_0)}dx` by the trapezoid rule.

    The integrand is entire and decays like :math:`e^{-c_4 x^4}`, so the
    trapezoid rule on a wide uniform grid converges geometrically (Trefethen &
    Weideman 2014); with 400,001 points on the range where the integrand exceeds
    :math:`e^{-60}` of its maximum the error is far below 1e-12.
    """
    x = _grid_1d(row)
    e = _quartic(row, x)
    m = e.min()
    return float(-m + np.log(np.trapezoid(np.exp(-(e - m)), dx=x[1] - x[0])))


# Envelope widths are the wells' Laplace widths times this inflation: it makes the
# Gaussian envelope heavier than the quartic well on both sides (barrier side
# included), so f/g is bounded; the bound itself is computed, not assumed.
_ENVELOPE_INFLATION = 1.5
# Relative slack on the grid maximum of log(f/g): covers the grid's discretisation
# of a smooth ratio (its error is ~1e-10 here); it only costs acceptance rate.
_ENVELOPE_SLACK = 0.01
# Mass of the wide defensive envelope component (Hesterberg 1995's defensive mixture).
_DEFENSIVE_WEIGHT = 0.05


def _rejection_envelope(row) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    r"""Gaussian-mixture envelope for exact rejection sampling of :math:`f = e^{-p(x)}`.

    Components: one per local minimum :math:`x_k` of the quartic :math:`p`, with
    standard deviation :math:`1.5/\sqrt{p''(x_k)}` and weight
    :math:`\propto e^{-p(x_k)}/\sqrt{p''(x_k)}` (Laplace), sharing 95 % of the mass;
    plus a wide "defensive" component (5 %) centred between the minima with
    standard deviation half their spread plus three well widths, which covers the
    barrier region where the quartic is heavier than the wells' Gaussians.
    Returns ``(mu, sigma, log_w)`` of shape ``(3,)`` (an unused well slot has
    ``log_w = -inf``) and :math:`\log M \ge \max_x \log f(x)/g(x)`, computed on
    :func:`_grid_1d` plus a 1 % slack; beyond the grid :math:`f/g \to 0` because
    the quartic decays faster than any Gaussian.
    """
    c4, c2, c1, _ = row
    if c4 > 0:
        roots = np.roots([4 * c4, 0.0, 2 * c2, c1])
        roots = np.real(roots[np.abs(np.imag(roots)) < 1e-9])
    else:
        roots = np.array([-c1 / (2 * c2)])
    curvature = 12 * c4 * roots**2 + 2 * c2
    minima, curvature = roots[curvature > 0], curvature[curvature > 0]
    widths = _ENVELOPE_INFLATION / np.sqrt(curvature)
    mu = np.full(3, minima[0])
    sigma = np.full(3, 1.0)
    log_w = np.full(3, -np.inf)
    mu[: len(minima)] = minima
    sigma[: len(minima)] = widths
    log_w[: len(minima)] = -_quartic(row, minima) - 0.5 * np.log(curvature)
    log_w[:2] = log_w[:2] - np.logaddexp.reduce(log_w[:2]) + np.log(1 - _DEFENSIVE_WEIGHT)
    mu[2] = 0.5 * (minima.min() + minima.max())
    sigma[2] = 0.5 * (minima.max() - minima.min()) + 3.0 * widths.max()
    log_w[2] = np.log(_DEFENSIVE_WEIGHT)
    x = _grid_1d(row)
    log_f = -_quartic(row, x)
    log_g = np.logaddexp.reduce(
        log_w[:, None]
        - 0.5 * ((x[None] - mu[:, None]) / sigma[:, None]) ** 2
        - np.log(sigma[:, None])
        - 0.5 * _LOG_2PI,
        axis=0,
    )
    log_m = float(np.max(log_f - log_g)) + np.log1p(_ENVELOPE_SLACK)
    return mu, sigma, log_w, log_m


class ManyWell(System):
    r"""Separable quartic "many-well": :math:`U(x) = \sum_i c_{4,i}x_i^4 + c_{2,i}x_i^2 + c_{1,i}x_i + c_{0,i}`.

    :math:`\beta = 1`. Because :math:`e^{-U}` factorises over coordinates,
    :math:`\log Z = \sum_i \log \int e^{-p_i(x)}dx` is exact up to 1-D quadrature
    (trapezoid rule, error < 1e-12; see :func:`_log_integral_1d`), computed once
    at construction. Each coordinate needs :math:`c_4 > 0`, or :math:`c_4 = 0` and
    :math:`c_2 > 0`. Exact samples by per-coordinate rejection sampling from a
    Gaussian-mixture envelope (see :func:`_rejection_envelope`; von Neumann 1951),
    as FAB does for its many-well. ``prior_scale`` is 2 (the wells of both registered versions sit
    at :math:`|x| \approx 1.7`–2).
    """

    coefficients: tuple = eqx.field(static=True)  # (4, dim): rows c4, c2, c1, c0
    envelope: tuple = eqx.field(static=True)  # mu, sigma, log_w (dim, 3); log_m (dim,)

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
        self.coefficients = _frozen(coefficients)
        self.beta = 1.0
        unique, inverse = np.unique(coefficients.T, axis=0, return_inverse=True)
        inverse = np.reshape(inverse, -1)
        per_row = [_log_integral_1d(row) for row in unique]
        self.log_z = float(sum(per_row[i] for i in inverse))
        envelopes = [_rejection_envelope(row) for row in unique]
        self.envelope = tuple(
            _frozen(np.stack([np.asarray(envelopes[i][part]) for i in inverse]))
            for part in range(4)
        )
        self.n_particles = None
        self.spatial_dim = None
        self.prior_scale = float(prior_scale)

    def _energy(self, x: Float[Array, " dim"]) -> Float[Array, ""]:
        c = jnp.asarray(self.coefficients, dtype=x.dtype)
        x2 = x * x
        return jnp.sum(c[0] * x2 * x2 + c[1] * x2 + c[2] * x + c[3])

    def sample(self, key: PRNGKey, n: int) -> Float[Array, "n dim"]:
        r"""Exact samples ``(n, dim)`` by rejection sampling, every coordinate independently.

        Each of the ``n * dim`` slots proposes :math:`y \sim g` (the coordinate's
        envelope) and accepts with probability :math:`f(y) / (M g(y))` until it
        accepts; slots run in lock-step inside one ``lax.while_loop`` (jit-able,
        fixed shapes), so the samples are i.i.d. from :math:`f`. The expected number
        of rounds grows like :math:`\log(n\,d)`.
        """
        n = check_count(n, "n", minimum=0)
        dtype = jnp.result_type(float)
        mu, sigma, log_w, log_m = (jnp.asarray(a, dtype=dtype) for a in self.envelope)
        coefficients = jnp.asarray(self.coefficients, dtype=dtype)

        def log_ratio(y):  # log f(y) - log g(y) - log M, per coordinate
            y2 = y * y
            c = coefficients[:, None]  # (4, 1, dim) against y of shape (n, dim)
            log_f = -(c[0] * y2 * y2 + c[1] * y2 + c[2] * y)
            log_f = log_f - c[3]
            z = (y[..., None] - mu[None]) / sigma[None]
            log_g = (
                logsumexp(log_w[None] - 0.5 * z * z - jnp.log(sigma)[None], axis=-1)
                - 0.5 * _LOG_2PI
            )
            return log_f - log_g - jnp.broadcast_to(log_m, log_f.shape)

        def propose(key):
            key_c, key_x, key_u = jr.split(key, 3)
            component = jr.categorical(key_c, log_w, shape=(n, self.dim))
            pick = jnp.take_along_axis
            m = pick(jnp.broadcast_to(mu, (n, self.dim, 3)), component[..., None], -1)[..., 0]
            s = pick(jnp.broadcast_to(sigma, (n, self.dim, 3)), component[..., None], -1)[..., 0]
            y = m + s * jr.normal(key_x, (n, self.dim), dtype=dtype)
            accept = jnp.log(jr.uniform(key_u, (n, self.dim), dtype=dtype)) < log_ratio(y)
            return y, accept

        def body(carry):
            key, x, done = carry
            key, key_round = jr.split(key)
            y, accept = propose(key_round)
            take = accept & ~done
            return key, jnp.where(take, y, x), done | take

        def cond(carry):
            return ~jnp.all(carry[2])

        init = (key, jnp.zeros((n, self.dim), dtype), jnp.zeros((n, self.dim), bool))
        return jax.lax.while_loop(cond, body, init)[1]


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

    sigma: float = eqx.field(static=True)

    def __init__(self, dim: int = 10, sigma: float = 3.0, name: str = "funnel"):
        dim = check_count(dim, "Funnel: dim", minimum=2)
        check_positive(sigma, "Funnel: sigma")
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
        n = check_count(n, "n", minimum=0)
        xi = jr.normal(key, (n, self.dim))
        x0 = self.sigma * xi[:, :1]
        return jnp.concatenate([x0, jnp.exp(0.5 * x0) * xi[:, 1:]], axis=1)
