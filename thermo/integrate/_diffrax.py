r"""diffrax solves: :func:`solve` (SDE) and :func:`solve_ode` (probability-flow ODE)."""

from __future__ import annotations

import math
from collections.abc import Callable

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
from jaxtyping import Array, Float

from .._checks import check_count, check_finite
from .._typing import Args, PRNGKey, ScalarLike
from ..sde import AbstractSDE, ProbabilityFlowODE
from ._common import _check_diffusion_shape, _check_position, _positive


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


def _diffeqsolve(terms, solver, t0, t1, dt0, x0, args, saveat, controller, max_steps):
    """The one ``diffeqsolve`` call of :func:`solve` and :func:`solve_ode`; ``saveat``
    defaults to the final time only."""
    if saveat is None:
        saveat = dfx.SaveAt(t1=True)
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
    return _diffeqsolve(terms, solver, t0, t1, dt0, x0, args, saveat, controller, max_steps)


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
    field = ode.vector_field if isinstance(ode, ProbabilityFlowODE) else ode
    terms = dfx.ODETerm(lambda t, y, a: field(t, y, a))
    controller = dfx.PIDController(rtol=rtol, atol=atol)
    return _diffeqsolve(terms, solver, t0, t1, dt0, x0, args, saveat, controller, max_steps)
