r"""Widom insertions per second: methane in MFI (2×2×2 cells), ours vs RASPA3 and NumPy.

Peers, timed in the same run as ours:

* **RASPA3** through its PyPI package ``raspalib`` (3.1.0, a cp311 wheel), which the
  project does not depend on (it is in the ``bench`` extra): this interpreter when it
  imports ``raspalib``, else the one ``$RASPA_PYTHON`` names, driven in a subprocess by the script
  :data:`RASPA_SCRIPT` (the model of RASPA3's example 7: TraPPE-zeo O/Si + TraPPE CH4,
  Lorentz–Berthelot, shifted at 12 Å, no tail, no charges, 2×2×2 cells, 300 K, the
  framework given atom by atom in P1). Its rate is Widom insertions over the wall time
  of ``MonteCarlo.run()`` (one insertion per MC step, 20 steps per cycle), median of
  ``n_repeats`` runs; it also returns :math:`\langle W\rangle = e^{-\beta\mu_{\rm ex}}`.
  When the interpreter or ``raspalib`` is missing, the row says so and the benchmark
  goes on.
* a plain **NumPy** loop over insertions, each vectorised over the 2,304 framework atoms
  with the same minimum-image convention; both evaluate identical random positions and
  their energies are checked to agree before timing.

Ours is :func:`thermo.materials.widom` (vmapped chunks, blocks sharded over devices);
its compile time is reported separately and its rate is the median of ``n_repeats`` runs.
"""

from __future__ import annotations

import json
import os
import tempfile
import time

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from experiments._materials import run_raspa_script
from thermo.materials import framework_energy_fn, load_force_field, widom
from thermo.materials.structures import read_structure, shared_materials_path

__all__ = ["RASPA_SCRIPT", "main", "numpy_widom_energies", "raspa_widom"]

#: Run by the raspalib interpreter: argv = structure JSON, cycles, seed; prints JSON.
RASPA_SCRIPT = r"""
import json, sys, time, math
import raspalib as r
d = json.load(open(sys.argv[1])); cycles = int(sys.argv[2]); seed = int(sys.argv[3])
ff = r.ForceField(
    pseudo_atoms=[r.PseudoAtom("O", True, 15.9994, 0.0, 0.0, 8),
                  r.PseudoAtom("Si", True, 28.0855, 0.0, 0.0, 14),
                  r.PseudoAtom("CH4", False, 16.04246, 0.0, 0.0, 6)],
    parameters=[r.VDWParameters(*d["lj"]["O"]), r.VDWParameters(*d["lj"]["Si"]),
                r.VDWParameters(*d["lj"]["CH4"])],
    mixing_rule=r.ForceField.MixingRule.LORENTZ_BERTHELOT, cutoff_framework_vdw=d["r_cut"],
    cutoff_molecule_vdw=d["r_cut"], shifted=True, tail_corrections=False, use_charge=False)
box = r.SimulationBox(*d["cell"][:3])
types = {"O": 0, "Si": 1}
atoms = [r.Atom(tuple(f), 0.0, 1.0, 0, types[s], 0, 0, True)
         for f, s in zip(d["frac"], d["symbols"])]
fw = r.Framework(ff, "MFI_SI", box, 1, atoms, [2, 2, 2])
ch4 = r.Atom((0.0, 0.0, 0.0), 0.0, 1.0, 0, 2, 0, 0, False)
comp = r.Component(ff, "methane", 190.564, 4599200.0, 0.01142, [ch4],
                   particle_probabilities=r.MCMoveProbabilities(widom_probability=1.0))
system = r.System(ff, None, False, d["temperature"], None, 0.29, fw, [comp], [], [0], 5)
mc = r.MonteCarlo(number_of_cycles=cycles, number_of_initialization_cycles=0,
                  print_every=10**9, systems=[system], random_seed=seed)
t0 = time.perf_counter(); mc.run(); wall = time.perf_counter() - t0
mu, mu_err = mc.systems[0].components[0].average_rosenbluth_weights.chemical_potential_result(
    d["temperature"])
stats = str(mc.systems[0].components[0].mc_moves_statistics)
n = [int(float(l.split()[-1])) for l in stats.splitlines() if "Widom" in l and "total:" in l][0]
w = math.exp(-mu.excess / d["temperature"])
print(json.dumps({"wall_s": wall, "n_insertions": n, "weight": w,
                  "weight_std_err": w * mu_err.excess / d["temperature"]}))
"""


def numpy_widom_energies(atoms, frac_points, unit_cells=(2, 2, 2)):
    """Plain NumPy loop: LJ (LB, shifted at r_c) energy of CH4 at each fractional point."""
    ff = load_force_field()
    rc = ff["r_cut"]
    big = atoms.repeat(unit_cells)
    sup = big.cell.array.T
    inv = np.linalg.inv(sup)
    frame_frac = (inv @ big.get_positions().T).T
    ch4 = ff["atoms"]["CH4"]
    sym = big.get_chemical_symbols()
    eps = np.array([np.sqrt(ff["atoms"][s]["epsilon"] * ch4["epsilon"]) for s in sym])
    sig = np.array([0.5 * (ff["atoms"][s]["sigma"] + ch4["sigma"]) for s in sym])
    u_shift = 4 * eps * ((sig / rc) ** 12 - (sig / rc) ** 6)
    out = np.empty(len(frac_points))
    for k, f in enumerate(frac_points):
        d = f - frame_frac
        d -= np.round(d)
        r = np.linalg.norm(d @ sup.T, axis=1)
        m = r < rc
        sr6 = (sig[m] / r[m]) ** 6
        out[k] = np.sum(4 * eps[m] * (sr6 * sr6 - sr6) - u_shift[m])
    return out


