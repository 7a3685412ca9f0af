"""Frenkel–Ladd in production blocks: a run killed after a block and resumed from its
checkpoint gives the uninterrupted result, and the block spread check is reported."""

from __future__ import annotations

import dataclasses

import jax
import jax.random as jr
import numpy as np
import pytest

from experiments import _runner as runner_mod
from experiments._runner import RunContext
from experiments.materials_fcc_frenkel_ladd import Config, plain_loop, simulate_size

CFG = dataclasses.replace(Config.quick(), n_production=16, n_blocks=4)


@pytest.fixture(autouse=True)
def _x64_and_hooks():
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    runner_mod.CHECKPOINT_HOOKS.clear()
    jax.config.update("jax_enable_x64", old)


def _kill_after(step_to_kill):
    def hook(name, step):
        if name == "frenkel_ladd_2" and step == step_to_kill:
            raise KeyboardInterrupt

    return hook


def test_killed_and_resumed_blocks_reproduce_the_uninterrupted_run(tmp_path):
    key = jr.key(3)
    reference = simulate_size(key, CFG, 2, loop=plain_loop)
    ctx = RunContext(name="fl_blocks", run_dir=tmp_path, seed=0, progress=False)
    runner_mod.CHECKPOINT_HOOKS.append(_kill_after(2))
    with pytest.raises(KeyboardInterrupt):
        simulate_size(key, CFG, 2, loop=ctx.loop)
    runner_mod.CHECKPOINT_HOOKS.clear()
    # killed mid-run: two of the four blocks are on disk
    with np.load(tmp_path / "checkpoints" / "frenkel_ladd_2.npz") as ckpt:
        assert int(ckpt["__step__"]) == 2
    steps = []
    runner_mod.CHECKPOINT_HOOKS.append(lambda name, step: steps.append(step))
    resumed = simulate_size(key, CFG, 2, loop=ctx.loop)
    assert steps == [3, 4]  # only the remaining blocks ran
    assert resumed["n_sweeps_per_node"] == CFG.n_blocks * CFG.n_production
    # bit-identical to the uninterrupted run, everything but the clocks
    clocks = ("wall_s", "cpu_s")
    assert {k: v for k, v in resumed.items() if k not in clocks} == {
        k: v for k, v in reference.items() if k not in clocks
    }
    # the clock counts the blocks of both sessions
    assert resumed["cpu_s"] > 0 and resumed["wall_s"] > 0
    # the block spread is a second estimate of the same error bar: with four blocks it is
    # a chi(3)-distributed multiple, well inside a factor of 10 of the series' error bar
    se, se_b = (reference["beta_free_energy"][k] for k in ("std_err", "block_std_err"))
    assert 0.1 < se_b / se < 10.0, (se, se_b)


def test_block_spread_needs_four_blocks():
    res = simulate_size(jr.key(4), dataclasses.replace(CFG, n_blocks=2), 2)
    assert "block_std_err" not in res["beta_free_energy"]
    assert res["n_sweeps_per_node"] == 2 * CFG.n_production
