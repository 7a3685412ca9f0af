"""Bad input, everywhere a user can reach (issue 19): a walk of the public API with bad values.

Each row of :data:`CASES` is ``(id, call, error type, substring of the message)``: the call
must raise that error, and the message must name the argument (or the problem). Rows are
cheap (argument checks run before any compilation), so the table runs in about a second.
The rows after the table check the cases where the right answer is a value, not an
error (NaN propagates, a jitted call works, an unstable step size warns), and the
experiment overrides, which must fail before a run directory exists.
"""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import bridges
import generative
import generative.periodic as gperiodic
import generative.samplers as gsamplers
import thermo
import thermo.integrate as integrate
import thermo.materials as materials
import thermo.mcmc as mcmc
import thermo.metrics as metrics
import thermo.systems as systems
from thermo.estimators import jarzynski
from thermo.kernel import DivergenceWarning

NAN, INF = float("nan"), float("inf")
KEY = jr.PRNGKey(0)


def _logdensity(x):
    return -0.5 * jnp.sum(x**2)


def _energy(x):
    return 0.5 * jnp.sum(x**2)


def _garbage_cif(tmp_path_factory=None):
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp()) / "garbage.cif"
    path.write_text("this is not a cif\nat all 1 2 3\n")
    return str(path)


def _eye(d=2):
    return jnp.eye(d)


def _disp(a, b):
    return a - b


def _shift(a, b):
    return a + b


