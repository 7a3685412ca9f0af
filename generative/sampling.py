r"""Sampling a score-based diffusion model: reverse SDE, predictor–corrector, probability flow.

Given a forward process (:mod:`generative.processes`) on :math:`[t_{\min}, T]` and a score
:math:`s(t,x)\approx\nabla\log p_t(x)`, every sampler starts from the prior at :math:`T` and
runs one of thermo's integrators (:mod:`thermo.integrate`) on an object built by thermo's
SDE type:

* :func:`sample_reverse_euler_maruyama`: Anderson's reverse SDE
  ``process.reverse(score_fn, t_min, T)`` (Song et al. 2021, eq. 6) stepped by thermo's
  fixed-step Euler–Maruyama :class:`~thermo.kernel.Kernel`;
* :func:`sample_reverse_sde`: the same SDE through diffrax (:func:`thermo.integrate.solve`,
  any diffrax SDE solver, a virtual Brownian tree);
* :func:`predictor_corrector`: Song et al. 2021, Algorithms 4/5: an Euler–Maruyama
  predictor followed by ``n_corrector`` Langevin MCMC corrector steps whose step size
  is set by a signal-to-noise ratio, as a Kernel driven by :func:`thermo.kernel.run`;
* :func:`sample_probability_flow`: the probability-flow ODE
  ``process.probability_flow(score_fn)`` (eq. 13) by adaptive diffrax
  (:func:`thermo.integrate.solve_ode`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, Int

from thermo import integrate
from thermo._checks import check_count, check_positive, warn_if_diverged
from thermo._typing import Args, PRNGKey, ScalarLike
from thermo.kernel import Kernel, run

from .processes import AbstractDiffusionProcess
from .thermodynamics import ancestral_step

__all__ = [
    "sample_reverse_euler_maruyama",
    "sample_reverse_sde",
    "sample_probability_flow",
    "predictor_corrector",
    "PredictorCorrectorState",
    "PredictorCorrectorInfo",
    "sample_predictor_corrector",
]

ScoreFn = Callable[[ScalarLike, Float[Array, " d"], Args], Float[Array, " d"]]


_PREDICTORS = ("euler_maruyama", "ancestral")


def _check_sampling_args(n_samples: int, dim: int, n_steps: int | None = None) -> None:
    check_count(n_samples, "n_samples")
    check_count(dim, "dim")
    if n_steps is not None:
        check_count(n_steps, "n_steps")


def _time_range(process: AbstractDiffusionProcess, t_min: float) -> tuple[float, float]:
    t1 = float(process.t1)
    if not 0.0 <= t_min < t1:
        raise ValueError(f"need 0 <= t_min < T = {t1}, got t_min = {t_min}")
    return float(t_min), t1


def _dtype():
    return jnp.result_type(float)


def _prior_start(key, process, n_samples, dim, n_steps, t_min):
    """Check the arguments, split ``key`` into ``(key_prior, key_run)`` and draw the
    ``(n_samples, dim)`` prior samples at ``T``: returns ``(key_run, x_T, t_min, T)``."""
    _check_sampling_args(n_samples, dim, n_steps)
    t0, t1 = _time_range(process, t_min)
    key_prior, key_run = jr.split(key)
    x_t = process.sample_prior(key_prior, (int(n_samples), int(dim))).astype(_dtype())
    return key_run, x_t, t0, t1


def sample_reverse_euler_maruyama(
    key: PRNGKey,
    process: AbstractDiffusionProcess,
    score_fn: ScoreFn,
    n_samples: int,
    dim: int,
    *,
    n_steps: int = 1000,
    t_min: float = 1e-3,
    denoise: bool = False,
    args: Args = None,
) -> Float[Array, "n_samples dim"]:
    r"""Samples by Euler–Maruyama on the reverse SDE, started from the prior at :math:`T`.

    .. math:: \bar x_{k+1} = \bar x_k + \big[-f + g^2 s\big](T - k h, \bar x_k)\,h + g\sqrt h\,\xi_k,
              \qquad h = (T - t_{\min})/N,

    i.e. thermo's :func:`~thermo.integrate.euler_maruyama` kernel on
    ``process.reverse(score_fn, t_min, T)``, run for every sample with
    :func:`~thermo.integrate.run_population` (Song et al. 2021, App. D "reverse diffusion").

    Args:
        key: PRNG key.
        process: the forward process.
        score_fn: ``(t, x, args) -> (d,)`` score of the forward marginals.
        n_samples, dim: population size and data dimension.
        n_steps: number of Euler–Maruyama steps :math:`N`.
        t_min: the time the reverse run stops at (Song et al.: :math:`10^{-3}` for VP).
        denoise: finish with Tweedie's denoising step
            :math:`\hat x_0 = (x + \sigma^2 s(t_{\min}, x))/a` at :math:`t_{\min}`
            (:math:`a, \sigma` the marginal coefficients), which removes the residual noise
            of :math:`p_{t_{\min}}` (Song et al. 2021, App. G; Efron 2011).
        args: passed to the score.

    Returns:
        ``(n_samples, dim)`` samples of :math:`p_{t_{\min}}` (its posterior means given
        ``denoise``).
    """
    key_run, x_t, t0, t1 = _prior_start(key, process, n_samples, dim, n_steps, t_min)
    final = _reverse_euler_maruyama(key_run, process, score_fn, x_t, int(n_steps), t0, t1, args)
    warn_if_diverged(x_t, final, "sample_reverse_euler_maruyama")
    if not denoise:
        return final
    return _denoise(process, score_fn, final, t0, args)


@eqx.filter_jit
def _reverse_euler_maruyama(key, process, score_fn, x_t, n_steps, t0, t1, args):
    """The compiled core of :func:`sample_reverse_euler_maruyama`: the kernel is built inside
    the trace, so a repeated call with the same process, score and shapes reuses it."""
    reverse = process.reverse(score_fn, t0, t1)
    kernel = integrate.euler_maruyama(reverse, (t1 - t0) / n_steps, t0=t0, args=args)
    final, _ = integrate.run_population(key, kernel, jax.vmap(kernel.init)(x_t), n_steps)
    return final.position


@eqx.filter_jit
def _denoise(process, score_fn, x, t, args):
    """Tweedie's step :math:`(x + \\sigma_t^2 s(t, x))/a_t` for a population ``(n, d)``."""
    a, std = process.marginal_coefficients(t)
    scores = jax.vmap(lambda xi: score_fn(t, xi, args))(x)
    return (x + std**2 * scores) / a


