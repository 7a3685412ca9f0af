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
(Anderson 1982) by its ancestral discretisation on the torus (each step wrapped),
optionally with Langevin corrector steps: the shared predictor–corrector
(:func:`generative.sampling.predictor_corrector`, Song et al. 2021, signal-to-noise
``snr``) with a final Tweedie denoising step :math:`u + \sigma_{\min}^2 s_\theta`.
:class:`WrappedVE` is a process of the shared type, so training is the shared
:func:`generative.training.dsm_loss` / :func:`generative.training.train_score_model`.

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

**Lattice-relative coordinates** (Wirnsberger et al. 2022, *Normalizing flows for atomic
solids*, sec. 2). A crystal configuration is written :math:`x_i = r^0_i + d_i` with
lattice sites :math:`r^0_i` and displacements :math:`d_i = T\,\mathrm{mi}(T^{-1}(x_i -
r^0_i))` (minimum image, so wrapping a particle by a cell vector leaves :math:`d`
unchanged). Labelling particle :math:`i` by its site is the *lattice assignment*: of the
:math:`N!` labellings of one crystal configuration it keeps one, which is what the
:math:`-\ln N!` of the project's Frenkel–Ladd assembly counts
(:mod:`thermo.materials.solid`). The centre of mass is fixed: the model is a density on
the :math:`m = 3(N-1)`-dimensional subspace :math:`\sum_i d_i = 0`, in orthonormal
coordinates :math:`y = B_0^\top \mathrm{vec}(d)` of that subspace.

**The model** (:class:`LatticeGaussian`) is a full-covariance Gaussian in the normal-mode
basis, :math:`y = W\,\mathrm{diag}(s)\,z`, :math:`z\sim\mathcal N(0, I_m)`, with exact
log-density

.. math:: \log q(x) = -\tfrac12|z|^2 - \textstyle\sum_k \log s_k - \tfrac m2\log 2\pi,
          \qquad z = \mathrm{diag}(s)^{-1}W^\top B_0^\top\mathrm{vec}(d(x)).

Its covariance comes from the Hessian at the lattice, :math:`C = k_BT\,H^{-1}` on the
subspace (:func:`lattice_gaussian_from_hessian`, the harmonic crystal), or from weighted
samples (:func:`lattice_gaussian_from_samples`, the best Gaussian in
:math:`\mathrm{KL}(p\,\|\,q)`, a quasi-harmonic model that learns the anharmonic
broadening). Both are averaged over the crystal's symmetry group (the :math:`N` lattice
translations, which permute the sites, and the cubic point group where the cell allows
it), so the model is *equivariant*: :math:`q(g\cdot x) = q(x)` for every lattice
symmetry :math:`g` (:func:`lattice_symmetries`). It is not invariant under an arbitrary
relabelling, which the lattice assignment has already removed.

**Correction to the Boltzmann target by SMC** (:func:`lattice_free_energy`). In the
whitened coordinates :math:`z` the model is :math:`\mathcal N(0, I)` and the target is
:math:`\tilde\pi(z) = e^{-\beta U(x(z))}\prod_k s_k` (the Jacobian of the linear map).
:func:`thermo.mcmc.anneal` moves the model's samples along the geometric path
:math:`q^{1-\lambda}\tilde\pi^\lambda` with MALA/HMC moves; the path weights give
(targeted free-energy perturbation with an annealed path: Jarzynski 2002; Neal 2001;
Wirnsberger et al. 2022 with a Gaussian in place of the flow)

.. math:: \widehat{\ln Z} = \ln\tfrac1n\sum_i e^{\ell_i}\;\to\;
          \ln\int_{\sum d = 0} e^{-\beta U}\,d^m y,
          \qquad \ln Q_{\rm CM} = \ln Z + \tfrac32\ln N,

the :math:`N^{3/2}` being the density of the centre of mass at zero (:math:`d^{3N}d =
d^m y\, d^3c`, :math:`c = \sqrt N\bar d`, :math:`\delta(\bar d) = N^{3/2}\delta(c)`), as
in :func:`thermo.materials.einstein_log_partition_com`. :func:`crystal_excess_free_energy`
then assembles :math:`\beta A_{\rm ex}/N` with the same terms as
:func:`thermo.materials.frenkel_ladd_free_energy`.
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
from thermo.paths import PathEnsemble

from .networks.mlp import sinusoidal_embedding
from .processes import AbstractDiffusionProcess
from .sampling import sample_predictor_corrector
from .score import ScoreModel
from .training import dsm_loss, train_score_model

__all__ = [
    "PeriodicScoreNet",
    "TorusTrainResult",
    "random_translation",
    "torus_score_model",
    "WrappedVE",
    "torus_dsm_loss",
    "minimum_image",
    "sample_torus",
    "train_torus_score",
    "wrap",
    "wrapped_gaussian_log_prob",
    "wrapped_gaussian_score",
    "LatticeFreeEnergy",
    "LatticeGaussian",
    "bond_order_q6",
    "crystal_excess_free_energy",
    "lattice_free_energy",
    "lattice_gaussian_from_covariance",
    "lattice_gaussian_from_hessian",
    "lattice_gaussian_from_samples",
    "lattice_symmetries",
    "lindemann_ratio",
]


def wrap(u: Array) -> Array:
    """Fractional coordinates wrapped into ``[0, 1)``."""
    return u - jnp.floor(u)


