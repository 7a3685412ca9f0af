"""Exact tests of periodic charge equilibration (thermo.materials.qeq) and the CoRE MOF set."""

import math

import ase.build
import jax
import numpy as np
import pytest
from scipy.special import erf

import thermo.materials as tm
from thermo.materials import qeq

C_EV = qeq.COULOMB_CONSTANT_EV


def _rock_salt(a0=8.0, reps=(1, 1, 1)):
    # a0 = 8 Å, not NaCl's 5.64 Å: at 5.64 Å point-charge QEq is unbounded below
    # (test_point_charges_unbounded_fail_fast), which this structure has to avoid.
    return ase.build.bulk("NaCl", "rocksalt", a=a0, cubic=True).repeat(reps)


def _charges(atoms, **kw):
    return qeq.qeq_charges(
        atoms.get_chemical_symbols(), atoms.get_positions(), atoms.cell.array, **kw
    )


def _triclinic_structure():
    rng = np.random.default_rng(1234)  # fixed structure, any draw is a valid test case
    cell = np.array([[9.0, 0.0, 0.0], [1.2, 10.0, 0.0], [0.5, -0.7, 11.0]])
    frac = rng.uniform(size=(7, 3))
    symbols = ["Si", "O", "O", "Zn", "C", "H", "N"]
    return symbols, frac @ cell, cell


@pytest.mark.parametrize(
    "charges_fn, total",
    [
        (qeq.qeq_charges, 0.0),
        (qeq.qeq_charges, 1.0),
        (qeq.qeq_charges, -2.5),
        (qeq.eqeq_charges, 0.0),
        (qeq.eqeq_charges, 1.0),
    ],
    ids=["qeq-0", "qeq-1", "qeq-m2.5", "eqeq-0", "eqeq-1"],
)
def test_total_charge_is_conserved(charges_fn, total):
    # QEq and EQeq (test_materials_eqeq.py) alike
    symbols, pos, cell = _triclinic_structure()
    res = charges_fn(symbols, pos, cell, total_charge=total)
    assert abs(res.charges.sum() - total) < 1e-10
    assert np.all(np.isfinite(res.charges))


def test_rock_salt_symmetry_supercell_and_translation():
    at = _rock_salt()
    q = _charges(at).charges
    sym = np.array(at.get_chemical_symbols())
    q_na, q_cl = q[sym == "Na"], q[sym == "Cl"]
    assert np.ptp(q_na) < 1e-10 and np.ptp(q_cl) < 1e-10
    assert abs(q_na[0] + q_cl[0]) < 1e-10 and q_na[0] > 0
    # the same crystal described by a 2x1x1 supercell, and rigidly translated
    big = _rock_salt(reps=(2, 1, 1))
    q_big = _charges(big).charges
    np.testing.assert_allclose(q_big, np.tile(q, 2), atol=1e-9)
    moved = at.copy()
    moved.translate([0.37, -1.1, 2.9])
    np.testing.assert_allclose(_charges(moved).charges, q, atol=1e-9)


@pytest.mark.parametrize("shielding", ["gaussian", "none"])
def test_charges_independent_of_ewald_parameters(shielding):
    symbols, pos, cell = _triclinic_structure()
    if shielding == "none":
        # point charges need well separated atoms: a sparse ionic pair lattice
        at = _rock_salt()
        symbols, pos, cell = at.get_chemical_symbols(), at.get_positions(), at.cell.array
    runs = [
        qeq.qeq_charges(symbols, pos, cell, 0.5, shielding=shielding, precision=1e-12),
        qeq.qeq_charges(
            symbols, pos, cell, 0.5, shielding=shielding, alpha=0.55, kmax=(18, 18, 18), r_cut=10.0
        ),
        qeq.qeq_charges(
            symbols, pos, cell, 0.5, shielding=shielding, alpha=0.3, kmax=(12, 12, 12), r_cut=18.0
        ),
    ]
    assert len({r.alpha for r in runs}) == 3
    for r in runs[1:]:
        np.testing.assert_allclose(r.charges, runs[0].charges, atol=1e-8)
        assert abs(r.electronegativity - runs[0].electronegativity) < 1e-8


def test_coulomb_matrix_is_the_ewald_energy():
    symbols, pos, cell = _triclinic_structure()
    q = np.linspace(-1.0, 1.3, len(symbols))  # net charge 0.35 e: background term tested
    a = qeq.ewald_coulomb_matrix(pos, cell, alpha=0.3, kmax=(8, 8, 8), r_cut=4.4)
    u = tm.ewald_energy(pos, q, cell, alpha=0.3, kmax=(8, 8, 8), r_cut=4.4, coulomb_constant=1.0)
    assert abs(0.5 * q @ a @ q - u) < 1e-12 * max(1.0, abs(u))


