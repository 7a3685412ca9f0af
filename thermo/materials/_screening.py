r"""Multi-fidelity screening of binary Lennard-Jones crystals (the "digital twin" of issue 9).

A generator proposes candidate crystals: ASE prototypes (rocksalt, CsCl, zincblende,
fluorite :math:`AB_2`, :math:`L1_2` :math:`AB_3`, :math:`L1_0` :math:`AB`, FCC) decorated
with two LJ species, A (:math:`\sigma_{AA}=\varepsilon_{AA}=1`) and B
(:math:`\sigma_{BB}=\sigma_B`, :math:`\varepsilon_{BB}=1`), with the Lorentz rule
:math:`\sigma_{AB}=(1+\sigma_B)/2` and a free :math:`\varepsilon_{AB}` (so the
non-additivity of the attraction is the design knob). Each pair
:math:`\alpha\beta` is cut and shifted at :math:`r_c = c\,\sigma_{\alpha\beta}`
(:func:`thermo.materials.lj.lj_pair`), so a pure-B crystal is a pure-A crystal scaled
by :math:`\sigma_B`: :math:`U_B(x) = U_A(x/\sigma_B)`.

Three tiers estimate one objective, the formation (free) energy per atom against the
pure FCC solids,

.. math:: \Delta f = \frac{F}{N} - x_A f_A - x_B f_B,

with increasing fidelity and cost:

* **cheap**: :math:`F \to U_0`, the energy after relaxing positions and cell at zero
  pressure (L-BFGS, :func:`thermo.systems.relax`, on positions and a symmetric strain);
* **middle**: :math:`F \to F_h`, the classical harmonic free energy
  (:func:`thermo.materials._harmonic.harmonic_free_energy`); unstable structures
  (negative modes) fail here;
* **expensive**: the full free energy :math:`F = F_h + \Delta F_{\rm anh}` by TI from
  the harmonic reference (:func:`thermo.materials._harmonic.anharmonic_free_energy`).

The pure-B references follow exactly from the pure-A ones by scaling:
:math:`u_B = u_A` and :math:`f_B = f_A - k_BT\,\tfrac{3N-3}{N}\log\sigma_B` for the
free-energy tiers (the configurational integral over the :math:`3N-3` non-rigid modes
scales as :math:`\sigma_B^{3N-3}`).

Displacements are minimum-image (jax-md ``space.periodic_general`` with the cell passed
as ``box=``), so every supercell is replicated until :math:`r_c` is below half its
smallest perpendicular width (checked again after relaxation).
"""

from __future__ import annotations

import dataclasses
import time
from typing import NamedTuple

import ase
import ase.build
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax_md import space
from jaxtyping import Array, Float, Int

from ..systems import relax
from ._harmonic import anharmonic_free_energy, harmonic_free_energy
from .cells import perpendicular_widths, replicas_for_cutoff, standard_promotion
from .lj import lj_pair

__all__ = [
    "PROTOTYPES",
    "Candidate",
    "RelaxedCrystal",
    "TierResult",
    "binary_lj_energy",
    "binary_lj_params",
    "evaluate_candidate",
    "make_candidate",
    "relax_crystal",
    "spearman",
]

#: Prototype name -> formula fraction of B.
PROTOTYPES: dict[str, float] = {
    "fcc": 0.0,
    "rocksalt": 0.5,
    "cscl": 0.5,
    "zincblende": 0.5,
    "l1_0": 0.5,
    "fluorite": 2.0 / 3.0,
    "l1_2": 0.75,
}

_R_MIN = 2.0 ** (1.0 / 6.0)  # LJ pair minimum, in sigma


