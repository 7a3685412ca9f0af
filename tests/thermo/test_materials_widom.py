"""Widom insertion of methane in MFI: energies vs brute force, RASPA3 weight, units.

MFI is the reference input ``../shared/data/materials/MFI_SI.cif`` (not shipped); the
tests that need it skip with a message when it is absent.
"""

import itertools

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from thermo.materials import framework_energy_fn, henry_from_weight, load_force_field, widom
from thermo.materials.adsorption import _make_grid_energy
from thermo.materials.structures import read_structure, shared_materials_path

RASPA3_WEIGHT, RASPA3_ERR = 27.39, 0.06


@pytest.fixture(scope="module")
def mfi_path():
    path = shared_materials_path("MFI_SI.cif", required=False)
    if path is None:
        pytest.skip("../shared/data/materials/MFI_SI.cif absent: the MFI Widom checks need it")
    return path


@pytest.fixture(scope="module")
def mfi(mfi_path):
    return read_structure(mfi_path)


@pytest.fixture(scope="module")
def mfi_energy(mfi):
    fn, info = framework_energy_fn(mfi)
    return jax.jit(fn), info


@pytest.fixture(scope="module")
def mfi_energy_all(mfi):
    fn, _ = framework_energy_fn(mfi, bin_width=None)
    return fn


def _brute_energy(atoms, point, ff):
    """Sum over unit-cell atoms and explicit lattice translations (no supercell, no jax-md)."""
    cell = atoms.cell.array  # rows
    pos = atoms.get_positions()
    sym = atoms.get_chemical_symbols()
    ch4 = ff["atoms"]["CH4"]
    rc = ff["r_cut"]
    eps = np.array([np.sqrt(ff["atoms"][s]["epsilon"] * ch4["epsilon"]) for s in sym])
    sig = np.array([0.5 * (ff["atoms"][s]["sigma"] + ch4["sigma"]) for s in sym])
    e = 0.0
    for n in itertools.product(range(-2, 3), repeat=3):
        r = np.linalg.norm(point - (pos + np.array(n) @ cell), axis=1)
        m = r < rc
        sr6 = (sig[m] / r[m]) ** 6
        src6 = (sig[m] / rc) ** 6
        e += np.sum(4 * eps[m] * (sr6**2 - sr6) - 4 * eps[m] * (src6**2 - src6))
    return e


def test_framework_energy_matches_explicit_lattice_sum(mfi, mfi_energy):
    fn, info = mfi_energy
    assert info["unit_cells"] == (2, 2, 2)
    ff = load_force_field()
    rng = np.random.default_rng(7)
    sup = info["supercell"]
    for frac in rng.uniform(size=(6, 3)):
        ours = float(fn(jnp.asarray(frac), jnp.eye(3)))
        ref = _brute_energy(mfi, sup @ frac, ff)
        np.testing.assert_allclose(ours, min(ref, 1e10), rtol=1e-9, atol=1e-8)


def test_binned_lists_give_the_same_energies(mfi_energy, mfi_energy_all):
    fn_binned, _ = mfi_energy
    fn_all = mfi_energy_all
    pts = jnp.asarray(np.random.default_rng(8).uniform(size=(256, 3)))
    a = jax.jit(jax.vmap(lambda p: fn_all(p, jnp.eye(3))))(pts)
    b = jax.jit(jax.vmap(lambda p: fn_binned(p, jnp.eye(3))))(pts)
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-9, atol=1e-8)


def test_widom_weight_agrees_with_raspa3(mfi):
    res = widom(jr.key(2024), mfi, n_insertions=16 * 1024, n_blocks=8, chunk_size=512)
    assert res.n_insertions == 16 * 1024
    assert res.unit_cells == (2, 2, 2)
    sigma = np.hypot(res.std_err, RASPA3_ERR)
    assert abs(res.weight - RASPA3_WEIGHT) < 4 * sigma
    np.testing.assert_allclose(res.henry, henry_from_weight(res.weight, mfi.cell.volume, 300.0))
    # CH4 in MFI adsorbs exothermically: q_st ~ 20 kJ/mol in the literature.
    assert 10.0 < res.isosteric_heat_kj_mol < 30.0


def test_path_and_atoms_inputs_agree(mfi_path, mfi_energy_all):
    fn_atoms = mfi_energy_all
    fn_path, _ = framework_energy_fn(mfi_path, bin_width=None)
    frac = jnp.array([0.3, 0.6, 0.2])
    assert float(fn_path(frac, jnp.eye(3))) == float(fn_atoms(frac, jnp.eye(3)))


def test_henry_units_match_raspa3():
    # RASPA3: <W> = 27.39 -> K_H = 3.526e-5 molecules / unit cell / Pa.
    np.testing.assert_allclose(henry_from_weight(27.39, 5332.03, 300.0), 3.526e-5, rtol=2e-4)


def test_energy_grid_is_exact_at_nodes(mfi_energy):
    fn, _ = mfi_energy
    n_grid = (6, 6, 4)
    interp = jax.jit(_make_grid_energy(fn, n_grid, 64))
    for idx in [(0, 0, 0), (1, 2, 3), (5, 5, 1)]:
        frac = jnp.asarray(np.array(idx) / np.array(n_grid))
        np.testing.assert_allclose(
            float(interp(frac, jnp.eye(3))), float(fn(frac, jnp.eye(3))), rtol=1e-9
        )


def test_supercell_violating_minimum_image_is_rejected(mfi):
    with pytest.raises(ValueError, match="perpendicular width"):
        framework_energy_fn(mfi, unit_cells=(1, 1, 1))
    with pytest.raises(ValueError, match="temperature"):
        widom(jr.key(0), mfi, temperature=-1.0)
