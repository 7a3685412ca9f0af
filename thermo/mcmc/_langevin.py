r"""Underdamped Langevin (BAOAB) as an MCMC kernel: a thin wrapper of the SDE core.

The integrator is :func:`thermo.integrate.baoab` (Leimkuhler & Matthews 2013), not a
re-implementation. This wrapper only adapts it to the MCMC conventions of
:mod:`thermo.mcmc`: the Info carries ``acceptance_rate`` (identically 1, BAOAB is
unadjusted; its configurational bias is :math:`O(dt^2)`), ``n_energy_evals`` and the
per-step shadow work (Sivak, Chodera & Crooks 2013), whose size diagnoses the step size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp
from jaxtyping import Array, Float

from .._typing import PRNGKey
from ..kernel import Kernel

__all__ = ["UnderdampedLangevinInfo", "underdamped_langevin"]


class UnderdampedLangevinInfo(NamedTuple):
    """Per-step information.

    Attributes:
        acceptance_rate: ``()`` always 1 (no Metropolis correction).
        shadow_work: ``()`` the step's shadow work (energy error of the B/A substeps).
        n_energy_evals: ``()`` energy-and-gradient evaluations (1 per step).
    """

    acceptance_rate: Float[Array, ""]
    shadow_work: Float[Array, ""]
    n_energy_evals: Float[Array, ""]


def underdamped_langevin(
    energy_fn: Callable[[Array], Array],
    *,
    beta: float,
    step_size: float,
    friction: float = 1.0,
    mass: float | Array = 1.0,
) -> Kernel:
    r"""BAOAB kernel for :math:`e^{-\beta U}` from :func:`thermo.integrate.baoab`.

    Args:
        energy_fn: ``(dim,) -> ()`` potential :math:`U`.
        beta: inverse temperature.
        step_size: time step :math:`dt`.
        friction: :math:`\gamma` (1 is a common default, critical-ish damping for unit
            curvature).
        mass: scalar or ``(dim,)`` diagonal mass.

    Returns:
        :class:`thermo.kernel.Kernel`: ``init(position, momentum=None)`` (a
        ``thermo.integrate.BAOABState``; draw momenta with
        ``thermo.integrate.maxwell_boltzmann`` to start in equilibrium) and
        ``step(key, state) -> (BAOABState, UnderdampedLangevinInfo)``.
    """
    from .._checks import check_positive
    from ..integrate import baoab

    check_positive(step_size, "step_size")
    inner = baoab(energy_fn, beta=beta, dt=step_size, friction=friction, mass=mass)

    def step(key: PRNGKey, state):
        new, info = inner.step(key, state)
        one = jnp.ones((), new.energy.dtype)
        return new, UnderdampedLangevinInfo(one, info.shadow_work, one)

    return Kernel(inner.init, step)
