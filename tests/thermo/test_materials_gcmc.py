"""Grand-canonical Monte Carlo of rigid molecules: exact checks.

* Ideal gas (binary): :math:`N_s` is Poisson with mean :math:`\\beta f_s V`; the mean and
  the variance are checked within 4 standard errors over independent vmapped boxes.
  With configurational-bias swaps (``n_trials = 4``) every trial weight is 1, so this
  checks the :math:`1/k` normalisation of the Rosenbluth weights.
* Interacting LJ binary mixture: the grand-canonical Widom identity
  :math:`\\langle N_s\\rangle = \\beta f_s V\\,\\langle e^{-\\beta\\Delta U_s}\\rangle`
  (the test insertions being the insertion attempts) holds exactly for correct
  acceptance rules; checked within 4 SE, and the interactions shift
  :math:`\\langle N\\rangle` from the ideal value by many SE (the check has power);
  with plain moves and with configurational-bias insertion, deletion and reinsertion
  (:math:`k = 4`, the insertion attempt's :math:`W/k` the Widom estimate), whose
  :math:`\\langle N_s\\rangle` must also agree with each other.
* Energies: the incrementally updated energy and :math:`S(k)` equal a fresh recompute
  (on the default k-set, RASPA3's integer sphere); one molecule's energy equals
  :func:`thermo.materials.framework_energy_fn`'s; the Fourier term on the whole k-cube
  equals :func:`thermo.materials.ewald_fourier_energy` (RASPA3-matched), on RASPA3's
  sphere an independent numpy sum over exactly those vectors (and differs from the
  cube's), the pair terms an independent numpy double loop.
* Peng-Robinson reduces to its second virial coefficient :math:`b - a/RT` as
  :math:`P\\to 0`.
"""

import dataclasses

import ase
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from scipy.special import erfc

import thermo.materials as tm
from thermo.cpu import one_cpu_thread_pool
from thermo.materials import gcmc as g
from thermo.materials.adsorption import _random_rotation


def _atom(name, epsilon, sigma):
    return tm.Molecule(
        name=name,
        model="test",
        site_names=(name,),
        positions=np.zeros((1, 3)),
        epsilon=np.array([epsilon]),
        sigma=np.array([sigma]),
        charges=np.zeros(1),
        citation="test particle",
    )


#: Both statistical tests build systems with the same static fields and shapes (names,
#: capacity, cutoff, step count), so they share one compiled sampler.
_N_BOXES, _N_STEPS = 16, 2000


def _fluid(epsilons, fugacities, temperature, n_trials=1):
    moves = {"translation": 1.0, "insertion": 1.0, "deletion": 1.0}
    if n_trials > 1:
        moves["reinsertion"] = 0.5
    return g.gcmc_system(
        [_atom("A", epsilons[0], 3.73), _atom("B", epsilons[1], 3.60)],
        temperature=temperature,
        fugacities=fugacities,
        cell=25.0 * np.eye(3),
        capacity=64,
        move_probabilities=moves,
        n_trials=n_trials,
    )


_STATS = {}


def _box_stats(system, seed):
    """Equilibrate, then sample ``_N_BOXES`` independent boxes; per-box :class:`GCMCStats`."""
    tag = (seed, system.n_trials, float(system.pair_epsilon[0, 0, 0, 0]))
    if tag in _STATS:
        return _STATS[tag]
    k_eq, k_prod = jr.split(jr.key(seed))
    states = jax.vmap(lambda _: g.gcmc_init(system))(jnp.arange(_N_BOXES))
    states, _ = g.gcmc_sample_batched(jr.split(k_eq, _N_BOXES), system, states, _N_STEPS)
    states, stats = g.gcmc_sample_batched(jr.split(k_prod, _N_BOXES), system, states, _N_STEPS)
    assert not bool(jnp.any(states.overflow))
    _STATS[tag] = jax.tree.map(np.asarray, stats)
    return _STATS[tag]


def _z(values, truth):
    """(mean over boxes - truth) / its standard error, per species."""
    values = np.asarray(values)
    se = values.std(axis=0, ddof=1) / np.sqrt(values.shape[0])
    return (values.mean(axis=0) - truth) / se


