r"""Shared machinery of the learned diffusion samplers: target, control, losses, training.

Every sampler here is a controlled non-equilibrium process written as a
:class:`thermo.kernel.Kernel` and run by the one driver
(:func:`thermo.integrate.run_population` around :func:`thermo.kernel.run`). Each step
accumulates the exact discrete-time log Radon–Nikodym increment
:math:`\log B_k(x_k \mid x_{k+1}) - \log F_k(x_{k+1} \mid x_k)` of a backward (target)
path measure against the forward (sampling) one; the boundary terms are added at the
end, so the path log-weight

.. math:: \log w = \log\tilde\pi(x_K) - \log p_{\rm start}(x_0)
          + \sum_k \log\frac{B_k(x_k\mid x_{k+1})}{F_k(x_{k+1}\mid x_k)}

satisfies :math:`\mathbb E_F[e^{\log w}] = Z` *for any control and any step size*
(Crooks 1999; Neal 2001; Vargas, Grathwohl & Doucet 2023). The result is a
:class:`thermo.paths.PathEnsemble`, and ``log Z`` comes from
:func:`thermo.estimators.estimate_log_z` (Jarzynski's estimator), which also gives the
Kish ESS.

Training minimises either

* the **relative entropy** (reverse KL between path measures, Zhang & Chen 2022),
  :math:`\mathcal L_{\rm KL}(\theta) = \mathbb E_{F_\theta}[-\log w]
  = D_{\rm KL}(F_\theta\,\|\,B) - \log Z \ge -\log Z`, by the reparameterisation
  gradient through the simulated paths; or
* the **log-variance loss** (Richter et al. 2020; Nüsken & Richter 2021),
  :math:`\mathcal L_{\rm LV}(\theta) = \operatorname{Var}_{\bar F}[\log w_\theta]`,
  evaluated on paths drawn from a detached copy :math:`\bar F` of the current process
  (``stop_gradient`` on the positions), which is zero exactly at the optimal control and
  needs no gradient through the dynamics or the energy.

Particle systems (``n_particles`` set) are translation invariant; the whole process then
lives on the centre-of-mass-free subspace (noise, control and scores are projected; the
Gaussian normalisers use its dimension :math:`(n-1)d`), so ``log Z`` is the COM-free
:math:`\log\int_{\mathrm{COM}=0} e^{-\beta U}`, the convention of :func:`thermo.mcmc.ais`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, Float, Int

from generative.networks import MLP, sinusoidal_embedding
from generative.processes import gaussian_log_prob as gaussian_log_prob
from thermo._checks import check_count, check_positive
from thermo._typing import PRNGKey, ScalarLike
from thermo.fit import fit
from thermo.integrate import run_population
from thermo.kernel import Kernel
from thermo.paths import PathEnsemble
from thermo.systems import remove_com

__all__ = [
    "Target",
    "as_target",
    "Control",
    "AbstractSampler",
    "simulate",
    "sample_paths",
    "kl_loss",
    "log_variance_loss",
    "SamplerTrainResult",
    "train_sampler",
    "gaussian_log_prob",
    "clip_displacement",
]


# --------------------------------------------------------------------------------------
# Target
# --------------------------------------------------------------------------------------


class Target(eqx.Module):
    r"""An unnormalised target :math:`\tilde\pi(x) = e^{-\beta U(x)}` as the samplers see it.

    Attributes:
        logdensity_fn: ``(dim,) -> ()`` :math:`\log\tilde\pi`, differentiable.
        dim: dimension of a flat configuration.
        scale: a natural isotropic scale :math:`s` of the target (``system.prior_scale``),
            the default base / reference standard deviation.
        n_particles, spatial_dim: set for particle systems (COM-free processes).
        log_z: the exact :math:`\log Z` where known (COM-free for particles), else None.
    """

    logdensity_fn: Callable[[Array], Array]
    dim: int = eqx.field(static=True)
    scale: float = eqx.field(static=True)
    n_particles: int | None = eqx.field(static=True, default=None)
    spatial_dim: int | None = eqx.field(static=True, default=None)
    log_z: float | None = eqx.field(static=True, default=None)

    @property
    def sub_dim(self) -> int:
        """Dimension of the space the process lives on: ``(n-1)*d`` for particles."""
        if self.n_particles is None:
            return self.dim
        return (self.n_particles - 1) * self.spatial_dim

    def project(self, v: Float[Array, " dim"]) -> Float[Array, " dim"]:
        r"""Orthogonal projector onto the COM-free subspace (identity for toy systems)."""
        if self.n_particles is None:
            return v
        return remove_com(v, self.n_particles, self.spatial_dim)

    def value_and_score(self, x: Float[Array, " dim"]) -> tuple[Array, Array]:
        r""":math:`(\log\tilde\pi(x), P\nabla\log\tilde\pi(x))` — one energy-and-gradient
        evaluation."""
        value, grad = jax.value_and_grad(self.logdensity_fn)(x)
        return value, self.project(grad)


def as_target(
    system_or_log_prob: Any,
    *,
    dim: int | None = None,
    scale: float | None = None,
    check_key: PRNGKey | None = None,
) -> Target:
    r"""Wrap a :mod:`thermo.systems` system (or a bare ``log_prob(x)``) as a :class:`Target`.

    The log density is checked at a few draws of :math:`\mathcal N(0, s^2 I)` (projected
    for particles): a target that is not finite where the samplers start fails here with
    a clear message, instead of as a NaN loss later.

    Args:
        system_or_log_prob: a system (uses ``log_prob``, ``dim``, ``prior_scale``,
            ``log_z``, ``n_particles``, ``spatial_dim``) or a callable ``(dim,) -> ()``.
        dim: required with a bare callable.
        scale: overrides ``prior_scale`` (default 1 for a bare callable).
        check_key: key of the check draws (default ``PRNGKey(0)``; no randomness leaks
            into the samplers).

    Raises:
        ValueError: missing ``dim``, non-positive scale, or a non-finite log density.
    """
    if isinstance(system_or_log_prob, Target):
        return system_or_log_prob
    if hasattr(system_or_log_prob, "log_prob") and hasattr(system_or_log_prob, "dim"):
        system = system_or_log_prob
        n_p = getattr(system, "n_particles", None)
        target = Target(
            logdensity_fn=system.log_prob,
            dim=int(system.dim),
            scale=float(system.prior_scale if scale is None else scale),
            n_particles=None if n_p is None else int(n_p),
            spatial_dim=None if n_p is None else int(system.spatial_dim),
            log_z=None if system.log_z is None else float(system.log_z),
        )
    elif callable(system_or_log_prob):
        if dim is None:
            raise ValueError("as_target: pass dim= with a bare log_prob function")
        target = Target(system_or_log_prob, int(dim), float(1.0 if scale is None else scale))
    else:
        raise TypeError(
            "as_target expects a thermo.systems system or a log_prob(x) callable, "
            f"got {type(system_or_log_prob).__name__}"
        )
    if target.dim < 1:
        raise ValueError(f"target dim must be >= 1, got {target.dim}")
    if not (target.scale > 0 and math.isfinite(target.scale)):
        raise ValueError(f"target scale must be positive and finite, got {target.scale}")
    key = jr.PRNGKey(0) if check_key is None else check_key
    x = target.scale * jr.normal(key, (8, target.dim))
    values = jax.vmap(lambda v: target.logdensity_fn(target.project(v)))(x)
    if values.shape != (8,):
        raise ValueError(
            f"log_prob must map a ({target.dim},) configuration to a scalar; "
            f"got per-sample shape {values.shape[1:]}"
        )
    if not bool(jnp.all(jnp.isfinite(values))):
        raise ValueError(
            "the target log density is not finite at draws of the N(0, scale^2) start "
            f"population (values {np.asarray(values)}); check the energy or the scale"
        )
    return target


def _check_dim(target: Any, dim: int | None, who: str) -> None:
    """Refuse a control whose dimension differs from the target's (when both are known)."""
    target_dim = getattr(target, "dim", None)
    if dim is not None and target_dim is not None and dim != int(target_dim):
        raise ValueError(f"{who}: control has dim {dim} but the target has dim {target_dim}")


