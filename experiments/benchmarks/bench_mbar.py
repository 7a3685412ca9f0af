r"""MBAR: :func:`thermo.estimators.mbar` against pymbar 4's default solver, same ``u_kn``.

Cases (harmonic oscillators ``u_k(x) = k_k (x - o_k)^2 / 2``, centres spaced 0.05 apart
and springs from 1 to 3, ``N_k`` exact samples per state, seed 0): K = 50 x N_k = 2000,
K = 200 x N_k = 1000 and K = 500 x N_k = 1000 (``--quick``: K = 20 x 200, K = 50 x 400).

Each implementation runs in its own subprocess (``python -m
experiments.benchmarks.bench_mbar --worker ...``) that builds the same ``u_kn`` (float64
NumPy) and reports:

* ``first_s``: the first call (JIT compilation included, for both: pymbar 4 jits its
  kernels with JAX when JAX is installed, which it is here);
* ``median_s``: the median of ``n_repeats`` further calls; ``compile_s = first - median``;
* ``solve`` (``MBAR(u_kn, N_k)`` / ``mbar(u_kn, N_k)`` up to ``f_k``) and ``total``
  (plus the uncertainties: pymbar's ``compute_free_energy_differences()``, ours computes
  them inside ``mbar``) are timed separately for pymbar; ours always does both;
* ``peak_rss_gb``: the process's peak resident memory (``ru_maxrss``; the honest measure
  for XLA, whose buffers ``tracemalloc`` does not see) and ``data_rss_gb`` the RSS once
  ``u_kn`` is built, before solving;
* ``f_k`` and ``df_k``, from which the parent computes ``max |Delta f_k|`` and the largest
  relative difference of the uncertainties.

Peak memory is fitted as ``a + b K N`` over the cases to estimate the largest ``K N``
that fits in 24 GiB for each. The parent skips a case for an implementation when the
memory that scaling predicts exceeds what the machine has available (the machine is
shared); the JSON then says so.
"""

from __future__ import annotations

import resource
import statistics
import time

import numpy as np

from experiments.benchmarks._timing import (
    free_energy_differences,
    spawn_worker,
    time_repeated,
    worker_cli,
)

__all__ = ["harmonic_u_kn", "main"]

_GIB = 1024**3


def harmonic_u_kn(n_states: int, n_per_state: int, seed: int = 0):
    """``(u_kn, N_k, f_exact)`` for evenly spaced oscillators (float64, state-ordered)."""
    rng = np.random.default_rng(seed)
    centers = 0.25 * np.arange(n_states)
    springs = np.linspace(1.0, 3.0, n_states)
    n_k = np.full(n_states, n_per_state)
    x = (
        centers[:, None] + rng.standard_normal((n_states, n_per_state)) / np.sqrt(springs)[:, None]
    ).ravel()
    u_kn = np.empty((n_states, x.size))
    for k in range(n_states):  # row by row: no (K, N) temporaries
        np.subtract(x, centers[k], out=u_kn[k])
        np.square(u_kn[k], out=u_kn[k])
        u_kn[k] *= 0.5 * springs[k]
    f = -0.5 * np.log(2 * np.pi / springs)
    return u_kn, n_k, f - f[0]


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / _GIB


def _worker(impl: str, n_states: int, n_per_state: int, n_repeats: int) -> dict:
    u_kn, n_k, _ = harmonic_u_kn(n_states, n_per_state)
    data_rss = _rss_gb()
    out: dict = {"impl": impl, "data_rss_gb": data_rss}
    if impl == "ours":
        import jax

        jax.config.update("jax_enable_x64", True)
        from thermo.estimators import mbar

        def run():
            res = mbar(u_kn, n_k)
            jax.block_until_ready(res.df_k)
            return np.asarray(res.f_k), np.asarray(res.df_k)

        first, median, (f_k, df_k) = time_repeated(run, n_repeats)
        out.update(total_first_s=first, total_median_s=median)
        out["accelerator"] = str(jax.devices()[0])
    else:
        import logging

        import jax
        import pymbar
        from pymbar import mbar_solvers

        logging.getLogger("pymbar").setLevel(logging.ERROR)
        solve, total = [], []
        for _ in range(n_repeats + 1):
            t = time.perf_counter()
            # pymbar 4.0.3's JAX solvers broadcast by rank promotion and mix int64 N_k with float64;
            # its calls run under allow/standard promotion (the tests turn both strict)
            with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
                m = pymbar.MBAR(u_kn, n_k)
                t1 = time.perf_counter()
                d = m.compute_free_energy_differences()
            t2 = time.perf_counter()
            solve.append(t1 - t)
            total.append(t2 - t)
        f_k, df_k = np.asarray(m.f_k), np.asarray(d["dDelta_f"][0])
        out.update(
            solve_first_s=solve[0],
            solve_median_s=statistics.median(solve[1:]),
            total_first_s=total[0],
            total_median_s=statistics.median(total[1:]),
            accelerator=(
                "JAX (jitted kernels, "
                + ("x64 CPU" if mbar_solvers.use_jit else "NumPy/SciPy")
                + "), solver protocol "
                + "+".join(p["method"] for p in mbar_solvers.DEFAULT_SOLVER_PROTOCOL)
            ),
            pymbar_version=pymbar.__version__,
        )
    out.update(f_k=f_k.tolist(), df_k=df_k.tolist(), peak_rss_gb=_rss_gb())
    return out


