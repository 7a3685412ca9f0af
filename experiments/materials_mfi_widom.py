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

from experiments._config import Count, Positive, Seed
from experiments._materials import raspa3_comparison, timed_widom
from experiments._runner import uncached_stage
from thermo.materials import (
    adsorption_force_field,
    core_mof_framework,
    load_molecule,
    read_structure,
    shared_materials_path,
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
    res, out, msg = timed_widom(
        config,
        atoms,
        label,
        adsorbate="CH4",
        force_field=force_field,
        energy_grid=config.energy_grid,
    )
    if label == "MFI":
        z, comparison = raspa3_comparison(res, RASPA3_WEIGHT, RASPA3_WEIGHT_ERR, RASPA3_HENRY)
        out.update(comparison, within_3_sigma=bool(abs(z) < 3.0))
        msg += f"; RASPA3 27.39 +- 0.06, z = {z:+.2f}"
    else:
        out.update(raspa3_weight=None, z_score=None, within_3_sigma=None, raspa3_henry=None)
    print(msg)
    return out


def run(config: Config, ctx=None) -> dict:
    """Runner entry point (``experiments`` runner signature); the estimate is a ``ctx.stage``."""
    return main(config, uncached_stage if ctx is None else ctx.stage)
