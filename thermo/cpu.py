r"""XLA's CPU thread pool, for samplers made of many small kernels.

XLA's CPU client runs its kernels on a pool with one thread per core it may use, sized
from the process's CPU affinity when the client is made. A Monte Carlo move (a GCMC step,
say) is a chain of small kernels; across that pool they are handed between cores, which
costs more than it parallelises. Measured on a 2-core machine: CO₂ GCMC in MFI (k = 10,
grid 0.3 Å, one box) ran 2,940 moves/s and 1,870 per CPU-second in a default process,
4,295 and 4,294 in one whose client was made with a one-thread pool (the scratch timing of
``bench_gcmc``'s 1-box row, 2026-12-07).

:func:`use_one_cpu_thread` makes the client that way without restricting the process: it
limits the affinity to one core, makes the CPU client, and restores the affinity, so
Python threads, subprocesses and other libraries keep every core. It must run before the
first JAX computation of the process. For large kernels (a network's training step) the
default pool is the better one.
"""

from __future__ import annotations

import os

__all__ = ["one_cpu_thread_pool", "use_one_cpu_thread"]

_ONE_THREAD = False


def _backends_initialized() -> bool:
    try:
        from jax._src import xla_bridge
    except ImportError:  # pragma: no cover - a JAX without the private module
        return False
    check = getattr(xla_bridge, "backends_are_initialized", None)
    return bool(check()) if callable(check) else False


def use_one_cpu_thread() -> bool:
    """Make JAX's CPU client with a one-thread pool (module docstring).

    Returns:
        ``True`` once the pool has one thread; ``False`` where the platform cannot set the
        CPU affinity (``os.sched_setaffinity``), leaving the default pool.

    Raises:
        RuntimeError: JAX's backends already exist (a JAX computation has run), so the pool
            can no longer change; call this first thing in the process.
    """
    global _ONE_THREAD
    if _ONE_THREAD:
        return True
    if _backends_initialized():
        raise RuntimeError(
            "use_one_cpu_thread: JAX's backends are already initialised, so XLA's CPU "
            "thread pool is fixed; call it before the first JAX computation of the process"
        )
    if not (hasattr(os, "sched_getaffinity") and hasattr(os, "sched_setaffinity")):
        return False
    import jax

    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})
    try:
        jax.devices("cpu")  # the CPU client and its pool are made here
    finally:
        os.sched_setaffinity(0, cores)
    _ONE_THREAD = True
    return True


def one_cpu_thread_pool() -> bool:
    """Whether XLA's CPU pool has one thread: made by :func:`use_one_cpu_thread`, or the
    process was restricted to one core (``taskset -c``)."""
    if _ONE_THREAD:
        return True
    return hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) == 1
