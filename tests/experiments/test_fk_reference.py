"""The long-AIS reference machinery (:mod:`experiments.fk_reference`) on exact answers.

Tiny AIS runs in independent batches on a shifted Gaussian and on a harmonic cluster
(whose :math:`\\log Z` on the centre-of-mass-free subspace, the convention of
:func:`thermo.mcmc.ais` and of the corrected samplers, is known in closed form); the
combined estimate must agree with the exact value within 4 of its standard errors (the
error from the spread of the batches). An interrupted run resumes: the batches already
written are kept, and the result equals an uninterrupted run's. The corrected sampler
reports the same COM-free quantity (harmonic cluster, within 4 of its SEs). (The long runs
themselves live in ``python -m experiments.fk_samplers reference``.)
"""

import json
import math

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from experiments.fk_reference import ReferenceConfig, combine, record, run_reference, z_score
from thermo.estimators import estimate_log_z
from thermo.systems._base import ParticleSystem, System

X64 = bool(jax.config.jax_enable_x64)
CONFIG = ReferenceConfig(64, 20, n_integration_steps=3, base_scale=1.0, x64=X64)


class ShiftedGaussian(System):
    """:math:`U = |x - m|^2 / (2 s^2)`, :math:`\\log Z = \\tfrac d2 \\log 2\\pi s^2`."""

    def __init__(self):
        self.name, self.dim, self.beta = "shifted-gaussian", 3, 1.0
        self.n_particles = self.spatial_dim = None
        self.prior_scale = 1.0
        self.log_z = 1.5 * math.log(2 * math.pi * 0.6**2)

    def _energy(self, x):
        return 0.5 * jnp.sum((x - jnp.array([0.8, -0.5, 0.3])) ** 2) / 0.6**2

    def sample(self, key, n):
        raise NotImplementedError


class HarmonicCluster(ParticleSystem):
    """:math:`U = \\tfrac k2\\sum_i|x_i - \\bar x|^2`: on the COM-free subspace
    :math:`\\log Z = \\tfrac{(n-1)d}{2}\\log(2\\pi/k)`."""

    def __init__(self):
        self.name, self.n_particles, self.spatial_dim, self.beta = "harmonic-4", 4, 2, 1.0
        self.dim, self.prior_scale = 8, 1.0
        self.log_z = 3.0 * math.log(2 * math.pi / 2.5)

    def _energy(self, x):
        pos = jnp.reshape(x, (4, 2))
        return 1.25 * jnp.sum((pos - jnp.mean(pos, axis=0, keepdims=True)) ** 2)

    def sample(self, key, n):
        raise NotImplementedError


@pytest.mark.parametrize("system", [ShiftedGaussian(), HarmonicCluster()], ids=lambda s: s.name)
def test_combined_estimate_matches_exact_log_z(tmp_path, system):
    run_reference(system, CONFIG, tmp_path, n_batches=4, seed=3)
    out = combine(tmp_path)
    assert out["n_batches"] == 4 and out["n_chains"] == 4 * CONFIG.n_chains
    assert out["n_energy_evals"] == 4 * CONFIG.evals_per_batch()
    assert 0 < out["log_z_std"] < 0.2
    assert abs(out["log_z"] - system.log_z) < 4 * out["log_z_std"]
    # equal batches: the pooled estimate is the estimate over all chains' weights
    weights = np.concatenate(
        [json.loads(p.read_text())["log_weights"] for p in sorted(tmp_path.glob("batch_*"))]
    )
    assert out["log_z"] == pytest.approx(float(estimate_log_z(weights).value), abs=1e-5)


def test_interrupted_run_resumes_to_the_same_result(tmp_path):
    system = ShiftedGaussian()
    once, split = tmp_path / "once", tmp_path / "split"
    run_reference(system, CONFIG, once, n_batches=3, seed=5)
    run_reference(system, CONFIG, split, n_batches=2, seed=5)  # "killed" after 2 batches
    first = [(p.read_text(), p.stat().st_mtime_ns) for p in sorted(split.glob("batch_*"))]
    (split / "batch_00002.json.tmp").write_text("{half-written")  # a kill mid-write
    run_reference(system, CONFIG, split, n_batches=3, seed=5)
    again = [(p.read_text(), p.stat().st_mtime_ns) for p in sorted(split.glob("batch_*"))]
    assert again[:2] == first  # not recomputed
    a, b = combine(once), combine(split)
    assert a["log_z"] == b["log_z"] and a["log_z_std"] == b["log_z_std"]
    with pytest.raises(ValueError, match="other settings"):
        run_reference(system, CONFIG, split, n_batches=3, seed=6)


def test_bad_input_fails_fast(tmp_path):
    system = ShiftedGaussian()
    with pytest.raises(ValueError, match="n_batches"):
        run_reference(system, CONFIG, tmp_path / "a", n_batches=0)
    with pytest.raises(ValueError, match="x64"):
        run_reference(system, ReferenceConfig(8, 2, x64=not X64), tmp_path / "b", n_batches=1)
    run_reference(system, CONFIG, tmp_path / "c", n_batches=1)
    with pytest.raises(ValueError, match=">= 2 finished batches"):
        combine(tmp_path / "c")


def test_record_keeps_the_half_stage_check(tmp_path):
    system = ShiftedGaussian()
    half_config = ReferenceConfig(64, 10, n_integration_steps=3, base_scale=1.0, x64=X64)
    run_reference(system, CONFIG, tmp_path / "full", n_batches=2)
    run_reference(system, half_config, tmp_path / "half", n_batches=2)
    full, half = combine(tmp_path / "full"), combine(tmp_path / "half")
    row = record("toy", full, "cmd", half, "half cmd", path=tmp_path / "ref.json")
    assert json.loads((tmp_path / "ref.json").read_text())["toy"] == row
    z = abs(full["log_z"] - half["log_z"]) / math.hypot(full["log_z_std"], half["log_z_std"])
    assert row["half_stages"]["z_vs_reference"] == pytest.approx(z)
    assert row["command"] == "cmd" and row["half_stages"]["command"] == "half cmd"
    assert z_score(1.0, 3.0, 5.0, 0.0) == pytest.approx(4.0 / 3.0)
    with pytest.raises(ValueError, match="half the stages"):
        record("toy", full, "cmd", full, path=tmp_path / "ref.json")


def test_corrected_sampler_reports_the_same_com_free_log_z():
    """The Feynman–Kac-corrected DDS (the pretrained samplers' estimator) on the harmonic
    cluster: its log Z is the COM-free one that AIS and the reference report."""
    from generative.samplers import DDS, as_target, feynman_kac, make_sampler

    system = HarmonicCluster()
    target = as_target(system)
    control = make_sampler(jr.PRNGKey(0), target, "dds", n_steps=64).control
    step = target.scale * math.sqrt(2 * 0.01 / 64)
    dds = DDS(control, n_steps=64, sigma=target.scale, duration=0.01, max_displacement=step)
    r = feynman_kac(jr.PRNGKey(0), dds, target, 1000, n_moves=3)
    assert abs(float(r.log_z) - system.log_z) < 4 * float(r.log_z_std)
