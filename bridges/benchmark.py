r"""A Gaussian-mixture entropic-OT benchmark with a known conditional plan, cBW2-UVP, and LightSB.

**Construction** (Gushchin et al. 2023, "Building the bridge of Schrödinger: a continuous
entropic optimal transport benchmark", NeurIPS D&B). Entropic OT with cost
:math:`\tfrac12\|x-y\|^2` and regularisation :math:`\varepsilon` is the Schrödinger bridge
for the reference :math:`\sqrt\varepsilon\,dB` (so :math:`\sigma^2=\varepsilon`). For any
input law :math:`p_0` and any positive function :math:`\psi`, the plan

.. math:: \pi^*(x, y) = p_0(x)\,\frac{e^{-\|x-y\|^2/2\varepsilon}\,\psi(y)}
          {\int e^{-\|x-y'\|^2/2\varepsilon}\psi(y')\,dy'}

has the Schrödinger form :math:`e^{-\|x-y\|^2/2\varepsilon}a(x)b(y)` and is therefore the
entropic OT plan between :math:`p_0` and its own second marginal :math:`p_1`. Gushchin et
al. take :math:`\psi(y) = \sum_k w_k \mathcal N(y; m_k, S_k)` (an unnormalised Gaussian
mixture); then :math:`\pi^*(\cdot\mid x)` is a Gaussian mixture in closed form,

.. math:: \pi^*(y\mid x) = \sum_k \beta_k(x)\,\mathcal N\big(y;\ \tilde S_k(S_k^{-1}m_k + x/\varepsilon),\ \tilde S_k\big),
          \quad \tilde S_k = (I/\varepsilon + S_k^{-1})^{-1},
          \quad \beta_k(x)\propto w_k\,\mathcal N(x; m_k, S_k + \varepsilon I).

**What differs from the published instances.** The published benchmark loads its
parameters (input mixture, :math:`w_k, m_k, S_k` per :math:`(d,\varepsilon)`) from data files
that we cannot download here. :func:`make_benchmark` regenerates instances of the *same
construction* from a seed: :math:`p_0 = \mathcal N(0, I_d)`, five potential components with
means :math:`m_k\sim\mathcal U[-2, 2]^d` and covariances :math:`Q\,\mathrm{diag}(\lambda)Q^\top`
(:math:`Q` Haar-orthogonal, :math:`\lambda\sim\mathcal U[0.1, 0.5]`), equal weights. Our
scores are therefore on the same kind of task, not on the identical instance.

**Score** (Gushchin et al. 2023, Sec. 5): the conditional Bures–Wasserstein UVP,

.. math:: \mathrm{cBW}_2^2\text{-UVP}(\hat\pi) = \frac{100\,\%}{\tfrac12\operatorname{Var}(p_1)}
          \int \tfrac12\mathrm{BW}_2^2\big(\hat\pi(\cdot\mid x), \pi^*(\cdot\mid x)\big)\,dp_0(x),

where :math:`\mathrm{BW}_2` is the Wasserstein-2 distance between the Gaussians with the
conditionals' means and covariances and :math:`\operatorname{Var}(p_1) = \operatorname{tr}\mathrm{Cov}(p_1)`.

**LightSB** (Korotin, Gushchin & Burnaev 2024, "Light Schrödinger Bridge", ICLR): the
adjusted Schrödinger potential is a Gaussian mixture
:math:`v_\theta(y) = \sum_k \alpha_k\mathcal N(y; r_k, \varepsilon S_k)`, so that

.. math:: \pi_\theta(y\mid x) = \frac{e^{\langle x,y\rangle/\varepsilon} v_\theta(y)}{c_\theta(x)}
          = \sum_k \tilde\alpha_k(x)\,\mathcal N(y;\ r_k + S_k x,\ \varepsilon S_k),\quad
          c_\theta(x) = \sum_k\alpha_k e^{(x^\top S_k x + 2 r_k^\top x)/2\varepsilon},

and :math:`\theta` minimises the KL-upper-bound loss
:math:`\mathbb E_{p_0}\log c_\theta(x) - \mathbb E_{p_1}\log v_\theta(y)` by Adam.
"""

