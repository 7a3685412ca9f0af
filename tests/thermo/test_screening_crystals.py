"""Binary-LJ crystals of the screening experiment: energy, relaxation and the scaling law."""

from __future__ import annotations

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from thermo.materials import lj_energy_fn, periodic_space
from thermo.materials._screening import (
    PROTOTYPES,
    _harmonic,
    binary_lj_energy,
    make_candidate,
    relax_crystal,
    spearman,
)


@pytest.fixture(scope="module")
def fcc():
    return make_candidate("fcc", 1.0, 1.0, r_cut_factor=1.5)


def test_one_species_energy_matches_the_materials_lj(fcc):
    r = jnp.asarray(fcc.positions) + 0.05 * jr.normal(jr.key(0), fcc.positions.shape)
    disp, _ = periodic_space(fcc.box)
    ref = lj_energy_fn(disp, r_cut=1.5, shift=True)(r)
    assert abs(float(binary_lj_energy(r, fcc.params())) - float(ref)) < 1e-10


def test_relaxed_fcc_is_the_lattice_constant_minimum(fcc):
    # Zero-pressure FCC: the relaxed energy per atom equals the minimum over the cubic
    # lattice constant (a 1-D scalar minimisation), and the cell stays cubic.
    params = fcc.params()
    a0 = fcc.box[0, 0]

    def e_of_scale(s):
        p = params | {"box": jnp.asarray(fcc.box * s)}
        return float(binary_lj_energy(jnp.asarray(fcc.positions * s), p)) / 32

    best = minimize_scalar(
        e_of_scale, bounds=(0.9, 1.1), method="bounded", options={"xatol": 1e-10}
    )
    rel = relax_crystal(jnp.asarray(fcc.positions), params)
    box = np.asarray(rel.box)
    assert float(rel.grad_norm) < 1e-6
    assert abs(float(rel.energy) / 32 - best.fun) < 1e-8
    np.testing.assert_allclose(box, np.eye(3) * a0 * best.x, atol=1e-5)


def test_pure_b_scaling_law(fcc):
    # U_B(x) = U_A(x / sigma_B) exactly, so U0 is unchanged and
    # F_h,B - F_h,A = -T (3N - 3) log sigma_B (the scaling used for the pure-B reference).
    t, sb = 0.3, 0.8
    pa = fcc.params()
    pb = make_candidate("fcc", sb, 1.0, r_cut_factor=1.5).params(box=fcc.box * sb)
    pb["species"] = jnp.ones(32, jnp.int32)
    ha = _harmonic(jnp.asarray(fcc.positions), pa, jnp.asarray(t))
    hb = _harmonic(jnp.asarray(fcc.positions * sb), pb, jnp.asarray(t))
    assert abs(float(ha.energy) - float(hb.energy)) < 1e-10
    expected = -t * (3 * 32 - 3) * np.log(sb)
    assert abs(float(hb.free_energy - ha.free_energy) - expected) < 1e-8


def test_prototypes_have_their_composition():
    for proto, x_b in PROTOTYPES.items():
        c = make_candidate(proto, 1.0, 1.0)
        assert abs(c.x_b - x_b) < 1e-12, proto
        w = 1.0 / np.linalg.norm(np.linalg.inv(c.box), axis=1)
        assert 0.5 * w.min() >= c.r_cut_max  # minimum image holds before relaxation
    with pytest.raises(ValueError, match="unknown prototype"):
        make_candidate("perovskite", 1.0, 1.0)


def test_spearman_drops_non_finite_pairs():
    a = np.array([1.0, 2.0, 3.0, 4.0, np.nan])
    b = np.array([10.0, 30.0, 20.0, 40.0, 0.0])
    assert abs(spearman(a, b) - 0.8) < 1e-12
    assert np.isnan(spearman(a[:2], b[:2]))