def minimum_image(du: Array) -> Array:
    """Minimum-image fractional difference in ``[-1/2, 1/2)``."""
    return du - jnp.round(du)


def _images(n_images: int, dtype) -> Array:
    return jnp.arange(-n_images, n_images + 1, dtype=dtype)


def _image_displacements(u, mean, n_images: int) -> Array:
    """``(*u.shape, 2K+1)``: the minimum-image ``u - mean`` shifted by every image ``k``."""
    d = minimum_image(u - jnp.broadcast_to(mean, u.shape))[..., None]
    return d + _images(n_images, u.dtype).reshape((1,) * u.ndim + (-1,))


def _image_axis(sigma, u) -> Array:
    """``sigma`` (a scalar or broadcasting against ``u`` from the right) with ``u``'s rank
    and a trailing image axis, so the broadcast against ``(*u.shape, n_images)`` is explicit."""
    sigma = jnp.asarray(sigma, dtype=u.dtype)
    if sigma.ndim > u.ndim:
        raise ValueError(f"sigma of shape {sigma.shape} does not broadcast against u {u.shape}")
    return sigma.reshape((1,) * (u.ndim - sigma.ndim) + sigma.shape + (1,))


def wrapped_gaussian_log_prob(
    u: Float[Array, "*shape"], mean: Float[Array, "*shape"], sigma, n_images: int = 4
) -> Float[Array, ""]:
    r""":math:`\sum_c \log \sum_{|k|\le K} \mathcal N(u_c - \mu_c + k; 0, \sigma^2)` over all coordinates (module docstring)."""
    d = _image_displacements(u, mean, n_images)
    sigma = _image_axis(sigma, u)
    logn = -0.5 * (d / sigma) ** 2 - jnp.log(sigma) - 0.5 * math.log(2 * math.pi)
    return jnp.sum(jax.nn.logsumexp(logn, axis=-1))


def wrapped_gaussian_score(
    u: Float[Array, "*shape"], mean: Float[Array, "*shape"], sigma, n_images: int = 4
) -> Float[Array, "*shape"]:
    r""":math:`\nabla_u \log p_t(u\mid\mu)` of the wrapped Gaussian (module docstring), elementwise.

    ``sigma`` is a scalar or broadcasts against ``u`` (e.g. ``(b, 1, 1)`` per sample).
    """
    d = _image_displacements(u, mean, n_images)
    sigma = _image_axis(sigma, u)
    w = jax.nn.softmax(-0.5 * (d / sigma) ** 2, axis=-1)
    return -jnp.sum(w * d, axis=-1) / sigma[..., 0] ** 2


class WrappedVE(AbstractDiffusionProcess):
    r"""The variance-exploding process wrapped on the unit torus (module docstring).

    A process of the shared type (:class:`generative.processes.AbstractDiffusionProcess`)
    on flat fractional coordinates ``(3N,)``: :math:`du = g(t)\,dW \pmod 1`, geometric
    :math:`\sigma(t) = \sigma_{\min}(\sigma_{\max}/\sigma_{\min})^t` and
    :math:`g(t)^2 = d\sigma^2/dt = 2\sigma^2\log(\sigma_{\max}/\sigma_{\min})` (Song et al.
    2021's VE schedule). Its marginal kernel is the wrapped Gaussian of width
    :math:`\sigma(t)` (SMLD's convention: the data carry noise :math:`\sigma_{\min}` at
    :math:`t = 0`), so :meth:`marginal_coefficients` is :math:`(1, \sigma(t))`. The prior
    is uniform on the torus, :meth:`retract` wraps into :math:`[0, 1)` and
    :meth:`denoising_target` is the wrapped-Gaussian score by image sums
    (:func:`wrapped_gaussian_score`, ``n_images`` images per side), so the shared loss
    (:func:`generative.training.dsm_loss`) and the shared predictor–corrector
    (:func:`generative.sampling.predictor_corrector`) run it unchanged.

    Defaults :math:`\sigma_{\min} = 10^{-3}`, :math:`\sigma_{\max} = 0.6`: at 0.6 the
    marginal is uniform up to :math:`e^{-2\pi^2\sigma_{\max}^2}` (module docstring).
    """

    sigma_min: float = 1e-3
    sigma_max: float = 0.6
    t1: float = 1.0
    particles: None = eqx.field(static=True, default=None)
    n_images: int = eqx.field(static=True, default=4)

    def __check_init__(self):
        check_positive(self.sigma_min, "sigma_min")
        if not 0.0 < self.sigma_min < self.sigma_max:
            raise ValueError(
                f"need 0 < sigma_min < sigma_max, got {self.sigma_min}, {self.sigma_max}"
            )
        if self.particles is not None:
            raise ValueError("WrappedVE has no centre-of-mass subspace: particles must be None")

    def sigma(self, t):
        r""":math:`\sigma(t) = \sigma_{\min}(\sigma_{\max}/\sigma_{\min})^t`."""
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def g2(self, t):
        r""":math:`g(t)^2 = d\sigma^2/dt`."""
        return 2.0 * self.sigma(t) ** 2 * math.log(self.sigma_max / self.sigma_min)

    def drift_coefficient(self, t):
        return jnp.zeros_like(jnp.asarray(t, dtype=float))

    def diffusion_coefficient(self, t):
        return jnp.sqrt(self.g2(jnp.asarray(t)))

    def transition_coefficients(self, s, t):
        var = jnp.maximum(self.sigma(jnp.asarray(t)) ** 2 - self.sigma(jnp.asarray(s)) ** 2, 0.0)
        return jnp.ones_like(var), jnp.sqrt(var)

    def marginal_coefficients(self, t):
        std = self.sigma(jnp.asarray(t))
        return jnp.ones_like(std), std

    @property
    def prior_std(self):
        return self.sigma_max

    def sample_prior(self, key, shape):
        """Uniform draws on the unit torus, ``shape = (..., 3N)``."""
        return jr.uniform(key, shape)

    def prior_log_prob(self, x):
        """0: the uniform density on the unit torus."""
        return jnp.zeros(x.shape[:-1], x.dtype)

    def retract(self, x):
        """Wrap into the cell, :func:`wrap`."""
        return wrap(x)

    def denoising_target(self, x0, xt, eps, std):
        r""":math:`-\sigma\nabla\log p_t(x_t\mid x_0)` of the wrapped Gaussian (image sums)."""
        return -std * wrapped_gaussian_score(xt, x0, std, self.n_images)