# (id, thunk, exception type, substring the message must contain)
CASES = [
    # thermo.mcmc: step sizes and counts
    ("mala step 0", lambda: mcmc.mala(_logdensity, 0.0), ValueError, "step_size must"),
    ("mala step <0", lambda: mcmc.mala(_logdensity, -0.1), ValueError, "step_size must"),
    ("mala step nan", lambda: mcmc.mala(_logdensity, NAN), ValueError, "step_size must"),
    ("hmc step nan", lambda: mcmc.hmc(_logdensity, NAN, 5), ValueError, "step_size must"),
    ("hmc step 0", lambda: mcmc.hmc(_logdensity, 0.0, 5), ValueError, "step_size must"),
    (
        "hmc steps 2.7",
        lambda: mcmc.hmc(_logdensity, 0.1, 2.7),
        ValueError,
        "n_integration_steps must",
    ),
    ("hmc steps 0", lambda: mcmc.hmc(_logdensity, 0.1, 0), ValueError, "n_integration_steps must"),
    (
        "hmc mass <0",
        lambda: mcmc.hmc(_logdensity, 0.1, 3, inverse_mass_matrix=-1.0),
        ValueError,
        "inverse_mass_matrix must",
    ),
    ("rwm step nan", lambda: mcmc.rwm(_logdensity, NAN), ValueError, "step_size must"),
    ("rwm step 0", lambda: mcmc.rwm(_logdensity, 0.0), ValueError, "step_size must"),
    (
        "rwm step array",
        lambda: mcmc.rwm(_logdensity, jnp.array([0.5, -0.5])),
        ValueError,
        "step_size must",
    ),
    (
        "langevin step nan",
        lambda: mcmc.underdamped_langevin(_energy, beta=1.0, step_size=NAN),
        ValueError,
        "step_size must",
    ),
    (
        "replica betas <0",
        lambda: mcmc.replica_exchange(_energy, jnp.array([1.0, -0.5]), 0.1),
        ValueError,
        "betas must",
    ),
    (
        "replica steps 0",
        lambda: mcmc.replica_exchange(_energy, jnp.array([1.0, 0.5]), 0.0),
        ValueError,
        "step_sizes must",
    ),
    ("ladder 2.7", lambda: mcmc.geometric_ladder(1.0, 0.1, 2.7), ValueError, "n_replicas must"),
    ("ladder beta nan", lambda: mcmc.geometric_ladder(NAN, 0.1, 4), ValueError, "beta_max must"),
    ("dual averaging 1.5", lambda: mcmc.dual_averaging(1.5), ValueError, "target_acceptance must"),
    (
        "adapt n_steps 2.7",
        lambda: mcmc.adapt_step_size(
            KEY, lambda e: mcmc.mala(_logdensity, e), None, 2.7, initial_step_size=0.1
        ),
        ValueError,
        "n_steps must",
    ),
    (
        "adapt step 0",
        lambda: mcmc.adapt_step_size(
            KEY, lambda e: mcmc.mala(_logdensity, e), None, 10, initial_step_size=0.0
        ),
        ValueError,
        "initial_step_size must",
    ),
    (
        "nuts n_samples 2.7",
        lambda: mcmc.nuts(KEY, _energy, jnp.zeros((2, 2)), n_warmup=10, n_samples=2.7),
        ValueError,
        "n_samples must",
    ),
    # thermo.kernel.run and the integrators
    (
        "run n_steps 2.7",
        lambda: thermo.run(KEY, mcmc.rwm(_logdensity, 0.5), None, 2.7),
        ValueError,
        "n_steps must",
    ),
    (
        "run n_steps 0",
        lambda: thermo.run(KEY, mcmc.rwm(_logdensity, 0.5), None, 0),
        ValueError,
        "n_steps must",
    ),
    (
        "run thin 0",
        lambda: thermo.run(KEY, mcmc.rwm(_logdensity, 0.5), None, 4, thin=0),
        ValueError,
        "thin must",
    ),
    (
        "overdamped dt <0",
        lambda: integrate.overdamped_langevin(_energy, beta=1.0, dt=-0.1),
        ValueError,
        "dt must",
    ),
    (
        "overdamped beta nan",
        lambda: integrate.overdamped_langevin(_energy, beta=NAN, dt=0.1),
        ValueError,
        "beta must",
    ),
    (
        "baoab friction <0",
        lambda: integrate.baoab(_energy, beta=1.0, dt=0.1, friction=-1.0),
        ValueError,
        "friction must",
    ),
    (
        "baoab mass 0",
        lambda: integrate.baoab(_energy, beta=1.0, dt=0.1, mass=0.0),
        ValueError,
        "mass must",
    ),
    (
        "maxwell beta <0",
        lambda: integrate.maxwell_boltzmann(KEY, (3,), beta=-1.0),
        ValueError,
        "beta must",
    ),
    (
        "euler-maruyama dt inf",
        lambda: integrate.euler_maruyama(thermo.SDE(lambda t, x, a: -x, lambda t, x, a: 1.0), INF),
        ValueError,
        "dt must",
    ),
    (
        "solve dt0 <0",
        lambda: integrate.solve(
            KEY,
            thermo.SDE(lambda t, x, a: -x, lambda t, x, a: 1.0),
            jnp.zeros(2),
            0.0,
            1.0,
            dt0=-0.1,
        ),
        ValueError,
        "dt0 must",
    ),
    # thermo.estimators
    (
        "jarzynski g 0.5",
        lambda: jarzynski(jnp.array([0.1, 0.2, 0.3]), statistical_inefficiency=0.5),
        ValueError,
        "statistical_inefficiency must",
    ),
    (
        "jarzynski g nan",
        lambda: jarzynski(jnp.array([0.1, 0.2, 0.3]), statistical_inefficiency=NAN),
        ValueError,
        "statistical_inefficiency must",
    ),
    # thermo.systems
    ("gaussian sample -1", lambda: systems.get("gaussian-2").sample(KEY, -1), ValueError, "n must"),
    (
        "gaussian sample 2.7",
        lambda: systems.get("gaussian-2").sample(KEY, 2.7),
        ValueError,
        "n must",
    ),
    ("funnel sample -1", lambda: systems.get("funnel").sample(KEY, -1), ValueError, "n must"),
    ("gmm40 sample str", lambda: systems.get("gmm40").sample(KEY, "3"), TypeError, "n must"),
    (
        "initial positions -3",
        lambda: systems.get("dw4").initial_positions(KEY, -3),
        ValueError,
        "n must",
    ),
    ("unknown system", lambda: systems.get("nope"), KeyError, "unknown system"),
    # thermo.materials
    ("jzg T 0", lambda: materials.jzg_excess_free_energy(0.0, 0.5), ValueError, "temperature must"),
    (
        "jzg T <0",
        lambda: materials.jzg_excess_free_energy(-1.0, 0.5),
        ValueError,
        "temperature must",
    ),
    ("jzg rho <0", lambda: materials.jzg_excess_free_energy(2.0, -0.1), ValueError, "density must"),
    (
        "jzg pressure T nan",
        lambda: materials.jzg_pressure(NAN, 0.5),
        ValueError,
        "temperature must",
    ),
    (
        "jzg energy rho <0",
        lambda: materials.jzg_excess_energy(2.0, -0.1),
        ValueError,
        "density must",
    ),
    (
        "widom T nan",
        lambda: materials.widom(KEY, "MFI_SI.cif", temperature=NAN),
        ValueError,
        "temperature must",
    ),
    (
        "widom chunk 0",
        lambda: materials.widom(KEY, "MFI_SI.cif", chunk_size=0),
        ValueError,
        "chunk_size must",
    ),
    (
        "widom insertions 2.7",
        lambda: materials.widom(KEY, "MFI_SI.cif", n_insertions=2.7),
        ValueError,
        "n_insertions must",
    ),
    (
        "widom grid",
        lambda: materials.widom(KEY, "MFI_SI.cif", energy_grid=(8, 8)),
        ValueError,
        "energy_grid must",
    ),
    (
        "framework cells 0",
        lambda: materials.framework_energy_fn("MFI_SI.cif", unit_cells=(2, 0, 2)),
        ValueError,
        "unit_cells entry must",
    ),
    ("garbage cif", lambda: materials.read_structure(_garbage_cif()), ValueError, "could not read"),
    ("fcc cells 2.7", lambda: materials.fcc_lattice(2.7, 1.0), ValueError, "n_cells must"),
    ("fcc density <0", lambda: materials.fcc_lattice(2, -1.0), ValueError, "density must"),
    # generative
    (
        "mixture not PSD",
        lambda: generative.GaussianMixture(
            jnp.ones(1), jnp.zeros((1, 2)), jnp.array([[[1.0, 2.0], [2.0, 1.0]]])
        ),
        ValueError,
        "positive definite",
    ),
    (
        "mixture weights",
        lambda: generative.GaussianMixture(
            jnp.array([0.7, 0.7]), jnp.zeros((2, 2)), jnp.stack([_eye(), _eye()])
        ),
        ValueError,
        "sum to one",
    ),
    (
        "mixture weights <0",
        lambda: generative.GaussianMixture(
            jnp.array([1.5, -0.5]), jnp.zeros((2, 2)), jnp.stack([_eye(), _eye()])
        ),
        ValueError,
        "weights must",
    ),
    (
        "cosine max_beta <0",
        lambda: generative.CosineSchedule(max_beta=-1.0),
        ValueError,
        "max_beta must",
    ),
    ("cosine offset -1", lambda: generative.CosineSchedule(offset=-1.0), ValueError, "offset must"),
    (
        "linear beta_max nan",
        lambda: generative.LinearSchedule(beta_max=NAN),
        ValueError,
        "beta_max must",
    ),
    ("VE sigma_max inf", lambda: generative.VE(sigma_max=INF), ValueError, "sigma_max must"),
    ("VP t1 0", lambda: generative.VP(t1=0.0), ValueError, "t1 must"),
    (
        "reverse EM n_steps 2.7",
        lambda: generative.sample_reverse_euler_maruyama(
            KEY, generative.VP(), lambda t, x, a: -x, 4, 2, n_steps=2.7
        ),
        ValueError,
        "n_steps must",
    ),
    (
        "reverse EM n_samples 0",
        lambda: generative.sample_reverse_euler_maruyama(
            KEY, generative.VP(), lambda t, x, a: -x, 0, 2
        ),
        ValueError,
        "n_samples must",
    ),
    (
        "predictor-corrector snr <0",
        lambda: generative.predictor_corrector(
            generative.VP(), lambda t, x, a: -x, n_steps=10, snr=-0.1
        ),
        ValueError,
        "snr must",
    ),
    (
        "log_likelihood empty",
        lambda: generative.log_likelihood(
            None, generative.VP(), lambda t, x, a: -x, jnp.zeros((0, 2))
        ),
        ValueError,
        "empty batch",
    ),
    # bridges
    (
        "bridge sigma inf",
        lambda: bridges.gaussian_bridge(jnp.zeros(2), _eye(), jnp.zeros(2), _eye(), INF),
        ValueError,
        "sigma must",
    ),
    (
        "bridge sigma nan",
        lambda: bridges.gaussian_bridge(jnp.zeros(2), _eye(), jnp.zeros(2), _eye(), NAN),
        ValueError,
        "sigma must",
    ),
    (
        "bridge sigma 0",
        lambda: bridges.gaussian_bridge(jnp.zeros(2), _eye(), jnp.zeros(2), _eye(), 0.0),
        ValueError,
        "sigma must",
    ),
    # wider: materials
    (
        "displacement MC step nan",
        lambda: materials.displacement_mc(_disp, _shift, temperature=1.0, step_size=NAN),
        ValueError,
        "step_size must",
    ),
    (
        "displacement MC T 0",
        lambda: materials.displacement_mc(_disp, _shift, temperature=0.0, step_size=0.1),
        ValueError,
        "temperature must",
    ),
    (
        "frenkel-ladd lam 1.5",
        lambda: materials.frenkel_ladd_mc(
            _disp, jnp.zeros((4, 3)), temperature=1.0, spring=10.0, lam=1.5, step_size=0.1
        ),
        ValueError,
        "lam must",
    ),
    (
        "einstein n 2.7",
        lambda: materials.einstein_log_partition_com(2.7, 1.0, 10.0),
        ValueError,
        "n_particles must",
    ),
    (
        "fcc harmonic density <0",
        lambda: materials.fcc_harmonic_free_energy(-1.0, 1.0),
        ValueError,
        "density must",
    ),
    (
        "legendre nodes 2.7",
        lambda: materials.gauss_legendre_densities(0.5, 2.7),
        ValueError,
        "n_nodes must",
    ),
    (
        "widom mu T 0",
        lambda: materials.widom_chemical_potential(
            KEY, jnp.zeros((2, 4, 3)), 5.0 * jnp.eye(3), temperature=0.0
        ),
        ValueError,
        "temperature must",
    ),
    (
        "harmonic T <0",
        lambda: materials.harmonic_free_energy(_energy, jnp.zeros((4, 3)), temperature=-1.0),
        ValueError,
        "temperature must",
    ),
    (
        "lj fluid T 0",
        lambda: materials.sample_lj_fluid(KEY, temperature=0.0, density=0.5),
        ValueError,
        "temperature must",
    ),
    (
        "lj fluid initial positions shape",
        lambda: materials.sample_lj_fluid(
            KEY, temperature=1.0, density=0.5, n_cells=2, initial_positions=np.zeros((31, 3))
        ),
        ValueError,
        "initial_positions must be",
    ),
    (
        "beyond-cut r_max past the images",
        lambda: materials.lj_beyond_cut_energy(
            np.zeros((4, 3)), np.ones(3) * 4.0, r_cut=2.0, r_max=7.0
        ),
        ValueError,
        "r_max",
    ),
    (
        "cell LJ energy sides of a matrix",
        lambda: materials.CellLJEnergy(np.eye(3) * 4.0, r_cut=2.0),
        ValueError,
        "sides must have shape",
    ),
    (
        "cell LJ energy cut past half the cell",
        lambda: materials.CellLJEnergy(np.full(3, 4.0), r_cut=2.5),
        ValueError,
        "half the shortest side",
    ),
    (
        "lj fluid thin 2.7",
        lambda: materials.sample_lj_fluid(KEY, temperature=1.0, density=0.5, thin=2.7),
        ValueError,
        "thin must",
    ),
    # wider: generative samplers, training, torus diffusion
    ("PIS n_steps 2.7", lambda: gsamplers.PIS(None, n_steps=2.7), ValueError, "n_steps must"),
    (
        "CMCD power <0",
        lambda: gsamplers.CMCD(schedule_power=-1.0),
        ValueError,
        "schedule_power must",
    ),
    (
        "sampler sample n 0",
        lambda: gsamplers.sample_paths(KEY, gsamplers.CMCD(), systems.get("gaussian-2"), 0),
        ValueError,
        "n must",
    ),
    (
        "sampler train n_iters 2.7",
        lambda: gsamplers.train_sampler(
            KEY, gsamplers.CMCD(), systems.get("gaussian-2"), n_iters=2.7, batch_size=8
        ),
        ValueError,
        "n_iters must",
    ),
    (
        "path weights n_paths 2.7",
        lambda: generative.path_log_weights(
            KEY, generative.VP(), lambda t, x, a: -x, jnp.zeros(2), 2.7
        ),
        ValueError,
        "n_paths must",
    ),
    (
        "EMA decay 1",
        lambda: generative.with_ema(optax.adam(1e-3), 1.0),
        ValueError,
        "EMA decay must",
    ),
    (
        "torus sample n 0",
        lambda: gperiodic.sample_torus(KEY, None, None, n_samples=0, n_particles=4),
        ValueError,
        "n_samples must",
    ),
    # wider: bridges
    (
        "sinkhorn sigma 0",
        lambda: bridges.entropic_plan(jnp.zeros((3, 2)), jnp.ones((3, 2)), 0.0),
        ValueError,
        "sigma must",
    ),
    (
        "dsbm iterations 2.7",
        lambda: bridges.dsbm(KEY, jnp.zeros((8, 2)), jnp.ones((8, 2)), 1.0, n_iterations=2.7),
        ValueError,
        "n_iterations must",
    ),
    (
        "dsbm ema 1",
        lambda: bridges.dsbm(KEY, jnp.zeros((8, 2)), jnp.ones((8, 2)), 1.0, ema_decay=1.0),
        ValueError,
        "ema_decay must",
    ),
    ("benchmark dim 2.7", lambda: bridges.make_benchmark(KEY, 2.7), ValueError, "dim must"),
    # wider: metrics and time series
    (
        "align iterations 0",
        lambda: metrics.align(np.zeros(8), np.ones(8), 4, 2, n_iterations=0),
        ValueError,
        "n_iterations must",
    ),
    (
        "mmd bandwidth 0",
        lambda: metrics.mmd(np.zeros((3, 2)), np.ones((3, 2)), bandwidth=0.0),
        ValueError,
        "bandwidth must",
    ),
    (
        "histogram bins 2.7",
        lambda: metrics.distance_histogram_metrics(
            np.zeros((3, 8)), np.ones((3, 8)), 4, 2, bins=2.7
        ),
        ValueError,
        "bins must",
    ),
    (
        "equilibration nskip 0",
        lambda: thermo.estimators.detect_equilibration(np.arange(20.0) % 3, nskip=0),
        ValueError,
        "nskip must",
    ),
    (
        "bootstrap 2.7",
        lambda: thermo.estimators.bootstrap(KEY, jnp.mean, jnp.ones(5), n_bootstrap=2.7),
        ValueError,
        "n_bootstrap must",
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "needle"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_fails_at_the_boundary(call, error, needle):
    with pytest.raises(error) as info:
        call()
    assert needle in str(info.value), f"message {str(info.value)!r} does not name {needle!r}"


def test_case_ids_are_unique():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))


