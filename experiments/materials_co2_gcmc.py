r"""CO₂ in silicalite-1 (MFI) at 353 K and 1 bar by grand-canonical Monte Carlo, against RASPA3.

RASPA3's basic example 10: all-silica MFI, 2×2×2 unit cells, TraPPE-zeo O/Si (Bai et
al. 2013) with charges Si +2.05, O −1.025; CO₂ of García-Sánchez et al. 2009; Lorentz–
Berthelot, LJ shifted at 12 Å, no tail correction; Ewald with RASPA's relative precision
1e-6 (the set-up of :mod:`experiments.materials_co2_widom`); moves translation,
rotation, reinsertion (0.5 each) and swap (1.0, half insertions, half deletions), as
the example's input; fugacity from Peng–Robinson (RASPA's default). The manual reports
3.286 ± 0.033 molecules per unit cell and a Widom weight 30.66 ± 0.44 sampled during
the run; this run reports the loading with its standard error by blocking over the block means
(:func:`blocking_std_err`; blocks of ``steps_per_block`` moves after
``n_equilibration_blocks`` discarded ones; the plain SE of the block means is reported
too, it is smaller: the swap and reinsertion acceptances are 3% and 0.7%, so the loading
decorrelates slowly) and whether it lies within 2 combined standard errors, and the Widom weight of its
insertion attempts (test insertions into the sampled states, the same estimator).

Resumable: one block is one step of ``ctx.loop``, checkpointed every
``checkpoint_every`` blocks (``python -m experiments run materials_co2_gcmc`` continues
an interrupted run). Throughput (MC moves per second and RASPA cycles per second, a
cycle being max(20, N) moves) goes to the timings, not the metrics.

Without ``../shared/data/materials/MFI_SI.cif`` the run says so and adsorbs CO₂ in
IRMOF-1 (CoRE MOF, UFF, no framework charges) with no RASPA3 comparison.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Annotated

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from experiments._config import Choices, Count, Positive, Range, Seed
from experiments.materials_co2_widom import _framework
from thermo.materials import (
    fugacities,
    gcmc_init,
    gcmc_sample_batched,
    gcmc_system,
    gcmc_total_energy,
    load_molecule,
)

__all__ = ["Config", "RASPA3_LOADING", "RASPA3_LOADING_ERR", "blocking_std_err", "run"]

RASPA3_LOADING = 3.286  # molecules per unit cell, RASPA3 manual basic example 10
RASPA3_LOADING_ERR = 0.033
RASPA3_WEIGHT = 30.66
RASPA3_WEIGHT_ERR = 0.44


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings (defaults: the full run, sized for about 30 min on a loaded 2-core machine).

    Attributes:
        seed: PRNG seed.
        temperature: K; pressure: Pa.
        eos: fugacity from ``"peng-robinson"`` (RASPA's default) or ``"ideal"``.
        n_boxes: independent boxes run side by side (``vmap``).
        capacity: molecule slots per box.
        steps_per_block: MC moves per block and box.
        n_equilibration_blocks: blocks discarded (the run starts empty).
        n_blocks: production blocks.
        checkpoint_every: blocks between checkpoints.
        max_displacement: Å; max_rotation: rad.
        ewald_precision: relative accuracy of the Ewald sum.
    """

    seed: Seed = 20261203
    temperature: Positive = 353.0
    pressure: Positive = 1.0e5
    eos: Annotated[str, Choices(("peng-robinson", "ideal"))] = "peng-robinson"
    n_boxes: Count = 1
    capacity: Count = 64
    steps_per_block: Count = 10_000
    n_equilibration_blocks: Count = 5
    n_blocks: Count = 80
    checkpoint_every: Count = 5
    max_displacement: Positive = 1.0
    max_rotation: Positive = 0.5
    ewald_precision: Annotated[float, Range(0.0, 1.0, low_open=True, high_open=True)] = 1e-6

    @classmethod
    def quick(cls) -> Config:
        """A smoke setting (one compile, a few hundred moves): not converged."""
        return cls(steps_per_block=100, n_equilibration_blocks=1, n_blocks=3, checkpoint_every=2)


