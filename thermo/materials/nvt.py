r"""NVT sampling of periodic particle systems.

**Metropolis particle-displacement Monte Carlo** (Metropolis et al. 1953; Frenkel &
Smit, *Understanding Molecular Simulation*, 2nd ed., Alg. 1–2). One kernel step is
a *sweep* of ``n_moves`` (default :math:`N`) single-particle trial moves, each
picking a particle :math:`i` uniformly, displacing it by
:math:`\delta \sim \mathcal U[-\Delta, \Delta]^3` (wrapped into the cell) and
accepting with probability :math:`\min(1, e^{-\beta \Delta U})`, where

.. math:: \Delta U = \sum_{j \ne i} \big[u(|r_i' - r_j|) - u(|r_i - r_j|)\big]

is an :math:`O(N)` minimum-image sum. The kernel follows
:class:`thermo.kernel.Kernel` (``init(positions) -> MCState``,
``step(key, state) -> (MCState, MCInfo)``), is un-jitted and vmaps over
independent chains. The running pair energy is carried in the state (updated by
:math:`\Delta U`); :func:`lj_observables` recomputes energy and virial from scratch.

**Langevin dynamics** uses the SDE core's BAOAB splitting from
:mod:`thermo.integrate` (not duplicated here); see :func:`langevin_kernel`.

**Standard errors** of time series use the statistical inefficiency of the shared
:mod:`thermo.estimators.timeseries` (Chodera et al. 2007) via :func:`correlated_mean`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float

from .._checks import check_count, check_positive, check_real
from ..kernel import Kernel
from .lj import (
    lj_energy_fn,
    lj_pair,
    lj_virial_fn,
    tail_energy_per_particle,
    tail_pressure,
    virial_pressure,
)
from .mc import adapt_equilibrate_produce, metropolis_sweep, pair_energy_change, total_pair_energy

__all__ = [
    "MCInfo",
    "MCState",
    "correlated_mean",
    "displacement_mc",
    "LJFluidRun",
    "langevin_kernel",
    "lj_observables",
    "sample_lj_fluid",
]


class MCState(NamedTuple):
    """Particle-displacement MC state.

    Attributes:
        positions: ``(n, 3)`` positions inside the cell.
        energy: ``()`` current total pair energy (no tail term).
    """

    positions: Float[Array, "n 3"]
    energy: Float[Array, ""]


class MCInfo(NamedTuple):
    """Per-sweep diagnostics.

    Attributes:
        acceptance_rate: ``()`` accepted fraction of the sweep's trial moves.
    """

    acceptance_rate: Float[Array, ""]


def displacement_mc(
    displacement_fn: Callable[..., Array],
    shift_fn: Callable[..., Array],
    *,
    temperature: float,
    step_size: float,
    pair_fn: Callable[[Array], Array] | None = None,
    sigma: float = 1.0,
    epsilon: float = 1.0,
    r_cut: float = 2.5,
    n_moves: int | None = None,
) -> Kernel:
    r"""Metropolis single-particle displacement MC as a :class:`~thermo.kernel.Kernel`.

    Args:
        displacement_fn, shift_fn: from :func:`thermo.materials.cells.periodic_space`
            (real coordinates).
        temperature: :math:`k_B T` in energy units.
        step_size: maximal displacement :math:`\Delta` per Cartesian component (may
            be a traced scalar, so that adaptation does not recompile).
        pair_fn: pair energy of a distance; default the hard-cut LJ
            :func:`thermo.materials.lj.lj_pair` with ``sigma, epsilon, r_cut``.
        n_moves: trial moves per step (default :math:`N`, one sweep).

    Returns:
        ``Kernel(init, step)``; ``init(positions) -> MCState``.
    """
    check_positive(temperature, "temperature")
    check_positive(step_size, "step_size")  # skipped when traced (adaptation)
    check_positive(sigma, "sigma")
    check_positive(epsilon, "epsilon", allow_zero=True)
    check_positive(r_cut, "r_cut")
    if n_moves is not None:
        n_moves = check_count(n_moves, "n_moves")
    beta = 1.0 / temperature
    if pair_fn is None:

        def pair_fn(r):
            return lj_pair(r, sigma, epsilon, r_cut)

    def init(positions: Float[Array, "n 3"]) -> MCState:
        positions = jnp.asarray(positions)
        if positions.ndim != 2 or positions.shape[-1] != 3:
            raise ValueError(f"positions must have shape (n, 3), got {positions.shape}")
        return MCState(positions, total_pair_energy(displacement_fn, pair_fn, positions))

    def delta_energy_fn(positions, energy, i, old, new, delta):
        d_u = pair_energy_change(displacement_fn, pair_fn, positions, i, old, new)
        return d_u, energy + d_u

    def step(key, state: MCState) -> tuple[MCState, MCInfo]:
        n = state.positions.shape[0]
        pos, e, acc = metropolis_sweep(
            key,
            state.positions,
            state.energy,
            delta_energy_fn,
            beta=beta,
            step_size=step_size,
            n_moves=n if n_moves is None else int(n_moves),
            shift_fn=shift_fn,
        )
        return MCState(pos, e), MCInfo(acceptance_rate=acc)

    return Kernel(init=init, step=step)


def lj_observables(
    displacement_fn: Callable[..., Array],
    *,
    n_particles: int,
    volume: float,
    temperature: float,
    sigma: float = 1.0,
    epsilon: float = 1.0,
    r_cut: float = 2.5,
    tail: bool = True,
) -> Callable[[Float[Array, "n 3"]], dict]:
    r"""Observable function: energy per particle and virial pressure (tail-corrected).

    Returns:
        ``fn(positions) -> {"energy_per_particle": U/N, "pressure": P}`` where
        :math:`U/N = U_{\rm pair}/N + U_{\rm tail}/N` and
        :math:`P = \rho T - \mathcal W/(3V) + P_{\rm tail}` (module :mod:`.lj`).
    """
    energy_fn = lj_energy_fn(displacement_fn, sigma=sigma, epsilon=epsilon, r_cut=r_cut)
    virial_fn = lj_virial_fn(displacement_fn, sigma=sigma, epsilon=epsilon, r_cut=r_cut)
    rho = n_particles / volume
    u_tail = tail_energy_per_particle(rho, sigma, epsilon, r_cut) if tail else 0.0
    p_tail = tail_pressure(rho, sigma, epsilon, r_cut) if tail else 0.0

    def fn(positions):
        u = energy_fn(positions) / n_particles + u_tail
        p = virial_pressure(virial_fn(positions), n_particles, volume, temperature) + p_tail
        return {"energy_per_particle": u, "pressure": p}

    return fn


def correlated_mean(x) -> tuple[float, float, float]:
    r"""Mean and standard error of correlated time series, from the statistical inefficiency.

    For each chain :math:`c` (extra axes of ``x`` are independent chains) of length
    :math:`n`, the squared standard error of its mean is
    :math:`s_c^2 g_c / n` with :math:`s_c^2` the sample variance and :math:`g_c = 1 + 2\tau_c`
    the statistical inefficiency of Chodera et al. 2007 (JCTC 3, 26), computed by the
    shared :func:`thermo.estimators.timeseries.statistical_inefficiency` (pymbar's
    estimator). The chains are averaged with equal weight, so
    :math:`\sigma^2 = \sum_c s_c^2 g_c / (n C^2)`. This replaces the earlier fixed
    20-block average, whose blocks were not checked against the correlation time.

    Args:
        x: ``(n, ...)`` series, time on the leading axis, ``n >= 4``.

    Returns:
        ``(mean, std_err, g)`` as Python floats; ``g`` is the mean inefficiency over
        chains (in units of records).
    """
    from ..estimators.timeseries import statistical_inefficiency

    a = np.asarray(x, dtype=np.float64)
    if a.size == 0:
        raise ValueError("empty series")
    if not np.all(np.isfinite(a)):
        raise ValueError("series contains NaN or inf")
    a = a.reshape(a.shape[0], -1)
    n, n_chains = a.shape
    if n < 4:
        raise ValueError(f"need at least 4 records per chain, got {n}")
    var = a.var(axis=0, ddof=1)
    g = np.array(
        [float(statistical_inefficiency(a[:, c])) if var[c] > 0 else 1.0 for c in range(n_chains)]
    )
    se = float(np.sqrt(np.sum(var * g / n)) / n_chains)
    return float(a.mean()), se, float(g.mean())


class LJFluidRun(NamedTuple):
    """Traces of :func:`sample_lj_fluid` (time-major, chain-minor).

    Attributes:
        energy_per_particle: ``(n_records, n_chains)`` tail-corrected :math:`U/N`.
        pressure: ``(n_records, n_chains)`` tail-corrected virial pressure.
        positions: ``(n_chains, n, 3)`` final configurations.
        box: ``(3, 3)`` cell matrix.
        step_size: the adapted maximal displacement.
        acceptance_rate: mean production acceptance.
        configurations: ``(n_records, n_chains, n, 3)`` recorded positions when
            ``record_configurations`` (else ``None``), e.g. for Widom insertion.
    """

    energy_per_particle: np.ndarray
    pressure: np.ndarray
    positions: np.ndarray
    box: np.ndarray
    step_size: float
    acceptance_rate: float
    configurations: np.ndarray | None = None


@eqx.filter_jit
def _lj_fluid_chains(
    key,
    states,
    step_size,
    sides,
    volume,
    temperature,
    *,
    r_cut,
    n_steps,
    thin,
    mode,
    record_configurations,
):
    """One stage (``mode``: adapt, equilibrate or produce) of :func:`sample_lj_fluid`'s
    vmapped chains; module-level and with a traced cell and temperature, so repeated calls
    and new state points of the same size reuse its compilation."""
    from jax_md import space

    from ..kernel import run as run_kernel
    from .cells import standard_promotion

    disp, shift = map(standard_promotion, space.periodic(sides))
    kernel = displacement_mc(disp, shift, temperature=temperature, step_size=step_size, r_cut=r_cut)
    n_chains, n = states.positions.shape[:2]
    if mode == "adapt":

        def observable_fn(s, i):
            return i.acceptance_rate
    elif mode == "equilibrate":
        observable_fn = None
    else:  # produce
        obs = lj_observables(
            disp, n_particles=n, volume=volume, temperature=temperature, r_cut=r_cut
        )

        def observable_fn(s, i):
            out = obs(s.positions) | {"acceptance_rate": i.acceptance_rate}
            return out | {"positions": s.positions} if record_configurations else out

    final, trace = jax.vmap(
        lambda kk, s: run_kernel(kk, kernel, s, n_steps, thin=thin, observable_fn=observable_fn)
    )(jr.split(key, n_chains), states)
    return final if mode == "equilibrate" else (final, trace)


def sample_lj_fluid(
    key,
    *,
    temperature: float,
    density: float,
    n_cells: int = 5,
    r_cut: float = 3.0,
    n_chains: int = 1,
    n_adapt: int = 5,
    adapt_sweeps: int = 40,
    n_equilibrate: int = 1000,
    n_production: int = 5000,
    thin: int = 1,
    target_acceptance: float = 0.4,
    record_configurations: bool = False,
    initial_step_size: float | None = None,
    initial_positions=None,
) -> LJFluidRun:
    r"""NVT Metropolis MC of the hard-cut, tail-corrected LJ fluid from an FCC start.

    :math:`N = 4 n^3` particles on an FCC lattice (``ase.build``) in a cube of
    density ``density``; ``n_adapt`` rounds of ``adapt_sweeps`` sweeps rescale the
    maximal displacement by (acceptance / target) clipped to [1/2, 2] (adaptation
    is discarded); then ``n_equilibrate`` sweeps; then ``n_production`` sweeps
    recording :math:`U/N` and :math:`P` (and, with ``record_configurations``, the
    positions) every ``thin`` sweeps. Chains are vmapped.
    Host entry point: the three stages run through one module-level compiled function whose
    step size, cell and temperature are traced, so adaptation compiles once and a repeated
    call (or another state point with the same ``N``) compiles nothing.

    ``initial_step_size`` is the first maximal displacement (default
    :math:`0.1\,\rho^{-1/3}`, a tenth of the mean spacing). ``initial_positions``
    (``(N, 3)`` or ``(n_chains, N, 3)``, in the cell of ``density``) replaces the FCC
    start, e.g. a configuration melted at a higher temperature, so that a dense liquid
    does not start as a superheated crystal.

    Returns:
        :class:`LJFluidRun`.
    """
    from .cells import periodic_space
    from .structures import fcc_lattice, to_arrays

    check_positive(temperature, "temperature")
    check_positive(density, "density")
    check_positive(r_cut, "r_cut")
    n_cells = check_count(n_cells, "n_cells")
    if initial_step_size is not None:
        check_positive(initial_step_size, "initial_step_size")
    n_chains = check_count(n_chains, "n_chains")
    n_adapt = check_count(n_adapt, "n_adapt", minimum=0)
    adapt_sweeps = check_count(adapt_sweeps, "adapt_sweeps")
    n_equilibrate = check_count(n_equilibrate, "n_equilibrate", minimum=0)
    n_production = check_count(n_production, "n_production")
    thin = check_count(thin, "thin")
    check_real(
        target_acceptance, "target_acceptance", low=0.0, high=1.0, low_open=True, high_open=True
    )

    pos, box, _ = to_arrays(fcc_lattice(n_cells, density))
    n = pos.shape[0]
    if not np.allclose(box, np.diag(np.diag(box))):
        raise ValueError("sample_lj_fluid expects the cubic cell of fcc_lattice")
    # traced cell and state point: one compilation serves every density and temperature
    cell = (
        jnp.asarray(np.diag(box)),
        jnp.asarray(float(np.linalg.det(box))),
        jnp.asarray(float(temperature)),
    )
    settings = {"r_cut": float(r_cut), "record_configurations": bool(record_configurations)}

    n_steps = {"adapt": adapt_sweeps, "equilibrate": n_equilibrate, "produce": n_production}

    def sweeps_fn(key, s, h, stage):
        out = _lj_fluid_chains(
            key,
            s,
            h,
            *cell,
            n_steps=n_steps[stage],
            thin=thin if stage == "produce" else 1,
            mode=stage,
            **settings,
        )
        return (out, None) if stage == "equilibrate" else out

    if initial_positions is not None:
        x0 = np.asarray(initial_positions, np.float64)
        if x0.shape not in ((n, 3), (n_chains, n, 3)):
            raise ValueError(
                f"initial_positions must be ({n}, 3) or ({n_chains}, {n}, 3) for n_cells="
                f"{n_cells} and n_chains={n_chains}, got {x0.shape}"
            )
        if not np.all(np.isfinite(x0)):
            raise ValueError("initial_positions must be finite")
        pos = np.mod(x0, np.diag(box))  # wrap into the cubic cell
    disp, shift = periodic_space(box)
    k0 = displacement_mc(disp, shift, temperature=temperature, step_size=0.1, r_cut=r_cut)
    states = jax.vmap(k0.init)(jnp.broadcast_to(jnp.asarray(pos), (n_chains, n, 3)))
    res = adapt_equilibrate_produce(
        key,
        sweeps_fn,
        states,
        jnp.asarray(
            0.1 * density ** (-1.0 / 3.0) if initial_step_size is None else initial_step_size
        ),
        n_adapt=n_adapt,
        equilibrate=n_equilibrate > 0,
        target_acceptance=target_acceptance,
    )
    states, trace, step_size = res.states, res.trace, res.step_size
    return LJFluidRun(
        energy_per_particle=np.asarray(trace["energy_per_particle"]).T,
        pressure=np.asarray(trace["pressure"]).T,
        positions=np.asarray(states.positions),
        box=box,
        step_size=float(step_size),
        acceptance_rate=float(jnp.mean(trace["acceptance_rate"])),
        configurations=(
            np.swapaxes(np.asarray(trace["positions"]), 0, 1) if record_configurations else None
        ),
    )


def langevin_kernel(
    energy_fn: Callable[[Float[Array, "n 3"]], Float[Array, ""]],
    n_particles: int,
    *,
    temperature: float,
    dt: float,
    friction: float = 1.0,
    mass: float = 1.0,
) -> Kernel:
    r"""Underdamped Langevin (BAOAB) for a periodic particle system.

    A thin adapter: it flattens ``(n, 3)`` positions to the ``(3n,)`` state of the SDE
    core's :func:`thermo.integrate.baoab` (Leimkuhler & Matthews 2013), which it
    calls with :math:`\beta = 1/T`. Positions are not wrapped into the cell; the
    periodic ``displacement_fn`` inside ``energy_fn`` makes that unnecessary (wrap
    with ``shift_fn`` for output if needed). For neighbour lists, close over a list
    and call ``neighbor_fn.update`` inside ``energy_fn``.

    Args:
        energy_fn: ``U(R)`` with ``R`` of shape ``(n, 3)``.
        n_particles: :math:`n`.
        temperature: :math:`k_B T`.
        dt, friction, mass: BAOAB step, :math:`\gamma`, and scalar mass.

    Returns:
        ``Kernel``: ``init(positions (n, 3), momentum (3n,) | None)`` and BAOAB's step.
    """
    from ..integrate import baoab

    n_particles = check_count(n_particles, "n_particles")
    check_positive(temperature, "temperature")

    def flat_energy(x):
        return energy_fn(x.reshape(n_particles, 3))

    inner = baoab(flat_energy, beta=1.0 / temperature, dt=dt, friction=friction, mass=mass)

    def init(positions, momentum=None):
        return inner.init(jnp.asarray(positions).reshape(-1), momentum)

    return Kernel(init=init, step=inner.step)
