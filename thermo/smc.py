r"""The one sequential Monte Carlo driver: a population moved through intermediate targets.

A population of :math:`n` particles is moved through targets
:math:`\gamma_0, \gamma_1, \dots, \gamma_K` (Del Moral, Doucet & Jasra 2006). Stage
:math:`k` of :func:`sequential_monte_carlo`, from parameter :math:`\theta_{k-1}` to
:math:`\theta_k`:

1. *Transport* (optional): every particle takes one step of a kernel :math:`M_k`
   (any :class:`thermo.kernel.Kernel`, it need not leave anything invariant: a
   reverse-diffusion step, a learned sampler's step, an exact map).
2. *Reweight*: :math:`\ell^i \mathrel{+}= \log w_k^i`, the incremental log-weight of
   the user's ``log_weight_fn(theta_old, theta_new, old, new)``; for a transport step
   with backward kernel :math:`L_{k-1}`,
   :math:`\log w_k = \log\frac{\gamma_k(x_k) L_{k-1}(x_{k-1}\mid x_k)}
   {\gamma_{k-1}(x_{k-1}) M_k(x_k\mid x_{k-1})}` (Del Moral et al. 2006, eq. 31).
   On a *tempering path* (``tempering_fn`` given, :math:`\theta = \lambda`, no
   transport) the increment is :math:`(\lambda_k - \lambda_{k-1})\,\phi(x)` with
   :math:`\phi = \log\tilde\pi - \log\pi_0` (Neal 2001, eq. 3), and :math:`\lambda_k` may
   be chosen adaptively, by bisection, so that the conditional ESS
   :math:`N(\sum_i W_i w^i)^2/\sum_i W_i (w^i)^2` (Zhou, Johansen & Aston 2016, eq. 3.4)
   equals ``target_ess * N``.
3. *Resample* (systematically, Carpenter, Clifford & Fearnhead 1999, or
   multinomially) when the ESS falls below ``resample_threshold * N``; the log mean
   weight then moves into the accumulated log-normaliser and the weights restart at
   zero. The genealogy error bar of :func:`thermo.estimators.estimate_log_z` (Lee &
   Whiteley 2018) is derived for multinomial resampling, whose offspring are
   conditionally independent; systematic resampling correlates them, and the error bar
   is then not guaranteed (``experiments/fk_calibration.py`` measures both).
4. *Move*: ``n_moves`` sweeps of the kernel ``move_fn(theta_k, tuning)``, which must
   leave :math:`\gamma_k` invariant (MALA, HMC, BAOAB from :mod:`thermo.mcmc`, ...);
   ``tune_fn`` may adapt ``tuning`` (a step size, a preconditioner) from the population
   between sweeps without breaking that invariance (Fearnhead & Taylor 2013).

AIS (Neal 2001) is the tempering path with a fixed schedule and no resampling;
adaptive-tempering SMC (Jasra et al. 2011) the same path with CESS bisection and
resampling; a Feynman–Kac-corrected diffusion sampler the transport form, whose
transport step is the model's reverse step and whose moves are MCMC corrections.

It runs on :func:`thermo.kernel.run`: the stage itself is a :class:`thermo.kernel.Kernel`
whose state holds no key; a fixed schedule is one ``lax.scan`` over stages, the
adaptive one a ``while_loop`` over the same stage function with the keys split from the
caller's key up front. The result is a :class:`thermo.paths.PathEnsemble` (with the
:class:`thermo.paths.Resampling` genealogy when it resamples), its
:func:`thermo.estimators.estimate_log_z`, and per-stage diagnostics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
from jax.scipy.special import logsumexp
from jaxtyping import Array, Bool, Float, Int

from ._typing import PRNGKey
from .estimators import Estimate, estimate_log_z, pareto_k
from .kernel import Kernel, run
from .paths import PathEnsemble, Resampling

__all__ = [
    "SMCDiagnostics",
    "SMCInfo",
    "SMCResult",
    "SMCState",
    "multinomial_resampling",
    "sequential_monte_carlo",
    "systematic_resampling",
]

#: Bisection iterations of adaptive tempering: the step is resolved to 2^-50 of its cap.
_N_BISECTION = 50


def systematic_resampling(key: PRNGKey, log_weights: Float[Array, " n"]) -> Int[Array, " n"]:
    r"""Systematic resampling (Carpenter, Clifford & Fearnhead 1999).

    Draws one :math:`u \sim U[0, 1)` and returns ancestor indices
    :math:`a_i = \min\{j : \sum_{l \le j} W_l > (i + u)/N\}`. Unbiased, lowest-variance
    of the common schemes in practice.

    Args:
        key: PRNG key.
        log_weights: ``(n,)`` unnormalised log-weights.

    Returns:
        ``(n,)`` int ancestor indices.
    """
    n = log_weights.shape[0]
    w = jnp.exp(log_weights - logsumexp(log_weights))
    cdf = jnp.cumsum(w)
    u = (jr.uniform(key, dtype=cdf.dtype) + jnp.arange(n, dtype=cdf.dtype)) / n
    return jnp.clip(jnp.searchsorted(cdf, u, side="right"), 0, n - 1)


def multinomial_resampling(key: PRNGKey, log_weights: Float[Array, " n"]) -> Int[Array, " n"]:
    """Multinomial resampling: ``n`` independent ancestors drawn with probabilities :math:`W`.

    Args:
        key: PRNG key.
        log_weights: ``(n,)`` unnormalised log-weights.

    Returns:
        ``(n,)`` int ancestor indices.
    """
    return jr.categorical(key, log_weights, shape=log_weights.shape)


_RESAMPLERS = {"systematic": systematic_resampling, "multinomial": multinomial_resampling}


class SMCState(NamedTuple):
    """The population between stages (no PRNG key).

    Attributes:
        particles: the move kernel's states, leading axis ``n``.
        log_weights: ``(n,)`` log-weights since the last resampling.
        log_normalizer: ``()`` sum of the log mean weights at past resampling events.
        eve_indices: ``(n,)`` ancestor of each particle at stage 0 (Lee & Whiteley 2018).
        stage: ``()`` stages done.
        param: the current stage parameter :math:`\\theta_k` (:math:`\\lambda` on a
            tempering path).
        tuning: the moves' tuning pytree (``tune_fn``).
        n_resampling: ``()`` resampling events so far.
        max_pareto_k: ``()`` largest Pareto k of the weights at a resampling event.
        n_energy_evals: ``()`` evaluations spent by the transport and move kernels.
    """

    particles: Any
    log_weights: Float[Array, " n"]
    log_normalizer: Float[Array, ""]
    eve_indices: Int[Array, " n"]
    stage: Int[Array, ""]
    param: Any
    tuning: Any
    n_resampling: Int[Array, ""]
    max_pareto_k: Float[Array, ""]
    n_energy_evals: Int[Array, ""]


class SMCInfo(NamedTuple):
    """One stage.

    Attributes:
        param: :math:`\\theta_k` reached.
        ess: Kish ESS of the weights after reweighting, before resampling.
        acceptance_rate: mean acceptance of the moves (NaN without moves or when the
            move's info has no ``acceptance_rate``).
        log_normalizer_increment: :math:`\\log\\sum_i W^i_{k-1} w^i_k`, the stage's
            factor of :math:`\\hat Z` (their sum is :math:`\\log\\hat Z`).
        resampled: whether the stage resampled.
    """

    param: Any
    ess: Float[Array, ""]
    acceptance_rate: Float[Array, ""]
    log_normalizer_increment: Float[Array, ""]
    resampled: Bool[Array, ""]


class SMCDiagnostics(NamedTuple):
    """Per-stage records, padded with NaN (``False``) past the last stage.

    Attributes:
        params: ``(max_stages + 1, ...)`` :math:`\\theta_0, \\dots, \\theta_K`.
        ess: ``(max_stages,)`` ESS after each stage's reweighting.
        acceptance_rate: ``(max_stages,)`` mean move acceptance per stage.
        log_normalizer_increments: ``(max_stages,)`` per-stage factors of :math:`\\log\\hat Z`.
        resampled: ``(max_stages,)`` resampling flags.
        n_stages: ``()`` stages done, :math:`K`.
    """

    params: Any
    ess: Float[Array, " k"]
    acceptance_rate: Float[Array, " k"]
    log_normalizer_increments: Float[Array, " k"]
    resampled: Bool[Array, " k"]
    n_stages: Int[Array, ""]


class SMCResult(NamedTuple):
    """What :func:`sequential_monte_carlo` (and :func:`thermo.mcmc.ais`/``smc``) return.

    Attributes:
        ensemble: the :class:`thermo.paths.PathEnsemble` of the final population.
        estimate: :func:`thermo.estimators.estimate_log_z` of it (value, standard error,
            ESS, Pareto k).
        diagnostics: :class:`SMCDiagnostics`.
        particles: the move kernel's final states (leading axis ``n``).
        batch_log_z: :func:`thermo.mcmc.smc` with ``n_batches > 1`` only: the
            :math:`(B,)` per-batch :math:`\\log\\hat Z_b`.
    """

    ensemble: PathEnsemble
    estimate: Estimate
    diagnostics: SMCDiagnostics
    particles: Any = None
    batch_log_z: Float[Array, " b"] | None = None

    samples = property(lambda self: self.ensemble.samples, doc="``(n, dim)`` final samples.")
    log_weights = property(lambda self: self.ensemble.log_weights, doc="``(n,)`` log-weights.")
    n_energy_evals = property(lambda self: self.ensemble.n_energy_evals, doc="total cost.")
    log_z = property(lambda self: self.estimate.value, doc=":math:`\\log\\hat Z`.")
    log_z_std = property(lambda self: self.estimate.std_err, doc="its standard error.")
    ess = property(lambda self: self.estimate.ess, doc="Kish ESS of the final weights.")
    pareto_k = property(lambda self: self.estimate.pareto_k, doc="PSIS tail index.")

    @property
    def n_temperatures(self) -> Array:
        """Stages :math:`K` done (the largest over independent batches)."""
        return jnp.max(self.diagnostics.n_stages)

    @property
    def lambdas(self) -> Any:
        """The schedule reached, NaN-padded (the first batch's with batches)."""
        params = self.diagnostics.params
        return params if jnp.ndim(self.diagnostics.n_stages) == 0 else params[0]

    @property
    def acceptance_rate(self) -> Array:
        """Mean move acceptance over the stages done (and batches)."""
        return jnp.nanmean(self.diagnostics.acceptance_rate)

    @property
    def n_resampling(self) -> Array:
        """Number of resampling events (summed over batches)."""
        return jnp.sum(self.diagnostics.resampled)


def _normalised(log_w):
    return log_w - logsumexp(log_w)


def _cess_fraction(log_w_norm, potential, delta):
    # CESS/N = (sum W w)^2 / sum W w^2 (Zhou et al. 2016), in logs.
    inc = delta * potential
    return jnp.exp(2 * logsumexp(log_w_norm + inc) - logsumexp(log_w_norm + 2 * inc))


def _bisect_delta(log_w_norm, potential, max_delta, target):
    full_ok = _cess_fraction(log_w_norm, potential, max_delta) >= target

    def body(_, lo_hi):
        lo, hi = lo_hi
        mid = 0.5 * (lo + hi)
        ok = _cess_fraction(log_w_norm, potential, mid) >= target
        return jnp.where(ok, mid, lo), jnp.where(ok, hi, mid)

    lo, _ = jax.lax.fori_loop(0, _N_BISECTION, body, (jnp.zeros_like(max_delta), max_delta))
    # Guard against a zero step (all mass on one particle): move at least 1e-12.
    return jnp.where(full_ok, max_delta, jnp.maximum(lo, 1e-12))


def _evals(info, n):
    per = getattr(info, "n_energy_evals", None)
    if per is None:
        return jnp.zeros((), int)
    return jnp.sum(jnp.broadcast_to(jnp.asarray(per).astype(int), (n,)))


def sequential_monte_carlo(
    key: PRNGKey,
    particles: Any,
    move_fn: Callable[[Any, Any], Kernel] | None,
    *,
    schedule: Any = None,
    tempering_fn: Callable[[Any], Array] | None = None,
    log_weight_fn: Callable[[Any, Any, Any, Any], Array] | None = None,
    transport_fn: Callable[[Any, Any], Kernel] | None = None,
    n_moves: int = 1,
    resample_threshold: float = 0.5,
    target_ess: float = 0.5,
    max_stages: int = 1000,
    max_step: float = 1.0,
    tuning: Any = None,
    tune_fn: Callable[[Any, Any, Array, Any], Any] | None = None,
    position_fn: Callable[[Any], Array] = lambda particle: particle.position,
    n_initial_energy_evals: int | Array = 0,
    resampling: str = "systematic",
) -> SMCResult:
    r"""Move a population through intermediate targets (see the module docstring).

    Not jitted itself (a composable piece: call it inside ``jax.jit``/``eqx.filter_jit``,
    as :func:`thermo.mcmc.ais` and :func:`thermo.mcmc.smc` do).

    Args:
        key: PRNG key; split into one key per stage, never stored.
        particles: initial states of the move (or transport) kernel, leading axis ``n``,
            distributed as :math:`\gamma_0` (e.g. ``jax.vmap(kernel.init)(x0)``).
        move_fn: ``(theta, tuning) -> Kernel`` on one particle, :math:`\gamma_\theta`-
            invariant; ``None`` for no moves.
        schedule: fixed stage parameters :math:`\theta_0..\theta_K`, a pytree with
            leading axis ``K + 1``; ``None`` on a tempering path: adaptive tempering
            from :math:`\lambda = 0` to 1.
        tempering_fn: tempering path: ``particle -> ()`` :math:`\log\tilde\pi -
            \log\pi_0` at the particle (no evaluation needed if the state caches it);
            the increment is :math:`(\lambda_k - \lambda_{k-1})` times it (``-inf`` where
            it is not finite).
        log_weight_fn: general path: ``(theta_old, theta_new, old, new) -> ()``, the
            incremental log-weight of one particle (``old`` before, ``new`` after the
            transport step; the same state without ``transport_fn``).
        transport_fn: ``(theta_old, theta_new) -> Kernel``, one step per particle per
            stage before the reweighting (general path only).
        n_moves: sweeps of ``move_fn`` per stage (``>= 0``).
        resample_threshold: resample when ESS/N falls below it (0: never, i.e. AIS).
        target_ess: adaptive tempering's CESS fraction per stage, in (0, 1].
        max_stages: cap on adaptive stages (the diagnostics' length).
        max_step: adaptive tempering's cap on :math:`\lambda_k - \lambda_{k-1}`.
        tuning: initial tuning pytree passed to ``move_fn``.
        tune_fn: ``(tuning, particles, log_weights, info) -> tuning``, called before the
            stage's sweeps with ``info=None`` (population-level set-up, e.g. a
            preconditioner from the weighted cloud) and after each sweep with its
            per-particle info (e.g. a Robbins–Monro step on the mean acceptance).
        position_fn: ``particle -> (dim,)`` the sample a particle state holds.
        n_initial_energy_evals: what producing ``particles`` cost (added to the count).
        resampling: ``"systematic"`` or ``"multinomial"`` (step 3 of the module
            docstring: the genealogy error bar assumes multinomial).

    Returns:
        :class:`SMCResult`.
    """
    leaves = jax.tree_util.tree_leaves(particles)
    n = leaves[0].shape[0]
    n_moves = int(n_moves)
    if n < 2:
        raise ValueError(f"need at least 2 particles, got {n}")
    if n_moves < 0 or (n_moves > 0 and move_fn is None):
        raise ValueError(f"n_moves must be >= 0 (and > 0 needs a move_fn), got {n_moves}")
    if not 0.0 <= float(resample_threshold) <= 1.0:
        raise ValueError(f"resample_threshold must be in [0, 1], got {resample_threshold}")
    if resampling not in _RESAMPLERS:
        raise ValueError(f"resampling must be one of {sorted(_RESAMPLERS)}, got {resampling!r}")
    resample_fn = _RESAMPLERS[resampling]
    tempering = tempering_fn is not None
    if tempering == (log_weight_fn is not None):
        raise ValueError("give exactly one of tempering_fn and log_weight_fn")
    if tempering and transport_fn is not None:
        raise ValueError("transport_fn needs log_weight_fn (a general path), not tempering_fn")
    adaptive = schedule is None
    if adaptive and not tempering:
        raise ValueError("a general path (log_weight_fn) needs a schedule")
    if adaptive:
        if not 0.0 < float(target_ess) <= 1.0:
            raise ValueError(f"target_ess must be in (0, 1], got {target_ess}")
        if not 0.0 < float(max_step) <= 1.0:
            raise ValueError(f"max_step must be in (0, 1], got {max_step}")
        if int(max_stages) < 1:
            raise ValueError(f"max_stages must be >= 1, got {max_stages}")
        dtype = jnp.result_type(float)
        param0 = jnp.zeros((), dtype)
        n_stages_max = int(max_stages)
    else:
        if tempering:
            schedule = jnp.asarray(schedule, dtype=jnp.result_type(float))
            if schedule.ndim != 1:
                raise ValueError("a tempering schedule must be 1-D")
        lengths = {a.shape[0] for a in jax.tree_util.tree_leaves(schedule)}
        if len(lengths) != 1 or lengths.pop() < 2:
            raise ValueError("schedule must have one leading length K + 1 >= 2")
        param0 = jax.tree_util.tree_map(lambda a: a[0], schedule)
        n_stages_max = jax.tree_util.tree_leaves(schedule)[0].shape[0] - 1
    track_k = float(resample_threshold) > 0 and n >= 10
    tune = (lambda t, p, w, i: t) if tune_fn is None else tune_fn

    def stage(key: PRNGKey, s: SMCState) -> tuple[SMCState, SMCInfo]:
        key_transport, key_res, key_moves = jr.split(key, 3)
        old = s.particles
        cost = jnp.zeros((), int)
        if tempering:
            potential = jax.vmap(tempering_fn)(old)
            if adaptive:
                delta = _bisect_delta(
                    _normalised(s.log_weights),
                    potential,
                    jnp.minimum(1.0 - s.param, max_step),
                    target_ess,
                )
                param = jnp.where(s.param + delta >= 1.0 - 1e-12, 1.0, s.param + delta)
            else:
                param = schedule[s.stage + 1]
            inc = jnp.where(jnp.isfinite(potential), (param - s.param) * potential, -jnp.inf)
            new = old
        else:
            param = jax.tree_util.tree_map(lambda a: a[s.stage + 1], schedule)
            if transport_fn is None:
                new = old
            else:
                keys = jr.split(key_transport, n)
                new, t_info = jax.vmap(transport_fn(s.param, param).step)(keys, old)
                cost = cost + _evals(t_info, n)
            inc = jax.vmap(log_weight_fn, in_axes=(None, None, 0, 0))(s.param, param, old, new)
            inc = jnp.where(jnp.isnan(inc), -jnp.inf, inc)
        log_w = s.log_weights + inc
        log_norm_inc = logsumexp(_normalised(s.log_weights) + inc)
        ess = jnp.exp(-logsumexp(2 * _normalised(log_w)))
        do_resample = ess / n < resample_threshold
        max_k = s.max_pareto_k
        if track_k:
            # Each resampling is an importance-sampling step with the weights since the
            # last one: its Pareto k is the SMC analogue of AIS's final-weight diagnostic.
            max_k = jnp.where(do_resample, jnp.maximum(max_k, pareto_k(log_w)), max_k)

        def resample(args):
            parts, log_w, eve, log_norm = args
            idx = resample_fn(key_res, log_w)
            parts = jax.tree_util.tree_map(lambda a: a[idx], parts)
            log_norm = log_norm + logsumexp(log_w) - jnp.log(n)
            return parts, jnp.zeros_like(log_w), eve[idx], log_norm

        new, log_w, eve, log_norm = jax.lax.cond(
            do_resample, resample, lambda a: a, (new, log_w, s.eve_indices, s.log_normalizer)
        )
        tuning = tune(s.tuning, new, log_w, None)
        acc = jnp.full((), jnp.nan, log_w.dtype)
        if n_moves:

            def sweep(carry, key):
                parts, tuning = carry
                kernel = move_fn(param, tuning)
                parts, info = jax.vmap(kernel.step)(jr.split(key, n), parts)
                tuning = tune(tuning, parts, log_w, info)
                rate = getattr(info, "acceptance_rate", None)
                rate = acc if rate is None else jnp.mean(rate).astype(acc.dtype)
                return (parts, tuning), (rate, _evals(info, n))

            (new, tuning), (rates, costs) = jax.lax.scan(
                sweep, (new, tuning), jr.split(key_moves, n_moves)
            )
            acc = jnp.mean(rates)
            cost = cost + jnp.sum(costs)
        state = SMCState(
            particles=new,
            log_weights=log_w,
            log_normalizer=log_norm,
            eve_indices=eve,
            stage=s.stage + 1,
            param=param,
            tuning=tuning,
            n_resampling=s.n_resampling + do_resample.astype(s.n_resampling.dtype),
            max_pareto_k=max_k,
            n_energy_evals=s.n_energy_evals + cost,
        )
        return state, SMCInfo(param, ess, acc, log_norm_inc, do_resample)

    dtype = jnp.result_type(float)
    state0 = SMCState(
        particles=particles,
        log_weights=jnp.zeros((n,), dtype),
        log_normalizer=jnp.zeros((), dtype),
        eve_indices=jnp.arange(n),
        stage=jnp.zeros((), jnp.int32),
        param=param0,
        tuning=tuning,
        n_resampling=jnp.zeros((), jnp.int32),
        max_pareto_k=jnp.full((), -jnp.inf, dtype),
        n_energy_evals=jnp.asarray(n_initial_energy_evals).astype(int),
    )
    if not adaptive:
        final, infos = run(key, Kernel(None, stage), state0, n_stages_max, observable_fn=_info)
    else:
        final, infos = _run_until_one(key, stage, state0, n_stages_max)
    params = jax.tree_util.tree_map(
        lambda p0, p: jnp.concatenate([jnp.asarray(p0)[None], p]), param0, infos.param
    )
    diagnostics = SMCDiagnostics(
        params=params,
        ess=infos.ess,
        acceptance_rate=infos.acceptance_rate,
        log_normalizer_increments=infos.log_normalizer_increment,
        resampled=infos.resampled,
        n_stages=final.stage,
    )
    resampling = None
    if float(resample_threshold) > 0:
        resampling = Resampling(
            final.eve_indices, final.n_resampling, final.log_normalizer, final.max_pareto_k
        )
    ensemble = PathEnsemble(
        samples=jax.vmap(position_fn)(final.particles),
        log_weights=final.log_normalizer + final.log_weights,
        n_energy_evals=final.n_energy_evals,
        resampling=resampling,
    )
    return SMCResult(ensemble, estimate_log_z(ensemble), diagnostics, final.particles)


def _info(state: SMCState, info: SMCInfo) -> SMCInfo:
    del state
    return info


def _run_until_one(key, stage, state0: SMCState, max_stages: int):
    """Stages until :math:`\\lambda = 1` (or ``max_stages``), recording each stage's info.

    The keys are those of :func:`thermo.kernel.run` over ``max_stages`` steps (one per
    stage, split from ``key`` up front); the loop carries none.
    """
    keys = jr.split(key, max_stages)
    info_shape = jax.eval_shape(stage, keys[0], state0)[1]

    def pad(a):
        fill = False if a.dtype == bool else jnp.nan
        return jnp.full((max_stages, *a.shape), fill, a.dtype)

    infos0 = jax.tree_util.tree_map(pad, info_shape)

    def cond(carry):
        s, _ = carry
        return (s.param < 1.0) & (s.stage < max_stages)

    def body(carry):
        s, infos = carry
        new, info = stage(keys[s.stage], s)
        infos = jax.tree_util.tree_map(lambda buf, v: buf.at[s.stage].set(v), infos, info)
        return new, infos

    return jax.lax.while_loop(cond, body, (state0, infos0))
