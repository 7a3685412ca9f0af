r"""CO₂ in silicalite-1 (MFI) at 353 K by Widom insertion with Ewald electrostatics, against RASPA3.

The model of RASPA3's basic example 10: all-silica MFI, 2×2×2 unit cells, TraPPE-zeo
O/Si (Bai et al. 2013) with charges Si +2.05, O −1.025; CO₂ of García-Sánchez et al.
2009 (C +0.6512, O −0.3256, C–O 1.149 Å); Lorentz–Berthelot, LJ shifted at 12 Å, no
tail correction; Ewald with RASPA's relative precision 1e-6 (α = 0.2651 Å⁻¹, k-cube
11×11×7). Random positions and uniformly random orientations of the rigid molecule.
RASPA3 reports ⟨W⟩ = 30.66 ± 0.44 and K_H = 3.355e-5 molecules per unit cell per Pa;
the check is ``|⟨W⟩ - 30.66| < 2 sqrt(σ² + 0.44²)``. RASPA3's value is sampled during a
GCMC run at 1 bar (about 3.3 molecules per unit cell), this one at infinite dilution.

The MFI structure is the reference input ``../shared/data/materials/MFI_SI.cif`` (or
``$STOCHTHERMO_SHARED_DATA/materials/``), not shipped; without it the run says so and
inserts CO₂ into IRMOF-1 from the CoRE MOF database (UFF framework LJ, no framework
charges), with no RASPA3 comparison.

``python -c "from experiments.materials_co2_widom import main; main()"``
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.random as jr
import numpy as np

from experiments._runner import uncached_stage
from thermo.materials import (
    adsorption_force_field,
    core_mof_framework,
    load_molecule,
    read_structure,
    shared_materials_path,
    widom,
)

__all__ = ["Config", "RASPA3_HENRY", "RASPA3_WEIGHT", "RASPA3_WEIGHT_ERR", "main", "run"]

RASPA3_WEIGHT = 30.66  # RASPA3 manual, basic example 10
RASPA3_WEIGHT_ERR = 0.44
RASPA3_HENRY = 3.355e-5  # molecules / unit cell / Pa
ZEOLITE_CHARGES = {"Si": 2.05, "O": -1.025}  # e, as in RASPA3's example 10


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
    """

    seed: int = 20261202
    n_insertions: int = 655_360
    n_blocks: int = 20
    chunk_size: int = 256
    temperature: float = 353.0
    ewald_precision: float = 1e-6

    @classmethod
    def quick(cls) -> Config:
        """A few-second setting."""
        return cls(n_insertions=2048, n_blocks=4, chunk_size=256)


def _framework():
    path = shared_materials_path("MFI_SI.cif", required=False)
    if path is not None:
        return read_structure(path), "trappe-zeo", ZEOLITE_CHARGES, "MFI"
    print(
        "../shared/data/materials/MFI_SI.cif is absent (not shipped with the project): "
        "inserting CO2 into CoRE MOF EDUSIF_clean (IRMOF-1) with UFF and no framework "
        "charges instead; no RASPA3 comparison"
    )
    return core_mof_framework("EDUSIF_clean"), "uff", None, "CoRE-MOF 2019-ASR/EDUSIF_clean"


def main(config: Config | None = None, stage=uncached_stage) -> dict:
    """Run the insertions (one ``stage``) and compare with RASPA3; JSON-able metrics."""
    config = config or Config()
    return stage("widom", lambda: _widom(config))


def _widom(config: Config) -> dict:
    atoms, ff_name, charges, label = _framework()
    ff = adsorption_force_field(load_molecule("CO2", "garcia-sanchez-2009"), ff_name)
    t0 = time.perf_counter()
    res = widom(
        jr.key(config.seed),
        atoms,
        adsorbate="CO2",
        force_field=ff,
        framework_charges=charges,
        temperature=config.temperature,
        n_insertions=config.n_insertions,
        n_blocks=config.n_blocks,
        chunk_size=config.chunk_size,
        ewald_precision=config.ewald_precision,
    )
    wall = time.perf_counter() - t0
    out = {
        "framework": label,
        "weight": {"value": res.weight, "std_err": res.std_err},
        "henry_molecules_per_uc_per_pa": {"value": res.henry, "std_err": res.henry_std_err},
        "henry_mol_per_kg_per_pa": res.henry_mol_per_kg_pa,
        "enthalpy_of_adsorption_K": res.enthalpy,
        "isosteric_heat_kj_per_mol": res.isosteric_heat_kj_mol,
        "n_insertions": res.n_insertions,
        "unit_cells": list(res.unit_cells),
        "wall_s": wall,
        "devices": len(jax.devices()),
    }
    msg = (
        f"{label}: <W> = {res.weight:.3f} +- {res.std_err:.3f}, K_H = {res.henry:.4e} "
        f"molec/uc/Pa, q_st = {res.isosteric_heat_kj_mol:.2f} kJ/mol; "
        f"{res.n_insertions} insertions in {wall:.1f} s"
    )
    if label == "MFI":
        combined = float(np.hypot(res.std_err, RASPA3_WEIGHT_ERR))
        z = (res.weight - RASPA3_WEIGHT) / combined
        out.update(
            raspa3_weight={"value": RASPA3_WEIGHT, "std_err": RASPA3_WEIGHT_ERR},
            raspa3_henry=RASPA3_HENRY,
            z_score=float(z),
            within_2_combined_sigma=bool(abs(z) < 2.0),
        )
        msg += f"; RASPA3 30.66 +- 0.44, z = {z:+.2f}"
    print(msg)
    return out


def run(config: Config, ctx=None) -> dict:
    """Runner entry point; the estimate is a ``ctx.stage``."""
    return main(config, uncached_stage if ctx is None else ctx.stage)


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(main(Config.quick() if "--quick" in sys.argv else None), indent=1))
