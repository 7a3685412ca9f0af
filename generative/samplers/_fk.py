r"""Feynman–Kac (sequential Monte Carlo) correction along a learned sampler's chain.

A learned sampler (:class:`~generative.samplers.DDS`, :class:`~generative.samplers.PIS`)
is a Markov chain :math:`x_0\to x_1\to\dots\to x_K` with forward kernels
:math:`M_k(x_k\mid x_{k-1})` (the network's discretised SDE step) beside a *reference*
chain :math:`R_k` with known marginals :math:`q_k` (DDS: the OU process that keeps
:math:`q_k = \mathcal N(0,\sigma^2 I)` invariant; PIS: Brownian motion from the origin,
:math:`q_k = \mathcal N(0,\sigma^2 t_k I)`). Take the intermediate targets

.. math:: \gamma_k(x) = q_k(x)^{1-\lambda_k}\,\tilde\pi(x)^{\lambda_k},
          \qquad 0 = \lambda_0 < \lambda_1 < \dots < \lambda_K = 1,

(the reference marginals, which the optimal network transports exactly, geometrically
interpolated to the Boltzmann target) and the backward kernel
:math:`L_{k-1}(x_{k-1}\mid x_k) = R_k(x_k\mid x_{k-1})\,q_{k-1}(x_{k-1})/q_k(x_k)`, the
time reversal of the reference. The exact discrete-time incremental log-weight
(Del Moral, Doucet & Jasra 2006, eq. 31) is then

.. math:: \log w_k = \lambda_k\,\phi_k(x_k) - \lambda_{k-1}\,\phi_{k-1}(x_{k-1})
          + \log\frac{R_k(x_k\mid x_{k-1})}{M_k(x_k\mid x_{k-1})},\qquad
          \phi_k = \log\tilde\pi - \log q_k,

whose last term is the sampler's own increment (the one its uncorrected path weight
sums), so without resampling and moves the product of the :math:`w_k` is exactly the
sampler's importance weight. Between stages the population is resampled
(multinomially by default: the genealogy error bar of :math:`\log\hat Z` assumes it)
when the ESS falls below a threshold, and moved by MALA
(:func:`thermo.mcmc.mala`) targeting :math:`\gamma_k`, which leaves it invariant; the
step size follows a Robbins–Monro rule on the mean acceptance. The driver is
:func:`thermo.smc.sequential_monte_carlo` in its transport form, so :math:`\hat Z` is
unbiased and the samples asymptotically exact whatever the network (Phillips et al.
2024, particle denoising diffusion sampler; Skreta et al. 2025, Feynman–Kac
correctors); an untrained network (zero control) reduces it to SMC along the reference.

The schedule :math:`\lambda_k` may be fixed (default :math:`k/K`; ``"power"``:
:math:`(k/K)^4`) or ``"adaptive"``: a
pilot run (an independent population) of adaptive-tempering SMC from the reference's
terminal marginal :math:`q_K` to :math:`\tilde\pi` with the same MALA moves picks each
:math:`\lambda` by bisection so that the conditional ESS of the incremental weights
(Zhou, Johansen & Aston 2016) equals ``adaptive_ess``; the pilot's
:math:`\lambda_0, \dots, \lambda_M` are then spread over the sampler's :math:`K` stages
(:math:`\lambda_k = \lambda^{\text{pilot}}(kM/K)`, linear interpolation), so each stage
loses about the same conditional ESS. The schedule is fixed before the main run, which
stays an SMC on fixed targets: :math:`\hat Z` unbiased, as with any fixed schedule.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float

from thermo._checks import check_count, check_positive
from thermo._typing import PRNGKey
from thermo.kernel import Kernel
from thermo.mcmc import mala
from thermo.mcmc._mala import MALAState
from thermo.smc import SMCResult, sequential_monte_carlo, systematic_resampling

from ._common import AbstractSampler, SamplerState, _check_dim, _control_dim, as_target

__all__ = ["FKResult", "feynman_kac"]

#: ``lambdas="power"``: :math:`\lambda_k = (k/K)^4`, the default schedule of
#: :func:`thermo.mcmc.ais` (dense where the path leaves the reference).
_SCHEDULE_POWER = 4.0

#: Robbins–Monro gain of the log MALA step per sweep, and the acceptance it aims at
#: (0.574, the optimal MALA acceptance of Roberts & Rosenthal 1998).
_STEP_GAIN = 0.5
_TARGET_ACCEPTANCE = 0.574


class FKResult(NamedTuple):
    """What :func:`feynman_kac` returns.

    Attributes:
        samples: ``(n, dim)`` equally weighted draws (the final population resampled
            systematically by its weights).
        log_z: :math:`\\log\\hat Z` (:func:`thermo.estimators.estimate_log_z`).
        log_z_std: its standard error (Lee & Whiteley 2018 genealogy estimator).
        pareto_k: the largest PSIS tail index met (final weights and resampling events).
        n_energy_evals: energy-and-gradient evaluations spent (start, transport, moves).
        smc: the full :class:`thermo.smc.SMCResult` (weights, diagnostics).
    """

    samples: Float[Array, "n dim"]
    log_z: Float[Array, ""]
    log_z_std: Float[Array, ""]
    pareto_k: Float[Array, ""]
    n_energy_evals: Array
    smc: SMCResult


class _TransportInfo(NamedTuple):
    n_energy_evals: Array


def _transport_kernel(sampler: AbstractSampler, target) -> Kernel:
    kernel = sampler.kernel(target)

    def step(key, state):
        new, _ = kernel.step(key, state)
        return new, _TransportInfo(jnp.ones((), jnp.int32))

    return Kernel(kernel.init, step)


def _phi(sampler, target, param, state: SamplerState):
    step, lam = param
    phi = state.log_prob - sampler.reference_log_marginal(target, step, state.position)
    return jnp.where(lam == 0, 0.0, lam * phi)


def _move_kernel(sampler, target, param, log_step) -> Kernel:
    r"""MALA on :math:`\gamma_k` acting on a :class:`SamplerState` (one energy call)."""
    step_k, lam = param

    def log_q(x):
        return sampler.reference_log_marginal(target, step_k, x)

    def logdensity_fn(x):
        log_p = target.logdensity_fn(target.project(x))
        return (1.0 - lam) * log_q(x) + lam * log_p, log_p

    inner = mala(logdensity_fn, jnp.exp(log_step), project_fn=target.project, has_aux=True)

    def step(key, s: SamplerState):
        grad_q = target.project(jax.grad(log_q)(s.position))
        m = MALAState(
            s.position,
            (1.0 - lam) * log_q(s.position) + lam * s.log_prob,
            (1.0 - lam) * grad_q + lam * s.score,
            s.log_prob,
        )
        m, info = inner.step(key, m)
        grad_q_new = target.project(jax.grad(log_q)(m.position))
        # The target's score, recovered from the gradient of gamma_k (lam > 0 at every
        # stage with moves); it feeds the next transport step's network input only.
        score = (m.logdensity_grad - (1.0 - lam) * grad_q_new) / lam
        score = jnp.where(info.is_accepted, score, s.score)
        new = s._replace(position=m.position, log_prob=m.aux, score=score)
        return new, info

    return Kernel(None, step)


def _tune(log_step, particles, log_weights, info):
    del particles, log_weights
    if info is None:
        return log_step
    return log_step + _STEP_GAIN * (jnp.mean(info.acceptance_rate) - _TARGET_ACCEPTANCE)


def _reference_terminal_positions(key, sampler, target, n):
    """``n`` draws of the reference's terminal marginal :math:`q_K` (DDS, PIS)."""
    from ._dds import DDS
    from ._pis import PIS

    if isinstance(sampler, DDS):  # stationary reference: q_K = q_0
        return sampler.initial_positions(key, target, n)
    if isinstance(sampler, PIS):
        x = jr.normal(key, (n, target.dim), jnp.result_type(float))
        return jax.vmap(target.project)(sampler.sigma * jnp.sqrt(sampler.duration) * x)
    raise ValueError(
        f"feynman_kac: lambdas='adaptive' supports DDS and PIS, got {type(sampler).__name__}"
    )