def _two_atom(length, shielding, d=2.0):
    pos = np.array([[1.0, 2.0, 3.0], [1.0 + d, 2.0, 3.0]])
    res = qeq.qeq_charges(["C", "O"], pos, np.eye(3) * length, shielding=shielding)
    (x_c, j_c), (x_o, j_o) = qeq.qeq_parameters()["C"], qeq.qeq_parameters()["O"]
    if shielding == "none":
        j_12 = C_EV / d
    else:
        a_c, a_o = qeq._gaussian_exponents(np.array([j_c, j_o]))
        j_12 = C_EV * erf(math.sqrt(a_c * a_o / (a_c + a_o)) * d) / d
    curvature = j_c + j_o - 2.0 * j_12
    q_molecule = (x_o - x_c) / curvature  # isolated pair, closed form
    # leading finite-box term of tin-foil Ewald for a cubic box: -2 pi p^2 / (3V)
    # (de Leeuw, Perram & Smith 1980), p = q d; what remains is O(d^4 / L^5)
    q_dipole = (x_o - x_c) / (curvature - 2.0 * C_EV * 2.0 * math.pi * d**2 / (3.0 * length**3))
    return res.charges, q_molecule, q_dipole


@pytest.mark.parametrize("shielding", ["gaussian", "none"])
def test_two_atom_molecule_matches_closed_form(shielding):
    q20, q_mol, q_dip20 = _two_atom(20.0, shielding)
    q30, _, q_dip30 = _two_atom(30.0, shielding)
    assert abs(q30.sum()) < 1e-12 and q30[0] > 0  # C is the less electronegative
    # the box correction explains the finite-size shift, to O(L^-5) ...
    assert abs(q30[0] - q_dip30) < 0.02 * abs(q_dip30 - q_mol)
    # ... and the remainder falls as L^-5: (30/20)^5 = 7.59
    ratio = (q20[0] - q_dip20) / (q30[0] - q_dip30)
    assert 6.5 < ratio < 8.7


def test_point_charges_unbounded_fail_fast():
    at = _rock_salt(a0=5.64)
    with pytest.raises(qeq.ChargeModelError, match="unbounded below"):
        _charges(at, shielding="none")


def test_bad_input_fails_fast():
    symbols, pos, cell = _triclinic_structure()
    with pytest.raises(qeq.ChargeModelError, match=r"no QEq parameters .*'Xx'"):
        qeq.qeq_charges(["Xx"] + symbols[1:], pos, cell)
    with pytest.raises(ValueError, match="total_charge must be finite"):
        qeq.qeq_charges(symbols, pos, cell, total_charge=float("nan"))
    with pytest.raises(ValueError, match="symbols for"):
        qeq.qeq_charges(symbols[:-1], pos, cell)
    with pytest.raises(ValueError, match="both alpha and kmax"):
        qeq.qeq_charges(symbols, pos, cell, alpha=0.3)
    with pytest.raises(ValueError, match="shielding"):
        qeq.qeq_charges(symbols, pos, cell, shielding="slater")
    with pytest.raises(ValueError, match="right-handed"):
        qeq.qeq_charges(symbols, pos, cell[::-1] * np.array([1.0, 1.0, 0.0]))


def test_core_mof_qeq_and_co2_henry():
    pytest.importorskip("CoRE_MOF", reason="PyPI package core-mof not installed")
    at = tm.core_mof_framework("EDUSIF_clean")  # IRMOF-1, 106 atoms
    res = _charges(at)
    assert abs(res.charges.sum()) < 1e-10
    assert np.all(np.abs(res.charges) < 3.0)
    sym = np.array(at.get_chemical_symbols())
    assert np.all(res.charges[sym == "Zn"] > 0) and np.all(res.charges[sym == "O"] < 0)
    ff = tm.adsorption_force_field(tm.load_molecule("CO2"), "uff")
    w = tm.widom(
        jax.random.key(17),
        at,
        adsorbate="CO2",
        temperature=300.0,
        n_insertions=2048,
        n_blocks=4,
        chunk_size=512,
        force_field=ff,
        framework_charges=res.charges,
    )
    assert np.isfinite(w.henry) and w.henry > 0 and w.henry_std_err > 0


@pytest.mark.slow  # one pass over 12,020 CIFs: ~15-45 s on the shared 2 cores
def test_default_screening_set_follows_its_rule():
    pytest.importorskip("CoRE_MOF", reason="PyPI package core-mof not installed")
    chosen = tm.default_screening_set(200)
    assert len(chosen) == 200 and chosen["filename"].is_unique
    assert np.all(chosen["PLD"] >= tm.CO2_KINETIC_DIAMETER)
    assert np.all(np.diff(chosen["n_atoms"]) >= 0)
    known = set(tm.uff_parameters()) & set(tm.eqeq_parameters())
    assert all({"C", "H"} <= set(e.split()) <= known for e in chosen["elements"])
    # no eligible structure with fewer atoms was left out
    table = tm.core_mof_descriptors()
    counts = tm.core_mof_atom_counts()
    eligible = table[
        (table["PLD"] >= tm.CO2_KINETIC_DIAMETER)
        & table["DISORDER"].isna()
        & (table["Extension"] != "charged")
    ]
    left = [
        counts[f][0]
        for f in eligible["filename"]
        if f not in set(chosen["filename"]) and {"C", "H"} <= set(counts[f][1]) <= known
    ]
    assert min(left) >= chosen["n_atoms"].iloc[-1]
    # the CIF row count is the atom count ASE reads
    first, last = chosen["filename"].iloc[0], chosen["filename"].iloc[-1]
    loaded = tm.load_core_mofs([first, last])
    assert len(loaded[first]) == chosen["n_atoms"].iloc[0]
    assert len(loaded[last]) == chosen["n_atoms"].iloc[-1]
