"""The same configuration has the same LJ energy in RASPA3 and in our GCMC.

RASPA3 (PyPI ``raspalib``) adsorbs CO2 in MFI for a few seeded cycles; its molecules'
positions are read back and our :func:`thermo.materials.gcmc_total_energy` is evaluated on
them, with the same force field (TraPPE-zeo O/Si, Garcia-Sanchez CO2, Lorentz-Berthelot,
shifted at 12 A, no tail correction). The framework-molecule and molecule-molecule LJ terms
are plain sums in double precision on both sides, so they agree to round-off. Skipped with
a message without ``raspalib`` or the MFI reference structure (not shipped).
"""

import math
import warnings

import jax.numpy as jnp
import numpy as np
import pytest

import thermo.materials as tm

#: RASPA3's internal energy unit (amu A^2 ps^-2) in kelvin (its Units::EnergyToKelvin).
RASPA_ENERGY_TO_K = 1.2027242847
R_CUT = 12.0


@pytest.fixture(scope="module")
def raspa_configuration():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import raspalib as r
    except ImportError:
        pytest.skip("raspalib (RASPA3's Python package) is not installed")
    path = tm.shared_materials_path("MFI_SI.cif", required=False)
    if path is None:
        pytest.skip(
            "../shared/data/materials/MFI_SI.cif is absent (a reference input, not shipped)"
        )
    atoms = tm.read_structure(path)
    co2 = tm.load_molecule("CO2")
    ff = tm.adsorption_force_field(co2, "trappe-zeo")["atoms"]
    charges = {"Si": 2.05, "O": -1.025}
    names = ["Si", "O", *dict.fromkeys(co2.site_names)]
    index = {n: i for i, n in enumerate(names)}
    site = dict(
        zip(co2.site_names, zip(co2.charges, co2.epsilon, co2.sigma, strict=True), strict=True)
    )
    pseudo = [
        r.PseudoAtom(
            n, n in charges, 1.0, charges[n] if n in charges else float(site[n][0]), 0.0, 6
        )
        for n in names
    ]
    params = [
        r.VDWParameters(float(ff[n]["epsilon"]), float(ff[n]["sigma"]))
        if n in charges
        else r.VDWParameters(float(site[n][1]), float(site[n][2]))
        for n in names
    ]
    force_field = r.ForceField(
        pseudo_atoms=pseudo,
        parameters=params,
        mixing_rule=r.ForceField.MixingRule.LORENTZ_BERTHELOT,
        cutoff_framework_vdw=R_CUT,
        cutoff_molecule_vdw=R_CUT,
        cutoff_coulomb=R_CUT,
        shifted=True,
        tail_corrections=False,
        use_charge=False,
    )
    frac = np.mod(atoms.get_scaled_positions(wrap=False), 1.0)
    symbols = atoms.get_chemical_symbols()
    fw_atoms = [
        r.Atom(tuple(f), 0.0, 1.0, 0, index[s], 0, 0, True)
        for f, s in zip(frac.tolist(), symbols, strict=True)
    ]
    a, b, c, al, be, ga = atoms.cell.cellpar()
    box = r.SimulationBox(a, b, c, math.radians(al), math.radians(be), math.radians(ga))
    framework = r.Framework(force_field, "MFI", box, 1, fw_atoms, [2, 2, 2])
    centred = co2.positions - co2.positions.mean(axis=0)
    mol = [
        r.Atom(tuple(p), 0.0, 1.0, 0, index[n], 0, 0, False)
        for p, n in zip(centred.tolist(), co2.site_names, strict=True)
    ]
    probs = r.MCMoveProbabilities(
        translation_probability=0.5, rotation_probability=0.5, swap_cbmc_probability=1.0
    )
    comp = r.Component(
        force_field, "CO2", *tm.gcmc.CRITICAL_CONSTANTS["CO2"], mol, particle_probabilities=probs
    )
    system = r.System(force_field, None, False, 353.0, 1e6, 0.0, framework, [comp], [], [0], 5)
    mc = r.MonteCarlo(
        number_of_cycles=1,
        number_of_initialization_cycles=40,
        print_every=10**9,
        systems=[system],
        random_seed=5,
    )
    mc.run()
    out = mc.systems[0]
    positions = np.array([list(x.position) for x in out.atom_data])[len(symbols) * 8 :]
    energies = out.compute_total_energies()
    return atoms, co2, ff, positions.reshape(-1, 3, 3), energies


def test_lj_energy_of_a_raspa3_configuration(raspa_configuration):
    atoms, co2, _, sites, energies = raspa_configuration
    n = sites.shape[0]
    assert n >= 5  # molecule-molecule pairs are exercised
    neutral = co2._replace(charges=np.zeros_like(co2.charges))
    system = tm.gcmc_system(
        neutral,
        temperature=353.0,
        fugacities=[1e6],
        framework=atoms,
        framework_lj="trappe-zeo",
        unit_cells=(2, 2, 2),
        capacity=n + 3,
        r_cut=R_CUT,
    )
    state = tm.gcmc_init(system)
    occupied = np.arange(system.capacity) < n
    pad = np.zeros((system.capacity - n, 3, 3))
    state = state._replace(
        sites=jnp.asarray(np.concatenate([sites, pad])),
        centres=jnp.asarray(np.concatenate([sites, pad]).mean(axis=1)),
        occupied=jnp.asarray(occupied),
    )
    ours = tm.gcmc_total_energy(system, state)
    theirs_framework = energies.framework_molecule_vdw * RASPA_ENERGY_TO_K
    theirs_pairs = energies.molecule_molecule_vdw * RASPA_ENERGY_TO_K
    assert abs(theirs_pairs) > 10.0  # the molecules interact
    np.testing.assert_allclose(ours["framework"], theirs_framework, rtol=1e-9)
    np.testing.assert_allclose(ours["pairs"], theirs_pairs, rtol=1e-9)
    assert ours["fourier"] == 0.0