@eqx.filter_jit
def _pilot_lambdas_jit(key, sampler, target, n, n_moves, step_size, target_ess, max_stages):
    r"""The adaptive schedule (module docstring) and the pilot's energy evaluations."""
    k_last = sampler.n_steps
    key_init, key_smc = jr.split(key)
    x0 = _reference_terminal_positions(key_init, sampler, target, n)
    particles = jax.vmap(sampler.kernel(target).init)(x0)

    def tempering_fn(s):
        return s.log_prob - sampler.reference_log_marginal(target, k_last, s.position)

    pilot = sequential_monte_carlo(
        key_smc,
        particles,
        (lambda lam, tuning: _move_kernel(sampler, target, (k_last, lam), tuning))
        if n_moves
        else None,
        tempering_fn=tempering_fn,
        n_moves=n_moves,
        resample_threshold=0.5,
        target_ess=target_ess,
        max_stages=max_stages,
        tuning=jnp.log(jnp.asarray(step_size, dtype=x0.dtype)),
        tune_fn=_tune if n_moves else None,
        n_initial_energy_evals=n,
    )
    m = pilot.diagnostics.n_stages
    lam_pilot = jnp.nan_to_num(pilot.diagnostics.params, nan=1.0)  # padded past stage m
    u = jnp.arange(k_last + 1, dtype=lam_pilot.dtype) * (m.astype(lam_pilot.dtype) / k_last)
    lambdas = jnp.interp(u, jnp.arange(lam_pilot.shape[0], dtype=lam_pilot.dtype), lam_pilot)
    lambdas = lambdas.at[0].set(0.0).at[-1].set(1.0)
    return lambdas, pilot.n_energy_evals