def run(config: Config, ctx) -> dict:
    """Build the system, run the blocks through ``ctx.loop`` and summarise (module docstring)."""
    atoms, ff_name, charges, label, _ = _framework()
    co2 = load_molecule("CO2", "garcia-sanchez-2009")
    f = fugacities(["CO2"], config.temperature, config.pressure, eos=config.eos)
    system = gcmc_system(
        co2,
        temperature=config.temperature,
        fugacities=f,
        framework=atoms,
        framework_lj=ff_name,
        framework_charges=charges,
        capacity=config.capacity,
        ewald_precision=config.ewald_precision,
        max_displacement=config.max_displacement,
        max_rotation=config.max_rotation,
    )
    n_uc = int(np.prod(system.unit_cells))
    b, n_eq, n_prod = config.n_boxes, config.n_equilibration_blocks, config.n_blocks
    states = jax.vmap(lambda _: gcmc_init(system))(jnp.arange(b))
    carry = {
        "state": states,
        "n_mean": np.zeros((n_prod, b)),  # block mean of N per box
        "widom_sum": np.zeros((n_prod, b)),
        "widom_count": np.zeros((n_prod, b)),
        "attempts": np.zeros((n_prod, b, 5)),
        "accepted": np.zeros((n_prod, b, 5)),
        "energy_mean": np.zeros((n_prod, b)),
        "wall": np.zeros(n_eq + n_prod),
    }

    def body(key, carry, i):
        t0 = time.perf_counter()
        state, stats = gcmc_sample_batched(
            jr.split(key, b), system, carry["state"], config.steps_per_block
        )
        stats = jax.tree.map(np.asarray, stats)
        out = dict(carry, state=state)
        out["wall"] = carry["wall"].copy()
        out["wall"][i] = time.perf_counter() - t0
        if i >= n_eq:
            j = i - n_eq
            for name, value in [
                ("n_mean", stats.sum_n[:, 0] / stats.n_steps),
                ("widom_sum", stats.widom_sum[:, 0]),
                ("widom_count", stats.widom_count[:, 0]),
                ("attempts", stats.attempts),
                ("accepted", stats.accepted),
                ("energy_mean", stats.sum_energy / stats.n_steps),
            ]:
                out[name] = carry[name].copy()
                out[name][j] = value
        return out

    carry = ctx.loop(
        jr.fold_in(jr.key(config.seed), 1),
        body,
        carry,
        n_eq + n_prod,
        name="gcmc_blocks",
        every=config.checkpoint_every,
        desc=f"GCMC CO2/{label} ({config.steps_per_block} moves per block)",
    )
    state = carry["state"]
    if bool(np.any(np.asarray(state.overflow))):
        raise RuntimeError(f"an insertion found all {config.capacity} slots full: raise capacity")
    drift = []
    for k in range(b):
        one = jax.tree.map(lambda x, k=k: x[k], state)
        terms = gcmc_total_energy(system, one)
        drift.append(abs(float(one.energy) - terms["total"]))

    loading_blocks = np.asarray(carry["n_mean"]).mean(axis=1) / n_uc  # (n_prod,)
    loading = float(loading_blocks.mean())
    se_plain = float(loading_blocks.std(ddof=1) / np.sqrt(n_prod)) if n_prod > 1 else float("nan")
    se = blocking_std_err(loading_blocks)
    w_blocks = np.asarray(carry["widom_sum"]).sum(1) / np.asarray(carry["widom_count"]).sum(1)
    weight = float(w_blocks.mean())
    w_se = blocking_std_err(w_blocks)
    # Grand-canonical Widom identity <N> = beta f V <W> (exact): a consistency check.
    bfv_uc = float(np.exp(np.asarray(system.log_beta_f_v)[0])) / n_uc
    att = np.asarray(carry["attempts"]).sum(axis=(0, 1))
    acc = np.asarray(carry["accepted"]).sum(axis=(0, 1))
    prod_wall = float(np.asarray(carry["wall"])[n_eq:].sum())
    moves = n_prod * config.steps_per_block * b
    n_total = loading * n_uc
    ctx.timings["production_s"] = prod_wall
    if prod_wall > 0:
        ctx.timings["moves_per_s"] = moves / prod_wall
        ctx.timings["raspa_cycles_per_s"] = moves / max(20.0, n_total) / prod_wall
    out = {
        "framework": label,
        "unit_cells": list(system.unit_cells),
        "fugacity_pa": float(f[0]),
        "eos": config.eos,
        "loading_molecules_per_uc": {"value": loading, "std_err": se, "n_blocks": n_prod},
        "loading_std_err_of_block_means": se_plain,
        "widom_weight": {"value": weight, "std_err": w_se},
        "loading_from_widom_identity": {"value": bfv_uc * weight, "std_err": bfv_uc * w_se},
        "acceptance": {
            m: float(a / t) if t else None
            for m, a, t in zip(
                ("translation", "rotation", "reinsertion", "insertion", "deletion"),
                acc,
                att,
                strict=True,
            )
        },
        "mean_energy_K": float(np.asarray(carry["energy_mean"]).mean()),
        "energy_drift_K": float(max(drift)),
        "moves": int(moves),
        "raspa_cycles": float(moves / max(20.0, n_total)),
    }
    msg = (
        f"{label}: loading {loading:.4f} +- {se:.4f} molecules/uc ({n_prod} blocks of "
        f"{config.steps_per_block} moves x {b} boxes), <W> = {weight:.2f} +- {w_se:.2f}, "
        f"energy drift {max(drift):.2e} K"
    )
    if label == "MFI":
        z = (loading - RASPA3_LOADING) / float(np.hypot(se, RASPA3_LOADING_ERR))
        zw = (weight - RASPA3_WEIGHT) / float(np.hypot(w_se, RASPA3_WEIGHT_ERR))
        out.update(
            raspa3_loading={"value": RASPA3_LOADING, "std_err": RASPA3_LOADING_ERR},
            z_score=float(z),
            within_2_combined_sigma=bool(abs(z) < 2.0),
            raspa3_widom_weight={"value": RASPA3_WEIGHT, "std_err": RASPA3_WEIGHT_ERR},
            widom_z_score=float(zw),
        )
        msg += f"; RASPA3 3.286 +- 0.033, z = {z:+.2f}; <W> z = {zw:+.2f}"
    if prod_wall > 0:
        msg += f"; {moves / prod_wall:.0f} moves/s"
    ctx.log(msg)
    _figure(ctx, loading_blocks, se, label)
    return out


