r"""CO₂ in silicalite-1 (MFI) at 353 K by Widom insertion with Ewald electrostatics, against RASPA3.

The model of RASPA3's basic example 10: all-silica MFI, 2×2×2 unit cells, TraPPE-zeo
O/Si (Bai et al. 2013) with charges Si +2.05, O −1.025; CO₂ of García-Sánchez et al.
2009 (C +0.6512, O −0.3256, C–O 1.149 Å); Lorentz–Berthelot, LJ shifted at 12 Å, no
tail correction; Ewald with RASPA's relative precision 1e-6 (α = 0.2651 Å⁻¹, k-cube
11×11×7). Random positions and uniformly random orientations of the rigid molecule.
RASPA3's manual reports ⟨W⟩ = 30.66 ± 0.44 and K_H = 3.355e-5 molecules per unit cell
per Pa; the check is ``|⟨W⟩ - 30.66| < 2 sqrt(σ² + 0.44²)``. That value is sampled
during RASPA3's GCMC run at 1 bar (about 3.3 molecules per unit cell, so the inserted
molecule also meets the adsorbed ones); this run is at infinite dilution. With
``raspa_cycles > 0`` RASPA3 itself (PyPI ``raspalib``, not a project dependency: the
current interpreter if it imports it, else ``$RASPA_PYTHON``) runs the same
infinite-dilution Widom insertion on the same structure in the same run
(:data:`RASPA_SCRIPT`, 20 insertions per cycle), the like-for-like peer.

The MFI structure is the reference input ``../shared/data/materials/MFI_SI.cif`` (or
``$STOCHTHERMO_SHARED_DATA/materials/``), not shipped; without it the run says so and
inserts CO₂ into IRMOF-1 from the CoRE MOF database (UFF framework LJ, no framework
charges), with no RASPA3 comparison.

``python -c "from experiments.materials_co2_widom import main; main()"``
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

import numpy as np

from experiments._config import Count, NonNegativeInt, Positive, Range, Seed
from experiments._materials import raspa3_comparison, run_raspa_script, timed_widom
from experiments._runner import uncached_stage
from thermo.materials import (
    adsorption_force_field,
    core_mof_framework,
    load_molecule,
    read_structure,
    shared_materials_path,
)

__all__ = ["Config", "RASPA3_HENRY", "RASPA3_WEIGHT", "RASPA3_WEIGHT_ERR", "main", "run"]

RASPA3_WEIGHT = 30.66  # RASPA3 manual, basic example 10
RASPA3_WEIGHT_ERR = 0.44
RASPA3_HENRY = 3.355e-5  # molecules / unit cell / Pa
ZEOLITE_CHARGES = {"Si": 2.05, "O": -1.025}  # e, as in RASPA3's example 10

#: Run by an interpreter with raspalib: argv = CIF path, cycles, seed; prints one JSON line.
RASPA_SCRIPT = r"""
import json, math, sys, time, warnings
warnings.filterwarnings("ignore")
import ase.io
import raspalib as r
cif, cycles, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
atoms = ase.io.read(cif)
ff = r.ForceField(
    pseudo_atoms=[r.PseudoAtom("O", True, 15.9994, -1.025, 0.0, 8),
                  r.PseudoAtom("Si", True, 28.0855, 2.05, 0.0, 14),
                  r.PseudoAtom("C_co2", False, 12.0, 0.6512, 0.0, 6),
                  r.PseudoAtom("O_co2", False, 15.9994, -0.3256, 0.0, 8)],
    parameters=[r.VDWParameters(53.0, 3.30), r.VDWParameters(22.0, 2.30),
                r.VDWParameters(29.933, 2.745), r.VDWParameters(85.671, 3.017)],
    mixing_rule=r.ForceField.MixingRule.LORENTZ_BERTHELOT, cutoff_framework_vdw=12.0,
    cutoff_molecule_vdw=12.0, cutoff_coulomb=12.0, shifted=True, tail_corrections=False,
    use_charge=True)
types, charges = {"O": 0, "Si": 1}, {"O": -1.025, "Si": 2.05}
fw_atoms = [r.Atom(tuple(f), charges[s], 1.0, 0, types[s], 0, 0, True)
            for f, s in zip(atoms.get_scaled_positions(), atoms.get_chemical_symbols())]
fw = r.Framework(ff, "MFI_SI", r.SimulationBox(*atoms.cell.cellpar()[:3]), 1, fw_atoms,
                 [2, 2, 2])
co2 = [r.Atom((0.0, 0.0, 1.149), -0.3256, 1.0, 0, 3, 0, 0, False),
       r.Atom((0.0, 0.0, 0.0), 0.6512, 1.0, 0, 2, 0, 0, False),
       r.Atom((0.0, 0.0, -1.149), -0.3256, 1.0, 0, 3, 0, 0, False)]