def sample_reverse_sde(
    key: PRNGKey,
    process: AbstractDiffusionProcess,
    score_fn: ScoreFn,
    n_samples: int,
    dim: int,
    *,
    n_steps: int = 1000,
    t_min: float = 1e-3,
    solver: dfx.AbstractSolver | None = None,
    args: Args = None,
) -> Float[Array, "n_samples dim"]:
    r"""Samples by solving the reverse SDE with a diffrax solver (:func:`thermo.integrate.solve`).

    Fixed steps :math:`h = (T - t_{\min})/N` in the reversed clock; ``solver`` defaults to
    ``dfx.Euler()`` (Euler–Maruyama). The noise is additive, so Stratonovich solvers such as
    ``dfx.Heun()`` or ``dfx.ShARK()`` solve the same SDE.

    Returns:
        ``(n_samples, dim)`` samples of :math:`p_{t_{\min}}`.
    """
    key_bm, x_t, t0, t1 = _prior_start(key, process, n_samples, dim, n_steps, t_min)
    reverse = process.reverse(score_fn, t0, t1)
    keys = jr.split(key_bm, int(n_samples))
    dt = (t1 - t0) / int(n_steps)

    def one(k, x):
        sol = integrate.solve(k, reverse, x, t0, t1, dt0=dt, solver=solver, args=args)
        return sol.ys[-1]

    samples = jax.vmap(one)(keys, x_t)
    warn_if_diverged(x_t, samples, "sample_reverse_sde")
    return samples


