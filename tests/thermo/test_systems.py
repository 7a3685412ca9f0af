"""The systems registry: contract, forces, conventions, finiteness and exact log Z.

Every statistical check uses a fixed key written here and a tolerance of 4
standard errors of its own estimator.
"""

from __future__ import annotations

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import scipy.integrate
import scipy.special
import scipy.stats

import thermo.systems as systems
from thermo.estimators import estimate_log_z

ALL_NAMES = [
    "gaussian-3",
    "gmm40",
    "mw5",
    "mw32",
    "funnel",
    "dw4",
    "lj13",
    "lj55",
    "lj13-standard",
    "lj55-standard",
]
PARTICLES = {"dw4": (4, 2), "lj13": (13, 3), "lj55": (55, 3), "lj13-standard": (13, 3)}
PARTICLES["lj55-standard"] = (55, 3)


@eqx.filter_jit
def _energies(system, xs):
    """Energies of a population ``(n, dim) -> (n,)``, compiled once per system and shape."""
    return jax.vmap(system.energy)(xs)


EXACT_SEEDS = {"gaussian-3": 25, "gmm40": 22, "funnel": 24, "mw5": 26, "mw32": 27}
# samples per system: 20,000 (5,000 for the 32-D many-well, whose rejection
# sampler is the costliest); the KS tests below see deviations of ~1/sqrt(n)
N_EXACT = {"gaussian-3": 20_000, "gmm40": 20_000, "funnel": 20_000, "mw5": 20_000, "mw32": 5_000}


@functools.cache
def _exact_samples(name: str) -> np.ndarray:
    """``N_EXACT[name]`` exact samples, drawn once per system with the seed fixed above."""
    system = systems.get(name)
    draw = jax.jit(system.sample, static_argnums=1)
    return np.asarray(draw(jr.key(EXACT_SEEDS[name]), N_EXACT[name]))


# --------------------------------------------------------------------------- contract


def test_names_lists_every_registered_system():
    listed = systems.names()
    for name in ALL_NAMES:
        if not name.startswith("gaussian"):
            assert name in listed
    assert "gaussian-<d>" in listed


@pytest.mark.parametrize("name", ALL_NAMES)
def test_contract_attributes(name):
    system = systems.get(name)
    assert isinstance(system, systems.System)
    assert system.name == name
    assert isinstance(system.dim, int) and system.dim > 0
    assert system.beta > 0
    assert system.log_z is None or math.isfinite(system.log_z)
    # every constant is static, so systems hash and jax.jit(system.energy) works
    assert isinstance(hash(system), int)
    assert systems.get(name) is system  # built once, then shared
    if name in PARTICLES:
        n, d = PARTICLES[name]
        assert (system.n_particles, system.spatial_dim) == (n, d)
        assert system.dim == n * d
        assert system.log_z is None
    else:
        assert system.n_particles is None and system.spatial_dim is None
        assert system.log_z is not None


def test_gaussian_dimension_is_parsed_from_the_name():
    assert systems.get("gaussian-17").dim == 17
    assert systems.get("gaussian-1").dim == 1
    with pytest.raises(KeyError, match="unknown system"):
        systems.get("gaussian-0")
    with pytest.raises(KeyError, match="known: "):
        systems.get("lj7")


def test_register_refuses_duplicates_unless_asked():
    with pytest.raises(ValueError, match="already registered"):
        systems.register("dw4", systems.dw4)
    systems.register("dw4", systems.dw4, overwrite=True)
    assert systems.get("dw4").dim == 8


def test_wrong_shape_raises_a_clear_error():
    system = systems.get("lj13")
    with pytest.raises(ValueError, match=r"shape \(39,\)"):
        system.energy(jnp.zeros((2, 39)))
    with pytest.raises(ValueError, match="vmap"):
        system.energy(jnp.zeros(38))


@pytest.mark.parametrize("name", ["dw4", "lj13", "lj55-standard"])
def test_no_exact_sampler_raises(name):
    with pytest.raises(NotImplementedError, match="no exact sampler"):
        systems.get(name).sample(jr.key(0), 3)


@pytest.mark.parametrize("name", ["gaussian-3", "gmm40", "funnel", "mw5", "mw32"])
def test_exact_samplers_have_the_right_shape(name):
    system = systems.get(name)
    x = _exact_samples(name)
    assert x.shape == (N_EXACT[name], system.dim)
    assert np.all(np.isfinite(x))


