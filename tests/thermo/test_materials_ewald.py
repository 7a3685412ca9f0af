"""Ewald summation: RASPA3's unit tests, exact lattice constants, a direct lattice sum.

* RASPA3's deterministic Ewald tests (iRASPA/RASPA3, ``tests/raspakit-tests/ewald.cpp``,
  commit a0d3b83, MIT licence): the ``ewaldFourier`` energy of 2 CO2 in a 10 Å box, in
  MFI (1×1×1, 2×2×2; from ``../shared/data/materials/MFI_SI.cif``, skipped when absent)
  and in ITQ-29 (1×1×1, 2×2×2), to 1e-6 K. The molecule positions and the ITQ-29
  asymmetric unit below are the data of that test file.
* NaCl's Madelung constant 1.747564594633 (Zucker 1975, *J. Phys. A* 8, 1734) and the
  simple-cubic Wigner constant 2.837297479 of one charge in a neutralising background
  (Nijboer & De Wette 1957, *Physica* 23, 309), both independent of alpha.
* The Ewald energy of a small neutral cell with a dipole equals the direct Coulomb sum
  over whole cells in spherical order minus the surface term 2 pi |M|^2 / (3 V)
  (de Leeuw, Perram & Smith 1980, *Proc. R. Soc. A* 373, 27).
"""

import numpy as np
import pytest

from tests.thermo._zeolites import itq29
from thermo.materials import (
    COULOMB_CONSTANT_CODATA,
    EwaldKVectors,
    ewald_energy,
    ewald_fourier_energy,
    ewald_parameters,
    kspace_mask,
    read_structure,
    shared_materials_path,
)

ALPHA = 0.25
KMAX = (8, 8, 8)
C_RASPA = 167101.0800
CO2_Q = np.array([-0.3256, 0.6512, -0.3256])
CO2_BOND = np.array([[0.0, 0.0, 1.149], [0.0, 0.0, 0.0], [0.0, 0.0, -1.149]])
TWO_CO2_Q = np.tile(CO2_Q, 2)
TWO_CO2_MOL = np.repeat([0, 1], 3)


def _two_co2(centre_a, centre_b):
    return np.concatenate([CO2_BOND + np.asarray(centre_a), CO2_BOND + np.asarray(centre_b)])


def _zeolite_charges(atoms):
    sym = np.array(atoms.get_chemical_symbols())
    return np.where(sym == "Si", 2.05, -1.025)


def _fourier(atoms, positions):
    return ewald_fourier_energy(
        atoms.get_positions(),
        _zeolite_charges(atoms),
        positions,
        TWO_CO2_Q,
        TWO_CO2_MOL,
        atoms.cell.array,
        alpha=ALPHA,
        kmax=KMAX,
        coulomb_constant=C_RASPA,
    )


def test_raspa3_two_co2_in_box():
    pos = _two_co2([-1.0, 0.0, 0.0], [1.0, 0.0, 0.0])
    e = ewald_fourier_energy(
        np.zeros((0, 3)),
        np.zeros(0),
        pos,
        TWO_CO2_Q,
        TWO_CO2_MOL,
        10.0 * np.eye(3),
        alpha=ALPHA,
        kmax=KMAX,
        coulomb_constant=C_RASPA,
    )
    assert abs(e - 90.54613836) < 1e-6


@pytest.fixture(scope="module")
def mfi():
    path = shared_materials_path("MFI_SI.cif", required=False)
    if path is None:
        pytest.skip("../shared/data/materials/MFI_SI.cif absent: the RASPA3 MFI checks need it")
    return read_structure(path)


@pytest.mark.parametrize(
    "reps, expected", [((1, 1, 1), -1191.77790165), ((2, 2, 2), -1197.23909965)]
)
def test_raspa3_two_co2_in_mfi(mfi, reps, expected):
    assert len(mfi) == 288
    y = 4.97475
    pos = _two_co2([10.011, y + 2.0, 0.0], [10.011, y - 2.0, 0.0])
    assert abs(_fourier(mfi.repeat(reps), pos) - expected) < 1e-6


@pytest.mark.parametrize("reps, expected", [((1, 1, 1), -702.65863478), ((2, 2, 2), -721.64644486)])
def test_raspa3_two_co2_in_itq29(reps, expected):
    atoms = itq29()
    assert atoms.get_chemical_formula() == "O48Si24"
    c = 5.93355
    pos = _two_co2([c, c + 2.0, c], [c, c - 2.0, c])
    assert abs(_fourier(atoms.repeat(reps), pos) - expected) < 1e-6


def _nacl_conventional():
    fcc = np.array([[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 0]], dtype=np.float64)
    return np.concatenate([fcc, fcc + [1.0, 0.0, 0.0]]), np.array([1.0] * 4 + [-1.0] * 4)


@pytest.mark.parametrize("alpha, k", [(4.5, 14), (5.5, 17)])
def test_nacl_madelung_constant(alpha, k):
    # 8 ions, nearest-neighbour distance 1: U = -4 M with C = 1. Terms neglected:
    # erfc(alpha r_c)/r_c and exp(-k^2/4 alpha^2) at the cube's edge, both < 1e-9.
    pos, q = _nacl_conventional()
    e = ewald_energy(
        pos, q, 2.0 * np.eye(3), alpha=alpha, kmax=(k,) * 3, r_cut=1.0, coulomb_constant=1.0
    )
    assert abs(-e / 4 - 1.747564594633) < 1e-8