# ---- where the right answer is a value --------------------------------------------------


def test_dw4_energy_of_nan_positions_is_nan_and_the_gradient_at_contact_is_finite():
    dw4 = systems.get("dw4")
    x = jnp.asarray(np.random.default_rng(0).normal(size=dw4.dim))
    assert math.isfinite(float(dw4.energy(x)))
    assert math.isnan(float(dw4.energy(x.at[0].set(jnp.nan))))
    # two particles on top of each other: r = 0, where the double-where keeps the gradient finite
    touching = x.at[2:4].set(x[0:2])
    assert np.all(np.isfinite(np.asarray(jax.grad(dw4.energy)(touching))))


def test_counts_accept_integral_floats_and_return_the_same_samples():
    gauss = systems.get("gaussian-2")
    np.testing.assert_array_equal(
        np.asarray(gauss.sample(KEY, 3.0)), np.asarray(gauss.sample(KEY, 3))
    )


def test_log_likelihood_works_under_jit():
    process = generative.VP()
    mixture = generative.GaussianMixture(jnp.ones(1), jnp.zeros((1, 2)), _eye()[None])
    score_fn = generative.exact_score_fn(process, mixture)
    x = jnp.array([[0.0, 0.0], [0.5, -0.3]])

    @jax.jit
    def jitted(x):
        return generative.log_likelihood(None, process, score_fn, x).log_prob

    eager = generative.log_likelihood(None, process, score_fn, x).log_prob
    np.testing.assert_allclose(np.asarray(jitted(x)), np.asarray(eager), rtol=1e-12)
    # the exact score of N(0, I) data under VP keeps N(0, I): log p = -log(2 pi) - |x|^2/2
    exact = -math.log(2 * math.pi) - 0.5 * np.sum(np.asarray(x) ** 2, axis=1)
    np.testing.assert_allclose(np.asarray(eager), exact, atol=1e-4)


