r"""Integrators for :class:`~thermo.sde.AbstractSDE`: diffrax solves and fixed-step kernels.

Two families, which must (and, in the tests, do) agree on the same problem:

* **diffrax** (:func:`solve`, :func:`solve_ode`): ``diffeqsolve`` with a
  ``VirtualBrownianTree``, any diffrax SDE solver, adaptive steps if wanted; and the
  probability-flow ODE with Tsit5/Dopri5 and a PID controller. Use these where
  adaptivity, reversibility or dense output matter.
* **fixed-step** :class:`~thermo.kernel.Kernel` s for long runs, driven by
  :func:`thermo.kernel.run` (one ``lax.scan``):

  - :func:`euler_maruyama` for any SDE (time carried in the state), optionally
    accumulating the exact discrete-time log RN weight against a reverse SDE;
  - :func:`overdamped_langevin`, :math:`dx = -\nabla U\,dt + \sqrt{2/\beta}\,dW`;
  - :func:`baoab`, underdamped Langevin by BAOAB (Leimkuhler & Matthews 2013).

  The Langevin kernels take an energy ``U(x)`` or a :class:`~thermo.protocols.Protocol`
  ``U(x, lambda(t))`` and accumulate the work, heat and exact log RN weight of every path
  (see :mod:`thermo.protocols`).

States are flat vectors ``x`` of shape ``(d,)``; populations are ``jax.vmap`` -ed
(:func:`run_population` does that around :func:`thermo.kernel.run`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
from jaxtyping import Array, Float, Int

from ._checks import (
    DivergenceWarning,
    check_count,
    check_finite,
    check_positive,
    warn_if_diverged,
)
from ._typing import Args, PRNGKey, ScalarLike
from .kernel import Kernel, run
from .protocols import Protocol, as_protocol
from .sde import AbstractSDE, ProbabilityFlowODE, ReverseSDE, brownian_shape, diffusion_matvec

__all__ = [
    "solve",
    "solve_ode",
    "diffusion_operator",
    "euler_maruyama_log_prob",
    "EulerMaruyamaState",
    "EulerMaruyamaInfo",
    "euler_maruyama",
    "LangevinState",
    "LangevinInfo",
    "overdamped_langevin",
    "BAOABState",
    "BAOABInfo",
    "baoab",
    "maxwell_boltzmann",
    "run_population",
]


# --------------------------------------------------------------------------------------
# Boundary checks
# --------------------------------------------------------------------------------------


def _check_position(x: Array, name: str = "x0") -> Array:
    x = jnp.asarray(x)
    if x.ndim != 1:
        raise ValueError(
            f"{name} must be one flat state of shape (d,), got shape {x.shape}; "
            "vmap over a population instead of passing a batch"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return eqx.error_if(x, ~jnp.all(jnp.isfinite(x)), f"{name} contains NaN or inf")


def _check_diffusion_shape(g_shape: tuple[int, ...], d: int) -> None:
    ok = (
        len(g_shape) == 0
        or (len(g_shape) == 1 and g_shape[0] == d)
        or (len(g_shape) == 2 and g_shape[0] == d)
    )
    if not ok:
        raise ValueError(
            f"diffusion must have shape () (scalar), ({d},) (diagonal) or ({d}, m) (full) "
            f"for a state of dimension {d}; got {g_shape}"
        )


def _positive(value: Any, name: str) -> None:
    check_positive(value, name)  # skips a traced value


# --------------------------------------------------------------------------------------
# diffrax
# --------------------------------------------------------------------------------------


def diffusion_operator(g: Array, d: int) -> lx.AbstractLinearOperator:
    r"""The lineax operator :math:`G` for a scalar ``()``, diagonal ``(d,)`` or full ``(d, m)``
    diffusion, as diffrax's ``ControlTerm`` consumes it (``G.mv(dW)``).

    Scalar and diagonal diffusions become ``DiagonalLinearOperator`` (an elementwise
    product, :math:`O(d)`), a full one ``MatrixLinearOperator`` (:math:`O(dm)`).
    """
    g = jnp.asarray(g)
    if g.ndim == 2:
        return lx.MatrixLinearOperator(g)
    return lx.DiagonalLinearOperator(jnp.broadcast_to(g, (d,)))


def _levy_area_for(solver: dfx.AbstractSolver) -> type:
    minimal = getattr(solver, "minimal_levy_area", dfx.AbstractBrownianIncrement)
    if issubclass(minimal, dfx.AbstractSpaceTimeTimeLevyArea):
        return dfx.SpaceTimeTimeLevyArea
    if issubclass(minimal, dfx.AbstractSpaceTimeLevyArea):
        return dfx.SpaceTimeLevyArea
    return dfx.BrownianIncrement


def _default_max_steps(t0, t1, dt0, dtmin, adaptive: bool) -> int:
    """Fixed steps: exactly ceil((t1 - t0) / dt0). Adaptive: room for every step at dtmin
    plus as many rejections (at least 16**4)."""
    step = dtmin if adaptive else dt0
    if step is None:
        return 16**4
    try:
        n = math.ceil(abs(float(t1) - float(t0)) / abs(float(step)) - 1e-9)
    except (TypeError, jax.errors.ConcretizationTypeError):
        return 16**4
    return max(2 * n + 1, 16**4) if adaptive else max(n, 1) + 1


@eqx.filter_jit
def solve(
    key: PRNGKey,
    sde: AbstractSDE,
    x0: Float[Array, " d"],
    t0: ScalarLike,
    t1: ScalarLike,
    *,
    dt0: ScalarLike,
    solver: dfx.AbstractSolver | None = None,
    saveat: dfx.SaveAt | None = None,
    args: Args = None,
    adaptive: bool = False,
    rtol: float = 1e-3,
    atol: float = 1e-6,
    dtmin: float | None = None,
    brownian_tol: float | None = None,
    max_steps: int | None = None,
) -> dfx.Solution:
    r"""Solve :math:`dX = f(t,X)\,dt + G(t,X)\,dW` on ``[t0, t1]`` with diffrax.

    The drift is an ``ODETerm``; the diffusion is a ``ControlTerm`` whose vector field
    returns a lineax operator (:func:`diffusion_operator`: diagonal for a scalar or
    diagonal :math:`G`, dense for a full ``(d, m)`` one) driven by a
    ``VirtualBrownianTree`` (Kidger et al. 2021) of shape ``(d,)`` or ``(m,)`` and dtype
    ``x0.dtype``, resolved to ``brownian_tol`` (default ``dt0 / 2``, or ``dtmin / 2`` when
    adaptive). The Brownian path is a pure function of ``key``: two solves with the same
    key see the same noise (common random numbers across step sizes and solvers).

    Args:
        key: PRNG key of the Brownian motion.
        sde: any :class:`~thermo.sde.AbstractSDE` (a :class:`~thermo.sde.ReverseSDE` runs
            in its forward-running clock, so pass its ``t0 < t1``).
        x0: initial state ``(d,)``; vmap over keys (and ``x0``) for a population.
        t0, t1: integration interval, ``t0 < t1``.
        dt0: (initial) step size.
        solver: a diffrax SDE solver, default ``dfx.Euler()`` (Euler–Maruyama, Itô).
            Solvers such as ``Heun`` or ``ShARK`` converge to the *Stratonovich* solution;
            that is the same SDE only when :math:`G` does not depend on ``x`` (additive
            noise). Space-time(-time) Lévy area is generated when the solver needs it.
        saveat: diffrax ``SaveAt``; default the final time only.
        args: passed to drift and diffusion.
        adaptive: use a ``PIDController(rtol, atol, dtmin)``; needs a solver with an
            error estimate (e.g. ``Heun``, ``SPaRK``, ``ShARK``).
        rtol, atol, dtmin: adaptive controller settings.
        brownian_tol: resolution of the Brownian tree.
        max_steps: diffrax's step budget; default :math:`\lceil (t_1-t_0)/dt_0\rceil + 1`
            for fixed steps, :math:`\max(2\lceil (t_1-t_0)/dt_{\min}\rceil + 1, 16^4)` when
            adaptive.

    Returns:
        The diffrax ``Solution``; ``sol.ys`` has shape ``(n_saved, d)``.
    """
    x0 = _check_position(x0)
    d = x0.shape[0]
    _positive(dt0, "dt0")
    _positive(rtol, "rtol")
    _positive(atol, "atol")
    if dtmin is not None:
        _positive(dtmin, "dtmin")
    if brownian_tol is not None:
        _positive(brownian_tol, "brownian_tol")
    if max_steps is not None:
        max_steps = check_count(max_steps, "max_steps")
    if solver is None:
        solver = dfx.Euler()
    if saveat is None:
        saveat = dfx.SaveAt(t1=True)
    g_struct = jax.eval_shape(lambda: sde.diffusion(t0, x0, args))
    _check_diffusion_shape(g_struct.shape, d)
    bm_shape = (g_struct.shape[1],) if len(g_struct.shape) == 2 else (d,)
    if adaptive and brownian_tol is None and dtmin is None:
        raise ValueError(
            "adaptive SDE solves need dtmin (or brownian_tol) so that the Brownian tree "
            "resolves every step the controller may take"
        )
    if brownian_tol is None:
        brownian_tol = (dtmin if adaptive else dt0) / 2
    brownian = dfx.VirtualBrownianTree(
        t0,
        t1,
        tol=brownian_tol,
        shape=jax.ShapeDtypeStruct(bm_shape, x0.dtype),
        key=key,
        levy_area=_levy_area_for(solver),
    )
    drift = dfx.ODETerm(lambda t, y, a: sde.drift(t, y, a))
    noise = dfx.ControlTerm(lambda t, y, a: diffusion_operator(sde.diffusion(t, y, a), d), brownian)
    terms = dfx.MultiTerm(drift, noise)
    if adaptive:
        controller = dfx.PIDController(rtol=rtol, atol=atol, dtmin=dtmin)
    else:
        controller = dfx.ConstantStepSize()
    if max_steps is None:
        max_steps = _default_max_steps(t0, t1, dt0, dtmin, adaptive)
    return dfx.diffeqsolve(
        terms,
        solver,
        t0,
        t1,
        dt0,
        x0,
        args,
        saveat=saveat,
        stepsize_controller=controller,
        max_steps=max_steps,
    )


@eqx.filter_jit
def solve_ode(
    ode: ProbabilityFlowODE | Callable[[ScalarLike, Float[Array, " d"], Args], Array],
    x0: Float[Array, " d"],
    t0: ScalarLike,
    t1: ScalarLike,
    *,
    solver: dfx.AbstractSolver | None = None,
    saveat: dfx.SaveAt | None = None,
    args: Args = None,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    dt0: ScalarLike | None = None,
    max_steps: int = 16**4,
) -> dfx.Solution:
    r"""Solve :math:`\dot x = v(t, x)` from ``t0`` to ``t1`` (either direction) with diffrax.

    Meant for the probability-flow ODE (Song et al. 2021, eq. 13) of an SDE,
    ``sde.probability_flow(score_fn)``, whose flow maps :math:`p_{t_0}` samples to
    :math:`p_{t_1}` samples; integrate from ``t1 = T`` back to ``t0 = 0`` directly by
    passing ``t0 > t1``. Adaptive Tsit5 (Tsitouras 2011) with a PID controller by default.

    Args:
        ode: a :class:`~thermo.sde.ProbabilityFlowODE` or any ``v(t, x, args)``.
        x0: initial state ``(d,)``.
        t0, t1: start and end times (``t1 < t0`` integrates backwards).
        solver: a diffrax ODE solver, default ``dfx.Tsit5()``.
        saveat: default the final time only.
        args: passed to the vector field.
        rtol, atol: PID controller tolerances (the solution is deterministic and
            accurate to about these).
        dt0: initial step; default chosen by diffrax.
        max_steps: diffrax's step budget.

    Returns:
        The diffrax ``Solution``; ``sol.ys`` has shape ``(n_saved, d)``.
    """
    x0 = _check_position(x0)
    _positive(rtol, "rtol")
    _positive(atol, "atol")
    max_steps = check_count(max_steps, "max_steps")
    if dt0 is not None:
        check_finite(dt0, "dt0")  # negative when integrating backwards
    if solver is None:
        solver = dfx.Tsit5()
    if saveat is None:
        saveat = dfx.SaveAt(t1=True)
    field = ode.vector_field if isinstance(ode, ProbabilityFlowODE) else ode
    return dfx.diffeqsolve(
        dfx.ODETerm(lambda t, y, a: field(t, y, a)),
        solver,
        t0,
        t1,
        dt0,
        x0,
        args,
        saveat=saveat,
        stepsize_controller=dfx.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps,
    )


# --------------------------------------------------------------------------------------
# Euler–Maruyama
# --------------------------------------------------------------------------------------


def euler_maruyama_log_prob(
    sde: AbstractSDE,
    t: ScalarLike,
    dt: ScalarLike,
    x: Float[Array, " d"],
    x_next: Float[Array, " d"],
    args: Args = None,
) -> Float[Array, ""]:
    r"""Log-density of one Euler–Maruyama transition :math:`x \to x'` of ``sde`` at time ``t``:

    .. math:: \log \mathcal N\big(x';\; x + f(t,x)\,dt,\; G G^\top(t,x)\,dt\big).

    Scalar and diagonal :math:`G` give a product of 1-D Gaussians; a full ``(d, m)``
    :math:`G` with :math:`\Sigma = GG^\top dt` positive definite is factorised by Cholesky.
    This is the discrete-time kernel density used for exact log RN weights between forward
    and backward Euler path measures (Crooks 1999; Vargas et al. 2023).

    **Rank-deficient** :math:`\Sigma` (e.g. a diffusion projected on the centre-of-mass-free
    subspace, :math:`G = gP`): the transition then has a density only on the affine
    subspace :math:`x + f\,dt + \operatorname{range}\Sigma`, and the density returned is the
    one with respect to Lebesgue measure on that subspace, through the pseudo-inverse,

    .. math:: -\tfrac12 r^\top\Sigma^+ r - \tfrac12\sum_{\lambda_i > \tau}\log\lambda_i
              - \tfrac{k}{2}\log 2\pi,\qquad k = \#\{\lambda_i > \tau\},

    with :math:`\lambda_i` the eigenvalues of :math:`\Sigma` (``eigh``) and the rank
    tolerance :math:`\tau = d\,\epsilon\,\lambda_{\max}` of ``numpy.linalg.matrix_rank``
    (:math:`\epsilon` the dtype's machine epsilon). This is the log-density in orthonormal
    coordinates of the subspace, so forward and backward kernels living on the same
    subspace give the right log Radon–Nikodym weight. The residual's component outside the
    subspace is ignored (it is zero for paths of the SDE itself). The pseudo-inverse is
    used when the Cholesky factor is not finite or has a squared diagonal ratio below
    :math:`d\epsilon` (both are computed then; inside ``vmap`` both branches run).
    """
    g = sde.diffusion(t, x, args)
    r = x_next - x - sde.drift(t, x, args) * dt
    d = x.shape[0]
    if g.ndim == 2:
        cov = g @ g.T * dt
        return _gaussian_log_prob_psd(r, cov)
    var = jnp.broadcast_to(g**2 * dt, (d,))
    return -0.5 * jnp.sum(r**2 / var + jnp.log(2 * jnp.pi * var))


def _gaussian_log_prob_psd(r: Array, cov: Array) -> Array:
    """``log N(r; 0, cov)`` for a PSD ``cov``: Cholesky, or the pseudo-inverse if singular."""
    d = r.shape[0]
    eps = jnp.finfo(cov.dtype).eps
    chol = jnp.linalg.cholesky(cov)
    diag2 = jnp.diag(chol) ** 2
    singular = ~jnp.all(jnp.isfinite(chol)) | (jnp.min(diag2) <= d * eps * jnp.max(diag2))

    def full_rank(_):
        z = jax.scipy.linalg.solve_triangular(chol, r, lower=True)
        log_det = 2.0 * jnp.sum(jnp.log(jnp.diag(chol)))
        return -0.5 * jnp.sum(z**2) - 0.5 * log_det - 0.5 * d * jnp.log(2 * jnp.pi)

    def pseudo_inverse(_):
        lam, vec = jnp.linalg.eigh(cov)
        keep = lam > d * eps * jnp.max(lam)
        safe = jnp.where(keep, lam, 1.0)
        z2 = jnp.where(keep, (vec.T @ r) ** 2 / safe, 0.0)
        rank = jnp.sum(keep)
        rank_term = (0.5 * rank.astype(jnp.result_type(float)) * jnp.log(2 * jnp.pi)).astype(
            cov.dtype
        )
        return -0.5 * jnp.sum(z2) - 0.5 * jnp.sum(jnp.log(safe)) - rank_term

    return jax.lax.cond(singular, pseudo_inverse, full_rank, None)


class EulerMaruyamaState(NamedTuple):
    """State of :func:`euler_maruyama` (one path; vmap for a population).

    Attributes:
        position: ``(d,)`` current state :math:`x_k`.
        time: ``()`` current time :math:`t_k = t_0 + k\\,dt` (recomputed from ``step``, so
            it does not drift in float32).
        step: ``()`` integer step counter :math:`k`.
        log_weight: ``()`` accumulated :math:`\\sum\\log B - \\log F` against the reverse SDE
            (zero when none is given).
    """

    position: Float[Array, " d"]
    time: Float[Array, ""]
    step: Int[Array, ""]
    log_weight: Float[Array, ""]


class EulerMaruyamaInfo(NamedTuple):
    """Per-step information of :func:`euler_maruyama`.

    Attributes:
        log_weight_increment: ``()`` this step's :math:`\\log B - \\log F` (zero without a
            reverse SDE).
    """

    log_weight_increment: Float[Array, ""]


def euler_maruyama(
    sde: AbstractSDE,
    dt: ScalarLike,
    *,
    t0: ScalarLike = 0.0,
    args: Args = None,
    reverse_sde: AbstractSDE | None = None,
    time_sum: ScalarLike | None = None,
) -> Kernel:
    r"""Euler–Maruyama (Maruyama 1955; Kloeden & Platen 1992) for any SDE, as a Kernel.

    .. math:: x_{k+1} = x_k + f(t_k, x_k)\,dt + G(t_k, x_k)\,\sqrt{dt}\,\xi_k,
              \qquad \xi_k\sim\mathcal N(0, I),\quad t_k = t_0 + k\,dt.

    Strong order 1/2, weak order 1. Scalar, diagonal and full diffusions are handled by
    :func:`thermo.sde.diffusion_matvec`; the noise has the Brownian shape of :math:`G`.

    With ``reverse_sde`` (an SDE in the forward-running reversed clock
    :math:`s = \mathtt{time\_sum} - t`, as :meth:`AbstractSDE.reverse` builds it) the state
    accumulates the discrete-time log Radon–Nikodym weight of the backward Euler path
    measure against the forward one,

    .. math:: \log w \mathrel{+}= \log \mathcal N\big(x_k; x_{k+1} + b(s_{k+1}, x_{k+1})dt,
              \bar G\bar G^\top dt\big) - \log \mathcal N\big(x_{k+1}; x_k + f(t_k,x_k)dt,
              GG^\top dt\big),\quad s_{k+1} = \mathtt{time\_sum} - t_{k+1},

    (the sum in discrete-time diffusion samplers; add the boundary terms
    :math:`\log p_{\rm target}(x_N) - \log p_{\rm start}(x_0)` yourself).

    Args:
        sde: any :class:`~thermo.sde.AbstractSDE`.
        dt: step size (positive).
        t0: time of step zero.
        args: passed to drift and diffusion.
        reverse_sde: optional backward SDE for the log weight.
        time_sum: :math:`t_0 + t_1` of the reversed clock; defaults to
            ``reverse_sde.t0 + reverse_sde.t1`` for a :class:`~thermo.sde.ReverseSDE`.

    Returns:
        ``Kernel(init(position) -> EulerMaruyamaState, step(key, state))``.
    """
    _positive(dt, "dt")
    if reverse_sde is not None and time_sum is None:
        if not isinstance(reverse_sde, ReverseSDE):
            raise ValueError("time_sum is required when reverse_sde is not a ReverseSDE")
        time_sum = reverse_sde.t0 + reverse_sde.t1

    def init(position: Float[Array, " d"]) -> EulerMaruyamaState:
        x = _check_position(position, "position")
        g_struct = jax.eval_shape(lambda: sde.diffusion(t0, x, args))
        _check_diffusion_shape(g_struct.shape, x.shape[0])
        zero = jnp.zeros((), x.dtype)
        return EulerMaruyamaState(x, zero + t0, jnp.zeros((), jnp.int32), zero)

    def step(key: PRNGKey, state: EulerMaruyamaState):
        x, t = state.position, state.time
        g = sde.diffusion(t, x, args)
        noise = jr.normal(key, brownian_shape(g, x), x.dtype)
        x_next = x + sde.drift(t, x, args) * dt + diffusion_matvec(g, noise) * jnp.sqrt(dt)
        k_next = state.step + 1
        t_next = (t0 + k_next.astype(jnp.result_type(dt)) * dt).astype(x.dtype)
        if reverse_sde is None:
            inc = jnp.zeros((), x.dtype)
        else:
            log_f = euler_maruyama_log_prob(sde, t, dt, x, x_next, args)
            log_b = euler_maruyama_log_prob(reverse_sde, time_sum - t_next, dt, x_next, x, args)
            inc = log_b - log_f
        new = EulerMaruyamaState(x_next, t_next, k_next, state.log_weight + inc)
        return new, EulerMaruyamaInfo(inc)

    return Kernel(init, step)


# --------------------------------------------------------------------------------------
# Overdamped Langevin with work bookkeeping
# --------------------------------------------------------------------------------------


class LangevinState(NamedTuple):
    r"""State of :func:`overdamped_langevin` for one path.

    Attributes:
        position: ``(d,)`` :math:`x_k`.
        energy: ``()`` :math:`U(x_k, \lambda_k)`.
        grad: ``(d,)`` :math:`\nabla_x U(x_k, \lambda_k)`.
        step: ``()`` step counter :math:`k`; the time is :math:`t_0 + k\,dt`.
        work: ``()`` accumulated work :math:`W` (energy units).
        heat: ``()`` accumulated heat :math:`Q` absorbed by the system.
        log_weight: ``()`` exact discrete-time log RN weight, boundary terms included
            (see :mod:`thermo.protocols`); estimates :math:`\log Z_k - \log Z_0`.
        n_energy_evals: ``()`` energy-and-gradient evaluations spent on this path.
    """

    position: Float[Array, " d"]
    energy: Float[Array, ""]
    grad: Float[Array, " d"]
    step: Int[Array, ""]
    work: Float[Array, ""]
    heat: Float[Array, ""]
    log_weight: Float[Array, ""]
    n_energy_evals: Int[Array, ""]


class LangevinInfo(NamedTuple):
    """Per-step increments of the path functionals (work, heat, log weight)."""

    work: Float[Array, ""]
    heat: Float[Array, ""]
    log_weight: Float[Array, ""]


def _value_and_grad(protocol: Protocol, x, lam):
    return jax.value_and_grad(protocol.energy_fn)(x, lam)


def overdamped_langevin(
    energy: Callable[[Float[Array, " d"]], Float[Array, ""]] | Protocol,
    *,
    beta: ScalarLike,
    dt: ScalarLike,
    t0: ScalarLike = 0.0,
) -> Kernel:
    r"""Overdamped Langevin dynamics :math:`dx = -\nabla U\,dt + \sqrt{2/\beta}\,dW` by
    Euler–Maruyama (the unadjusted Langevin algorithm), with work bookkeeping.

    One step :math:`k \to k+1` (:math:`\lambda_k = \lambda(t_0 + k\,dt)`):

    1. switch :math:`\lambda_k\to\lambda_{k+1}` at fixed :math:`x_k`:
       :math:`W \mathrel{+}= U(x_k,\lambda_{k+1}) - U(x_k,\lambda_k)`;
    2. move with the forward kernel
       :math:`F = \mathcal N(x_{k+1};\, x_k - dt\,\nabla U_{k+1}(x_k),\, 2dt/\beta)`:
       :math:`Q \mathrel{+}= U(x_{k+1},\lambda_{k+1}) - U(x_k,\lambda_{k+1})`;
    3. score against the backward kernel, the same Euler kernel run from :math:`x_{k+1}`,
       :math:`B = \mathcal N(x_k;\, x_{k+1} - dt\,\nabla U_{k+1}(x_{k+1}),\, 2dt/\beta)`:
       :math:`\log w \mathrel{+}= -\beta(\Delta W + \Delta Q) + \log B - \log F`.

    With :math:`x_0 \sim e^{-\beta U(\cdot,\lambda_0)}/Z_0` exactly,
    :math:`\mathbb E[e^{\log w}] = Z_N/Z_0` for every ``dt`` (Crooks 1999; Neal 2001),
    while :math:`\mathbb E[e^{-\beta W}] = Z_N/Z_0` (Jarzynski 1997) holds up to the
    :math:`O(dt)` bias of the unadjusted kernel; :math:`\log w \to -\beta W` as
    :math:`dt\to0` (for quadratic :math:`U` the difference is exactly
    :math:`-\tfrac{\beta\,dt}{4}\sum_k(|\nabla U_{k+1}(x_{k+1})|^2 - |\nabla U_{k+1}(x_k)|^2)`).

    Cost: one energy-and-gradient evaluation per step for a static energy, two when
    :math:`\lambda` changes.

    Args:
        energy: ``energy_fn(x) -> scalar`` or a :class:`~thermo.protocols.Protocol`.
        beta: inverse temperature :math:`\beta = 1/k_BT` (energy units of ``U``).
        dt: step size (the mobility is one, so time is in units of it).
        t0: the protocol time of step zero.

    Returns:
        ``Kernel(init(position) -> LangevinState, step(key, state))``.
    """
    protocol = as_protocol(energy)
    _positive(beta, "beta")
    _positive(dt, "dt")
    static = protocol.static

    def init(position: Float[Array, " d"]) -> LangevinState:
        x = _check_position(position, "position")
        u, g = _value_and_grad(protocol, x, protocol.lam(t0))
        u = eqx.error_if(u, ~jnp.isfinite(u), "energy is not finite at the initial position")
        zero = jnp.zeros((), u.dtype)
        return LangevinState(
            x, u, g, jnp.zeros((), jnp.int32), zero, zero, zero, jnp.ones((), jnp.int32)
        )

    def step(key: PRNGKey, state: LangevinState):
        x = state.position
        k_next = state.step + 1
        if static:
            u_x, g_x = state.energy, state.grad
            lam_next = protocol.lam(t0)
            evals = 1
        else:
            lam_next = protocol.lam(t0 + k_next.astype(jnp.result_type(dt)) * dt)
            u_x, g_x = _value_and_grad(protocol, x, lam_next)
            evals = 2
        d_work = u_x - state.energy
        mean_f = x - dt * g_x
        x_next = mean_f + jnp.sqrt(2.0 * dt / beta) * jr.normal(key, x.shape, x.dtype)
        u_next, g_next = _value_and_grad(protocol, x_next, lam_next)
        d_heat = u_next - u_x
        mean_b = x_next - dt * g_next
        # log B - log F; the Gaussian normalisers (same variance 2dt/beta) cancel.
        log_ratio = (
            -beta / (4.0 * dt) * (jnp.sum((x - mean_b) ** 2) - jnp.sum((x_next - mean_f) ** 2))
        )
        d_log_w = -beta * (d_work + d_heat) + log_ratio
        new = LangevinState(
            x_next,
            u_next,
            g_next,
            k_next,
            state.work + d_work,
            state.heat + d_heat,
            state.log_weight + d_log_w,
            state.n_energy_evals + evals,
        )
        return new, LangevinInfo(d_work, d_heat, d_log_w)

    return Kernel(init, step)


# --------------------------------------------------------------------------------------
# Underdamped Langevin: BAOAB
# --------------------------------------------------------------------------------------


class BAOABState(NamedTuple):
    r"""State of :func:`baoab` for one path.

    Attributes:
        position: ``(d,)`` :math:`x_k`.
        momentum: ``(d,)`` :math:`p_k`.
        energy: ``()`` :math:`U(x_k, \lambda_k)`.
        grad: ``(d,)`` :math:`\nabla_x U(x_k, \lambda_k)`.
        step: ``()`` step counter :math:`k`.
        work: ``()`` protocol work :math:`W` (switching :math:`\lambda` at fixed phase point).
        heat: ``()`` heat absorbed, :math:`Q = \Delta H - W` with :math:`H = U + p^\top M^{-1}p/2`.
        shadow_work: ``()`` :math:`Q - Q_O`: the energy error of the deterministic B and A
            substeps (Sivak, Chodera & Crooks 2013); zero for exact dynamics.
        log_weight: ``()`` exact discrete-time log RN weight
            :math:`-\beta(W + W_{\rm shadow})`, boundary terms included.
        n_energy_evals: ``()`` energy-and-gradient evaluations on this path.
    """

    position: Float[Array, " d"]
    momentum: Float[Array, " d"]
    energy: Float[Array, ""]
    grad: Float[Array, " d"]
    step: Int[Array, ""]
    work: Float[Array, ""]
    heat: Float[Array, ""]
    shadow_work: Float[Array, ""]
    log_weight: Float[Array, ""]
    n_energy_evals: Int[Array, ""]


class BAOABInfo(NamedTuple):
    """Per-step increments: work, heat, shadow work and log weight."""

    work: Float[Array, ""]
    heat: Float[Array, ""]
    shadow_work: Float[Array, ""]
    log_weight: Float[Array, ""]


def maxwell_boltzmann(
    key: PRNGKey,
    shape: tuple[int, ...],
    *,
    beta: ScalarLike,
    mass: ScalarLike | Float[Array, " d"] = 1.0,
    dtype: Any = None,
) -> Array:
    r"""Momenta from the Maxwell–Boltzmann density :math:`\propto e^{-\beta p^\top M^{-1} p/2}`,

    i.e. :math:`p \sim \mathcal N(0, M/\beta)` for a scalar or diagonal mass ``M``.
    """
    _positive(beta, "beta")
    _positive(mass, "mass")
    dtype = jnp.result_type(float) if dtype is None else dtype
    return jnp.sqrt(jnp.asarray(mass, dtype) / beta) * jr.normal(key, shape, dtype)


def baoab(
    energy: Callable[[Float[Array, " d"]], Float[Array, ""]] | Protocol,
    *,
    beta: ScalarLike,
    dt: ScalarLike,
    friction: ScalarLike = 1.0,
    mass: ScalarLike | Float[Array, " d"] = 1.0,
    t0: ScalarLike = 0.0,
) -> Kernel:
    r"""Underdamped Langevin dynamics by the BAOAB splitting (Leimkuhler & Matthews 2013).

    .. math:: dx = M^{-1}p\,dt,\qquad dp = -\nabla U\,dt - \gamma p\,dt
              + \sqrt{2\gamma M/\beta}\,dW,

    one step being B (half kick :math:`p \mathrel{-}= \tfrac{dt}2\nabla U`),
    A (half drift :math:`x \mathrel{+}= \tfrac{dt}2 M^{-1}p`),
    O (exact Ornstein–Uhlenbeck :math:`p \leftarrow c_1 p + \sqrt{(1-c_1^2)M/\beta}\,\xi`,
    :math:`c_1 = e^{-\gamma\,dt}`), A, B. Its configurational marginal is exact for
    harmonic :math:`U` and has :math:`O(dt^2)` error in general (Leimkuhler & Matthews 2013).

    With a :class:`~thermo.protocols.Protocol`, each step first switches
    :math:`\lambda_k\to\lambda_{k+1}` at fixed :math:`(x, p)` (work), then takes the BAOAB
    step at :math:`\lambda_{k+1}`; the heat is the remaining energy change and splits into
    the O-step heat :math:`Q_O` (the kinetic-energy change in O) and the shadow work. As
    the B and A maps are volume preserving and time-reversible under momentum flip, the
    log ratio of backward to forward path densities is :math:`\beta Q_O`, so the exact
    discrete-time log RN weight is

    .. math:: \log w = -\beta\,\Delta H + \beta Q_O = -\beta\,(W + W_{\rm shadow}),

    and :math:`\mathbb E[e^{\log w}] = Z_N/Z_0` for any ``dt`` when :math:`(x_0, p_0)` are
    drawn from :math:`e^{-\beta H(\cdot,\lambda_0)}` (Sivak, Chodera & Crooks 2013).

    Cost: one energy-and-gradient evaluation per step (two when :math:`\lambda` changes).

    Args:
        energy: ``energy_fn(x) -> scalar`` or a :class:`~thermo.protocols.Protocol`.
        beta: inverse temperature.
        dt: step size.
        friction: :math:`\gamma` (inverse time).
        mass: scalar or ``(d,)`` diagonal mass :math:`M`.
        t0: the protocol time of step zero.

    Returns:
        ``Kernel(init(position, momentum=None) -> BAOABState, step(key, state))``; a
        missing momentum starts at zero (draw it with :func:`maxwell_boltzmann` to start in
        equilibrium, as Jarzynski/Crooks estimates require).
    """
    protocol = as_protocol(energy)
    _positive(beta, "beta")
    _positive(dt, "dt")
    _positive(friction, "friction")
    _positive(mass, "mass")
    static = protocol.static
    c1 = jnp.exp(-friction * dt)
    c2 = jnp.sqrt(-jnp.expm1(-2.0 * friction * dt))  # sqrt(1 - c1^2), stable for small dt

    def kinetic(p):
        return 0.5 * jnp.sum(p**2 / mass)

    def init(
        position: Float[Array, " d"], momentum: Float[Array, " d"] | None = None
    ) -> BAOABState:
        x = _check_position(position, "position")
        p = jnp.zeros_like(x) if momentum is None else jnp.asarray(momentum, x.dtype)
        if p.shape != x.shape:
            raise ValueError(f"momentum shape {p.shape} differs from position shape {x.shape}")
        u, g = _value_and_grad(protocol, x, protocol.lam(t0))
        u = eqx.error_if(u, ~jnp.isfinite(u), "energy is not finite at the initial position")
        zero = jnp.zeros((), u.dtype)
        return BAOABState(
            x, p, u, g, jnp.zeros((), jnp.int32), zero, zero, zero, zero, jnp.ones((), jnp.int32)
        )

    def step(key: PRNGKey, state: BAOABState):
        x, p = state.position, state.momentum
        k_next = state.step + 1
        if static:
            u_x, g_x = state.energy, state.grad
            lam_next = protocol.lam(t0)
            evals = 1
        else:
            lam_next = protocol.lam(t0 + k_next.astype(jnp.result_type(dt)) * dt)
            u_x, g_x = _value_and_grad(protocol, x, lam_next)
            evals = 2
        d_work = u_x - state.energy
        h_start = u_x + kinetic(p)
        p = p - 0.5 * dt * g_x  # B
        x = x + 0.5 * dt * p / mass  # A
        k_before = kinetic(p)
        p = c1 * p + c2 * jnp.sqrt(mass / beta) * jr.normal(key, p.shape, p.dtype)  # O
        q_o = kinetic(p) - k_before
        x = x + 0.5 * dt * p / mass  # A
        u_new, g_new = _value_and_grad(protocol, x, lam_next)
        p = p - 0.5 * dt * g_new  # B
        d_heat = u_new + kinetic(p) - h_start
        d_shadow = d_heat - q_o
        d_log_w = -beta * (d_work + d_shadow)
        new = BAOABState(
            x,
            p,
            u_new,
            g_new,
            k_next,
            state.work + d_work,
            state.heat + d_heat,
            state.shadow_work + d_shadow,
            state.log_weight + d_log_w,
            state.n_energy_evals + evals,
        )
        return new, BAOABInfo(d_work, d_heat, d_shadow, d_log_w)

    return Kernel(init, step)


# --------------------------------------------------------------------------------------
# Populations
# --------------------------------------------------------------------------------------


def run_population(
    key: PRNGKey,
    kernel: Kernel,
    states: Any,
    n_steps: int,
    *,
    thin: int = 1,
    observable_fn: Callable[[Any, Any], Any] | None = None,
    progress: bool = False,
) -> tuple[Any, Any]:
    r"""Run a kernel on a vmapped population of states with :func:`thermo.kernel.run`.

    Each path gets its own key (``jr.split(key, n)``) and runs ``run`` under ``vmap``.
    With ``progress=True`` the population instead steps together (one ``vmap`` -ed step
    per scan iteration, so that :func:`thermo.kernel.run` can show a tqdm bar over host-side
    chunks); the law is the same, the random stream differs. Build ``states`` with
    ``jax.vmap(kernel.init)(positions)``.

    Args:
        key: PRNG key.
        kernel: any :class:`~thermo.kernel.Kernel`.
        states: a batched state whose leaves have leading axis ``n``.
        n_steps: steps per path (a positive multiple of ``thin``).
        thin: record every ``thin``-th step.
        observable_fn: what to record, ``(state, info) -> pytree`` for one path; ``None``
            records nothing.
        progress: show a progress bar (not under an outer ``jit``).

    Returns:
        ``(final_states, trace)``: trace leaves have shape ``(n, n_steps // thin, ...)``
        (``None`` without ``observable_fn``).
    """
    leaves = jax.tree_util.tree_leaves(states)
    if not leaves:
        raise ValueError("states is empty")
    n = leaves[0].shape[0] if leaves[0].ndim else 0
    if n == 0:
        raise ValueError("states must be batched with a non-empty leading axis")
    if progress:
        step_fn = kernel.step if isinstance(kernel, Kernel) else kernel

        def batched_step(k, s):
            return jax.vmap(step_fn)(jr.split(k, n), s)

        obs = None if observable_fn is None else jax.vmap(observable_fn)
        with warnings.catch_warnings():  # warned once below, for the population
            warnings.simplefilter("ignore", DivergenceWarning)
            final, trace = run(
                key, batched_step, states, n_steps, thin=thin, observable_fn=obs, progress=True
            )
        warn_if_diverged(states, final, "run_population")
        if trace is not None:
            trace = jax.tree_util.tree_map(lambda a: jnp.moveaxis(a, 0, 1), trace)
        return final, trace

    keys = jr.split(key, n)

    def one(k, s):
        return run(k, kernel, s, n_steps, thin=thin, observable_fn=observable_fn)

    final, trace = jax.vmap(one)(keys, states)
    warn_if_diverged(states, final, "run_population")
    return final, trace