from __future__ import annotations

import abc
import functools
import time
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jax.scipy.special import logsumexp
from jaxtyping import Array, Float

from thermo._checks import check_count, check_positive, check_real
from thermo._typing import PRNGKey
from thermo.fit import fit

from .gaussian import sqrtm_psd

__all__ = [
    "GMMBenchmark",
    "make_benchmark",
    "bw2_squared",
    "cbw2_uvp",
    "cbw2_uvp_estimate",
    "sample_moments_floor",
    "LightSB",
    "fit_lightsb",
    "PUBLISHED_CBW2_UVP",
]

#: Gushchin et al. 2023, Table (mixtures benchmark, eps = 0.1), cBW2-UVP in %, and
#: LightSB (Korotin et al. 2024, Table 2), for d = 2, 16, 64, 128.
PUBLISHED_CBW2_UVP = {
    "best_of_gushchin2023": {2: 1.94, 16: 13.67, 64: 11.74, 128: 11.4},
    "lightsb_korotin2024": {2: 0.03, 16: 0.08, 64: 0.28, 128: 0.60},
}


def _gaussian_logpdf_terms(means, covs):
    """Precision matrices ``(K, d, d)`` and normalising constants ``(K,)`` of K Gaussians."""
    d = means.shape[-1]
    chol = jnp.linalg.cholesky(covs)
    eye = jnp.eye(d, dtype=means.dtype)
    prec = jax.vmap(lambda c: jax.scipy.linalg.cho_solve((c, True), eye))(chol)
    log_norm = -jnp.sum(jnp.log(jnp.diagonal(chol, axis1=1, axis2=2)), -1) - 0.5 * d * jnp.log(
        2 * jnp.pi
    )
    return prec, log_norm


def _component_logpdfs(x, means, prec, log_norm):
    """``log N(x; m_k, P_k^{-1})`` for all k: ``x`` of shape ``(d,)`` -> ``(K,)`` (einsums only)."""
    dev = x[None] - means
    return log_norm - 0.5 * jnp.einsum("ki,kij,kj->k", dev, prec, dev)


class _MixtureConditional(eqx.Module):
    r"""A plan whose conditional :math:`\pi(\cdot\mid x)` is a Gaussian mixture: its moments
    and draws from the mixture's ``(log weights (K,), means (K, d), covs (K, d, d))``."""

    @abc.abstractmethod
    def conditional_components(self, x: Float[Array, " d"]):
        """``(log weights (K,), means (K, d), covs (K, d, d))`` of the mixture at ``x``."""

    @abc.abstractmethod
    def _component_cholesky(self, covs: Float[Array, "K d d"]) -> Float[Array, "K d d"]:
        """Lower Cholesky factors of the components' covariances ``covs``."""

    def conditional_moments(self, x: Float[Array, " d"]):
        r"""Mean ``(d,)`` and covariance ``(d, d)`` of :math:`\pi(\cdot\mid x)`."""
        return _mixture_moments(*self.conditional_components(x))

    def sample_conditional(self, key: PRNGKey, x: Float[Array, " d"]) -> Float[Array, " d"]:
        r"""One draw from :math:`\pi(\cdot\mid x)`."""
        log_w, means, covs = self.conditional_components(x)
        return _sample_mixture(key, log_w, means, self._component_cholesky(covs))


