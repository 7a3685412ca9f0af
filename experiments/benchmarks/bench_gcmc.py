r"""GCMC moves per second: CO₂ in MFI (2×2×2 cells, 353 K, 1 bar, Ewald), ours vs RASPA3.

The model of RASPA3's basic example 10 (:mod:`experiments.materials_co2_gcmc`). Peer,
timed in the same run: **RASPA3** through its PyPI package ``raspalib`` (the current
interpreter if it imports it, else ``$RASPA_PYTHON``), driven in a subprocess by
:data:`RASPA_SCRIPT` with the same force field, Ewald precision, moves (translation,
rotation, reinsertion 0.5 each, swap 1.0; the swap configurational-bias,
``swap_cbmc_probability``, with RASPA3's 10 trials as ours with ``n_trials=10``) and a
start of ``n_start`` molecules (about the equilibrium loading, so both are timed near
3.3 molecules per unit cell). A RASPA
cycle is max(20, N) moves; its rate is moves over the wall time of
``MonteCarlo.run()``. Ours is :func:`thermo.materials.gcmc_sample` after a compile and
an equilibration from empty, the median of ``n_repeats`` timed blocks, per box, for
1 and for ``n_boxes`` vmapped boxes (moves summed over boxes), with ``n_trials``
configurational-bias trials and with plain moves (``n_trials=1``); under ``vmap`` the
CBMC trials' ``lax.cond`` becomes a select, so the vmapped CBMC rate shows that cost.
The acceptance of the insertions is reported with each rate (accepted insertions per
second is what decorrelates the loading). Without ``../shared/data/materials/MFI_SI.cif``
the benchmark says so and returns ``{"skipped": why}``.
"""

from __future__ import annotations

import json
import sys
import time

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from experiments._materials import run_raspa_script
from experiments.materials_co2_widom import RASPA_SCRIPT as WIDOM_SCRIPT
from thermo.materials import (
    fugacities,
    gcmc_init,
    gcmc_sample_batched,
    gcmc_system,
    load_molecule,
    read_structure,
    shared_materials_path,
)

__all__ = ["RASPA_SCRIPT", "main", "raspa_gcmc"]

#: argv = CIF path, cycles, seed, init cycles, start molecules; prints one JSON line. The
#: force field, framework and molecule are those of the Widom experiment's RASPA script.
RASPA_SCRIPT = (
    WIDOM_SCRIPT.split("comp = r.Component")[0]
    + r"""
init, n0 = int(sys.argv[4]), int(sys.argv[5])
moves = r.MCMoveProbabilities(translation_probability=0.5, rotation_probability=0.5,
                              reinsertion_cbmc_probability=0.5, swap_cbmc_probability=1.0)
comp = r.Component(ff, "CO2", 304.1282, 7377300.0, 0.22394, co2,
                   particle_probabilities=moves)
T, P = 353.0, 1.0e5
system = r.System(ff, None, False, T, P, 0.29, fw, [comp], [], [n0], 5)
mc = r.MonteCarlo(number_of_cycles=cycles, number_of_initialization_cycles=init,
                  print_every=10**9, systems=[system], random_seed=seed)
t0 = time.perf_counter(); mc.run(); wall = time.perf_counter() - t0
mean, err = mc.systems[0].average_loadings.average_loading_number_of_molecules(0)
print(json.dumps({"wall_s": wall, "cycles": init + cycles,
                  "n_final": list(mc.systems[0].number_of_molecules_per_component),
                  "loading_per_uc": mean / 8, "loading_std_err": err / 8}))
"""
)


def raspa_gcmc(cif: str, init: int, cycles: int, n_start: int, seed: int) -> dict:
    """Run :data:`RASPA_SCRIPT`; ``{"error": ...}`` when raspalib is not available."""
    return run_raspa_script(RASPA_SCRIPT, cif, cycles, seed, init, n_start)


def main(
    quick: bool = False,
    *,
    steps: int | None = None,
    n_repeats: int | None = None,
    raspa_cycles: int | None = None,
    n_boxes: int = 2,
    n_trials: int = 10,
) -> dict:
    """Time ours (1 and ``n_boxes`` boxes, CBMC and plain) and RASPA3; moves/s and ratios."""
    jax.config.update("jax_enable_x64", True)  # benchmark entry point: float64 as the experiment
    cif = shared_materials_path("MFI_SI.cif", required=False)  # the reference input
    if cif is None:
        why = "../shared/data/materials/MFI_SI.cif is absent (not shipped): bench_gcmc not run"
        print(why)
        return {"skipped": why}
    atoms = read_structure(cif)
    steps = steps or (500 if quick else 5000)
    n_repeats = n_repeats or (2 if quick else 3)
    rates, first, loads, ins_acc = {}, {}, {}, {}
    for k in sorted({1, int(n_trials)}, reverse=True):
        system = gcmc_system(
            load_molecule("CO2"),
            temperature=353.0,
            fugacities=fugacities(["CO2"], 353.0, 1e5, eos="peng-robinson"),
            framework=atoms,
            framework_charges={"Si": 2.05, "O": -1.025},
            capacity=64,
            n_trials=k,
        )
        for b in sorted({1, int(n_boxes)}):
            tag = f"k={k}, boxes={b}"
            states = jax.vmap(lambda _, s=system: gcmc_init(s))(jnp.arange(b))
            t0 = time.perf_counter()
            states, _ = gcmc_sample_batched(jr.split(jr.key(0), b), system, states, steps)
            jax.block_until_ready(states)
            first[tag] = time.perf_counter() - t0
            for i in range(5 if not quick else 1):  # equilibrate from empty (~26 molecules)
                states, _ = gcmc_sample_batched(jr.split(jr.key(10 + i), b), system, states, steps)
            times, acc, att = [], 0.0, 0.0
            for i in range(n_repeats):
                t0 = time.perf_counter()
                states, stats = gcmc_sample_batched(
                    jr.split(jr.key(100 + i), b), system, states, steps
                )
                jax.block_until_ready(states)
                times.append(time.perf_counter() - t0)
                acc += float(np.asarray(stats.accepted)[..., 3].sum())
                att += float(np.asarray(stats.attempts)[..., 3].sum())
            rates[tag] = b * steps / float(np.median(times))
            ins_acc[tag] = acc / max(att, 1.0)
            loads[tag] = float(np.asarray(stats.sum_n).sum() / np.asarray(stats.n_steps).sum() / 8)
    cycles = raspa_cycles or (20 if quick else 500)
    raspa = raspa_gcmc(cif, 0, cycles, 26, 1)
    out = {
        "ours_moves_per_s": rates,
        "ours_insertion_acceptance": ins_acc,
        "ours_accepted_insertions_per_s": {
            t: r * ins_acc[t] * 0.2 for t, r in rates.items()
        },  # insertions are 1/5 of the moves (0.5 of 2.5)
        "ours_first_call_s": first,
        "ours_loading_per_uc_during_timing": loads,
        "steps_per_timed_call": steps,
        "devices": len(jax.devices()),
    }
    if "error" in raspa:
        out["raspa3"] = {"available": False, "note": raspa["error"]}
        print(f"RASPA3 (raspalib) not run: {raspa['error']}")
    else:
        n_mean = max(20.0, 8 * raspa["loading_per_uc"])
        raspa_rate = raspa["cycles"] * n_mean / raspa["wall_s"]  # moves per second (approx.)
        out["raspa3"] = dict(raspa, available=True, moves_per_s=raspa_rate)
        out["speedup_ours_over_raspa"] = {t: r / raspa_rate for t, r in rates.items()}
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
