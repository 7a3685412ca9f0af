r"""GCMC moves per second: CO₂ in MFI (2×2×2 cells, 353 K, 1 bar, Ewald), ours vs RASPA3.

The model of RASPA3's basic example 10 (:mod:`experiments.materials_co2_gcmc`). Peer,
timed in the same run: **RASPA3** through its PyPI package ``raspalib`` (the current
interpreter if it imports it, else ``$RASPA_PYTHON``), driven in a subprocess by
:data:`RASPA_SCRIPT` with the same force field, Ewald precision and k-vectors (RASPA3's
integer sphere, :func:`thermo.materials.gcmc_system`'s default ``ewald_kspace``), moves
(translation, rotation, reinsertion 0.5 each, swap 1.0; the swap configurational-bias,
``swap_cbmc_probability``, with RASPA3's 10 trials as ours with ``n_trials=10``) and a
start of ``n_start`` molecules (about the equilibrium loading, so both are timed near
3.3 molecules per unit cell). A RASPA
cycle is max(20, N) moves; its rate is moves over the wall time of
``MonteCarlo.run()``, and over its CPU time (``process_time``, all threads). The CPU-time
rates of both sides (``ours_moves_per_cpu_s``, ``speedup_per_cpu_s_ours_over_raspa``) are
the comparison to read on a shared machine: under load the wall-time ratio measures the
scheduler as much as the codes. Ours: after a compile and an equilibration from empty, the median
of ``n_repeats`` timed blocks of ``steps`` moves per box, moves summed over boxes, with
``n_trials`` configurational-bias trials and with plain moves (``n_trials=1``). Rows:

* direct sum (the default model), 1 box through :func:`thermo.materials.gcmc_sample`
  and ``n_boxes`` vmapped boxes through :func:`~thermo.materials.gcmc_sample_batched`
  (under ``vmap`` the CBMC trials' ``lax.cond`` becomes a select, so every box pays for
  every trial);
* framework energy grids (``grid_spacing``, :mod:`thermo.materials.grids`), 1 box and
  ``grid_boxes`` boxes, the latter also with one move type per step shared by the boxes
  (``move_key``: the branch stays a branch under ``vmap``);
* different frameworks batched by ``vmap`` (:func:`~thermo.materials.gcmc_stack_systems`,
  :func:`~thermo.materials.gcmc_sample_frameworks`, shared move type): 1, 2, 4, 8 MFI
  variants with the cell scaled by :data:`FRAMEWORK_SCALES` (the only framework input
  at hand; each scale is a different energy landscape and grid shape), one box each.

* **one core**: the 1-box grid row and RASPA3 again, in a fresh process restricted to one
  core before JAX starts (``os.sched_setaffinity``, as ``taskset -c``), so XLA's CPU
  client makes a one-thread pool. A GCMC move is a chain of small kernels; with the
  default pool of one thread per core they are handed between threads on different
  cores, which costs more than it parallelises (measured on the 2-core dev machine: the
  same row at about 1.4× the wall rate and 2.2× the rate per CPU-second on one core).
  RASPA3 is single-threaded either way. The ``one_thread_pool`` rows time the same in an
  unrestricted interpreter that calls :func:`thermo.cpu.use_one_cpu_thread` first (the way
  ``python -m experiments run`` starts the GCMC experiments). ``one_core=False`` leaves
  both out.

The grids' error against the direct sum (:func:`grid_error`) and their build times are
reported with the rates, and the load average at the end. The acceptance of the
insertions is reported with each rate (accepted insertions per second is what
decorrelates the loading). Without ``../shared/data/materials/MFI_SI.cif``
the benchmark says so and returns ``{"skipped": why}``.
"""

from __future__ import annotations

import json
import os
import subprocess
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
    gcmc_sample,
    gcmc_sample_batched,
    gcmc_sample_frameworks,
    gcmc_stack_systems,
    gcmc_system,
    load_molecule,
    read_structure,
    shared_materials_path,
)

