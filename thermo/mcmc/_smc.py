r"""Annealed importance sampling and tempered SMC: presets of :mod:`thermo.smc`.

Both move a population along the geometric path

.. math:: \gamma_\lambda(x) = \pi_0(x)^{1-\lambda}\,\tilde\pi(x)^{\lambda},\qquad
          0 = \lambda_0 < \lambda_1 < \dots < \lambda_K = 1,

from a normalised Gaussian base :math:`\pi_0 = \mathcal N(0, s^2 I)` (``s =
system.prior_scale`` unless given) to the unnormalised target
:math:`\tilde\pi = e^{-\beta U}`, with :func:`thermo.smc.sequential_monte_carlo` on its
tempering path: the incremental log-weight of particle :math:`i` at stage :math:`k` is
(Neal 2001, eq. 3)

.. math:: \log w_k^i = (\lambda_k - \lambda_{k-1})\,[\log\tilde\pi(x^i) - \log\pi_0(x^i)],

evaluated *before* the stage's moves, which are :func:`thermo.mcmc.mala` or
:func:`thermo.mcmc.hmc` kernels on :math:`\gamma_{\lambda_k}` (so they leave it
invariant). Each particle state caches :math:`\log\tilde\pi`, its gradient (and, for the
``"local"`` metric, its Hessian diagonal) as the kernel's ``aux``, so a new
:math:`\lambda` costs no evaluation. :math:`\log Z = \log\int\tilde\pi` and its error bar
come from :func:`thermo.estimators.estimate_log_z` on the returned
:class:`thermo.paths.PathEnsemble`.

* :func:`ais`: a fixed schedule, no resampling (Neal 2001); the delta-method error.
* :func:`smc`: adaptive tempering by CESS bisection (Zhou, Johansen & Aston 2016) and
  multinomial resampling below an ESS threshold (Del Moral, Doucet & Jasra 2006); the
  genealogy error bar of Lee & Whiteley (2018), or independent batches.

Particle systems (``system.n_particles`` set) are translation invariant, so the
integral over all of :math:`\mathbb R^{\mathrm{dim}}` diverges; there the whole path
lives on the centre-of-mass-free subspace: the base is an isotropic Gaussian on that
subspace of dimension :math:`(n-1)d` (normaliser :math:`((n-1)d/2)\log 2\pi s^2`), the
MCMC noise and gradients are projected, and the reported ``log_z`` is
:math:`\log\int_{\mathrm{COM}=0} e^{-\beta U}` with respect to Lebesgue measure in
orthonormal coordinates of that subspace.

MCMC step sizes adapt between sweeps from the population's mean acceptance
(Robbins–Monro on :math:`\log\epsilon` towards ``target_acceptance``), a standard
adaptive-SMC device (Fearnhead & Taylor 2013); each stage's kernel still leaves its own
:math:`\gamma_{\lambda_k}` invariant. Options for hard targets: a diagonal
preconditioner (``preconditioner``), random step sizes (``step_size_jitter``), stages
dense near both ends (``ais(schedule_shape="two_sided")``) or a cap on the adaptive
:math:`\lambda` steps (``max_lambda_step``).

Error bars and their limits. Both standard errors are variance estimates: they cannot
see probability mass that no particle reached, and then ``log_z`` is biased low by more
than its error bar. ``pareto_k`` (the PSIS tail index, from ``estimate_log_z``) flags
heavy-tailed weights, with a warning above 0.5, where the weights' variance is
infinite and a CLT error bar does not exist; it is not a certificate: a sampler can
miss a region entirely with light-tailed weights (Neal's funnel, whose neck opens only
as :math:`\lambda \to 1`; measured in ``experiments.mcmc_baselines``). For SMC, whose
weights restart at each resampling, it is the largest over the weights met at every
resampling and the final ones.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float

from .._typing import PRNGKey
from ..estimators import Estimate, estimate_log_z, pareto_k
from ..kernel import Kernel
from ..paths import PathEnsemble
from ..smc import SMCResult, sequential_monte_carlo, systematic_resampling
from ._hmc import hmc
from ._mala import mala

__all__ = ["SMCResult", "ais", "anneal", "pareto_k", "smc", "systematic_resampling"]

#: Above this Pareto k the importance weights' variance is infinite, so the CLT
#: (delta-method) standard error of log Z does not exist (Vehtari et al. 2024, §3: the
#: estimate itself is still usable up to 0.7, with a slower convergence rate).
PARETO_K_THRESHOLD = 0.5

#: The local metric's curvature floor, in units of the base's 1/s^2: proposals never
#: get wider than 10 base standard deviations per coordinate.
_LOCAL_CURVATURE_FLOOR = 1e-2


class _Target(NamedTuple):
    """What a particle caches about the untempered target at its position."""

    value: Array  # () log pi~, -inf where not finite
    grad: Array  # (dim,) projected gradient
    curvature: Array  # (dim,) -diag Hessian ("local" metric), else (0,)


class _Tuning(NamedTuple):
    log_step: Array  # () log MCMC step size
    inv_mass: Array  # (dim,) population preconditioner ("particles"), else ones


@jax.custom_jvp
def _with_gradient(value, grad, x):
    """``value``, whose derivative in ``x`` is ``grad`` (both already computed)."""
    del grad, x
    return value


@_with_gradient.defjvp
def _with_gradient_jvp(primals, tangents):
    value, grad, _ = primals
    return value, jnp.vdot(grad, tangents[2])


def _count(value, name: str, minimum: int) -> int:
    """A whole number ``>= minimum``, or a ``ValueError`` naming the argument."""
    ok = isinstance(value, int | np.integer) and not isinstance(value, bool)
    if not ok and isinstance(value, float | np.floating) and float(value).is_integer():
        ok = True
    if not ok or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _positive(value, name: str, allow_zero: bool = False) -> float:
    ok = isinstance(value, int | float | np.integer | np.floating) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value!r}")
    return float(value)


def _fraction(value, name: str, low_open: bool, high_open: bool) -> float:
    ok = isinstance(value, int | float | np.integer | np.floating) and math.isfinite(value)
    if ok:
        ok = (value > 0 if low_open else value >= 0) and (value < 1 if high_open else value <= 1)
    if not ok:
        interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return float(value)


def _check_options(
    *,
    move,
    preconditioner,
    n_mcmc_steps,
    n_integration_steps,
    initial_step_size,
    target_acceptance,
    adaptation_rate,
    step_size_jitter,
    target_ess=0.5,
    resample_threshold=0.0,
    max_steps=1,
    max_lambda_step=1.0,
    base_scale=None,
    has_projection=False,
):
    if move not in ("mala", "hmc"):
        raise ValueError(f"move must be 'mala' or 'hmc', got {move!r}")
    if preconditioner not in ("none", "particles", "local"):
        raise ValueError(
            f"preconditioner must be 'none', 'particles' or 'local', got {preconditioner!r}"
        )
    if preconditioner == "local" and move != "mala":
        raise ValueError("preconditioner='local' needs move='mala'")
    if preconditioner != "none" and has_projection:
        raise ValueError("a preconditioner is not supported with project_fn (particle systems)")
    _count(n_mcmc_steps, "n_mcmc_steps", 1)
    _count(n_integration_steps, "n_integration_steps", 1)
    _count(max_steps, "max_steps", 1)
    if initial_step_size is not None:
        _positive(initial_step_size, "initial_step_size")
    if target_acceptance is not None:
        _fraction(target_acceptance, "target_acceptance", True, True)
    _positive(adaptation_rate, "adaptation_rate", allow_zero=True)
    _positive(step_size_jitter, "step_size_jitter", allow_zero=True)
    _fraction(target_ess, "target_ess", True, False)
    _fraction(resample_threshold, "resample_threshold", False, False)
    _fraction(max_lambda_step, "max_lambda_step", True, False)
    if base_scale is not None:
        _positive(base_scale, "base_scale")


def _population_size(n_chains, n_particles, name: str) -> int:
    if n_particles is not None:
        warnings.warn(
            f"{name}: n_particles is deprecated, use n_chains (n_particles also names "
            "the atoms of a particle system)",
            DeprecationWarning,
            stacklevel=3,
        )
        if n_chains is not None:
            raise ValueError(f"{name}: give n_chains only (n_particles is its old name)")
        n_chains = n_particles
    if n_chains is None:
        raise ValueError(f"{name}: n_chains is required")
    return _count(n_chains, "n_chains", 2)


def anneal(
    key: PRNGKey,
    logdensity_fn: Callable[[Array], Array],
    dim: int,
    *,
    n_chains: int | None = None,
    base_scale: float,
    schedule: Float[Array, " k"] | None = None,
    target_ess: float = 0.5,
    resample_threshold: float = 0.0,
    max_steps: int = 1000,
    move: str = "mala",
    n_mcmc_steps: int = 1,
    n_integration_steps: int = 5,
    initial_step_size: float | None = None,
    target_acceptance: float | None = None,
    adaptation_rate: float = 0.5,
    project_fn: Callable[[Array], Array] | None = None,
    base_dim: int | None = None,
    step_size_jitter: float = 0.0,
    preconditioner: str = "none",
    max_lambda_step: float = 1.0,
    resampling: str = "systematic",
    n_particles: int | None = None,
) -> SMCResult:
    r"""Tempered AIS/SMC along the geometric path from :math:`\mathcal N(0, s^2 I)`.

    :func:`thermo.smc.sequential_monte_carlo` on the tempering path with
    :func:`thermo.mcmc.mala`/:func:`thermo.mcmc.hmc` moves. Not jitted itself (call it
    inside ``jax.jit`` or use :func:`ais`/:func:`smc`).

    Preconditioning. The moves use a diagonal inverse mass :math:`m` (in units of
    :math:`s^2`, so :math:`m = 1` is the plain kernel), for MALA
    :math:`y = x + \epsilon\, m\odot\nabla\log\gamma_\lambda(x) + \sqrt{2\epsilon m}\odot\xi`
    with the full Metropolis–Hastings ratio, hence exactly :math:`\gamma_\lambda`-invariant:

    * ``"none"``: :math:`m = 1`.
    * ``"particles"``: :math:`m = \widehat{\mathrm{Var}}_W[x]/s^2`, the weighted per-coordinate
      variance of the particle cloud, re-estimated at every stage before its moves (the
      standard adaptive-SMC proposal scale, Chopin 2002; Jasra et al. 2011; for HMC it is
      the inverse mass matrix, Buchholz, Chopin & Jacob 2021).
    * ``"local"`` (MALA only): a position-dependent metric, the inverse of the clipped
      diagonal curvature of the tempered target,
      :math:`m(x)^{-1} = s^2\max(|(1-\lambda)/s^2 - \lambda\,\partial_{ii}^2\log\tilde\pi(x)|,
      10^{-2}/s^2)` (simplified manifold MALA with a diagonal SoftAbs-like metric:
      Girolami & Calderhead 2011, Betancourt 2013), which follows scales that change
      across the state space. The Hessian diagonal costs ``dim`` Hessian-vector
      products, counted as ``dim`` extra evaluations per move.

    Args:
        key: PRNG key (split into the initial draw and the stages' keys).
        logdensity_fn: ``(dim,) -> ()`` unnormalised :math:`\log\tilde\pi`.
        dim: dimension of a flat configuration.
        n_chains: population size :math:`N` (``n_particles``: deprecated alias).
        base_scale: :math:`s`.
        schedule: fixed ``(K+1,)`` increasing schedule from 0 to 1; ``None`` = adaptive
            tempering by CESS bisection.
        target_ess: CESS fraction per stage for adaptive tempering, in (0, 1].
        resample_threshold: resample when ESS/N drops below it (0 = never, i.e. AIS).
        max_steps: cap on the number of adaptive stages.
        move: ``"mala"`` or ``"hmc"``.
        n_mcmc_steps: MCMC moves per stage (``>= 1``).
        n_integration_steps: leapfrog steps per HMC move.
        initial_step_size: initial MCMC step (default ``0.5 s^2`` for MALA, ``0.5 s`` for
            HMC: the base's own scale).
        target_acceptance: for step adaptation (0.574 for MALA, Roberts & Rosenthal 1998;
            0.65 for HMC, Beskos et al. 2013); set ``adaptation_rate=0`` to freeze.
        adaptation_rate: Robbins–Monro gain on :math:`\log\epsilon`, applied after every
            MCMC sweep from the population-mean acceptance.
        project_fn: orthogonal projector to the subspace the path lives on (COM removal).
        base_dim: dimension of that subspace (defaults to ``dim``).
        step_size_jitter: :math:`j \ge 0`; every move of every particle uses
            :math:`\epsilon e^{j u}`, :math:`u \sim U[-1, 1]` drawn independently of the
            state (a mixture of invariant kernels is invariant; Neal 2011 §5.4.2.2
            recommends randomised step sizes), for multi-scale targets.
        preconditioner: ``"none"``, ``"particles"`` or ``"local"`` (see above; not with
            ``project_fn``).
        max_lambda_step: adaptive tempering only: cap on :math:`\lambda_k -
            \lambda_{k-1}`, which guarantees at least :math:`1/\text{cap}` stages of MCMC
            moves where the target moves into regions no particle has reached yet.
        resampling: ``"systematic"`` or ``"multinomial"`` (see
            :func:`thermo.smc.sequential_monte_carlo`: the genealogy error bar assumes
            multinomial).
        n_particles: deprecated name of ``n_chains``.

    Returns:
        :class:`thermo.smc.SMCResult`: ``.ensemble`` (a :class:`thermo.paths.PathEnsemble`),
        ``.estimate`` (``log_z``, ``log_z_std``, ``ess``, ``pareto_k``), ``.diagnostics``
        (``lambdas``, ESS, acceptance and log-normaliser increment per stage).
    """
    n = _population_size(n_chains, n_particles, "anneal")
    _check_options(
        move=move,
        preconditioner=preconditioner,
        n_mcmc_steps=n_mcmc_steps,
        n_integration_steps=n_integration_steps,
        initial_step_size=initial_step_size,
        target_acceptance=target_acceptance,
        adaptation_rate=adaptation_rate,
        step_size_jitter=step_size_jitter,
        target_ess=target_ess,
        resample_threshold=resample_threshold,
        max_steps=max_steps,
        max_lambda_step=max_lambda_step,
        base_scale=base_scale,
        has_projection=project_fn is not None,
    )
    proj = (lambda v: v) if project_fn is None else project_fn
    base_dim = dim if base_dim is None else int(base_dim)
    s2 = float(base_scale) ** 2
    log_norm = -0.5 * base_dim * np.log(2 * np.pi * s2)
    if initial_step_size is None:
        initial_step_size = 0.5 * s2 if move == "mala" else 0.5 * float(base_scale)
    if target_acceptance is None:
        target_acceptance = 0.574 if move == "mala" else 0.65
    local = preconditioner == "local"
    cost_per_eval = 1 + dim if local else 1
    target_vg = jax.value_and_grad(logdensity_fn)
    target_grad = jax.grad(logdensity_fn)

    def base_vg(x):
        x = proj(x)
        return log_norm - 0.5 * jnp.sum(x * x) / s2, -x / s2

    def target_at(x) -> _Target:
        value, grad = target_vg(x)
        value = jnp.where(jnp.isnan(value), -jnp.inf, value)
        if not local:
            return _Target(value, proj(grad), jnp.zeros((0,), x.dtype))

        def hvp_diag(e):
            return -jnp.vdot(e, jax.jvp(target_grad, (x,), (e,))[1])

        return _Target(value, proj(grad), jax.vmap(hvp_diag)(jnp.eye(dim, dtype=x.dtype)))

    def tempered(lam, x, t: _Target):
        b, bg = base_vg(x)
        return (1 - lam) * b + lam * t.value, (1 - lam) * bg + lam * t.grad

    def tempered_logdensity(lam):
        # log gamma_lambda with the target cached as aux; its gradient is assembled from
        # the target's and the base's, so the kernel's autodiff adds no second backward.
        def fn(x):
            t = target_at(x)
            value, grad = tempered(lam, x, t)
            return _with_gradient(jax.lax.stop_gradient(value), jax.lax.stop_gradient(grad), x), t

        return fn

    def local_metric(lam):
        def inverse_mass_fn(position, t: _Target):
            del position
            h = jnp.abs((1 - lam) / s2 + lam * t.curvature)
            h = jnp.where(jnp.isfinite(h), h, 1.0 / s2)
            return 1.0 / (s2 * jnp.maximum(h, _LOCAL_CURVATURE_FLOOR / s2))

        return inverse_mass_fn

    def kernel_at(lam, step_size, inv_mass) -> Kernel:
        logdensity = tempered_logdensity(lam)
        if move == "hmc":
            mass = inv_mass if preconditioner == "particles" else 1.0
            return hmc(
                logdensity,
                step_size,
                n_integration_steps,
                inverse_mass_matrix=mass,
                project_fn=project_fn,
                has_aux=True,
            )
        return mala(
            logdensity,
            step_size,
            project_fn=project_fn,
            inverse_mass_matrix=inv_mass if preconditioner == "particles" else None,
            inverse_mass_fn=local_metric(lam) if local else None,
            has_aux=True,
        )

    def move_fn(lam, tuning: _Tuning) -> Kernel:
        def step(key, state):
            # Re-target the cached state to gamma_lambda (no evaluation), then one move.
            value, grad = tempered(lam, state.position, state.aux)
            state = state._replace(logdensity=value, logdensity_grad=proj(grad))
            eps = jnp.exp(tuning.log_step)
            if step_size_jitter:
                # A random step size, log-uniform around eps, drawn independently of the
                # state: a mixture of invariant kernels, hence invariant.
                key_eps, key = jr.split(key)
                u = jr.uniform(key_eps, dtype=eps.dtype, minval=-1.0, maxval=1.0)
                eps = eps * jnp.exp(step_size_jitter * u)
            state, info = kernel_at(lam, eps, tuning.inv_mass).step(key, state)
            if local:
                info = info._replace(n_energy_evals=info.n_energy_evals * cost_per_eval)
            return state, info

        return Kernel(None, step)

    def tune_fn(tuning: _Tuning, particles, log_w, info) -> _Tuning:
        if info is not None:
            rate = jnp.mean(info.acceptance_rate)
            return tuning._replace(
                log_step=tuning.log_step + adaptation_rate * (rate - target_acceptance)
            )
        if preconditioner != "particles":
            return tuning
        # Weighted per-coordinate variance of the cloud targeting gamma_{lambda_k}
        # (fixed during this stage's moves), floored relative to its mean.
        w = jnp.exp(log_w - jax.scipy.special.logsumexp(log_w))[:, None]
        x = particles.position
        mean = jnp.sum(w * x, axis=0)
        var = jnp.sum(w * (x - mean[None, :]) ** 2, axis=0)
        var = jnp.maximum(var, 1e-6 * jnp.mean(var) + 1e-300)
        return tuning._replace(inv_mass=var / s2)

    def tempering_fn(state):
        return state.aux.value - base_vg(state.position)[0]

    key_init, key_run = jr.split(key)
    x0 = jax.vmap(proj)(float(base_scale) * jr.normal(key_init, (n, dim)))
    dtype = x0.dtype
    tuning0 = _Tuning(jnp.log(jnp.asarray(initial_step_size, dtype)), jnp.ones((dim,), dtype))
    particles = jax.vmap(kernel_at(0.0, initial_step_size, tuning0.inv_mass).init)(x0)
    if schedule is not None:
        schedule = jnp.asarray(schedule, dtype=dtype)
        if schedule.ndim != 1 or schedule.shape[0] < 2:
            raise ValueError("schedule must be a 1-D array with at least 2 entries")
    return sequential_monte_carlo(
        key_run,
        particles,
        move_fn,
        schedule=schedule,
        tempering_fn=tempering_fn,
        n_moves=int(n_mcmc_steps),
        resample_threshold=resample_threshold,
        target_ess=target_ess,
        max_stages=int(max_steps),
        max_step=float(max_lambda_step),
        tuning=tuning0,
        tune_fn=tune_fn,
        n_initial_energy_evals=n * cost_per_eval,
        resampling=resampling,
    )


def _system_setup(system: Any, base_scale: float | None):
    if base_scale is not None:
        _positive(base_scale, "base_scale")
    n_particles = getattr(system, "n_particles", None)
    spatial_dim = getattr(system, "spatial_dim", None)
    dim = int(system.dim)
    scale = float(system.prior_scale if base_scale is None else base_scale)
    if n_particles is not None and n_particles > 1:
        n, d = int(n_particles), int(spatial_dim)

        def project_fn(v):
            pos = jnp.reshape(v, (n, d))
            return jnp.reshape(pos - jnp.mean(pos, axis=0, keepdims=True), v.shape)

        return dim, scale, project_fn, (n - 1) * d
    return dim, scale, None, dim


def _anneal_system(key, system, schedule, base_scale: float, options: tuple) -> SMCResult:
    """:func:`anneal` on ``system``; ``system`` and the hashable ``options`` are static.

    The projection onto the centre-of-mass-free subspace is built inside, so the
    compiled entry points below are reused across calls with the same settings.
    """
    dim, _, project_fn, base_dim = _system_setup(system, base_scale)
    return anneal(
        key,
        system.log_prob,
        dim,
        base_scale=base_scale,
        schedule=schedule,
        project_fn=project_fn,
        base_dim=base_dim,
        **dict(options),
    )


_anneal_system_jit = eqx.filter_jit(_anneal_system)


@eqx.filter_jit
def _anneal_system_batched(keys, system, base_scale: float, options: tuple) -> SMCResult:
    """Independent SMC samplers (vmapped over ``keys``), their estimates combined.

    Each batch gives an unbiased :math:`\\hat Z_b`; the estimate is
    :func:`thermo.estimators.estimate_log_z` on the :math:`\\log\\hat Z_b`, its Pareto k
    the largest per-batch one (the weights are comparable only within a batch).
    """
    r = jax.vmap(lambda k: _anneal_system(k, system, None, base_scale, options))(keys)
    n_batches, n_per = r.ensemble.log_weights.shape
    batch_log_z = r.estimate.value
    between = estimate_log_z(batch_log_z)
    log_weights = r.ensemble.log_weights.reshape(-1)
    ensemble = PathEnsemble(
        samples=r.ensemble.samples.reshape(n_batches * n_per, -1),
        log_weights=log_weights,
        n_energy_evals=jnp.sum(r.ensemble.n_energy_evals),
    )
    estimate = Estimate(
        value=between.value,
        std_err=between.std_err,
        ess=estimate_log_z(log_weights).ess,
        pareto_k=jnp.max(r.estimate.pareto_k),
    )
    return SMCResult(ensemble, estimate, r.diagnostics, r.particles, batch_log_z)


def _warn_on_pareto_k(result: SMCResult, name: str) -> SMCResult:
    k = float(result.pareto_k)
    if k > PARETO_K_THRESHOLD:
        warnings.warn(
            f"{name}: Pareto k = {k:.2f} > {PARETO_K_THRESHOLD} for the final "
            "importance weights: heavy-tailed, log_z is likely biased low and log_z_std "
            "too small (more chains, stages or MCMC moves, or a better-mixing move).",
            RuntimeWarning,
            stacklevel=3,
        )
    return result


class _MoveOptions(NamedTuple):
    """The MCMC-move settings :func:`ais` and :func:`smc` pass on to :func:`anneal`."""

    move: str
    preconditioner: str
    n_mcmc_steps: int
    n_integration_steps: int
    initial_step_size: float | None
    target_acceptance: float | None
    adaptation_rate: float
    step_size_jitter: float


def _move_options(moves: _MoveOptions, scale, project_fn, **adaptive) -> dict:
    """Check the move settings (and ``adaptive``: the tempering ones) at the boundary and
    return the move settings as a dict of Python scalars (hashable for the jit cache)."""
    kw = moves._asdict()
    _check_options(**kw, **adaptive, base_scale=scale, has_projection=project_fn is not None)
    kw["step_size_jitter"] = float(kw["step_size_jitter"])
    for name in ("initial_step_size", "target_acceptance"):
        if kw[name] is not None:
            kw[name] = float(kw[name])
    kw["adaptation_rate"] = float(kw["adaptation_rate"])
    kw["n_mcmc_steps"] = int(kw["n_mcmc_steps"])
    kw["n_integration_steps"] = int(kw["n_integration_steps"])
    return kw


def ais(
    key: PRNGKey,
    system: Any,
    *,
    n_chains: int,
    n_steps: int,
    move: str = "mala",
    n_mcmc_steps: int = 1,
    n_integration_steps: int = 5,
    base_scale: float | None = None,
    schedule_power: float = 4.0,
    initial_step_size: float | None = None,
    target_acceptance: float | None = None,
    adaptation_rate: float = 0.5,
    step_size_jitter: float = 0.0,
    preconditioner: str = "none",
    schedule_shape: str = "power",
) -> SMCResult:
    r"""Annealed importance sampling (Neal 2001) from :math:`\mathcal N(0, s^2 I)` to ``system``.

    A preset of :func:`anneal` (fixed schedule, no resampling). Schedule, with
    :math:`t = k/K` and :math:`p` = ``schedule_power``:

    * ``schedule_shape="power"``: :math:`\lambda_k = t^p`; concentrates stages near
      :math:`\lambda = 0` where the path changes fastest, a common choice.
    * ``"two_sided"``: :math:`\lambda_k = t^p / (t^p + (1-t)^p)`, dense near both ends,
      like the sigmoid schedule of Grosse, Maddison & Salakhutdinov (2013), for targets
      whose mass moves late on the path.

    Log Z, its delta-method error and the Pareto k (a warning above 0.5) come from
    :func:`thermo.estimators.estimate_log_z`. One compiled function per (system, shapes,
    options): a repeated call with another key does not recompile.

    Args:
        key: PRNG key.
        system: from ``thermo.systems.get``; uses ``log_prob``, ``dim``, ``prior_scale``,
            ``n_particles``, ``spatial_dim``.
        n_chains: number of independent AIS chains :math:`N`.
        n_steps: number of annealing stages :math:`K`.
        move, n_mcmc_steps, n_integration_steps, initial_step_size, target_acceptance,
            adaptation_rate, step_size_jitter, preconditioner: see :func:`anneal`.
        base_scale: base standard deviation (default ``system.prior_scale``).
        schedule_power: :math:`p > 0`.
        schedule_shape: ``"power"`` or ``"two_sided"``.

    Returns:
        :class:`thermo.smc.SMCResult` with ``.log_z``, ``.log_z_std``, ``.pareto_k``,
        ``.samples (n_chains, dim)``, ``.log_weights (n_chains,)``, ``.n_energy_evals``,
        ``.ensemble`` (a :class:`thermo.paths.PathEnsemble`), ``.diagnostics``.
    """
    n_chains = _count(n_chains, "n_chains", 2)
    n_steps = _count(n_steps, "n_steps", 1)
    schedule_power = _positive(schedule_power, "schedule_power")
    if schedule_shape not in ("power", "two_sided"):
        raise ValueError(f"schedule_shape must be 'power' or 'two_sided', got {schedule_shape!r}")
    _, scale, project_fn, _ = _system_setup(system, base_scale)
    moves = _MoveOptions(
        move, preconditioner, n_mcmc_steps, n_integration_steps, initial_step_size,
        target_acceptance, adaptation_rate, step_size_jitter,
    )  # fmt: skip
    options = _move_options(moves, scale, project_fn)
    t = np.linspace(0.0, 1.0, n_steps + 1)
    schedule = t**schedule_power
    if schedule_shape == "two_sided":
        schedule = schedule / (schedule + (1 - t) ** schedule_power)
    options.update(n_chains=n_chains, resample_threshold=0.0)
    schedule = jnp.asarray(schedule, dtype=jnp.result_type(float))
    result = _anneal_system_jit(key, system, schedule, scale, tuple(sorted(options.items())))
    return _warn_on_pareto_k(result, "ais")


def smc(
    key: PRNGKey,
    system: Any,
    *,
    n_chains: int | None = None,
    target_ess: float = 0.8,
    resample_threshold: float = 0.5,
    max_steps: int = 500,
    move: str = "mala",
    n_mcmc_steps: int = 5,
    n_integration_steps: int = 5,
    base_scale: float | None = None,
    initial_step_size: float | None = None,
    target_acceptance: float | None = None,
    adaptation_rate: float = 0.5,
    step_size_jitter: float = 0.0,
    n_batches: int = 1,
    preconditioner: str = "none",
    max_lambda_step: float = 1.0,
    resampling: str = "multinomial",
    n_particles: int | None = None,
) -> SMCResult:
    r"""Adaptive-tempering SMC sampler (Del Moral, Doucet & Jasra 2006; Jasra et al. 2011).

    A preset of :func:`anneal`: each stage picks :math:`\lambda_k` by CESS bisection
    (``target_ess``), resamples (multinomially by default) when ESS/N <
    ``resample_threshold`` and applies ``n_mcmc_steps`` MALA/HMC moves whose step size
    adapts to the population's acceptance (Fearnhead & Taylor 2013).

    Defaults. ``target_ess=0.8`` and multinomial resampling were chosen from the
    z-scores of :math:`\log\hat Z` against exact answers over independent seeds
    (``python -m experiments run fk_calibration method=smc``; the figures are in the
    README): at ``target_ess=0.5`` with systematic resampling the error bar was too
    small and the estimate biased low on multimodal targets. Hard targets (many wells
    in high dimension, Neal's funnel) need more chains, stages or moves than the
    defaults; check the Pareto k and compare runs with different settings.

    Error bar. Resampling makes the particle weights dependent, so the delta method over
    particles is not valid. With ``n_batches=1`` (default) the standard error is the
    genealogy ("Eve") estimator of Lee & Whiteley (2018), which
    :func:`thermo.estimators.estimate_log_z` applies to the returned ensemble. With
    ``n_batches = B > 1`` the ``n_chains`` are split into :math:`B` independent SMC
    samplers of :math:`N/B` particles (one vmapped compile); each gives an unbiased
    :math:`\hat Z_b` (Del Moral 2004), the estimate is :math:`\log\frac1B\sum_b \hat Z_b`
    and its standard error the delta method over the :math:`B` i.i.d. :math:`\hat Z_b`
    (``estimate_log_z`` on :math:`\log\hat Z_b`); few batches make that error bar itself
    noisy, and small batches bias :math:`\log\hat Z` down.

    Args:
        key: PRNG key.
        system: from ``thermo.systems.get``.
        n_chains: total population size :math:`N` over all batches.
        target_ess: conditional-ESS fraction per stage, in (0, 1].
        resample_threshold: ESS fraction that triggers resampling.
        max_steps: cap on stages (the result reports ``lambdas`` reached).
        move, n_mcmc_steps, n_integration_steps, base_scale, initial_step_size,
            target_acceptance, adaptation_rate, step_size_jitter, preconditioner,
            max_lambda_step: see :func:`anneal`.
        n_batches: number of independent samplers :math:`B` (must divide ``n_chains``).
        resampling: ``"systematic"`` or ``"multinomial"``.
        n_particles: deprecated name of ``n_chains`` (warns).

    Returns:
        :class:`thermo.smc.SMCResult`; ``samples`` and ``log_weights`` concatenate the
        batches, ``n_temperatures`` is the largest number of stages of any batch and
        ``lambdas`` the schedule of the first batch, ``n_resampling`` the total,
        ``batch_log_z`` the :math:`(B,)` values :math:`\log\hat Z_b`.

    Raises:
        RuntimeError: when a sampler did not reach :math:`\lambda = 1` in ``max_steps``.
    """
    n_chains = _population_size(n_chains, n_particles, "smc")
    n_batches = _count(n_batches, "n_batches", 1)
    if n_chains % n_batches or n_chains // n_batches < 2:
        raise ValueError(
            f"n_batches={n_batches} must divide n_chains={n_chains} into batches of >= 2"
        )
    _, scale, project_fn, _ = _system_setup(system, base_scale)
    moves = _MoveOptions(
        move, preconditioner, n_mcmc_steps, n_integration_steps, initial_step_size,
        target_acceptance, adaptation_rate, step_size_jitter,
    )  # fmt: skip
    adaptive = dict(
        target_ess=target_ess,
        resample_threshold=resample_threshold,
        max_steps=max_steps,
        max_lambda_step=max_lambda_step,
    )
    if resampling not in ("systematic", "multinomial"):
        raise ValueError(f"resampling must be 'systematic' or 'multinomial', got {resampling!r}")
    options = _move_options(moves, scale, project_fn, **adaptive)
    options.update({k: float(v) for k, v in adaptive.items()}, max_steps=int(max_steps))
    options.update(resampling=resampling)
    options.update(n_chains=n_chains // n_batches)
    options = tuple(sorted(options.items()))
    if n_batches == 1:
        result = _anneal_system_jit(key, system, None, scale, options)
        result = result._replace(batch_log_z=result.log_z[None])
        reached = float(result.lambdas[int(result.n_temperatures)]) == 1.0
    else:
        result = _anneal_system_batched(jr.split(key, n_batches), system, scale, options)
        params, stages = result.diagnostics.params, result.diagnostics.n_stages
        reached = bool(jnp.all(params[jnp.arange(n_batches), stages] == 1.0))
    if not reached:
        raise RuntimeError(
            f"smc did not reach lambda = 1 within max_steps={max_steps} stages; "
            "increase max_steps or lower target_ess."
        )
    return _warn_on_pareto_k(result, "smc")
