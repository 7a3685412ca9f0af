r"""CO₂/N₂ screen of CoRE MOFs at 313 K: Henry selectivities, then binary GCMC for the best.

For each framework of :func:`thermo.materials.default_screening_set` (``n_mofs``, default
200: the smallest cells with PLD ≥ 3.3 Å, neutral, ordered, with C and H, every element
with UFF and EQeq data): EQeq framework charges (Wilmer, Kim & Snurr 2012,
:func:`thermo.materials.framework_charges`), UFF framework LJ (Rappé et al. 1992),
Lorentz–Berthelot mixing with the rigid CO₂ of García-Sánchez et al. 2009 and the N₂ of
Martín-Calvo et al. 2011 (TraPPE for either with ``co2_model``/``n2_model``), LJ shifted
at 12 Å, no tail correction, Ewald molecule–framework Coulomb (relative precision
``ewald_precision``); Widom insertion (:func:`thermo.materials.henry_coefficients`)
gives :math:`K_H` of each gas with the standard error of ``n_blocks`` block means, and
the isosteric heat at infinite dilution. The Henry selectivity is

.. math:: S_H = K_H^{\rm CO_2}/K_H^{\rm N_2},\qquad
   \sigma_S = S_H\sqrt{(\sigma_{\rm CO_2}/K_H^{\rm CO_2})^2 + (\sigma_{\rm N_2}/K_H^{\rm N_2})^2}

(independent insertions, first-order propagation). The ``gcmc_top`` frameworks with the
largest :math:`S_H`, among those whose EQeq charges stay within ``max_abs_charge``, then get a binary GCMC run (:func:`thermo.materials.gcmc_sample`)
at ``y_co2`` : ``1 - y_co2`` (flue gas 15:85), ``pressure`` (1 bar), Peng–Robinson
fugacities, the same force field; its selectivity
:math:`S = (\langle N_{\rm CO_2}\rangle/\langle N_{\rm N_2}\rangle)/(y_{\rm CO_2}/y_{\rm N_2})`
with the standard error of the ratio from the block means (blocking, delta method). At
infinite dilution :math:`S = S_H`; the agreement figure shows where loading at 1 bar
moves it.

Resumable: one framework is one step of ``ctx.loop`` (checkpointed every
``checkpoint_every`` frameworks, so finished frameworks survive an interrupt), and each
GCMC run is its own loop over blocks. Figures: ``selectivity_vs_pore`` (S_H against
PLD and LCD), ``henry_co2_vs_n2``, ``henry_vs_gcmc``.

``python -m experiments run materials_mof_screen`` (full), ``--quick`` (2 frameworks).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Annotated

import jax
import jax.random as jr
import numpy as np

from experiments._config import Choices, Count, NonNegativeInt, Positive, Range, Seed
from experiments._materials import ratio_std_err
from experiments.materials_co2_gcmc import blocking_std_err
from thermo.materials import (
    core_mof_descriptors,
    default_screening_set,
    framework_charges,
    fugacities,
    gcmc_init,
    gcmc_sample,
    gcmc_system,
    henry_coefficients,
    load_core_mofs,
    load_molecule,
)
from thermo.materials.gcmc import MOVES

__all__ = ["Config", "run", "selectivity"]

_FIELDS = (
    "kh_co2",
    "kh_co2_se",
    "kh_n2",
    "kh_n2_se",
    "kh_co2_mol_kg_pa",
    "kh_n2_mol_kg_pa",
    "qst_co2",
    "qst_n2",
    "max_abs_charge",
    "charge_s",
    "widom_s",
)


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings (defaults: the full 200-framework screen).

    Attributes:
        seed: PRNG seed.
        n_mofs: frameworks of :func:`thermo.materials.default_screening_set`.
        names: explicit CoRE MOF 2019-ASR names instead (empty: the default set).
        temperature: K.
        co2_model, n2_model: molecule models of ``data/molecules.json``.
        n_insertions, n_blocks, chunk_size: Widom insertions per gas and framework.
        ewald_precision: relative accuracy of the Ewald sum.
        checkpoint_every: frameworks between checkpoints.
        max_abs_charge: frameworks whose largest EQeq charge exceeds this (e) are screened
            but left out of the ranking: charges beyond ±3 e are unphysical for these
            frameworks and make deep spurious binding sites (in the full run CELZEA_clean,
            max |q| 4.65 e, has a CO₂ isosteric heat of 142 kJ/mol and S_H ~ 10¹⁵).
        gcmc_top: frameworks (largest S_H among the ranked) given a binary GCMC run (0: none).
        pressure: Pa; y_co2: CO₂ mole fraction of the gas.
        gcmc_capacity: initial molecule slots; a run whose insertion finds them all full
            is discarded and repeated with twice the slots, up to ``gcmc_max_doublings``
            times (the slots used are reported per framework).
        gcmc_steps_per_block, gcmc_n_equilibration_blocks, gcmc_n_blocks: moves per block,
            discarded and production blocks.
    """

    seed: Seed = 20261203
    n_mofs: Count = 200
    names: tuple[str, ...] = ()
    temperature: Positive = 313.0
    co2_model: Annotated[str, Choices(("garcia-sanchez-2009", "trappe"))] = "garcia-sanchez-2009"
    n2_model: Annotated[str, Choices(("martin-calvo-2011", "trappe"))] = "martin-calvo-2011"
    n_insertions: Count = 16_384
    n_blocks: Count = 8
    chunk_size: Count = 256
    ewald_precision: Annotated[float, Range(0.0, 1.0, low_open=True, high_open=True)] = 1e-6
    checkpoint_every: Count = 1
    max_abs_charge: Positive = 3.0
    gcmc_top: NonNegativeInt = 5
    pressure: Positive = 1.0e5
    y_co2: Annotated[float, Range(0.0, 1.0, low_open=True, high_open=True)] = 0.15
    gcmc_capacity: Count = 48
    gcmc_max_doublings: NonNegativeInt = 4
    gcmc_steps_per_block: Count = 2_000
    gcmc_n_equilibration_blocks: Count = 3
    gcmc_n_blocks: Count = 20

    @classmethod
    def quick(cls) -> Config:
        """Two 20-atom frameworks (one set of compiled shapes), few insertions, one short
        GCMC: a smoke setting."""
        return cls(
            names=("LUFQUZ01_clean", "LUFQUZ_clean"),
            n_insertions=512,
            n_blocks=4,
            chunk_size=128,
            gcmc_top=1,
            gcmc_capacity=16,
            gcmc_steps_per_block=50,
            gcmc_n_equilibration_blocks=1,
            gcmc_n_blocks=2,
        )


