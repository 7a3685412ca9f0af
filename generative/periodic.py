r"""Score-based diffusion on the flat torus for periodic particle systems.

**Forward process.** Particles live in a periodic cell :math:`T` (columns = lattice
vectors) with fractional coordinates :math:`u \in [0,1)^{3N}`, the flat torus
:math:`\mathbb T^{3N}`. The variance-exploding process on the torus is Brownian motion
wrapped into the cell (De Bortoli et al. 2022, *Riemannian score-based generative
modelling*; Jing et al. 2022, *Torsional diffusion*),

.. math:: du = g(t)\, dW \pmod 1,\qquad g(t)^2 = \frac{d\sigma^2}{dt},\qquad
          \sigma(t) = \sigma_{\min}(\sigma_{\max}/\sigma_{\min})^t,\ t\in[0,1],

(Song et al. 2021's geometric VE schedule), whose transition kernel is the wrapped
Gaussian, per coordinate,

.. math:: p_t(u \mid u_0) = \sum_{k\in\mathbb Z} \mathcal N(u - u_0 + k;\ 0, \sigma^2),
          \qquad
          \nabla_u \log p_t = -\frac{\sum_k (\delta + k)\, e^{-(\delta+k)^2/2\sigma^2}}
                                    {\sigma^2 \sum_k e^{-(\delta+k)^2/2\sigma^2}},

with :math:`\delta` the minimum-image difference, the sum truncated at
:math:`|k| \le K` (``n_images``; the error is below :math:`e^{-(K+1/2)^2/2\sigma^2}`).
At :math:`\sigma_{\max}` the marginal is uniform up to its lowest Fourier mode,
:math:`e^{-2\pi^2\sigma_{\max}^2}` (:math:`8\times10^{-4}` at 0.6), so sampling starts from
the uniform distribution on the torus.

**Training** is denoising score matching (Vincent 2011) with the wrapped-Gaussian
target and weight :math:`\sigma^2`, on data augmented by uniform random translations
(an exact symmetry of a periodic Boltzmann density).

**Sampling** integrates the reverse SDE :math:`du = -g^2 s_\theta\, dt + g\, d\bar W`
(Anderson 1982) by Euler–Maruyama on the torus (each step wrapped), optionally with
Langevin corrector steps (Song et al. 2021's predictor–corrector, signal-to-noise
``snr``) and a final Tweedie denoising step :math:`u + \sigma_{\min}^2 s_\theta`.

**Network** (:class:`PeriodicScoreNet`): message passing on minimum-image
displacements :math:`d_{ij} = T\,\mathrm{mi}(u_i - u_j)` from
``jax_md.space.periodic_general``. Edge features are radial basis functions of
:math:`|d_{ij}|` times a cosine envelope that vanishes at :math:`r_{\rm net} \le
w_{\min}/2`, so features are smooth across the cell boundary. Invariant node
features :math:`h_i = \phi_h(\sum_j \phi_e(e_{ij}, \tau))` feed a symmetric edge weight
:math:`w_{ij} = \phi_w(e_{ij}, h_i + h_j, h_i \odot h_j, \tau)` and

.. math:: s_i = \frac{1}{\sigma}\, T^\top \sum_j w_{ij}\, \frac{d_{ij}}{\ell^2},

with :math:`\ell = (\det T)^{1/3}`. The output is periodic in each :math:`u_i`, invariant
under global translations, permutation-equivariant, and sums to zero over particles
(:math:`w_{ij}=w_{ji}`, :math:`d_{ij}=-d_{ji}`), as the score of a translation-invariant
density must.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, Float

from thermo._checks import check_count, check_positive
from thermo.fit import fit

from .networks.mlp import sinusoidal_embedding

__all__ = [
    "PeriodicScoreNet",
    "TorusTrainResult",
    "WrappedVE",
    "dsm_loss",
    "minimum_image",
    "sample",
    "train",
    "wrap",
    "wrapped_gaussian_log_prob",
    "wrapped_gaussian_score",
]


def wrap(u: Array) -> Array:
    """Fractional coordinates wrapped into ``[0, 1)``."""
    return u - jnp.floor(u)


def minimum_image(du: Array) -> Array:
    """Minimum-image fractional difference in ``[-1/2, 1/2)``."""
    return du - jnp.round(du)


def _images(n_images: int, dtype) -> Array:
    return jnp.arange(-n_images, n_images + 1, dtype=dtype)


def wrapped_gaussian_log_prob(
    u: Float[Array, "*shape"], mean: Float[Array, "*shape"], sigma, n_images: int = 4
) -> Float[Array, ""]:
    r""":math:`\sum_c \log \sum_{|k|\le K} \mathcal N(u_c - \mu_c + k; 0, \sigma^2)` over all coordinates (module docstring)."""
    d = minimum_image(u - mean)[..., None] + _images(n_images, u.dtype)
    sigma = jnp.asarray(sigma)[..., None]  # broadcasts against u, with the image axis last
    logn = -0.5 * (d / sigma) ** 2 - jnp.log(sigma) - 0.5 * math.log(2 * math.pi)
    return jnp.sum(jax.nn.logsumexp(logn, axis=-1))


def wrapped_gaussian_score(
    u: Float[Array, "*shape"], mean: Float[Array, "*shape"], sigma, n_images: int = 4
) -> Float[Array, "*shape"]:
    r""":math:`\nabla_u \log p_t(u\mid\mu)` of the wrapped Gaussian (module docstring), elementwise.

    ``sigma`` is a scalar or broadcasts against ``u`` (e.g. ``(b, 1, 1)`` per sample).
    """
    d = minimum_image(u - mean)[..., None] + _images(n_images, u.dtype)
    sigma = jnp.asarray(sigma)[..., None]  # broadcasts against u, with the image axis last
    w = jax.nn.softmax(-0.5 * (d / sigma) ** 2, axis=-1)
    return -jnp.sum(w * d, axis=-1) / sigma[..., 0] ** 2


class WrappedVE(eqx.Module):
    r"""Geometric VE noise schedule on the torus: :math:`\sigma(t)`, :math:`g(t)^2 = 2\sigma^2\log(\sigma_{\max}/\sigma_{\min})`."""

    sigma_min: float = 1e-3
    sigma_max: float = 0.6

    def sigma(self, t):
        """:math:`\\sigma(t) = \\sigma_{\\min}(\\sigma_{\\max}/\\sigma_{\\min})^t`."""
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def g2(self, t):
        """:math:`g(t)^2 = d\\sigma^2/dt`."""
        return 2.0 * self.sigma(t) ** 2 * math.log(self.sigma_max / self.sigma_min)


class PeriodicScoreNet(eqx.Module):
    r"""Periodic, translation-invariant, permutation-equivariant score network (module docstring).

    Args:
        box: ``(3, 3)`` cell matrix (columns = lattice vectors); fixed.
        key: PRNG key for the weights.
        width: hidden width of the MLPs.
        n_rbf: radial basis functions on :math:`[0, r_{\rm net}]`.
        r_net: feature cutoff; default (and maximum) half the smallest perpendicular width.
        embed_dim: noise-level embedding size (even).
    """

    box: Array
    edge_mlp: eqx.nn.MLP
    node_mlp: eqx.nn.MLP
    weight_mlp: eqx.nn.MLP
    r_net: float = eqx.field(static=True)
    n_rbf: int = eqx.field(static=True)
    embed_dim: int = eqx.field(static=True)
    scale: float = eqx.field(static=True)

    def __init__(
        self,
        box,
        key,
        *,
        width: int = 64,
        n_rbf: int = 16,
        r_net: float | None = None,
        embed_dim: int = 16,
    ):
        b = np.asarray(box, dtype=np.float64)
        if b.shape != (3, 3) or np.linalg.det(b) <= 0:
            raise ValueError(f"box must be a (3, 3) right-handed cell matrix, got {b.shape}")
        half_w = 0.5 / np.linalg.norm(np.linalg.inv(b), axis=1).max()
        r_net = half_w if r_net is None else float(r_net)
        if not 0 < r_net <= half_w * (1 + 1e-12):
            raise ValueError(f"r_net must be in (0, {half_w:.4g}] (half the cell width)")
        self.box = jnp.asarray(b)
        self.r_net = float(r_net)
        self.n_rbf = int(n_rbf)
        self.embed_dim = int(embed_dim)
        self.scale = float(np.linalg.det(b) ** (1.0 / 3.0))
        k1, k2, k3 = jr.split(key, 3)
        act = jax.nn.silu
        self.edge_mlp = eqx.nn.MLP(n_rbf + embed_dim, width, width, 2, activation=act, key=k1)
        self.node_mlp = eqx.nn.MLP(width, width, width, 1, activation=act, key=k2)
        self.weight_mlp = eqx.nn.MLP(
            n_rbf + 2 * width + embed_dim, 1, width, 2, activation=act, key=k3
        )

    def _edges(self, u):
        # imported here, at trace time: importing jax_md costs seconds (its rigid_body
        # module compiles ~120 XLA programs at import), and ``import generative`` should
        # not pay that for the many users that never build a periodic network
        from jax_md import space

        disp, _ = space.periodic_general(self.box, fractional_coordinates=True)
        d = jax.vmap(jax.vmap(disp, (None, 0)), (0, None))(u, u)  # (n, n, 3) Cartesian
        n = u.shape[0]
        eye = jnp.eye(n, dtype=bool)
        r = jnp.sqrt(jnp.where(eye, 1.0, jnp.sum(d * d, axis=-1)))
        centers = jnp.linspace(0.0, self.r_net, self.n_rbf)
        width = self.r_net / self.n_rbf
        rbf = jnp.exp(-0.5 * ((r[..., None] - centers) / width) ** 2)
        env = jnp.where((r < self.r_net) & ~eye, 0.5 * (jnp.cos(jnp.pi * r / self.r_net) + 1), 0.0)
        return d, rbf * env[..., None], env

    def __call__(self, sigma, u: Float[Array, "n 3"]) -> Float[Array, "n 3"]:
        """Score :math:`s_\\theta(u, \\sigma)` in fractional coordinates, shape ``(n, 3)``."""
        if u.ndim != 2 or u.shape[-1] != 3:
            raise ValueError(f"u must have shape (n, 3), got {u.shape}")
        d, e, env = self._edges(u)
        n = u.shape[0]
        tau = sinusoidal_embedding(jnp.log(sigma), self.embed_dim, max_frequency=4.0).astype(
            u.dtype
        )
        tau_e = jnp.broadcast_to(tau, (n, n, self.embed_dim))
        msg = jax.vmap(jax.vmap(self.edge_mlp))(jnp.concatenate([e, tau_e], -1))
        h = jax.vmap(self.node_mlp)(jnp.sum(msg * env[..., None], axis=1) / 4.0)
        hi, hj = h[:, None, :], h[None, :, :]
        pair = jnp.concatenate(
            [e, jnp.broadcast_to(hi + hj, msg.shape), jnp.broadcast_to(hi * hj, msg.shape), tau_e],
            -1,
        )
        w = jax.vmap(jax.vmap(self.weight_mlp))(pair)[..., 0] * env
        force = jnp.einsum("ij,ijk->ik", w, d) / self.scale**2
        return force @ self.box / sigma


def dsm_loss(
    net: Callable,
    key,
    u0: Float[Array, "b n 3"],
    process: WrappedVE,
    *,
    t_min: float = 0.0,
    n_images: int = 4,
) -> Float[Array, ""]:
    r"""Denoising score matching on the torus, weight :math:`\sigma^2` (module docstring).

    .. math:: \mathcal L = \mathbb E_{t, u_0, u_t}\,\frac{\sigma(t)^2}{3N}
              \big\| s_\theta(u_t,\sigma) - \nabla\log p_t(u_t\mid u_0)\big\|^2

    Each data point is first translated by a uniform random vector (augmentation).
    """
    b = u0.shape[0]
    k_shift, k_t, k_z = jr.split(key, 3)
    u0 = wrap(u0 + jr.uniform(k_shift, (b, 1, 3), u0.dtype))
    t = jr.uniform(k_t, (b,), u0.dtype, minval=t_min, maxval=1.0)
    sig = process.sigma(t)[:, None, None]
    ut = wrap(u0 + sig * jr.normal(k_z, u0.shape, u0.dtype))
    target = wrapped_gaussian_score(ut, u0, sig, n_images)
    pred = jax.vmap(net)(sig[:, 0, 0], ut)
    return jnp.mean(sig**2 * (pred - target) ** 2)


class TorusTrainResult(NamedTuple):
    """Output of :func:`train`: the trained network and the loss per step."""

    net: PeriodicScoreNet
    losses: np.ndarray


def train(
    key,
    net: PeriodicScoreNet,
    data: Float[Array, "m n 3"],
    process: WrappedVE,
    *,
    n_steps: int = 2000,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    n_chunks: int = 10,
    progress: bool = False,
) -> TorusTrainResult:
    r"""Train ``net`` by :func:`dsm_loss` with Adam (cosine-decayed rate), in ``lax.scan`` chunks.

    Args:
        key: PRNG key.
        net: initial network.
        data: ``(m, n, 3)`` fractional coordinates of training samples.
        process: the noise schedule.
        n_steps, batch_size, learning_rate: optimiser settings.
        n_chunks: the scan runs in this many compiled chunks (one compile; a tqdm bar
            when ``progress``).

    Returns:
        :class:`TorusTrainResult`.
    """
    data = jnp.asarray(data)
    if data.ndim != 3 or data.shape[-1] != 3 or data.shape[0] < 1:
        raise ValueError(f"data must have shape (m, n, 3) with m >= 1, got {data.shape}")
    if not bool(jnp.all(jnp.isfinite(data))):
        raise ValueError("data contains NaN or inf")
    n_steps = check_count(n_steps, "n_steps")
    n_chunks = check_count(n_chunks, "n_chunks")
    batch_size = check_count(batch_size, "batch_size")
    check_positive(learning_rate, "learning_rate")
    if n_steps % n_chunks:
        raise ValueError(f"n_steps={n_steps} must be a multiple of n_chunks={n_chunks}")
    per_chunk = n_steps // n_chunks
    # chunk c's steps take split(split(key, n_chunks)[c], per_chunk): the stream of the
    # chunked loop this driver replaced, so seeded results are unchanged
    keys = jax.vmap(lambda k: jr.split(k, per_chunk))(jr.split(key, n_chunks))
    result = fit(
        key,
        net,
        _torus_step_loss,
        _torus_optimizer(float(learning_rate), int(n_steps)),
        int(n_steps),
        args=(jnp.asarray(data), process, int(batch_size)),
        step_keys_scheme=keys.reshape(n_steps, *keys.shape[2:]),
        steps_per_call=per_chunk,
        progress=progress,
        desc="train torus score",
    )
    return TorusTrainResult(result.model, np.asarray(result.losses))


@functools.lru_cache(maxsize=32)
def _torus_optimizer(learning_rate: float, n_steps: int) -> optax.GradientTransformation:
    """Adam on a cosine-decayed rate (to 5 % of ``learning_rate``); cached, so one compile."""
    return optax.adam(optax.cosine_decay_schedule(learning_rate, n_steps, alpha=0.05))


def _torus_step_loss(net, key, args):
    """One step's :func:`dsm_loss` on a batch drawn with replacement."""
    data, process, batch_size = args
    k_idx, k_loss = jr.split(key)
    batch = data[jr.randint(k_idx, (batch_size,), 0, data.shape[0])]
    return dsm_loss(net, k_loss, batch, process)


