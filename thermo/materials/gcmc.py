r"""Grand-canonical Monte Carlo of rigid molecules in a rigid framework (single and mixtures).

The grand-canonical ensemble at temperature :math:`T`, volume :math:`V` and fugacities
:math:`f_s` of the species :math:`s` is sampled with five moves (Frenkel & Smit,
*Understanding Molecular Simulation*, 2nd ed. 2002, sec. 5.6; Dubbeldam et al. 2013,
*Mol. Simul.* 39, 1253), :math:`\beta = 1/k_BT`, :math:`\Delta U` the energy change:

* translation of a random molecule by a uniform displacement in
  :math:`[-\delta, \delta]^3`, rotation about its centre by a uniform angle in
  :math:`[-\theta, \theta]` about a uniformly random axis, and reinsertion at a uniform
  position with a uniform orientation: all symmetric proposals, accepted with
  :math:`\min(1, e^{-\beta\Delta U})`;
* insertion of a molecule of species :math:`s` at a uniform position with a uniform
  orientation (Shoemake 1992 quaternions), accepted with
  :math:`\min\!\big(1, \frac{\beta f_s V}{N_s+1} e^{-\beta\Delta U}\big)`;
* deletion of a uniformly chosen molecule of species :math:`s`, accepted with
  :math:`\min\!\big(1, \frac{N_s}{\beta f_s V} e^{-\beta\Delta U}\big)`.

Orientations are drawn uniformly, so no orientational factor enters the swap rules (the
rigid molecule's orientational partition function cancels against the ideal-gas
reservoir's). The species of an insertion or deletion is drawn with fixed probabilities,
the same for both, so they cancel too.

With ``n_trials`` :math:`k > 1` the insertion, deletion and reinsertion are
configurational-bias moves for the rigid molecule (Frenkel & Smit 2002, ch. 13; RASPA3
does the same with :math:`k = 10`): :math:`k` trial placements (uniform position and
orientation, independent) are weighted by the Boltzmann factor of the trial energy
:math:`u` (everything but the Ewald Fourier term), one is chosen with probability
:math:`e^{-\beta u_j}/W`, :math:`W = \sum_j e^{-\beta u_j}`, and the Fourier change
:math:`\Delta U_F` of the chosen one enters the acceptance directly. The old molecule's
weight :math:`W_o` sums its own :math:`e^{-\beta u}` and :math:`k-1` fresh trials in
the state without it. Insertion accepts with
:math:`\min(1, \frac{\beta f_s V}{N_s+1}\frac{W}{k}e^{-\beta\Delta U_F})`, deletion
with :math:`\min(1, \frac{N_s}{\beta f_s V}\frac{k}{W_o}e^{-\beta\Delta U_F})`,
reinsertion with :math:`\min(1, \frac{W}{W_o}e^{-\beta\Delta U_F})`; the insertion
attempt's :math:`\frac{W}{k}e^{-\beta\Delta U_F}` is an unbiased estimate of the Widom
average :math:`\langle e^{-\beta\Delta U}\rangle`.

The centre of a molecule is the mean of its site
positions (the centre of mass for the symmetric CO₂, N₂ and CH₄ models).

The energy is RASPA3's model (Dubbeldam et al. 2024, *J. Chem. Theory Comput.* 20,
10649): Lennard-Jones with Lorentz–Berthelot mixing, truncated (and by default shifted)
at :math:`r_c` per site pair, no tail correction, for framework–molecule and
molecule–molecule site pairs; and, when any charge is present, Ewald electrostatics
(:mod:`thermo.materials.ewald`): the real-space :math:`C q_i q_j\operatorname{erfc}(\alpha
r)/r` for :math:`r<r_c` between sites of different molecules and between sites and
framework atoms, plus RASPA3's ``ewaldFourier`` term

.. math::

    U_F = C\Big[\sum_k w_k\big(|S(k)|^2 - |S_f(k)|^2\big)\Big] + \sum_{m} c_{s(m)},
    \qquad S = S_f + \sum_m s_m,

with :math:`s_m(k) = \sum_{i\in m} q_i e^{ik\cdot r_i}` the structure factor of molecule
:math:`m`, :math:`S_f` the framework's, :math:`w_k` the weights of
:class:`thermo.materials.EwaldKVectors` on the k-set ``ewald_kspace`` (by default RASPA3's
integer sphere :math:`|n|^2 \le \max_a k_{\max,a}^2`, the sum RASPA3 itself does with
its automatic Ewald parameters) and :math:`c_s` the self and intramolecular exclusion
constant of a molecule of species :math:`s`. The total :math:`S(k)` is part of the state
and updated incrementally: a move that changes molecule :math:`m` by :math:`\Delta s`
costs :math:`C\sum_k w_k(2\,\mathrm{Re}[S^*\Delta s] + |\Delta s|^2)`, O(k-vectors ×
sites), never a full recompute. :math:`S` and :math:`w` are stored on the rows
:math:`(n_1, n_2)` of the half k-space :math:`n_1 \ge 0` that hold a kept vector, each
row the full range :math:`|n_3| \le k_{\max,3}` (weights 0 off the set): :math:`\Delta s`
is then one product of per-axis phase tables, :math:`e^{2\pi i f_1 n_1}e^{2\pi i f_2
n_2}` gathered on the kept rows, with :math:`e^{2\pi i f_3 n_3}`, a small matrix product
with no per-vector gather, and the rows outside the set (a sphere drops the corners of
the :math:`(n_1, n_2)` square) cost nothing. The minimum image in the supercell needs
:math:`r_c \le w_{\min}/2` (checked). The framework–molecule pairs visit only the
framework atoms listed for the molecule's bin (exact, as in
:func:`thermo.materials.widom`) by default. With ``grid_spacing`` (as RASPA and
RASPA3 do) the framework–molecule energy is read instead from energy grids over the unit
cell (:mod:`thermo.materials.grids`): one LJ grid per site type and one grid of the
framework's full Ewald potential (real space and reciprocal) per unit charge, tricubic
interpolation; the framework's :math:`S_f` then leaves the state (:math:`S = \sum_m
s_m`), since the cross term :math:`2C\sum_k w_k\mathrm{Re}[S_f^*s_m]` is in the
potential grid, and a site whose interpolation stencil reaches the LJ core is an
overlap. Under ``vmap`` (boxes, or :func:`gcmc_sample_frameworks` over different
frameworks stacked by :func:`gcmc_stack_systems`) a shared ``move_key`` keeps the
configurational-bias trials a branch.

Shapes stay fixed under ``jit``: a state holds ``capacity`` molecule slots with an
occupancy mask; an insertion into a full state is rejected and sets ``overflow``, which
:func:`gcmc_sample` callers must check (it biases the loading). The moves keep the
molecules packed in the first slots (a deletion moves the last molecule into the freed
slot), and on one core the molecule–molecule sums run in blocks of slots up to the last
occupied one, so a generous ``capacity`` costs little (``pair_block``). Independent
boxes are ``vmap``-ed (:func:`gcmc_sample_batched`).

Throughput on CPU: a move is a chain of small kernels, and XLA's CPU client, whose
thread pool has one thread per core, hands them between cores. A process restricted to
one core before JAX starts (``taskset -c 0 python ...``), or one that calls
:func:`thermo.cpu.use_one_cpu_thread` first (a one-thread pool, the process keeping every
core), runs one box faster in wall time and far faster per CPU-second
(``bench_gcmc``'s one-core rows). The GCMC experiments do the latter.

Fugacities: the ideal gas :math:`f = y P`, or the Peng–Robinson equation of state
(Peng & Robinson 1976, *Ind. Eng. Chem. Fundam.* 15, 59) with van der Waals one-fluid
mixing and no binary interaction parameters (:func:`peng_robinson_fugacity_coefficients`),
RASPA's default.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax.scipy.special import erfc

from .._checks import check_count, check_positive
from .adsorption import (
    K_BOLTZMANN,
    _bin_lists,
    _ewald_kvectors,
    _fourier_grid,
    _framework_charge_array,
    _random_rotation,
)
from .cells import box_matrix, check_cutoff, replicas_for_cutoff
from .ewald import COULOMB_CONSTANT_RASPA, _check_kspace, _self_exclusion
from .grids import (
    DEFAULT_BLOCK_ENERGY,
    DEFAULT_GRID_MAX_BYTES,
    build_framework_grids,
    check_grid_budget,
    grid_shape,
    interpolate,
)
from .lj import lj_pair
from .molecules import Molecule, adsorption_force_field
from .structures import load_framework

__all__ = [
    "CRITICAL_CONSTANTS",
    "GCMCState",
    "GCMCStats",
    "GCMCSystem",
    "MOVES",
    "RASPA_CYCLE_MIN_STEPS",
    "cycle_convention_loading",
    "fugacities",
    "gcmc_init",
    "gcmc_sample",
    "gcmc_sample_batched",
    "gcmc_sample_frameworks",
    "gcmc_stack_systems",
    "gcmc_step",
    "gcmc_system",
    "gcmc_total_energy",
    "peng_robinson_fugacity_coefficients",
]

#: The move types, in the order of ``GCMCSystem.move_logits`` and ``GCMCStats``.
MOVES = ("translation", "rotation", "reinsertion", "insertion", "deletion")
_TRANSLATE, _ROTATE, _REINSERT, _INSERT, _DELETE = range(5)

#: Critical temperature (K), pressure (Pa) and acentric factor, the values RASPA3 ships
#: with its CO2/N2/methane definitions (NIST Chemistry WebBook).
CRITICAL_CONSTANTS = {
    "CO2": (304.1282, 7377300.0, 0.22394),
    "N2": (126.192, 3395800.0, 0.0372),
    "CH4": (190.564, 4599200.0, 0.01142),
}

#: RASPA's Monte Carlo cycle is max(20, N) moves, N the molecules in the box at its start,
#: and its averages take one sample per cycle.
RASPA_CYCLE_MIN_STEPS = 20

_GAS_CONSTANT = 1.380649e-23 * 6.02214076e23  # J/(mol K), CODATA 2018 exact
_ENERGY_CLAMP = 1e10  # K: an overlap beyond this has acceptance 0 anyway


def peng_robinson_fugacity_coefficients(
    temperature: float,
    pressure: float,
    critical_temperatures,
    critical_pressures,
    acentric_factors,
    mole_fractions=None,
) -> np.ndarray:
    r"""Fugacity coefficients :math:`\varphi_i` of a gas mixture from Peng–Robinson.

    Peng & Robinson 1976 with van der Waals one-fluid mixing, :math:`k_{ij} = 0`:
    :math:`a_i = 0.45724 R^2T_c^2/P_c\,[1+\kappa_i(1-\sqrt{T/T_c})]^2`,
    :math:`\kappa = 0.37464 + 1.54226\omega - 0.26992\omega^2`,
    :math:`b_i = 0.07780 RT_c/P_c`, :math:`a = \sum_{ij} y_iy_j\sqrt{a_ia_j}`,
    :math:`b = \sum_i y_ib_i`, :math:`A = aP/(RT)^2`, :math:`B = bP/RT`, :math:`Z` the
    largest real root of :math:`Z^3-(1-B)Z^2+(A-3B^2-2B)Z-(AB-B^2-B^3)=0`, and

    .. math::

        \ln\varphi_i = \frac{b_i}{b}(Z-1) - \ln(Z-B) - \frac{A}{2\sqrt2 B}
        \Big(\frac{2\sum_j y_j\sqrt{a_ia_j}}{a} - \frac{b_i}{b}\Big)
        \ln\frac{Z+(1+\sqrt2)B}{Z+(1-\sqrt2)B}.

    Args:
        temperature: K; pressure: Pa (total).
        critical_temperatures, critical_pressures, acentric_factors: ``(n,)`` (K, Pa, -).
        mole_fractions: ``(n,)`` gas-phase mole fractions (default pure, ``n = 1``).

    Returns:
        ``(n,)`` fugacity coefficients; the fugacities are :math:`f_i = \varphi_i y_i P`.
    """
    check_positive(temperature, "temperature")
    check_positive(pressure, "pressure")
    tc = np.atleast_1d(np.asarray(critical_temperatures, dtype=np.float64))
    pc = np.atleast_1d(np.asarray(critical_pressures, dtype=np.float64))
    om = np.atleast_1d(np.asarray(acentric_factors, dtype=np.float64))
    if not (tc.shape == pc.shape == om.shape) or tc.ndim != 1:
        raise ValueError("critical_temperatures, critical_pressures, acentric_factors differ")
    check_positive(tc, "critical_temperatures")
    check_positive(pc, "critical_pressures")
    y = np.ones(1) if mole_fractions is None else np.asarray(mole_fractions, dtype=np.float64)
    if y.shape != tc.shape or np.any(y < 0) or abs(y.sum() - 1.0) > 1e-10:
        raise ValueError(f"mole_fractions must be {tc.shape} non-negative and sum to 1, got {y}")
    rt = _GAS_CONSTANT * temperature
    kappa = 0.37464 + 1.54226 * om - 0.26992 * om**2
    a = 0.45724 * _GAS_CONSTANT**2 * tc**2 / pc * (1 + kappa * (1 - np.sqrt(temperature / tc))) ** 2
    b = 0.07780 * _GAS_CONSTANT * tc / pc
    aij = np.sqrt(np.outer(a, a))
    am, bm = float(y @ aij @ y), float(y @ b)
    big_a, big_b = am * pressure / rt**2, bm * pressure / rt
    roots = np.roots(
        [
            1.0,
            -(1 - big_b),
            big_a - 3 * big_b**2 - 2 * big_b,
            -(big_a * big_b - big_b**2 - big_b**3),
        ]
    )
    real = roots[np.abs(roots.imag) < 1e-10].real
    z = float(real[real > big_b].max())
    s2 = math.sqrt(2.0)
    log_phi = (
        b / bm * (z - 1)
        - math.log(z - big_b)
        - big_a
        / (2 * s2 * big_b)
        * (2 * (aij @ y) / am - b / bm)
        * math.log((z + (1 + s2) * big_b) / (z + (1 - s2) * big_b))
    )
    return np.exp(log_phi)


def fugacities(
    names, temperature: float, pressure: float, mole_fractions=None, *, eos: str = "ideal"
) -> np.ndarray:
    r"""Fugacities :math:`f_i = \varphi_i y_i P` (Pa) of a gas mixture of ``names``.

    Args:
        names: species names, keys of :data:`CRITICAL_CONSTANTS` for ``"peng-robinson"``.
        temperature: K; pressure: total pressure, Pa.
        mole_fractions: ``(n,)`` (default pure, one species).
        eos: ``"ideal"`` (:math:`\varphi = 1`) or ``"peng-robinson"``
            (:func:`peng_robinson_fugacity_coefficients`).
    """
    names = list(names)
    y = np.ones(1) if mole_fractions is None else np.asarray(mole_fractions, dtype=np.float64)
    if y.shape != (len(names),):
        raise ValueError(f"mole_fractions must have {len(names)} entries, got {y.shape}")
    if eos == "ideal":
        check_positive(pressure, "pressure")
        return y * float(pressure)
    if eos != "peng-robinson":
        raise ValueError(f"eos must be 'ideal' or 'peng-robinson', got {eos!r}")
    missing = [n for n in names if n not in CRITICAL_CONSTANTS]
    if missing:
        raise ValueError(f"no critical constants for {missing}; known {sorted(CRITICAL_CONSTANTS)}")
    tc, pc, om = (np.array([CRITICAL_CONSTANTS[n][i] for n in names]) for i in range(3))
    return peng_robinson_fugacity_coefficients(temperature, pressure, tc, pc, om, y) * y * pressure


class GCMCSystem(eqx.Module):
    """Everything fixed during a GCMC run: cell, framework, species, force field, moves.

    Built by :func:`gcmc_system`. ``S`` sites per species (padded to the largest molecule
    with uncharged, non-interacting sites), ``M`` framework atoms (plus one padding atom).
    """

    cell: jax.Array  # (3, 3) supercell vectors as rows, Å
    inv_cell: jax.Array  # (3, 3)
    reps: jax.Array  # (3,) unit cells per supercell axis
    site_offsets: jax.Array  # (n_species, S, 3) Å, centred
    site_mask: jax.Array  # (n_species, S) bool, real sites
    site_charges: jax.Array  # (n_species, S) e
    frame_positions: jax.Array  # (M + 1, 3) Å, last row padding
    frame_far: jax.Array  # (M + 1,) 0, inf for the padding atom
    frame_epsilon: jax.Array  # (n_species, S, M + 1) K
    frame_sigma: jax.Array  # (n_species, S, M + 1) Å
    frame_qq: jax.Array  # (n_species, S, M + 1) C q_site q_atom, K Å
    bin_lists: jax.Array  # (n_bins_total, width) framework atom indices, M = padding
    n_bins: jax.Array  # (3,)
    bin_strides: jax.Array  # (3,)
    pair_epsilon: jax.Array  # (n_species, S, n_species, S) K
    pair_sigma: jax.Array  # (n_species, S, n_species, S) Å
    pair_qq: jax.Array  # (n_species, S, n_species, S) K Å
    k_ranges: tuple  # three (2 k_a + 1,) (first: k_1 + 1) integer wave numbers
    k_rows: jax.Array  # (P,) int32 kept rows (n1, n2) as i1 * len(k_ranges[1]) + i2
    k_weights: jax.Array  # (P, 2 k3 + 1) Ewald weights (0 off the half and the k-set)
    framework_structure_factor: jax.Array  # same shape, complex
    self_constant: jax.Array  # (n_species,) K
    log_beta_f_v: jax.Array  # (n_species,) log(beta f_s V)
    move_logits: jax.Array  # (5,)
    species_logits: jax.Array  # (n_species,)
    beta: jax.Array  # 1/K
    alpha: jax.Array  # Å^-1
    max_displacement: jax.Array  # Å
    max_rotation: jax.Array  # rad
    grid: jax.Array  # (N1, N2, N3, F) float32 energy grids (grids module); (1, 1, 1, 1) off
    grid_shape: jax.Array  # (3,) int32 live grid points per unit-cell axis
    site_type: jax.Array  # (n_species, S) int32 LJ grid field of each site
    grid_block: jax.Array  # K, stencil LJ value that blocks a site
    capacity: int = eqx.field(static=True)
    n_trials: int = eqx.field(static=True)  # CBMC trials k (1: plain moves)
    pair_block: int = eqx.field(static=True)  # slots per block of the pair sums
    n_species: int = eqx.field(static=True)
    n_sites: int = eqx.field(static=True)
    coulomb: bool = eqx.field(static=True)
    shifted: bool = eqx.field(static=True)
    r_cut: float = eqx.field(static=True)
    coulomb_constant: float = eqx.field(static=True)
    names: tuple = eqx.field(static=True)
    unit_cells: tuple = eqx.field(static=True)
    volume: float = eqx.field(static=True)
    use_grid: bool = eqx.field(static=True, default=False)


class GCMCState(NamedTuple):
    """A GCMC configuration with ``capacity`` slots (shapes fixed under ``jit``).

    Attributes:
        centres: ``(capacity, 3)`` molecule centres, Å (inside the supercell).
        sites: ``(capacity, S, 3)`` site positions, Å.
        species: ``(capacity,)`` int32 species index.
        occupied: ``(capacity,)`` bool.
        structure_factor: total :math:`S(k)` incl. the framework (complex, on the kept
            rows of the k-grid, ``(P, 2 k_3 + 1)``; ``(1, 1)`` zeros without charges).
        energy: running total energy, K (framework–framework left out).
        overflow: an insertion found no free slot (the run is biased; raise capacity).
    """

    centres: jax.Array
    sites: jax.Array
    species: jax.Array
    occupied: jax.Array
    structure_factor: jax.Array
    energy: jax.Array
    overflow: jax.Array


class GCMCStats(NamedTuple):
    """Sums over the steps of one :func:`gcmc_sample` call (one block).

    Attributes:
        n_steps: steps summed.
        sum_n, sum_n2: ``(n_species,)`` sums of :math:`N_s` and :math:`N_s^2` after each step.
        widom_sum, widom_count: ``(n_species,)`` sums of :math:`e^{-\\beta\\Delta U}` of the
            insertion attempts (a Widom test insertion into the sampled state) and their
            number.
        attempts, accepted: ``(5,)`` per move type (:data:`MOVES`).
        sum_energy: sum of the total energy, K.
        sum_n_cycle, sum_cycle_weight: ``(n_species,)`` and ``()`` sums of :math:`N_s/L` and
            :math:`1/L`, :math:`L = \\max(20, N)` (:data:`RASPA_CYCLE_MIN_STEPS`): their ratio
            is the loading a RASPA-style cycle average of this chain reports
            (:func:`cycle_convention_loading`), not the ensemble average ``sum_n / n_steps``.
    """

    n_steps: jax.Array
    sum_n: jax.Array
    sum_n2: jax.Array
    widom_sum: jax.Array
    widom_count: jax.Array
    attempts: jax.Array
    accepted: jax.Array
    sum_energy: jax.Array
    sum_n_cycle: jax.Array
    sum_cycle_weight: jax.Array


def cycle_convention_loading(stats: GCMCStats) -> jax.Array:
    r"""The mean loading (molecules per box, ``(..., n_species)``) a cycle-sampled average
    of the same chain reports: :math:`\sum_t N_s(t)/L(t)\,/\,\sum_t 1/L(t)`,
    :math:`L = \max(20, N)` (:data:`RASPA_CYCLE_MIN_STEPS`).

    RASPA (2 and 3) runs cycles of :math:`L = \max(20, N)` moves and samples its averages
    once a cycle. Where :math:`N > 20` the cycle length grows with the state, so a state is
    sampled at a rate :math:`\propto 1/N` while the chain is in it, and the reported mean
    tends to :math:`\sum_N \pi(N) N/L(N) / \sum_N \pi(N)/L(N)` (renewal-reward; for
    :math:`N \ge 20` throughout, the harmonic mean :math:`1/\langle 1/N\rangle`), below
    the ensemble average :math:`\langle N\rangle` = ``stats.sum_n / stats.n_steps`` by
    about :math:`\mathrm{var}(N)/\langle N\rangle^2`. This weights each step by
    :math:`1/L` instead, which is that limit when :math:`N` changes little within a cycle
    (CO₂ in MFI at 1 bar, about 26 molecules: on one chain of 600,000 moves the emulated
    cycle average was 0.4 % above this and 2.7 % below the ensemble average). Use it to
    compare with a RASPA loading, not as the physical average.
    """
    return stats.sum_n_cycle / stats.sum_cycle_weight[..., None]


def gcmc_system(
    molecules,
    *,
    temperature: float,
    fugacities,
    framework=None,
    cell=None,
    framework_lj="trappe-zeo",
    framework_charges=None,
    unit_cells=None,
    capacity: int = 64,
    r_cut: float = 12.0,
    shifted: bool = True,
    ewald_precision: float = 1e-6,
    ewald_alpha: float | None = None,
    ewald_kmax=None,
    ewald_kspace: str = "raspa",
    coulomb_constant: float = COULOMB_CONSTANT_RASPA,
    move_probabilities=None,
    species_probabilities=None,
    max_displacement: float = 1.0,
    max_rotation: float = 0.5,
    bin_width: float | None = 2.0,
    n_trials: int = 1,
    grid_spacing: float | None = None,
    pair_block: int | None = None,
    grid_block_energy: float = DEFAULT_BLOCK_ENERGY,
    grid_max_bytes: float = DEFAULT_GRID_MAX_BYTES,
) -> GCMCSystem:
    r"""Build a :class:`GCMCSystem` (module docstring for the model and the moves).

    Args:
        molecules: a :class:`thermo.materials.Molecule` or a sequence of them (species).
        temperature: K.
        fugacities: ``(n_species,)`` Pa (:func:`fugacities`).
        framework: ``ase.Atoms`` or a CIF path (unit cell), or ``None`` for an empty box.
        cell: ``(3, 3)`` cell vectors as rows (Å) of the empty box (``framework=None``).
        framework_lj: framework LJ parameters for
            :func:`thermo.materials.adsorption_force_field` (``"trappe-zeo"``, ``"uff"``
            or a dict).
        framework_charges: ``{element: e}`` or ``(n_atoms,)`` per unit-cell atom; ``None``
            uncharged.
        unit_cells: replication (default the smallest with :math:`r_c \le w_{\min}/2`).
        capacity: molecule slots.
        r_cut: LJ and real-space cutoff, Å.
        shifted: shift the LJ pairs to zero at ``r_cut``.
        ewald_precision: sets :math:`(\alpha, k_{\max})` by
            :func:`thermo.materials.ewald_parameters` unless both are given.
        ewald_alpha, ewald_kmax: explicit Ewald parameters.
        ewald_kspace: the k-set inside the cube :math:`|n_a| \le k_{\max,a}`
            (:data:`thermo.materials.KSPACES`): ``"raspa"`` (default) RASPA3's integer
            sphere :math:`|n|^2 \le \max_a k_{\max,a}^2`, the set RASPA3 sums with its
            automatic Ewald parameters, so the two codes sample the same Hamiltonian;
            ``"cube"`` the whole cube (the sum of
            :func:`thermo.materials.ewald_fourier_energy`, and RASPA3's with explicit
            Ewald parameters); ``"sphere"`` the physical sphere inscribed in the cube.
            A move's Fourier part costs in proportion to the kept :math:`(n_1, n_2)`
            rows (module docstring), so a smaller set is also a cheaper move.
        coulomb_constant: K·Å (default RASPA3's).
        move_probabilities: ``{move: weight}`` over :data:`MOVES` (default RASPA3's
            example 10: translation, rotation, reinsertion 0.5 each, swap 1.0 split
            evenly between insertion and deletion).
        species_probabilities: ``(n_species,)`` probabilities of the species of a swap
            (default uniform).
        max_displacement: :math:`\delta`, Å; max_rotation: :math:`\theta`, rad.
        bin_width: framework bin width, Å (``None``: visit every framework atom).
        n_trials: configurational-bias trials :math:`k` of the insertion, deletion and
            reinsertion (module docstring); 1 gives the plain moves. RASPA3 uses 10.
        grid_spacing: Å; with a value the framework–molecule energy (LJ, real-space and
            reciprocal Ewald of the framework charges) is read from energy grids over the
            unit cell (:mod:`thermo.materials.grids`; one LJ grid per site type and one
            potential grid, tricubic interpolation) instead of the direct sum, and the
            per-move Fourier sum keeps only the molecules' :math:`S(k)`. ``None`` (default):
            the exact direct sum.
        pair_block: slots per block of the molecule–molecule sums, which stop at the
            block holding the last occupied slot (the moves keep the molecules packed).
            ``None``: 8 where XLA's CPU pool has one thread
            (:func:`thermo.cpu.use_one_cpu_thread`, or a process restricted to one core),
            else ``capacity`` (one unblocked sum: across XLA's CPU threads the blocks'
            loop costs more than the empty slots it skips; ``bench_gcmc``).
        grid_block_energy: K; a site whose interpolation stencil holds an LJ value at or
            above this is an overlap (the move is rejected).
        grid_max_bytes: memory budget of the grids; a larger grid is refused.
    """
    mols = [molecules] if isinstance(molecules, Molecule) else list(molecules)
    if not mols or not all(isinstance(m, Molecule) for m in mols):
        raise TypeError("molecules must be a Molecule or a non-empty sequence of Molecules")
    names = tuple(m.name for m in mols)
    if len(set(names)) != len(names):
        raise ValueError(f"species must be distinct, got {names}")
    n_sp = len(mols)
    check_positive(temperature, "temperature")
    f = np.atleast_1d(np.asarray(fugacities, dtype=np.float64))
    if f.shape != (n_sp,):
        raise ValueError(f"fugacities must have {n_sp} entries (one per species), got {f.shape}")
    check_positive(f, "fugacities")
    capacity = check_count(capacity, "capacity")
    n_trials = check_count(n_trials, "n_trials")
    if pair_block is None:
        from thermo.cpu import one_cpu_thread_pool

        pair_block = _PAIR_BLOCK if one_cpu_thread_pool() else capacity
    pair_block = min(check_count(pair_block, "pair_block"), capacity)
    check_positive(r_cut, "r_cut")
    check_positive(max_displacement, "max_displacement")
    check_positive(max_rotation, "max_rotation")
    if bin_width is not None:
        check_positive(bin_width, "bin_width")
    _check_kspace(ewald_kspace)
    if grid_spacing is not None:
        if not (isinstance(grid_spacing, (int, float)) and float(grid_spacing) > 0):
            raise ValueError(f"grid_spacing must be a positive number (Å), got {grid_spacing!r}")
        check_positive(grid_block_energy, "grid_block_energy")

    probs = {"translation": 0.5, "rotation": 0.5, "reinsertion": 0.5}
    probs.update(insertion=0.5, deletion=0.5)
    if move_probabilities is not None:
        unknown = sorted(set(move_probabilities) - set(MOVES))
        if unknown:
            raise ValueError(f"unknown moves {unknown}; known {MOVES}")
        probs = {m: float(move_probabilities.get(m, 0.0)) for m in MOVES}
    p_moves = np.array([probs[m] for m in MOVES])
    if np.any(p_moves < 0) or p_moves.sum() <= 0:
        raise ValueError(f"move_probabilities must be non-negative, not all zero: {probs}")
    if (p_moves[_INSERT] > 0) != (p_moves[_DELETE] > 0):
        raise ValueError("insertion and deletion need both or neither a positive probability")
    if species_probabilities is None:
        p_sp = np.full(n_sp, 1.0 / n_sp)
    else:
        p_sp = np.asarray(species_probabilities, dtype=np.float64)
        if p_sp.shape != (n_sp,) or np.any(p_sp <= 0):
            raise ValueError(f"species_probabilities must be {n_sp} positive numbers, got {p_sp}")

    # Framework and supercell.
    if framework is None:
        if cell is None:
            raise ValueError("give a framework or, for an empty box, its cell")
        supercell_rows = np.asarray(cell, dtype=np.float64)
        if supercell_rows.shape != (3, 3) or np.linalg.det(supercell_rows) <= 0:
            raise ValueError("cell must be a right-handed (3, 3) matrix of cell vectors as rows")
        reps = (1, 1, 1) if unit_cells is None else tuple(int(n) for n in unit_cells)
        supercell_rows = supercell_rows * np.asarray(reps)[:, None]
        frame_pos = np.zeros((0, 3))
        frame_symbols: list[str] = []
        q_frame = np.zeros(0)
    else:
        if cell is not None:
            raise ValueError("give either a framework or a cell, not both")
        atoms = load_framework(framework)
        cell_uc = atoms.cell.array.T
        if unit_cells is None:
            reps = replicas_for_cutoff(cell_uc, r_cut)
        else:
            reps = tuple(check_count(n, "unit_cells entry") for n in unit_cells)
        big = atoms.repeat(reps)
        supercell_rows = box_matrix(cell_uc * np.asarray(reps)[None, :]).T
        frame_pos = big.get_positions()
        frame_symbols = big.get_chemical_symbols()
        if framework_charges is None:
            q_frame = np.zeros(len(big))
        else:  # ase's repeat tiles whole unit cells
            q_uc = _framework_charge_array(atoms, framework_charges)
            q_frame = np.tile(q_uc, int(np.prod(reps)))
    if len(reps) != 3 or min(reps) < 1:
        raise ValueError(f"unit_cells must be three positive integers, got {reps}")
    check_cutoff(supercell_rows.T, r_cut)
    inv_rows = np.linalg.inv(supercell_rows)
    volume = float(np.linalg.det(supercell_rows))
    m_frame = frame_pos.shape[0]

    # Species, padded to S sites.
    n_s = max(len(m.site_names) for m in mols)
    offsets = np.zeros((n_sp, n_s, 3))
    mask = np.zeros((n_sp, n_s), dtype=bool)
    q_site = np.zeros((n_sp, n_s))
    eps_site = np.zeros((n_sp, n_s))
    sig_site = np.ones((n_sp, n_s))
    for i, m in enumerate(mols):
        k = len(m.site_names)
        offsets[i, :k] = m.positions - m.positions.mean(axis=0)
        mask[i, :k] = True
        q_site[i, :k] = m.charges
        eps_site[i, :k] = m.epsilon
        sig_site[i, :k] = m.sigma

    # Framework LJ (Lorentz-Berthelot) per (species, site, atom), padded atom last.
    frame_eps = np.zeros((n_sp, n_s, m_frame + 1))
    frame_sig = np.ones((n_sp, n_s, m_frame + 1))
    if m_frame:
        table = adsorption_force_field(mols[0], framework_lj)["atoms"]
        missing = sorted(set(frame_symbols) - set(table))
        if missing:
            raise ValueError(f"no LJ parameters for framework elements {missing}")
        e_f = np.array([table[s]["epsilon"] for s in frame_symbols])
        s_f = np.array([table[s]["sigma"] for s in frame_symbols])
        frame_eps[..., :m_frame] = np.sqrt(eps_site[..., None] * e_f)
        frame_sig[..., :m_frame] = 0.5 * (sig_site[..., None] + s_f)
    frame_eps *= mask[..., None]
    q_pad = np.concatenate([q_frame, [0.0]])
    frame_qq = coulomb_constant * q_site[..., None] * q_pad
    pair_eps = np.sqrt(eps_site[:, :, None, None] * eps_site[None, None])
    pair_eps = pair_eps * mask[:, :, None, None] * mask[None, None]
    pair_sig = 0.5 * (sig_site[:, :, None, None] + sig_site[None, None])
    pair_qq = coulomb_constant * q_site[:, :, None, None] * q_site[None, None]

    frame_frac = (frame_pos @ inv_rows) % 1.0
    if m_frame and bin_width is not None:
        d_max = float(np.max(np.linalg.norm(offsets, axis=-1)))
        lists, n_bins = _bin_lists(
            frame_frac, supercell_rows.T, reps, d_max, float(r_cut), float(bin_width)
        )
    else:
        lists, n_bins = np.arange(m_frame + 1)[None, :], np.ones(3, dtype=int)

    coulomb = bool(np.any(q_site != 0))
    if coulomb:
        kv = _ewald_kvectors(
            supercell_rows, r_cut, ewald_precision, ewald_alpha, ewald_kmax, ewald_kspace
        )
        k_ranges, weights, s_frame = _fourier_grid(kv, frame_frac, q_frame, supercell_rows.T)
        cj = jnp.asarray(supercell_rows)
        consts = []
        for i, m in enumerate(mols):
            k = len(m.site_names)
            consts.append(
                coulomb_constant
                * float(
                    _self_exclusion(
                        jnp.asarray(offsets[i, :k]),
                        jnp.asarray(q_site[i, :k]),
                        jnp.asarray(~np.eye(k, dtype=bool)),
                        cj,
                        jnp.linalg.inv(cj),
                        kv.alpha,
                    )
                )
            )
        self_constant = np.array(consts)
        alpha = kv.alpha
    else:
        # uncharged adsorbates: a charged framework contributes nothing
        k_ranges = tuple(jnp.zeros(1) for _ in range(3))
        weights = jnp.zeros((1, 1, 1))
        s_frame = jnp.zeros((1, 1, 1), dtype=jnp.complex128)
        self_constant = np.zeros(n_sp)
        alpha = 1.0

    grid = np.zeros((1, 1, 1, 1))
    shape = (1, 1, 1)
    site_type = np.zeros((n_sp, n_s), dtype=np.int32)
    if grid_spacing is not None:
        # one LJ field per distinct (epsilon, sigma) of the real sites, then the potential
        types: list[tuple[float, float]] = []
        for i in range(n_sp):
            for j in range(n_s):
                if mask[i, j]:
                    key = (float(eps_site[i, j]), float(sig_site[i, j]))
                    if key not in types:
                        types.append(key)
                    site_type[i, j] = types.index(key)
        uc_rows = supercell_rows / np.asarray(reps, dtype=np.float64)[:, None]
        shape = grid_shape(uc_rows, float(grid_spacing))
        check_grid_budget(shape, len(types) + int(coulomb), grid_max_bytes)
        if m_frame:
            table = adsorption_force_field(mols[0], framework_lj)["atoms"]
            e_f = np.array([table[sym]["epsilon"] for sym in frame_symbols])
            s_f_lj = np.array([table[sym]["sigma"] for sym in frame_symbols])
        else:
            e_f = s_f_lj = np.zeros(0)
        grid = build_framework_grids(
            frame_frac=frame_frac,
            frame_q=q_frame,
            frame_eps=e_f,
            frame_sig=s_f_lj,
            type_eps=np.array([t[0] for t in types]),
            type_sig=np.array([t[1] for t in types]),
            supercell_rows=supercell_rows,
            reps=reps,
            shape=shape,
            r_cut=float(r_cut),
            shifted=bool(shifted),
            coulomb=coulomb,
            alpha=float(alpha),
            coulomb_constant=float(coulomb_constant),
            k_ranges=[np.asarray(r) for r in k_ranges] if coulomb else None,
            k_weights=np.asarray(weights) if coulomb else None,
            s_frame=np.asarray(s_frame) if coulomb else None,
            block_energy=float(grid_block_energy),
        )
        # the framework now lives in the grids: no atoms, no framework S(k)
        s_frame = jnp.zeros_like(jnp.asarray(s_frame, dtype=jnp.complex128))
        frame_pos = np.zeros((0, 3))
        m_frame = 0
        frame_eps = np.zeros((n_sp, n_s, 1))
        frame_sig = np.ones((n_sp, n_s, 1))
        frame_qq = np.zeros((n_sp, n_s, 1))
        lists, n_bins = np.zeros((1, 1), dtype=int), np.ones(3, dtype=int)

    k_rows, weights, s_frame = _kept_rows(weights, s_frame)
    beta = 1.0 / float(temperature)
    log_bfv = np.log(f * volume * 1e-30 / (K_BOLTZMANN * float(temperature)))
    with np.errstate(divide="ignore"):
        move_logits = np.log(p_moves / p_moves.sum())
    frame_far = np.concatenate([np.zeros(m_frame), [np.inf]])
    return GCMCSystem(
        cell=jnp.asarray(supercell_rows),
        inv_cell=jnp.asarray(inv_rows),
        reps=jnp.asarray(np.asarray(reps, dtype=np.float64)),
        site_offsets=jnp.asarray(offsets),
        site_mask=jnp.asarray(mask),
        site_charges=jnp.asarray(q_site),
        frame_positions=jnp.asarray(np.concatenate([frame_pos, np.zeros((1, 3))])),
        frame_far=jnp.asarray(frame_far),
        frame_epsilon=jnp.asarray(frame_eps),
        frame_sigma=jnp.asarray(frame_sig),
        frame_qq=jnp.asarray(frame_qq),
        bin_lists=jnp.asarray(lists, dtype=jnp.int32),
        n_bins=jnp.asarray(n_bins, dtype=jnp.int32),
        bin_strides=jnp.asarray([n_bins[1] * n_bins[2], n_bins[2], 1], dtype=jnp.int32),
        pair_epsilon=jnp.asarray(pair_eps),
        pair_sigma=jnp.asarray(pair_sig),
        pair_qq=jnp.asarray(pair_qq),
        k_ranges=tuple(jnp.asarray(r) for r in k_ranges),
        k_rows=jnp.asarray(k_rows, dtype=jnp.int32),
        k_weights=jnp.asarray(weights),
        framework_structure_factor=jnp.asarray(s_frame, dtype=jnp.complex128),
        self_constant=jnp.asarray(self_constant),
        log_beta_f_v=jnp.asarray(log_bfv),
        move_logits=jnp.asarray(move_logits),
        species_logits=jnp.asarray(np.log(p_sp / p_sp.sum())),
        beta=jnp.asarray(beta),
        alpha=jnp.asarray(float(alpha)),
        max_displacement=jnp.asarray(float(max_displacement)),
        max_rotation=jnp.asarray(float(max_rotation)),
        grid=jnp.asarray(grid, dtype=jnp.float32),  # half the memory traffic of the gathers
        grid_shape=jnp.asarray(shape, dtype=jnp.int32),
        site_type=jnp.asarray(site_type),
        grid_block=jnp.asarray(float(grid_block_energy)),
        capacity=capacity,
        n_trials=n_trials,
        pair_block=pair_block,
        n_species=n_sp,
        n_sites=n_s,
        coulomb=coulomb,
        shifted=bool(shifted),
        r_cut=float(r_cut),
        coulomb_constant=float(coulomb_constant),
        names=names,
        unit_cells=tuple(int(n) for n in reps),
        volume=volume,
        use_grid=grid_spacing is not None,
    )


def _kept_rows(weights, s_frame):
    """The rows :math:`(n_1, n_2)` of the half k-grid with a non-zero weight (at least one).

    Returns ``(rows, weights, s_frame)``: the flat row indices and the ``(P, 2 k_3 + 1)``
    weights and framework structure factor on them.
    """
    w = np.asarray(weights)
    w2 = w.reshape(-1, w.shape[-1])
    rows = np.flatnonzero(np.any(w2 != 0.0, axis=1))
    if rows.size == 0:  # no charges: one zero row keeps the shapes non-empty
        rows = np.zeros(1, dtype=np.int64)
    s2 = np.asarray(s_frame).reshape(w2.shape)
    return rows, w2[rows], s2[rows]


def gcmc_init(system: GCMCSystem) -> GCMCState:
    """The empty state (no molecules) of ``system``; its energy is 0."""
    cap, s = system.capacity, system.n_sites
    return GCMCState(
        centres=jnp.zeros((cap, 3)),
        sites=jnp.zeros((cap, s, 3)),
        species=jnp.zeros(cap, dtype=jnp.int32),
        occupied=jnp.zeros(cap, dtype=bool),
        structure_factor=system.framework_structure_factor,
        energy=jnp.zeros(()),
        overflow=jnp.zeros((), dtype=bool),
    )


def _min_image(d, system):
    frac = d @ system.inv_cell
    return (frac - jnp.round(frac)) @ system.cell


def _grid_energy(system: GCMCSystem, sites, s):
    """Framework energy of one molecule from the grids; the clamp if a site is blocked."""
    frac = (sites @ system.inv_cell) * system.reps[None, :]
    vals, stencil_max = jax.vmap(lambda f: interpolate(system.grid, system.grid_shape, f))(frac)
    t = system.site_type[s][:, None]
    lj = jnp.take_along_axis(vals, t, axis=1)[:, 0]
    blocked = jnp.take_along_axis(stencil_max, t, axis=1)[:, 0] >= system.grid_block
    u = lj + system.site_charges[s] * vals[:, -1] if system.coulomb else lj
    mask = system.site_mask[s]
    u = jnp.sum(jnp.where(mask, u, 0.0))
    return jnp.where(jnp.any(mask & blocked), _ENERGY_CLAMP, u)


def _framework_energy(system: GCMCSystem, sites, centre, s):
    """LJ + real-space Coulomb of one molecule with the framework (binned atom lists)."""
    if system.use_grid:
        return _grid_energy(system, sites, s)
    uc = (centre @ system.inv_cell) * system.reps
    shift = jnp.floor(uc)
    n_bins_f = system.n_bins.astype(uc.dtype)
    b = jnp.clip((jnp.mod(uc, 1.0) * n_bins_f).astype(jnp.int32), 0, system.n_bins - 1)
    nbrs = system.bin_lists[jnp.sum(b * system.bin_strides)]
    shifted_sites = sites - ((shift / system.reps) @ system.cell)[None, :]  # into the first cell
    d = _min_image(shifted_sites[:, None, :] - system.frame_positions[nbrs][None], system)
    r = jnp.sqrt(jnp.sum(d * d, axis=-1)) + system.frame_far[nbrs][None, :]
    keep = system.site_mask[s][:, None] & (r < system.r_cut)
    r_safe = jnp.where(keep, r, 2.0 * system.r_cut)
    u = jnp.sum(
        lj_pair(
            r_safe,
            system.frame_sigma[s][:, nbrs],
            system.frame_epsilon[s][:, nbrs],
            system.r_cut,
            system.shifted,
        )
    )
    if system.coulomb:
        real = system.frame_qq[s][:, nbrs] * erfc(system.alpha * r_safe) / r_safe
        u = u + jnp.sum(jnp.where(keep, real, 0.0))
    return u


class _PairTable(NamedTuple):
    """One molecule's pair parameters against every slot, shared by its trial positions."""

    frac: jax.Array  # (cap, S, 3) fractional site coordinates of the slots
    keep: jax.Array  # (S, cap, S) bool: real site pairs with an occupied other slot
    e4: jax.Array  # (S, cap, S) 4 epsilon, K
    sig6: jax.Array  # (S, cap, S) sigma^6, Å^6
    shift: jax.Array  # (S, cap, S) u_LJ(r_c) of the shift, K (0 unshifted)
    qq: jax.Array  # (S, cap, S) C q_i q_j, K Å
    n_scan: jax.Array  # () int32: slots [0, n_scan) hold every other molecule


#: Slots per block of the pair sums (:func:`_pair_energy_from`) in a process on one core
#: (``gcmc_system(pair_block=None)``): the sums run over the blocks up to the last occupied
#: slot only, and :func:`gcmc_step` keeps the molecules packed at the front, so a state of
#: n molecules costs about n slots, not ``capacity``.
_PAIR_BLOCK = 8


def _pair_table(system: GCMCSystem, state: GCMCState, s, slot) -> _PairTable:
    """The gathers of :func:`_pair_energy` for a molecule of species ``s`` in ``slot``."""
    others = state.occupied & (jnp.arange(system.capacity) != slot)
    keep = (
        system.site_mask[s][:, None, None]
        & others[None, :, None]
        & system.site_mask[state.species][None]
    )
    eps = system.pair_epsilon[s][:, state.species, :]
    sig6 = system.pair_sigma[s][:, state.species, :] ** 6
    if system.shifted:
        sc6 = sig6 / system.r_cut**6
        shift = 4.0 * eps * (sc6 * sc6 - sc6)
    else:
        shift = jnp.zeros_like(eps)
    return _PairTable(
        frac=state.sites @ system.inv_cell,
        keep=keep,
        e4=4.0 * eps,
        sig6=sig6,
        shift=shift,
        qq=system.pair_qq[s][:, state.species, :],
        n_scan=jnp.max(jnp.where(others, jnp.arange(system.capacity) + 1, 0)).astype(jnp.int32),
    )


def _pair_energy_from(system: GCMCSystem, table: _PairTable, sites):
    """LJ + real-space Coulomb of one molecule's ``sites (S, 3)`` with the slots of ``table``.

    Minimum image in fractional coordinates with the Cartesian components written out
    (no per-pair 3 × 3 products or gathers), so each block is one fused loop; the LJ
    term from :math:`r^2` as :func:`thermo.materials.lj_pair` computes it. The slots are
    summed in blocks of ``system.pair_block`` up to ``table.n_scan`` (a loop with a traced
    trip count), so empty slots past the last molecule cost nothing; the last block is
    shifted back inside the capacity and its slots already summed are masked.
    """
    f = sites @ system.inv_cell  # (S, 3)
    cap = system.capacity
    width = system.pair_block
    r_cut2 = system.r_cut * system.r_cut

    def block(c, total):
        start = jnp.minimum(c * width, cap - width)
        fresh = (start + jnp.arange(width, dtype=start.dtype)) >= c * width

        def cut(a, axis):
            return jax.lax.dynamic_slice_in_dim(a, start, width, axis)

        frac = cut(table.frac, 0)
        df = [f[:, None, None, a] - frac[None, ..., a] for a in range(3)]
        df = [x - jnp.round(x) for x in df]
        r2 = jnp.zeros(df[0].shape, dtype=f.dtype)
        for j in range(3):
            dj = df[0] * system.cell[0, j] + df[1] * system.cell[1, j] + df[2] * system.cell[2, j]
            r2 = r2 + dj * dj
        keep = cut(table.keep, 1) & fresh[None, :, None] & (r2 < r_cut2)
        r2 = jnp.where(keep, r2, 4.0 * r_cut2)
        s6 = cut(table.sig6, 1) / (r2 * r2 * r2)
        u = cut(table.e4, 1) * (s6 * s6 - s6) - cut(table.shift, 1)
        if system.coulomb:
            r = jnp.sqrt(r2)
            u = u + cut(table.qq, 1) * erfc(system.alpha * r) / r
        return total + jnp.sum(jnp.where(keep, u, 0.0))

    zero = jnp.zeros((), dtype=f.dtype)
    if width >= cap:  # one block: no loop
        return block(jnp.zeros((), dtype=table.n_scan.dtype), zero)
    n_blocks = (table.n_scan + width - 1) // width
    return jax.lax.fori_loop(0, n_blocks, block, zero)


def _pair_energy(system: GCMCSystem, state: GCMCState, sites, s, slot):
    """LJ + real-space Coulomb of one molecule (sites of species s) with the others."""
    return _pair_energy_from(system, _pair_table(system, state, s, slot), sites)


def _molecule_structure_factor(system: GCMCSystem, sites, s, charges=None):
    """:math:`s_m(k)` of one molecule on the kept rows, from three 1D exponential tables.

    The first two axes' product is gathered on the kept rows ``k_rows`` and contracted
    with the third axis' table over the sites (one ``(P, S) @ (S, 2 k_3 + 1)`` product).

    ``charges`` overrides the species' site charges (``(len(sites),)``: a move's new
    sites and its old ones with negated charges give the change of :math:`S(k)` in one
    product).
    """
    q = system.site_charges[s] if charges is None else charges
    frac = sites @ system.inv_cell
    phases = [2.0 * jnp.pi * frac[:, a, None] * system.k_ranges[a][None, :] for a in range(3)]
    e = [jnp.exp(jax.lax.complex(jnp.zeros_like(p), p)) for p in phases]
    e12 = (q.astype(e[0].dtype)[:, None] * e[0])[:, :, None] * e[1][:, None, :]
    e12 = e12.reshape(e12.shape[0], -1)[:, system.k_rows]  # (S, P)
    return e12.T @ e[2]


def _fourier_delta_parts(system: GCMCSystem, total, dr, di):
    """:math:`C\\sum_k w_k (|S+\\Delta s|^2 - |S|^2)` of a change with parts ``dr``, ``di``."""
    sr, si = jnp.real(total), jnp.imag(total)
    return system.coulomb_constant * jnp.sum(
        system.k_weights * (2.0 * (sr * dr + si * di) + dr * dr + di * di)
    )


def _fourier_delta(system: GCMCSystem, total, delta):
    """:math:`C\\sum_k w_k (|S+\\Delta s|^2 - |S|^2)`."""
    return _fourier_delta_parts(system, total, jnp.real(delta), jnp.imag(delta))


def _rotation_about_axis(key, max_angle):
    """A rotation by a uniform angle in [-max, max] about a uniform axis (symmetric)."""
    k_axis, k_angle = jr.split(key)
    axis = jr.normal(k_axis, (3,))
    axis = axis / jnp.linalg.norm(axis)
    angle = jr.uniform(k_angle, (), minval=-max_angle, maxval=max_angle)
    kx = jnp.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    return jnp.eye(3) + jnp.sin(angle) * kx + (1.0 - jnp.cos(angle)) * kx @ kx


def _wrap(centre, sites, system):
    shift = jnp.floor(centre @ system.inv_cell) @ system.cell
    return centre - shift, sites - shift[None, :]


def _trial_energy(system: GCMCSystem, table: _PairTable, sites, centre, s):
    """The CBMC trial energy of one molecule: everything but the Fourier term (clamped)."""
    u = _framework_energy(system, sites, centre, s) + _pair_energy_from(system, table, sites)
    return jnp.minimum(u, _ENERGY_CLAMP)


def _random_placements(key, system: GCMCSystem, s, n):
    """``n`` uniform positions with uniform orientations of species ``s``: centres, sites."""
    k_pos, k_rot = jr.split(key)
    centres = jr.uniform(k_pos, (n, 3)) @ system.cell
    rots = jax.vmap(lambda k: _random_rotation(k, 2))(jr.split(k_rot, n))
    sites = centres[:, None, :] + jnp.einsum("sj,nij->nsi", system.site_offsets[s], rots)
    return centres, sites


def gcmc_step(key, system: GCMCSystem, state: GCMCState, move_key=None):
    r"""One GCMC move (module docstring): ``(state, info)`` with ``info`` a dict.

    With ``system.n_trials`` :math:`k > 1` the insertion, deletion and reinsertion are
    configurational-bias moves (module docstring); the extra trials are evaluated under
    ``lax.cond``, so only those moves pay for them (under ``vmap`` the branch becomes a
    select and every step pays).

    ``info``: ``move`` (index into :data:`MOVES`), ``accepted``, ``valid`` (the move was
    possible: a molecule to move or delete, a free slot to insert into), ``species``
    of the swap, ``widom`` (the insertion attempt's Rosenbluth estimate of
    :math:`\langle e^{-\beta\Delta U}\rangle`, :math:`\frac{W}{k}e^{-\beta\Delta U_F}`,
    else 0).
    """
    k_trials = system.n_trials
    keys = jr.split(key, 9)
    move = jr.categorical(keys[0] if move_key is None else move_key, system.move_logits)
    s_pick = jr.categorical(keys[1], system.species_logits)
    occ = state.occupied
    species_ids = jnp.arange(system.n_species, dtype=state.species.dtype)[None, :]
    n_by = jnp.sum(occ[:, None] & (state.species[:, None] == species_ids), 0)
    n_tot = jnp.sum(occ)
    has_free = ~jnp.all(occ)
    free_slot = jnp.argmin(occ)
    any_slot = jr.categorical(keys[2], jnp.where(occ, 0.0, -jnp.inf))
    sp_slot = jr.categorical(
        keys[2],
        jnp.where(occ & (state.species == s_pick.astype(state.species.dtype)), 0.0, -jnp.inf),
    )
    is_ins, is_del = move == _INSERT, move == _DELETE
    is_local = (move == _TRANSLATE) | (move == _ROTATE)
    slot = jnp.where(is_ins, free_slot, jnp.where(is_del, sp_slot, any_slot))
    slot = jnp.clip(slot, 0, system.capacity - 1)
    valid = jnp.where(is_ins, has_free, jnp.where(is_del, n_by[s_pick] > 0, n_tot > 0))
    s_old = state.species[slot]
    s_new = jnp.where(is_ins, s_pick.astype(s_old.dtype), s_old)
    old_c, old_sites = state.centres[slot], state.sites[slot]
    old_present, new_present = ~is_ins, ~is_del

    # New candidates: the displaced/rotated molecule, or k uniform placements.
    disp = jr.uniform(keys[3], (3,), minval=-1.0, maxval=1.0) * system.max_displacement
    rot_small = _rotation_about_axis(keys[4], system.max_rotation)
    rand_c, rand_sites = _random_placements(keys[5], system, s_new, k_trials)
    local_c = jnp.where(move == _TRANSLATE, old_c + disp, old_c)
    local_sites = jnp.where(
        move == _TRANSLATE,
        old_sites + disp[None, :],
        old_c[None, :] + (old_sites - old_c[None, :]) @ rot_small.T,
    )
    cand_c = rand_c.at[0].set(jnp.where(is_local, local_c, rand_c[0]))
    cand_sites = rand_sites.at[0].set(jnp.where(is_local, local_sites, rand_sites[0]))
    cand_c, cand_sites = jax.vmap(lambda c, x: _wrap(c, x, system))(cand_c, cand_sites)
    # the pair gathers once per move, shared by all trial positions, old and new: s_new
    # is s_old except on an insertion, whose old-side energies are discarded
    table = _pair_table(system, state, s_new, slot)
    u_new0 = _trial_energy(system, table, cand_sites[0], cand_c[0], s_new)
    u_old0 = _trial_energy(system, table, old_sites, old_c, s_old)
    if k_trials > 1:
        many_new = new_present & ~is_local & valid
        many_old = old_present & ~is_local & valid
        # the branches are taken on the move type alone (an invalid move's trials are
        # discarded), so under vmap with a shared move_key the predicate is unbatched and
        # lax.cond stays a branch
        run_new, run_old = new_present & ~is_local, old_present & ~is_local

        def trials_fn(centres, sites, s, table):  # one species and table for all trials
            # a trial whose framework energy is at the clamp has weight 0 whatever its
            # pair energy, so the pair sums run over the others only, one at a time
            u_frame = jax.vmap(lambda c, x: _framework_energy(system, x, c, s))(centres, sites)
            live = u_frame < _ENERGY_CLAMP
            order = jnp.argsort(~live, stable=True)

            def pair_body(j, u_pair):
                i = order[j]
                return u_pair.at[i].set(_pair_energy_from(system, table, sites[i]))

            u_pair = jax.lax.fori_loop(0, jnp.sum(live), pair_body, jnp.zeros_like(u_frame))
            return jnp.minimum(u_frame + u_pair, _ENERGY_CLAMP)

        no_trials = jnp.full(k_trials - 1, jnp.inf)
        u_new_rest = jax.lax.cond(
            run_new,
            lambda: trials_fn(cand_c[1:], cand_sites[1:], s_new, table),
            lambda: no_trials,
        )
        old_rand_c, old_rand_sites = _random_placements(keys[6], system, s_old, k_trials - 1)
        old_rand_c, old_rand_sites = jax.vmap(lambda c, x: _wrap(c, x, system))(
            old_rand_c, old_rand_sites
        )
        u_old_rest = jax.lax.cond(
            run_old,
            lambda: trials_fn(old_rand_c, old_rand_sites, s_old, table),
            lambda: no_trials,
        )
        u_new_rest = jnp.where(many_new, u_new_rest, jnp.inf)
        u_old_rest = jnp.where(many_old, u_old_rest, jnp.inf)
        log_w_new = -system.beta * jnp.concatenate([u_new0[None], u_new_rest])
        log_w_old = -system.beta * jnp.concatenate([u_old0[None], u_old_rest])
        pick = jr.categorical(keys[7], log_w_new)
        log_k = jnp.log(jnp.asarray(float(k_trials)))
        log_rosen_new = jax.scipy.special.logsumexp(log_w_new) - jnp.where(many_new, log_k, 0.0)
        log_rosen_old = jax.scipy.special.logsumexp(log_w_old) - jnp.where(many_old, log_k, 0.0)
    else:
        pick = jnp.zeros((), dtype=jnp.int32)
        log_rosen_new, log_rosen_old = -system.beta * u_new0, -system.beta * u_old0
    new_c, new_sites = cand_c[pick], cand_sites[pick]
    u_new = jnp.concatenate([u_new0[None], u_new_rest])[pick] if k_trials > 1 else u_new0

    u_new = jnp.where(new_present & valid, u_new, 0.0)
    u_old = jnp.where(old_present & valid, u_old0, 0.0)
    log_rosen_new = jnp.where(new_present & valid, log_rosen_new, 0.0)
    log_rosen_old = jnp.where(old_present & valid, log_rosen_old, 0.0)
    if system.coulomb:
        # one structure factor of the new sites and the old ones with negated charges
        q_new = jnp.where(new_present & valid, system.site_charges[s_new], 0.0)
        q_old = jnp.where(old_present & valid, system.site_charges[s_old], 0.0)
        ds = _molecule_structure_factor(
            system,
            jnp.concatenate([new_sites, old_sites]),
            s_new,
            charges=jnp.concatenate([q_new, -q_old]),
        )
        delta_fourier = (
            _fourier_delta(system, state.structure_factor, ds)
            + jnp.where(is_ins, system.self_constant[s_new], 0.0)
            - jnp.where(is_del, system.self_constant[s_old], 0.0)
        )
        delta_fourier = jnp.where(valid, jnp.minimum(delta_fourier, _ENERGY_CLAMP), 0.0)
    else:
        ds = jnp.zeros_like(state.structure_factor)
        delta_fourier = jnp.zeros(())
    delta_u = u_new - u_old + delta_fourier
    n_s = n_by[s_pick].astype(delta_u.dtype)
    log_bias = jnp.where(
        is_ins,
        system.log_beta_f_v[s_pick] - jnp.log(n_s + 1.0),
        jnp.where(is_del, jnp.log(jnp.maximum(n_s, 1.0)) - system.log_beta_f_v[s_pick], 0.0),
    )
    log_acc = log_rosen_new - log_rosen_old - system.beta * delta_fourier + log_bias
    accepted = valid & (jnp.log(jr.uniform(keys[8])) < log_acc)
    widom = jnp.where(is_ins & valid, jnp.exp(log_rosen_new - system.beta * delta_fourier), 0.0)

    put = accepted & new_present
    # a deletion moves the last molecule into the freed slot, so the molecules stay
    # packed at the front (the pair sums stop at the last one); S(k) and U are unchanged
    last = jnp.max(jnp.where(occ, jnp.arange(system.capacity, dtype=slot.dtype), 0))
    refill = accepted & is_del
    fill_c = jnp.where(refill, state.centres[last], old_c)
    fill_sites = jnp.where(refill, state.sites[last], old_sites)
    fill_species = jnp.where(refill, state.species[last], s_old)
    occupied = state.occupied.at[last].set(jnp.where(refill, False, occ[last]))
    occupied = occupied.at[slot].set(
        jnp.where(accepted, new_present | (refill & (last != slot)), occ[slot])
    )
    new_state = GCMCState(
        centres=state.centres.at[slot].set(jnp.where(put, new_c, fill_c)),
        sites=state.sites.at[slot].set(jnp.where(put, new_sites, fill_sites)),
        species=state.species.at[slot].set(jnp.where(accepted & ~is_del, s_new, fill_species)),
        occupied=occupied,
        structure_factor=state.structure_factor + jnp.where(accepted, ds, 0.0),
        energy=state.energy + jnp.where(accepted, delta_u, 0.0),
        overflow=state.overflow | (is_ins & ~has_free),
    )
    info = {"move": move, "accepted": accepted, "valid": valid, "species": s_pick, "widom": widom}
    return new_state, info


def _zero_stats(system: GCMCSystem) -> GCMCStats:
    z = jnp.zeros(system.n_species)
    return GCMCStats(
        n_steps=jnp.zeros((), dtype=jnp.int32),
        sum_n=z,
        sum_n2=z,
        widom_sum=z,
        widom_count=z,
        attempts=jnp.zeros(5),
        accepted=jnp.zeros(5),
        sum_energy=jnp.zeros(()),
        sum_n_cycle=z,
        sum_cycle_weight=jnp.zeros(()),
    )


def _sample(key, system: GCMCSystem, state: GCMCState, n_steps: int, move_key=None):
    def body(carry, keys):
        st, acc = carry
        k, mk = keys
        st, info = gcmc_step(k, system, st, mk)
        n = jnp.sum(
            st.occupied[:, None]
            & (
                st.species[:, None] == jnp.arange(system.n_species, dtype=st.species.dtype)[None, :]
            ),
            0,
        ).astype(acc.sum_n.dtype)
        # a RASPA cycle of L = max(20, N) steps is sampled once: weight 1/L per step
        inv_cycle = 1.0 / jnp.maximum(float(RASPA_CYCLE_MIN_STEPS), jnp.sum(n))
        onehot_move = jax.nn.one_hot(info["move"], 5)
        ins = (info["move"] == _INSERT) & info["valid"]
        onehot_sp = jax.nn.one_hot(info["species"], system.n_species) * ins.astype(acc.sum_n.dtype)
        acc = GCMCStats(
            n_steps=acc.n_steps + 1,
            sum_n=acc.sum_n + n,
            sum_n2=acc.sum_n2 + n * n,
            widom_sum=acc.widom_sum + onehot_sp * info["widom"],
            widom_count=acc.widom_count + onehot_sp,
            attempts=acc.attempts + onehot_move,
            accepted=acc.accepted + onehot_move * info["accepted"].astype(onehot_move.dtype),
            sum_energy=acc.sum_energy + st.energy,
            sum_n_cycle=acc.sum_n_cycle + n * inv_cycle,
            sum_cycle_weight=acc.sum_cycle_weight + inv_cycle,
        )
        return (st, acc), None

    step_keys = jr.split(key, n_steps)
    move_keys = None if move_key is None else jr.split(move_key, n_steps)
    (state, stats), _ = jax.lax.scan(body, (state, _zero_stats(system)), (step_keys, move_keys))
    return state, stats


@eqx.filter_jit
def _sample_jit(key, system, state, n_steps):
    return _sample(key, system, state, n_steps)


@eqx.filter_jit
def _sample_batched_jit(keys, system, states, n_steps, move_key):
    return jax.vmap(lambda k, s: _sample(k, system, s, n_steps, move_key))(keys, states)


def gcmc_sample(key, system: GCMCSystem, state: GCMCState, n_steps: int):
    """Run ``n_steps`` moves (:func:`gcmc_step`) in one jitted ``lax.scan``.

    Returns:
        ``(state, stats)``: the final :class:`GCMCState` and the :class:`GCMCStats` sums
        of this block. Check ``state.overflow`` (raise ``capacity`` if set).
    """
    n_steps = check_count(n_steps, "n_steps")
    return _sample_jit(key, system, state, n_steps)


def gcmc_sample_batched(
    keys, system: GCMCSystem, states: GCMCState, n_steps: int, *, move_key=None
):
    """:func:`gcmc_sample` over boxes: ``keys (B,)``, ``states`` stacked on axis 0.

    Under ``vmap`` the configurational-bias trials' ``lax.cond`` becomes a select (every
    box pays for every trial at every step). With ``move_key`` all boxes draw the same
    move *type* at each step from it (each box's chain is still correct: the type is drawn
    with the move probabilities, independently of the state), so the branch stays a
    branch; the boxes then share their move-type sequence (not independent in that
    respect). ``None`` (default): independent boxes.
    """
    n_steps = check_count(n_steps, "n_steps")
    return _sample_batched_jit(keys, system, states, n_steps, move_key)


@eqx.filter_jit
def _sample_frameworks_jit(keys, systems, states, n_steps, move_key):
    return jax.vmap(lambda k, sy, s: _sample(k, sy, s, n_steps, move_key))(keys, systems, states)


def _pad(a, shape):
    a = np.asarray(a)
    return np.pad(a, [(0, t - n) for n, t in zip(a.shape, shape, strict=True)])


def gcmc_stack_systems(systems) -> GCMCSystem:
    r"""Stack grid systems of *different* frameworks into one, padded to common shapes.

    For :func:`gcmc_sample_frameworks` (``vmap`` over frameworks). Every system must be
    built with ``grid_spacing`` (the framework then lives in the grids) and share the
    species, capacity, trials, cutoff and Ewald settings. The grids are zero-padded to the
    largest node counts (each system's ``grid_shape`` keeps its own, so the padding is
    never read) and the kept k-rows and wave-number ranges to the largest (padded weights
    0, so padded wave numbers add nothing; the systems may differ in :math:`k_{\max}` and
    in their k-sets). The stacked system's static ``volume`` is NaN and
    ``unit_cells`` empty: each framework's live in its ``cell`` and ``reps`` rows.
    """
    systems = list(systems)
    if not systems or not all(isinstance(x, GCMCSystem) for x in systems):
        raise TypeError("systems must be a non-empty sequence of GCMCSystem")
    if not all(x.use_grid for x in systems):
        raise ValueError("gcmc_stack_systems needs grid systems (build with grid_spacing)")
    keys = (
        "capacity",
        "pair_block",
        "n_trials",
        "n_species",
        "n_sites",
        "coulomb",
        "shifted",
        "r_cut",
    )
    keys += ("coulomb_constant", "names")
    for k in keys:
        vals = {getattr(x, k) for x in systems}
        if len(vals) > 1:
            raise ValueError(f"systems differ in {k}: {sorted(map(str, vals))}")
    grid_to = tuple(max(x.grid.shape[a] for x in systems) for a in range(4))
    kr_to = tuple(max(x.k_ranges[a].shape[0] for x in systems) for a in range(3))
    kw_to = (max(x.k_weights.shape[0] for x in systems), kr_to[2])
    padded = []
    for x in systems:
        ranges = tuple(
            jnp.asarray(_pad(r, (kr_to[a],)), dtype=r.dtype) for a, r in enumerate(x.k_ranges)
        )
        # the kept rows re-indexed for the padded second axis; padded rows (weight 0)
        # point at row 0
        i1, i2 = np.divmod(np.asarray(x.k_rows), x.k_ranges[1].shape[0])
        rows = _pad(i1 * kr_to[1] + i2, (kw_to[0],))
        padded.append(
            eqx.tree_at(
                lambda y: (
                    y.grid,
                    y.k_weights,
                    y.framework_structure_factor,
                    y.k_ranges,
                    y.k_rows,
                ),
                x,
                (
                    jnp.asarray(_pad(x.grid, grid_to)),
                    jnp.asarray(_pad(x.k_weights, kw_to)),
                    jnp.asarray(_pad(x.framework_structure_factor, kw_to)),
                    ranges,
                    jnp.asarray(rows, dtype=jnp.int32),
                ),
            )
        )
    # static fields differ per framework: one common value, so the tree structures match
    padded = [dataclasses.replace(x, volume=math.nan, unit_cells=()) for x in padded]
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *padded)


