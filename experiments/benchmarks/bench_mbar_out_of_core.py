r"""Out-of-core MBAR: K = 300 states x N = 1e7 samples (24 GB of float64) in bounded memory.

One command (``python -m experiments.benchmarks mbar_out_of_core``, or this module with
its options) generates harmonic-oscillator data with exact free energies, writes
``u_kn`` to a ``.npy`` file block by block, solves it with
:func:`thermo.estimators.mbar_out_of_core` (what :func:`thermo.estimators.mbar` calls
for a memory-mapped input) in a fresh subprocess, and reports:

* ``solve_s`` (wall time of the solve, uncertainties included), ``n_passes`` (full
  passes over the file) and ``pass_s`` (each pass);
* ``peak_rss_gb``: the solving process's peak resident memory, ``ru_maxrss`` and
  ``VmHWM`` of ``/proc/self/status`` (file pages are read with ``pread``, so the page
  cache does not count: this is the solver's own memory), against ``data_gb``;
* ``blas_threads`` (default 1: on this machine, shared by several jobs, busy-waiting
  BLAS threads slow the Gram matrix down several-fold) and the load average;
* ``max_abs_z``: ``max_k |f_k - f_k^exact| / df_k`` (the exact answer, in units of MBAR's
  own standard error; ``within_4_sigma`` says whether it is below 4) and ``mean_z2``.

Data (seed 0): ``u_k(x) = k_k (x - o_k)^2 / 2`` with centres ``o_k = 0.25 k`` and springs
``k_k`` from 1 to 3, ``N_k`` exact draws from state k (the N samples split as evenly as
possible), so that ``f_k - f_0 = \log(k_k / k_0) / 2`` exactly. The file goes to
``--workdir`` (default ``results/mbar_out_of_core/``) and is deleted at the end unless
``--keep``; a kept file with matching parameters is reused by the next run (the
generation is then skipped). ``--in-memory`` (default with ``--quick``, K = 20 x N =
20,000) adds the peer: the in-memory :func:`~thermo.estimators.mbar` on the same data, in
the same process after the streamed solve (``in_memory_s``, ``max_abs_diff_in_memory``;
the peak RSS above is read before it runs).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["generate", "main", "solve"]

#: K = 300 x N = 1e7 writes a 24 GB float64 file: run it by name or with --all.
IN_DEFAULT_RUN = False

_GIB = 1024**3
_SEED = 0


def _params(n_states: int, n_samples: int):
    centers = 0.25 * np.arange(n_states)
    springs = np.linspace(1.0, 3.0, n_states)
    n_k = np.full(n_states, n_samples // n_states)
    n_k[: n_samples % n_states] += 1
    f = 0.5 * np.log(springs / springs[0])  # f_k = -log sqrt(2 pi / k_k), relative to f_0
    return centers, springs, n_k, f


def generate(path: Path, n_states: int, n_samples: int, seed: int = _SEED) -> dict:
    """Write ``u_kn`` ``(K, N)`` float64 to the ``.npy`` file ``path`` one row at a time
    (memory: two ``(N,)`` vectors); returns ``{"N_k", "f_exact", "generate_s"}``."""
    centers, springs, n_k, f = _params(n_states, n_samples)
    meta_path = path.with_suffix(".json")
    meta = {"n_states": n_states, "n_samples": n_samples, "seed": seed, "complete": True}
    out = {"N_k": n_k, "f_exact": f, "generate_s": 0.0}
    if path.exists() and meta_path.exists() and json.loads(meta_path.read_text()) == meta:
        return out  # a kept file of the same data: reuse it
    need = n_states * n_samples * 8
    free = shutil.disk_usage(path.parent).free
    if need > free - 2 * _GIB:
        raise RuntimeError(
            f"{path.parent} has {free / 1e9:.1f} GB free; u_kn needs {need / 1e9:.1f} GB "
            "(and 2 GiB of headroom)"
        )
    meta_path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    own = np.repeat(np.arange(n_states), n_k)
    x = centers[own] + rng.standard_normal(n_samples) / np.sqrt(springs[own])
    del own
    row = np.empty(n_samples)
    header = {"descr": "<f8", "fortran_order": False, "shape": (n_states, n_samples)}
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_2_0(fh, header)
        for k in range(n_states):
            np.subtract(x, centers[k], out=row)
            np.square(row, out=row)
            row *= 0.5 * springs[k]
            fh.write(row.data)
        fh.flush()
        os.fsync(fh.fileno())
    meta_path.write_text(json.dumps(meta))
    out["generate_s"] = time.perf_counter() - t0
    return out


def _peak_rss_gb() -> dict:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / _GIB
    hwm = None
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024 / _GIB
    except OSError:
        pass
    return {"ru_maxrss_gb": rss, "vmhwm_gb": hwm}


def solve(path: str, n_k, *, in_memory: bool = False) -> dict:
    """Solve the file out of core (and, when ``in_memory``, also in memory) in this
    process; returns timings, ``f_k``, ``df_k`` and the peak RSS."""
    import jax

    jax.config.update("jax_enable_x64", True)
    from thermo.estimators import mbar

    rss_start = _peak_rss_gb()
    t0 = time.perf_counter()
    res = mbar(np.load(path, mmap_mode="r"), n_k)  # a memmap: streamed
    f_k, df_k = np.asarray(res.f_k), np.asarray(res.df_k)
    out = {
        "solve_s": time.perf_counter() - t0,
        "n_passes": res.n_passes,
        "pass_s": res.pass_seconds,
        "n_iterations": int(res.n_iterations),
        "overlap": float(res.overlap),
        "f_k": f_k.tolist(),
        "df_k": df_k.tolist(),
        "rss_at_start": rss_start,
        "peak_rss": _peak_rss_gb(),
    }
    if in_memory:
        t0 = time.perf_counter()
        ref = mbar(np.load(path), n_k)
        out["in_memory_s"] = time.perf_counter() - t0
        out["max_abs_diff_in_memory"] = float(np.max(np.abs(np.asarray(ref.f_k) - f_k)))
        out["peak_rss_with_in_memory"] = _peak_rss_gb()
    return out


def run(
    n_states: int,
    n_samples: int,
    workdir: Path,
    *,
    keep: bool = False,
    in_memory: bool = False,
    blas_threads: int = 1,
) -> dict:
    """Generate, solve in a subprocess, check against the exact answer, clean up."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"u_kn_K{n_states}_N{n_samples}.npy"
    gen = generate(path, n_states, n_samples)
    cmd = [sys.executable, "-m", "experiments.benchmarks.bench_mbar_out_of_core", "--worker"]
    cmd += [str(path), str(n_states), str(n_samples)] + (["--in-memory"] if in_memory else [])
    env = dict(os.environ)
    if blas_threads:  # busy-waiting BLAS threads on an oversubscribed machine cost more
        env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = str(blas_threads)
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"solver subprocess failed (exit {proc.returncode})")
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        if not keep:
            path.unlink(missing_ok=True)
            path.with_suffix(".json").unlink(missing_ok=True)
    f_k, df_k = np.array(out.pop("f_k")), np.array(out.pop("df_k"))
    z = (f_k[1:] - gen["f_exact"][1:]) / df_k[1:]
    peak = out["peak_rss"]
    result = {
        "K": n_states,
        "N": n_samples,
        "data_gb": n_states * n_samples * 8 / 1e9,
        "generate_s": gen["generate_s"],
        **out,
        "peak_rss_gb": max(v for v in peak.values() if v is not None),
        "max_abs_z": float(np.max(np.abs(z))),
        "mean_z2": float(np.mean(z**2)),
        "within_4_sigma": bool(np.max(np.abs(z)) < 4.0),
        "max_abs_error": float(np.max(np.abs(f_k - gen["f_exact"]))),
        "kept_file": str(path) if keep else None,
        "blas_threads": blas_threads or "default",
        "load_average": os.getloadavg(),
    }
    print(
        f"K = {n_states} x N = {n_samples:.3g} ({result['data_gb']:.1f} GB): solve "
        f"{result['solve_s']:.1f} s in {result['n_passes']} passes, peak RSS "
        f"{result['peak_rss_gb']:.2f} GiB, max |f - f_exact| / sigma = {result['max_abs_z']:.2f}"
        + (
            f", max |f - f_in_memory| = {result['max_abs_diff_in_memory']:.1e}" if in_memory else ""
        ),
        flush=True,
    )
    return result


