"""Metropolis displacement MC on periodic systems: exact two-body average, bookkeeping."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from scipy import integrate, signal

from thermo.kernel import run
from thermo.materials import correlated_mean, displacement_mc, lj_energy_fn, periodic_space
from thermo.materials.lj import lj_pair

L2, RC2, T2 = 3.0, 1.45, 1.5  # two LJ particles in a periodic cube


def _exact_two_body_energy():
    """<u> for two particles in a periodic cube: the relative coordinate is uniform on the
    minimum-image cell, so <u> = int_0^rc 4 pi r^2 u e^{-u/T} / (int_0^rc 4 pi r^2 e^{-u/T}
    + L^3 - 4/3 pi rc^3), exactly (rc < L/2)."""

    def u(r):
        return float(lj_pair(r, r_cut=RC2))

    num = integrate.quad(
        lambda r: 4 * np.pi * r**2 * u(r) * np.exp(-u(r) / T2), 0.5, RC2, limit=200
    )[0]
    den = integrate.quad(lambda r: 4 * np.pi * r**2 * np.exp(-u(r) / T2), 0.5, RC2, limit=200)[0]
    return num / (den + L2**3 - 4 / 3 * np.pi * RC2**3)


def _mean_energy(kernel, states, key, n_steps, burn):
    """Mean state energy over vmapped chains after ``burn`` steps, and its standard error
    from the spread of the independent chains' means."""

    @jax.jit
    def go(keys, states):
        return jax.vmap(
            lambda k, s: run(k, kernel, s, n_steps, observable_fn=lambda s, i: s.energy)
        )(keys, states)

    n_chains = jax.tree.leaves(states)[0].shape[0]
    _, energies = go(jr.split(key, n_chains), states)
    chain_means = np.asarray(energies)[:, burn:].mean(axis=1)
    return chain_means.mean(), chain_means.std(ddof=1) / np.sqrt(n_chains)


def test_two_particle_mean_energy_is_exact():
    disp, shift = periodic_space(L2)
    kernel = displacement_mc(disp, shift, temperature=T2, step_size=0.8, r_cut=RC2)
    n_chains, n_steps, burn = 256, 300, 20
    x0 = jr.uniform(jr.key(11), (n_chains, 2, 3), minval=0.0, maxval=L2)
    # start from a non-overlapping pair
    x0 = x0.at[:, 1].set(jnp.mod(x0[:, 0] + jnp.array([1.4, 0.0, 0.0])[None, :], L2))
    states = jax.vmap(kernel.init)(x0)

    mean, se = _mean_energy(kernel, states, jr.key(12), n_steps, burn)
    assert abs(mean - _exact_two_body_energy()) < 4 * se


def test_running_energy_matches_recomputation():
    side = (32 / 0.8) ** (1 / 3)
    disp, shift = periodic_space(side)
    kernel = displacement_mc(disp, shift, temperature=1.0, step_size=0.15, r_cut=1.6)
    g = (np.arange(4) + 0.5) / 4
    grid = np.stack(np.meshgrid(g, g, g[:2], indexing="ij"), -1).reshape(-1, 3) * side
    state = kernel.init(jnp.asarray(grid))
    state, trace = jax.jit(
        lambda k, s: run(k, kernel, s, 10, observable_fn=lambda s, i: i.acceptance_rate)
    )(jr.key(5), state)
    ref = lj_energy_fn(disp, r_cut=1.6)(state.positions)
    np.testing.assert_allclose(float(state.energy), float(ref), rtol=1e-9)
    assert 0.05 < float(jnp.mean(trace)) < 0.95


def test_correlated_mean_of_ar1_series_has_the_exact_standard_error():
    # AR(1), x_t = phi x_{t-1} + e_t: stationary variance 1/(1-phi^2) and statistical
    # inefficiency g = (1+phi)/(1-phi) = 9 exactly, so the standard error of the mean of
    # C chains of length n is sqrt(g / ((1-phi^2) n C)). The estimated g has relative sd
    # about sqrt(2(2 t_c + 1)/n) ~ 0.08 per chain (t_c ~ 40 lags summed), ~0.04 over 4
    # chains, i.e. ~0.02 on the standard error; 4 of those is 0.08 -> tolerance 0.1.
    phi, n, chains = 0.8, 20_000, 4
    e = np.random.default_rng(0).normal(size=(n, chains))
    x = signal.lfilter([1.0], [1.0, -phi], e, axis=0)
    mean, err, g = correlated_mean(x)
    exact = np.sqrt((1 + phi) / (1 - phi) / (1 - phi**2) / (n * chains))
    assert abs(err / exact - 1.0) < 0.1
    assert abs(g / 9.0 - 1.0) < 0.2
    assert abs(mean) < 4 * err


def test_langevin_adapter_samples_harmonic_configurations_exactly():
    # BAOAB's configurational marginal is exact for harmonic U (Leimkuhler & Matthews
    # 2013): with U = k/2 sum |R - R0|^2 over 2 particles, <U> = (6/2) T for any dt.
    from thermo.materials import langevin_kernel

    t, k_spring = 0.7, 3.0
    r0 = jnp.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])

    def energy(r):
        return 0.5 * k_spring * jnp.sum((r - r0) ** 2)

    kernel = langevin_kernel(energy, 2, temperature=t, dt=0.3, friction=2.0)
    n_chains, n_steps, burn = 256, 400, 50
    states = jax.vmap(lambda _: kernel.init(r0))(jnp.arange(n_chains))

    mean, se = _mean_energy(kernel, states, jr.key(21), n_steps, burn)
    assert abs(mean - 3 * t) < 4 * se


def test_sample_lj_fluid_compiles_once_for_every_state_point():
    from tests._compile_count import count_compiles
    from thermo.materials import sample_lj_fluid

    kw = dict(n_cells=2, n_chains=2, n_adapt=2, adapt_sweeps=3, n_equilibrate=4, n_production=6)
    first = sample_lj_fluid(jr.key(0), temperature=2.0, density=0.8, **kw)
    with count_compiles() as c:
        again = sample_lj_fluid(jr.key(0), temperature=2.0, density=0.8, **kw)
        sample_lj_fluid(jr.key(1), temperature=1.2, density=0.9, **kw)  # a new state point
    assert c.n == 0
    np.testing.assert_array_equal(first.energy_per_particle, again.energy_per_particle)
    # the recorded energy is the running energy of the chain: recompute it at the end
    u_end = (
        jax.vmap(lj_energy_fn(periodic_space(first.box)[0], r_cut=3.0))(
            jnp.asarray(first.positions)
        )
        / first.positions.shape[1]
    )
    assert first.energy_per_particle.shape == (6, 2)  # (records, chains)
    assert np.all(np.isfinite(first.pressure))
    assert np.all(np.asarray(u_end) < 0)