def selectivity(k1, se1, k2, se2):
    r""":math:`S = k_1/k_2` and :math:`\sigma_S = S\sqrt{(\sigma_1/k_1)^2 + (\sigma_2/k_2)^2}`."""
    return ratio_std_err(k1, se1, k2, se2)


def _mof_table(config: Config):
    if config.names:
        table = core_mof_descriptors()
        rows = table.set_index("filename").reindex(list(config.names))
        missing = [n for n, ok in zip(config.names, rows["PLD"].notna(), strict=True) if not ok]
        if missing:
            raise ValueError(f"not in CoRE MOF 2019-ASR: {missing}")
        rows = rows.reset_index()
        return {k: list(rows[k]) for k in ("filename", "PLD", "LCD")}
    table = default_screening_set(config.n_mofs)
    return {k: list(table[k]) for k in ("filename", "PLD", "LCD", "n_atoms")}


def run(config: Config, ctx) -> dict:
    """The Henry screen (one ``ctx.loop`` step per framework), then GCMC for the best."""
    table = ctx.stage("frameworks", lambda: _mof_table(config))
    names = list(table["filename"])
    n = len(names)
    t0 = time.perf_counter()
    mofs = load_core_mofs(names)
    ctx.timings["load_s"] = time.perf_counter() - t0
    co2 = load_molecule("CO2", config.co2_model)
    n2 = load_molecule("N2", config.n2_model)
    carry = {f: np.full(n, np.nan) for f in _FIELDS}
    carry["n_atoms"] = np.zeros(n)

    def body(key, carry, i):
        atoms = mofs[names[i]]
        t = time.perf_counter()
        out = {k: v.copy() for k, v in carry.items()}
        out["n_atoms"][i] = len(atoms)
        try:
            q = framework_charges(atoms, method="eqeq")
        except ValueError as err:  # EQeq unbounded below on this structure: no charges
            ctx.log(f"{names[i]}: no EQeq charges, left out ({err})")
            out["charge_s"][i] = time.perf_counter() - t
            return out
        t_q = time.perf_counter() - t
        t = time.perf_counter()
        res = henry_coefficients(
            key,
            atoms,
            [co2, n2],
            temperature=config.temperature,
            n_insertions=config.n_insertions,
            n_blocks=config.n_blocks,
            chunk_size=config.chunk_size,
            charges=q,
            ewald_precision=config.ewald_precision,
        )
        t_w = time.perf_counter() - t
        values = {
            "kh_co2": res["CO2"].henry,
            "kh_co2_se": res["CO2"].henry_std_err,
            "kh_n2": res["N2"].henry,
            "kh_n2_se": res["N2"].henry_std_err,
            "kh_co2_mol_kg_pa": res["CO2"].henry_mol_per_kg_pa,
            "kh_n2_mol_kg_pa": res["N2"].henry_mol_per_kg_pa,
            "qst_co2": res["CO2"].isosteric_heat_kj_mol,
            "qst_n2": res["N2"].isosteric_heat_kj_mol,
            "max_abs_charge": float(np.abs(q).max()),
            "charge_s": t_q,
            "widom_s": t_w,
        }
        for k, v in values.items():
            out[k][i] = v
        return out

    carry = ctx.loop(
        jr.fold_in(ctx.key, 1),
        body,
        carry,
        n,
        name="henry",
        every=config.checkpoint_every,
        desc=f"Widom CO2/N2 in {n} CoRE MOFs",
    )
    s, s_se = selectivity(carry["kh_co2"], carry["kh_co2_se"], carry["kh_n2"], carry["kh_n2_se"])
    ctx.timings["charge_s_median"] = float(np.nanmedian(carry["charge_s"]))
    ctx.timings["widom_s_median_per_mof"] = float(np.nanmedian(carry["widom_s"]))
    ctx.timings["screen_s_total"] = float(
        np.nansum(carry["charge_s"]) + np.nansum(carry["widom_s"])
    )
    maxq = np.asarray(carry["max_abs_charge"])
    ranked = np.isfinite(s) & (maxq <= config.max_abs_charge)
    order = np.argsort(-np.where(ranked, s, -np.inf), kind="stable")
    top = [int(i) for i in order[: min(config.gcmc_top, int(ranked.sum()))]]
    gcmc = [
        _gcmc(config, ctx, mofs[names[i]], names[i], co2, n2, jr.fold_in(jr.fold_in(ctx.key, 2), i))
        for i in top
    ]
    per_mof = [
        {
            "name": names[i],
            "pld": float(table["PLD"][i]),
            "lcd": float(table["LCD"][i]),
            "n_atoms": int(carry["n_atoms"][i]),
            "henry_co2_molecules_per_uc_per_pa": {
                "value": float(carry["kh_co2"][i]),
                "std_err": float(carry["kh_co2_se"][i]),
            },
            "henry_n2_molecules_per_uc_per_pa": {
                "value": float(carry["kh_n2"][i]),
                "std_err": float(carry["kh_n2_se"][i]),
            },
            "henry_co2_mol_per_kg_per_pa": float(carry["kh_co2_mol_kg_pa"][i]),
            "henry_n2_mol_per_kg_per_pa": float(carry["kh_n2_mol_kg_pa"][i]),
            "selectivity_henry": {"value": float(s[i]), "std_err": float(s_se[i])},
            "isosteric_heat_co2_kj_per_mol": float(carry["qst_co2"][i]),
            "isosteric_heat_n2_kj_per_mol": float(carry["qst_n2"][i]),
            "max_abs_eqeq_charge": float(carry["max_abs_charge"][i]),
        }
        for i in range(n)
    ]
    out = {
        "n_frameworks": n,
        "temperature_K": config.temperature,
        "models": {"CO2": co2.citation, "N2": n2.citation, "framework": "UFF + EQeq"},
        "eqeq_max_abs_charge": float(np.nanmax(maxq)),
        "eqeq_frameworks_with_abs_charge_above_3": int(np.sum(maxq > 3.0)),
        "excluded_from_ranking": [
            {
                "name": names[i],
                "max_abs_eqeq_charge": float(maxq[i]),
                "selectivity_henry": float(s[i]),
            }
            for i in range(n)
            if np.isfinite(maxq[i]) and maxq[i] > config.max_abs_charge
        ],
        "eqeq_failed": [names[i] for i in range(n) if not np.isfinite(maxq[i])],
        "selectivity_henry_top": [
            {"name": names[i], "value": float(s[i]), "std_err": float(s_se[i])} for i in top
        ],
        "gcmc": gcmc,
        "frameworks": per_mof,
    }
    ctx.log(
        f"{n} frameworks: S_H top {names[top[0]] if top else '-'} "
        f"{s[top[0]] if top else float('nan'):.1f}; EQeq max |q| {np.nanmax(maxq):.2f}, "
        f"{int(np.sum(maxq > 3.0))} with |q| > 3; median Widom {np.nanmedian(carry['widom_s']):.1f} s "
        "per framework (two gases)"
    )
    _figures(ctx, table, carry, s, s_se, gcmc)
    return out