@eqx.filter_jit
def _batch_energy_score_log_prob(system, xs):
    energy, grad = jax.vmap(jax.value_and_grad(system.energy))(xs)
    return energy, grad, jax.vmap(system.score)(xs), jax.vmap(system.log_prob)(xs)


@pytest.mark.parametrize("name", ["gmm40", "dw4"])
def test_systems_pass_through_jit_and_vmap(name):
    system = systems.get(name)
    xs = system.initial_positions(jr.key(2), 6)
    energy, grad, score, log_prob = _batch_energy_score_log_prob(system, xs)
    assert energy.shape == (6,) and score.shape == xs.shape
    np.testing.assert_allclose(log_prob, -system.beta * energy, rtol=1e-12)
    np.testing.assert_allclose(score, -system.beta * grad, rtol=1e-12)
    # float32 in, float32 out
    energy32 = _batch_energy_score_log_prob(system, xs.astype(jnp.float32))[0]
    assert energy32.dtype == jnp.float32
    np.testing.assert_allclose(energy32, energy, rtol=1e-4)


def test_initial_positions_of_particle_systems_are_centred():
    system = systems.get("lj13")
    x = system.initial_positions(jr.key(3), 4).reshape(4, 13, 3)
    np.testing.assert_allclose(x.mean(axis=1), 0.0, atol=1e-12)
    assert float(x.std()) == pytest.approx(system.prior_scale, rel=0.15)


def test_particle_helpers():
    system = systems.get("dw4")
    x = jnp.array([0.0, 0.0, 3.0, 0.0, 0.0, 4.0, 3.0, 4.0])
    np.testing.assert_allclose(system.pairwise_distances(x), [3.0, 4.0, 5.0, 5.0, 4.0, 3.0])
    centred = system.remove_com(x + 7.0)
    np.testing.assert_allclose(centred.reshape(4, 2).mean(0), 0.0, atol=1e-12)
    energies = _energies(system, jnp.stack([centred, x]))
    np.testing.assert_allclose(energies[0], energies[1], rtol=1e-12)
    assert system.positions(x).shape == (4, 2)


# --------------------------------------------------------------------------- forces


def _test_point(system, key):
    """A typical configuration: a perturbed minimum for LJ, the prior otherwise."""
    if isinstance(system, systems.LennardJonesCluster):
        shells = {13: 1, 55: 2}[system.n_particles]
        base = systems.mackay_icosahedron(shells, system.r_m).ravel()
        return jnp.asarray(base) + 0.05 * system.r_m * jr.normal(key, (system.dim,))
    return system.initial_positions(key, 1)[0]


@eqx.filter_jit
def _force_and_central_differences(system, x, h):
    basis = jnp.eye(x.shape[0], dtype=x.dtype)
    fd = jax.vmap(lambda e: (system.energy(x + h * e) - system.energy(x - h * e)) / (2 * h))(basis)
    force = system.force(x)
    # energy_and_force must agree with force
    force = eqx.error_if(force, jnp.any(system.energy_and_force(x)[1] != force), "mismatch")
    return force, -fd


@pytest.mark.parametrize("name", ALL_NAMES)
def test_force_is_minus_the_gradient_by_central_differences(name):
    system = systems.get(name)
    x = _test_point(system, jr.key(10))
    force, force_fd = _force_and_central_differences(system, x, jnp.asarray(1e-5))
    # Central differences err by O(h^2 |U'''|) + O(eps |U| / h): ~1e-7 relative here.
    scale = 1.0 + float(jnp.max(jnp.abs(force)))
    np.testing.assert_allclose(force, force_fd, rtol=0, atol=1e-6 * scale)


def test_lj_force_is_exact_inside_the_regularised_core():
    """Two particles at r = 0.3 r_m and 0.5 r_m exercise the Taylor branch and its join."""
    system = systems.get("lj13")
    base = jnp.asarray(systems.mackay_icosahedron(1, 1.0).ravel())
    for r in (0.3, 0.5 - 1e-4, 0.5 + 1e-4):
        x = base.at[3:6].set(base[0:3] + jnp.array([r, 0.0, 0.0]))
        force, force_fd = _force_and_central_differences(system, x, jnp.asarray(1e-7))
        scale = 1.0 + float(jnp.max(jnp.abs(force)))
        np.testing.assert_allclose(force, force_fd, rtol=0, atol=1e-6 * scale)


# --------------------------------------------------------------------------- finiteness