__all__ = ["FRAMEWORK_SCALES", "RASPA_SCRIPT", "grid_error", "main", "one_core_rows", "raspa_gcmc"]

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
t0, c0 = time.perf_counter(), time.process_time(); mc.run()
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
mean, err = mc.systems[0].average_loadings.average_loading_number_of_molecules(0)
print(json.dumps({"wall_s": wall, "cpu_s": cpu, "cycles": init + cycles,
                  "n_final": list(mc.systems[0].number_of_molecules_per_component),
                  "loading_per_uc": mean / 8, "loading_std_err": err / 8}))
"""
)


def raspa_gcmc(cif: str, init: int, cycles: int, n_start: int, seed: int) -> dict:
    """Run :data:`RASPA_SCRIPT`; ``{"error": ...}`` when raspalib is not available."""
    return run_raspa_script(RASPA_SCRIPT, cif, cycles, seed, init, n_start)


def _variant(atoms, i: int):
    """Framework ``i`` of the batch over frameworks: MFI with its cell scaled by a factor.

    Scaling by :data:`FRAMEWORK_SCALES` changes every distance, so each is a different
    energy landscape (and grid shape); the atoms and charges stay MFI's.
    """
    out = atoms.copy()
    out.set_cell(atoms.cell.array * FRAMEWORK_SCALES[i], scale_atoms=True)
    return out


#: Cell scale factors of the frameworks batched by ``vmap`` (:func:`_variant`).
FRAMEWORK_SCALES = (1.0, 0.99, 1.01, 0.98, 1.02, 0.985, 1.015, 1.03)


def _system(atoms, k: int, spacing: float | None):
    return gcmc_system(
        load_molecule("CO2"),
        temperature=353.0,
        fugacities=fugacities(["CO2"], 353.0, 1e5, eos="peng-robinson"),
        framework=atoms,
        framework_charges={"Si": 2.05, "O": -1.025},
        capacity=64,
        unit_cells=(2, 2, 2),
        n_trials=k,
        grid_spacing=spacing,
    )


def _one_box(keys, system, states, steps):
    """One box through :func:`gcmc_sample` (no ``vmap``: the CBMC trials stay a branch)."""
    state, stats = gcmc_sample(keys[0], system, jax.tree.map(lambda a: a[0], states), steps)
    return jax.tree.map(lambda a: a[None], state), jax.tree.map(lambda a: a[None], stats)


def _shared_moves(sample):
    """``sample`` with one move type per step shared by the boxes (``move_key``)."""

    def run(keys, system, states, steps):
        return sample(keys, system, states, steps, move_key=jr.fold_in(keys[0], 1))

    return run


def _time_row(sample, system, states, b, steps, n_eq, n_repeats):
    """Compile, equilibrate, time ``n_repeats`` blocks: rate, first call, insertion acc., load."""
    if b == 1 and sample is gcmc_sample_batched:
        sample = _one_box
    t0 = time.perf_counter()
    states, _ = sample(jr.split(jr.key(0), b), system, states, steps)
    jax.block_until_ready(states)
    first = time.perf_counter() - t0
    for i in range(n_eq):  # equilibrate from empty (~26 molecules)
        states, _ = sample(jr.split(jr.key(10 + i), b), system, states, steps)
    times, cpu, acc, att = [], [], 0.0, 0.0
    for i in range(n_repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        states, stats = sample(jr.split(jr.key(100 + i), b), system, states, steps)
        jax.block_until_ready(states)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        acc += float(np.asarray(stats.accepted)[..., 3].sum())
        att += float(np.asarray(stats.attempts)[..., 3].sum())
    load = float(np.asarray(stats.sum_n).sum() / np.asarray(stats.n_steps).sum() / 8)
    # per-row wall time, printed for the log (not a result)
    print(f"  row wall {time.perf_counter() - t0:.0f} s, load {os.getloadavg()[0]:.1f}", flush=True)
    rate_cpu = b * steps / float(np.median(cpu))
    return b * steps / float(np.median(times)), first, acc / max(att, 1.0), load, rate_cpu


def _raspa_rates(raspa: dict) -> dict:
    """``raspa`` (a :func:`raspa_gcmc` result) with its moves per second and per CPU-second.

    A RASPA cycle is max(20, N) moves, N taken as the run's mean loading (approximate)."""
    n_mean = max(20.0, 8 * raspa["loading_per_uc"])
    return dict(
        raspa,
        moves_per_s=raspa["cycles"] * n_mean / raspa["wall_s"],
        moves_per_cpu_s=raspa["cycles"] * n_mean / raspa["cpu_s"],
    )


