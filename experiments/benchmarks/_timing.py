"""The benchmarks' shared timers and subprocess-worker plumbing.

Timing conventions (every benchmark): the first call is reported apart (it includes
JIT compilation), and a speed is the median over repeated calls. Peers measured in the
same process are timed *interleaved*, round by round (a, b, a, b, ...), so that load
changes on a shared machine hit both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np

__all__ = [
    "Timing",
    "free_energy_differences",
    "time_interleaved",
    "time_repeated",
    "spawn_worker",
    "worker_cli",
]


class Timing(NamedTuple):
    """One function's timings from :func:`time_interleaved`.

    Attributes:
        compile_s: wall seconds of the first call (compilation included).
        wall_s: ``(n_repeats,)`` wall seconds of each further call.
        cpu_s: ``(n_repeats,)`` process CPU seconds of each further call
            (``time.process_time``, all threads; much less sensitive than wall time to
            other jobs sharing the cores).
        output: the first call's output.
    """

    compile_s: float
    wall_s: np.ndarray
    cpu_s: np.ndarray
    output: Any


def time_interleaved(
    calls: dict[str, tuple[Callable, tuple]], *, n_repeats: int
) -> dict[str, Timing]:
    """Call each ``fn(*args)`` of ``calls = {label: (fn, args)}`` once (compilation), then
    ``n_repeats`` rounds in which each is called once, in turn; every call is waited for
    with ``jax.block_until_ready``. Returns a :class:`Timing` per label."""
    compile_s, outs = {}, {}
    wall = {k: [] for k in calls}
    cpu = {k: [] for k in calls}
    for label, (fn, args) in calls.items():
        t0 = time.perf_counter()
        outs[label] = jax.block_until_ready(fn(*args))
        compile_s[label] = time.perf_counter() - t0
    for _ in range(n_repeats):
        for label, (fn, args) in calls.items():
            t0, c0 = time.perf_counter(), time.process_time()
            jax.block_until_ready(fn(*args))
            wall[label].append(time.perf_counter() - t0)
            cpu[label].append(time.process_time() - c0)
    return {
        k: Timing(compile_s[k], np.asarray(wall[k]), np.asarray(cpu[k]), outs[k]) for k in calls
    }


def time_repeated(fn: Callable[[], Any], n_repeats: int) -> tuple[float, float, Any]:
    """``(first_s, median_s, output)``: the wall time of the first call of ``fn()``, the
    median of ``n_repeats`` further calls, and the last call's output (``fn`` waits for
    its own results)."""
    times = []
    for _ in range(n_repeats + 1):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return times[0], statistics.median(times[1:]), out


def free_energy_differences(result: dict, reference: dict) -> dict[str, float]:
    """``max |f_k - f_k^ref|`` and the largest relative difference of the uncertainties
    ``df_k`` (``k >= 1``; ``df_0 = 0``) of two workers' results."""
    f1, f2 = np.array(result["f_k"]), np.array(reference["f_k"])
    d1, d2 = np.array(result["df_k"]), np.array(reference["df_k"])
    return {
        "max_abs_delta_f": float(np.max(np.abs(f1 - f2))),
        "max_rel_delta_df": float(np.max(np.abs(d1[1:] / d2[1:] - 1))),
    }


def spawn_worker(module: str, impl: str, *args: int) -> dict:
    """Run ``python -m module --worker impl *args`` in a fresh process; its last stdout
    line (JSON) as a dict, or ``{"impl", "error"}`` with the end of its stderr."""
    cmd = [sys.executable, "-m", module, "--worker", impl, *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), check=False)
    if proc.returncode != 0:
        return {"impl": impl, "error": proc.stderr[-3000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def worker_cli(doc: str, worker: Callable[..., dict], main: Callable[[bool], dict], limit: int):
    """The command line of a worker-spawning benchmark: ``--worker IMPL K N_K REPEATS``
    prints ``worker(...)`` as one JSON line; otherwise ``main(--quick)`` is printed
    (the first ``limit`` characters of its JSON)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--worker", nargs=4, metavar=("IMPL", "K", "N_K", "REPEATS"))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.worker:
        impl, k, n, reps = args.worker
        print(json.dumps(worker(impl, int(k), int(n), int(reps))))
    else:
        print(json.dumps(main(args.quick), indent=1, default=float)[:limit])
