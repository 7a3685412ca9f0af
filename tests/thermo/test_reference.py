"""The project's own reference samples (thermo.systems.reference_samples).

* Stein identity E[Lap(beta U)] = E[|grad(beta U)|^2] within 2 % (the issue's bound).
* Against the published samples in ``<repo>/../shared/data/reference/`` (or
  ``$STOCHTHERMO_SHARED_DATA/reference/``), when present: mean energy within 4 combined
  standard errors, the interatomic-distance histogram bin by bin within 4 standard
  errors (per-sample histograms, so the correlation between the pairs of one sample is
  accounted for), and energy W2(ours, published) <= W2(published halves) + 3 bootstrap
  standard errors.

DW-4 finding: our samples give the isomer populations (number of pairs in the inner
well) 0.520 / 0.034 / 0.400 for 2 / 3 / 4 short pairs; an independent adaptive SMC run
(4,000 particles, importance weighted, two seeds) gives 0.518-0.521 / 0.036-0.038 /
0.401-0.403, while the published DW-4 set has 0.446 / 0.038 / 0.473 (standard error
~0.005). The published set is therefore off in its isomer populations; the DW-4
distance-histogram comparison is a strict xfail that documents this (it will flag it if
the two sets ever agree). The energy checks pass for both systems (the energy is nearly
the same in both isomer families), and LJ-13 passes all three comparisons.
"""

import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import thermo.systems as systems
from thermo import metrics
from thermo.systems._reference import reference_provenance

PUBLISHED = {"dw4": "val_split_DW4.npy", "lj13": "val_split_LJ13-1000.npy"}
STEIN_SAMPLES = {"dw4": 2000, "lj13": 1000, "lj55": 100}


def _shared_dir() -> Path:
    env = os.environ.get("STOCHTHERMO_SHARED_DATA")
    if env:
        return Path(env) / "reference"
    return Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "reference"


def _published(name: str) -> np.ndarray:
    path = _shared_dir() / PUBLISHED[name]
    if not path.exists():
        pytest.skip(
            f"published reference samples absent ({path}); the comparison with them runs only "
            "where ../shared/data/reference/ exists"
        )
    return np.load(path).astype(np.float64)


def _ours(name: str) -> np.ndarray:
    return np.asarray(systems.reference_samples(name), dtype=np.float64)


def _energies(name: str, x: np.ndarray) -> np.ndarray:
    system = systems.get(name)
    return np.asarray(jax.jit(jax.vmap(system.energy))(jnp.asarray(x)))


@pytest.mark.parametrize("name", ["dw4", "lj13", "lj55"])
def test_samples_and_provenance(name):
    x = systems.reference_samples(name)
    system = systems.get(name)
    assert x.dtype == np.float32 and x.ndim == 2 and x.shape[1] == system.dim
    assert np.all(np.isfinite(x))
    com = x.reshape(len(x), system.n_particles, system.spatial_dim).mean(1)
    assert np.abs(com).max() < 1e-4  # stored COM-free
    prov = reference_provenance(name)
    for field in (
        "convention",
        "settings",
        "tau_int_energy_steps",
        "ess_energy_thinned",
        "git_commit",
    ):
        assert field in prov
    assert prov["n_samples"] == len(x) and prov["settings"]["seed"] > 0
    with pytest.raises(ValueError, match="no reference samples"):
        systems.reference_samples("mw5")


@pytest.mark.parametrize("name", ["dw4", "lj13", "lj55"])
def test_stein_identity(name):
    system = systems.get(name)
    x = jnp.asarray(_ours(name)[:: max(1, len(_ours(name)) // STEIN_SAMPLES[name])])

    def bu(y):
        return system.beta * system.energy(y)

    @jax.jit
    def terms(x):
        lap = jax.vmap(lambda y: jnp.trace(jax.hessian(bu)(y)))(x)
        g2 = jax.vmap(lambda y: jnp.sum(jax.grad(bu)(y) ** 2))(x)
        return lap, g2

    lap, g2 = (np.asarray(a) for a in terms(x))
    assert abs(lap.mean() / g2.mean() - 1.0) < 0.02


def _mean_energy_check(name):
    ours, pub = _ours(name), _published(name)
    eo, ep = _energies(name, ours), _energies(name, pub)
    prov = reference_provenance(name)
    # Our standard error uses the ESS of the thinned chains; the published samples are
    # treated as independent.
    ess = min(len(eo), prov["ess_energy_thinned"])
    se = np.sqrt(eo.var() / ess + ep.var() / len(ep))
    assert abs(eo.mean() - ep.mean()) < 4 * se, (eo.mean(), ep.mean(), se)


@pytest.mark.parametrize("name", ["dw4", "lj13"])
def test_mean_energy_matches_published(name):
    _mean_energy_check(name)


def _histogram_check(name, bins=30):
    ours, pub = _ours(name), _published(name)
    system = systems.get(name)
    n_p, d = system.n_particles, system.spatial_dim
    do = metrics.interatomic_distances(ours, n_p, d).reshape(len(ours), -1)
    dp = metrics.interatomic_distances(pub, n_p, d).reshape(len(pub), -1)
    edges = np.linspace(min(do.min(), dp.min()), max(do.max(), dp.max()), bins + 1)

    def per_sample(dist):
        idx = np.clip(np.searchsorted(edges, dist, side="right") - 1, 0, bins - 1)
        h = np.zeros((len(dist), bins))
        np.add.at(h, (np.arange(len(dist))[:, None], idx), 1.0)
        return h / dist.shape[1]

    ho, hp = per_sample(do), per_sample(dp)
    se = np.sqrt(ho.var(0) / len(ho) + hp.var(0) / len(hp))
    diff = np.abs(ho.mean(0) - hp.mean(0))
    ok = diff <= 4 * se + 1e-12
    assert np.all(ok), (diff / np.maximum(se, 1e-12)).max()


def _energy_w2_check(name, n_boot=200):
    ours, pub = _ours(name), _published(name)
    eo, ep = _energies(name, ours), _energies(name, pub)
    half = len(ep) // 2
    w2_halves = metrics.energy_w2(ep[:half], ep[half:])
    rng = np.random.default_rng(0)
    boot = [
        metrics.energy_w2(
            rng.choice(ep[:half], half, replace=True), rng.choice(ep[half:], half, replace=True)
        )
        for _ in range(n_boot)
    ]
    w2_ours = metrics.energy_w2(eo, ep)
    assert w2_ours <= w2_halves + 3 * np.std(boot), (w2_ours, w2_halves, np.std(boot))


DW4_XFAIL = pytest.mark.xfail(
    strict=True,
    reason="published DW-4 isomer populations differ from ours and from an independent SMC "
    "run (see module docstring)",
)


def test_distance_histogram_matches_published_lj13():
    _histogram_check("lj13")


def test_energy_w2_within_published_halves_lj13():
    _energy_w2_check("lj13")


@DW4_XFAIL
def test_distance_histogram_matches_published_dw4():
    _histogram_check("dw4")


def test_energy_w2_within_published_halves_dw4():
    _energy_w2_check("dw4")