def _gcmc(config, ctx, atoms, name, co2, n2, key) -> dict:
    """Binary CO2/N2 GCMC in one framework, doubling the molecule slots on overflow."""
    y = np.array([config.y_co2, 1.0 - config.y_co2])
    f = fugacities(["CO2", "N2"], config.temperature, config.pressure, y, eos="peng-robinson")
    q = framework_charges(atoms, method="eqeq")
    capacity = config.gcmc_capacity
    for attempt in range(config.gcmc_max_doublings + 1):
        out = _gcmc_run(config, ctx, atoms, name, co2, n2, key, y, f, q, capacity, attempt)
        if out is not None:
            return out
        ctx.log(f"{name}: all {capacity} molecule slots filled; repeating with {2 * capacity}")
        capacity *= 2
    raise RuntimeError(
        f"{name}: an insertion found all {capacity // 2} slots full after "
        f"{config.gcmc_max_doublings} doublings (raise gcmc_capacity or gcmc_max_doublings)"
    )


def _gcmc_run(config, ctx, atoms, name, co2, n2, key, y, f, q, capacity, attempt):
    """One GCMC run with ``capacity`` slots; block means through ``ctx.loop``.

    Returns None when an insertion found every slot full (the remaining blocks are
    skipped: the run is biased and is repeated by the caller with more slots).
    """
    system = gcmc_system(
        [co2, n2],
        temperature=config.temperature,
        fugacities=f,
        framework=atoms,
        framework_lj="uff",
        framework_charges=q,
        capacity=capacity,
        ewald_precision=config.ewald_precision,
    )
    n_eq, n_prod = config.gcmc_n_equilibration_blocks, config.gcmc_n_blocks
    carry = {
        "state": gcmc_init(system),
        "n_mean": np.zeros((n_prod, 2)),
        "accepted": np.zeros((n_prod, 5)),
        "attempts": np.zeros((n_prod, 5)),
        "wall": np.zeros(n_eq + n_prod),
    }

    def body(k, carry, i):
        if bool(np.asarray(carry["state"].overflow)):
            return carry  # biased run: skip to the end, the caller repeats it
        t = time.perf_counter()
        state, stats = gcmc_sample(k, system, carry["state"], config.gcmc_steps_per_block)
        stats = jax.tree.map(np.asarray, stats)
        out = dict(carry, state=state, wall=carry["wall"].copy())
        out["wall"][i] = time.perf_counter() - t
        if i >= n_eq:
            for fld, val in (
                ("n_mean", stats.sum_n / stats.n_steps),
                ("accepted", stats.accepted),
                ("attempts", stats.attempts),
            ):
                out[fld] = carry[fld].copy()
                out[fld][i - n_eq] = val
        return out

    carry = ctx.loop(
        key,
        body,
        carry,
        n_eq + n_prod,
        name=f"gcmc_{name}" if attempt == 0 else f"gcmc_{name}_x{2**attempt}",
        every=max(1, (n_eq + n_prod) // 5),
        desc=f"GCMC CO2/N2 in {name}",
    )
    if bool(np.asarray(carry["state"].overflow)):
        return None
    n_mean = np.asarray(carry["n_mean"])
    n_uc = int(np.prod(system.unit_cells))
    m = n_mean.mean(axis=0)
    se = np.array([blocking_std_err(n_mean[:, j]) for j in range(2)])
    # delta method for the ratio of means, with the block covariance
    cov = np.cov(n_mean.T, ddof=1)[0, 1] / n_prod if n_prod > 1 else np.nan
    ratio_y = y[0] / y[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        sel = m[0] / m[1] / ratio_y
        rel2 = (se[0] / m[0]) ** 2 + (se[1] / m[1]) ** 2 - 2.0 * cov / (m[0] * m[1])
        sel_se = abs(sel) * np.sqrt(max(rel2, 0.0))
    att = np.asarray(carry["attempts"]).sum(0)
    acc = np.asarray(carry["accepted"]).sum(0)
    moves = n_prod * config.gcmc_steps_per_block
    wall = float(np.asarray(carry["wall"])[n_eq:].sum())
    ctx.timings[f"gcmc_{name}_s"] = float(np.asarray(carry["wall"]).sum())
    return {
        "name": name,
        "unit_cells": list(system.unit_cells),
        "capacity": int(capacity),
        "fugacities_pa": [float(x) for x in f],
        "loading_co2_per_uc": {"value": float(m[0] / n_uc), "std_err": float(se[0] / n_uc)},
        "loading_n2_per_uc": {"value": float(m[1] / n_uc), "std_err": float(se[1] / n_uc)},
        "selectivity_gcmc": {"value": float(sel), "std_err": float(sel_se)},
        "moves": int(moves),
        "acceptance": {
            mv: float(a / t) if t else None for mv, a, t in zip(MOVES, acc, att, strict=True)
        },
        "moves_per_s": float(moves / wall) if wall > 0 else None,
    }


def _figures(ctx, table, carry, s, s_se, gcmc):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = np.isfinite(s) & (s > 0)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, col in zip(axes, ("PLD", "LCD"), strict=True):
        x = np.asarray(table[col], dtype=np.float64)
        ax.errorbar(x[ok], s[ok], yerr=s_se[ok], fmt=".", ms=4, alpha=0.7, elinewidth=0.6)
        ax.set_xlabel(f"{col} (Å)")
        ax.set_yscale("log")
    axes[0].set_ylabel(r"$S_H = K_H^{CO_2}/K_H^{N_2}$")
    fig.suptitle(f"Henry selectivity, 313 K, UFF + EQeq, {int(ok.sum())} CoRE MOFs")
    ctx.save_figure(fig, "selectivity_vs_pore")

    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    k1, k2 = np.asarray(carry["kh_co2_mol_kg_pa"]), np.asarray(carry["kh_n2_mol_kg_pa"])
    sc = ax.scatter(k2[ok], k1[ok], c=np.log10(s[ok]), s=10, cmap="viridis")
    fig.colorbar(sc, ax=ax, label=r"$\log_{10} S_H$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"$K_H(\mathrm{N_2})$ (mol kg$^{-1}$ Pa$^{-1}$)")
    ax.set_ylabel(r"$K_H(\mathrm{CO_2})$ (mol kg$^{-1}$ Pa$^{-1}$)")
    ctx.save_figure(fig, "henry_co2_vs_n2")

    if gcmc:
        fig, ax = plt.subplots(figsize=(4.4, 4.2))
        index = {n: i for i, n in enumerate(table["filename"])}
        for g in gcmc:
            i = index[g["name"]]
            ax.errorbar(
                s[i],
                g["selectivity_gcmc"]["value"],
                xerr=s_se[i],
                yerr=g["selectivity_gcmc"]["std_err"],
                fmt="o",
                ms=4,
                label=g["name"].replace("_clean", ""),
            )
        lim = [
            min(ax.get_xlim()[0], ax.get_ylim()[0]),
            max(ax.get_xlim()[1], ax.get_ylim()[1]),
        ]
        ax.plot(lim, lim, "k--", lw=0.8)
        ax.set_xlabel(r"Henry $S_H$")
        ax.set_ylabel(r"GCMC $S$ (15:85, 1 bar)")
        ax.legend(fontsize=7)
        ctx.save_figure(fig, "henry_vs_gcmc")
