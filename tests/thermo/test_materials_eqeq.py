"""Exact tests of periodic EQeq (Wilmer, Kim & Snurr 2012) in thermo.materials.qeq."""

import math

import ase.build
import numpy as np
import pytest

import thermo.materials as tm
from tests.thermo.test_materials_qeq import _triclinic_structure
from thermo.materials import qeq

C_EV = qeq.COULOMB_CONSTANT_EV


def _eqeq(atoms, **kw):
    return qeq.eqeq_charges(
        atoms.get_chemical_symbols(), atoms.get_positions(), atoms.cell.array, **kw
    )


# total-charge conservation: test_materials_qeq.test_total_charge_is_conserved


def test_rock_salt_symmetry_and_supercell():
    at = ase.build.bulk("NaCl", "rocksalt", a=5.64, cubic=True)  # bounded in EQeq
    q = _eqeq(at).charges
    sym = np.array(at.get_chemical_symbols())
    assert np.ptp(q[sym == "Na"]) < 1e-10 and np.ptp(q[sym == "Cl"]) < 1e-10
    assert q[sym == "Na"][0] > 0
    np.testing.assert_allclose(_eqeq(at.repeat((1, 2, 1))).charges, np.tile(q, 2), atol=1e-9)


def test_charges_independent_of_ewald_parameters():
    symbols, pos, cell = _triclinic_structure()
    runs = [
        qeq.eqeq_charges(symbols, pos, cell, precision=1e-12),
        qeq.eqeq_charges(symbols, pos, cell, alpha=0.55, kmax=(18, 18, 18), r_cut=10.0),
        qeq.eqeq_charges(symbols, pos, cell, alpha=0.3, kmax=(12, 12, 12), r_cut=18.0),
    ]
    assert len({r.alpha for r in runs}) == 3
    for r in runs[1:]:
        np.testing.assert_allclose(r.charges, runs[0].charges, atol=1e-8)
        assert abs(r.electronegativity - runs[0].electronegativity) < 1e-8


def _zn_o_pair(length, d=2.0):
    pos = np.array([[1.0, 2.0, 3.0], [1.0 + d, 2.0, 3.0]])
    res = qeq.eqeq_charges(["Zn", "O"], pos, np.eye(3) * length)
    (c_zn, h0_zn, h1_zn), (c_o, h0_o, h1_o) = (qeq.eqeq_parameters()[e] for e in ("Zn", "O"))
    j_zn, j_o = h1_zn - h0_zn, h1_o - h0_o  # hardness about the charge centre
    x_zn = 0.5 * (h1_zn + h0_zn) - c_zn * j_zn  # Zn2+ centre: chi* - c J
    x_o = 0.5 * (h1_o + h0_o)
    a = math.sqrt(j_zn * j_o) / C_EV
    kernel = 0.5 * tm.EQEQ_LAMBDA * C_EV
    j_12 = kernel * (1.0 / d + math.exp(-a * a * d * d) * (2.0 * a - a * a * d - 1.0 / d))
    curvature = j_zn + j_o - 2.0 * j_12
    q_pair = (x_o - x_zn) / curvature  # isolated pair, closed form
    # leading tin-foil box term for a dipole p = q d in a cubic box: -2 pi p^2 / (3V)
    # (de Leeuw, Perram & Smith 1980), on the screened kernel; the rest is O(d^4 / L^5)
    q_dipole = (x_o - x_zn) / (curvature - 2.0 * kernel * 2.0 * math.pi * d**2 / (3.0 * length**3))
    return res.charges, q_pair, q_dipole


def test_two_atom_pair_matches_closed_form():
    q20, q_pair, q_dip20 = _zn_o_pair(20.0)
    q30, _, q_dip30 = _zn_o_pair(30.0)
    assert abs(q30.sum()) < 1e-12 and q30[0] > 0
    assert abs(q30[0] - q_dip30) < 0.02 * abs(q_dip30 - q_pair)
    ratio = (q20[0] - q_dip20) / (q30[0] - q_dip30)  # remainder ~ L^-5: (30/20)^5 = 7.59
    assert 6.5 < ratio < 8.7