@eqx.filter_jit
def _feynman_kac_jit(
    key, sampler, target, n, lambdas, n_moves, step_size, threshold, resampling="multinomial"
):
    key_init, key_smc, key_final = jr.split(key, 3)
    x0 = sampler.initial_positions(key_init, target, n)
    transport = _transport_kernel(sampler, target)
    particles = jax.vmap(transport.init)(x0)
    schedule = (jnp.arange(sampler.n_steps + 1), lambdas)
    result = sequential_monte_carlo(
        key_smc,
        particles,
        (lambda param, tuning: _move_kernel(sampler, target, param, tuning)) if n_moves else None,
        schedule=schedule,
        log_weight_fn=lambda p_old, p_new, old, new: (
            _phi(sampler, target, p_new, new)
            - _phi(sampler, target, p_old, old)
            + new.log_weight
            - old.log_weight
        ),
        transport_fn=lambda p_old, p_new: transport,
        n_moves=n_moves,
        resample_threshold=threshold,
        tuning=jnp.log(jnp.asarray(step_size, dtype=x0.dtype)),
        tune_fn=_tune if n_moves else None,
        n_initial_energy_evals=n,
        resampling=resampling,
    )
    idx = systematic_resampling(key_final, result.log_weights)
    return FKResult(
        result.samples[idx],
        result.log_z,
        result.log_z_std,
        result.pareto_k,
        result.n_energy_evals,
        result,
    )


