"""Materials sampling: periodic cells, hard-cut LJ, NVT sampling, free energies, adsorption.

See issue 9. Reduced LJ units unless stated; adsorption energies in K (``/k_B``).
"""

from .adsorption import WidomResult as WidomResult
from .adsorption import framework_energy_fn as framework_energy_fn
from .adsorption import henry_from_weight as henry_from_weight
from .adsorption import load_force_field as load_force_field
from .adsorption import widom as widom
from .cells import box_matrix as box_matrix
from .cells import check_cutoff as check_cutoff
from .cells import neighbor_list as neighbor_list
from .cells import periodic_space as periodic_space
from .cells import perpendicular_widths as perpendicular_widths
from .cells import replicas_for_cutoff as replicas_for_cutoff
from .eos import jzg_excess_energy as jzg_excess_energy
from .eos import jzg_excess_free_energy as jzg_excess_free_energy
from .eos import jzg_pressure as jzg_pressure
from .free_energy import density_integration as density_integration
from .free_energy import gauss_legendre_densities as gauss_legendre_densities
from .free_energy import gauss_lobatto_densities as gauss_lobatto_densities
from .free_energy import second_virial_coefficient as second_virial_coefficient
from .free_energy import third_virial_coefficient as third_virial_coefficient
from .free_energy import virial_pressure_series as virial_pressure_series
from .free_energy import widom_chemical_potential as widom_chemical_potential
from .free_energy import widom_excess_free_energy as widom_excess_free_energy
from .lj import lj_energy_fn as lj_energy_fn
from .lj import lj_neighbor_energy_fn as lj_neighbor_energy_fn
from .lj import lj_pair as lj_pair
from .lj import lj_pair_virial as lj_pair_virial
from .lj import lj_virial_fn as lj_virial_fn
from .lj import tail_energy_per_particle as tail_energy_per_particle
from .lj import tail_pressure as tail_pressure
from .lj import virial_pressure as virial_pressure
from .nvt import LJFluidRun as LJFluidRun
from .nvt import MCInfo as MCInfo
from .nvt import MCState as MCState
from .nvt import correlated_mean as correlated_mean
from .nvt import displacement_mc as displacement_mc
from .nvt import langevin_kernel as langevin_kernel
from .nvt import lj_observables as lj_observables
from .nvt import sample_lj_fluid as sample_lj_fluid
from .solid import FrenkelLadd as FrenkelLadd
from .solid import einstein_energy as einstein_energy
from .solid import einstein_log_partition_com as einstein_log_partition_com
from .solid import extrapolate_finite_size as extrapolate_finite_size
from .solid import fcc_harmonic_free_energy as fcc_harmonic_free_energy
from .solid import fcc_lattice_energy as fcc_lattice_energy
from .solid import frenkel_ladd_free_energy as frenkel_ladd_free_energy
from .solid import frenkel_ladd_mc as frenkel_ladd_mc
from .solid import harmonic_finite_size_correction as harmonic_finite_size_correction
from .structures import fcc_lattice as fcc_lattice
from .structures import from_arrays as from_arrays
from .structures import read_structure as read_structure
from .structures import to_arrays as to_arrays
