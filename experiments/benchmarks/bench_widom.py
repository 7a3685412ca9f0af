r"""Widom insertions per second: methane in MFI (2×2×2 cells), ours vs a plain NumPy loop.

RASPA3's PyPI package ``raspalib`` (3.1.0, cp311 wheel) exists, but the project may not
install it, so the peer is a plain NumPy implementation of the same model run in the
same process: a Python loop over insertions, each vectorised over the 2,304 framework
atoms with the same minimum-image convention. Both evaluate identical random positions;
their energies are checked to agree before timing. Ours is
:func:`thermo.materials.widom` (vmapped chunks, blocks sharded over devices); its
compile time is reported separately and its rate is the median of ``n_repeats`` runs.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from thermo.materials import framework_energy_fn, load_force_field, widom
from thermo.materials.structures import read_structure

__all__ = ["main", "numpy_widom_energies"]


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


def main(quick: bool = False) -> dict:
    """Time both; returns insertions/s, their ratio, compile time and an agreement check."""
    atoms = read_structure("MFI_SI.cif")
    n_numpy = 200 if quick else 2000
    n_ours = 20_480 if quick else 409_600
    n_repeats = 2 if quick else 3

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
        "raspalib_on_pypi": "raspalib 3.1.0 exists (cp311 manylinux wheel); not installed per project rules",
    }
    print(
        f"ours {ours_rate:,.0f} insertions/s | numpy loop {numpy_rate:,.0f} insertions/s | "
        f"speedup {out['speedup']:.1f}x | energies agree: {out['energies_agree']} "
        f"(max rel diff {max_rel:.1e}) | first call {first:.1f} s"
    )
    return out


if __name__ == "__main__":
    import sys

    main(quick="--quick" in sys.argv)
