r"""Methane in silicalite-1 (MFI) at 300 K by Widom insertion, against RASPA3.

Reproduces RASPA3's example ``basic/7_mc_henry_coefficient_of_methane_in_mfi``:
TraPPE-zeo O/Si and TraPPE CH4, Lorentz–Berthelot mixing, truncated and shifted at
12 Å, no tail correction, 2×2×2 unit cells, 300 K. RASPA3 reports the Widom
(Rosenbluth) weight :math:`\langle W\rangle = 27.39 \pm 0.06` and
:math:`K_H = 3.526\times10^{-5}` molecules per unit cell per Pa. The check is
:math:`|\langle W\rangle - 27.39| < 3\sqrt{\sigma^2 + 0.06^2}`.

MFI is the reference input ``../shared/data/materials/MFI_SI.cif`` (or
``$STOCHTHERMO_SHARED_DATA/materials/``), which the project does not ship. Without it
the run says so and inserts the same methane into IRMOF-1 (CoRE MOF 2019
``EDUSIF_clean``, from the ``core-mof`` package) with UFF framework parameters, and
reports no RASPA3 comparison.

``python -c "from experiments.materials_mfi_widom import main; print(main())"``
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.random as jr
import numpy as np

from experiments._config import Count, Positive, Seed
from experiments._runner import uncached_stage
from thermo.materials import (
    adsorption_force_field,
    core_mof_framework,
    load_molecule,
    read_structure,
    shared_materials_path,
    widom,
)

__all__ = ["Config", "RASPA3_WEIGHT", "RASPA3_WEIGHT_ERR", "main", "run"]

RASPA3_WEIGHT = 27.39  # RASPA3 manual / example 7
RASPA3_WEIGHT_ERR = 0.06
RASPA3_HENRY = 3.526e-5  # molecules / unit cell / Pa


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings.

    Attributes:
        seed: PRNG seed.
        n_insertions: total Widom insertions (1e6 gives sigma ~ 0.15).
        n_blocks: blocks for the standard error.
        chunk_size: insertions evaluated together.
        temperature: K.
        energy_grid: optional fractional grid of the supercell (approximate).
    """

    seed: Seed = 20261123
    n_insertions: Count = 1_024_000
    n_blocks: Count = 20
    chunk_size: Count = 2048
    temperature: Positive = 300.0
    energy_grid: tuple[Count, Count, Count] | None = None

    @classmethod
    def quick(cls) -> Config:
        """A few-second setting."""
        return cls(n_insertions=20_480, n_blocks=10, chunk_size=512)


def main(config: Config | None = None, stage=uncached_stage) -> dict:
    """Run the Widom insertions and compare with RASPA3; returns JSON-able metrics.

    The insertions are one call of :func:`thermo.materials.widom` (its block averages
    and the enthalpy need all of them), so the whole estimate is one ``stage(name, fn)``
    (``RunContext.stage`` under the runner): a resumed run reuses it once finished.
    """
    config = config or Config()
    return stage("widom", lambda: _widom(config))


def _framework():
    """MFI (shared reference input) with TraPPE-zeo, else IRMOF-1 from CoRE MOF with UFF."""
    path = shared_materials_path("MFI_SI.cif", required=False)
    if path is not None:
        return read_structure(path), None, "MFI"
    print(
        "../shared/data/materials/MFI_SI.cif is absent (not shipped with the project): "
        "inserting methane into CoRE MOF EDUSIF_clean (IRMOF-1) with UFF instead; "
        "no RASPA3 comparison"
    )
    ff = adsorption_force_field(load_molecule("CH4", "dubbeldam-2004"), "uff")
    return core_mof_framework("EDUSIF_clean"), ff, "CoRE-MOF 2019-ASR/EDUSIF_clean"


def _widom(config: Config) -> dict:
    atoms, force_field, label = _framework()
    t0 = time.perf_counter()
    res = widom(
        jr.key(config.seed),
        atoms,
        adsorbate="CH4",
        force_field=force_field,
        temperature=config.temperature,
        n_insertions=config.n_insertions,
        n_blocks=config.n_blocks,
        chunk_size=config.chunk_size,
        energy_grid=config.energy_grid,
    )
    wall = time.perf_counter() - t0
    mfi = label == "MFI"
    combined = float(np.hypot(res.std_err, RASPA3_WEIGHT_ERR))
    z = (res.weight - RASPA3_WEIGHT) / combined if mfi else float("nan")
    out = {
        "framework": label,
        "weight": {"value": res.weight, "std_err": res.std_err},
        "raspa3_weight": {"value": RASPA3_WEIGHT, "std_err": RASPA3_WEIGHT_ERR} if mfi else None,
        "z_score": float(z) if mfi else None,
        "within_3_sigma": bool(abs(z) < 3.0) if mfi else None,
        "henry_molecules_per_uc_per_pa": {"value": res.henry, "std_err": res.henry_std_err},
        "raspa3_henry": RASPA3_HENRY if mfi else None,
        "henry_mol_per_kg_per_pa": res.henry_mol_per_kg_pa,
        "enthalpy_of_adsorption_K": res.enthalpy,
        "isosteric_heat_kj_per_mol": res.isosteric_heat_kj_mol,
        "n_insertions": res.n_insertions,
        "unit_cells": list(res.unit_cells),
        "wall_s": wall,
        "devices": len(jax.devices()),
    }
    print(
        f"{label}: <W> = {res.weight:.3f} +- {res.std_err:.3f}"
        + (f" (RASPA3 27.39 +- 0.06), z = {z:+.2f}; " if mfi else "; ")
        + f"K_H = {res.henry:.4e} molec/uc/Pa; q_st = {res.isosteric_heat_kj_mol:.2f} kJ/mol; "
        f"{res.n_insertions} insertions in {wall:.1f} s"
    )
    return out


def run(config: Config, ctx=None) -> dict:
    """Runner entry point (``experiments`` runner signature); the estimate is a ``ctx.stage``."""
    return main(config, uncached_stage if ctx is None else ctx.stage)


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(main(Config.quick() if "--quick" in sys.argv else None), indent=1))
