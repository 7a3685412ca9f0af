"""Framework energy grids for GCMC (``gcmc_system(..., grid_spacing=...)``): exact checks.

* At the grid nodes the tabulated fields equal the direct sums (LJ + Ewald real space +
  the framework–molecule Fourier cross term per unit charge) to the float32 rounding of
  the stored values.
* The tricubic (cubic Lagrange per axis) interpolation reproduces polynomials of degree
  3 per axis exactly, so its error falls as :math:`h^4`: halving the spacing cuts the
  largest error of the CO₂ framework energy at random accessible placements by at least
  8 (theory 16; the factor 2 allows for the pre-asymptotic regime), and at the finer
  spacing the error is below the 9/384 h^4 max|f''''| remainder bound, with f'''' taken
  from the measured coarse-grid error (err(h) >= (16-1)/16 of it ... see the test).
* Detailed balance of insertion and deletion with the grid: with one molecule slot the
  chain lives on N in {0, 1} and P(1)/P(0) = beta f V <exp(-beta U_1)>, U_1 the one-molecule
  energy (grid framework term + its own Fourier and self terms), averaged over uniform
  placements independently of the sampler; checked within 4 standard errors, with
  configurational-bias swaps.
* Different frameworks stacked (padded) and vmapped: each running energy equals the
  energy of its state recomputed with its own unpadded system.
* Bad input (spacing <= 0, a grid above the memory budget, stacking direct systems)
  fails with a clear message.
"""

import ase
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import thermo.materials as tm
from thermo.materials import gcmc as g
from thermo.materials.grids import interpolate

_Q = {"Si": 2.05, "O": -1.025}
# RASPA's rule for 1e-6 (alpha ~ 0.58/Å at r_c = 6 Å): the real-space field's jump where an
# atom crosses r_c, C q q' erfc(alpha r_c)/r_c, is ~1e-4 K (with alpha = 0.3/Å it would be
# ~300 K, a discontinuity no grid resolves, and one the direct sum has too)
_EWALD = {"ewald_precision": 1e-6}


def _framework(scale=1.0):
    rng = np.random.default_rng(5)
    symbols = ["Si"] * 3 + ["O"] * 6
    return ase.Atoms(
        symbols,
        positions=rng.uniform(0, 12.0 * scale, (9, 3)),
        cell=12.0 * scale * np.eye(3),
        pbc=True,
    )


def _lattice():
    """Rock salt of Si/O at 6 Å in a 12 Å cell: wide pores, no deep pockets (for sampling)."""
    si = [(0, 0, 0), (6, 6, 0), (6, 0, 6), (0, 6, 6)]
    o = [(6, 0, 0), (0, 6, 0), (0, 0, 6), (6, 6, 6)]
    return ase.Atoms(
        ["Si"] * 4 + ["O"] * 4, positions=np.array(si + o, float), cell=12 * np.eye(3), pbc=True
    )


def _system(molecule, spacing=None, framework=None, **kw):
    args = {
        "temperature": 300.0,
        "fugacities": [2.0e5],
        "framework": _framework() if framework is None else framework,
        "framework_charges": _Q,
        "capacity": 8,
        "r_cut": 6.0,
        **_EWALD,
        **kw,
    }
    return g.gcmc_system(molecule, grid_spacing=spacing, **args)


def _probe():
    return tm.Molecule(
        name="X",
        model="test",
        site_names=("X",),
        positions=np.zeros((1, 3)),
        epsilon=np.array([80.0]),
        sigma=np.array([3.0]),
        charges=np.array([1.0]),
        citation="test probe",
    )


@jax.jit
def _direct_framework_energy(system, centres, sites):
    """Direct framework term of molecules of species 0: LJ + real space + Fourier cross."""

    def one(c, x):
        ds = g._molecule_structure_factor(system, x, 0)
        cross = g._fourier_delta(system, system.framework_structure_factor, ds)
        cross = cross - g._fourier_delta(system, jnp.zeros_like(ds), ds)
        return g._framework_energy(system, x, c, 0) + cross

    return jax.vmap(one)(centres, sites)


@jax.jit
def _grid_framework_energy(system, centres, sites):
    return jax.vmap(lambda c, x: g._framework_energy(system, x, c, 0))(centres, sites)