def binary_lj_params(
    sigma_b: float, epsilon_ab: float, *, r_cut_factor: float = 2.0, epsilon_bb: float = 1.0
) -> dict:
    r"""Pair-parameter matrices of the binary LJ model (module docstring).

    Returns:
        ``{"sigma": (2, 2), "epsilon": (2, 2), "r_cut": (2, 2)}`` arrays; species 0 = A,
        1 = B; :math:`\sigma_{AB} = (1+\sigma_B)/2` (Lorentz), :math:`r_c = c\,\sigma`.
    """
    if not (sigma_b > 0 and epsilon_ab > 0 and epsilon_bb > 0 and r_cut_factor > _R_MIN):
        raise ValueError("sigma_b, epsilon_ab, epsilon_bb must be > 0 and r_cut_factor > 2^(1/6)")
    s_ab = 0.5 * (1.0 + sigma_b)
    sigma = np.array([[1.0, s_ab], [s_ab, sigma_b]])
    epsilon = np.array([[1.0, epsilon_ab], [epsilon_ab, epsilon_bb]])
    return {
        "sigma": jnp.asarray(sigma),
        "epsilon": jnp.asarray(epsilon),
        "r_cut": jnp.asarray(r_cut_factor * sigma),
    }


def binary_lj_energy(
    positions: Float[Array, "n 3"],
    params: dict,
) -> Float[Array, ""]:
    r"""Cut-and-shifted binary LJ energy :math:`\sum_{i<j} u_{s_i s_j}(|r_{ij}|)` in a periodic cell.

    Args:
        positions: ``(n, 3)`` Cartesian positions.
        params: :func:`binary_lj_params` plus ``"box"`` (``(3, 3)`` column-vector cell)
            and ``"species"`` (``(n,)`` ints in {0, 1}). All entries are traced, so one
            compile serves every candidate of the same size.

    Returns:
        ``()`` the total energy (no tail term: the shifted potential is used as is).
    """
    box = params["box"]
    species = params["species"]
    disp = standard_promotion(space.periodic_general(box, fractional_coordinates=False)[0])
    pair_disp = jax.vmap(jax.vmap(lambda a, b: disp(a, b, box=box), (None, 0)), (0, None))
    dr = pair_disp(positions, positions)
    n = positions.shape[0]
    eye = jnp.eye(n, dtype=bool)
    r2 = jnp.where(eye, 1.0, jnp.sum(dr * dr, axis=-1))  # safe sqrt gradient on the diagonal
    r = jnp.sqrt(r2)
    si, sj = species[:, None], species[None, :]
    u = lj_pair(
        r,
        params["sigma"][si, sj],
        params["epsilon"][si, sj],
        params["r_cut"][si, sj],
        shift=True,
    )
    return 0.5 * jnp.sum(jnp.where(eye, 0.0, u))


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A proposed crystal.

    Attributes:
        name: ``"prototype/sigma_b/epsilon_ab"``.
        prototype: a key of :data:`PROTOTYPES`.
        sigma_b, epsilon_ab: the B-species size and the A–B well depth.
        x_b: fraction of B atoms.
        positions: ``(n, 3)`` starting positions (ideal prototype supercell).
        box: ``(3, 3)`` column-vector cell.
        species: ``(n,)`` ints (0 = A, 1 = B).
        r_cut_factor: :math:`c` in :math:`r_c = c\\,\\sigma`.
    """

    name: str
    prototype: str
    sigma_b: float
    epsilon_ab: float
    x_b: float
    positions: np.ndarray
    box: np.ndarray
    species: np.ndarray
    r_cut_factor: float

    def params(self, box=None) -> dict:
        """Energy parameters (:func:`binary_lj_params` + box + species)."""
        p = binary_lj_params(self.sigma_b, self.epsilon_ab, r_cut_factor=self.r_cut_factor)
        p["box"] = jnp.asarray(self.box if box is None else box)
        p["species"] = jnp.asarray(self.species, dtype=jnp.int32)
        return p

    @property
    def r_cut_max(self) -> float:
        """The largest pair cutoff present."""
        sig = [1.0] if self.x_b == 0 else [1.0, 0.5 * (1 + self.sigma_b), self.sigma_b]
        return self.r_cut_factor * max(sig)


def _prototype_cell(prototype: str, sigma_b: float) -> ase.Atoms:
    # Lattice constant: the largest of the nearest-neighbour constraints, each contact at
    # the pair minimum 2^(1/6) sigma, so that no pair starts deep in its repulsive wall.
    d_aa, d_bb, d_ab = _R_MIN, _R_MIN * sigma_b, _R_MIN * 0.5 * (1.0 + sigma_b)
    s2, s3 = np.sqrt(2.0), np.sqrt(3.0)
    if prototype == "fcc":
        return ase.build.bulk("Ar", "fcc", a=s2 * d_aa, cubic=True)
    if prototype == "rocksalt":  # Na = A, Cl = B; A-B a/2, A-A and B-B a/sqrt2
        a = max(2 * d_ab, s2 * d_aa, s2 * d_bb)
        return ase.build.bulk("NaCl", "rocksalt", a=a, cubic=True)
    if prototype == "cscl":  # Cs = A, Cl = B; A-B a sqrt3/2, A-A and B-B a
        a = max(2 * d_ab / s3, d_aa, d_bb)
        return ase.build.bulk("CsCl", "cesiumchloride", a=a)
    if prototype == "zincblende":  # Zn = A, S = B; A-B a sqrt3/4
        a = max(4 * d_ab / s3, s2 * d_aa, s2 * d_bb)
        return ase.build.bulk("ZnS", "zincblende", a=a, cubic=True)
    if prototype == "fluorite":  # Ca = A, F = B; A-B a sqrt3/4, B-B a/2, A-A a/sqrt2
        a = max(4 * d_ab / s3, 2 * d_bb, s2 * d_aa)
        return ase.build.bulk("CaF2", "fluorite", a=a, cubic=True)
    if prototype in ("l1_2", "l1_0"):  # FCC sites; Au = A, Cu = B
        a = s2 * max(d_ab, d_aa if prototype == "l1_0" else 0.0, d_bb)
        atoms = ase.build.bulk("Cu", "fcc", a=a, cubic=True)
        symbols = ["Au", "Cu", "Cu", "Cu"] if prototype == "l1_2" else ["Au", "Cu", "Cu", "Au"]
        atoms.set_chemical_symbols(symbols)
        return atoms
    raise ValueError(f"unknown prototype {prototype!r}; choose from {sorted(PROTOTYPES)}")


_A_SYMBOLS = {"Ar", "Na", "Cs", "Zn", "Ca", "Au"}


def make_candidate(
    prototype: str,
    sigma_b: float,
    epsilon_ab: float,
    *,
    r_cut_factor: float = 1.5,
    margin: float = 0.05,
) -> Candidate:
    r"""Build a candidate supercell with ``ase.build.bulk`` and replicate it for the cutoff.

    The cell is repeated (:func:`thermo.materials.cells.replicas_for_cutoff`) until
    :math:`r_c^{\max}/(1-\text{margin}) \le w_{\min}/2`, leaving room for the cell to
    shrink on relaxation.
    """
    if prototype not in PROTOTYPES:
        raise ValueError(f"unknown prototype {prototype!r}; choose from {sorted(PROTOTYPES)}")
    if not 0 <= margin < 1:
        raise ValueError(f"margin must be in [0, 1), got {margin}")
    unit = _prototype_cell(prototype, sigma_b)
    species = np.array([0 if s in _A_SYMBOLS else 1 for s in unit.get_chemical_symbols()])
    x_b = float(species.mean())
    sig_max = 1.0 if x_b == 0 else max(1.0, sigma_b)
    reps = replicas_for_cutoff(unit.cell.array.T, r_cut_factor * sig_max / (1.0 - margin))
    atoms = unit.repeat(reps)
    species = np.tile(species, int(np.prod(reps)))
    return Candidate(
        name=f"{prototype}/{sigma_b:g}/{epsilon_ab:g}",
        prototype=prototype,
        sigma_b=float(sigma_b),
        epsilon_ab=float(epsilon_ab),
        x_b=x_b,
        positions=np.asarray(atoms.get_positions(), dtype=np.float64),
        box=np.asarray(atoms.cell.array, dtype=np.float64).T.copy(),
        species=species.astype(np.int32),
        r_cut_factor=float(r_cut_factor),
    )


class RelaxedCrystal(NamedTuple):
    """Output of :func:`relax_crystal`.

    Attributes:
        positions: ``(n, 3)`` relaxed positions.
        box: ``(3, 3)`` relaxed cell.
        energy: ``()`` :math:`U_0`.
        grad_norm: ``()`` final gradient norm (positions and strain).
        n_steps: ``()`` L-BFGS iterations (each at least one energy-and-gradient call).
    """

    positions: Float[Array, "n 3"]
    box: Float[Array, "3 3"]
    energy: Float[Array, ""]
    grad_norm: Float[Array, ""]
    n_steps: Int[Array, ""]


def _strain(e6):
    e = jnp.array([[e6[0], e6[3], e6[4]], [e6[3], e6[1], e6[5]], [e6[4], e6[5], e6[2]]])
    return jnp.eye(3, dtype=e6.dtype) + e


@eqx.filter_jit
def relax_crystal(
    positions: Float[Array, "n 3"],
    params: dict,
    *,
    max_steps: int = 2000,
    gtol: float = 1e-8,
) -> RelaxedCrystal:
    r"""Relax positions and cell of a periodic crystal at zero pressure (L-BFGS).

    Variables: positions :math:`R` and a symmetric strain :math:`\varepsilon`; the
    energy is :func:`binary_lj_energy` of :math:`R(1+\varepsilon)^\top` in the cell
    :math:`(1+\varepsilon)T_0`, minimised by :func:`thermo.systems.relax`
    (optax L-BFGS with zoom line search). Symmetric strain removes the rigid rotations.

    Args:
        positions: ``(n, 3)`` start.
        params: energy parameters including ``"box"`` = :math:`T_0`.
        max_steps, gtol: L-BFGS stopping rule.

    Returns:
        :class:`RelaxedCrystal`.
    """
    r0 = jnp.asarray(positions)
    n = r0.shape[0]
    box0 = params["box"]

    def unpack(x):
        f = _strain(x[3 * n :])
        return x[: 3 * n].reshape(n, 3) @ f.T, f @ box0

    def energy(x):
        r, box = unpack(x)
        return binary_lj_energy(r, params | {"box": box})

    x0 = jnp.concatenate([r0.reshape(-1), jnp.zeros(6, r0.dtype)])
    res = relax(energy, x0, max_steps=max_steps, gtol=gtol)
    r, box = unpack(res.position)
    return RelaxedCrystal(r, box, res.energy, res.grad_norm, res.n_steps)


@eqx.filter_jit
def _harmonic(positions, params, temperature):
    return harmonic_free_energy(
        lambda r: binary_lj_energy(r, params), positions, temperature=temperature
    )


class TierResult(NamedTuple):
    """All three tiers for one candidate (per atom; ``nan`` where not reached).

    Attributes:
        energy: relaxed lattice energy :math:`U_0/N`.
        harmonic: :math:`F_h/N` (``inf`` if unstable).
        full: :math:`F/N` by TI (``nan`` if unstable or not run).
        full_std_err: its standard error.
        stable: no negative Hessian modes and the cutoff fits the relaxed cell.
        n_atoms: :math:`N`.
        cost: ``{"relax": {"evals", "wall_s"}, "harmonic": ..., "full": ...}``.
    """

    energy: float
    harmonic: float
    full: float
    full_std_err: float
    stable: bool
    n_atoms: int
    cost: dict


def evaluate_candidate(
    key,
    candidate: Candidate,
    *,
    temperature: float,
    rattle: float = 0.02,
    run_full: bool = True,
    ti_settings: dict | None = None,
    max_regrow: int = 1,
) -> TierResult:
    r"""Run the three tiers on one candidate (host entry point; timings per tier).

    The ideal prototype is first rattled by :math:`\mathcal N(0, \text{rattle}^2)` so that
    a structure that is a saddle by symmetry relaxes away from it.

    Args:
        key: PRNG key (rattle and TI sampling).
        candidate: from :func:`make_candidate`.
        temperature: :math:`k_B T` (LJ units of :math:`\varepsilon_{AA}`).
        rattle: displacement scale before relaxation, in :math:`\sigma_{AA}`.
        run_full: run the expensive tier (if stable).
        max_regrow: times a relaxed cell narrower than :math:`2 r_c` is replicated
            along its narrow axes and relaxed again.
        ti_settings: keyword arguments for
            :func:`~thermo.materials._harmonic.anharmonic_free_energy`.

    Returns:
        :class:`TierResult` (per-atom values).
    """
    k_rattle, k_ti = jr.split(key)
    n = candidate.positions.shape[0]
    species = np.asarray(candidate.species)
    params = candidate.params()
    r0 = jnp.asarray(candidate.positions) + rattle * jr.normal(k_rattle, (n, 3))
    t0 = time.perf_counter()
    rel = jax.block_until_ready(relax_crystal(r0, params))
    n_relax = int(rel.n_steps)
    box = np.asarray(rel.box)

    def ran_away(rel, box):
        # the relaxation ran away (a collapsing, mechanically unstable structure)
        ok = np.isfinite(float(rel.energy)) and np.all(np.isfinite(box))
        return not (ok and np.linalg.det(box) > 0)

    def failed():
        cost = {"relax": {"evals": n_relax, "wall_s": time.perf_counter() - t0}}
        cost |= {k: {"evals": 0, "wall_s": 0.0} for k in ("harmonic", "full")}
        inf, nan = float("inf"), float("nan")
        return TierResult(inf, inf, nan, nan, False, n, cost)

    if ran_away(rel, box):
        return failed()
    for _ in range(max_regrow):
        # A cell that shrank on relaxation below 2 r_c is replicated and relaxed again.
        w = perpendicular_widths(box)
        if 0.5 * w.min() >= candidate.r_cut_max:
            break
        reps = [max(1, int(np.ceil(2.0 * candidate.r_cut_max / wk * 1.02))) for wk in w]
        shifts = np.stack(np.meshgrid(*[np.arange(k) for k in reps], indexing="ij"), -1)
        shifts = shifts.reshape(-1, 3) @ box.T
        pos = (np.asarray(rel.positions)[None] + shifts[:, None]).reshape(-1, 3)
        species = np.tile(species, len(shifts))
        n = pos.shape[0]
        params = candidate.params(box=box @ np.diag(reps))
        params["species"] = jnp.asarray(species, dtype=jnp.int32)
        rel = jax.block_until_ready(relax_crystal(jnp.asarray(pos), params))
        n_relax += int(rel.n_steps)
        box = np.asarray(rel.box)
        if ran_away(rel, box):
            return failed()
    t_relax = time.perf_counter() - t0
    fits = bool(0.5 * perpendicular_widths(box).min() >= candidate.r_cut_max)
    params = params | {"box": jnp.asarray(box)}
    t0 = time.perf_counter()
    harm = jax.block_until_ready(_harmonic(rel.positions, params, jnp.asarray(temperature)))
    t_harm = time.perf_counter() - t0
    stable = fits and bool(np.isfinite(float(harm.free_energy))) and int(harm.n_negative) == 0
    cost = {
        "relax": {"evals": n_relax, "wall_s": t_relax},
        "harmonic": {"evals": 3 * n, "wall_s": t_harm},
        "full": {"evals": 0, "wall_s": 0.0},
    }
    full, full_err = float("nan"), float("nan")
    if run_full and stable:
        t0 = time.perf_counter()
        res = anharmonic_free_energy(
            k_ti,
            binary_lj_energy,
            rel.positions,
            temperature=temperature,
            params=params,
            harmonic=harm,
            **(ti_settings or {}),
        )
        cost["full"] = {"evals": res.n_energy_evals, "wall_s": time.perf_counter() - t0}
        full, full_err = res.free_energy / n, res.std_err / n
    return TierResult(
        energy=float(rel.energy) / n,
        harmonic=float(harm.free_energy) / n if stable else float("inf"),
        full=full,
        full_std_err=full_err,
        stable=stable,
        n_atoms=n,
        cost=cost,
    )


def spearman(a, b) -> float:
    r"""Spearman rank correlation :math:`\rho_s` (Pearson correlation of the ranks; ``scipy.stats``).

    Pairs where either value is not finite are dropped; ``nan`` if fewer than 3 remain.
    """
    from scipy.stats import spearmanr

    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return float("nan")
    return float(spearmanr(a[ok], b[ok]).statistic)