def clip_displacement(drift: Float[Array, " dim"], step: ScalarLike, max_displacement):
    r"""Rescale ``drift`` so that its displacement :math:`|{\rm step}\cdot{\rm drift}|` is at most
    ``max_displacement`` (no-op for ``None``).

    A safety net against explicit-Euler blow-up on stiff targets (e.g. the funnel's neck).
    The path weights stay exact: they only need the forward and backward kernels' means,
    whatever drift produced them.
    """
    if max_displacement is None:
        return drift
    # Double "where": no sqrt or division of a zero norm is ever differentiated (a fresh
    # control is exactly zero), so gradients stay finite.
    sq = jnp.sum(drift * drift) * step**2
    big = sq > max_displacement**2
    safe_sq = jnp.where(big, sq, 1.0)
    return drift * jnp.where(big, max_displacement / jnp.sqrt(safe_sq), 1.0)


# --------------------------------------------------------------------------------------
# Control network
# --------------------------------------------------------------------------------------


class Control(eqx.Module):
    r"""A score-informed control :math:`u_\theta(t, x) = \mathrm{NN}_1(t, x) +
    \mathrm{NN}_2(t)\,\nabla\log\tilde\pi(x)` (the "PIS-Grad" parameterisation, Zhang &
    Chen 2022, Sec. 3.3; DDS uses the same form; the CMCD preset drops the score term,
    ``use_score=False``, since its drift already carries the annealed score).

    ``NN_1`` is :class:`generative.networks.MLP` (sinusoidal time embedding); ``NN_2`` a
    small MLP of the time embedding with a scalar output. Both output layers start at
    zero, so a fresh control is :math:`u \equiv 0`: the uncontrolled reference process
    (PIS, DDS) or plain annealed Langevin (CMCD).

    Args:
        dim: data dimension.
        key: PRNG key of the initial weights.
        width, depth: of ``NN_1`` (``NN_2`` has width ``width // 2``, depth 1).
        embed_dim: time-embedding size (even).
        time_scale: times are divided by it before the embedding (the process duration),
            so the embedding sees :math:`t/T \in [0, 1]`.
        use_score: include the :math:`\mathrm{NN}_2(t)\nabla\log\tilde\pi` term (``False``:
            a plain :math:`\mathrm{NN}_1(t, x)`, as CMCD uses on top of its annealed score).
    """

    net: MLP
    gain: eqx.nn.MLP | None
    embed_dim: int = eqx.field(static=True)
    time_scale: float = eqx.field(static=True)

    def __init__(
        self,
        dim: int,
        key: PRNGKey,
        *,
        width: int = 64,
        depth: int = 2,
        embed_dim: int = 16,
        time_scale: float = 1.0,
        use_score: bool = True,
    ):
        k1, k2 = jr.split(key)
        net = MLP(dim, k1, width=width, depth=depth, embed_dim=embed_dim)
        last = net.mlp.layers[-1]
        net = eqx.tree_at(
            lambda n: (n.mlp.layers[-1].weight, n.mlp.layers[-1].bias),
            net,
            (jnp.zeros_like(last.weight), jnp.zeros_like(last.bias)),
        )
        gain = eqx.nn.MLP(embed_dim, 1, max(width // 2, 2), 1, activation=jax.nn.silu, key=k2)
        gain = eqx.tree_at(
            lambda g: (g.layers[-1].weight, g.layers[-1].bias),
            gain,
            (jnp.zeros_like(gain.layers[-1].weight), jnp.zeros_like(gain.layers[-1].bias)),
        )
        self.net = net
        self.gain = gain if use_score else None
        self.embed_dim = int(embed_dim)
        self.time_scale = float(time_scale)

    @property
    def dim(self) -> int:
        """Data dimension."""
        return self.net.dim

    def __call__(
        self, t: ScalarLike, x: Float[Array, " dim"], score: Float[Array, " dim"]
    ) -> Float[Array, " dim"]:
        """:math:`u_\\theta(t, x)` given :math:`\\nabla\\log\\tilde\\pi(x)` (``score``)."""
        tau = jnp.asarray(t, x.dtype) / self.time_scale
        out = self.net(tau, x)
        if self.gain is None:
            return out
        emb = sinusoidal_embedding(tau, self.embed_dim).astype(x.dtype)
        return out + self.gain(emb)[0] * score


def _control_dim(control: Any) -> int | None:
    return getattr(control, "dim", None)


# --------------------------------------------------------------------------------------
# Sampler protocol, simulation and sampling
# --------------------------------------------------------------------------------------


class SamplerState(NamedTuple):
    r"""State of one path of a learned sampler.

    Attributes:
        position: ``(dim,)`` :math:`x_k`.
        step: ``()`` step counter :math:`k`.
        log_prob: ``()`` :math:`\log\tilde\pi(x_k)`.
        score: ``(dim,)`` :math:`P\nabla\log\tilde\pi(x_k)`.
        log_weight: ``()`` accumulated :math:`\sum \log B - \log F` (plus the start term
            where the sampler puts it there).
        n_energy_evals: ``()`` energy-and-gradient evaluations on this path.
    """

    position: Float[Array, " dim"]
    step: Int[Array, ""]
    log_prob: Float[Array, ""]
    score: Float[Array, " dim"]
    log_weight: Float[Array, ""]
    n_energy_evals: Int[Array, ""]


class SamplerInfo(NamedTuple):
    """Per-step information: this step's :math:`\\log B - \\log F`."""

    log_weight: Float[Array, ""]


class AbstractSampler(eqx.Module):
    """A learned diffusion sampler: a trainable ``control`` and a discretised process.

    Concrete samplers (:class:`~generative.samplers.PIS`,
    :class:`~generative.samplers.DDS`, :class:`~generative.samplers.CMCD`) give the
    start distribution, the one-step :class:`~thermo.kernel.Kernel` that accumulates the
    log-RN increments, and the boundary terms. Every float setting is a static field,
    so only the control's arrays are trained.
    """

    control: eqx.AbstractVar[Any]
    n_steps: eqx.AbstractVar[int]

    def initial_positions(
        self, key: PRNGKey, target: Target, n: int, dtype: Any = None
    ) -> Float[Array, "n dim"]:
        """``(n, dim)`` start positions :math:`x_0`."""
        raise NotImplementedError

    def kernel(self, target: Target, *, detach: bool = False) -> Kernel:
        """One step of the controlled process with log-RN bookkeeping.

        ``detach=True`` stops gradients through the positions (log-variance loss).
        """
        raise NotImplementedError

    def terminal_log_weight(self, target: Target, state: SamplerState) -> Float[Array, ""]:
        """The end-boundary term added to ``state.log_weight`` for one path."""
        raise NotImplementedError


class _FixedDurationSampler(AbstractSampler):
    """A sampler on a fixed horizon :math:`T` = ``duration`` in ``n_steps`` equal steps."""

    duration: eqx.AbstractVar[float]

    @property
    def dt(self) -> float:
        """Step size :math:`\\delta = T/K`."""
        return self.duration / self.n_steps


def _check_settings(
    who: str, n_steps: int, max_displacement: float | None, **positive: float
) -> tuple[int, float | None]:
    """A sampler's validated ``(n_steps, max_displacement)``; every ``positive`` setting must
    be positive and finite (errors name the sampler ``who`` and the setting)."""
    n_steps = check_count(n_steps, f"{who}: n_steps")
    if max_displacement is not None:
        check_positive(max_displacement, f"{who}: max_displacement")
    for name, v in positive.items():
        if not (float(v) > 0 and math.isfinite(float(v))):
            raise ValueError(f"{who}: {name} must be positive and finite, got {v}")
    return int(n_steps), None if max_displacement is None else float(max_displacement)


def _init_state(target: Target, x: Array, log_weight: Array | None = None) -> SamplerState:
    """The state at ``x`` (one energy call) with start log-weight ``log_weight`` (zero if
    ``None``)."""
    if log_weight is None:
        log_weight = jnp.zeros((), x.dtype)
    log_p, score = target.value_and_score(x)
    log_p = eqx.error_if(
        log_p, ~jnp.isfinite(log_p), "target log density is not finite at the start position"
    )
    return SamplerState(
        x, jnp.zeros((), jnp.int32), log_p, score, log_weight, jnp.ones((), jnp.int32)
    )


def _step_inputs(state: SamplerState, detach: bool) -> tuple[Array, Array]:
    """The position and score one step reads, with their gradients stopped when ``detach``."""
    x, score = state.position, state.score
    return jax.lax.stop_gradient((x, score)) if detach else (x, score)


def _advance(
    state: SamplerState, x_next: Array, log_p: Array, score_next: Array, increment: Array
) -> tuple[SamplerState, SamplerInfo]:
    """The state after one step to ``x_next`` (one energy call: ``log_p``, ``score_next``)
    whose log-weight increment is ``increment``."""
    new = SamplerState(
        x_next,
        state.step + 1,
        log_p,
        score_next,
        state.log_weight + increment,
        state.n_energy_evals + 1,
    )
    return new, SamplerInfo(increment)


def simulate(
    key: PRNGKey, sampler: AbstractSampler, target: Target, n: int, *, detach: bool = False
) -> PathEnsemble:
    r"""Run ``n`` paths of ``sampler`` on ``target`` and return their :class:`PathEnsemble`.

    ``key`` is split once into ``(key_init, key_run)``: ``x_0 =
    sampler.initial_positions(key_init, target, n)`` and the paths run with
    :func:`thermo.integrate.run_population` ``(key_run, kernel, states, n_steps)``. (The
    CMCD-equals-AIS test relies on exactly this split.) Not jitted (composable); use
    :func:`sample_paths` for a compiled entry point.

    Returns:
        ``PathEnsemble(samples (n, dim), log_weights (n,), n_energy_evals)`` where
        ``logmeanexp(log_weights)`` estimates :math:`\log Z` of the target.
    """
    _check_dim(target, _control_dim(sampler.control), type(sampler).__name__)
    key_init, key_run = jr.split(key)
    x0 = sampler.initial_positions(key_init, target, n)
    kernel = sampler.kernel(target, detach=detach)
    states = jax.vmap(kernel.init)(x0)
    final, _ = run_population(key_run, kernel, states, sampler.n_steps, observable_fn=None)
    log_w = final.log_weight + jax.vmap(lambda s: sampler.terminal_log_weight(target, s))(final)
    return PathEnsemble(final.position, log_w, jnp.sum(final.n_energy_evals))


@eqx.filter_jit
def _sample_jit(key, sampler, target, n):
    return simulate(key, sampler, target, n)


def sample_paths(key: PRNGKey, sampler: AbstractSampler, target: Any, n: int) -> PathEnsemble:
    r"""Draw ``n`` weighted samples (compiled; one compile per sampler shape and ``n``).

    ``target`` may be a system; it is wrapped by :func:`as_target`. The log Z estimate
    is ``thermo.estimators.estimate_log_z(result.log_weights)``.
    """
    n = check_count(n, "n")
    return _sample_jit(key, sampler, as_target(target), n)


# --------------------------------------------------------------------------------------
# Losses and training
# --------------------------------------------------------------------------------------


def kl_loss(log_weights: Float[Array, " n"]) -> Float[Array, ""]:
    r"""Relative-entropy loss :math:`\mathbb E_F[-\log w] = D_{\rm KL}(F\|B) - \log Z`
    (Zhang & Chen 2022, eq. 12): paths must be reparameterised (not detached)."""
    return -jnp.mean(log_weights)


def log_variance_loss(log_weights: Float[Array, " n"]) -> Float[Array, ""]:
    r"""Log-variance loss :math:`\operatorname{Var}[\log w]` (Richter et al. 2020;
    Nüsken & Richter 2021), on detached paths; zero iff :math:`\log w` is constant,
    i.e. at the optimal control, where :math:`\log w = \log Z` on every path."""
    return jnp.var(log_weights)


_LOSSES = {"kl": (kl_loss, False), "log_variance": (log_variance_loss, True)}


class SamplerTrainResult(NamedTuple):
    """What :func:`train_sampler` returns.

    Attributes:
        sampler: the trained sampler.
        losses: ``(n_iters,)`` loss per iteration.
        n_energy_evals: energy-and-gradient evaluations spent on training (forward
            passes; the backward pass of the KL loss is not counted separately).
    """

    sampler: Any
    losses: Float[Array, " n_iters"]
    n_energy_evals: int


#: Most optimiser steps per compiled chunk of :func:`train_sampler` (progress-bar granularity);
#: the chunk is the largest divisor of ``n_iters`` not above it, so one shape compiles.
_TRAIN_CHUNK = 25


@functools.lru_cache(maxsize=32)
def _optimizer(learning_rate: float, clip_norm: float) -> optax.GradientTransformation:
    # Cached so that the jitted train step (where the optimizer is static) compiles once.
    return optax.chain(optax.clip_by_global_norm(clip_norm), optax.adam(learning_rate))


def _train_loss(sampler, key, args):
    """One iteration's loss on ``batch_size`` fresh paths, and their energy evaluations."""
    target, batch_size, loss = args
    loss_fn, detach = _LOSSES[loss]
    ens = simulate(key, sampler, target, batch_size, detach=detach)
    return loss_fn(ens.log_weights), ens.n_energy_evals


def train_sampler(
    key: PRNGKey,
    sampler: AbstractSampler,
    target: Any,
    *,
    n_iters: int,
    batch_size: int,
    loss: str = "kl",
    learning_rate: float = 1e-3,
    clip_norm: float = 1.0,
    optimizer: optax.GradientTransformation | None = None,
    progress: bool | None = None,
) -> SamplerTrainResult:
    r"""Train a sampler's control with optax (Adam and global-norm clipping by default).

    Each iteration simulates ``batch_size`` fresh paths (a fresh key per iteration,
    split from ``key``), evaluates the loss (``"kl"``: :func:`kl_loss` on
    reparameterised paths; ``"log_variance"``: :func:`log_variance_loss` on detached
    paths) and takes one optimiser step. The step is one ``eqx.filter_jit`` -ed function,
    compiled once per sampler shape and settings.

    Args:
        key: PRNG key.
        sampler: a :class:`AbstractSampler` with a trainable control.
        target: a system or :class:`Target`.
        n_iters: optimiser steps.
        batch_size: paths per step.
        loss: ``"kl"`` or ``"log_variance"``.
        learning_rate, clip_norm: Adam step size and gradient clipping (ignored when an
            ``optimizer`` is given).
        optimizer: any optax transformation.
        progress: tqdm bar (default: on for ``n_iters >= 200``).

    Returns:
        :class:`SamplerTrainResult` ``(sampler, losses, n_energy_evals)``.

    Raises:
        ValueError: unknown loss, bad sizes, a control whose dim differs from the target.
        FloatingPointError: a non-finite loss.
    """
    if loss not in _LOSSES:
        raise ValueError(f"loss must be one of {sorted(_LOSSES)}, got {loss!r}")
    n_iters = check_count(n_iters, "n_iters")
    batch_size = check_count(batch_size, "batch_size", minimum=2)
    check_positive(learning_rate, "learning_rate")
    _check_dim(target, _control_dim(sampler.control), type(sampler).__name__)
    if not jax.tree_util.tree_leaves(eqx.filter(sampler, eqx.is_inexact_array)):
        raise ValueError("the sampler has no trainable arrays (control is None or a function)")
    target = as_target(target)
    if optimizer is None:
        optimizer = _optimizer(float(learning_rate), float(clip_norm))
    if progress is None:
        progress = int(n_iters) >= 200
    result = fit(
        key,
        sampler,
        _train_loss,
        optimizer,
        int(n_iters),
        args=(target, int(batch_size), loss),
        has_aux=True,
        step_keys_scheme="split",
        steps_per_call=max(c for c in range(1, _TRAIN_CHUNK + 1) if int(n_iters) % c == 0),
        progress=progress,
        desc=f"train {type(sampler).__name__}",
    )
    # every iteration simulates the same number of paths, so costs the same
    evals = int(result.aux[0]) * int(n_iters)
    return SamplerTrainResult(result.model, result.losses, evals)