@pytest.mark.parametrize("alpha, k", [(1.5, 10), (2.0, 14)])
def test_net_charge_single_ion_wigner_constant(alpha, k):
    # One unit charge per simple-cubic cell of side L in a uniform neutralising background:
    # U = -xi / (2 L). Without the background term the result would depend on alpha.
    L = 3.0
    e, terms = ewald_energy(
        np.zeros((1, 3)),
        [1.0],
        L * np.eye(3),
        alpha=alpha,
        kmax=(k,) * 3,
        r_cut=L / 2,
        coulomb_constant=1.0,
        return_terms=True,
    )
    assert terms["net_charge"] < 0
    assert abs(e * 2 * L + 2.837297479480) < 1e-8


def test_alpha_invariance_of_a_charged_molecular_system():
    # Two rigid CO2 plus a lone cation in a triclinic cell: net charge +1, an exclusion
    # term and a background term; the total is the same for every alpha (each run's
    # truncation below 1e-8 relative; the parameters come from ewald_parameters).
    cell = np.array([[12.0, 0.0, 0.0], [1.5, 11.0, 0.0], [-1.0, 0.8, 12.5]])
    pos = np.concatenate([_two_co2([3.0, 3.0, 3.0], [7.0, 5.5, 8.0]), [[6.0, 8.0, 2.0]]])
    q = np.concatenate([TWO_CO2_Q, [1.0]])
    mol = np.concatenate([TWO_CO2_MOL, [2]])
    energies = []
    for r_cut, precision in ((5.0, 1e-9), (5.0, 1e-11), (4.0, 1e-10)):
        alpha, kmax = ewald_parameters(cell, r_cut, precision)
        energies.append(
            ewald_energy(
                pos,
                q,
                cell,
                alpha=alpha,
                kmax=kmax,
                r_cut=r_cut,
                molecule_index=mol,
                coulomb_constant=1.0,
            )
        )
    assert np.ptp(energies) < 1e-7 * abs(energies[0])


def test_direct_lattice_sum_spherical_order():
    rng = np.random.default_rng(0)
    L = 4.0
    pos = rng.uniform(0.0, L, (4, 3))
    q = np.array([1.0, -1.0, 0.5, -0.5])
    e = ewald_energy(
        pos, q, L * np.eye(3), alpha=3.0, kmax=(14,) * 3, r_cut=2.0, coulomb_constant=1.0
    )
    dipole = q @ pos
    e_sphere = e + 2.0 * np.pi / (3.0 * L**3) * dipole @ dipole
    radius = 40  # cells; the direct sum's truncation error there is ~2e-6 (R = 20, 40, 60)
    g = np.arange(-radius, radius + 1)
    n = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    shifts = L * n[np.sum(n * n, axis=1) <= radius**2]
    direct = 0.0
    for i in range(4):
        for j in range(4):
            r = np.linalg.norm(pos[i] - pos[j] + shifts, axis=1)
            direct += 0.5 * q[i] * q[j] * np.sum(1.0 / r[r > 0])
    assert abs(direct - e_sphere) < 1e-5
    # and the surface term matters at this tolerance:
    assert abs(direct - e) > 0.1


def test_parameters_from_accuracy_and_cutoff_checked():
    # The DL_POLY/RASPA rule for MFI 2x2x2 at 1e-6 and r_c = 12 Å.
    cell = np.diag([40.044, 39.798, 26.766])
    alpha, kmax = ewald_parameters(cell, 12.0, 1e-6)
    assert abs(alpha - np.sqrt(np.log(1.2e-5 * np.sqrt(-np.log(1.2e-5))) * -1) / 12) < 1e-12
    assert kmax == (11, 11, 7)
    with pytest.raises(ValueError, match="perpendicular width"):
        ewald_parameters(np.diag([20.0, 20.0, 13.0]), 12.0)
    with pytest.raises(ValueError, match="perpendicular width"):
        ewald_energy(np.zeros((1, 3)), [1.0], 10 * np.eye(3), alpha=0.3, kmax=(3, 3, 3), r_cut=6.0)
    with pytest.raises(ValueError, match="kmax"):
        ewald_energy(np.zeros((1, 3)), [1.0], 10 * np.eye(3), alpha=0.3, kmax=(3, 3), r_cut=4.0)
    with pytest.raises(ValueError, match="charges"):
        ewald_energy(np.zeros((2, 3)), [1.0], 10 * np.eye(3), alpha=0.3, kmax=(3, 3, 3), r_cut=4.0)
    assert abs(COULOMB_CONSTANT_CODATA - 167100.9469) < 1e-3


def test_kvector_sets_against_direct_counts():
    cell = np.diag([12.0, 14.0, 9.0])
    km = (4, 5, 3)
    grid = [(a, b, c) for a in range(-4, 5) for b in range(-5, 6) for c in range(-3, 4)]
    grid = np.array([n for n in grid if n != (0, 0, 0)])
    k = 2.0 * np.pi * grid / np.diag(cell)
    k_c = min(2.0 * np.pi * m / L for m, L in zip(km, np.diag(cell), strict=True))
    expected = {
        "cube": len(grid),
        "raspa": int(np.sum(np.sum(grid**2, axis=1) <= 25)),
        "sphere": int(np.sum(np.sum(k * k, axis=1) <= k_c**2 * (1 + 1e-12))),
    }
    assert len(set(expected.values())) == 3  # the three sets differ here
    for kspace, n in expected.items():
        kv = EwaldKVectors(cell, alpha=0.3, kmax=km, kspace=kspace)
        assert 2 * kv.kvectors.shape[0] == n, kspace  # one of each +-k pair
        assert int(kspace_mask(grid, cell, km, kspace).sum()) == n
    with pytest.raises(ValueError, match="kspace"):
        EwaldKVectors(cell, alpha=0.3, kmax=km, kspace="ball")
