"""The SDE type: diffusion helpers, the reversed clock of ReverseSDE, the divergence
term for state-dependent diffusions, the probability flow, and boundary errors."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from scipy import stats

from thermo.estimators import estimate_log_z
from thermo.integrate import (
    euler_maruyama,
    euler_maruyama_log_prob,
    overdamped_langevin,
    run_population,
    solve,
)
from thermo.sde import (
    SDE,
    LangevinSDE,
    brownian_shape,
    diffusion_cov_matvec,
    diffusion_covariance,
    diffusion_matvec,
)

N_SIGMA = 4.0


def test_diffusion_helpers_scalar_diagonal_full():
    v = jnp.array([1.0, -2.0, 0.5])
    full = jnp.array([[1.0, 0.2, 0.0, 0.3], [0.0, 2.0, 0.1, 0.0], [0.4, 0.0, 1.5, 0.2]])
    for g, dense in (
        (jnp.asarray(1.7), 1.7 * jnp.eye(3)),
        (jnp.array([1.0, 2.0, 3.0]), jnp.diag(jnp.array([1.0, 2.0, 3.0]))),
    ):
        np.testing.assert_allclose(diffusion_matvec(g, v), dense @ v)
        np.testing.assert_allclose(diffusion_cov_matvec(g, v), dense @ dense.T @ v)
        np.testing.assert_allclose(diffusion_covariance(g, 3), dense @ dense.T)
        assert brownian_shape(g, v) == (3,)
    w = jnp.arange(4.0)
    np.testing.assert_allclose(diffusion_matvec(full, w), full @ w)
    np.testing.assert_allclose(diffusion_cov_matvec(full, v), full @ full.T @ v)
    np.testing.assert_allclose(diffusion_covariance(full, 3), full @ full.T)
    assert brownian_shape(full, v) == (4,)


# A time-dependent SDE so that any error in the reversed clock shows.
def _drift(t, x, a):
    return -(1.0 + t) * x + jnp.sin(t)


def _diffusion(t, x, a):
    return jnp.sqrt(0.5 + t) * jnp.ones_like(x)


def _score(t, x, a):
    return -x / (1.0 + t**2)


def test_reverse_sde_clock():
    sde = SDE(_drift, _diffusion)
    t0, t1 = 0.2, 1.7
    rev = sde.reverse(_score, t0, t1)
    x = jnp.array([0.3, -1.1])
    for s in (t0, 0.6, t1):
        t = t0 + t1 - s  # forward time that reversed clock s corresponds to
        expected = -_drift(t, x, None) + _diffusion(t, x, None) ** 2 * _score(t, x, None)
        np.testing.assert_allclose(rev.drift(s, x, None), expected, rtol=1e-12)
        np.testing.assert_allclose(rev.diffusion(s, x, None), _diffusion(t, x, None))
    # Reversing the reversal, with the reversed process's score (its marginal at clock s
    # is p_{t0 + t1 - s}), gives back the forward drift.
    rev2 = rev.reverse(lambda s, y, a: _score(t0 + t1 - s, y, a), t0, t1)
    for t in (t0, 0.9, t1):
        np.testing.assert_allclose(rev2.drift(t, x, None), _drift(t, x, None), rtol=1e-12)


def _state_dependent_g(x):
    """A full, state-dependent 2x2 diffusion with G G^T positive definite."""
    return jnp.array([[1.0 + 0.5 * jnp.sin(x[0]), 0.3 * x[1]], [0.2 * x[0] ** 2, 1.2 + 0.1 * x[1]]])


def test_covariance_divergence_matches_hand_derivative():
    sde = SDE(lambda t, x, a: -x, lambda t, x, a: _state_dependent_g(x), state_dependent=True)
    x = jnp.array([0.7, -0.4])
    # [div(GG^T)]_i = sum_j d_j (GG^T)_ij, by central finite differences.
    h = 1e-6
    expected = np.zeros(2)
    for j in range(2):
        e = jnp.zeros(2).at[j].set(h)
        dcov = (
            diffusion_covariance(_state_dependent_g(x + e), 2)
            - diffusion_covariance(_state_dependent_g(x - e), 2)
        ) / (2 * h)
        expected += np.asarray(dcov[:, j])
    np.testing.assert_allclose(sde.covariance_divergence(0.0, x, None), expected, rtol=1e-7)
    # An x-free diffusion declares no divergence.
    assert not SDE(lambda t, x, a: x, lambda t, x, a: 1.0).state_dependent_diffusion


def test_reversible_state_dependent_diffusion_is_its_own_reversal():
    # With D = G G^T(x) and pi = N(0, I), the Ito drift f = (D grad log pi + div D)/2 makes
    # pi stationary and the process reversible: its Anderson reversal has drift f again and
    # its probability flow is zero (this needs the div(GG^T) terms).
    def score(t, x, a):
        return -x

    base = SDE(lambda t, x, a: -x, lambda t, x, a: _state_dependent_g(x), state_dependent=True)

    def drift(t, x, a):
        g = _state_dependent_g(x)
        return 0.5 * (g @ g.T @ score(t, x, a) + base.covariance_divergence(t, x, a))

    sde = SDE(drift, lambda t, x, a: _state_dependent_g(x), state_dependent=True)
    rev = sde.reverse(score, 0.0, 1.0)
    flow = sde.probability_flow(score)
    for x in (jnp.array([0.7, -0.4]), jnp.array([-1.3, 2.0])):
        np.testing.assert_allclose(rev.drift(0.3, x, None), drift(0.7, x, None), atol=1e-12)
        np.testing.assert_allclose(flow.vector_field(0.3, x, None), jnp.zeros(2), atol=1e-12)


def test_euler_maruyama_log_prob_matches_scipy():
    x = jnp.array([0.3, -0.2, 1.0])
    x_next = jnp.array([0.1, 0.4, 0.7])
    dt = 0.1
    g_full = jnp.array([[1.0, 0.0, 0.0], [0.5, 0.8, 0.0], [0.1, -0.3, 0.9]])
    for g in (jnp.asarray(0.7), jnp.array([0.5, 1.0, 1.5]), g_full):
        sde = SDE(lambda t, y, a: -y, lambda t, y, a, g=g: g)
        cov = np.asarray(diffusion_covariance(g, 3)) * dt
        expected = stats.multivariate_normal(np.asarray(x - x * dt), cov).logpdf(np.asarray(x_next))
        np.testing.assert_allclose(
            euler_maruyama_log_prob(sde, 0.0, dt, x, x_next), expected, rtol=1e-10
        )


# VP-SDE with a Gaussian start: exact marginals and score (as in test_integrate).
B0, B1, MU0, S0 = 0.5, 5.0, 2.0, 0.5
LOGW_PATHS, LOGW_DT = 10_000, 0.02


def _vp_marginal(t):
    a = jnp.exp(-0.5 * (B0 * t + 0.5 * (B1 - B0) * t**2))
    return MU0 * a, S0**2 * a**2 + 1 - a**2


def _vp_log_p(t, x):
    m, v = _vp_marginal(t)
    return jnp.sum(-0.5 * (x - m) ** 2 / v - 0.5 * jnp.log(2 * jnp.pi * v))


VP = SDE(
    lambda t, x, a: -0.5 * (B0 + (B1 - B0) * t) * x, lambda t, x, a: jnp.sqrt(B0 + (B1 - B0) * t)
)


@jax.jit
def _em_log_weights(key):
    rev = VP.reverse(lambda t, x, a: -(x - _vp_marginal(t)[0]) / _vp_marginal(t)[1], 0.0, 1.0)
    kernel = euler_maruyama(VP, LOGW_DT, reverse_sde=rev)
    k1, k2 = jr.split(key)
    x0 = MU0 + S0 * jr.normal(k1, (LOGW_PATHS, 2))
    final, _ = run_population(k2, kernel, jax.vmap(kernel.init)(x0), round(1.0 / LOGW_DT))
    log_p_T = jax.vmap(lambda x: _vp_log_p(1.0, x))(final.position)
    log_p_0 = jax.vmap(lambda x: _vp_log_p(0.0, x))(x0)
    return final.log_weight + log_p_T - log_p_0


def test_euler_maruyama_reverse_log_weights_are_unbiased():
    # w = p_T(x_N) prod_k B_k / (p_0(x_0) prod_k F_k) with normalised backward Euler kernels
    # of the reverse SDE: E[w] = 1 exactly, for any step size (Crooks 1999; AIS).
    est = estimate_log_z(_em_log_weights(jr.key(61)))
    assert abs(float(est.value)) < N_SIGMA * float(est.std_err), est


def test_boundary_errors():
    sde = SDE(lambda t, x, a: -x, lambda t, x, a: jnp.ones((3, 3)))
    with pytest.raises(ValueError, match="diffusion must have shape"):
        solve(jr.key(0), sde, jnp.zeros(2), 0.0, 1.0, dt0=0.1)
    with pytest.raises(ValueError, match="diffusion must have shape"):
        euler_maruyama(sde, 0.1).init(jnp.zeros(2))
    ou = SDE(lambda t, x, a: -x, lambda t, x, a: 1.0)
    with pytest.raises(ValueError, match="flat state"):
        solve(jr.key(0), ou, jnp.zeros((4, 2)), 0.0, 1.0, dt0=0.1)
    with pytest.raises(eqx.EquinoxRuntimeError, match="NaN"):
        euler_maruyama(ou, 0.1).init(jnp.array([jnp.nan, 0.0]))
    with pytest.raises(ValueError, match="dtmin"):
        solve(jr.key(0), ou, jnp.zeros(2), 0.0, 1.0, dt0=0.1, adaptive=True)
    with pytest.raises(ValueError, match="dt"):
        euler_maruyama(ou, 0.0)
    with pytest.raises(ValueError, match="time_sum"):
        euler_maruyama(ou, 0.1, reverse_sde=ou)


def test_langevin_sde_matches_overdamped_kernel_pathwise():
    # The same random numbers drive both: x' = x - dt grad U + sqrt(2 dt / beta) xi.
    def energy(x):
        return jnp.sum((x**2 - 1.0) ** 2)

    beta, dt = 2.0, 0.01
    em = euler_maruyama(LangevinSDE(energy, beta), dt)
    od = overdamped_langevin(energy, beta=beta, dt=dt)
    s_em, s_od = em.init(jnp.array([0.5, -0.2])), od.init(jnp.array([0.5, -0.2]))
    for key in jr.split(jr.key(71), 5):
        s_em, _ = em.step(key, s_em)
        s_od, _ = od.step(key, s_od)
    np.testing.assert_allclose(s_em.position, s_od.position, rtol=0, atol=1e-13)
    # Time-dependent form: U(x, t).
    sde_t = LangevinSDE(lambda x, t: (1.0 + t) * energy(x), beta, time_dependent=True)
    x = jnp.array([0.5, -0.2])
    np.testing.assert_allclose(sde_t.drift(1.0, x, None), -2.0 * jax.grad(energy)(x))


def test_run_population_progress_layout():
    kernel = euler_maruyama(SDE(lambda t, x, a: -x, lambda t, x, a: 1.0), 0.1)
    states = jax.vmap(kernel.init)(jnp.zeros((3, 2)))
    obs = lambda s, i: s.position  # noqa: E731
    final, trace = run_population(
        jr.key(0), kernel, states, 10, thin=5, observable_fn=obs, progress=True
    )
    assert trace.shape == (3, 2, 2) and final.position.shape == (3, 2)
    np.testing.assert_array_equal(trace[:, -1], final.position)
    _, trace_plain = run_population(jr.key(0), kernel, states, 10, thin=5, observable_fn=obs)
    assert trace_plain.shape == trace.shape


def test_run_with_progress_compiles_once_per_kernel():
    # the chunked scan behind progress=True is a module-level jit: a repeated run of the
    # same kernel (same chunk lengths) compiles nothing new and repeats the result
    from tests._compile_count import count_compiles
    from thermo.kernel import run

    kernel = euler_maruyama(SDE(lambda t, x, a: -x, lambda t, x, a: 1.0), 0.1)
    state = kernel.init(jnp.ones(2))
    first, _ = run(jr.key(3), kernel, state, 12, observable_fn=None, progress=True, n_chunks=3)
    with count_compiles() as c:
        again, _ = run(jr.key(3), kernel, state, 12, observable_fn=None, progress=True, n_chunks=3)
    assert c.n == 0
    np.testing.assert_array_equal(first.position, again.position)