def feynman_kac(
    key: PRNGKey,
    sampler: AbstractSampler,
    target: Any,
    n: int,
    *,
    lambdas: Float[Array, " k1"] | str | None = None,
    n_moves: int = 1,
    step_size: float | None = None,
    resample_threshold: float = 0.5,
    adaptive_ess: float = 0.5,
    pilot_n: int | None = None,
    resampling: str = "multinomial",
) -> FKResult:
    r"""Sample ``target`` with ``sampler``'s chain corrected by SMC (module docstring).

    Args:
        key: PRNG key.
        sampler: a learned sampler with a ``reference_log_marginal`` (DDS, PIS), trained
            or not.
        target: a :mod:`thermo.systems` system or a :class:`Target`.
        n: population size (>= 2).
        lambdas: ``(n_steps + 1,)`` :math:`\lambda_0 = 0 \le \dots \le \lambda_K = 1`
            (default, or ``"linear"``: :math:`\lambda_k = k/K`), ``"power"``
            (:math:`\lambda_k = (k/K)^4`, small first steps where the reference's draws
            are far from the target), or ``"adaptive"``: fixed by a pilot run
            of adaptive tempering (module docstring; its cost is counted in
            ``n_energy_evals``; the schedule used is ``result.smc.diagnostics.params[1]``).
        n_moves: MALA sweeps on :math:`\gamma_k` after each stage (0: none).
        step_size: initial MALA step :math:`\epsilon` (default :math:`0.01 s^2` with
            :math:`s` the target's scale), adapted towards acceptance 0.574.
        resample_threshold: resample when ESS/n falls below it (0: never, i.e. the plain
            importance-weighted sampler).
        adaptive_ess: ``lambdas="adaptive"`` only: the pilot's conditional-ESS fraction
            per stage, in (0, 1).
        pilot_n: ``lambdas="adaptive"`` only: the pilot's population (default
            ``min(n, 256)``).
        resampling: ``"multinomial"`` (default; the genealogy error bar of
            ``log_z_std`` is derived for it) or ``"systematic"``.

    Returns:
        :class:`FKResult`; its cost is :math:`n(1 + K(1 + \text{n\_moves}))` energy
        evaluations, plus the pilot's with ``lambdas="adaptive"``.

    Raises:
        ValueError: a sampler without reference marginals, or a bad schedule.
    """
    target = as_target(target)
    if not hasattr(sampler, "reference_log_marginal"):
        raise ValueError(
            f"feynman_kac needs a sampler with reference marginals (DDS, PIS); "
            f"got {type(sampler).__name__}"
        )
    _check_dim(target, _control_dim(sampler.control), type(sampler).__name__)
    n = check_count(n, "feynman_kac: n")
    if n < 2:
        raise ValueError(f"feynman_kac: need n >= 2 particles, got {n}")
    n_moves = int(n_moves)
    if n_moves < 0:
        raise ValueError(f"feynman_kac: n_moves must be >= 0, got {n_moves}")
    k = sampler.n_steps
    step_size = 0.01 * target.scale**2 if step_size is None else float(step_size)
    check_positive(step_size, "feynman_kac: step_size")
    pilot_evals = 0
    if isinstance(lambdas, str):
        if lambdas not in ("linear", "power", "adaptive"):
            raise ValueError(
                "feynman_kac: lambdas must be an array, 'linear', 'power' or 'adaptive', "
                f"got {lambdas!r}"
            )
        if lambdas == "power":
            lambdas = jnp.linspace(0.0, 1.0, k + 1) ** _SCHEDULE_POWER
        elif lambdas == "linear":
            lambdas = None
    if isinstance(lambdas, str):  # "adaptive"
        if not 0.0 < float(adaptive_ess) < 1.0:
            raise ValueError(f"feynman_kac: adaptive_ess must be in (0, 1), got {adaptive_ess}")
        pilot_n = min(n, 256) if pilot_n is None else check_count(pilot_n, "feynman_kac: pilot_n")
        if pilot_n < 2:
            raise ValueError(f"feynman_kac: need pilot_n >= 2 particles, got {pilot_n}")
        key, key_pilot = jr.split(key)
        lambdas, pilot_evals = _pilot_lambdas_jit(
            key_pilot, sampler, target, pilot_n, n_moves, step_size, float(adaptive_ess), 10 * k
        )
    elif lambdas is None:
        lambdas = jnp.linspace(0.0, 1.0, k + 1)
    lambdas = jnp.asarray(lambdas, dtype=jnp.result_type(float))
    if lambdas.shape != (k + 1,):
        raise ValueError(f"feynman_kac: lambdas must have shape ({k + 1},), got {lambdas.shape}")
    if not (
        float(lambdas[0]) == 0.0
        and float(lambdas[-1]) == 1.0
        and bool(jnp.all(jnp.diff(lambdas) >= 0))
        and bool(jnp.all(lambdas[1:] > 0))
    ):
        raise ValueError(
            "feynman_kac: lambdas must rise from 0 to 1, positive after the first stage"
        )
    if resampling not in ("multinomial", "systematic"):
        raise ValueError(
            f"feynman_kac: resampling must be 'multinomial' or 'systematic', got {resampling!r}"
        )
    out = _feynman_kac_jit(
        key,
        sampler,
        target,
        n,
        lambdas,
        n_moves,
        step_size,
        float(resample_threshold),
        resampling,
    )
    return out._replace(n_energy_evals=out.n_energy_evals + pilot_evals)