class _TorusNoiseNetwork(eqx.Module):
    """A ``(sigma, u (n, 3)) -> score`` network as a noise predictor on flat coordinates."""

    score_net: Callable
    process: WrappedVE

    def __call__(self, t, x):
        sigma = self.process.sigma(t)
        return -sigma * self.score_net(sigma, x.reshape(-1, 3)).reshape(x.shape)


class _TorusScore(eqx.Module):
    """A ``(sigma, u (n, 3)) -> score`` callable with thermo's ``(t, x, args)`` signature."""

    score_fn: Callable
    process: WrappedVE

    def __call__(self, t, x, args=None):
        return self.score_fn(self.process.sigma(t), x.reshape(-1, 3)).reshape(x.shape)


def torus_score_model(net: Callable, process: WrappedVE) -> ScoreModel:
    r"""The :class:`generative.score.ScoreModel` of a ``(sigma, u (n, 3)) -> (n, 3)`` score net.

    Its noise prediction is :math:`\varepsilon_\theta = -\sigma(t)\,s_\theta(u,\sigma(t))`
    on flat ``(3n,)`` coordinates, so the model's score is :math:`s_\theta`.
    """
    return ScoreModel(_TorusNoiseNetwork(net, process), process)


def random_translation(key, x0: Float[Array, "b d"]) -> Float[Array, "b d"]:
    r"""Translate each flat configuration ``(3n,)`` by a uniform random vector, then wrap.

    An exact symmetry of a periodic, translation-invariant density: the data augmentation
    of the torus model (``augment_fn`` of :func:`generative.training.dsm_loss`).
    """
    b = x0.shape[0]
    shift = jr.uniform(key, (b, 1, 3), x0.dtype)
    return wrap(x0.reshape(b, -1, 3) + shift).reshape(x0.shape)


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

        from thermo.materials.cells import standard_promotion

        disp = standard_promotion(space.periodic_general(self.box, fractional_coordinates=True)[0])
        d = jax.vmap(jax.vmap(disp, (None, 0)), (0, None))(u, u)  # (n, n, 3) Cartesian
        n = u.shape[0]
        eye = jnp.eye(n, dtype=bool)
        r = jnp.sqrt(jnp.where(eye, 1.0, jnp.sum(d * d, axis=-1)))
        centers = jnp.linspace(0.0, self.r_net, self.n_rbf)
        width = self.r_net / self.n_rbf
        rbf = jnp.exp(-0.5 * ((r[..., None] - centers[None, None, :]) / width) ** 2)
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


def torus_dsm_loss(
    key,
    net: Callable,
    u0: Float[Array, "b n 3"],
    process: WrappedVE,
    *,
    t_min: float = 0.0,
) -> Float[Array, ""]:
    r"""Denoising score matching on the torus, weight :math:`\sigma^2` (module docstring).

    .. math:: \mathcal L = \mathbb E_{t, u_0, u_t}\,\frac{\sigma(t)^2}{3N}
              \big\| s_\theta(u_t,\sigma) - \nabla\log p_t(u_t\mid u_0)\big\|^2

    The shared loss :func:`generative.training.dsm_loss` (``weighting="noise"``) of
    :func:`torus_score_model`, each data point first translated by a uniform random
    vector (:func:`random_translation`).
    """
    u0 = jnp.asarray(u0)
    if u0.ndim != 3 or u0.shape[-1] != 3:
        raise ValueError(f"u0 must have shape (b, n, 3), got {u0.shape}")
    return dsm_loss(
        key,
        torus_score_model(net, process),
        u0.reshape(u0.shape[0], -1),
        t_min=t_min,
        augment_fn=random_translation,
    )


class TorusTrainResult(NamedTuple):
    """Output of :func:`train_torus_score`: the trained network and the loss per step."""

    net: PeriodicScoreNet
    losses: np.ndarray


