"""MCMC kernels against exact answers: Gaussian moments within Monte Carlo error.

Every statistical check compares |estimate - truth| with 4 Monte Carlo standard errors,
the MCSE computed from numpyro's ESS over vmapped chains (thermo.mcmc.diagnostics).
"""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from thermo.estimators import estimate_log_z
from thermo.kernel import run
from thermo.mcmc import (
    adapt_step_size,
    dual_averaging,
    geometric_ladder,
    hmc,
    leapfrog,
    mala,
    nuts,
    replica_exchange,
    rwm,
    underdamped_langevin,
)
from thermo.mcmc.diagnostics import (
    effective_sample_size,
    integrated_autocorr_time,
    split_rhat,
    swap_acceptance_rates,
)

SCALES = jnp.array([1.0, 2.0])  # target N(0, diag(SCALES^2))
N_CHAINS, N_STEPS = 32, 400


def logdensity(x):
    return -0.5 * jnp.sum((x / SCALES) ** 2)


def _check_moments(samples):
    """samples (n_chains, n_draws, 2): mean 0 and E[x^2] = SCALES^2 within 4 MCSE."""
    samples = np.asarray(samples)
    for f, truth in ((samples, 0.0), (samples**2, np.asarray(SCALES) ** 2)):
        ess = effective_sample_size(f)
        mcse = f.std(axis=(0, 1)) / np.sqrt(ess)
        assert np.all(np.abs(f.mean(axis=(0, 1)) - truth) < 4 * mcse), (f.mean((0, 1)), truth, mcse)
    assert np.all(split_rhat(samples) < 1.05)


@jax.jit
def _sample_all(key):
    """RWM, MALA (both with dual-averaged step) and HMC on the Gaussian; vmapped chains."""
    out = {}
    k_init, k_rwm, k_mala, k_hmc = jr.split(key, 4)
    x0 = jr.normal(k_init, (N_CHAINS, 2)) * SCALES[None, :]
    factories = {
        "rwm": (lambda e: rwm(logdensity, e), 1.0, 0.3),
        "mala": (lambda e: mala(logdensity, e), 0.5, 0.57),
        "hmc": (lambda e: hmc(logdensity, e, 5), 0.3, 0.8),
        # Preconditioned MALA: a constant diagonal inverse mass, and a position-dependent
        # one (the MH ratio must carry its log-determinants), with the log density's aux
        # (here sum(x)) cached in the state.
        "mala_mass": (lambda e: mala(logdensity, e, inverse_mass_matrix=SCALES**2), 0.5, 0.57),
        "mala_metric": (
            lambda e: mala(
                lambda x: (logdensity(x), jnp.sum(x)),
                e,
                inverse_mass_fn=lambda x, aux: SCALES**2 * jnp.exp(0.5 * jnp.tanh(x)),
                has_aux=True,
            ),
            0.5,
            0.57,
        ),
    }
    keys = (k_rwm, k_mala, k_hmc, *jr.split(k_mala, 2))
    for (name, (factory, eps0, target)), k in zip(factories.items(), keys, strict=True):
        k_warm, k_run = jr.split(k)
        states = jax.vmap(factory(eps0).init)(x0)
        states, eps = adapt_step_size(
            k_warm, factory, states, 300, initial_step_size=eps0, target_acceptance=target
        )
        kernel = factory(eps)
        step = jax.vmap(kernel.step)
        final, (pos, acc) = run(
            k_run,
            lambda k, s, step=step: step(jr.split(k, N_CHAINS), s),
            states,
            N_STEPS,
            observable_fn=lambda s, i: (s.position, i.acceptance_rate),
        )
        out[name] = (jnp.swapaxes(pos, 0, 1), acc.mean(), eps)
        if name == "mala_metric":  # the cached aux follows the accepted position
            out["aux_error"] = jnp.max(jnp.abs(final.aux - jnp.sum(final.position, axis=1)))
    return out


@pytest.fixture(scope="module")
def kernel_samples():
    return _sample_all(jr.key(20261123))


@pytest.mark.parametrize("name", ["rwm", "mala", "hmc", "mala_mass", "mala_metric"])
def test_kernels_sample_gaussian(kernel_samples, name):
    samples, acc, eps = kernel_samples[name]
    assert samples.shape == (N_CHAINS, N_STEPS, 2)
    assert 0.0 < float(acc) < 1.0 and float(eps) > 0
    _check_moments(samples)
    if name == "mala_metric":
        assert float(kernel_samples["aux_error"]) < 1e-12