def test_an_unstable_step_size_warns_after_the_run():
    kernel = integrate.overdamped_langevin(_energy, beta=1.0, dt=2.5)  # stable only for dt < 2
    states = jax.vmap(kernel.init)(jnp.ones((4, 2)))
    with pytest.warns(DivergenceWarning, match="step size"):
        integrate.run_population(KEY, kernel, states, 200)
    with pytest.warns(DivergenceWarning, match="step size"):
        thermo.run(KEY, kernel, kernel.init(jnp.ones(2)), 200, observable_fn=None)


def test_a_stable_run_does_not_warn_and_is_unchanged():
    kernel = integrate.overdamped_langevin(_energy, beta=1.0, dt=0.1)
    state = kernel.init(jnp.ones(2))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DivergenceWarning)
        final, _ = thermo.run(KEY, kernel, state, 50, observable_fn=None)
    final_jit, _ = jax.jit(lambda s: thermo.run(KEY, kernel, s, 50, observable_fn=None))(state)
    np.testing.assert_array_equal(np.asarray(final.position), np.asarray(final_jit.position))


# ---- experiment overrides: fail before any run directory exists --------------------------

OVERRIDES = [
    ("ais_chains=-5", "ais_chains=-5: must be an integer >= 1"),
    ("ais_chains=0", "ais_chains=0: must be an integer >= 1"),
    ("langevin_dt=-0.1", "langevin_dt=-0.1: must be a finite number > 0"),
    ("langevin_dt=nan", "langevin_dt=nan: must be a finite number > 0"),
    ("system=nope", "system=nope: must be one of 'dw4'"),
    ("methods=ais,bogus", "methods=ais,bogus: must be one of"),
    ("ais_steps=2.7", "ais_steps='2.7': expected int"),
    ("reference=elsewhere", "reference=elsewhere: must be one of 'auto', 'shared', 'none'"),
]