@pytest.mark.parametrize("n_trials", [1, 4])
def test_ideal_gas_binary_is_poisson(n_trials):
    system = _fluid((0.0, 0.0), [1.0e6, 0.5e6], 300.0, n_trials)
    bfv = np.exp(np.asarray(system.log_beta_f_v))  # 3.62, 1.81
    stats = _box_stats(system, seed=20261203)
    mean = stats.sum_n / stats.n_steps[:, None]  # (boxes, species)
    var = stats.sum_n2 / stats.n_steps[:, None] - bfv**2  # around the exact mean
    assert np.all(np.abs(_z(mean, bfv)) < 4.0), (mean.mean(0), bfv)
    assert np.all(np.abs(_z(var, bfv)) < 4.0), (var.mean(0), bfv)  # Poisson: var = mean


def test_cycle_convention_loading_is_the_exact_cycle_average_of_an_ideal_gas():
    # N = N_A + N_B is Poisson(lambda); a RASPA cycle of L = max(20, N) moves samples once,
    # so its mean tends to E[N_s / L] / E[1 / L], computed here from the Poisson pmf
    system = _fluid((0.0, 0.0), [5.5e6, 2.75e6], 300.0)
    bfv = np.exp(np.asarray(system.log_beta_f_v))  # 19.9, 9.95
    lam = float(bfv.sum())
    n = np.arange(200)
    pmf = np.exp(n * np.log(lam) - lam - np.cumsum(np.log(np.maximum(n, 1))))
    inv_l = 1.0 / np.maximum(tm.gcmc.RASPA_CYCLE_MIN_STEPS, n)
    exact = (bfv / lam) * np.sum(pmf * n * inv_l) / np.sum(pmf * inv_l)
    k_eq, k_prod = jr.split(jr.key(11))
    states = jax.vmap(lambda _: g.gcmc_init(system))(jnp.arange(_N_BOXES))
    states, _ = g.gcmc_sample_batched(jr.split(k_eq, _N_BOXES), system, states, _N_STEPS)
    parts = []
    for k in jr.split(k_prod, 4):  # 4 blocks of the compiled length
        states, stats = g.gcmc_sample_batched(jr.split(k, _N_BOXES), system, states, _N_STEPS)
        parts.append(jax.tree.map(np.asarray, stats))
    assert not bool(jnp.any(states.overflow))
    total = jax.tree.map(lambda *a: sum(a), *parts)
    cycle = np.asarray(tm.cycle_convention_loading(total))  # (boxes, species)
    mean = total.sum_n / total.n_steps[:, None]
    assert np.all(np.abs(_z(cycle, exact)) < 4.0), (cycle.mean(0), exact)
    assert np.all(np.abs(_z(mean, bfv)) < 4.0), (mean.mean(0), bfv)
    # the cycle average is biased low by about var(N)/<N> = 1/lambda: the check has power
    assert np.all(np.abs(_z(cycle, bfv)) > 4.0), (cycle.mean(0), bfv)


_MIXTURE = ((148.0, 171.0), [5.0e6, 2.5e6], 300.0)


@pytest.mark.parametrize("n_trials", [1, 4])
def test_lj_mixture_obeys_the_widom_identity(n_trials):
    system = _fluid(*_MIXTURE, n_trials)
    bfv = np.exp(np.asarray(system.log_beta_f_v))  # 18.9, 9.4
    stats = _box_stats(system, seed=7)
    mean_n = stats.sum_n / stats.n_steps[:, None]
    widom = stats.widom_sum / stats.widom_count
    z_identity = _z(mean_n - bfv * widom, 0.0)
    assert np.all(np.abs(z_identity) < 4.0), z_identity
    assert np.all(np.abs(_z(mean_n, bfv)) > 4.0), (mean_n.mean(0), bfv)  # non-ideal
    assert np.all(stats.accepted[:, 3] > 0) and np.all(stats.accepted[:, 4] > 0)


def test_cbmc_and_plain_swaps_sample_the_same_loading():
    plain = _box_stats(_fluid(*_MIXTURE, 1), seed=7)
    cbmc = _box_stats(_fluid(*_MIXTURE, 4), seed=7)
    n_plain = plain.sum_n / plain.n_steps[:, None]
    n_cbmc = cbmc.sum_n / cbmc.n_steps[:, None]
    se = np.hypot(*(n.std(axis=0, ddof=1) / np.sqrt(n.shape[0]) for n in (n_plain, n_cbmc)))
    z = (n_cbmc.mean(0) - n_plain.mean(0)) / se
    assert np.all(np.abs(z) < 4.0), z
    # the biased swaps are accepted more often (the point of CBMC)
    rate = [s.accepted[:, 3].sum() / s.attempts[:, 3].sum() for s in (plain, cbmc)]
    assert rate[1] > rate[0], rate