def sample(
    key,
    score_fn: Callable,
    process: WrappedVE,
    *,
    n_samples: int,
    n_particles: int,
    n_steps: int = 500,
    n_corrector: int = 0,
    snr: float = 0.1,
    denoise: bool = True,
) -> Float[Array, "b n 3"]:
    r"""Reverse-SDE sampling on the torus from the uniform distribution (module docstring).

    Euler–Maruyama on a geometric grid in :math:`\sigma` from :math:`\sigma_{\max}` to
    :math:`\sigma_{\min}`: with :math:`\Delta\sigma^2_k = \sigma_k^2 - \sigma_{k+1}^2`,
    :math:`u \leftarrow \mathrm{wrap}(u + \Delta\sigma^2_k\, s(u,\sigma_k) +
    \sqrt{\Delta\sigma^2_k}\,z)`, then ``n_corrector`` Langevin steps
    :math:`u \leftarrow u + \epsilon s + \sqrt{2\epsilon} z` with
    :math:`\epsilon = 2(\text{snr}\,\|z\|/\|s\|)^2` (Song et al. 2021, Alg. 5).

    Args:
        key: PRNG key.
        score_fn: ``(sigma, u (n, 3)) -> (n, 3)`` (e.g. a :class:`PeriodicScoreNet`).
        process: the noise schedule.
        n_samples, n_particles: output shape ``(n_samples, n_particles, 3)``.
        n_steps: predictor steps.
        n_corrector: corrector steps per predictor step.
        snr: corrector signal-to-noise ratio.
        denoise: finish with :math:`u + \sigma_{\min}^2 s(u, \sigma_{\min})`.

    Returns:
        ``(n_samples, n_particles, 3)`` fractional coordinates in ``[0, 1)``.
    """
    n_samples = check_count(n_samples, "n_samples")
    n_particles = check_count(n_particles, "n_particles")
    n_steps = check_count(n_steps, "n_steps")
    n_corrector = check_count(n_corrector, "n_corrector", minimum=0)
    return _sample(
        key,
        score_fn,
        process,
        int(n_samples),
        int(n_particles),
        int(n_steps),
        int(n_corrector),
        float(snr),
        bool(denoise),
    )