def sample_probability_flow(
    key: PRNGKey,
    process: AbstractDiffusionProcess,
    score_fn: ScoreFn,
    n_samples: int,
    dim: int,
    *,
    t_min: float = 1e-3,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    solver: dfx.AbstractSolver | None = None,
    args: Args = None,
) -> Float[Array, "n_samples dim"]:
    r"""Samples by integrating the probability-flow ODE from :math:`T` down to :math:`t_{\min}`.

    .. math:: \frac{dx}{dt} = f(t)x - \tfrac12 g(t)^2 s(t, x)

    (Song et al. 2021, eq. 13) with adaptive Tsit5 through :func:`thermo.integrate.solve_ode`,
    started from prior samples. The map is deterministic given the prior draw.

    Returns:
        ``(n_samples, dim)`` samples of :math:`p_{t_{\min}}`.
    """
    _check_sampling_args(n_samples, dim)
    t0, t1 = _time_range(process, t_min)
    ode = process.probability_flow(score_fn)
    x_t = process.sample_prior(key, (int(n_samples), int(dim))).astype(_dtype())

    def one(x):
        sol = integrate.solve_ode(ode, x, t1, t0, solver=solver, args=args, rtol=rtol, atol=atol)
        return sol.ys[-1]

    return jax.vmap(one)(x_t)


class PredictorCorrectorState(NamedTuple):
    """State of :func:`predictor_corrector`: a whole population (the corrector's step size
    uses population averages, as in Song et al.'s implementation).

    Attributes:
        position: ``(n, d)`` current samples.
        step: ``()`` number of predictor steps taken; the forward time is
            :math:`T - k h`.
    """

    position: Float[Array, "n d"]
    step: Int[Array, ""]


class PredictorCorrectorInfo(NamedTuple):
    """Per-step information.

    Attributes:
        corrector_step_size: ``()`` the last Langevin step size :math:`\\epsilon`.
    """

    corrector_step_size: Float[Array, ""]


def predictor_corrector(
    process: AbstractDiffusionProcess,
    score_fn: ScoreFn,
    *,
    n_steps: int,
    t_min: float = 1e-3,
    snr: float = 0.16,
    n_corrector: int = 1,
    predictor: str = "euler_maruyama",
    args: Args = None,
) -> Kernel:
    r"""Predictor–corrector sampling (Song et al. 2021, Algorithms 4 and 5) as a Kernel.

    The state is a population ``(n, d)``. One step from forward time :math:`t = T - kh` to
    :math:`t' = t - h`, :math:`h = (T - t_{\min})/N`:

    1. **predictor**: one step of thermo's Euler–Maruyama kernel on the reverse SDE, for
       every member (``predictor="euler_maruyama"``, their "reverse diffusion" predictor
       in the continuous clock), or the ancestral step
       :math:`x \leftarrow (x + \sigma_{t't}^2 s(t, x))/a_{t't} + \sigma_{t't} z` with the
       exact transition coefficients (``predictor="ancestral"``,
       :func:`generative.thermodynamics.ancestral_step`; Song et al. 2021,
       eq. 47 for VE, Ho et al. 2020 for VP);
    2. **corrector**: ``n_corrector`` steps of unadjusted Langevin dynamics on
       :math:`p_{t'}`, :math:`x \leftarrow x + \epsilon\,s(t', x) + \sqrt{2\epsilon}\,z`, with
       :math:`\epsilon = 2\alpha\,(r\,\overline{\|z\|}/\overline{\|s\|})^2`, the bars being
       population means of the norms, :math:`r` the signal-to-noise ratio ``snr``
       (0.16 is their CIFAR-10 value) and :math:`\alpha = a(t', t)^2` the one-step signal
       retention for VP/sub-VP (:math:`1-\beta_i` in their discrete notation; 1 for VE).

    Every predictor and corrector step ends with ``process.retract`` (the identity on
    :math:`\mathbb R^d`, wrapping into the cell on the torus). Run it with
    ``thermo.kernel.run(key, kernel, kernel.init(x_T), n_steps)``, or use
    :func:`sample_predictor_corrector`.

    Returns:
        ``Kernel(init(positions) -> PredictorCorrectorState, step(key, state))``.
    """
    n_steps = check_count(n_steps, "n_steps")
    n_corrector = check_count(n_corrector, "n_corrector", minimum=0)
    check_positive(snr, "snr")
    if predictor not in _PREDICTORS:
        raise ValueError(f"predictor must be one of {_PREDICTORS}, got {predictor!r}")
    t0, t1 = _time_range(process, t_min)
    h = (t1 - t0) / int(n_steps)
    reverse = process.reverse(score_fn, t0, t1)
    em = integrate.euler_maruyama(reverse, h, t0=t0, args=args)

    def init(positions: Float[Array, "n d"]) -> PredictorCorrectorState:
        x = jnp.asarray(positions)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"positions must have shape (n, d) with n > 0, got {x.shape}")
        return PredictorCorrectorState(x, jnp.zeros((), jnp.int32))

    def step(key: PRNGKey, state: PredictorCorrectorState):
        key_p, key_c = jr.split(key)
        x = state.position
        n = x.shape[0]
        k_next = state.step + 1
        clock = jnp.asarray(t0 + state.step.astype(jnp.result_type(h)) * h, x.dtype)

        t_next = t1 - k_next.astype(jnp.result_type(h)) * h  # forward time after the predictor step

        def predict(k, xi):
            if predictor == "ancestral":
                return ancestral_step(k, process, score_fn, t_next, t_next + h, xi, args).x
            em_state = integrate.EulerMaruyamaState(xi, clock, state.step, jnp.zeros((), x.dtype))
            return em.step(k, em_state)[0].position

        x = process.retract(jax.vmap(predict)(jr.split(key_p, n), x))
        a_step, _ = process.transition_coefficients(t_next, t_next + h)
        alpha = a_step**2

        def corrector(x, k):
            s = jax.vmap(lambda xi: score_fn(t_next, xi, args))(x)
            z = process.noise(k, x.shape).astype(x.dtype)
            z_norm = jnp.mean(jnp.linalg.norm(z, axis=-1))
            s_norm = jnp.maximum(jnp.mean(jnp.linalg.norm(s, axis=-1)), 1e-12)
            eps = 2.0 * alpha * (snr * z_norm / s_norm) ** 2
            return process.retract(x + eps * s + jnp.sqrt(2.0 * eps) * z), eps

        if n_corrector > 0:
            x, eps = jax.lax.scan(corrector, x, jr.split(key_c, n_corrector))
            last_eps = eps[-1]
        else:
            last_eps = jnp.zeros((), x.dtype)
        return PredictorCorrectorState(x, k_next), PredictorCorrectorInfo(last_eps)

    return Kernel(init, step)