def raspa_widom(atoms, cycles: int, seed: int, python: str | None = None) -> dict:
    """Run :data:`RASPA_SCRIPT` under the raspalib interpreter; ``{"error": ...}`` if absent."""
    ff = load_force_field()
    data = {
        "cell": atoms.cell.cellpar().tolist(),
        "frac": atoms.get_scaled_positions().tolist(),
        "symbols": atoms.get_chemical_symbols(),
        "lj": {k: [v["epsilon"], v["sigma"]] for k, v in ff["atoms"].items()},
        "r_cut": ff["r_cut"],
        "temperature": 300.0,
    }
    if not atoms.cell.orthorhombic:
        return {"error": "the RASPA driver here handles orthorhombic cells only"}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(data, f)
    try:
        return run_raspa_script(RASPA_SCRIPT, f.name, cycles, seed, python=python, timeout=900)
    finally:
        os.unlink(f.name)


def main(
    quick: bool = False,
    *,
    n_ours: int | None = None,
    raspa_cycles: int | None = None,
    n_repeats: int | None = None,
) -> dict:
    """Time all three; returns insertions/s, ratios, compile time and an agreement check.

    ``n_ours`` (insertions per timed call), ``raspa_cycles`` (20 insertions each) and
    ``n_repeats`` override the defaults.
    """
    # the reference input ../shared/data/materials/MFI_SI.cif (not shipped; raises if absent)
    atoms = read_structure(shared_materials_path("MFI_SI.cif"))
    n_numpy = 200 if quick else 2000
    n_ours = n_ours or (20_480 if quick else 409_600)
    n_repeats = n_repeats or (2 if quick else 3)

    # Agreement on identical points first.
    fn, info = framework_energy_fn(atoms)
    pts = np.random.default_rng(0).uniform(size=(64, 3))
    e_ours = np.asarray(jax.jit(jax.vmap(lambda f: fn(f, jnp.eye(3))))(jnp.asarray(pts)))
    e_np = numpy_widom_energies(atoms, pts)
    e_np = np.minimum(e_np, 1e10)  # ours clamps overlaps at 1e10 K (weight 0 either way)
    rel = np.abs(e_ours - e_np) / np.maximum(1.0, np.abs(e_np))
    ok = rel <= 1e-3  # float32 summation order
    max_rel = float(np.max(rel))

    t0 = time.perf_counter()
    numpy_widom_energies(atoms, np.random.default_rng(1).uniform(size=(n_numpy, 3)))
    numpy_rate = n_numpy / (time.perf_counter() - t0)

    kw = dict(n_insertions=n_ours, n_blocks=10, chunk_size=2048 if not quick else 512)
    t0 = time.perf_counter()
    widom(jr.key(0), atoms, **kw)
    first = time.perf_counter() - t0
    times = []
    for i in range(n_repeats):
        t0 = time.perf_counter()
        widom(jr.key(i + 1), atoms, **kw)
        times.append(time.perf_counter() - t0)
    ours_rate = n_ours / float(np.median(times))

    cycles = raspa_cycles or (100 if quick else 2500)  # 20 insertions per cycle
    raspa_runs = [raspa_widom(atoms, cycles, seed) for seed in range(1, n_repeats + 1)]
    if "error" in raspa_runs[0]:
        raspa = {"available": False, "note": raspa_runs[0]["error"]}
        print(f"RASPA3 (raspalib) not run: {raspa['note']}")
    else:
        rates = [r["n_insertions"] / r["wall_s"] for r in raspa_runs]
        raspa = {
            "available": True,
            "insertions_per_s": float(np.median(rates)),
            "n_insertions": raspa_runs[0]["n_insertions"],
            "weight": raspa_runs[0]["weight"],
            "weight_std_err": raspa_runs[0]["weight_std_err"],
            "speedup_ours_over_raspa": ours_rate / float(np.median(rates)),
        }
    out = {
        "n_framework_atoms": 8 * len(atoms),
        "ours_insertions_per_s": ours_rate,
        "numpy_insertions_per_s": numpy_rate,
        "speedup": ours_rate / numpy_rate,
        "ours_first_call_s": first,
        "energies_agree": bool(np.all(ok)),
        "max_relative_energy_difference": max_rel,
        "devices": len(jax.devices()),
        "dtype": str(e_ours.dtype),
        "raspa3": raspa,
    }
    print(
        f"ours {ours_rate:,.0f} insertions/s | numpy loop {numpy_rate:,.0f} insertions/s | "
        f"speedup {out['speedup']:.1f}x | energies agree: {out['energies_agree']} "
        f"(max rel diff {max_rel:.1e}) | first call {first:.1f} s"
    )
    if raspa["available"]:
        print(
            f"RASPA3 (raspalib) {raspa['insertions_per_s']:,.0f} insertions/s | ours / RASPA3 "
            f"{raspa['speedup_ours_over_raspa']:.2f}x | RASPA3 <W> = {raspa['weight']:.2f} +- "
            f"{raspa['weight_std_err']:.2f} ({raspa['n_insertions']} insertions)"
        )
    return out


if __name__ == "__main__":
    import sys

    main(quick="--quick" in sys.argv)