def test_dual_averaging_converges_to_deterministic_root():
    # Feed acceptance a(eps) = exp(-eps): the fixed point is eps* = -log(delta) exactly.
    delta = 0.8
    init, update = dual_averaging(delta)

    def body(state, _):
        return update(state, jnp.exp(-jnp.exp(state.log_step_size))), None

    state, _ = jax.lax.scan(body, init(1.0), None, length=5000)
    assert float(jnp.exp(state.log_step_size_avg)) == pytest.approx(-np.log(delta), rel=1e-2)


def test_leapfrog_energy_error_is_second_order():
    # Global energy error of leapfrog at fixed trajectory length T scales as eps^2.
    def vg(x):
        return jax.value_and_grad(lambda y: -0.25 * jnp.sum(y**4) - 0.5 * jnp.sum(y**2))(x)

    x0, p0 = jnp.array([0.7, -0.3]), jnp.array([0.5, 1.0])

    def error(n):
        eps = 1.0 / n
        ld0, g0 = vg(x0)
        _, p, ld, _ = leapfrog(vg, x0, p0, g0, eps, n)
        return abs(float((0.5 * jnp.sum(p**2) - ld) - (0.5 * jnp.sum(p0**2) - ld0)))

    slope = np.log2(error(20) / error(40))
    assert 1.8 < slope < 2.2


def test_hmc_inverse_mass_constant_or_traced_gives_the_same_chain():
    # The inverse mass is materialised as a (dim,) constant when concrete (so XLA can
    # hoist loop-invariant work) and broadcast when traced: same arithmetic, same chain.
    def logdensity(x):
        return -0.5 * jnp.sum(x**2 / jnp.array([1.0, 4.0]))

    imm = jnp.array([1.0, 4.0])

    def chain(inverse_mass):
        kernel = hmc(logdensity, 0.3, 3, inverse_mass_matrix=inverse_mass)
        state, xs = run(
            jr.key(7), kernel, kernel.init(jnp.ones(2)), 20, observable_fn=lambda s, i: s.position
        )
        return xs

    concrete = jax.jit(lambda: chain(imm))()
    traced = jax.jit(chain)(imm)
    np.testing.assert_allclose(np.asarray(concrete), np.asarray(traced), rtol=1e-12, atol=1e-12)


def test_nuts_through_numpyro():
    res = nuts(
        jr.key(1),
        lambda x: -logdensity(x),
        jnp.zeros((2, 2)),
        n_warmup=150,
        n_samples=300,
    )
    assert res.samples.shape == (2, 300, 2)
    assert int(res.n_energy_evals) > 0
    _check_moments(res.samples)
    ens = res.ensemble
    np.testing.assert_array_equal(np.asarray(ens.samples), np.asarray(res.samples[:, -1]))
    assert float(estimate_log_z(ens).value) == 0.0 and ens.n_energy_evals == res.n_energy_evals


def test_underdamped_langevin_wraps_sde_core_baoab():
    # BAOAB's configurational marginal is exact for a harmonic potential
    # (Leimkuhler & Matthews 2013), so E[x^2] = 1/(beta k) within MC error for any dt.
    beta = 2.0
    kernel = underdamped_langevin(lambda x: 0.5 * jnp.sum(x**2), beta=beta, step_size=0.5)
    states = jax.vmap(kernel.init)(jnp.zeros((64, 1)))

    @jax.jit
    def go(key):
        step = jax.vmap(kernel.step)
        return run(
            key,
            lambda k, s: step(jr.split(k, 64), s),
            states,
            2000,
            observable_fn=lambda s, i: (s.position, i.acceptance_rate),
        )[1]

    pos, acc = go(jr.key(2))
    assert float(acc.mean()) == 1.0
    x2 = np.asarray(pos[200:] ** 2).swapaxes(0, 1)  # drop burn-in; (chains, draws, 1)
    mcse = x2.std() / np.sqrt(effective_sample_size(x2)[0])
    assert abs(x2.mean() - 1.0 / beta) < 4 * mcse