def sample_predictor_corrector(
    key: PRNGKey,
    process: AbstractDiffusionProcess,
    score_fn: ScoreFn,
    n_samples: int,
    dim: int,
    *,
    n_steps: int = 1000,
    t_min: float = 1e-3,
    snr: float = 0.16,
    n_corrector: int = 1,
    predictor: str = "euler_maruyama",
    denoise: bool = False,
    args: Args = None,
) -> Float[Array, "n_samples dim"]:
    """Run :func:`predictor_corrector` from prior samples with :func:`thermo.kernel.run`.

    ``denoise`` finishes with Tweedie's step at :math:`t_{\\min}` (as in
    :func:`sample_reverse_euler_maruyama`), then ``process.retract``.

    Returns:
        ``(n_samples, dim)`` samples of :math:`p_{t_{\\min}}`.
    """
    n_corrector = check_count(n_corrector, "n_corrector", minimum=0)
    check_positive(snr, "snr")
    key_run, x_t, _, _ = _prior_start(key, process, n_samples, dim, n_steps, t_min)
    if predictor not in _PREDICTORS:
        raise ValueError(f"predictor must be one of {_PREDICTORS}, got {predictor!r}")
    options = (int(n_steps), float(t_min), float(snr), n_corrector, predictor, bool(denoise))
    return _predictor_corrector(key_run, process, score_fn, x_t, options, args)


@eqx.filter_jit
def _predictor_corrector(key, process, score_fn, x_t, options, args):
    """The compiled core of :func:`sample_predictor_corrector` (the kernel is built inside
    the trace, so a repeated call with the same process, score and shapes reuses it)."""
    n_steps, t_min, snr, n_corrector, predictor, denoise = options
    kernel = predictor_corrector(
        process,
        score_fn,
        n_steps=n_steps,
        t_min=t_min,
        snr=snr,
        n_corrector=n_corrector,
        predictor=predictor,
        args=args,
    )
    final, _ = run(key, kernel, kernel.init(x_t), n_steps, observable_fn=None)
    if not denoise:
        return final.position
    return process.retract(_denoise(process, score_fn, final.position, t_min, args))