@eqx.filter_jit
def _placements_from_key(system, key, n):
    c, x = g._random_placements(key, system, 0, n)
    return jax.vmap(lambda a, b: g._wrap(a, b, system))(c, x)


def _placements(system, n, seed):
    return _placements_from_key(system, jr.key(seed), n)


@jax.jit
def _self_energy(system, sites):
    """The one-molecule Fourier and self terms of molecules of species 0 at ``sites``."""

    def one(x):
        ds = g._molecule_structure_factor(system, x, 0)
        return g._fourier_delta(system, jnp.zeros_like(ds), ds)

    return jax.vmap(one)(sites) + system.self_constant[0]


def test_grid_nodes_equal_the_direct_sum():
    probe = _probe()
    direct, grid = _system(probe), _system(probe, spacing=0.4)
    shape = np.asarray(grid.grid_shape)
    rng = np.random.default_rng(0)
    nodes = rng.integers(0, shape, size=(200, 3))
    reps = np.asarray(direct.reps)
    centres = jnp.asarray((nodes / shape / reps) @ np.asarray(direct.cell))
    sites = centres[:, None, :]
    expected = np.asarray(_direct_framework_energy(direct, centres, sites))
    table = np.asarray(grid.grid, dtype=np.float64)[nodes[:, 0], nodes[:, 1], nodes[:, 2]]
    got = table[:, 0] + table[:, 1]  # (n, [LJ, phi]): a unit charge
    free = table[:, 0] < float(grid.grid_block)
    assert free.sum() > 100
    # the grids are stored in float32: each value is rounded by at most 2^-24 of itself
    bound = 2.0**-24 * (np.abs(table[:, 0]) + np.abs(table[:, 1])) + 1e-9 * np.abs(expected)
    assert np.all(np.abs(got - expected)[free] <= bound[free] + 1e-9)


def test_interpolation_is_exact_for_cubics():
    shape = jnp.asarray([9, 10, 11], dtype=jnp.int32)
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in (9, 10, 11)], indexing="ij"), -1)
    x, y, z = idx[..., 0] * 1.0, idx[..., 1] * 1.0, idx[..., 2] * 1.0
    f = 0.3 * x**3 - x * y**2 + 2.0 * y**3 * z + z**3 - 5.0 * x * y * z + 1.0
    grids = jnp.asarray(f[..., None])
    rng = np.random.default_rng(1)
    u = rng.uniform([1, 1, 1], [6.99, 7.99, 8.99], size=(100, 3))  # stencils stay inside
    frac = jnp.asarray(u / np.array([9, 10, 11]))
    vals, _ = jax.vmap(lambda p: interpolate(grids, shape, p))(frac)
    x, y, z = u[:, 0], u[:, 1], u[:, 2]
    exact = 0.3 * x**3 - x * y**2 + 2.0 * y**3 * z + z**3 - 5.0 * x * y * z + 1.0
    np.testing.assert_allclose(np.asarray(vals)[:, 0], exact, rtol=1e-11, atol=1e-9)


def test_grid_error_falls_as_h4():
    co2 = tm.load_molecule("CO2")
    direct = _system(co2)
    centres, sites = _placements(direct, 4000, seed=2)
    u_direct = np.asarray(_direct_framework_energy(direct, centres, sites))
    errors = []
    for h in (0.3, 0.15):
        u_grid = np.asarray(_grid_framework_energy(_system(co2, spacing=h), centres, sites))
        errors.append(np.abs(u_grid - u_direct))
    ok = (u_direct < 0.0) & np.all([e < 1e8 for e in errors], axis=0)  # accessible, unblocked
    assert ok.sum() > 200
    coarse, fine = (float(e[ok].max()) for e in errors)
    assert fine < coarse / 8.0, (coarse, fine)


