r"""Time-dependent protocols :math:`U(x, \lambda(t))` and the path functionals they drive.

A :class:`Protocol` pairs an energy :math:`U(x, \lambda)` with a schedule
:math:`\lambda(t)`. The fixed-step integrators of :mod:`thermo.integrate`
(:func:`~thermo.integrate.overdamped_langevin`, :func:`~thermo.integrate.baoab`) run a
protocol in the discrete-time convention of Crooks (1998) and Jarzynski (1997): each step
first switches :math:`\lambda_k \to \lambda_{k+1}` at fixed :math:`x` (that energy change is
the **work**), then moves :math:`x` with a kernel aimed at :math:`e^{-\beta U(\cdot,
\lambda_{k+1})}` (that energy change is the **heat** absorbed by the system),

.. math::

    W = \sum_k \big[U(x_k, \lambda_{k+1}) - U(x_k, \lambda_k)\big]
      \;\xrightarrow{\;dt\to0\;}\; \int_0^\tau \partial_\lambda U\,\dot\lambda\,dt
      \quad\text{(Sekimoto 1998)},\qquad
    Q = \Delta E - W \quad\text{(first law, per path)}.

Every path also carries the **log Radon–Nikodym weight** between the reverse path measure
(start from :math:`e^{-\beta U(\cdot,\lambda_N)}`, run the backward kernels) and the forward
one, with the boundary terms included (Crooks 1999; Neal 2001, AIS):

.. math::

    \log w = -\beta U(x_N,\lambda_N) + \beta U(x_0,\lambda_0)
             + \sum_k \log \frac{B_k(x_{k+1}\to x_k)}{F_k(x_k\to x_{k+1})},
    \qquad \mathbb{E}_{\rm fwd}\big[e^{\log w}\big] = \frac{Z_N}{Z_0} = e^{-\beta\Delta F}.

This is *exact in discrete time*, for any step size, whenever the paths start from the exact
Boltzmann distribution of :math:`U(\cdot,\lambda_0)`; in the limit :math:`dt\to0`,
:math:`\log w \to -\beta W` path by path. These log-weights are the project's one currency:
:func:`path_ensemble` turns a batch of final states into a :class:`thermo.paths.PathEnsemble`
whose ``log_weights`` go straight into :func:`thermo.estimators.estimate_log_z`.

Entropy production (Seifert 2005) of a path in units of :math:`k_B` is
:math:`\sigma = -\beta Q + \log p_0(x_0) - \log p_\tau(x_\tau)`; started and compared
against equilibrium boundary densities it equals the **dissipated work**
:math:`\beta(W - \Delta F)` (:func:`dissipated_work`), whose mean is
:math:`\ge 0` (second law) and whose exponential average is one (Jarzynski 1997).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._typing import ScalarLike
from .paths import PathEnsemble

__all__ = [
    "Protocol",
    "static_protocol",
    "linear_schedule",
    "as_protocol",
    "dissipated_work",
    "entropy_production",
    "path_ensemble",
]


def _no_schedule(t: ScalarLike) -> Array:
    del t
    return jnp.zeros(())


class Protocol(eqx.Module):
    r"""A time-dependent energy :math:`U(x, \lambda(t))`.

    Attributes:
        energy_fn: ``energy_fn(x, lam) -> scalar``, :math:`U(x, \lambda)` for one flat
            configuration ``x`` of shape ``(d,)``; must be differentiable in ``x``.
        schedule_fn: ``schedule_fn(t) -> lam``, the control parameter :math:`\lambda(t)`
            (any pytree of arrays).
        static: ``True`` when :math:`\lambda` never changes; integrators then skip the
            work bookkeeping's extra energy evaluation (the work stays exactly zero).

    Example:
        >>> import jax.numpy as jnp
        >>> trap = Protocol(lambda x, lam: 0.5 * jnp.sum((x - lam) ** 2),
        ...                 linear_schedule(0.0, 1.0, 0.0, 1.0))
        >>> float(trap.energy(jnp.zeros(1), 1.0))
        0.5
    """

    energy_fn: Callable[[Float[Array, " d"], Any], Float[Array, ""]]
    schedule_fn: Callable[[ScalarLike], Any] = _no_schedule
    static: bool = eqx.field(static=True, default=False)

    def lam(self, t: ScalarLike) -> Any:
        r"""The control parameter :math:`\lambda(t)`."""
        return self.schedule_fn(t)

    def energy(self, x: Float[Array, " d"], t: ScalarLike) -> Float[Array, ""]:
        r""":math:`U(x, \lambda(t))`."""
        return self.energy_fn(x, self.schedule_fn(t))


def static_protocol(energy_fn: Callable[[Float[Array, " d"]], Float[Array, ""]]) -> Protocol:
    r"""A protocol for a time-independent energy ``energy_fn(x)`` (no work is done)."""
    return Protocol(lambda x, lam: energy_fn(x), _no_schedule, static=True)


def as_protocol(energy_or_protocol: Callable | Protocol) -> Protocol:
    """Return a :class:`Protocol` unchanged, or wrap a plain ``energy_fn(x)`` as static."""
    if isinstance(energy_or_protocol, Protocol):
        return energy_or_protocol
    if not callable(energy_or_protocol):
        raise TypeError(
            "expected an energy function energy_fn(x) -> scalar or a thermo.protocols.Protocol, "
            f"got {type(energy_or_protocol).__name__}"
        )
    return static_protocol(energy_or_protocol)


def linear_schedule(
    lam0: ScalarLike | Array, lam1: ScalarLike | Array, t0: ScalarLike, t1: ScalarLike
) -> Callable[[ScalarLike], Array]:
    r"""The schedule :math:`\lambda(t) = \lambda_0 + (\lambda_1 - \lambda_0)\,\frac{t - t_0}{t_1 - t_0}`,

    clipped to :math:`[\lambda_0, \lambda_1]` outside :math:`[t_0, t_1]`. ``lam0`` and
    ``lam1`` may be arrays of the same shape (several parameters switched together).
    """
    try:
        ordered = float(t1) > float(t0)
    except (TypeError, jax.errors.ConcretizationTypeError):
        ordered = True  # traced times (a jitted duration): cannot check here
    if not ordered:
        raise ValueError(f"linear_schedule needs t1 > t0, got t0={t0}, t1={t1}")
    lam0 = jnp.asarray(lam0)
    lam1 = jnp.asarray(lam1)

    def schedule_fn(t):
        u = jnp.clip((t - t0) / (t1 - t0), 0.0, 1.0)
        return lam0 + (lam1 - lam0) * u

    return schedule_fn


def dissipated_work(
    work: Float[Array, "*batch"], beta: ScalarLike, delta_f: ScalarLike
) -> Float[Array, "*batch"]:
    r"""Reduced dissipated work :math:`\beta (W - \Delta F)` per path (dimensionless).

    For paths started in equilibrium at :math:`\lambda_0` this is the total entropy
    production (system + medium, in :math:`k_B`) when the final state is compared with the
    equilibrium density at :math:`\lambda_N` (Seifert 2005, Crooks 1999);
    :math:`\langle \beta(W - \Delta F)\rangle \ge 0` and
    :math:`\langle e^{-\beta(W-\Delta F)}\rangle = 1` (Jarzynski 1997).
    """
    return beta * (jnp.asarray(work) - delta_f)


def entropy_production(
    heat: Float[Array, "*batch"],
    beta: ScalarLike,
    log_p_initial: Float[Array, "*batch"] | None = None,
    log_p_final: Float[Array, "*batch"] | None = None,
) -> Float[Array, "*batch"]:
    r"""Total entropy production per path (Seifert 2005), in units of :math:`k_B`:

    .. math:: \sigma = \underbrace{-\beta Q}_{\text{medium}}
              + \underbrace{\log p_0(x_0) - \log p_\tau(x_\tau)}_{\text{system}},

    where :math:`Q` is the heat *absorbed by the system* (as accumulated by the
    integrators), so :math:`-\beta Q` is the entropy delivered to the bath. Pass the
    boundary log-densities where they are known (e.g. the exact equilibrium densities for
    a path started and scored in equilibrium, which turns :math:`\sigma` into
    :func:`dissipated_work`); without them only the medium term is returned.
    """
    sigma = -beta * jnp.asarray(heat)
    if (log_p_initial is None) != (log_p_final is None):
        raise ValueError("pass both log_p_initial and log_p_final, or neither")
    if log_p_initial is not None:
        sigma = sigma + jnp.asarray(log_p_initial) - jnp.asarray(log_p_final)
    return sigma


def path_ensemble(
    state: Any,
    *,
    log_weights: Float[Array, " n"] | None = None,
    n_energy_evals: int | Array | None = None,
) -> PathEnsemble:
    r"""Turn a batch of final integrator states into a :class:`~thermo.paths.PathEnsemble`.

    Args:
        state: a vmapped state with ``position`` of shape ``(n, dim)`` and, unless
            ``log_weights`` is given, ``log_weight`` of shape ``(n,)`` (the exact
            discrete-time log RN weight the Langevin integrators accumulate, whose
            log-mean-exp estimates :math:`\log Z_N - \log Z_0`).
        log_weights: optional override, e.g. ``-beta * state.work`` for the plain
            Jarzynski estimator.
        n_energy_evals: total energy(-and-gradient) evaluations; defaults to the sum of
            the state's ``n_energy_evals`` field.

    Returns:
        ``PathEnsemble(samples (n, dim), log_weights (n,), n_energy_evals)``.
    """
    samples = jnp.asarray(state.position)
    if samples.ndim != 2:
        raise ValueError(f"state.position must have shape (n, dim), got {samples.shape}")
    lw = state.log_weight if log_weights is None else log_weights
    lw = jnp.asarray(lw)
    if lw.shape != samples.shape[:1]:
        raise ValueError(f"log_weights must have shape ({samples.shape[0]},), got {lw.shape}")
    if n_energy_evals is None:
        n_energy_evals = jnp.sum(state.n_energy_evals)
    return PathEnsemble(samples=samples, log_weights=lw, n_energy_evals=n_energy_evals)