def main(
    quick: bool = False,
    *,
    n_states: int | None = None,
    n_samples: int | None = None,
    workdir: str | Path | None = None,
    keep: bool = False,
    blas_threads: int = 1,
    peer: bool | None = None,
) -> dict:
    """The benchmark: K = 300 x N = 1e7 (``quick``: 20 x 2e4, with the in-memory peer)."""
    k = n_states or (20 if quick else 300)
    n = n_samples or (20_000 if quick else 10_000_000)
    wd = Path(workdir) if workdir else Path("results") / "mbar_out_of_core"
    in_memory = quick if peer is None else peer
    return run(k, n, wd, keep=keep, in_memory=in_memory, blas_threads=blas_threads)


def _cli(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="K = 20 x N = 20,000")
    parser.add_argument("--n-states", type=int, default=None, help="K (default 300)")
    parser.add_argument("--n-samples", type=int, default=None, help="N (default 1e7)")
    parser.add_argument("--workdir", default=None, help="where u_kn is written")
    parser.add_argument("--keep", action="store_true", help="keep (and reuse) the data file")
    parser.add_argument("--json", default=None, help="write the result here")
    parser.add_argument(
        "--blas-threads", type=int, default=1, help="BLAS threads of the solver (0: default)"
    )
    parser.add_argument("--worker", nargs=3, metavar=("PATH", "K", "N"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--in-memory", action="store_true", help="also solve in memory (the peer; needs RAM)"
    )
    args = parser.parse_args(argv)
    if args.worker:
        import logging

        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
        path, k, n = args.worker
        n_k = _params(int(k), int(n))[2]
        print(json.dumps(solve(path, n_k, in_memory=args.in_memory)))
        return 0
    result = main(
        args.quick,
        n_states=args.n_states,
        n_samples=args.n_samples,
        workdir=args.workdir,
        keep=args.keep,
        blas_threads=args.blas_threads,
        peer=args.in_memory or None,
    )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(_cli())