def test_one_slot_insertion_deletion_balance_with_grid():
    co2 = tm.load_molecule("CO2")
    moves = {"translation": 0.5, "rotation": 0.5, "insertion": 1.0, "deletion": 1.0}
    kw = {"spacing": 0.3, "capacity": 1, "n_trials": 4, "move_probabilities": moves}
    kw |= {"framework": _lattice(), "framework_charges": {"Si": 0.3, "O": -0.3}}
    kw |= {"temperature": 400.0}

    def boltzmann_mean(system):  # <exp(-beta U_1)> over uniform placements, sampler-free
        centres, sites = _placements(system, 100_000, seed=3)
        u_frame = np.asarray(_grid_framework_energy(system, centres, sites))
        u_self = np.asarray(_self_energy(system, sites))
        boltz = np.exp(-float(system.beta) * np.minimum(u_frame + u_self, 1e5))
        return boltz.mean(), boltz.std(ddof=1) / np.sqrt(boltz.size)

    first = _system(co2, fugacities=[1.0e5], **kw)
    w, w_se = boltzmann_mean(first)  # <exp(-beta U_1)> does not depend on the fugacity
    # the fugacity that makes beta f V <exp(-beta U_1)> = 1 (<N> = 1/2, the largest variance);
    # only log(beta f V) changes, so the grid system is reused rather than rebuilt
    bfv = 1.0 / w
    system = eqx.tree_at(
        lambda sy: sy.log_beta_f_v, first, jnp.log(jnp.full_like(first.log_beta_f_v, bfv))
    )
    r, r_se = bfv * w, bfv * w_se
    expected, expected_se = r / (1 + r), r_se / (1 + r) ** 2
    n_boxes, block, n_blocks = 8, 1000, 2  # one compiled block length: burn-in, then 2 blocks
    states = jax.vmap(lambda _: g.gcmc_init(system))(jnp.arange(n_boxes))
    states, _ = g.gcmc_sample_batched(jr.split(jr.key(4), n_boxes), system, states, block)
    sum_n = 0.0
    for b in range(n_blocks):
        keys = jr.split(jr.key(5 + b), n_boxes)
        states, stats = g.gcmc_sample_batched(keys, system, states, block)
        sum_n = sum_n + np.asarray(stats.sum_n)[:, 0]
    mean_n = sum_n / (block * n_blocks)
    se = np.hypot(mean_n.std(ddof=1) / np.sqrt(n_boxes), expected_se)
    assert abs(mean_n.mean() - expected) < 4.0 * se, (mean_n.mean(), expected, se)
    ideal = bfv / (1 + bfv)  # the framework matters: the check has power
    assert abs(mean_n.mean() - ideal) > 4.0 * se, (mean_n.mean(), ideal, se)


def test_stacked_frameworks_keep_each_energy_model():
    co2 = tm.load_molecule("CO2")
    # the second on another k-set and k-cube: the k-rows and wave-number ranges are padded
    other = {"ewald_kspace": "cube", "ewald_kmax": (6, 5, 8)}
    systems = [
        _system(co2, spacing=0.4, framework=_framework(s), n_trials=3, **kw)
        for s, kw in ((1.0, {}), (1.1, other))
    ]
    assert systems[0].grid.shape != systems[1].grid.shape  # padding is exercised
    assert systems[0].k_weights.shape[0] != systems[1].k_weights.shape[0]
    assert [r.shape for r in systems[0].k_ranges] != [r.shape for r in systems[1].k_ranges]
    stacked = g.gcmc_stack_systems(systems)
    states = jax.vmap(g.gcmc_init)(stacked)
    final, stats = g.gcmc_sample_frameworks(jr.split(jr.key(6), 2), stacked, states, 400)
    for i, system in enumerate(systems):
        state = jax.tree.map(lambda a, i=i: a[i], final)
        assert int(state.occupied.sum()) >= 2
        # the padded run's running energy is the unpadded system's energy of its state
        terms = g.gcmc_total_energy(system, state)
        np.testing.assert_allclose(float(state.energy), terms["total"], rtol=1e-8, atol=1e-6)
        assert terms["structure_factor_error"] < 1e-9
    assert not np.allclose(*np.asarray(stats.sum_energy))  # two different frameworks


def test_grid_bad_input_fails_fast():
    probe = _probe()
    for bad in (0.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="grid_spacing"):
            _system(probe, spacing=bad)
    with pytest.raises(ValueError, match="grid_max_bytes"):
        _system(probe, spacing=0.1, grid_max_bytes=1e6)
    with pytest.raises(ValueError, match="grid systems"):
        g.gcmc_stack_systems([_system(probe)])