comp = r.Component(ff, "CO2", 304.1282, 7377300.0, 0.22394, co2,
                   particle_probabilities=r.MCMoveProbabilities(widom_probability=1.0))
T = 353.0
system = r.System(ff, None, False, T, None, 0.3, fw, [comp], [], [0], 5)
mc = r.MonteCarlo(number_of_cycles=cycles, number_of_initialization_cycles=0,
                  print_every=10**9, systems=[system], random_seed=seed)
t0 = time.perf_counter(); mc.run(); wall = time.perf_counter() - t0
mu, err = mc.systems[0].components[0].average_rosenbluth_weights.chemical_potential_result(T)
stats = str(mc.systems[0].components[0].mc_moves_statistics)
n = [int(float(l.split()[-1])) for l in stats.splitlines() if "Widom" in l and "total:" in l][0]
w = math.exp(-mu.excess / T)
print(json.dumps({"wall_s": wall, "n_insertions": n, "weight": w,
                  "weight_std_err": w * err.excess / T}))
"""


def raspa_widom(cif: str, cycles: int, seed: int) -> dict:
    """RASPA3's infinite-dilution CO2 Widom run (:data:`RASPA_SCRIPT`); ``{"error"}`` if absent."""
    return run_raspa_script(RASPA_SCRIPT, cif, cycles, seed)


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings.

    Attributes:
        seed: PRNG seed.
        n_insertions: total insertions.
        n_blocks: blocks for the standard error.
        chunk_size: insertions evaluated together.
        temperature: K.
        ewald_precision: relative accuracy of the Ewald sum.
        raspa_cycles: RASPA3 peer cycles (20 insertions each; 0 = no peer run).
    """

    seed: Seed = 20261202
    n_insertions: Count = 655_360
    n_blocks: Count = 20
    chunk_size: Count = 256
    temperature: Positive = 353.0
    ewald_precision: Annotated[float, Range(0.0, 1.0, low_open=True, high_open=True)] = 1e-6
    raspa_cycles: NonNegativeInt = 0

    @classmethod
    def quick(cls) -> Config:
        """A few-second setting."""
        return cls(n_insertions=2048, n_blocks=4, chunk_size=256)


def _framework():
    path = shared_materials_path("MFI_SI.cif", required=False)
    if path is not None:
        return read_structure(path), "trappe-zeo", ZEOLITE_CHARGES, "MFI", path
    print(
        "../shared/data/materials/MFI_SI.cif is absent (not shipped with the project): "
        "inserting CO2 into CoRE MOF EDUSIF_clean (IRMOF-1) with UFF and no framework "
        "charges instead; no RASPA3 comparison"
    )
    return core_mof_framework("EDUSIF_clean"), "uff", None, "CoRE-MOF 2019-ASR/EDUSIF_clean", None


def main(config: Config | None = None, stage=uncached_stage) -> dict:
    """Run the insertions (one ``stage``) and compare with RASPA3; JSON-able metrics."""
    config = config or Config()
    return stage("widom", lambda: _widom(config))


def _widom(config: Config) -> dict:
    atoms, ff_name, charges, label, cif = _framework()
    ff = adsorption_force_field(load_molecule("CO2", "garcia-sanchez-2009"), ff_name)
    res, out, msg = timed_widom(
        config,
        atoms,
        label,
        adsorbate="CO2",
        force_field=ff,
        framework_charges=charges,
        ewald_precision=config.ewald_precision,
    )
    if label == "MFI":
        z, comparison = raspa3_comparison(res, RASPA3_WEIGHT, RASPA3_WEIGHT_ERR, RASPA3_HENRY)
        out.update(comparison, within_2_combined_sigma=bool(abs(z) < 2.0))
        msg += f"; RASPA3 manual (1 bar) 30.66 +- 0.44, z = {z:+.2f}"
        if config.raspa_cycles > 0:
            peer = raspa_widom(cif, config.raspa_cycles, config.seed % 2**31)
            out["raspa3_same_run"] = peer
            if "weight" in peer:
                zp = (res.weight - peer["weight"]) / np.hypot(res.std_err, peer["weight_std_err"])
                out["z_score_same_run"] = float(zp)
                msg += (
                    f"; RASPA3 same run, infinite dilution: {peer['weight']:.3f} +- "
                    f"{peer['weight_std_err']:.3f} ({peer['n_insertions']} insertions, "
                    f"{peer['wall_s']:.0f} s), z = {zp:+.2f}"
                )
    print(msg)
    return out


def run(config: Config, ctx=None) -> dict:
    """Runner entry point; the estimate is a ``ctx.stage``."""
    return main(config, uncached_stage if ctx is None else ctx.stage)
