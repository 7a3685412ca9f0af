r"""GCMC moves per second: CO₂ in MFI (2×2×2 cells, 353 K, 1 bar, Ewald), ours vs RASPA3.

The model of RASPA3's basic example 10 (:mod:`experiments.materials_co2_gcmc`). Peer,
timed in the same run: **RASPA3** through its PyPI package ``raspalib`` (the current
interpreter if it imports it, else ``$RASPA_PYTHON``), driven in a subprocess by
:data:`RASPA_SCRIPT` with the same force field, Ewald precision, moves (translation,
rotation, reinsertion 0.5 each, swap 1.0) and a start of ``n_start`` molecules (about
the equilibrium loading, so both are timed near 3.3 molecules per unit cell). A RASPA
cycle is max(20, N) moves; its rate is moves over the wall time of
``MonteCarlo.run()``. Ours is :func:`thermo.materials.gcmc_sample` after a compile and
an equilibration from empty, the median of ``n_repeats`` timed blocks, per box, for
1 and for ``n_boxes`` vmapped boxes (moves summed over boxes).
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
                              reinsertion_cbmc_probability=0.5, swap_probability=1.0)
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
) -> dict:
    """Time ours (1 and ``n_boxes`` boxes) and RASPA3; moves per second and the ratio."""
    jax.config.update("jax_enable_x64", True)  # benchmark entry point: float64 as the experiment
    cif = shared_materials_path("MFI_SI.cif")  # the reference input; raises if absent
    atoms = read_structure(cif)
    steps = steps or (500 if quick else 5000)
    n_repeats = n_repeats or (2 if quick else 3)
    system = gcmc_system(
        load_molecule("CO2"),
        temperature=353.0,
        fugacities=fugacities(["CO2"], 353.0, 1e5, eos="peng-robinson"),
        framework=atoms,
        framework_charges={"Si": 2.05, "O": -1.025},
        capacity=64,
    )
    rates, first, loads = {}, {}, {}
    for b in sorted({1, int(n_boxes)}):
        states = jax.vmap(lambda _: gcmc_init(system))(jnp.arange(b))
        t0 = time.perf_counter()
        states, _ = gcmc_sample_batched(jr.split(jr.key(0), b), system, states, steps)
        jax.block_until_ready(states)
        first[b] = time.perf_counter() - t0
        for i in range(5 if not quick else 1):  # equilibrate from empty (~26 molecules)
            states, _ = gcmc_sample_batched(jr.split(jr.key(10 + i), b), system, states, steps)
        times = []
        for i in range(n_repeats):
            t0 = time.perf_counter()
            states, stats = gcmc_sample_batched(jr.split(jr.key(100 + i), b), system, states, steps)
            jax.block_until_ready(states)
            times.append(time.perf_counter() - t0)
        rates[b] = b * steps / float(np.median(times))
        loads[b] = float(np.asarray(stats.sum_n).sum() / np.asarray(stats.n_steps).sum() / 8)
    cycles = raspa_cycles or (20 if quick else 500)
    raspa = raspa_gcmc(cif, 0, cycles, 26, 1)
    out = {
        "ours_moves_per_s": {str(b): r for b, r in rates.items()},
        "ours_first_call_s": {str(b): t for b, t in first.items()},
        "ours_loading_per_uc_during_timing": {str(b): v for b, v in loads.items()},
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
        out["speedup_ours_over_raspa"] = {str(b): r / raspa_rate for b, r in rates.items()}
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
