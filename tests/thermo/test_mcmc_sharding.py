"""HMC chains and replica-exchange runs sharded over 4 (forced host) devices give the one-device numbers.

A subprocess runs with ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` and shards
the chain axis with :func:`thermo.mcmc.sharding.shard_chains`; the parent runs the same
seeds on its single device. Same seeds -> same numbers to float tolerance.
"""

import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from thermo.kernel import run
from thermo.mcmc import hmc, replica_exchange
from thermo.mcmc.sharding import shard_chains

ROOT = Path(__file__).resolve().parents[2]
N_CHAINS = 8


def _logdensity(x):
    return -0.5 * jnp.sum(x**2 / jnp.array([1.0, 4.0])) - 0.1 * jnp.sum(x**4)


def _run_chains(kernel, keys, x0, n_steps, observable_fn):
    """``n_steps`` of ``kernel`` from each row of ``x0``, one key each, vmapped and jitted."""

    @jax.jit
    def chains(keys, x0):
        states = jax.vmap(kernel.init)(x0)

        def one(key, state):
            return run(key, kernel, state, n_steps, observable_fn=observable_fn)[1]

        return jax.vmap(one)(keys, states)

    return np.asarray(chains(keys, x0))


def compute(shard: bool) -> dict[str, np.ndarray]:
    """HMC over 8 chains and 8 replica-exchange runs; optionally sharded over devices."""
    kernel = hmc(_logdensity, 0.3, 5)
    keys = jr.split(jr.key(7), N_CHAINS)
    x0 = jr.normal(jr.key(8), (N_CHAINS, 2))
    pt = replica_exchange(
        lambda x: -_logdensity(x), jnp.array([1.0, 0.5, 0.25]), 0.3, n_integration_steps=3
    )
    pt_keys = jr.split(jr.key(9), N_CHAINS)
    pt_x0 = jr.normal(jr.key(10), (N_CHAINS, 3, 2))
    if shard:
        keys, x0 = shard_chains((keys, x0))
        pt_keys, pt_x0 = shard_chains((pt_keys, pt_x0))
    return {
        "hmc": _run_chains(kernel, keys, x0, 50, lambda s, i: s.position),
        "replica_exchange": _run_chains(pt, pt_keys, pt_x0, 20, lambda s, i: s.positions),
        "n_devices": np.asarray(len(jax.devices())),
    }


def _main(out: str) -> None:
    jax.config.update("jax_enable_x64", True)
    np.savez(out, **compute(shard=True))


def test_sharded_run_matches_single_device(tmp_path):
    out = tmp_path / "sharded.npz"
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu"
    )
    code = f"import tests.thermo.test_mcmc_sharding as t; t._main({str(out)!r})"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    sharded = dict(np.load(out))
    assert int(sharded.pop("n_devices")) == 4
    single = compute(shard=False)
    assert int(single.pop("n_devices")) == 1
    for name, value in single.items():
        np.testing.assert_allclose(sharded[name], value, rtol=1e-10, atol=1e-10, err_msg=name)