@eqx.filter_jit
def _sample(key, score_fn, process, n_samples, n_particles, n_steps, n_corrector, snr, denoise):
    """The compiled body of :func:`sample` (Python numbers are static: one compile per shape)."""
    dtype = jnp.result_type(float)
    sigmas = process.sigma(jnp.linspace(1.0, 0.0, n_steps + 1, dtype=dtype))
    k0, k_run = jr.split(key)
    u = jr.uniform(k0, (n_samples, n_particles, 3), dtype)
    score = jax.vmap(score_fn, in_axes=(None, 0))

    def corrector(u, xs):
        k, sig = xs
        s = score(sig, u)
        z = jr.normal(k, u.shape, dtype)
        norm_s = jnp.sqrt(jnp.sum(s**2, axis=(1, 2), keepdims=True))
        norm_z = jnp.sqrt(jnp.sum(z**2, axis=(1, 2), keepdims=True))
        eps = 2.0 * (snr * norm_z / jnp.maximum(norm_s, 1e-12)) ** 2
        return wrap(u + eps * s + jnp.sqrt(2.0 * eps) * z), None

    def step(u, xs):
        k, sig, sig_next = xs
        k_p, k_c = jr.split(k)
        dvar = sig**2 - sig_next**2
        u = wrap(u + dvar * score(sig, u) + jnp.sqrt(dvar) * jr.normal(k_p, u.shape, dtype))
        if n_corrector:
            ks = jr.split(k_c, n_corrector)
            u, _ = jax.lax.scan(corrector, u, (ks, jnp.full((n_corrector,), sig_next)))
        return u, None

    keys = jr.split(k_run, n_steps)
    u, _ = jax.lax.scan(step, u, (keys, sigmas[:-1], sigmas[1:]))
    if denoise:
        u = wrap(u + sigmas[-1] ** 2 * score(sigmas[-1], u))
    return u