def train_torus_score(
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
    r"""Train ``net`` by :func:`torus_dsm_loss` with Adam (cosine-decayed rate).

    The shared trainer :func:`generative.training.train_score_model` (on
    :func:`thermo.fit.fit`) on :func:`torus_score_model` with the translation
    augmentation, ``t_min = 0``.

    Args:
        key: PRNG key.
        net: initial network.
        data: ``(m, n, 3)`` fractional coordinates of training samples.
        process: the noise schedule.
        n_steps, batch_size, learning_rate: optimiser settings.
        n_chunks: the run is this many compiled ``lax.scan`` chunks (one compile; a tqdm
            bar when ``progress``).

    Returns:
        :class:`TorusTrainResult`.
    """
    data = jnp.asarray(data)
    if data.ndim != 3 or data.shape[-1] != 3 or data.shape[0] < 1:
        raise ValueError(f"data must have shape (m, n, 3) with m >= 1, got {data.shape}")
    n_steps = check_count(n_steps, "n_steps")
    n_chunks = check_count(n_chunks, "n_chunks")
    check_positive(learning_rate, "learning_rate")
    if n_steps % n_chunks:
        raise ValueError(f"n_steps={n_steps} must be a multiple of n_chunks={n_chunks}")
    result = train_score_model(
        key,
        torus_score_model(net, process),
        data.reshape(data.shape[0], -1),
        n_steps=int(n_steps),
        batch_size=batch_size,
        optimizer=_torus_optimizer(float(learning_rate), int(n_steps)),
        t_min=0.0,
        augment_fn=random_translation,
        steps_per_call=int(n_steps) // int(n_chunks),
        progress=progress,
    )
    return TorusTrainResult(result.model.network.score_net, np.asarray(result.losses))


@functools.lru_cache(maxsize=32)
def _torus_optimizer(learning_rate: float, n_steps: int) -> optax.GradientTransformation:
    """Adam on a cosine-decayed rate (to 5 % of ``learning_rate``); cached, so one compile."""
    return optax.adam(optax.cosine_decay_schedule(learning_rate, n_steps, alpha=0.05))


def sample_torus(
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
    r"""Reverse sampling on the torus from the uniform distribution (module docstring).

    The shared predictor–corrector :func:`generative.sampling.sample_predictor_corrector`
    with the ancestral predictor on the uniform grid in :math:`t` (geometric in
    :math:`\sigma`, from :math:`\sigma_{\max}` to :math:`\sigma_{\min}`): with
    :math:`\Delta\sigma^2_k = \sigma_k^2 - \sigma_{k+1}^2`,
    :math:`u \leftarrow \mathrm{wrap}(u + \Delta\sigma^2_k\, s(u,\sigma_k) +
    \sqrt{\Delta\sigma^2_k}\,z)`, then ``n_corrector`` Langevin steps
    :math:`u \leftarrow \mathrm{wrap}(u + \epsilon s + \sqrt{2\epsilon} z)` with
    :math:`\epsilon = 2(\text{snr}\,\overline{\|z\|}/\overline{\|s\|})^2` (Song et al.
    2021, Alg. 5; population means of the norms).

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
    x = sample_predictor_corrector(
        key,
        process,
        _TorusScore(score_fn, process),
        n_samples,
        3 * int(n_particles),
        n_steps=n_steps,
        t_min=0.0,
        snr=snr,
        n_corrector=n_corrector,
        predictor="ancestral",
        denoise=denoise,
    )
    return x.reshape(int(n_samples), int(n_particles), 3)


# --------------------------------------------------------------------------------------
# Lattice-relative models of atomic solids and their free energies by path weights.
# --------------------------------------------------------------------------------------


def _cell_matrix(box) -> np.ndarray:
    from thermo.materials.cells import box_matrix

    return box_matrix(box)


class LatticeGaussian(eqx.Module):
    r"""Full-covariance Gaussian of lattice displacements with the centre of mass fixed.

    See the module docstring ("Lattice-relative coordinates"). Build it with
    :func:`lattice_gaussian_from_covariance`, :func:`lattice_gaussian_from_hessian` or
    :func:`lattice_gaussian_from_samples`.

    Attributes:
        sites: ``(n, 3)`` lattice sites :math:`r^0_i`.
        cell: ``(3, 3)`` cell matrix :math:`T` (columns are the lattice vectors).
        basis: ``(3n, m)`` orthonormal normal modes :math:`B_0W`, orthogonal to the
            centre-of-mass modes, ``m = 3(n - 1)``.
        scales: ``(m,)`` standard deviations :math:`s_k` of the modes.
    """

    sites: Float[Array, "n 3"]
    cell: Float[Array, "3 3"]
    basis: Float[Array, "d m"]
    scales: Float[Array, " m"]

    @property
    def n_particles(self) -> int:
        """:math:`N`."""
        return self.sites.shape[0]

    @property
    def dim(self) -> int:
        """:math:`m = 3(N-1)`, the dimension of the model's support."""
        return self.scales.shape[0]

    def displacements(self, positions: Float[Array, "n 3"]) -> Float[Array, "n 3"]:
        r"""Minimum-image :math:`d_i = T\,\mathrm{mi}(T^{-1}(x_i - r^0_i))`."""
        frac = (positions - self.sites) @ jnp.linalg.inv(self.cell).T
        return minimum_image(frac) @ self.cell.T

    def to_latent(self, positions: Float[Array, "n 3"]) -> Float[Array, " m"]:
        r""":math:`z = \mathrm{diag}(s)^{-1}(B_0W)^\top\mathrm{vec}(d)` (the COM part drops out)."""
        return (self.basis.T @ self.displacements(positions).reshape(-1)) / self.scales

    def from_latent(self, z: Float[Array, " m"]) -> Float[Array, "n 3"]:
        r""":math:`x = r^0 + \mathrm{unvec}(B_0W\,\mathrm{diag}(s)\,z)` (unwrapped, COM-free)."""
        return self.sites + (self.basis @ (self.scales * z)).reshape(self.sites.shape)

    def log_det(self) -> Float[Array, ""]:
        r""":math:`\sum_k\log s_k`, the log-Jacobian of ``from_latent``."""
        return jnp.sum(jnp.log(self.scales))

    def log_prob(self, positions: Float[Array, "n 3"]) -> Float[Array, ""]:
        r"""Exact :math:`\log q(x)` on the COM-free subspace (module docstring)."""
        z = self.to_latent(positions)
        return -0.5 * jnp.sum(z * z) - self.log_det() - 0.5 * self.dim * math.log(2 * math.pi)

    def sample(self, key, n_samples: int) -> Float[Array, "b n 3"]:
        """``n_samples`` configurations ``(b, n, 3)`` (unwrapped positions, COM at the sites')."""
        z = jr.normal(key, (n_samples, self.dim), dtype=self.scales.dtype)
        return jax.vmap(self.from_latent)(z)


def _com_free_basis(n: int) -> np.ndarray:
    """``(3n, 3(n-1))`` orthonormal basis of :math:`\\sum_i d_i = 0` (flattened ``(n, 3)``)."""
    p = np.eye(3 * n) - np.kron(np.ones((n, n)) / n, np.eye(3))
    w, v = np.linalg.eigh(p)
    return v[:, w > 0.5]


def _site_lookup(sites: np.ndarray, cell: np.ndarray, points: np.ndarray, tol: float = 1e-6):
    """Index of the site each point coincides with modulo the cell (``-1`` if none)."""
    inv = np.linalg.inv(cell)

    def keys(p):
        f = p @ inv.T
        f = np.round((f - np.floor(f + 0.5 * tol)) / tol).astype(np.int64)
        f = np.mod(f, int(round(1.0 / tol)))
        return [tuple(r) for r in f]

    table = {k: i for i, k in enumerate(keys(sites))}
    return np.array([table.get(k, -1) for k in keys(points)], np.int64)


def _cubic_point_group() -> np.ndarray:
    """The 48 signed permutation matrices (the cubic group :math:`O_h`), ``(48, 3, 3)``."""
    import itertools

    ops = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            r = np.zeros((3, 3))
            r[np.arange(3), perm] = signs
            ops.append(r)
    return np.stack(ops)


def lattice_symmetries(sites, box, *, point_group: bool = True):
    r"""The lattice translations and point operations that map the sites onto themselves.

    A translation by :math:`t_k = r^0_k - r^0_0` sends site :math:`i` to the site at
    :math:`r^0_i + t_k` (mod the cell); a point operation :math:`R` (cubic group, about
    site 0) sends it to :math:`r^0_0 + R(r^0_i - r^0_0)`. Kept are those that permute the
    sites (all :math:`N` translations of a Bravais-lattice supercell; the 48 cubic
    operations for an FCC crystal in a cubic cell).

    Args:
        sites: ``(n, 3)`` lattice sites.
        box: the cell (:func:`thermo.materials.box_matrix`).
        point_group: include the cubic point operations.

    Returns:
        ``(translations, rotations)``: ``translations`` ``(n, n)`` int, row ``k`` the
        permutation :math:`i \mapsto p_k(i)` of translation :math:`t_k`; ``rotations`` a
        pair ``(R (g, 3, 3), perms (g, n))`` of the point operations kept (``g >= 1``,
        the identity first).
    """
    sites = np.asarray(sites, np.float64)
    if sites.ndim != 2 or sites.shape[1] != 3:
        raise ValueError(f"sites must have shape (n, 3), got {sites.shape}")
    cell = _cell_matrix(box)
    n = sites.shape[0]
    rel = sites - sites[0]
    trans = _site_lookup(sites, cell, (sites[None, :, :] + rel[:, None, :]).reshape(-1, 3))
    trans = trans.reshape(n, n)
    if np.any(trans < 0):
        raise ValueError("the sites are not a Bravais lattice of the cell (a translation fails)")
    ops = _cubic_point_group() if point_group else np.eye(3)[None]
    rots, perms = [], []
    for r in ops:
        p = _site_lookup(sites, cell, sites[0] + rel @ r.T)
        if np.all(p >= 0) and len(set(p.tolist())) == n:
            rots.append(r)
            perms.append(p)
    return trans, (np.stack(rots), np.stack(perms))


def _symmetrize(cov: np.ndarray, sites: np.ndarray, cell: np.ndarray, point_group: bool):
    r"""Group average :math:`\bar C = |G|^{-1}\sum_g (P_g\otimes R_g) C (P_g\otimes R_g)^\top`.

    Translations first: :math:`C_{ij}` becomes a function :math:`c(r_j - r_i)` of the
    separation (the mean of its blocks over all pairs with that separation); then
    :math:`c(s) \leftarrow |P|^{-1}\sum_R R\,c(R^\top s)R^\top`.
    """
    n = sites.shape[0]
    trans, (rots, _) = lattice_symmetries(sites, cell, point_group=point_group)
    # sep[i, j] = k with r_k - r_0 = r_j - r_i (mod cell): translation by r_j... from i to j
    rel = sites - sites[0]
    sep = _site_lookup(sites, cell, (sites[0] + rel[None, :, :] - rel[:, None, :]).reshape(-1, 3))
    del trans
    blocks = cov.reshape(n, 3, n, 3).transpose(0, 2, 1, 3).reshape(n * n, 3, 3)
    c = np.zeros((n, 3, 3))
    np.add.at(c, sep, blocks)
    c /= np.bincount(sep, minlength=n)[:, None, None]
    if rots.shape[0] > 1:
        c_sym = np.zeros_like(c)
        for r in rots:
            idx = _site_lookup(sites, cell, sites[0] + rel @ r)  # R^T s for every s
            c_sym += np.einsum("ab,kbc,dc->kad", r, c[idx], r)
        c = c_sym / rots.shape[0]
    full = c[sep].reshape(n, n, 3, 3).transpose(0, 2, 1, 3).reshape(3 * n, 3 * n)
    return 0.5 * (full + full.T)


def lattice_gaussian_from_covariance(
    sites, box, covariance, *, symmetrize: bool = True, point_group: bool = True
) -> LatticeGaussian:
    r"""A :class:`LatticeGaussian` with covariance :math:`C` (restricted to the COM-free subspace).

    Args:
        sites: ``(n, 3)`` lattice sites.
        box: the cell.
        covariance: ``(3n, 3n)`` covariance of the flattened displacements (its
            centre-of-mass part is ignored).
        symmetrize: average :math:`C` over the lattice symmetries first
            (:func:`lattice_symmetries`), which makes the model equivariant.
        point_group: include the cubic point operations in that average.

    Returns:
        :class:`LatticeGaussian`.

    Raises:
        ValueError: on bad shapes, non-finite entries, or a covariance that is not
            positive definite on the subspace.
    """
    sites = np.asarray(sites, np.float64)
    cell = _cell_matrix(box)
    n = sites.shape[0]
    cov = np.asarray(covariance, np.float64)
    if sites.ndim != 2 or sites.shape[1] != 3 or n < 2:
        raise ValueError(f"sites must have shape (n >= 2, 3), got {sites.shape}")
    if cov.shape != (3 * n, 3 * n):
        raise ValueError(f"covariance must have shape {(3 * n, 3 * n)}, got {cov.shape}")
    if not np.all(np.isfinite(cov)):
        raise ValueError("covariance contains NaN or inf")
    cov = 0.5 * (cov + cov.T)
    if symmetrize:
        cov = _symmetrize(cov, sites, cell, point_group)
    b0 = _com_free_basis(n)
    lam, w = np.linalg.eigh(b0.T @ cov @ b0)
    if lam[0] <= 1e-12 * lam[-1]:
        raise ValueError(
            f"covariance is not positive definite on the COM-free subspace (smallest "
            f"eigenvalue {lam[0]:.3g}); give more samples or a stable Hessian"
        )
    return LatticeGaussian(
        jnp.asarray(sites), jnp.asarray(cell), jnp.asarray(b0 @ w), jnp.asarray(np.sqrt(lam))
    )


def lattice_gaussian_from_hessian(
    energy_fn: Callable[[Array], Array], sites, box, temperature: float, **kw
) -> LatticeGaussian:
    r"""The harmonic crystal: :math:`C = k_BT\,(B_0^\top H B_0)^{-1}`, :math:`H = \nabla^2U(r^0)`.

    Args:
        energy_fn: ``U(R)``, ``R`` of shape ``(n, 3)``.
        sites: ``(n, 3)`` lattice sites (a minimum of ``energy_fn``).
        box: the cell.
        temperature: :math:`k_BT`.
        **kw: :func:`lattice_gaussian_from_covariance` options.

    Raises:
        ValueError: when the lattice is mechanically unstable (a non-positive mode).
    """
    from thermo.materials._harmonic import hessian

    check_positive(temperature, "temperature")
    sites = np.asarray(sites, np.float64)
    h = np.asarray(hessian(energy_fn, jnp.asarray(sites)), np.float64)
    b0 = _com_free_basis(sites.shape[0])
    lam, w = np.linalg.eigh(b0.T @ h @ b0)
    if lam[0] <= 0:
        raise ValueError(f"the lattice is mechanically unstable (Hessian eigenvalue {lam[0]:.3g})")
    cov_y = (w / lam) @ w.T * temperature
    return lattice_gaussian_from_covariance(sites, box, b0 @ cov_y @ b0.T, **kw)


def lattice_gaussian_from_samples(
    positions, sites, box, *, log_weights=None, **kw
) -> LatticeGaussian:
    r"""Fit the Gaussian to (weighted) samples: the weighted covariance of :math:`d - \bar d`.

    Args:
        positions: ``(b, n, 3)`` configurations (wrapped or not).
        sites: ``(n, 3)`` lattice sites.
        box: the cell.
        log_weights: optional ``(b,)`` importance log-weights (e.g. a corrected SMC
            population); uniform when ``None``.
        **kw: :func:`lattice_gaussian_from_covariance` options.
    """
    x = jnp.asarray(positions)
    if x.ndim != 3 or x.shape[1:] != np.shape(sites):
        raise ValueError(f"positions must have shape (b, {np.shape(sites)}), got {x.shape}")
    model0 = LatticeGaussian(
        jnp.asarray(sites), jnp.asarray(_cell_matrix(box)), jnp.zeros((0, 0)), jnp.ones((0,))
    )
    d = np.asarray(jax.vmap(model0.displacements)(x), np.float64)
    d = (d - d.mean(axis=1, keepdims=True)).reshape(d.shape[0], -1)
    if log_weights is None:
        w = np.full(d.shape[0], 1.0 / d.shape[0])
    else:
        lw = np.asarray(log_weights, np.float64)
        if lw.shape != (d.shape[0],) or not np.all(np.isfinite(lw)):
            raise ValueError("log_weights must be finite with one entry per sample")
        w = np.exp(lw - lw.max())
        w /= w.sum()
    mean = w @ d
    cov = (d - mean).T @ ((d - mean) * w[:, None])
    return lattice_gaussian_from_covariance(sites, box, cov, **kw)


class LatticeFreeEnergy(NamedTuple):
    r"""Result of :func:`lattice_free_energy`.

    Attributes:
        log_z: :math:`\ln\int_{\sum d=0} e^{-\beta U}\,d^m y` (path-weight estimate).
        log_z_std: its standard error (delta method over the independent paths).
        log_q_com: :math:`\ln Q_{\rm CM} = \ln Z + \tfrac32\ln N`.
        ess: Kish ESS of the final weights.
        pareto_k: PSIS tail index of the weights.
        positions: ``(n_chains, n, 3)`` final (weighted) configurations.
        log_weights: ``(n_chains,)`` their log-weights.
        n_energy_evals: energy-and-gradient evaluations spent.
        acceptance_rate: mean MCMC acceptance along the path.
    """

    log_z: Array
    log_z_std: Array
    log_q_com: Array
    ess: Array
    pareto_k: Array
    positions: Array
    log_weights: Array
    n_energy_evals: Array
    acceptance_rate: Array

    @property
    def ensemble(self) -> PathEnsemble:
        """The weighted paths as a :class:`thermo.paths.PathEnsemble` (flat ``(n_chains, 3n)``
        samples); ``log_z`` is :func:`thermo.estimators.estimate_log_z` of its weights."""
        x = jnp.reshape(self.positions, (self.positions.shape[0], -1))
        return PathEnsemble(x, self.log_weights, self.n_energy_evals)


@eqx.filter_jit
def _lattice_anneal(key, model, energy_fn, beta, schedule, options):
    from thermo.mcmc import anneal

    def logdensity_fn(z):
        return -beta * energy_fn(model.from_latent(z)) + model.log_det()

    res = anneal(key, logdensity_fn, model.dim, base_scale=1.0, schedule=schedule, **dict(options))
    return res.estimate, res.samples, res.log_weights, res.n_energy_evals, res.acceptance_rate


def lattice_free_energy(
    key,
    model: LatticeGaussian,
    energy_fn: Callable[[Array], Array],
    temperature: float,
    *,
    n_chains: int,
    n_stages: int,
    schedule_power: float = 2.0,
    move: str = "mala",
    n_mcmc_steps: int = 1,
    n_integration_steps: int = 5,
    initial_step_size: float | None = None,
) -> LatticeFreeEnergy:
    r"""Correct the lattice model to :math:`e^{-\beta U}` by annealing; the free energy from its weights.

    AIS (Neal 2001; :func:`thermo.mcmc.anneal` with no resampling, so the paths are
    independent and the delta-method error bar holds) in the model's whitened
    coordinates, schedule :math:`\lambda_k = (k/K)^p`; see the module docstring
    ("Correction to the Boltzmann target by SMC").

    Args:
        key: PRNG key.
        model: the :class:`LatticeGaussian` (the path's normalised start).
        energy_fn: ``U(R)`` (periodic; ``R`` unwrapped ``(n, 3)``).
        temperature: :math:`k_BT`.
        n_chains: independent paths.
        n_stages: :math:`K` (0 is plain importance sampling from the model).
        schedule_power: :math:`p`.
        move, n_mcmc_steps, n_integration_steps, initial_step_size: the moves
            (:func:`thermo.mcmc.anneal`; the step size adapts to the acceptance).

    Returns:
        :class:`LatticeFreeEnergy`.
    """
    check_positive(temperature, "temperature")
    n_chains = check_count(n_chains, "n_chains", minimum=2)
    n_stages = check_count(n_stages, "n_stages", minimum=0)
    check_positive(schedule_power, "schedule_power")
    beta = 1.0 / float(temperature)
    if n_stages == 0:
        z = jr.normal(key, (n_chains, model.dim), dtype=model.scales.dtype)
        x = jax.vmap(model.from_latent)(z)
        lw = -beta * jax.vmap(energy_fn)(x) - jax.vmap(model.log_prob)(x)
        from thermo.estimators import estimate_log_z

        est = estimate_log_z(lw)
        evals, acc = jnp.asarray(n_chains), jnp.asarray(jnp.nan)
    else:
        t = np.linspace(0.0, 1.0, n_stages + 1)
        options = dict(
            n_chains=n_chains,
            resample_threshold=0.0,
            move=move,
            n_mcmc_steps=int(n_mcmc_steps),
            n_integration_steps=int(n_integration_steps),
            initial_step_size=initial_step_size,
        )
        schedule = jnp.asarray(t**schedule_power, dtype=model.scales.dtype)
        # beta as an array: one compiled path for every temperature (and, with an
        # energy_fn whose cell is an array field, every density) of the same shapes
        est, z, lw, evals, acc = _lattice_anneal(
            key,
            model,
            energy_fn,
            jnp.asarray(beta, model.scales.dtype),
            schedule,
            tuple(sorted(options.items())),
        )
        x = jax.vmap(model.from_latent)(z)
    n = model.n_particles
    return LatticeFreeEnergy(
        log_z=est.value,
        log_z_std=est.std_err,
        log_q_com=est.value + 1.5 * math.log(n),
        ess=est.ess,
        pareto_k=est.pareto_k,
        positions=x,
        log_weights=lw,
        n_energy_evals=evals,
        acceptance_rate=acc,
    )


def crystal_excess_free_energy(
    n_particles: int,
    density: float,
    temperature: float,
    log_q_com: float,
    log_q_com_std: float,
    *,
    lattice_energy_cut: float,
    lattice_energy_full: float,
    msd: float = 0.0,
    r_cut: float | None = None,
    sigma: float = 1.0,
    epsilon: float = 1.0,
) -> dict:
    r"""Finite-:math:`N` :math:`\beta A_{\rm ex}/N` from :math:`\ln Q_{\rm CM}`, as Frenkel–Ladd assembles it.

    .. math:: \frac{\beta A_{\rm ex}}{N} = \frac{(N-1)\ln V - \ln N!}{N}
              - \frac{\ln Q_{\rm CM}}{N}
              + \beta\,(u^{\rm full}_{\rm lat} - u^{\rm cut}_{\rm lat})
              + \beta\,\delta a_{\rm tail},

    the terms of :func:`thermo.materials.frenkel_ladd_free_energy` (whose
    :math:`-\ln Q_{E,\rm CM} + \beta U^{\rm cut}_{\rm lat} + \beta\int\langle\partial_\lambda
    U\rangle` is :math:`-\ln Q_{\rm CM}` of the hard-cut crystal): the free translation and
    the ideal gas, the static lattice energy of the full potential in place of the cut
    one (per particle, :func:`thermo.materials.fcc_lattice_energy`), and the first-order
    thermal tail :math:`-16\pi\rho\,{\rm MSD}\,\varepsilon\sigma^6 r_c^{-5}`.

    Returns:
        dict with ``value``, ``std_err`` and ``terms``.
    """
    from thermo.materials.solid import thermal_tail_term, translation_term

    n = check_count(n_particles, "n_particles", minimum=2)
    check_positive(density, "density")
    check_positive(temperature, "temperature")
    if not (np.isfinite(log_q_com) and np.isfinite(log_q_com_std)):
        raise ValueError("log_q_com and its standard error must be finite")
    beta = 1.0 / temperature
    translation = translation_term(n, density)
    configurational = -float(log_q_com) / n
    lattice = beta * (float(lattice_energy_full) - float(lattice_energy_cut))
    tail = thermal_tail_term(density, temperature, msd, r_cut, sigma, epsilon)
    terms = {
        "translation_and_ideal_gas": translation,
        "configurational": configurational,
        "lattice_full_minus_cut": lattice,
        "thermal_tail": tail,
    }
    return {
        "value": float(translation + configurational + lattice + tail),
        "std_err": float(log_q_com_std) / n,
        "terms": terms,
    }


def bond_order_q6(positions, box, r_neighbor: float) -> np.ndarray:
    r"""Global Steinhardt order :math:`Q_6` of each configuration (Steinhardt, Nelson & Ronchetti 1983).

    :math:`Q_6^2 = \frac{4\pi}{13}\sum_m |\bar Q_{6m}|^2` with :math:`\bar Q_{6m}` the mean of
    :math:`Y_{6m}(\hat r_b)` over all bonds :math:`b` (minimum-image pairs closer than
    ``r_neighbor``); by the addition theorem
    :math:`Q_6^2 = N_b^{-2}\sum_{b,b'} P_6(\hat r_b\cdot\hat r_{b'})`. Perfect FCC: 0.5745;
    a liquid: :math:`O(N_b^{-1/2})`.

    Args:
        positions: ``(b, n, 3)`` or ``(n, 3)``.
        box: the cell.
        r_neighbor: bond cutoff (between the first and second neighbour shells).

    Returns:
        ``(b,)`` float64 array.
    """
    from numpy.polynomial import legendre

    cell = _cell_matrix(box)
    inv = np.linalg.inv(cell)
    x = np.asarray(positions, np.float64)
    x = x[None] if x.ndim == 2 else x
    p6 = np.zeros(7)
    p6[6] = 1.0
    out = np.empty(x.shape[0])
    iu = np.triu_indices(x.shape[1], 1)
    for c, xc in enumerate(x):
        dr = (xc[:, None, :] - xc[None, :, :])[iu]
        f = dr @ inv.T
        dr = (f - np.round(f)) @ cell.T
        r = np.linalg.norm(dr, axis=1)
        u = dr[r < r_neighbor] / r[r < r_neighbor, None]
        if u.shape[0] == 0:
            out[c] = 0.0
            continue
        out[c] = np.sqrt(max(np.mean(legendre.legval(u @ u.T, p6)), 0.0))
    return out


def lindemann_ratio(positions, model: LatticeGaussian, nearest_neighbor: float) -> float:
    r"""Lindemann ratio :math:`\sqrt{\langle|d_i - \bar d|^2\rangle}/a` over configurations and particles.

    Args:
        positions: ``(b, n, 3)``.
        model: supplies the sites and the minimum-image displacement.
        nearest_neighbor: :math:`a`, the nearest-neighbour distance of the lattice.
    """
    d = np.asarray(jax.vmap(model.displacements)(jnp.asarray(positions)), np.float64)
    d = d - d.mean(axis=1, keepdims=True)
    return float(np.sqrt(np.mean(np.sum(d * d, axis=-1))) / nearest_neighbor)