def blocking_std_err(block_means, min_blocks: int = 10) -> float:
    r"""Standard error of the mean of correlated block means by blocking (Flyvbjerg & Petersen 1989).

    Adjacent blocks are merged in pairs while at least ``min_blocks`` remain; the
    estimate is the largest standard error of the means over these levels (the plateau,
    or the last level when none is reached), so block-to-block correlation does not
    shrink it. ``nan`` for fewer than two blocks.
    """
    x = np.asarray(block_means, dtype=np.float64)
    if x.size < 2:
        return float("nan")
    best = x.std(ddof=1) / np.sqrt(x.size)
    while x.size // 2 >= min_blocks:
        x = x[: x.size // 2 * 2].reshape(-1, 2).mean(axis=1)
        best = max(best, x.std(ddof=1) / np.sqrt(x.size))
    return float(best)


def _figure(ctx, loading_blocks, se, label):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    x = np.arange(1, len(loading_blocks) + 1)
    ax.plot(x, loading_blocks, ".", color="0.6", label="block means")
    ax.plot(x, np.cumsum(loading_blocks) / x, "-", color="C0", label="running mean")
    if label == "MFI":
        ax.axhspan(
            RASPA3_LOADING - 2 * RASPA3_LOADING_ERR,
            RASPA3_LOADING + 2 * RASPA3_LOADING_ERR,
            color="C1",
            alpha=0.25,
            label="RASPA3 ± 2 SE",
        )
    ax.set_xlabel("production block")
    ax.set_ylabel("CO$_2$ per unit cell")
    ax.set_title(f"GCMC CO$_2$ in {label}, final SE {se:.3f}")
    ax.legend(fontsize=8)
    ctx.save_figure(fig, "loading")