def gcmc_sample_frameworks(
    keys, systems: GCMCSystem, states: GCMCState, n_steps: int, *, move_key=None
):
    """:func:`gcmc_sample` over different frameworks at once (``vmap`` over systems).

    ``systems`` from :func:`gcmc_stack_systems`, ``keys (B,)``, ``states`` stacked on
    axis 0 (e.g. ``jax.vmap(gcmc_init)(systems)``); ``move_key`` as in
    :func:`gcmc_sample_batched`.
    """
    n_steps = check_count(n_steps, "n_steps")
    return _sample_frameworks_jit(keys, systems, states, n_steps, move_key)


@eqx.filter_jit
def _total_energy(system: GCMCSystem, state: GCMCState):
    slots = jnp.arange(system.capacity)
    frame = jax.vmap(lambda c, x, s: _framework_energy(system, x, c, s))(
        state.centres, state.sites, state.species
    )
    pairs = jax.vmap(lambda x, s, i: _pair_energy(system, state, x, s, i))(
        state.sites, state.species, slots
    )
    u_frame = jnp.sum(jnp.where(state.occupied, frame, 0.0))
    u_pairs = 0.5 * jnp.sum(jnp.where(state.occupied, pairs, 0.0))
    if system.coulomb:
        s_mol = jax.vmap(lambda x, s: _molecule_structure_factor(system, x, s))(
            state.sites, state.species
        )
        s_tot = system.framework_structure_factor + jnp.sum(
            jnp.where(state.occupied[:, None, None], s_mol, 0.0), 0
        )
        s_f = system.framework_structure_factor
        u_fourier = system.coulomb_constant * jnp.sum(
            system.k_weights * (jnp.abs(s_tot) ** 2 - jnp.abs(s_f) ** 2)
        ) + jnp.sum(jnp.where(state.occupied, system.self_constant[state.species], 0.0))
    else:
        s_tot = state.structure_factor
        u_fourier = jnp.zeros(())
    return {"framework": u_frame, "pairs": u_pairs, "fourier": u_fourier}, s_tot


def gcmc_total_energy(system: GCMCSystem, state: GCMCState) -> dict:
    r"""The energy of ``state`` recomputed from scratch (K), by term.

    ``{"framework", "pairs", "fourier", "total"}``: framework–molecule LJ + real-space
    Coulomb, molecule–molecule LJ + real-space Coulomb, and RASPA3's ``ewaldFourier``
    term (module docstring) from a fresh :math:`S(k)`; ``"structure_factor_error"``
    is the largest deviation of the state's incrementally updated :math:`S(k)` from the
    fresh one. ``state.energy`` should equal ``"total"`` up to round-off.
    """
    terms, s_tot = _total_energy(system, state)
    out = {k: float(v) for k, v in terms.items()}
    out["total"] = sum(out.values())
    # a state of a padded stack (gcmc_stack_systems) carries padding after the system's
    # rows and columns; its own entries come first
    s_state = state.structure_factor[: s_tot.shape[0], : s_tot.shape[1]]
    out["structure_factor_error"] = float(jnp.max(jnp.abs(s_tot - s_state)))
    return out