def test_irmof1_charges_are_physical():
    """IRMOF-1: zinc cations below their +2 charge centre, oxygens anionic, H slightly positive.

    Physical bounds, not tolerances: EQeq expands Zn about Zn2+ with J = H3 - H2 =
    21.8 eV, so a charge between 0 and +2; each O bonds to Zn or to a carboxylate C;
    H bonds to the aromatic C, more electronegative than H; all symmetry copies equal.
    """
    pytest.importorskip("CoRE_MOF", reason="PyPI package core-mof not installed")
    at = tm.core_mof_framework("EDUSIF_clean")  # IRMOF-1, 106 atoms, Zn4O(BDC)3
    q = tm.framework_charges(at)  # EQeq is the default
    sym = np.array(at.get_chemical_symbols())
    assert abs(q.sum()) < 1e-10
    assert np.all((q[sym == "Zn"] > 0.0) & (q[sym == "Zn"] < 2.0))
    assert np.all(q[sym == "O"] < 0.0)
    assert np.all((q[sym == "H"] > 0.0) & (q[sym == "H"] < 0.5))
    assert np.ptp(q[sym == "Zn"]) < 1e-9 and np.ptp(q[sym == "H"]) < 1e-9
    q_qeq = tm.framework_charges(at, method="qeq")
    assert np.abs(q_qeq - q).max() > 0.05  # the two models are distinct


def test_padded_henry_kernel_matches_framework_energy_fn():
    """henry_coefficients' padded, shape-stable energy is framework_energy_fn's, exactly."""
    import jax
    import jax.random as jr

    from thermo.materials import frameworks
    from thermo.materials.adsorption import _random_rotation

    # one Na-Cl pair in a 10 A cube: open space, so insertions have weight
    at = ase.Atoms(
        "NaCl", positions=[[1.0, 1.0, 1.0], [3.6, 1.3, 1.2]], cell=np.eye(3) * 10.0, pbc=True
    )
    q = tm.framework_charges(at)
    mol = tm.load_molecule("CO2")
    ff = tm.adsorption_force_field(mol, "uff")
    energy_fn, _ = tm.framework_energy_fn(at, adsorbate="CO2", force_field=ff, framework_charges=q)
    # padded: 4 sites (one padding), 256 framework slots (54 atoms), a larger k-grid
    arrays, _ = frameworks._insertion_pair(at, mol, q, "uff", 12.0, 1e-6, 4, 256, (9, 17, 17))
    ins = frameworks._Insertion(**jax.tree.map(jax.numpy.asarray, arrays))
    for k in jr.split(jr.key(11), 4):
        k_pos, k_rot = jr.split(k)
        frac, rot = jr.uniform(k_pos, (3,)), _random_rotation(k_rot, 3)
        u_ref = float(energy_fn(frac, rot))
        u = float(frameworks._insertion_energy(ins, frac, rot))
        assert abs(u - u_ref) < 1e-10 * max(1.0, abs(u_ref))
    res = tm.henry_coefficients(
        jr.key(0), at, [mol], n_insertions=256, n_blocks=2, chunk_size=128, charges=q
    )["CO2"]
    assert res.n_insertions == 256 and res.henry_std_err > 0
    assert res.henry == pytest.approx(tm.henry_from_weight(res.weight, at.cell.volume, 313.0))


def test_bad_input_fails_fast():
    symbols, pos, cell = _triclinic_structure()
    with pytest.raises(ValueError, match=r"no EQeq parameters .*'U'"):
        qeq.eqeq_charges(["U"] + symbols[1:], pos, cell)
    with pytest.raises(ValueError, match="screening"):
        qeq.eqeq_charges(symbols, pos, cell, screening=0.0)
    with pytest.raises(ValueError, match="hardness"):
        qeq.eqeq_charges(symbols, pos, cell, parameters={s: (0, 5.0, 5.0) for s in symbols})
    at = ase.build.bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    with pytest.raises(ValueError, match="unknown charge method"):
        tm.framework_charges(at, method="ddec")
    co2 = tm.load_molecule("CO2")
    with pytest.raises(ValueError, match="charges must be"):
        tm.henry_coefficients(None, at, [co2], charges=np.zeros(3))
    with pytest.raises(ValueError, match="distinct"):
        tm.henry_coefficients(None, at, [co2, co2])
    with pytest.raises(ValueError, match="smaller than"):
        tm.henry_coefficients(None, at, [co2], n_insertions=10, charges=None)