def test_replica_exchange_each_rung_samples_its_temperature():
    # U = |x|^2/2 in d = 3: at inverse temperature b, E[U] = d / (2 b) exactly.
    d, n_runs = 3, 16
    betas = geometric_ladder(1.0, 0.2, 4)
    kernel = replica_exchange(
        lambda x: 0.5 * jnp.sum(x**2), betas, 0.8 / jnp.sqrt(betas), n_integration_steps=3
    )
    states = jax.vmap(kernel.init)(jnp.zeros((n_runs, 4, d)))

    @jax.jit
    def go(key):
        step = jax.vmap(kernel.step)
        return run(
            key,
            lambda k, s: step(jr.split(k, n_runs), s),
            states,
            1000,
            observable_fn=lambda s, i: (s.energies, i),
        )[1]

    energies, info = go(jr.key(3))
    e = np.asarray(energies[100:]).swapaxes(0, 1)  # (runs, draws, rungs)
    mcse = e.std(axis=(0, 1)) / np.sqrt(effective_sample_size(e))
    truth = d / (2 * np.asarray(betas))
    assert np.all(np.abs(e.mean(axis=(0, 1)) - truth) < 4 * mcse)
    swaps = np.asarray(swap_acceptance_rates(info)).mean(axis=0)  # mean over runs
    assert swaps.shape == (3,) and np.all((swaps > 0) & (swaps < 1))
    # Swap acceptance is E[min(1, exp((b_r - b_{r+1})(U_r - U_{r+1})))] under the product
    # of the two rungs' laws: compare with an exact-sampling Monte Carlo estimate.
    rng = np.random.default_rng(0)
    b = np.asarray(betas)
    u = 0.5 * rng.chisquare(d, size=(200_000, 4)) / b
    exact = np.minimum(1, np.exp((b[:-1] - b[1:]) * (u[:, :-1] - u[:, 1:]))).mean(0)
    attempted = np.asarray(info.swap_attempted)
    rate = np.asarray(info.swap_acceptance_rate)
    for r in range(3):
        vals = rate[:, :, r][attempted[:, :, r]]
        assert abs(vals.mean() - exact[r]) < 4 * vals.std() / np.sqrt(len(vals) / 5.0) + 0.005


def test_integrated_autocorr_time_of_ar1():
    # AR(1) x_t = phi x_{t-1} + e_t has tau_int = (1 + phi) / (1 - phi) = 3 for phi = 0.5.
    # Sokal's relative error is sqrt(2 (2M + 1) / N) ~ 0.03 here; allow 4 of those.
    phi, n = 0.5, 20_000
    rng = np.random.default_rng(1)
    e = rng.standard_normal((4, n))
    x = np.zeros((4, n))
    for t in range(1, n):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    tau = integrated_autocorr_time(x[..., None])[0]
    assert tau == pytest.approx(3.0, rel=4 * np.sqrt(2 * 31 / (4 * n)))
    with pytest.raises(ValueError, match="n_chains"):
        integrated_autocorr_time(np.ones(10))


def _counter_step(key, state):
    """A deterministic-plus-noise step whose trace exposes the key stream and step order."""
    x, n = state
    return (x + jr.normal(key, x.shape), n + 1), n


def test_run_key_stream_thinning_and_chunks_agree():
    """``run``'s single-step path (thin = 1), its thinned path and its chunked (progress) path
    walk the same key stream: thin = 1 equals a hand-written scan over ``jr.split``'d keys,
    and thinning or chunking changes only which states are recorded."""
    key = jr.key(7)
    state0 = (jnp.zeros(3), jnp.zeros((), jnp.int32))
    n_steps = 12

    final1, trace1 = run(key, _counter_step, state0, n_steps)

    # By hand: step i uses jr.split(key, n_steps)[i].
    def by_hand(s, k):
        s, _ = _counter_step(k, s)
        return s, s

    final_h, trace_h = jax.lax.scan(by_hand, state0, jr.split(key, n_steps))
    np.testing.assert_array_equal(trace1[0], trace_h[0])
    np.testing.assert_array_equal(final1[0], final_h[0])
    assert int(final1[1]) == n_steps and trace1[0].shape == (n_steps, 3)

    final_c, trace_c = run(key, _counter_step, state0, n_steps, progress=True, n_chunks=5)
    np.testing.assert_array_equal(trace_c[0], trace1[0])

    final3, trace3 = run(key, _counter_step, state0, n_steps, thin=3, progress=True, n_chunks=2)
    assert trace3[0].shape == (n_steps // 3, 3)
    np.testing.assert_array_equal(trace3[1], [3, 6, 9, 12])
    final3b, trace3b = run(key, _counter_step, state0, n_steps, thin=3)
    np.testing.assert_array_equal(trace3[0], trace3b[0])
    with pytest.raises(ValueError, match="multiple of thin"):
        run(key, _counter_step, state0, 10, thin=3)