class GMMBenchmark(_MixtureConditional):
    r"""A benchmark pair :math:`(p_0, p_1)` with its known entropic plan (module docstring).

    Attributes:
        eps: entropic regularisation (= reference variance :math:`\sigma^2`).
        log_w: ``(K,)`` log weights of the potential mixture.
        m: ``(K, d)`` potential means; ``s``: ``(K, d, d)`` potential covariances.
        var_p1: :math:`\operatorname{tr}\mathrm{Cov}(p_1)`, estimated from ``2**16`` samples.
        The remaining fields are precomputed from these (:func:`make_benchmark`).
    """

    eps: Float[Array, ""]
    log_w: Float[Array, " K"]
    m: Float[Array, "K d"]
    s: Float[Array, "K d d"]
    var_p1: Float[Array, ""]
    s_tilde: Float[Array, "K d d"]
    chol_tilde: Float[Array, "K d d"]
    bias: Float[Array, "K d"]
    prec_pot: Float[Array, "K d d"]
    log_norm_pot: Float[Array, " K"]

    @property
    def dim(self) -> int:
        return self.m.shape[1]

    def sample_p0(self, key: PRNGKey, n: int) -> Float[Array, "n d"]:
        r"""``n`` draws from the input :math:`p_0 = \mathcal N(0, I_d)`."""
        return jr.normal(key, (n, self.dim), dtype=self.m.dtype)

    def conditional_components(self, x: Float[Array, " d"]):
        r"""``(log beta (K,), means (K, d), covs (K, d, d))`` of :math:`\pi^*(\cdot\mid x)`."""
        means = self.bias + jnp.einsum("kij,j->ki", self.s_tilde, x) / self.eps
        logits = self.log_w + _component_logpdfs(x, self.m, self.prec_pot, self.log_norm_pot)
        return jax.nn.log_softmax(logits), means, self.s_tilde

    def _component_cholesky(self, covs):
        return self.chol_tilde  # the Cholesky factors of ``covs = s_tilde``, precomputed

    def sample_plan(self, key: PRNGKey, n: int) -> tuple[Float[Array, "n d"], Float[Array, "n d"]]:
        r"""``n`` pairs ``(x, y)`` from the ground-truth plan :math:`\pi^*`."""
        k0, k1 = jr.split(key)
        x = self.sample_p0(k0, n)
        y = jax.vmap(self.sample_conditional)(jr.split(k1, n), x)
        return x, y

    def sample_p1(self, key: PRNGKey, n: int) -> Float[Array, "n d"]:
        """``n`` draws from the target :math:`p_1` (second marginal of the plan)."""
        return self.sample_plan(key, n)[1]


def _mixture_moments(log_beta, means, covs):
    beta = jnp.exp(log_beta)
    mean = beta @ means
    dev = means - mean[None]
    cov = jnp.einsum("k,kij->ij", beta, covs) + jnp.einsum("k,ki,kj->ij", beta, dev, dev)
    return mean, cov


def _sample_mixture(key, log_beta, means, chols):
    k_c, k_z = jr.split(key)
    k = jr.categorical(k_c, log_beta)
    z = jr.normal(k_z, means.shape[1:], dtype=means.dtype)
    return means[k] + chols[k] @ z


@eqx.filter_jit
def _sample_p1(bench: GMMBenchmark, key: PRNGKey, n: int) -> Float[Array, "n d"]:
    return bench.sample_p1(key, n)