def _one_core_worker(spacing: float, k: int, steps: int, n_repeats: int, n_eq: int, cycles: int):
    """The 1-box grid row and RASPA3, timed in this process (which the caller has
    restricted to one core before JAX started)."""
    jax.config.update("jax_enable_x64", True)
    cif = shared_materials_path("MFI_SI.cif")
    system = _system(read_structure(cif), k, spacing)
    states = jax.vmap(lambda _: gcmc_init(system))(jnp.arange(1))
    row = _time_row(gcmc_sample_batched, system, states, 1, steps, n_eq, n_repeats)
    out = {
        "cores": sorted(os.sched_getaffinity(0)),
        "ours_moves_per_s": row[0],
        "ours_moves_per_cpu_s": row[4],
        "ours_loading_per_uc_during_timing": row[3],
        "raspa3": raspa_gcmc(cif, 0, cycles, 26, 1),
    }
    return out


def _worker_cli(argv) -> None:
    """Run :func:`_one_core_worker` on ``argv`` (spacing, k, steps, n_repeats, n_eq, cycles)
    and print its JSON line."""
    sp, ints = float(argv[0]), [int(x) for x in argv[1:6]]
    print(json.dumps(_one_core_worker(sp, *ints)))


def one_core_rows(
    spacing: float,
    k: int,
    steps: int,
    n_repeats: int,
    n_eq: int,
    cycles: int,
    *,
    one_thread: bool = False,
):
    """:func:`_one_core_worker` in a fresh interpreter restricted to one core (the first
    of this process's); ``{"error": why}`` where the platform cannot restrict it.

    ``one_thread=True``: the interpreter is not restricted but calls
    :func:`thermo.cpu.use_one_cpu_thread` first (XLA's pool has one thread, the process
    keeps every core, and RASPA3 runs unrestricted)."""
    if not hasattr(os, "sched_setaffinity"):
        return {"error": "os.sched_setaffinity is not available on this platform"}
    core = min(os.sched_getaffinity(0))
    args = [spacing, k, steps, n_repeats, n_eq, cycles]
    if one_thread:  # the pool is fixed when JAX first runs, so before this module loads
        code = (
            "import sys; from thermo.cpu import use_one_cpu_thread; use_one_cpu_thread(); "
            f"from {__name__} import _worker_cli; _worker_cli(sys.argv[1:])"
        )
        cmd = [sys.executable, "-c", code, *map(str, args)]
    else:
        cmd = [sys.executable, "-m", __name__, "--one-core-worker", *map(str, args)]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=None if one_thread else (lambda: os.sched_setaffinity(0, {core})),
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip()[-2000:] or "failed"}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if "error" not in out["raspa3"]:
        raspa = out["raspa3"] = _raspa_rates(out["raspa3"])
        out["speedup_ours_over_raspa"] = out["ours_moves_per_s"] / raspa["moves_per_s"]
        out["speedup_per_cpu_s_ours_over_raspa"] = (
            out["ours_moves_per_cpu_s"] / raspa["moves_per_cpu_s"]
        )
    return out


