"""The headline's annealed-Langevin rows recover an exact COM-free log Z.

A harmonic particle system ``U = k/2 sum_i |x_i - xbar|^2`` is translation invariant like
DW-4, and Gaussian on the centre-of-mass-free subspace, so its log Z in the headline's
convention is exact: ``((n-1)d/2) log(2 pi / (beta k))``. The rows' estimates must agree
with it within 4 of their own standard errors.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest

import thermo.systems as systems
from experiments import run_experiment
from experiments.headline import Config
from thermo.systems import ParticleSystem


class HarmonicParticles(ParticleSystem):
    k: float = eqx.field(static=True)

    def __init__(self, n_particles=4, spatial_dim=2, k=1.5, beta=1.0, prior_scale=1.2):
        self.name = "harmonic_particles_test"
        self.n_particles, self.spatial_dim = n_particles, spatial_dim
        self.dim = n_particles * spatial_dim
        self.k, self.beta, self.prior_scale = k, beta, prior_scale
        sub = (n_particles - 1) * spatial_dim
        self.log_z = 0.5 * sub * float(np.log(2 * np.pi / (beta * k)))

    def _energy(self, x):
        pos = x.reshape(self.n_particles, self.spatial_dim)
        return 0.5 * self.k * jnp.sum((pos - jnp.mean(pos, axis=0)[None]) ** 2)


@pytest.fixture
def harmonic_system():
    systems.register("harmonic_particles_test", HarmonicParticles, overwrite=True)
    return systems.get("harmonic_particles_test")


def test_annealed_langevin_rows_recover_exact_com_free_log_z(harmonic_system, tmp_path):
    overrides = [
        "system=harmonic_particles_test",
        "methods=langevin,baoab",
        "reference=none",
        "n_batches=2",
        "langevin_chains=512",
        "langevin_steps=200",
        "langevin_dt=0.01",
        "baoab_chains=512",
        "baoab_steps=200",
        "baoab_dt=0.02",
    ]
    res = run_experiment("headline", seed=0, out=tmp_path, overrides=overrides, progress=False)
    rows = res.metrics["methods"]
    assert set(rows) == {"langevin_log_rn", "langevin_jarzynski", "baoab_log_rn"}
    exact = harmonic_system.log_z
    for name, row in rows.items():
        est = row["log_z"]
        assert abs(est["value"] - exact) < 4 * est["std_err"], (name, est, exact)
        assert row["n_energy_evals"] == 512 * (2 * 200 + 1)  # two evaluations per moving step
    assert (res.run_dir / "headline.png").exists()


def test_config_rejects_unknown_methods_and_uneven_batches():
    with pytest.raises(ValueError, match="unknown methods"):
        Config(methods=("ais", "nope"))
    with pytest.raises(ValueError, match="multiple of n_batches"):
        Config(n_batches=3, langevin_chains=100)