def make_benchmark(
    key: PRNGKey, dim: int, eps: float = 0.1, n_components: int = 5, dtype=None
) -> GMMBenchmark:
    """Regenerate a Gushchin et al. (2023) mixture benchmark instance from ``key`` (module docstring).

    Constants: means uniform on ``[-2, 2]^d``, covariance eigenvalues uniform on
    ``[0.1, 0.5]``, equal weights: our choices (the published values are data files).
    """
    dim = check_count(dim, "dim")
    n_components = check_count(n_components, "n_components")
    check_positive(eps, "eps")
    dtype = jnp.zeros(()).dtype if dtype is None else dtype  # float64 under x64, else float32
    k_m, k_q, k_l, k_v = jr.split(key, 4)
    m = jr.uniform(k_m, (n_components, dim), dtype=dtype, minval=-2.0, maxval=2.0)
    q, _ = jnp.linalg.qr(jr.normal(k_q, (n_components, dim, dim), dtype=dtype))
    lam = jr.uniform(k_l, (n_components, dim), dtype=dtype, minval=0.1, maxval=0.5)
    s = jnp.einsum("kij,kj,klj->kil", q, lam, q)
    log_w = jnp.full((n_components,), -jnp.log(n_components), dtype=dtype)
    eye = jnp.eye(dim, dtype=dtype)
    s_inv = jnp.linalg.inv(s)
    s_tilde = jnp.linalg.inv(eye[None] / eps + s_inv)
    s_tilde = 0.5 * (s_tilde + jnp.swapaxes(s_tilde, 1, 2))
    prec_pot, log_norm_pot = _gaussian_logpdf_terms(m, s + eps * eye[None])
    bench = GMMBenchmark(
        eps=jnp.asarray(eps, dtype),
        log_w=log_w,
        m=m,
        s=s,
        var_p1=jnp.asarray(0.0, dtype),
        s_tilde=s_tilde,
        chol_tilde=jnp.linalg.cholesky(s_tilde),
        bias=jnp.einsum("kij,kjl,kl->ki", s_tilde, s_inv, m),
        prec_pot=prec_pot,
        log_norm_pot=log_norm_pot,
    )
    y = _sample_p1(bench, k_v, 2**16)
    var_p1 = jnp.sum(jnp.var(y, axis=0, ddof=1))
    return eqx.tree_at(lambda b: b.var_p1, bench, var_p1)


def bw2_squared(
    mean1: Float[Array, " d"],
    cov1: Float[Array, "d d"],
    mean2: Float[Array, " d"],
    cov2: Float[Array, "d d"],
) -> Float[Array, ""]:
    r"""Bures–Wasserstein :math:`\mathrm{BW}_2^2 = \|m_1-m_2\|^2 + \operatorname{tr}\Sigma_1 + \operatorname{tr}\Sigma_2 - 2\operatorname{tr}(\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2})^{1/2}`."""
    r1 = sqrtm_psd(cov1)
    cross = sqrtm_psd(r1 @ cov2 @ r1)
    return (
        jnp.sum((mean1 - mean2) ** 2) + jnp.trace(cov1) + jnp.trace(cov2) - 2.0 * jnp.trace(cross)
    )


def cbw2_uvp(
    bench: GMMBenchmark,
    x: Float[Array, "n d"],
    pred_means: Float[Array, "n d"],
    pred_covs: Float[Array, "n d d"],
) -> Float[Array, ""]:
    r"""cBW2-UVP in percent: :math:`100\,\mathbb E_x\mathrm{BW}_2^2(\hat\pi(\cdot|x),\pi^*(\cdot|x)) / \operatorname{Var}(p_1)`.

    ``x`` are test inputs from :math:`p_0`; ``pred_means``/``pred_covs`` the model's
    conditional moments at them (exact ones for LightSB, or sample moments).
    """
    true_m, true_c = jax.vmap(bench.conditional_moments)(x)
    bw = jax.vmap(bw2_squared)(pred_means, pred_covs, true_m, true_c)
    return 100.0 * jnp.mean(bw) / bench.var_p1


