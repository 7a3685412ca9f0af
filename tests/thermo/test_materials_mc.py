"""The materials MC toolkit: the single-particle sweep samples a harmonic crystal of
independent Einstein oscillators exactly, its acceptance matches the exact one, the pair
energy change is the total-energy difference, and the Robbins-Monro driver tunes the step
to the target acceptance and then freezes it."""

import functools

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from thermo.materials import (
    adapt_equilibrate_produce,
    correlated_mean,
    fcc_lattice,
    metropolis_sweep,
    pair_energy_change,
    periodic_space,
    robbins_monro_log_step,
    to_arrays,
    total_pair_energy,
)
from thermo.materials.lj import lj_pair

N, N_CHAINS, TARGET = 64, 8, 0.4
SWEEPS = {"adapt": 5, "equilibrate": 20, "produce": 300}


def _harmonic_delta(pos, aux, i, old, new, delta):
    """U = |r|^2 / 2 per particle (beta = 1): each component is N(0, 1) exactly."""
    return 0.5 * (jnp.sum(new * new) - jnp.sum(old * old)), aux


@functools.partial(jax.jit, static_argnums=3)
def _sweeps(key, x, h, stage):
    def chain(key, x):
        def body(x, k):
            x, _, acc = metropolis_sweep(
                k, x, jnp.zeros(()), _harmonic_delta, beta=1.0, step_size=h, n_moves=N
            )
            return x, (acc, jnp.mean(x * x), jnp.mean(x**4))

        return jax.lax.scan(body, x, jr.split(key, SWEEPS[stage]))

    x, (acc, m2, m4) = jax.vmap(chain)(jr.split(key, N_CHAINS), x)
    return x, (acc if stage == "adapt" else (acc, m2, m4))


def _exact_acceptance(h, n=2_000_000):
    """E[min(1, exp(-dU))] at stationarity, x ~ N(0, I_3), delta ~ U[-h, h]^3: a plain
    Monte Carlo average of the exact integrand (independent draws), with its SE."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 3))
    d = rng.uniform(-h, h, (n, 3))
    a = np.minimum(1.0, np.exp(-0.5 * (np.sum((x + d) ** 2, 1) - np.sum(x * x, 1))))
    return a.mean(), a.std() / np.sqrt(n)


@pytest.fixture(scope="module")
def adapted():
    x0 = jnp.zeros((N_CHAINS, N, 3))
    return adapt_equilibrate_produce(jr.key(7), _sweeps, x0, jnp.asarray(0.1), n_adapt=80)


def test_sweep_samples_the_harmonic_moments_exactly(adapted):
    _, m2, m4 = adapted.trace  # (chains, sweeps)
    for series, exact in ((m2, 1.0), (m4, 3.0)):  # <x^2> = 1, <x^4> = 3 for N(0, 1)
        mean, se, _ = correlated_mean(np.asarray(series).T)
        assert abs(mean - exact) < 4.0 * se, (mean, exact, se)


def test_production_acceptance_is_the_exact_one_at_the_frozen_step(adapted):
    acc = np.asarray(adapted.trace[0])
    mean, se, _ = correlated_mean(acc.T)
    exact, se_exact = _exact_acceptance(float(adapted.step_size))
    assert abs(mean - exact) < 4.0 * np.hypot(se, se_exact), (mean, exact, se)


def test_robbins_monro_reaches_the_target_acceptance(adapted):
    # One adaptation round averages M = chains * sweeps * N moves, so a round's acceptance
    # has SD <= sqrt(a(1-a)/M) (moves at stationarity, positively correlated only through
    # the shared step). The last gain gamma_R ~ 0.22 moves log h by less than one such
    # SD, so the frozen step's exact acceptance is within 4 SD of the target.
    m = N_CHAINS * SWEEPS["adapt"] * N
    sd = np.sqrt(TARGET * (1 - TARGET) / m)
    exact, se_exact = _exact_acceptance(float(adapted.step_size))
    assert abs(exact - TARGET) < 4.0 * np.hypot(sd, se_exact), (exact, adapted.step_size)
    # it started far too small (acceptance ~ 1) and the history moved toward the target
    hist = adapted.acceptance_history
    assert hist.shape == (80,)
    assert hist[0] > 0.9 and abs(hist[-10:].mean() - TARGET) < 4.0 * sd


def test_robbins_monro_update_direction_and_fixed_point():
    h = jnp.asarray([1.0, 1.0, 1.0])
    new = robbins_monro_log_step(h, jnp.asarray([0.9, 0.4, 0.1]), 0, target_acceptance=0.4)
    assert new[0] > 1.0 and new[1] == 1.0 and new[2] < 1.0
    # gamma_0 = 1 / (a (1 - a)): log-step change (0.9 - 0.4) / 0.24
    np.testing.assert_allclose(float(jnp.log(new[0])), 0.5 / 0.24, rtol=1e-12)


def test_driver_rejects_bad_input():
    with pytest.raises(ValueError, match="step_size"):
        adapt_equilibrate_produce(jr.key(0), _sweeps, jnp.zeros((N_CHAINS, N, 3)), 0.0, n_adapt=1)
    with pytest.raises(ValueError, match="decay"):
        adapt_equilibrate_produce(
            jr.key(0), _sweeps, jnp.zeros((N_CHAINS, N, 3)), 0.1, n_adapt=1, decay=0.4
        )


def test_pair_energy_change_is_the_total_energy_difference():
    pos, box, _ = to_arrays(fcc_lattice(2, 0.9))
    disp, shift = periodic_space(box)
    pos = jnp.asarray(pos) + 0.05 * jr.normal(jr.key(1), pos.shape)

    def pair_fn(r):
        return lj_pair(r, 1.0, 1.0, 1.8)

    new = shift(pos[5], jnp.asarray([0.13, -0.07, 0.2]))
    moved = pos.at[5].set(new)
    du = pair_energy_change(disp, pair_fn, pos, 5, pos[5], new)
    exact = total_pair_energy(disp, pair_fn, moved) - total_pair_energy(disp, pair_fn, pos)
    np.testing.assert_allclose(float(du), float(exact), rtol=1e-10, atol=1e-12)