def _spawn(impl: str, n_states: int, n_per_state: int, n_repeats: int) -> dict:
    out = spawn_worker("experiments.benchmarks.bench_mbar", impl, n_states, n_per_state, n_repeats)
    if "error" in out:
        raise RuntimeError(f"{impl} worker failed:\n{out['error']}")
    return out


def _available_gb() -> float:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 / _GIB
    except OSError:
        pass
    return float("inf")


def _fit_memory(points):
    """Least-squares ``peak = a + b * K * N`` (GiB) and the K*N that fits in 24 GiB."""
    if len(points) < 2:
        return None
    kn = np.array([p[0] for p in points], float)
    gb = np.array([p[1] for p in points], float)
    b, a = np.polyfit(kn, gb, 1)
    return {
        "a_gb": a,
        "b_gb_per_kn": b,
        "max_kn_24gib": (24 * _GIB / _GIB - a) / b if b > 0 else None,
    }


def main(quick: bool = False) -> dict:
    """Run every case for both implementations; print a table and return the numbers."""
    cases = [(20, 200), (50, 400)] if quick else [(50, 2000), (200, 1000), (500, 1000)]
    n_repeats = 2 if quick else 3
    rows, mem = [], {"ours": [], "pymbar": []}
    queue = list(cases)
    while queue:
        n_states, n_per = queue.pop(0)
        kn = n_states * n_states * n_per
        row = {"K": n_states, "N_k": n_per, "KN": kn}
        for impl in ("ours", "pymbar"):
            fit = _fit_memory(mem[impl])
            predicted = fit["a_gb"] + fit["b_gb_per_kn"] * kn if fit else 0.0
            if predicted > 0.8 * _available_gb():
                row[impl] = {
                    "skipped": f"predicted peak {predicted:.1f} GiB > 80% of the "
                    f"{_available_gb():.1f} GiB available on this shared machine"
                }
                # Still compare at this K with fewer samples per state.
                if n_per > 200 and (n_states, 200) not in queue:
                    queue.append((n_states, 200))
                continue
            reps = 1 if kn > 1e8 else n_repeats
            row[impl] = _spawn(impl, n_states, n_per, reps)
            mem[impl].append((kn, row[impl]["peak_rss_gb"]))
        ours, ref = row["ours"], row["pymbar"]
        if "f_k" in ours and "f_k" in ref:
            row.update(free_energy_differences(ours, ref))
            for r in (ours, ref):
                del r["f_k"], r["df_k"]
            row["speedup_solve"] = ref["solve_median_s"] / ours["total_median_s"]
            row["speedup_total"] = ref["total_median_s"] / ours["total_median_s"]
            row["memory_ratio"] = ref["peak_rss_gb"] / ours["peak_rss_gb"]
        rows.append(row)
    fits = {impl: _fit_memory(points) for impl, points in mem.items()}

    print(f"{'K x N_k':>12} {'ours s':>8} {'(1st)':>7} {'pymbar solve':>13} {'+unc':>7} "
          f"{'(1st)':>7} {'x solve':>8} {'x total':>8} {'RSS ours':>9} {'RSS pymbar':>11} {'max|df|':>9}")  # fmt: skip
    for r in rows:
        o, p = r["ours"], r["pymbar"]
        if "skipped" in o or "skipped" in p:
            print(
                f"{r['K']:>5} x {r['N_k']:<5} skipped: {o.get('skipped', '')} {p.get('skipped', '')}"
            )
            continue
        print(
            f"{r['K']:>5} x {r['N_k']:<5} {o['total_median_s']:8.2f} {o['total_first_s']:7.2f} "
            f"{p['solve_median_s']:13.2f} {p['total_median_s']:7.2f} {p['total_first_s']:7.2f} "
            f"{r['speedup_solve']:8.1f} {r['speedup_total']:8.1f} {o['peak_rss_gb']:9.2f} "
            f"{p['peak_rss_gb']:11.2f} {r['max_abs_delta_f']:9.1e}"
        )
    for impl, fit in fits.items():
        if fit:
            print(f"{impl}: peak RSS ~ {fit['a_gb']:.2f} + {fit['b_gb_per_kn'] * 1e9:.2f} GiB per 1e9 K*N "
                  f"-> max K*N in 24 GiB ~ {fit['max_kn_24gib']:.3g}")  # fmt: skip
    return {"cases": rows, "memory_fit": fits, "n_repeats": n_repeats, "quick": quick}


if __name__ == "__main__":
    worker_cli(__doc__, _worker, main, limit=2000)