def cbw2_uvp_estimate(
    bench: GMMBenchmark,
    x: Float[Array, "n d"],
    pred_means: Float[Array, "n d"],
    pred_covs: Float[Array, "n d d"],
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    r"""cBW2-UVP (percent) and its Monte Carlo standard error over the test inputs.

    The score is an average over :math:`x\sim p_0` of :math:`\mathrm{BW}_2^2`; with ``n``
    i.i.d. test inputs its standard error is :math:`100\,\mathrm{sd}(\mathrm{BW}_2^2)/
    (\sqrt n\,\operatorname{Var}(p_1))` (the error of ``var_p1``, from :math:`2^{16}`
    samples, is a relative :math:`O(2^{-8})` and neglected).
    """
    true_m, true_c = jax.vmap(bench.conditional_moments)(x)
    bw = jax.vmap(bw2_squared)(pred_means, pred_covs, true_m, true_c)
    n = bw.shape[0]
    scale = 100.0 / bench.var_p1
    return scale * jnp.mean(bw), scale * jnp.std(bw, ddof=1) / jnp.sqrt(n)


def sample_moments_floor(
    key: PRNGKey, bench: GMMBenchmark, x: Float[Array, "n d"], n_samples: int
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    r"""cBW2-UVP of the *true* plan when each conditional's moments come from ``n_samples`` draws.

    This is the estimator floor of the sample-based protocol (Gushchin et al. 2023 score
    solvers that can only be sampled from their conditional sample moments): even the
    ground truth scores above zero, roughly by
    :math:`\operatorname{tr}\mathrm{Cov}(y|x)/M` (mean error) plus the covariance
    estimate's :math:`O(d/M)` Bures term. Returns ``(value, std_err)`` as
    :func:`cbw2_uvp_estimate`.
    """
    keys = jr.split(key, x.shape[0])

    def moments(k, xi):
        ys = jax.vmap(bench.sample_conditional, (0, None))(jr.split(k, n_samples), xi)
        return ys.mean(0), jnp.cov(ys.T).reshape(xi.shape[0], xi.shape[0])

    m, c = jax.lax.map(lambda a: moments(*a), (keys, x))
    return cbw2_uvp_estimate(bench, x, m, c)


class LightSB(_MixtureConditional):
    r"""LightSB's Gaussian-mixture adjusted potential :math:`v_\theta(y)=\sum_k\alpha_k\mathcal N(y; r_k,\varepsilon S_k)`.

    ``S_k = L_k L_k^T`` with ``L_k`` lower-triangular (positive diagonal via ``exp``).
    """

    log_alpha: Float[Array, " K"]
    r: Float[Array, "K d"]
    chol_raw: Float[Array, "K d d"]
    eps: float = eqx.field(static=True)

    def scale(self) -> Float[Array, "K d d"]:
        """The matrices :math:`S_k` (``(K, d, d)``)."""
        low = jnp.tril(self.chol_raw, -1)
        diag = jnp.exp(jnp.diagonal(self.chol_raw, axis1=1, axis2=2))
        chol = low + jax.vmap(jnp.diag)(diag)
        return chol @ jnp.swapaxes(chol, 1, 2)

    def log_potential(self, y: Float[Array, "n d"]) -> Float[Array, " n"]:
        r""":math:`\log v_\theta(y)` for a batch ``y`` of shape ``(n, d)``."""
        prec, log_norm = _gaussian_logpdf_terms(self.r, self.eps * self.scale())
        comp = jax.vmap(lambda yi: _component_logpdfs(yi, self.r, prec, log_norm))(y)
        return logsumexp(self.log_alpha[None, :] + comp, axis=-1)

    def _logits(self, x, s):
        return self.log_alpha + (jnp.einsum("i,kij,j->k", x, s, x) + 2.0 * self.r @ x) / (
            2.0 * self.eps
        )

    def log_normaliser(self, x: Float[Array, " d"]) -> Float[Array, ""]:
        r""":math:`\log c_\theta(x) = \log\sum_k\alpha_k e^{(x^\top S_kx + 2r_k^\top x)/2\varepsilon}`."""
        return logsumexp(self._logits(x, self.scale()))

    def conditional_components(self, x: Float[Array, " d"]):
        r"""``(log alpha~(x) (K,), means r_k + S_k x (K, d), covs eps S_k (K, d, d))``."""
        s = self.scale()
        return jax.nn.log_softmax(self._logits(x, s)), self.r + s @ x, self.eps * s

    def _component_cholesky(self, covs):
        return jnp.linalg.cholesky(covs)


class LightSBResult(NamedTuple):
    """Fitted :class:`LightSB`, per-step losses, iterations and wall time (seconds)."""

    model: LightSB
    losses: Float[Array, " n_steps"]
    n_iterations: int
    wall_time: float


@functools.lru_cache(maxsize=32)
def _lightsb_optimizer(learning_rate, n_steps, final_lr_fraction):
    """Adam on a cosine-decayed step size (cached: one object, so one compilation)."""
    schedule = optax.cosine_decay_schedule(learning_rate, n_steps, alpha=final_lr_fraction)
    return optax.adam(schedule)


def _lightsb_loss(model, key, args):
    r"""LightSB's minibatch loss :math:`\mathrm{mean}\log c_\theta(x) - \mathrm{mean}\log v_\theta(y)`."""
    sample_p0, sample_p1, batch_size = args
    k0, k1 = jr.split(key)
    x = sample_p0(k0, batch_size)
    y = sample_p1(k1, batch_size)
    return jnp.mean(jax.vmap(model.log_normaliser)(x)) - jnp.mean(model.log_potential(y))


def fit_lightsb(
    key: PRNGKey,
    sample_p0,
    sample_p1,
    dim: int,
    eps: float,
    *,
    n_components: int = 10,
    n_steps: int = 5000,
    batch_size: int = 512,
    learning_rate: float = 1e-2,
    init_points: Float[Array, "K d"] | None = None,
    final_lr_fraction: float = 1.0,
    init_scale: float = 1.0,
) -> LightSBResult:
    r"""Fit LightSB (Korotin et al. 2024) by Adam on :math:`\mathbb E_{p_0}\log c_\theta - \mathbb E_{p_1}\log v_\theta`.

    ``sample_p0(key, n)`` and ``sample_p1(key, n)`` give fresh minibatches (samplers, as in
    the benchmark). ``r_k`` start at ``init_points`` (e.g. target samples) or at zero plus
    noise; ``S_k = init_scale * I``; ``alpha_k`` uniform. The step size follows a cosine
    decay from ``learning_rate`` to ``final_lr_fraction * learning_rate`` (``1.0``: constant,
    as in the paper's code); the late small steps remove the minibatch jitter of the
    parameters. The loop is the shared :func:`thermo.fit.fit` (one compiled ``lax.scan``;
    a repeated call with the same samplers and settings reuses the compilation).
    """
    dim = check_count(dim, "dim")
    check_positive(eps, "eps")
    n_components = check_count(n_components, "n_components")
    n_steps = check_count(n_steps, "n_steps")
    batch_size = check_count(batch_size, "batch_size")
    check_positive(learning_rate, "learning_rate")
    check_real(final_lr_fraction, "final_lr_fraction", low=0.0, high=1.0)
    check_positive(init_scale, "init_scale")
    start = time.perf_counter()
    k_init, k_train = jr.split(key)
    if init_points is None:
        init_points = jr.normal(k_init, (n_components, dim))
    if init_points.shape != (n_components, dim):
        raise ValueError(
            f"init_points must have shape ({n_components}, {dim}), got {init_points.shape}"
        )
    model = LightSB(
        log_alpha=jnp.zeros((n_components,), init_points.dtype),
        r=jnp.asarray(init_points),
        chol_raw=jnp.zeros((n_components, dim, dim), init_points.dtype)
        + 0.5 * jnp.log(init_scale) * jnp.eye(dim, dtype=init_points.dtype)[None],
        eps=float(eps),
    )
    result = fit(
        k_train,
        model,
        _lightsb_loss,
        _lightsb_optimizer(float(learning_rate), int(n_steps), float(final_lr_fraction)),
        int(n_steps),
        args=(sample_p0, sample_p1, int(batch_size)),
        step_keys_scheme="split",
        steps_per_call=int(n_steps),
    )
    model, losses = result.model, result.losses
    losses.block_until_ready()
    return LightSBResult(model, losses, n_steps, time.perf_counter() - start)