def grid_error(direct, grid, n: int = 4000, seed: int = 1) -> dict:
    r"""The grid's framework energy of CO₂ against the direct sum at ``n`` uniform placements.

    Direct: LJ + real space + the framework–molecule Fourier cross term. Reports the largest
    and RMS error where the direct energy is below 0 K (the accessible pores), the RMS
    weighted by the direct Boltzmann factor (RASPA3's grid check), the count of placements
    the grid blocks with a direct energy below ``1e4`` K (should be 0), and the ratio of the
    two Widom averages :math:`\langle e^{-\beta u}\rangle` over the same placements.
    """
    from thermo.materials import gcmc as g

    c, x = g._random_placements(jr.key(seed), direct, 0, n)
    c, x = jax.vmap(lambda a, b: g._wrap(a, b, direct))(c, x)

    def one_direct(ci, xi):
        ds = g._molecule_structure_factor(direct, xi, 0)
        cross = g._fourier_delta(direct, direct.framework_structure_factor, ds)
        cross = cross - g._fourier_delta(direct, jnp.zeros_like(ds), ds)
        return g._framework_energy(direct, xi, ci, 0) + cross

    ud = np.asarray(jax.jit(jax.vmap(one_direct))(c, x))
    ug = np.asarray(jax.jit(jax.vmap(lambda ci, xi: g._framework_energy(grid, xi, ci, 0)))(c, x))
    beta = float(direct.beta)
    free = ud < 0.0
    err = ug - ud
    w = np.exp(-beta * np.minimum(ud, 1e5))
    blocked = ug >= 1e9
    widom = np.mean(np.exp(-beta * np.minimum(ug, 1e5))) / np.mean(w)
    return {
        "n_placements": n,
        "n_accessible": int(free.sum()),
        "max_abs_error_K": float(np.abs(err[free]).max()),
        "rms_error_K": float(np.sqrt(np.mean(err[free] ** 2))),
        "boltzmann_weighted_rms_error_K": float(
            np.sqrt(np.sum(w * np.where(blocked, 0.0, err) ** 2) / np.sum(w))
        ),
        "blocked_below_1e4_K": int(np.sum(blocked & (ud < 1e4))),
        "widom_ratio_grid_over_direct": float(widom),
    }


