r"""MBAR size sweep: :func:`thermo.estimators.mbar` against pymbar 4 and FastMBAR, first
call and repeat, from K = 2 x N_k = 50 to K = 1000 x N_k = 100.

Data: :func:`experiments.benchmarks.bench_mbar.harmonic_u_kn` (harmonic oscillators,
centres 0.25 apart, springs 1 to 3, exact samples, seed 0), float64 NumPy. Grid (K x N_k):
2x50, 5x200, 20x200, 50x200, 100x100, 200x100, 500x100, 1000x100 (``--quick``: 2x50,
5x200).

Every (implementation, size) runs in a fresh subprocess (``python -m
experiments.benchmarks.bench_mbar_sweep --worker IMPL K N_K REPEATS``), so ``first_s``
includes everything a new process pays on its first call (JIT compilation for ours and
for pymbar, which jits its kernels with JAX when JAX is installed; torch's start-up
kernels for FastMBAR), but not the imports. ``repeat_s`` is the median of the further
calls on the same data. Each call computes the free energies and their uncertainties
(pymbar: ``MBAR(...)`` + ``compute_free_energy_differences()``; FastMBAR:
``FastMBAR(..., cuda=False)`` + ``F_std``, its Newton solver on CPU torch).

Ours is timed on both of its paths, forced through the private dispatch threshold:
``ours_numpy`` (NumPy/SciPy, nothing compiled) and ``ours_jax`` (jitted, shape-bucketed);
``ours`` is the path that :func:`mbar` dispatches to at that size (``K N <=
_NUMPY_MAX_ELEMENTS``: NumPy), so the two forced columns show the crossover.
``max_abs_delta_f`` / ``max_rel_delta_df`` compare each of ours with pymbar.

Writes ``results/benchmarks/mbar_sweep.png`` (time vs K N, log-log); the runner writes the
JSON.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from experiments._report import save_figure
from experiments.benchmarks._timing import (
    free_energy_differences,
    spawn_worker,
    time_repeated,
    worker_cli,
)

__all__ = ["main"]

#: About half an hour on 2 cores (three implementations, eight sizes, fresh processes):
#: run it by name or with --all.
IN_DEFAULT_RUN = False

_FULL = [(2, 50), (5, 200), (20, 200), (50, 200), (100, 100), (200, 100), (500, 100), (1000, 100)]
_QUICK = [(2, 50), (5, 200)]
_IMPLS = ("ours_numpy", "ours_jax", "pymbar", "fastmbar")
#: Largest K N for which the NumPy path is also timed (above it, it is only slower: it
#: rebuilds the full K x K Gram matrix every Newton iteration).
_NUMPY_TIMED_MAX = 3e7


def _worker(impl: str, n_states: int, n_per_state: int, n_repeats: int) -> dict:
    from experiments.benchmarks.bench_mbar import harmonic_u_kn

    u_kn, n_k, _ = harmonic_u_kn(n_states, n_per_state)
    if impl.startswith("ours"):
        import jax

        jax.config.update("jax_enable_x64", True)
        from thermo.estimators import _mbar, mbar

        _mbar._NUMPY_MAX_ELEMENTS = 10**18 if impl == "ours_numpy" else 0

        def run():
            res = mbar(u_kn, n_k)
            jax.block_until_ready(res.df_k)
            return np.asarray(res.f_k), np.asarray(res.df_k)

    elif impl == "pymbar":
        import logging

        import pymbar

        logging.getLogger("pymbar").setLevel(logging.ERROR)

        import jax

        # pymbar 4.0.3's JAX solvers broadcast by rank promotion and mix int64 N_k with float64;
        # its calls run under allow/standard promotion (the tests turn both strict)
        def run():
            with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
                m = pymbar.MBAR(u_kn, n_k)
                d = m.compute_free_energy_differences()
            return np.asarray(m.f_k), np.asarray(d["dDelta_f"][0])

    elif impl == "fastmbar":
        from FastMBAR import FastMBAR

        def run():
            fm = FastMBAR(energy=u_kn, num_conf=n_k, cuda=False, verbose=False)
            f = np.asarray(fm.F)
            return f - f[0], np.asarray(fm.DeltaF_std)[0]

    else:
        raise ValueError(f"unknown implementation {impl!r}")
    first, repeat, (f_k, df_k) = time_repeated(run, n_repeats)
    return {
        "impl": impl,
        "first_s": first,
        "repeat_s": repeat,
        "f_k": f_k.tolist(),
        "df_k": df_k.tolist(),
    }


def _spawn(impl: str, n_states: int, n_per_state: int, n_repeats: int) -> dict:
    return spawn_worker(
        "experiments.benchmarks.bench_mbar_sweep", impl, n_states, n_per_state, n_repeats
    )


def _figure(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    styles = {
        "ours": ("k", "o", "ours (dispatched)"),
        "ours_numpy": ("tab:blue", "^", "ours, NumPy path"),
        "ours_jax": ("tab:green", "v", "ours, JAX path"),
        "pymbar": ("tab:red", "s", "pymbar 4"),
        "fastmbar": ("tab:purple", "D", "FastMBAR (CPU torch)"),
    }
    for ax, key, title in zip(
        axes, ("first_s", "repeat_s"), ("first call", "repeat call"), strict=True
    ):
        for impl, (color, marker, label) in styles.items():
            pts = [(r["KN"], r[impl][key]) for r in rows if key in r.get(impl, {})]
            if pts:
                x, y = zip(*pts, strict=True)
                ls = "-" if impl in ("ours", "pymbar", "fastmbar") else ":"
                ax.loglog(
                    x,
                    y,
                    ls,
                    color=color,
                    marker=marker,
                    label=label,
                    lw=1.5 if impl == "ours" else 1,
                )
        ax.axhline(0.5, color="grey", lw=0.5, ls="--")
        ax.set_xlabel("K x N (entries of u_kn)")
        ax.set_title(f"MBAR, {title} (f_k and uncertainties)")
    axes[0].set_ylabel("seconds")
    axes[0].legend(fontsize=8)
    save_figure(fig, path, dpi=120)


def main(quick: bool = False, out: str | Path = "results") -> dict:
    """Run the sweep; print the table, save the figure, return the numbers."""
    from thermo.estimators._mbar import _NUMPY_MAX_ELEMENTS

    cases = _QUICK if quick else _FULL
    rows = []
    for n_states, n_per in cases:
        kn = n_states * n_states * n_per
        reps = 3 if kn <= 1e7 else 1
        row: dict = {"K": n_states, "N_k": n_per, "KN": kn}
        for impl in _IMPLS:
            if impl == "ours_numpy" and kn > _NUMPY_TIMED_MAX:
                row[impl] = {"skipped": f"K N > {_NUMPY_TIMED_MAX:g} (dispatched to JAX)"}
                continue
            print(f"  {n_states} x {n_per}: {impl}", flush=True)
            row[impl] = _spawn(impl, n_states, n_per, reps)
        row["ours_path"] = "numpy" if kn <= _NUMPY_MAX_ELEMENTS else "jax"
        row["ours"] = dict(row["ours_" + row["ours_path"]])
        ref = row["pymbar"]
        for impl in ("ours", "ours_numpy", "ours_jax", "fastmbar"):
            r = row[impl]
            if "f_k" in r and "f_k" in ref:
                r.update(free_energy_differences(r, ref))
        for impl in _IMPLS + ("ours",):
            row[impl].pop("f_k", None)
            row[impl].pop("df_k", None)
        o = row["ours"]
        if "first_s" in o and "first_s" in ref:
            row["pymbar_over_ours_first"] = ref["first_s"] / o["first_s"]
            row["pymbar_over_ours_repeat"] = ref["repeat_s"] / o["repeat_s"]
        rows.append(row)

    def cell(r, impl, key):
        v = r.get(impl, {})
        return f"{v[key]:.3g}" if key in v else ("skip" if "skipped" in v else "err")

    header = (
        "| K | N_k | K N | path | ours first | ours repeat | NumPy first | JAX first | JAX repeat "
        "| pymbar first | pymbar repeat | FastMBAR first | FastMBAR repeat | max abs df vs pymbar |"
    )
    print(header)
    print("|" + " --- |" * (header.count("|") - 1))
    for r in rows:
        print(
            f"| {r['K']} | {r['N_k']} | {r['KN']:.2g} | {r['ours_path']} "
            f"| {cell(r, 'ours', 'first_s')} | {cell(r, 'ours', 'repeat_s')} "
            f"| {cell(r, 'ours_numpy', 'first_s')} | {cell(r, 'ours_jax', 'first_s')} "
            f"| {cell(r, 'ours_jax', 'repeat_s')} | {cell(r, 'pymbar', 'first_s')} "
            f"| {cell(r, 'pymbar', 'repeat_s')} | {cell(r, 'fastmbar', 'first_s')} "
            f"| {cell(r, 'fastmbar', 'repeat_s')} | {cell(r, 'ours', 'max_abs_delta_f')} |"
        )
    figure = Path(out) / "benchmarks" / ("mbar_sweep_quick.png" if quick else "mbar_sweep.png")
    _figure(rows, figure)
    return {
        "cases": rows,
        "figure": str(figure),
        "numpy_max_elements": _NUMPY_MAX_ELEMENTS,
        "quick": quick,
    }


if __name__ == "__main__":
    worker_cli(__doc__, _worker, main, limit=3000)
