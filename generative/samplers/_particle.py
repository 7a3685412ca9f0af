r"""iDEM: iterated denoising energy matching for particle systems (Akhound-Sadegh et al. 2024).

An energy-based diffusion sampler: it learns the score of the noised Boltzmann density
:math:`\pi(x)\propto e^{-\beta U(x)}` from energy evaluations only, with no data.

**Forward process.** A variance-exploding diffusion (Song et al. 2021, eq. 9; here
:class:`generative.processes.VE`) on the centre-of-mass-free subspace of the particles
(Hoogeboom et al. 2022): :math:`x_t = x_0 + \sigma_t\varepsilon`, :math:`\varepsilon` a
standard normal projected onto :math:`\{\sum_i x_i = 0\}`, with
:math:`\sigma_t^2 = \sigma(t)^2 - \sigma(0)^2` and a geometric :math:`\sigma(t)`. The
noised target is :math:`p_t = \pi * \mathcal N(0, \sigma_t^2 P)`.

**Monte Carlo score estimator** (Akhound-Sadegh et al. 2024, eqs. 8-9). Since
:math:`p_t(x) \propto \mathbb E_{\varepsilon}[e^{-\beta U(x + \sigma_t\varepsilon)}]`,

.. math:: S_K(x, t) = \nabla_x\log\sum_{k=1}^K e^{-\beta U(x + \sigma_t\varepsilon_k)}
          = \sum_k \tilde w_k\,\big(-\beta\nabla U(x + \sigma_t\varepsilon_k)\big),
          \qquad \tilde w_k = \operatorname{softmax}_k\big(-\beta U(x+\sigma_t\varepsilon_k)\big),

a self-normalised importance-sampling estimate of :math:`\nabla\log p_t(x)`, consistent
as :math:`K\to\infty` (bias and variance :math:`O(1/K)`). Its delta-method standard
error is :math:`\mathrm{se}_j^2 = \sum_k \tilde w_k^2 (g_{kj} - S_j)^2` (Owen 2013,
"Monte Carlo theory", eq. 9.8), :math:`g_k = -\beta\nabla U(x+\sigma_t\varepsilon_k)`.
For an E(n)-invariant :math:`U` the estimator is E(n)-equivariant:
:math:`S_K(Rx; R\varepsilon) = R\,S_K(x;\varepsilon)` and the same for permutations.

**Training** (Akhound-Sadegh et al. 2024, Algorithm 1). An outer loop draws samples
from the current model by the reverse chain and pushes them into a first-in-first-out
replay buffer; an inner loop regresses the network on buffer points :math:`x_0` noised to
:math:`x_t`, :math:`t\sim\mathcal U[t_{\min}, T]`, with the target :math:`S_K(x_t, t)`.
The network is the project's EGNN in the noise-prediction parameterisation
(:class:`generative.score.ScoreModel`, :math:`s_\theta = -\varepsilon_\theta/\sigma_t`),
so the loss

.. math:: \mathcal L = \mathbb E\,\big\|\varepsilon_\theta(t, x_t) + \sigma_t\,
          \mathrm{clip}(S_K(x_t,t))\big\|^2 = \mathbb E\,\sigma_t^2\,\|s_\theta - S_K\|^2

is iDEM's loss with the weighting :math:`\lambda(t) = \sigma_t^2`. The target is
clipped to a maximal norm (iDEM clips the estimator, App. C) in noise units.

**Samples and their path log-weights.** Samples come from the model's ancestral reverse
chain on the grid :math:`0 = t_0 < \dots < t_N = T` (the SMLD ancestral sampler, Song et
al. 2021, eq. 47; :func:`generative.thermodynamics.ancestral_reverse_kernel`), started
from the prior :math:`\pi_T`. Against the target path measure "Boltzmann sample, then
the exact forward noising kernels :math:`F_k`", each path carries the log
Radon–Nikodym weight

.. math:: \log w = -\beta U(x_0) - \log\pi_T(x_N)
          + \sum_{k<N}\big[\log F_k(x_{k+1}\mid x_k) - \log B_k(x_k\mid x_{k+1})\big],

with :math:`\mathbb E_Q[w] = Z = \int_{\mathrm{COM}=0} e^{-\beta U}` exactly for any
score (Crooks 1999; the DDS/PIS path weights of Vargas et al. 2023 and Zhang & Chen 2022
in discrete time). All densities are Lebesgue densities in orthonormal coordinates of the
:math:`(n-1)D`-dimensional subspace, which is the convention of :func:`thermo.mcmc.ais`.
``log Z`` then comes from :func:`thermo.estimators.estimate_log_z`. The alternative
:func:`probability_flow_log_weights` draws samples by the probability-flow ODE and weighs
them by :math:`-\beta U(x) - \log q_\theta(x)` with the exact ODE likelihood
(:func:`generative.likelihood.log_likelihood`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, Float

from thermo._typing import PRNGKey, ScalarLike
from thermo.fit import fit_steps
from thermo.paths import PathEnsemble
from thermo.systems import remove_com

from ..likelihood import log_likelihood
from ..networks import EGNN
from ..processes import VE, AbstractDiffusionProcess
from ..sampling import sample_probability_flow
from ..score import ScoreModel
from ..thermodynamics import reverse_chain

__all__ = [
    "MCScore",
    "mc_score",
    "mc_score_estimate",
    "idem_loss",
    "IDEMSettings",
    "PRESETS",
    "IDEMState",
    "IDEMResult",
    "init_idem",
    "idem_outer_step",
    "n_train_energy_evals",
    "train_idem",
    "sample_idem",
    "reverse_path_log_weights",
    "probability_flow_log_weights",
    "run_idem",
]

EnergyFn = Callable[[Float[Array, " d"]], Float[Array, ""]]


# --------------------------------------------------------------------------------------
# The Monte Carlo score estimator
# --------------------------------------------------------------------------------------
class MCScore(NamedTuple):
    """Output of :func:`mc_score`.

    Attributes:
        score: ``(d,)`` the estimate :math:`S_K(x, t)`.
        std_err: ``(d,)`` its delta-method standard error, per coordinate.
        ess: Kish's effective number of the ``K`` importance samples.
    """

    score: Float[Array, " d"]
    std_err: Float[Array, " d"]
    ess: Float[Array, ""]


def mc_score(
    energy_fn: EnergyFn,
    x: Float[Array, " d"],
    sigma: ScalarLike,
    eps: Float[Array, "K d"],
    *,
    beta: float = 1.0,
    particles: tuple[int, int] | None = None,
) -> MCScore:
    r"""iDEM's Monte Carlo score :math:`S_K(x,t)=\nabla_x\log\sum_k e^{-\beta U(x+\sigma\varepsilon_k)}`.

    Given the noise draws ``eps`` explicitly (module doc; Akhound-Sadegh et al. 2024,
    eq. 9), :math:`S_K = \sum_k\tilde w_k g_k` with :math:`g_k = -\beta\nabla U(x +
    \sigma\varepsilon_k)` and self-normalised weights :math:`\tilde w_k\propto
    e^{-\beta U(x+\sigma\varepsilon_k)}`. Deterministic in ``eps``, which makes the
    equivariance :math:`S_K(Rx;R\varepsilon) = R S_K(x;\varepsilon)` testable exactly.

    Args:
        energy_fn: :math:`U`, ``(d,) -> ()``.
        x: ``(d,)`` the noised point :math:`x_t`.
        sigma: :math:`\sigma_t`, the marginal noise std at ``t``.
        eps: ``(K, d)`` standard-normal draws (projected onto the CoM-free subspace for
            particles; see :func:`mc_score_estimate`).
        beta: inverse temperature.
        particles: ``(n_particles, spatial_dim)``; the gradients are projected onto the
            CoM-free subspace.

    Returns:
        :class:`MCScore` ``(score (d,), std_err (d,), ess ())``.
    """
    y = x[None, :] + sigma * eps
    energies, grads = jax.vmap(jax.value_and_grad(energy_fn))(y)
    log_w = -beta * energies
    log_w = jnp.where(jnp.isfinite(log_w), log_w, -jnp.inf)
    w = jax.nn.softmax(log_w)
    g = -beta * jnp.where(jnp.isfinite(grads), grads, 0.0)
    if particles is not None:
        g = remove_com(g, *particles)
    score = w @ g
    std_err = jnp.sqrt(jnp.sum(w[:, None] ** 2 * (g - score[None, :]) ** 2, axis=0))
    return MCScore(score, std_err, 1.0 / jnp.sum(w**2))


def mc_score_estimate(
    key: PRNGKey,
    energy_fn: EnergyFn,
    x: Float[Array, " d"],
    sigma: ScalarLike,
    n_samples: int,
    *,
    beta: float = 1.0,
    particles: tuple[int, int] | None = None,
) -> MCScore:
    r""":func:`mc_score` with ``n_samples`` fresh draws :math:`\varepsilon_k` (CoM-free for particles).

    ``n_samples`` is :math:`K`; the call costs :math:`K` energy-and-gradient evaluations.
    """
    eps = jr.normal(key, (int(n_samples), x.shape[-1]), x.dtype)
    if particles is not None:
        eps = remove_com(eps, *particles)
    return mc_score(energy_fn, x, sigma, eps, beta=beta, particles=particles)


def _clip_norm(v: Float[Array, "n d"], max_norm: float | None) -> Float[Array, "n d"]:
    if max_norm is None:
        return v
    norm = jnp.linalg.norm(v, axis=-1, keepdims=True)
    return v * jnp.minimum(1.0, max_norm / jnp.maximum(norm, 1e-30))


def idem_loss(
    key: PRNGKey,
    model: ScoreModel,
    x0: Float[Array, "batch d"],
    energy_fn: EnergyFn,
    *,
    beta: float,
    n_mc: int,
    t_min: float,
    max_target_norm: float | None = None,
) -> Float[Array, ""]:
    r"""iDEM's regression loss on buffer points ``x0`` (module doc).

    :math:`t\sim\mathcal U[t_{\min}, T]`, :math:`x_t = x_0 + \sigma_t\varepsilon`
    (CoM-free :math:`\varepsilon`), and
    :math:`\mathcal L = \operatorname{mean}\|\varepsilon_\theta(t,x_t) +
    \operatorname{clip}(\sigma_t S_K(x_t,t))\|^2` with :math:`K` = ``n_mc`` and the
    target held fixed (no gradient through :math:`S_K`). ``max_target_norm`` clips
    :math:`\|\sigma_t S_K\|` (noise units; a perfect target has norm about
    :math:`\sqrt{(n-1)D}`). Costs ``batch * n_mc`` energy-and-gradient evaluations.
    """
    process = model.process
    particles = process.particles
    n, d = x0.shape
    k_t, k_eps, k_mc = jr.split(key, 3)
    t = jr.uniform(k_t, (n,), x0.dtype, minval=t_min, maxval=process.t1)
    _, std = jax.vmap(process.marginal_coefficients)(t)
    xt = x0 + std[:, None] * process.noise(k_eps, x0.shape)
    target = jax.vmap(
        lambda k, x, s: (
            mc_score_estimate(k, energy_fn, x, s, n_mc, beta=beta, particles=particles).score
        )
    )(jr.split(k_mc, n), xt, std)
    target = jax.lax.stop_gradient(_clip_norm(-std[:, None] * target, max_target_norm))
    pred = jax.vmap(model.noise_prediction)(t, xt)
    return jnp.mean(jnp.sum((pred - target) ** 2, axis=-1))


# --------------------------------------------------------------------------------------
# Sampling with path log-weights
# --------------------------------------------------------------------------------------
def _check_population(n_samples: int, n_steps: int) -> None:
    if int(n_samples) <= 0 or int(n_steps) <= 0:
        raise ValueError(f"n_samples and n_steps must be positive, got {n_samples}, {n_steps}")


def reverse_path_log_weights(
    key: PRNGKey,
    process: AbstractDiffusionProcess,
    score_fn: Callable,
    energy_fn: EnergyFn,
    n_samples: int,
    dim: int,
    *,
    beta: float = 1.0,
    n_steps: int = 100,
) -> PathEnsemble:
    r"""Samples of the model's ancestral reverse chain and their path log-weights (module doc).

    .. math:: \log w = -\beta U(x_0) - \log\pi_T(x_N)
              + \sum_{k<N}\big[\log F_k(x_{k+1}\mid x_k) - \log B_k(x_k\mid x_{k+1})\big]

    on the uniform grid :math:`t_k = kT/N`; :math:`F_k` the exact forward kernels
    (``process.transition``), :math:`B_k` the model's ancestral kernels
    (:func:`generative.thermodynamics.ancestral_reverse_kernel`), :math:`\pi_T` the
    prior. :math:`\mathbb E[w] = Z` for any score, so
    ``estimate_log_z(result.log_weights)`` estimates :math:`\log Z` (on the CoM-free
    subspace for particle processes). Jit-compatible (one ``lax.scan``).

    Args:
        key: PRNG key.
        process: the forward process (``particles`` set for particle systems).
        score_fn: ``(t, x, args) -> (d,)``, e.g. a trained :class:`ScoreModel`.
        energy_fn: :math:`U`, ``(d,) -> ()``.
        n_samples, dim: population size and flat dimension ``d``.
        beta: inverse temperature.
        n_steps: :math:`N`.

    Returns:
        :class:`thermo.paths.PathEnsemble`: ``samples`` :math:`x_0` ``(n, d)``,
        ``log_weights`` ``(n,)``, ``n_energy_evals = n_samples`` (one energy per path;
        the score network is not counted).
    """
    _check_population(n_samples, n_steps)
    dtype = jnp.result_type(float)
    times = jnp.linspace(0.0, process.t1, int(n_steps) + 1, dtype=dtype)
    k_prior, k_path = jr.split(key)
    x_n = process.sample_prior(k_prior, (int(n_samples), int(dim))).astype(dtype)

    def one(key, x_n):
        x0, log_w = reverse_chain(key, process, score_fn, x_n, times)
        return x0, log_w - beta * energy_fn(x0)

    x0, log_w = jax.vmap(one)(jr.split(k_path, int(n_samples)), x_n)
    return PathEnsemble(x0, log_w, int(n_samples))


def probability_flow_log_weights(
    key: PRNGKey,
    process: AbstractDiffusionProcess,
    score_fn: Callable,
    energy_fn: EnergyFn,
    n_samples: int,
    dim: int,
    *,
    beta: float = 1.0,
    t_min: float = 1e-3,
    rtol: float = 1e-4,
    atol: float = 1e-4,
) -> PathEnsemble:
    r"""Probability-flow ODE samples weighted by :math:`\log w = -\beta U(x) - \log q_\theta(x)`.

    Samples: :func:`generative.sampling.sample_probability_flow` from the prior at
    :math:`T` to :math:`t_{\min}`; densities: the exact-trace ODE likelihood
    :func:`generative.likelihood.log_likelihood` (Chen et al. 2018; Song et al. 2021,
    App. D.2) on the CoM-free subspace. :math:`\mathbb E[w] = Z` up to the ODE solver's
    error (the density of the solved flow is the one evaluated). Exact traces cost
    ``d`` Jacobian-vector products per step: meant for small systems (DW-4).

    Returns:
        :class:`thermo.paths.PathEnsemble` with ``n_energy_evals = n_samples``.
    """
    _check_population(n_samples, 1)
    k_sample, _ = jr.split(key)
    x = sample_probability_flow(
        k_sample, process, score_fn, int(n_samples), int(dim), t_min=t_min, rtol=rtol, atol=atol
    )
    x = process.project(x)
    ll = log_likelihood(
        None, process, score_fn, x, t_min=t_min, trace="exact", rtol=rtol, atol=atol
    )
    log_w = -beta * jax.vmap(energy_fn)(x) - ll.log_prob
    return PathEnsemble(x, log_w, int(n_samples))


# --------------------------------------------------------------------------------------
# The iDEM training loop
# --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class IDEMSettings:
    """Settings of an iDEM run (defaults: a CPU-sized DW-4 run).

    Attributes:
        sigma_min, sigma_max: the geometric VE schedule (iDEM uses :math:`\\sigma_{\\max}`
            of 3 for DW-4 and 2 for LJ-13, App. C).
        hidden, n_layers: EGNN width and depth.
        n_outer: outer iterations (buffer refreshes).
        n_inner: Adam steps per outer iteration.
        batch_size: buffer points per Adam step.
        n_mc: :math:`K`, importance samples of the score estimator.
        buffer_size: FIFO replay buffer capacity.
        n_new: samples the model adds to the buffer per outer iteration.
        n_sample_steps: steps of the ancestral reverse chain.
        learning_rate: Adam's learning rate (gradients clipped to norm 1).
        t_min: smallest training time.
        max_target_norm: clip of :math:`\\|\\sigma_t S_K\\|` (``None``: no clip).
    """

    sigma_min: float = 0.01
    sigma_max: float = 3.0
    hidden: int = 32
    n_layers: int = 3
    n_outer: int = 20
    n_inner: int = 100
    batch_size: int = 128
    n_mc: int = 256
    buffer_size: int = 4096
    n_new: int = 512
    n_sample_steps: int = 100
    learning_rate: float = 1e-3
    t_min: float = 1e-3
    max_target_norm: float | None = 10.0

    @classmethod
    def for_system(cls, name: str, **overrides) -> IDEMSettings:
        """The CPU-sized defaults for ``"dw4"`` or ``"lj13"`` (see :data:`PRESETS`)."""
        if name not in PRESETS:
            raise ValueError(f"no iDEM preset for {name!r}; known: {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})


#: CPU-sized settings per system (iDEM App. C: sigma_max 3 for DW-4, 2 for LJ-13); their
#: wall times are in the outputs of experiments/particle_sampler.py.
PRESETS: dict[str, dict] = {
    "dw4": {
        "sigma_max": 3.0,
        "n_outer": 25,
        "n_mc": 256,
        "batch_size": 128,
        "max_target_norm": 10.0,
    },
    "lj13": {
        "sigma_max": 2.0,
        "n_outer": 12,
        "n_mc": 128,
        "batch_size": 64,
        "max_target_norm": 20.0,
    },
}


class IDEMState(NamedTuple):
    """The model and replay buffer between outer iterations (a pytree).

    Attributes:
        model: the :class:`ScoreModel` (EGNN noise predictor on a VE process).
        opt_state: Adam's state.
        buffer: ``(buffer_size, d)`` replay buffer (FIFO).
        n_filled: ``()`` int, valid rows of ``buffer``.
        cursor: ``()`` int, next row to overwrite.
    """

    model: ScoreModel
    opt_state: optax.OptState
    buffer: Float[Array, "m d"]
    n_filled: Array
    cursor: Array


class IDEMResult(NamedTuple):
    """Output of :func:`train_idem` / :func:`run_idem`.

    Attributes:
        paths: final samples and their path log-weights (:func:`run_idem`; ``None`` from
            :func:`train_idem`).
        model: the trained score model.
        losses: ``(n_outer * n_inner,)`` training losses.
        n_train_energy_evals: energy(-and-gradient) evaluations spent in training.
        n_energy_evals: training + final sampling evaluations.
        train_seconds, sample_seconds: wall times.
        state: the final :class:`IDEMState` (buffer included).
    """

    paths: PathEnsemble | None
    model: ScoreModel
    losses: Float[Array, " n"]
    n_train_energy_evals: int
    n_energy_evals: int
    train_seconds: float
    sample_seconds: float
    state: IDEMState


def _optimizer(settings: IDEMSettings) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adam(settings.learning_rate))


def _check_settings(settings: IDEMSettings) -> None:
    if min(settings.n_outer, settings.n_inner, settings.batch_size, settings.n_mc) <= 0:
        raise ValueError("n_outer, n_inner, batch_size and n_mc must be positive")
    if not 0 < settings.n_new <= settings.buffer_size:
        raise ValueError(
            f"need 0 < n_new ({settings.n_new}) <= buffer_size ({settings.buffer_size})"
        )


def init_idem(
    key: PRNGKey, n_particles: int, spatial_dim: int, settings: IDEMSettings
) -> IDEMState:
    """A fresh EGNN score model on a CoM-free VE process, Adam state and an empty buffer."""
    _check_settings(settings)
    process = VE(
        sigma_min=settings.sigma_min,
        sigma_max=settings.sigma_max,
        particles=(int(n_particles), int(spatial_dim)),
    )
    net = EGNN(n_particles, spatial_dim, key, hidden=settings.hidden, n_layers=settings.n_layers)
    model = ScoreModel(net, process)
    opt_state = _optimizer(settings).init(eqx.filter(model, eqx.is_inexact_array))
    d = int(n_particles) * int(spatial_dim)
    buffer = jnp.zeros((int(settings.buffer_size), d), jnp.result_type(float))
    zero = jnp.zeros((), jnp.int32)
    return IDEMState(model, opt_state, buffer, zero, zero)


@eqx.filter_jit
def _sample_paths(key, model, energy_fn, beta, n, dim, n_steps):
    return reverse_path_log_weights(
        key, model.process, model, energy_fn, n, dim, beta=beta, n_steps=n_steps
    )


def _push(state: IDEMState, new: Float[Array, "k d"]) -> IDEMState:
    """FIFO insert of the finite rows of ``new`` (non-finite rows are dropped)."""
    m = state.buffer.shape[0]
    valid = jnp.all(jnp.isfinite(new), axis=1)
    offset = (jnp.cumsum(valid) - 1).astype(state.cursor.dtype)
    rows = jnp.where(valid, (state.cursor + offset) % m, m)  # row m: dropped
    n_valid = jnp.sum(valid).astype(jnp.int32)
    buffer = state.buffer.at[rows].set(jnp.where(valid[:, None], new, 0.0), mode="drop")
    return state._replace(
        buffer=buffer,
        cursor=(state.cursor + n_valid) % m,
        n_filled=jnp.minimum(m, state.n_filled + n_valid),
    )


def idem_outer_step(
    key: PRNGKey,
    state: IDEMState,
    energy_fn: EnergyFn,
    *,
    beta: float,
    settings: IDEMSettings,
) -> tuple[IDEMState, Float[Array, " n_inner"]]:
    r"""One outer iteration of iDEM (Akhound-Sadegh et al. 2024, Algorithm 1).

    Draws ``settings.n_new`` samples of the current model by the ancestral reverse chain,
    pushes the finite ones into the FIFO buffer, then takes ``settings.n_inner`` Adam
    steps on :func:`idem_loss` over buffer points drawn uniformly (the shared
    :func:`thermo.fit.fit_steps`, one ``lax.scan``).
    Jit-compatible; :func:`train_idem` jits it once.

    Returns:
        The new state and the ``(n_inner,)`` losses.
    """
    k_sample, k_inner = jr.split(key)
    model = state.model
    d = state.buffer.shape[1]
    new = reverse_path_log_weights(
        k_sample,
        model.process,
        model,
        energy_fn,
        settings.n_new,
        d,
        beta=beta,
        n_steps=settings.n_sample_steps,
    ).samples
    state = _push(state, jax.lax.stop_gradient(new))
    state = eqx.error_if(state, state.n_filled == 0, "iDEM: the model produced no finite samples")
    optimizer = _optimizer(settings)

    def loss_fn(model, k, args):
        buffer, n_filled = args
        k_idx, k_loss = jr.split(k)
        idx = jr.randint(k_idx, (settings.batch_size,), 0, n_filled)
        return idem_loss(
            k_loss,
            model,
            buffer[idx],
            energy_fn,
            beta=beta,
            n_mc=settings.n_mc,
            t_min=settings.t_min,
            max_target_norm=settings.max_target_norm,
        )

    model, opt_state, losses, _ = fit_steps(
        state.model,
        state.opt_state,
        jr.split(k_inner, settings.n_inner),
        loss_fn,
        optimizer,
        (state.buffer, state.n_filled),
    )
    return state._replace(model=model, opt_state=opt_state), losses


@eqx.filter_jit
def _outer_step_jit(key, state, energy_fn, beta, settings):
    return idem_outer_step(key, state, energy_fn, beta=beta, settings=settings)


def n_train_energy_evals(settings: IDEMSettings) -> int:
    """Energy(-and-gradient) evaluations of :func:`train_idem`.

    ``n_outer * (n_inner * batch_size * n_mc + n_new)``: :math:`K` per target in the
    inner loop, and one energy per generated path (its log-weight).
    """
    return settings.n_outer * (
        settings.n_inner * settings.batch_size * settings.n_mc + settings.n_new
    )


def train_idem(
    key: PRNGKey,
    energy_fn: EnergyFn,
    n_particles: int,
    spatial_dim: int,
    *,
    beta: float = 1.0,
    settings: IDEMSettings = IDEMSettings(),
    progress: bool = False,
) -> IDEMResult:
    r"""iDEM's outer/inner loop (Akhound-Sadegh et al. 2024, Algorithm 1; module doc).

    ``settings.n_outer`` calls of :func:`idem_outer_step` (one compile) with the keys
    ``fold_in(k, i)``; the first draws from the untrained model, iDEM's initialisation
    of the buffer. A resumable driver can run the same steps (same keys, same result).

    Args:
        key: PRNG key.
        energy_fn: :math:`U`, ``(n_particles * spatial_dim,) -> ()``, E(n)-invariant.
        n_particles, spatial_dim: the particle layout of the flat coordinates.
        beta: inverse temperature.
        settings: :class:`IDEMSettings`.
        progress: show a tqdm bar over outer iterations.

    Returns:
        :class:`IDEMResult` with ``paths=None``.
    """
    _check_settings(settings)
    k_init, k_loop = jr.split(key)
    state = init_idem(k_init, n_particles, spatial_dim, settings)
    losses = []
    iterator = range(settings.n_outer)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="iDEM", unit="outer")
    t_start = time.perf_counter()
    for i in iterator:
        state, chunk = _outer_step_jit(jr.fold_in(k_loop, i), state, energy_fn, beta, settings)
        losses.append(chunk)
        if progress:
            iterator.set_postfix(loss=f"{float(jnp.mean(chunk)):.3g}")
    losses = jax.block_until_ready(jnp.concatenate(losses))
    train_seconds = time.perf_counter() - t_start
    n_train = n_train_energy_evals(settings)
    return IDEMResult(None, state.model, losses, n_train, n_train, train_seconds, 0.0, state)


def sample_idem(
    key: PRNGKey,
    model: ScoreModel,
    system,
    n_samples: int,
    *,
    n_steps: int = 100,
    weights: str = "path",
    t_min: float = 1e-3,
) -> PathEnsemble:
    """Weighted samples of a trained iDEM model on ``system`` (path or ODE weights).

    ``weights="path"``: :func:`reverse_path_log_weights` with ``n_steps``;
    ``weights="ode"``: :func:`probability_flow_log_weights` from ``t_min``.
    """
    if weights not in ("path", "ode"):
        raise ValueError(f"weights must be 'path' or 'ode', got {weights!r}")
    beta = float(system.beta)
    d = int(system.n_particles) * int(system.spatial_dim)
    if weights == "path":
        return _sample_paths(key, model, system.energy, beta, int(n_samples), d, int(n_steps))
    return probability_flow_log_weights(
        key, model.process, model, system.energy, int(n_samples), d, beta=beta, t_min=t_min
    )


def run_idem(
    key: PRNGKey,
    system,
    n_samples: int,
    *,
    settings: IDEMSettings = IDEMSettings(),
    weights: str = "path",
    progress: bool = False,
) -> IDEMResult:
    r"""Train iDEM on a :class:`thermo.systems.ParticleSystem` and draw weighted samples.

    The one call a benchmark row needs: ``result.paths`` is a
    :class:`thermo.paths.PathEnsemble` whose ``n_energy_evals`` counts training and
    sampling, and ``estimate_log_z(result.paths.log_weights)`` estimates
    :math:`\log\int_{\mathrm{COM}=0}e^{-\beta U}` (the :func:`thermo.mcmc.ais` convention).

    Args:
        key: PRNG key.
        system: a particle system (``energy``, ``beta``, ``n_particles``, ``spatial_dim``).
        n_samples: final samples.
        settings: :class:`IDEMSettings`.
        weights: ``"path"`` (:func:`reverse_path_log_weights`) or ``"ode"``
            (:func:`probability_flow_log_weights`, exact trace).
        progress: progress bar during training.
    """
    for attr in ("energy", "beta", "n_particles", "spatial_dim"):
        if not hasattr(system, attr):
            raise TypeError(f"run_idem needs a particle system with .{attr}")
    if weights not in ("path", "ode"):
        raise ValueError(f"weights must be 'path' or 'ode', got {weights!r}")
    k_train, k_sample = jr.split(key)
    trained = train_idem(
        k_train,
        system.energy,
        int(system.n_particles),
        int(system.spatial_dim),
        beta=float(system.beta),
        settings=settings,
        progress=progress,
    )
    t_start = time.perf_counter()
    paths = sample_idem(
        k_sample,
        trained.model,
        system,
        n_samples,
        n_steps=settings.n_sample_steps,
        weights=weights,
        t_min=settings.t_min,
    )
    paths = jax.block_until_ready(paths)
    sample_seconds = time.perf_counter() - t_start
    total = trained.n_train_energy_evals + int(paths.n_energy_evals)
    paths = PathEnsemble(paths.samples, paths.log_weights, total)
    return trained._replace(paths=paths, n_energy_evals=total, sample_seconds=sample_seconds)