def main(
    quick: bool = False,
    *,
    steps: int | None = None,
    n_repeats: int | None = None,
    raspa_cycles: int | None = None,
    n_boxes: int = 2,
    n_trials: int = 10,
    grid_spacing: float = 0.1,
    grid_boxes: tuple = (1, 4),
    framework_spacing: float = 0.15,
    n_frameworks: tuple = (1, 2, 4, 8),
    direct: bool = True,
    one_core: bool = True,
) -> dict:
    """Time ours (direct and grid, CBMC and plain, boxes, frameworks) and RASPA3; moves/s."""
    jax.config.update("jax_enable_x64", True)  # benchmark entry point: float64 as the experiment
    cif = shared_materials_path("MFI_SI.cif", required=False)  # the reference input
    if cif is None:
        why = "../shared/data/materials/MFI_SI.cif is absent (not shipped): bench_gcmc not run"
        print(why)
        return {"skipped": why}
    atoms = read_structure(cif)
    steps = steps or (500 if quick else 2000)
    n_repeats = n_repeats or (2 if quick else 3)
    n_eq = 1 if quick else 5
    if quick:
        grid_spacing, framework_spacing, n_frameworks = 0.3, 0.3, (1, 2)
    rates, first, loads, ins_acc, build, rates_cpu = {}, {}, {}, {}, {}, {}

    def record(tag, row):
        rates[tag], first[tag], ins_acc[tag], loads[tag], rates_cpu[tag] = row
        print(f"{tag}: {row[0]:.0f} moves/s, {row[4]:.0f} per CPU-s (first {row[1]:.1f} s)")

    def init(system, b):
        return jax.vmap(lambda _: gcmc_init(system))(jnp.arange(b))

    for k in sorted({1, int(n_trials)}, reverse=True) if direct else ():
        system = _system(atoms, k, None)
        for b in sorted({1, int(n_boxes)}):
            states = init(system, b)
            row = _time_row(gcmc_sample_batched, system, states, b, steps, n_eq, n_repeats)
            record(f"k={k}, boxes={b}", row)
    t0 = time.perf_counter()
    grid_system = _system(atoms, int(n_trials), grid_spacing)
    build[f"MFI h={grid_spacing}"] = time.perf_counter() - t0
    err = grid_error(_system(atoms, int(n_trials), None), grid_system)
    print(f"grid h={grid_spacing} A: {json.dumps(err)}", flush=True)
    for b in grid_boxes:
        states = init(grid_system, b)
        row = _time_row(gcmc_sample_batched, grid_system, states, b, steps, n_eq, n_repeats)
        record(f"grid h={grid_spacing}, k={n_trials}, boxes={b}", row)
        if b > 1:
            shared = _shared_moves(gcmc_sample_batched)
            row = _time_row(shared, grid_system, states, b, steps, n_eq, n_repeats)
            record(f"grid h={grid_spacing}, k={n_trials}, boxes={b}, shared move type", row)
    del grid_system
    systems = []
    for i in range(max(n_frameworks)):
        t0 = time.perf_counter()
        systems.append(_system(_variant(atoms, i), int(n_trials), framework_spacing))
        build[f"framework {i} h={framework_spacing}"] = time.perf_counter() - t0
    for n_f in n_frameworks:
        stacked = gcmc_stack_systems(systems[:n_f])
        states = jax.vmap(gcmc_init)(stacked)
        sample = _shared_moves(gcmc_sample_frameworks)
        row = _time_row(sample, stacked, states, n_f, steps, n_eq, n_repeats)
        record(f"grid h={framework_spacing}, k={n_trials}, frameworks={n_f}, shared move type", row)
    cycles = raspa_cycles or (20 if quick else 500)
    raspa = raspa_gcmc(cif, 0, cycles, 26, 1)
    out = {
        "ours_moves_per_s": rates,
        "ours_moves_per_cpu_s": rates_cpu,
        "ours_insertion_acceptance": ins_acc,
        "ours_accepted_insertions_per_s": {
            t: r * ins_acc[t] * 0.2 for t, r in rates.items()
        },  # insertions are 1/5 of the moves (0.5 of 2.5)
        "ours_first_call_s": first,
        "ours_loading_per_uc_during_timing": loads,
        "grid_build_s": build,
        "grid_error": {f"h={grid_spacing}": err},
        "framework_scales": list(FRAMEWORK_SCALES[: max(n_frameworks)]),
        "steps_per_timed_call": steps,
        "devices": len(jax.devices()),
        "load_average": list(os.getloadavg()),
    }
    if "error" in raspa:
        out["raspa3"] = {"available": False, "note": raspa["error"]}
        print(f"RASPA3 (raspalib) not run: {raspa['error']}")
    else:
        out["raspa3"] = dict(_raspa_rates(raspa), available=True)
        raspa_rate = out["raspa3"]["moves_per_s"]
        raspa_cpu_rate = out["raspa3"]["moves_per_cpu_s"]
        out["speedup_ours_over_raspa"] = {t: r / raspa_rate for t, r in rates.items()}
        out["speedup_per_cpu_s_ours_over_raspa"] = {
            t: r / raspa_cpu_rate for t, r in rates_cpu.items()
        }
    if one_core:
        row = one_core_rows(grid_spacing, int(n_trials), steps, n_repeats, n_eq, cycles)
        out["one_core"] = dict(row, spacing=grid_spacing, n_trials=int(n_trials))
        row = one_core_rows(
            grid_spacing, int(n_trials), steps, n_repeats, n_eq, cycles, one_thread=True
        )
        out["one_thread_pool"] = dict(row, spacing=grid_spacing, n_trials=int(n_trials))
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    if "--one-core-worker" in sys.argv:
        _worker_cli(sys.argv[sys.argv.index("--one-core-worker") + 1 :])
    else:
        main(quick="--quick" in sys.argv)