@eqx.filter_jit
def _energy_force_hessian(system, xs):
    energy, grad = jax.vmap(jax.value_and_grad(system.energy))(xs)
    return energy, -grad, jax.vmap(jax.hessian(system.energy))(xs)


@pytest.mark.parametrize(
    ("name", "dtype"), [("dw4", jnp.float64), ("lj13", jnp.float64), ("lj13", jnp.float32)]
)
def test_energy_and_gradient_are_finite_for_coincident_particles(name, dtype):
    system = systems.get(name)
    x = _test_point(system, jr.key(4)).astype(dtype)
    d = system.spatial_dim
    two_on_top = x.at[d : 2 * d].set(x[:d])
    all_on_top = jnp.zeros_like(x)
    energy, force, hessian = _energy_force_hessian(system, jnp.stack([two_on_top, all_on_top]))
    assert energy.dtype == dtype
    assert bool(jnp.all(jnp.isfinite(energy))) and bool(jnp.all(jnp.isfinite(force)))
    assert bool(jnp.all(jnp.isfinite(hessian)))
    if name != "dw4":  # coincident LJ particles cost a huge but finite energy
        assert float(energy[0]) > 1e4


def test_lj_regularisation_leaves_physical_distances_unchanged():
    pair, pair_grad = (
        jax.jit(systems.lj_pair_energy),
        jax.jit(jax.vmap(jax.grad(systems.lj_pair_energy))),
    )
    q = np.linspace(0.25, 9.0, 2001)
    np.testing.assert_allclose(pair(q), q**-6 - 2 * q**-3, rtol=1e-13)
    # C^1 join at q_c = 1/4 and monotone decreasing below it
    qc = 0.25
    grads = pair_grad(jnp.array([qc - 1e-9, qc + 1e-9]))
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-6)
    inner = np.asarray(pair(np.linspace(0.0, qc, 101)))
    assert np.all(np.diff(inner) < 0)
    assert float(inner[0]) == pytest.approx(113408.0)


# --------------------------------------------------------------------------- conventions


def _random_clusters(key, n, spread, count):
    """Mackay icosahedra (nearest neighbours at 1) with Gaussian noise of std ``spread``."""
    pos = systems.mackay_icosahedron({13: 1, 55: 2}[n], 1.0)
    return jnp.asarray(pos.ravel())[None] + spread * jr.normal(key, (count, n * 3))


def test_dem_lj_is_twice_standard_lj_at_half_the_temperature_plus_restraint():
    """On random LJ-13 configurations (LJ-55 is checked at its minimum in test_systems_minima)."""
    n = 13
    dem, std = systems.get(f"lj{n}"), systems.get(f"lj{n}-standard")
    s = 2.0 ** (1.0 / 6.0)
    xs = _random_clusters(jr.key(5), n, 0.1, 8)
    # include some configurations with clamped (overlapping) pairs too
    xs = jnp.concatenate([xs, 0.3 * xs[:2]])
    u_dem = _energies(dem, xs)
    u_std = _energies(std, s * xs)
    pos = xs.reshape(len(xs), n, 3)
    restraint = 0.5 * jnp.sum((pos - pos.mean(1, keepdims=True)) ** 2, axis=(1, 2))
    np.testing.assert_allclose(u_dem, 2.0 * u_std + restraint, rtol=1e-12)
    np.testing.assert_allclose(
        dem.beta * u_dem, std.beta * u_std + restraint, rtol=1e-12
    )  # same Boltzmann factor: standard LJ at kT = eps/2 times the restraint


def test_lj_energies_match_an_independent_double_loop():
    dem, std = systems.get("lj13"), systems.get("lj13-standard")
    x = np.asarray(_random_clusters(jr.key(6), 13, 0.08, 1))[0]
    pos = x.reshape(13, 3)
    ordered_dem, unique_std = 0.0, 0.0
    for i in range(13):
        for j in range(13):
            if i != j:
                r = np.linalg.norm(pos[i] - pos[j])
                ordered_dem += (1 / r) ** 12 - 2 * (1 / r) ** 6
                if i < j:
                    unique_std += 4 * ((1 / r) ** 12 - (1 / r) ** 6)
    ordered_dem += 0.5 * np.sum((pos - pos.mean(0)) ** 2)
    assert float(_energies(dem, x[None])[0]) == pytest.approx(ordered_dem, rel=1e-12)
    assert float(_energies(std, x[None])[0]) == pytest.approx(unique_std, rel=1e-12)