@pytest.mark.parametrize(("override", "needle"), OVERRIDES, ids=[o for o, _ in OVERRIDES])
def test_bad_override_fails_before_the_run_directory(tmp_path, override, needle):
    from experiments._config import ConfigError
    from experiments._runner import run_experiment

    with pytest.raises(ConfigError) as info:
        run_experiment("headline", quick=True, out=tmp_path, overrides=[override], progress=False)
    assert needle in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_bad_override_on_the_command_line_exits_2(tmp_path, capsys):
    from experiments.__main__ import main

    assert main(["run", "headline", "--quick", "--out", str(tmp_path), "ais_chains=-5"]) == 2
    assert "ais_chains=-5: must be an integer >= 1" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_every_numeric_config_field_declares_its_range():
    """Each int/float field of every registered experiment carries a Range or Choices, and
    the default and quick configs satisfy them."""
    import dataclasses
    import typing

    from experiments import registry
    from experiments._config import _constraints, check_config

    def declared(tp) -> bool:
        if _constraints(tp):
            return True
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is typing.Annotated:
            return declared(args[0])
        if args and origin is not None:  # tuple[...] / X | None: every numeric part
            parts = [a for a in args if a is not type(None) and a is not Ellipsis]
            return all(declared(a) for a in parts)
        return tp not in (int, float)

    missing = []
    for name in registry.names():
        cls = registry.get(name).config_cls
        hints = typing.get_type_hints(cls, include_extras=True)
        missing += [
            f"{name}.{f.name}" for f in dataclasses.fields(cls) if not declared(hints[f.name])
        ]
        check_config(cls())
        check_config(cls.quick())
    assert not missing, f"fields without a declared range: {missing}"
