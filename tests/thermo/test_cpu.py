"""thermo.cpu: XLA's CPU client with a one-thread pool, the process keeping its cores.

The pool's threads are named ``tf_XLAEigen``; a fresh interpreter counts them in
``/proc/self/task`` after one computation, with and without :func:`use_one_cpu_thread`.
"""

import os
import subprocess
import sys

import pytest

import thermo.cpu as tc

_PROBE = r"""
import os, sys
import thermo.cpu as c
if sys.argv[1] == "one":
    assert c.use_one_cpu_thread() and c.use_one_cpu_thread()  # a second call is a no-op
import jax.numpy as jnp
x = jnp.ones((256, 256)); (x @ x).block_until_ready()
tasks = os.listdir("/proc/self/task")
pool = sum("Eigen" in open(f"/proc/self/task/{t}/comm").read() for t in tasks)
print(len(os.sched_getaffinity(0)), pool, c.one_cpu_thread_pool())
"""

needs_affinity = pytest.mark.skipif(
    not (hasattr(os, "sched_setaffinity") and os.path.isdir("/proc/self/task")),
    reason="needs os.sched_setaffinity and /proc (Linux)",
)


def _probe(mode):
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True
    )
    cores, pool, flag = out.stdout.split()
    return int(cores), int(pool), flag == "True"


@needs_affinity
def test_one_thread_pool_and_the_process_keeps_its_cores():
    cores = len(os.sched_getaffinity(0))
    assert _probe("one") == (cores, 1, True)
    default = _probe("default")
    assert default[0] == cores and default[2] == (cores == 1)
    if cores > 1:
        assert default[1] > 1  # the default pool has more threads: the check has power


def test_refused_once_jax_has_run():
    import jax.numpy as jnp

    jnp.zeros(1).block_until_ready()
    with pytest.raises(RuntimeError, match="already initialised"):
        tc.use_one_cpu_thread()