def test_dw4_matches_an_independent_double_loop():
    system = systems.get("dw4")
    x = np.asarray(system.initial_positions(jr.key(7), 1)[0])
    pos = x.reshape(4, 2)
    expected = 0.0
    for i in range(4):
        for j in range(i + 1, 4):
            d = np.linalg.norm(pos[i] - pos[j])
            expected += 0.9 * (d - 4) ** 4 - 4 * (d - 4) ** 2
    assert float(_energies(system, x[None])[0]) == pytest.approx(expected, rel=1e-12)


def test_mw32_is_fabs_double_well_pairs():
    system = systems.get("mw32")
    x = np.asarray(jr.normal(jr.key(8), (32,)))
    x1, x2 = x[0::2], x[1::2]
    log_p = np.sum(-(x1**4) + 6 * x1**2 + 0.5 * x1 - 0.5 * x2**2)  # FAB's ManyWell log p
    assert -float(_energies(system, x[None])[0]) == pytest.approx(log_p, rel=1e-12)
    mw5 = systems.get("mw5")
    y = x[:5]
    assert float(_energies(mw5, y[None])[0]) == pytest.approx(np.sum((y**2 - 4) ** 2), rel=1e-12)


# --------------------------------------------------------------------------- exact log Z


def _log_quad(f):
    value, err = scipy.integrate.quad(f, -np.inf, np.inf, epsabs=0, epsrel=1e-13, limit=500)
    assert err < 1e-10 * value
    return math.log(value)


def test_gaussian_log_z_by_quadrature_and_importance_sampling():
    system = systems.get("gaussian-3")
    expected = 3 * _log_quad(lambda t: math.exp(-0.5 * t * t))
    assert system.log_z == pytest.approx(expected, rel=1e-12)
    # importance sampling from a wider Gaussian N(0, 1.5^2 I)
    q_scale, n = 1.5, 50_000
    y = q_scale * jr.normal(jr.key(20), (n, system.dim))
    log_q = jnp.sum(scipy.stats.norm.logpdf(np.asarray(y), scale=q_scale), axis=1)
    est = estimate_log_z(-_energies(system, y) - log_q)
    print(
        f"\ngaussian-3 log Z: IS {float(est.value):.5f} +- {float(est.std_err):.5f}, exact {system.log_z:.5f}"
    )
    assert abs(float(est.value) - system.log_z) < 4 * float(est.std_err)


def test_mw5_log_z_by_quadrature_and_bessel_closed_form():
    system = systems.get("mw5")
    per_coordinate = _log_quad(lambda t: math.exp(-((t * t - 4.0) ** 2)))
    print(f"\nmw5 log Z: quadrature {5 * per_coordinate:.10f}, registry {system.log_z:.10f}")
    assert system.log_z == pytest.approx(5 * per_coordinate, abs=1e-10)
    # closed form: int exp(-(x^2-a)^2) dx = pi/2 sqrt(a) e^{-a^2/2} [I_{-1/4} + I_{1/4}](a^2/2)
    a = 4.0
    z = a * a / 2
    bessel = (scipy.special.ive(-0.25, z) + scipy.special.ive(0.25, z)) * math.exp(z)
    closed = math.log(math.pi / 2 * math.sqrt(a) * math.exp(-a * a / 2) * bessel)
    assert per_coordinate == pytest.approx(closed, abs=1e-10)


def test_mw32_log_z_by_quadrature_is_164_6957():
    system = systems.get("mw32")
    well = _log_quad(lambda t: math.exp(-(t**4) + 6 * t**2 + 0.5 * t))
    harmonic = 0.5 * math.log(2 * math.pi)
    quad = 16 * (well + harmonic)
    print(f"\nmw32 log Z: quadrature {quad:.7f}, registry {system.log_z:.7f}")
    assert round(quad, 4) == 164.6957
    assert system.log_z == pytest.approx(quad, abs=1e-9)


def test_gmm40_log_z_by_importance_sampling_is_zero():
    system = systems.get("gmm40")
    # a wide Gaussian proposal N(0, 25^2 I) covering [-40, 40]^2
    q_scale, n = 25.0, 200_000
    y = q_scale * jr.normal(jr.key(21), (n, 2))
    log_q = jnp.sum(scipy.stats.norm.logpdf(np.asarray(y), scale=q_scale), axis=1)
    est = estimate_log_z(-_energies(system, y) - log_q)
    print(f"\ngmm40 log Z: IS {float(est.value):+.5f} +- {float(est.std_err):.5f}, exact 0")
    assert abs(float(est.value) - 0.0) < 4 * float(est.std_err)
    assert float(est.std_err) < 0.05  # the check has power


