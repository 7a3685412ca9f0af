"""Pieces shared by the materials experiments (one timed Widom run and its metrics, and
the one way RASPA3 peer runs are launched)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from typing import Any

import jax
import jax.random as jr
import numpy as np

from thermo.materials import WidomResult, widom

__all__ = ["raspa3_comparison", "ratio_std_err", "run_raspa_script", "timed_widom"]


def ratio_std_err(a, se_a, b, se_b):
    r""":math:`r = a/b` and :math:`\sigma_r = |r|\sqrt{(\sigma_a/a)^2 + (\sigma_b/b)^2}`
    (independent estimates, first-order propagation); arrays or floats."""
    a, se_a, b, se_b = (np.asarray(x, dtype=np.float64) for x in (a, se_a, b, se_b))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = a / b
        return r, np.abs(r) * np.hypot(se_a / a, se_b / b)


def run_raspa_script(
    script: str, *args: object, python: str | None = None, timeout: int = 3600
) -> dict:
    """Run a RASPA3 driver script (``python -c script *args``) and parse its last JSON line.

    The interpreter is ``python`` if given, else this one when ``raspalib`` (RASPA3's Python
    package) is importable here, else ``$RASPA_PYTHON``. Returns ``{"error": why}`` instead
    of raising when RASPA3 is not available or the run fails, so a missing peer never loses
    the project's own results.
    """
    if python is None:
        python = sys.executable
        if importlib.util.find_spec("raspalib") is None:
            python = os.environ.get("RASPA_PYTHON", "")
    if not python or not os.path.exists(python):
        return {"error": "raspalib is not importable here and $RASPA_PYTHON is unset"}
    proc = subprocess.run(
        [python, "-c", script, *map(str, args)], capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def timed_widom(
    config: Any, framework: Any, label: str, **widom_kwargs: Any
) -> tuple[WidomResult, dict, str]:
    r"""One :func:`thermo.materials.widom` run of the experiment's ``config`` (``seed``,
    ``temperature``, ``n_insertions``, ``n_blocks``, ``chunk_size``), timed.

    ``widom_kwargs`` go to :func:`~thermo.materials.widom` as they are (adsorbate, force
    field, charges, Ewald precision, grid). Returns the result, the metrics that every
    Widom experiment reports (``framework`` is ``label``; :math:`\langle W\rangle` and
    :math:`K_H` with their standard errors, :math:`K_H` per kg, :math:`\Delta H`,
    :math:`q_{st}`, insertions, unit cells, wall seconds, devices) and a one-line summary
    ``"<label>: <W> = ... +- ..."`` for the experiment to extend and print.
    """
    t0 = time.perf_counter()
    res = widom(
        jr.key(config.seed),
        framework,
        temperature=config.temperature,
        n_insertions=config.n_insertions,
        n_blocks=config.n_blocks,
        chunk_size=config.chunk_size,
        **widom_kwargs,
    )
    wall = time.perf_counter() - t0
    metrics = {
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
    summary = (
        f"{label}: <W> = {res.weight:.3f} +- {res.std_err:.3f}, K_H = {res.henry:.4e} "
        f"molec/uc/Pa, q_st = {res.isosteric_heat_kj_mol:.2f} kJ/mol; "
        f"{res.n_insertions} insertions in {wall:.1f} s"
    )
    return res, metrics, summary


def raspa3_comparison(
    res: WidomResult, weight: float, weight_std_err: float, henry: float
) -> tuple[float, dict]:
    r"""The z-score of ``res``'s :math:`\langle W\rangle` against RASPA3's published
    ``weight`` :math:`\pm` ``weight_std_err``, :math:`z = (\hat W - W_\text{RASPA3}) /
    \sqrt{\sigma^2 + \sigma_\text{RASPA3}^2}`, and the metrics that record it (the
    reference weight and Henry coefficient ``henry``, and ``z_score``)."""
    z = float((res.weight - weight) / np.hypot(res.std_err, weight_std_err))
    metrics = {
        "raspa3_weight": {"value": weight, "std_err": weight_std_err},
        "raspa3_henry": henry,
        "z_score": z,
    }
    return z, metrics
