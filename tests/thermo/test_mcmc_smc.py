"""AIS and SMC log Z against exact values (gaussian, mw5, funnel), systematic resampling, the
SMC driver with a user transport and weights, boundary validation, and no recompilation."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from scipy import stats

import thermo.systems as systems
from thermo.mcmc import ais, anneal, smc, systematic_resampling
from thermo.paths import PathEnsemble

MW5 = systems.get("mw5")


def test_ais_contract_and_gaussian_log_z():
    # Base N(0, 3^2 I) annealed to the unit Gaussian: exact log Z = (d/2) log 2 pi.
    system = systems.get("gaussian-3")
    res = ais(jr.key(0), system, n_chains=128, n_steps=50, base_scale=3.0)
    assert res.samples.shape == (128, 3) and res.log_weights.shape == (128,)
    assert int(res.n_energy_evals) == 128 * (1 + 50)  # one MALA step per stage
    assert isinstance(res.ensemble, PathEnsemble)
    assert abs(float(res.log_z) - system.log_z) < 4 * float(res.log_z_std)
    # Random (log-uniform) step sizes: still a mixture of invariant kernels, still unbiased.
    res = ais(jr.key(5), system, n_chains=128, n_steps=50, base_scale=3.0, step_size_jitter=1.5)
    assert abs(float(res.log_z) - system.log_z) < 4 * float(res.log_z_std)


def test_ais_error_bar_is_calibrated_over_seeds_on_mw5():
    # 8 independent AIS runs (vmapped, one compile). Each must be within 4 sigma of the
    # quadrature log Z, and the z-scores must be consistent with N(0, 1): the sum of
    # squares is chi^2_8, whose 99.9 % quantile bounds it.
    n_seeds = 8
    schedule = jnp.linspace(0.0, 1.0, 301) ** 4

    @jax.jit
    def many(keys):
        return jax.vmap(
            lambda k: anneal(
                k, MW5.log_prob, MW5.dim, n_chains=256, base_scale=2.0, schedule=schedule
            )
        )(keys)

    res = many(jr.split(jr.key(1), n_seeds))
    est, std = [], []
    from thermo.estimators import estimate_log_z

    for lw in np.asarray(res.log_weights):
        e = estimate_log_z(jnp.asarray(lw))
        est.append(float(e.value))
        std.append(float(e.std_err))
    z = (np.array(est) - MW5.log_z) / np.array(std)
    assert np.all(np.abs(z) < 4), z
    assert np.sum(z**2) < stats.chi2.ppf(0.999, n_seeds), z


def test_smc_adaptive_tempering_mw5():
    # 2 independent samplers of 128 particles; the error bar is their spread.
    res = smc(jr.key(2), MW5, n_chains=256, target_ess=0.8, n_mcmc_steps=10, n_batches=2)
    assert res.samples.shape == (256, 5) and res.log_weights.shape == (256,)
    k = int(res.n_temperatures)
    lambdas = np.asarray(res.lambdas)
    assert lambdas[k] == 1.0 and np.all(np.diff(lambdas[: k + 1]) > 0)
    assert int(res.n_resampling) >= 1
    # Each batch spends 128 * (1 + k_b * 10) evaluations with k_b <= k stages.
    assert 256 < int(res.n_energy_evals) <= 256 * (1 + k * 10)
    assert int(res.n_energy_evals) % 1280 == 256 % 1280
    batch = np.asarray(res.batch_log_z)
    assert batch.shape == (2,)
    np.testing.assert_allclose(
        float(res.log_z), np.logaddexp.reduce(batch) - np.log(2), rtol=0, atol=1e-10
    )
    assert abs(float(res.log_z) - MW5.log_z) < 4 * float(res.log_z_std)
    # Pareto k over the resampling steps' weights: finite (>= 1 resampling), light tail.
    assert -np.inf < float(res.pareto_k) < 0.5


def test_systematic_resampling_counts():
    # Systematic resampling gives particle i either floor(N W_i) or ceil(N W_i) offspring.
    n = 1000
    w = jr.uniform(jr.key(3), (n,)) ** 3
    idx = systematic_resampling(jr.key(4), jnp.log(w))
    counts = np.bincount(np.asarray(idx), minlength=n)
    expected = n * np.asarray(w) / float(jnp.sum(w))
    assert counts.sum() == n
    assert np.all(counts >= np.floor(expected) - 1e-9) and np.all(
        counts <= np.ceil(expected) + 1e-9
    )


def test_bad_input():
    with pytest.raises(ValueError, match="n_steps"):
        ais(jr.key(0), MW5, n_chains=8, n_steps=0)
    with pytest.raises(ValueError, match="move"):
        ais(jr.key(0), MW5, n_chains=8, n_steps=2, move="nuts")


def _z_scores(log_weights, exact):
    from thermo.estimators import estimate_log_z

    est = [estimate_log_z(jnp.asarray(lw)) for lw in np.asarray(log_weights)]
    return np.array([(float(e.value) - exact) / float(e.std_err) for e in est])


def test_local_metric_ais_is_calibrated_on_a_small_funnel():
    # Position-dependent (Hessian-diagonal) metric: the MH ratio must carry the
    # log-determinants of both proposal covariances, or the kernel is not invariant and
    # log Z drifts. A 3-d funnel (sigma = 1, exact log Z = 0) has curvature that varies
    # by e^{+-3} across its mass; 8 independent AIS runs, chi^2_8 on the z-scores.
    funnel = systems.Funnel(dim=3, sigma=2.0, name="funnel-3")
    schedule = jnp.linspace(0.0, 1.0, 101) ** 2
    n_seeds = 8

    @jax.jit
    def many(keys):
        return jax.vmap(
            lambda k: anneal(
                k,
                funnel.log_prob,
                3,
                n_chains=256,
                base_scale=2.0,
                schedule=schedule,
                preconditioner="local",
            )
        )(keys)

    res = many(jr.split(jr.key(7), n_seeds))
    # Each MALA move costs a gradient and 3 Hessian-vector products.
    assert np.all(np.asarray(res.n_energy_evals) == 256 * 4 * (1 + 100))
    z = _z_scores(res.log_weights, funnel.log_z)
    assert np.all(np.abs(z) < 4), z
    assert np.sum(z**2) < stats.chi2.ppf(0.999, n_seeds), z


def test_particle_preconditioned_hmc_on_anisotropic_gaussian():
    # Scales 0.2 and 5 from a base of scale 1: the cloud's variance is the HMC inverse
    # mass matrix. Exact log Z = sum_i log(sqrt(2 pi) s_i).
    scales = jnp.array([0.2, 5.0])
    exact = float(jnp.sum(jnp.log(jnp.sqrt(2 * jnp.pi) * scales)))

    def log_prob(x):
        return -0.5 * jnp.sum((x / scales) ** 2)

    res = jax.jit(
        lambda k: anneal(
            k,
            log_prob,
            2,
            n_chains=512,
            base_scale=1.0,
            move="hmc",
            n_mcmc_steps=2,
            target_ess=0.7,
            resample_threshold=0.5,
            preconditioner="particles",
            max_lambda_step=0.1,
        )
    )(jr.key(8))
    k = int(res.n_temperatures)
    lambdas = np.asarray(res.lambdas[: k + 1])
    assert lambdas[-1] == 1.0 and k >= 10
    assert np.all(np.diff(lambdas) <= 0.1 + 1e-12)  # the cap on lambda steps
    # Lee & Whiteley error bar; the final cloud has the target's per-coordinate scales.
    assert abs(float(res.log_z) - exact) < 4 * float(res.log_z_std)
    np.testing.assert_allclose(np.std(np.asarray(res.samples), axis=0), scales, rtol=0.2)


def test_pareto_k_recovers_the_tail_index():
    # Weights w = U^{-k} are Pareto with tail index 1/k. The GPD MLE of k from the
    # M = 3 sqrt(n) largest weights has sd (1 + k)/sqrt(M); the prior adds a known shrink
    # of 10 (1/2 - k)/(M + 10) towards 1/2.
    from thermo.mcmc import pareto_k

    pareto_k = jax.jit(pareto_k)
    n = 20_000
    m_tail = int(np.ceil(3 * np.sqrt(n)))
    log_u = jnp.log(jr.uniform(jr.key(9), (n,)))
    for k in (0.2, 1.0):
        k_hat = float(pareto_k(-k * log_u))
        shrink = 10 * (0.5 - k) / (m_tail + 10)
        assert abs(k_hat - k - shrink) < 4 * (1 + k) / np.sqrt(m_tail), (k, k_hat)
    assert float(pareto_k(jnp.zeros(50))) == -np.inf  # flat weights: no tail
    with pytest.raises(ValueError, match="at least 10"):
        pareto_k(jnp.zeros(5))


def test_ais_reports_pareto_k_and_warns_on_heavy_tails():
    system = systems.get("gaussian-3")
    # The two-sided schedule t^2 / (t^2 + (1 - t)^2) (same compiled function as the
    # contract test: the schedule is an array argument).
    res = ais(
        jr.key(6),
        system,
        n_chains=128,
        n_steps=50,
        base_scale=3.0,
        schedule_shape="two_sided",
        schedule_power=2.0,
    )
    t = np.linspace(0.0, 1.0, 51)
    np.testing.assert_allclose(np.asarray(res.lambdas), t**2 / (t**2 + (1 - t) ** 2), atol=1e-12)
    assert abs(float(res.log_z) - system.log_z) < 4 * float(res.log_z_std)
    assert float(res.pareto_k) < 0.5  # a well-tempered Gaussian: light tail
    # One annealing stage from a base 10x too wide: the weights are heavy-tailed.
    with pytest.warns(RuntimeWarning, match="Pareto k"):
        res = ais(jr.key(0), system, n_chains=128, n_steps=1, base_scale=30.0)
    assert float(res.pareto_k) > 0.7


def test_preconditioner_bad_input():
    with pytest.raises(ValueError, match="preconditioner"):
        ais(jr.key(0), MW5, n_chains=8, n_steps=2, preconditioner="dense")
    with pytest.raises(ValueError, match="move='mala'"):
        ais(jr.key(0), MW5, n_chains=8, n_steps=2, move="hmc", preconditioner="local")
    with pytest.raises(ValueError, match="schedule_shape"):
        ais(jr.key(0), MW5, n_chains=8, n_steps=2, schedule_shape="sigmoid")
    with pytest.raises(ValueError, match="project_fn"):
        ais(jr.key(0), systems.get("dw4"), n_chains=8, n_steps=2, preconditioner="particles")
    with pytest.raises(ValueError, match="resampling"):
        smc(jr.key(0), MW5, n_chains=8, resampling="residual")


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(initial_step_size=0.0), "initial_step_size"),
        (dict(initial_step_size=-0.1), "initial_step_size"),
        (dict(initial_step_size=float("nan")), "initial_step_size"),
        (dict(n_mcmc_steps=0), "n_mcmc_steps"),
        (dict(n_steps=2.7), "n_steps"),
        (dict(n_steps=-3), "n_steps"),
        (dict(n_chains=0), "n_chains"),
        (dict(n_chains=1), "n_chains"),
        (dict(base_scale=0.0), "base_scale"),
        (dict(base_scale=-1.0), "base_scale"),
        (dict(n_integration_steps=0, move="hmc"), "n_integration_steps"),
        (dict(step_size_jitter=-1.0), "step_size_jitter"),
        (dict(schedule_power=0.0), "schedule_power"),
    ],
)
def test_ais_rejects_bad_arguments_by_name(kwargs, name):
    args = dict(n_chains=8, n_steps=2) | kwargs
    with pytest.raises(ValueError, match=name):
        ais(jr.key(0), MW5, **args)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(target_ess=0.0), "target_ess"),
        (dict(target_ess=-0.5), "target_ess"),
        (dict(target_ess=1.5), "target_ess"),
        (dict(n_mcmc_steps=0), "n_mcmc_steps"),
        (dict(max_steps=0), "max_steps"),
        (dict(max_steps=2.7), "max_steps"),
        (dict(n_batches=0), "n_batches"),
        (dict(n_batches=3), "n_batches"),
        (dict(resample_threshold=1.5), "resample_threshold"),
        (dict(max_lambda_step=0.0), "max_lambda_step"),
        (dict(initial_step_size=float("nan")), "initial_step_size"),
        (dict(base_scale=0.0), "base_scale"),
        (dict(n_chains=2.5), "n_chains"),
    ],
)
def test_smc_rejects_bad_arguments_by_name(kwargs, name):
    args = dict(n_chains=8) | kwargs
    with pytest.raises(ValueError, match=name):
        smc(jr.key(0), MW5, **args)


def test_smc_n_particles_is_a_deprecated_alias():
    with pytest.warns(DeprecationWarning, match="n_chains"):
        with pytest.raises(ValueError, match="n_mcmc_steps"):  # warns, then validates
            smc(jr.key(0), MW5, n_particles=8, n_mcmc_steps=0)
    with pytest.raises(ValueError, match="n_chains only"):
        with pytest.warns(DeprecationWarning):
            smc(jr.key(0), MW5, n_chains=8, n_particles=8)


@pytest.mark.filterwarnings("ignore:.*Pareto k:RuntimeWarning")
def test_repeated_calls_do_not_recompile():
    system = systems.get("gaussian-3")

    def run_ais(seed):
        res = ais(jr.key(seed), system, n_chains=16, n_steps=5, base_scale=3.0)
        return float(res.log_z)

    def run_smc(seed):
        res = smc(jr.key(seed), system, n_chains=16, n_mcmc_steps=2, base_scale=3.0)
        return float(res.log_z)

    from tests._compile_count import count_compiles

    for fn in (run_ais, run_smc):
        with count_compiles() as first:
            fn(0)
        assert first.n > 0, "the counter must see the first call's compilation"
        with count_compiles() as again:
            fn(1)
        assert again.n == 0


def test_ais_diagnostics_and_the_one_estimator():
    # The per-stage log-normaliser increments sum to log Z; the result's estimate is
    # estimate_log_z of its ensemble, Pareto k included.
    from thermo.estimators import estimate_log_z

    system = systems.get("gaussian-3")
    res = ais(jr.key(0), system, n_chains=128, n_steps=50, base_scale=3.0)
    d = res.diagnostics
    assert int(d.n_stages) == 50 and d.ess.shape == (50,) and d.acceptance_rate.shape == (50,)
    np.testing.assert_allclose(float(jnp.sum(d.log_normalizer_increments)), float(res.log_z))
    assert res.ensemble.resampling is None and not np.any(np.asarray(d.resampled))
    assert np.all((np.asarray(d.acceptance_rate) > 0) & (np.asarray(d.acceptance_rate) <= 1))
    est = estimate_log_z(res.ensemble)
    for a, b in zip(est, res.estimate, strict=True):
        np.testing.assert_allclose(float(a), float(b), rtol=1e-12)


def test_smc_ensemble_carries_its_genealogy():
    # One SMC sampler: the Lee & Whiteley error bar comes from estimate_log_z on the
    # resampled ensemble, whose log-weights include the accumulated log-normaliser.
    from thermo.estimators import estimate_log_z

    system = systems.get("gaussian-3")
    res = smc(jr.key(3), system, n_chains=256, n_mcmc_steps=2, base_scale=3.0)
    r = res.ensemble.resampling
    d = res.diagnostics
    k = int(d.n_stages)
    assert int(r.n_resampling) == int(np.sum(np.asarray(d.resampled))) >= 1
    np.testing.assert_allclose(float(jnp.sum(d.log_normalizer_increments[:k])), float(res.log_z))
    lw = np.asarray(res.log_weights)
    assert float(r.log_normalizer) <= float(np.max(lw)) + 1e-12
    est = estimate_log_z(res.ensemble)
    np.testing.assert_allclose(float(est.std_err), float(res.log_z_std), rtol=1e-12)
    assert float(est.std_err) != float(estimate_log_z(res.log_weights).std_err)
    assert abs(float(res.log_z) - system.log_z) < 4 * float(res.log_z_std)


def _gaussian_transport_smc(key, stretch, resample_threshold, n=512, d=2):
    """Gaussians N(0, sigma_k^2 I), sigma 1 -> 3: a user transport x -> c x sigma_k/sigma_{k-1}
    with its exact incremental weight, then MALA moves on each N(0, sigma_k^2 I)."""
    from thermo.kernel import Kernel
    from thermo.mcmc import MALAInfo, MALAState, mala
    from thermo.smc import sequential_monte_carlo

    sigmas = jnp.linspace(1.0, 3.0, 6)

    def logdensity(sigma):
        return lambda x: -0.5 * jnp.sum(x**2) / sigma**2

    def transport_fn(s_old, s_new):
        def step(key, state):
            del key
            x = stretch * state.position * s_new / s_old
            value, grad = jax.value_and_grad(logdensity(s_new))(x)
            one = jnp.ones((), jnp.float32)
            return MALAState(x, value, grad), MALAInfo(one, True, one)

        return Kernel(None, step)

    def log_weight_fn(s_old, s_new, old, new):
        # gamma_k(x') |dx'/dx| / gamma_{k-1}(x): the deterministic map's exact weight.
        jac = d * jnp.log(stretch * s_new / s_old)
        return logdensity(s_new)(new.position) + jac - logdensity(s_old)(old.position)

    def move_fn(sigma, tuning):
        del tuning
        return mala(logdensity(sigma), 0.5 * sigma**2)

    key_init, key_run = jr.split(key)
    x0 = jr.normal(key_init, (n, d))
    particles = jax.vmap(mala(logdensity(1.0), 0.5).init)(x0)
    return sequential_monte_carlo(
        key_run,
        particles,
        move_fn,
        schedule=sigmas,
        log_weight_fn=log_weight_fn,
        transport_fn=transport_fn,
        n_moves=2,
        resample_threshold=resample_threshold,
    )


def test_driver_with_a_user_transport_and_weights():
    # log Z_K/Z_0 = d log(sigma_K / sigma_0) = 2 log 3.
    exact = 2 * np.log(3.0)
    # Exact transport: every incremental weight is the same constant, zero variance.
    res = jax.jit(lambda k: _gaussian_transport_smc(k, 1.0, 0.5))(jr.key(11))
    assert abs(float(res.log_z) - exact) < 1e-10 and float(res.log_z_std) < 1e-6
    assert int(res.ensemble.resampling.n_resampling) == 0
    assert int(res.n_energy_evals) == 512 * 5 * (1 + 2)  # a transport and 2 moves per stage
    # The MALA moves keep N(0, 9 I): the sample variance within 4 standard errors.
    var = np.var(np.asarray(res.samples), axis=0)
    assert np.all(np.abs(var - 9.0) < 4 * 9.0 * np.sqrt(2 / 512)), var
    # A transport 30 % too wide: weights vary (relative variance 0.2 per stage), SMC
    # resamples about once below ESS/N = 0.5, and log Z is still unbiased. (At a
    # threshold of 0.9, resampling every stage, the Lee & Whiteley variance estimate is
    # unbiased but can come out negative, clipped to 0: not a usable check.)
    res = jax.jit(lambda k: _gaussian_transport_smc(k, 1.3, 0.5))(jr.key(12))
    assert int(res.ensemble.resampling.n_resampling) >= 1
    assert 0 < float(res.log_z_std) and abs(float(res.log_z) - exact) < 4 * float(res.log_z_std)
