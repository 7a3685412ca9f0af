r"""Langevin steps per second on periodic LJ: ours (SDE core BAOAB) vs jax-md ``nvt_langevin``.

Same system in the same run: LJ at :math:`T^* = 1.5, \rho^* = 0.8` from an FCC start,
hard cut at :math:`r_c = 2.5\sigma` through :func:`thermo.materials.lj_neighbor_energy_fn`
with a jax-md neighbour list updated inside the energy function (identical energy
function for both integrators), :math:`dt = 0.005`, :math:`\gamma = 1`. Ours:
:func:`thermo.materials.langevin_kernel` (:func:`thermo.integrate.baoab`) driven by
:func:`thermo.kernel.run`; peer: ``jax_md.simulate.nvt_langevin`` (also BAOAB) in a
``lax.fori_loop``. Compile time is reported separately; steps/s is the median of
``n_repeats`` timed runs, ours and theirs interleaved. N = 500 and N = 4,000 (the
neighbour list makes the larger system O(N)).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax_md import simulate

from experiments.benchmarks._timing import time_interleaved
from thermo.kernel import run
from thermo.materials import (
    fcc_lattice,
    langevin_kernel,
    lj_neighbor_energy_fn,
    neighbor_list,
    periodic_space,
    to_arrays,
)

__all__ = ["main"]


def _system(n_cells, density=0.8, r_cut=2.5):
    pos, box, _ = to_arrays(fcc_lattice(n_cells, density))
    disp, shift = periodic_space(box)
    nbr_fns = neighbor_list(disp, box, r_cut, skin=0.5, capacity_multiplier=1.5)
    nbrs = nbr_fns.allocate(jnp.asarray(pos))
    lj = lj_neighbor_energy_fn(disp, r_cut=r_cut)

    def energy_fn(r):
        return lj(r, nbr_fns.update(r, nbrs))

    return jnp.asarray(pos), shift, energy_fn


def main(
    quick: bool = False,
    *,
    sizes: tuple[int, ...] | None = None,
    n_steps: int | None = None,
    n_repeats: int | None = None,
) -> dict:
    """Benchmark both integrators at N = 500 and N = 4000 (N = 500 only if quick).

    ``sizes`` (FCC cells per side), ``n_steps`` and ``n_repeats`` override the defaults.
    """
    temperature, dt, gamma = 1.5, 0.005, 1.0
    sizes = sizes or ((5,) if quick else (5, 10))  # N = 4 n^3: 500, 4000
    n_steps = n_steps or (20 if quick else 100)
    n_repeats = n_repeats or (2 if quick else 5)
    out = {}
    print(
        f"{'N':>6} {'ours steps/s':>14} {'jax-md steps/s':>15} {'ratio':>7} {'compile ours/jaxmd (s)':>24}"
    )
    for n_cells in sizes:
        pos, shift, energy_fn = _system(n_cells)
        n = pos.shape[0]
        kernel = langevin_kernel(energy_fn, n, temperature=temperature, dt=dt, friction=gamma)
        state = kernel.init(pos)

        def ours(key, state, kernel=kernel):
            return run(key, kernel, state, n_steps, observable_fn=None)[0].position

        init_fn, apply_fn = simulate.nvt_langevin(energy_fn, shift, dt, temperature, gamma)
        jm_state = init_fn(jr.key(0), pos, mass=1.0)

        def theirs(state, apply_fn=apply_fn):
            return jax.lax.fori_loop(0, n_steps, lambda i, s: apply_fn(s), state).position

        timed = time_interleaved(
            {"ours": (jax.jit(ours), (jr.key(1), state)), "jax_md": (jax.jit(theirs), (jm_state,))},
            n_repeats=n_repeats,
        )
        c_ours, c_theirs = timed["ours"].compile_s, timed["jax_md"].compile_s
        t_ours, t_theirs = (float(np.median(timed[k].wall_s)) for k in ("ours", "jax_md"))
        row = {
            "n_particles": n,
            "ours_steps_per_s": n_steps / t_ours,
            "jax_md_steps_per_s": n_steps / t_theirs,
            "ratio_ours_over_jax_md": t_theirs / t_ours,
            "compile_s_ours": c_ours,
            "compile_s_jax_md": c_theirs,
            "n_steps": n_steps,
            "dtype": str(pos.dtype),
        }
        out[f"N={n}"] = row
        print(
            f"{n:6d} {row['ours_steps_per_s']:14.1f} {row['jax_md_steps_per_s']:15.1f} "
            f"{row['ratio_ours_over_jax_md']:7.2f} {c_ours:11.1f} / {c_theirs:.1f}"
        )
    return out


if __name__ == "__main__":
    import sys

    main(quick="--quick" in sys.argv)