def test_gmm40_definition_and_exact_samples():
    system = systems.get("gmm40")
    means = np.random.default_rng(0).uniform(-40.0, 40.0, size=(40, 2))
    np.testing.assert_array_equal(system.means, means)
    assert system.scale == pytest.approx(math.log1p(math.e))  # softplus(1)
    x = _exact_samples("gmm40")
    for axis in (0, 1):

        def cdf(t, axis=axis):
            return np.mean(
                scipy.stats.norm.cdf((t[:, None] - means[None, :, axis]) / system.scale), axis=1
            )

        assert scipy.stats.kstest(x[:, axis], cdf).pvalue > 1e-3


def test_funnel_log_z_by_importance_sampling_is_zero():
    system = systems.get("funnel")
    # proposal independent of the energy code: x0 ~ N(0, 4^2), x_i | x0 ~ N(0, 1.5 e^{x0})
    n = 50_000
    k0, k1 = jr.split(jr.key(23))
    x0 = 4.0 * np.asarray(jr.normal(k0, (n, 1)))
    sd = np.sqrt(1.5 * np.exp(x0))
    rest = sd * np.asarray(jr.normal(k1, (n, 9)))
    y = np.concatenate([x0, rest], axis=1)
    log_q = scipy.stats.norm.logpdf(x0[:, 0], scale=4.0) + np.sum(
        scipy.stats.norm.logpdf(rest, scale=sd), axis=1
    )
    est = estimate_log_z(-_energies(system, jnp.asarray(y)) - log_q)
    print(f"\nfunnel log Z: IS {float(est.value):+.5f} +- {float(est.std_err):.5f}, exact 0")
    assert abs(float(est.value)) < 4 * float(est.std_err)
    assert float(est.std_err) < 0.05


def test_funnel_exact_samples():
    system = systems.get("funnel")
    x = _exact_samples("funnel")
    assert scipy.stats.kstest(x[:, 0], scipy.stats.norm(scale=3.0).cdf).pvalue > 1e-3
    standardised = (x[:, 1:] * np.exp(-0.5 * x[:, :1])).ravel()
    assert scipy.stats.kstest(standardised, scipy.stats.norm.cdf).pvalue > 1e-3
    # and the sampler's density is exp(-U) exactly (log Z = 0): log q(x) = -U(x)
    log_q = scipy.stats.norm.logpdf(x[:, 0], scale=3.0) + np.sum(
        scipy.stats.norm.logpdf(x[:, 1:], scale=np.exp(0.5 * x[:, :1])), axis=1
    )
    np.testing.assert_allclose(-_energies(system, jnp.asarray(x[:200])), log_q[:200])


def test_gaussian_exact_samples():
    x = _exact_samples("gaussian-3")
    assert scipy.stats.kstest(x.ravel(), scipy.stats.norm.cdf).pvalue > 1e-3


def _quadrature_cdf(log_density):
    """CDF of exp(log_density) on the line, by cumulative trapezoid on a fine grid."""
    grid = np.linspace(-8.0, 8.0, 160_001)
    log_f = log_density(grid)
    cdf = scipy.integrate.cumulative_trapezoid(np.exp(log_f - log_f.max()), grid, initial=0.0)
    cdf /= cdf[-1]
    return lambda t: np.interp(t, grid, cdf)


@pytest.mark.parametrize(
    ("name", "coordinate", "log_density"),
    [
        ("mw5", 3, lambda t: -((t * t - 4.0) ** 2)),
        ("mw32", 0, lambda t: -(t**4) + 6 * t**2 + 0.5 * t),
        ("mw32", 1, lambda t: -0.5 * t**2),
    ],
)
def test_many_well_exact_samples_by_ks_test(name, coordinate, log_density):
    x = _exact_samples(name)
    assert scipy.stats.kstest(x[:, coordinate], _quadrature_cdf(log_density)).pvalue > 1e-3
    # coordinates are independent: the correlation of the first two is ~N(0, 1/n)
    assert abs(np.corrcoef(x[:, 0], x[:, 1])[0, 1]) < 4 / np.sqrt(len(x))