def _lj(r, epsilon, sigma):
    return 4 * epsilon * ((sigma / r) ** 12 - (sigma / r) ** 6)


def _toy_framework():
    rng = np.random.default_rng(3)
    n = 12
    symbols = ["Si"] * (n // 3) + ["O"] * (2 * n // 3)
    return ase.Atoms(
        symbols, positions=rng.uniform(0, 18.0, (n, 3)), cell=18.0 * np.eye(3), pbc=True
    )


def _charged_system(co2, atoms, q, **kw):
    return g.gcmc_system(
        co2,
        temperature=300.0,
        fugacities=[2.0e6],
        framework=atoms,
        framework_charges=q,
        capacity=24,
        r_cut=8.5,
        ewald_alpha=0.3,
        ewald_kmax=(5, 5, 5),
        n_trials=3,  # configurational-bias swaps and reinsertions
        **kw,
    )


@pytest.fixture(scope="module")
def charged_run():
    co2 = tm.load_molecule("CO2")
    atoms = _toy_framework()
    q = {"Si": 2.05, "O": -1.025}
    system = _charged_system(co2, atoms, q)  # default k-set: RASPA3's sphere
    state, _ = g.gcmc_sample(jr.key(11), system, g.gcmc_init(system), 600)
    return co2, atoms, q, system, state


def test_running_energy_equals_recompute(charged_run):
    _, _, _, system, state = charged_run
    n = int(state.occupied.sum())
    assert n >= 3
    terms = g.gcmc_total_energy(system, state)
    assert abs(float(state.energy) - terms["total"]) < 1e-7 * max(1.0, abs(terms["total"]))
    assert terms["structure_factor_error"] < 1e-9


def test_pair_sums_skip_empty_slots_exactly(charged_run):
    """The moves keep the molecules packed at the front (a deletion refills its slot from
    the last one), and the blocked pair sums, which stop at the last occupied slot, give
    the same energy for any layout as the unblocked sum: here the same molecules
    scattered with holes over 29 slots, in blocks of 8 and of 24 (neither divides 29, so
    the last block is shifted back)."""
    _, _, _, system, state = charged_run
    n = int(state.occupied.sum())
    assert np.array_equal(np.asarray(state.occupied), np.arange(system.capacity) < n)
    ref = g.gcmc_total_energy(system, state)
    cap = 29
    # the default: no blocks, unless XLA's CPU pool has one thread (taskset -c to one core)
    default = g._PAIR_BLOCK if one_cpu_thread_pool() else system.capacity
    assert system.pair_block == default
    rng = np.random.default_rng(0)
    slots = np.sort(np.append(rng.choice(cap - 1, n - 1, replace=False), cap - 1))

    def scatter(a, fill):
        return jnp.full((cap,) + a.shape[1:], fill, a.dtype).at[slots].set(a[:n])

    scattered = state._replace(
        centres=scatter(state.centres, 0.0),
        sites=scatter(state.sites, 0.0),
        species=scatter(state.species, 0),
        occupied=scatter(state.occupied, False),
    )
    for block in (g._PAIR_BLOCK, system.capacity):
        assert cap % block
        moved = dataclasses.replace(system, capacity=cap, pair_block=block)
        out = g.gcmc_total_energy(moved, scattered)
        for term in ("framework", "pairs", "fourier"):
            assert abs(out[term] - ref[term]) < 1e-9 * max(1.0, abs(ref[term])), (block, term)
    assert abs(ref["pairs"]) > 1.0  # the molecules do interact


def test_energy_terms_against_independent_evaluations(charged_run):
    co2, atoms, q, system, state = charged_run
    occ = np.asarray(state.occupied)
    sites = np.asarray(state.sites)[occ]  # (n, 3, 3)
    # the same configuration on the whole cube (the sum of ewald_fourier_energy)
    cube = _charged_system(co2, atoms, q, ewald_kspace="cube")
    # (the state's S(k) lives on the other k-set: only the fresh recompute is read)
    state = state._replace(structure_factor=cube.framework_structure_factor)
    terms = g.gcmc_total_energy(cube, state)
    qf = np.array([q[s] for s in atoms.get_chemical_symbols()])
    fourier = tm.ewald_fourier_energy(
        atoms.get_positions(),
        qf,
        sites.reshape(-1, 3),
        np.tile(co2.charges, len(sites)),
        np.repeat(np.arange(len(sites)), 3),
        atoms.cell.array,
        alpha=0.3,
        kmax=(5, 5, 5),
    )
    np.testing.assert_allclose(terms["fourier"], fourier, rtol=1e-10, atol=1e-8)
    # molecule-molecule LJ (LB, shifted at 8.5) + erfc real space, numpy double loop
    box, rc, alpha, c = 18.0, 8.5, 0.3, tm.COULOMB_CONSTANT_RASPA
    pairs = 0.0
    for i in range(len(sites)):
        for j in range(i + 1, len(sites)):
            for a in range(3):
                for b in range(3):
                    d = sites[i, a] - sites[j, b]
                    r = np.linalg.norm(d - box * np.round(d / box))
                    if r < rc:
                        e = np.sqrt(co2.epsilon[a] * co2.epsilon[b])
                        s = 0.5 * (co2.sigma[a] + co2.sigma[b])
                        pairs += _lj(r, e, s) - _lj(rc, e, s)
                        pairs += c * co2.charges[a] * co2.charges[b] * erfc(alpha * r) / r
    np.testing.assert_allclose(terms["pairs"], pairs, rtol=1e-10)


def _direct_fourier(frame_pos, frame_q, sites, site_q, box, alpha, kmax, keep):
    """RASPA3's ewaldFourier by a plain numpy loop over every integer vector ``keep`` takes."""
    c = tm.COULOMB_CONSTANT_RASPA
    x_mol = sites.reshape(-1, 3)
    q_mol = np.tile(site_q, len(sites))
    total = 0.0
    r = range(-kmax, kmax + 1)
    for n in ((a, b, d) for a in r for b in r for d in r):
        if n == (0, 0, 0) or not keep(n):
            continue
        k = 2.0 * np.pi * np.asarray(n, dtype=float) / box
        s_f = np.sum(frame_q * np.exp(1j * frame_pos @ k))
        s_t = s_f + np.sum(q_mol * np.exp(1j * x_mol @ k))
        k2 = k @ k
        total += np.exp(-k2 / (4 * alpha**2)) / k2 * (abs(s_t) ** 2 - abs(s_f) ** 2)
    total *= c * 2.0 * np.pi / box**3
    total -= c * alpha / np.sqrt(np.pi) * np.sum(q_mol**2)  # self
    for m in sites:  # intramolecular exclusion (rigid molecule: no minimum image needed)
        for i in range(len(m)):
            for j in range(i + 1, len(m)):
                d = np.linalg.norm(m[i] - m[j])
                total -= c * site_q[i] * site_q[j] * (1.0 - erfc(alpha * d)) / d
    return total


def test_raspa_k_set_against_a_direct_sum(charged_run):
    co2, atoms, q, system, state = charged_run
    occ = np.asarray(state.occupied)
    sites = np.asarray(state.sites)[occ]
    qf = np.array([q[s] for s in atoms.get_chemical_symbols()])
    args = (atoms.get_positions(), qf, sites, co2.charges, 18.0, 0.3, 5)
    terms = g.gcmc_total_energy(system, state)
    raspa = _direct_fourier(*args, keep=lambda n: n[0] ** 2 + n[1] ** 2 + n[2] ** 2 <= 25)
    np.testing.assert_allclose(terms["fourier"], raspa, rtol=1e-10, atol=1e-8)
    # the sphere keeps fewer vectors than the cube, and the difference is visible
    cube = _direct_fourier(*args, keep=lambda n: True)
    assert abs(cube - raspa) > 1e3 * 1e-10 * abs(raspa), (cube, raspa)
    n_kept = int(np.sum(np.asarray(system.k_weights) != 0))
    n2 = np.sum(np.stack(np.meshgrid(*[np.arange(-5, 6)] * 3), -1) ** 2, axis=-1)
    assert 2 * n_kept == np.sum((n2 > 0) & (n2 <= 25))


def test_one_molecule_matches_widom_insertion_energy():
    path = tm.shared_materials_path("MFI_SI.cif", required=False)
    if path is None:
        pytest.skip("../shared/data/materials/MFI_SI.cif is absent (reference input)")
    atoms = tm.read_structure(path)
    co2 = tm.load_molecule("CO2")
    q = {"Si": 2.05, "O": -1.025}
    system = g.gcmc_system(
        co2, temperature=353.0, fugacities=[1e5], framework=atoms, framework_charges=q, capacity=2
    )
    ff = tm.adsorption_force_field(co2, "trappe-zeo")
    energy_fn, _ = tm.framework_energy_fn(
        atoms, adsorbate="CO2", force_field=ff, framework_charges=q
    )
    state = g.gcmc_init(system)
    for i in range(2):
        k1, k2 = jr.split(jr.key(100 + i))
        frac, rot = jr.uniform(k1, (3,)), _random_rotation(k2, 3)
        centre = frac @ system.cell
        one = state._replace(
            centres=state.centres.at[0].set(centre),
            sites=state.sites.at[0].set(centre[None, :] + system.site_offsets[0] @ rot.T),
            occupied=state.occupied.at[0].set(True),
        )
        expected = float(jax.jit(energy_fn)(frac, rot))
        got = g.gcmc_total_energy(system, one)["total"]
        if expected < 1e9:  # the Widom function clamps overlaps at 1e10 K
            np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_peng_robinson_low_pressure_limit():
    tc, pc, om = g.CRITICAL_CONSTANTS["CO2"]
    t, p = 353.0, 1.0
    r = 1.380649e-23 * 6.02214076e23
    kappa = 0.37464 + 1.54226 * om - 0.26992 * om**2
    a = 0.45724 * r**2 * tc**2 / pc * (1 + kappa * (1 - np.sqrt(t / tc))) ** 2
    b = 0.07780 * r * tc / pc
    phi = g.peng_robinson_fugacity_coefficients(t, p, tc, pc, om)[0]
    np.testing.assert_allclose(np.log(phi), (b - a / (r * t)) * p / (r * t), rtol=1e-4)
    f = g.fugacities(["CO2", "N2"], 313.0, 1e5, [0.15, 0.85], eos="peng-robinson")
    assert np.all(f < [0.15e5, 0.85e5 * 1.001]) and abs(f[0] / 0.15e5 - 1) < 0.01


def test_bad_input_fails_fast():
    a = _atom("A", 0.0, 3.0)
    box = 25.0 * np.eye(3)
    with pytest.raises(ValueError, match="fugacities"):
        g.gcmc_system(a, temperature=300.0, fugacities=[1.0, 2.0], cell=box)
    with pytest.raises(ValueError, match="temperature"):
        g.gcmc_system(a, temperature=-1.0, fugacities=[1.0], cell=box)
    with pytest.raises(ValueError, match="cutoff|r_cut"):
        g.gcmc_system(a, temperature=300.0, fugacities=[1.0], cell=20.0 * np.eye(3))
    with pytest.raises(ValueError, match="insertion and deletion"):
        g.gcmc_system(
            a, temperature=300.0, fugacities=[1.0], cell=box, move_probabilities={"insertion": 1}
        )
    with pytest.raises(ValueError, match="framework or"):
        g.gcmc_system(a, temperature=300.0, fugacities=[1.0])
    with pytest.raises(ValueError, match="eos"):
        g.fugacities(["CO2"], 300.0, 1e5, eos="virial")
    with pytest.raises(ValueError, match="kspace"):
        g.gcmc_system(a, temperature=300.0, fugacities=[1.0], cell=box, ewald_kspace="ball")


def test_blocking_error_sees_correlated_blocks():
    from experiments.materials_co2_gcmc import blocking_std_err

    y = np.random.default_rng(0).normal(size=64)
    se_iid = y.std(ddof=1) / np.sqrt(y.size)
    doubled = np.repeat(
        y, 2
    )  # perfectly correlated neighbours: the plain SE is ~1/sqrt(2) too small
    assert doubled.std(ddof=1) / np.sqrt(doubled.size) < 0.75 * se_iid
    assert blocking_std_err(doubled) >= se_iid * (1 - 1e-12)
    assert np.isnan(blocking_std_err([1.0]))
