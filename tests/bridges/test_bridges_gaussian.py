"""The closed-form Gaussian Schrödinger bridge is exact (Bunne et al. 2023)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import bridges
from bridges._common import coupling_stats, simulate
from bridges.gaussian import entropic_cross_covariance, gaussian_bridge, gaussian_kl
from thermo.sde import AbstractSDE

SIGMA = 0.8
_simulate = eqx.filter_jit(simulate)


def _task(d=3, seed=0):
    k1, k2, k3, k4 = jr.split(jr.key(seed), 4)
    a = jr.normal(k1, (d, d))
    b = jr.normal(k2, (d, d))
    cov0 = a @ a.T / d + 0.5 * jnp.eye(d)
    cov1 = b @ b.T / d + 0.3 * jnp.eye(d)
    return gaussian_bridge(jr.normal(k3, (d,)), cov0, jr.normal(k4, (d,)), cov1, SIGMA)


@pytest.fixture(scope="module")
def bridge():
    return _task()


def test_reexport():
    assert bridges.gaussian_bridge is gaussian_bridge


def test_one_dimensional_closed_form():
    # 1-D: the plan's precision has off-diagonal -1/sigma^2  <=>  c^2 + sigma^2 c - ab = 0
    a, b, s = 1.7, 0.4, 0.9
    c = entropic_cross_covariance(jnp.array([[a]]), jnp.array([[b]]), s)[0, 0]
    assert c == pytest.approx((-(s**2) + np.sqrt(s**4 + 4 * a * b)) / 2, rel=1e-12)


def test_plan_has_schrodinger_form(bridge):
    # pi(x, y) ∝ exp(-|x - y|^2 / (2 sigma^2)) a(x) b(y): off-diagonal precision block = -I/sigma^2
    prec = jnp.linalg.inv(bridge.joint_cov())
    d = bridge.dim
    np.testing.assert_allclose(prec[:d, d:], -jnp.eye(d) / SIGMA**2, atol=1e-9)


def test_small_sigma_limit_is_monge_map():
    # sigma -> 0: C -> Σ0^{1/2}(Σ0^{1/2} Σ1 Σ0^{1/2})^{1/2} Σ0^{-1/2}, and C Σ0^{-1}... is the OT map's
    # cross-covariance T Σ0 with T symmetric positive definite
    br = _task()
    c = entropic_cross_covariance(br.cov0, br.cov1, 1e-5)
    t_map = jnp.linalg.solve(br.cov0, c).T  # C = Σ0 T^T
    np.testing.assert_allclose(t_map, t_map.T, atol=1e-6)
    np.testing.assert_allclose(t_map @ br.cov0 @ t_map.T, br.cov1, atol=1e-6)


@pytest.mark.parametrize("t", [0.0, 0.13, 0.5, 0.87, 1.0])
def test_lyapunov_equation(bridge, t):
    # dΣ/dt = A Σ + Σ A^T + σ² I, derivative by autodiff
    dcov = jax.jacfwd(bridge.cov)(t)
    a = bridge.drift_matrix(t)
    rhs = a @ bridge.cov(t) + bridge.cov(t) @ a.T + SIGMA**2 * jnp.eye(bridge.dim)
    assert float(jnp.max(jnp.abs(dcov - rhs))) < 1e-8
    # and dμ/dt = drift at the mean
    np.testing.assert_allclose(
        jax.jacfwd(bridge.mean)(t), bridge.drift(t, bridge.mean(t)), atol=1e-12
    )


def test_endpoints_and_gradient_drift(bridge):
    np.testing.assert_allclose(bridge.cov(0.0), bridge.cov0, atol=1e-12)
    np.testing.assert_allclose(bridge.cov(1.0), bridge.cov1, atol=1e-12)
    # for a Brownian reference the SB drift is sigma^2 grad log phi_t: A_t is symmetric
    for t in (0.2, 0.7):
        a = bridge.drift_matrix(t)
        np.testing.assert_allclose(a, a.T, atol=1e-10)


def test_kl_closed_form_equals_girsanov(bridge):
    # static KL(pi || R_01) = E ∫ |b|^2 / (2 sigma^2) dt (Girsanov), two independent formulas
    assert float(bridge.kl_to_reference()) == pytest.approx(
        float(bridge.kl_girsanov_quadrature()), rel=1e-9
    )


def test_gaussian_kl_zero_and_positive(bridge):
    assert abs(float(gaussian_kl(bridge.mu0, bridge.cov0, bridge.mu0, bridge.cov0))) < 1e-12
    assert float(gaussian_kl(bridge.mu0, bridge.cov0, bridge.mu1, bridge.cov1)) > 0


def test_bad_input():
    with pytest.raises(ValueError, match="positive definite"):
        gaussian_bridge(jnp.zeros(2), -jnp.eye(2), jnp.zeros(2), jnp.eye(2), 1.0)
    with pytest.raises(ValueError, match="shape"):
        gaussian_bridge(jnp.zeros(2), jnp.eye(3), jnp.zeros(2), jnp.eye(2), 1.0)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_bridge(jnp.zeros(2), jnp.eye(2), jnp.zeros(2), jnp.eye(2), 0.0)
    with pytest.raises(ValueError, match="finite"):
        gaussian_bridge(jnp.array([jnp.nan, 0.0]), jnp.eye(2), jnp.zeros(2), jnp.eye(2), 1.0)


def test_sample_plan_moments(bridge):
    n = 20000
    x0, x1 = bridge.sample_plan(jr.key(11), n)
    c_hat, s1_hat = coupling_stats(x0, x1)
    # standard error of a sample cross-covariance entry of a Gaussian: sqrt((S0_ii S1_jj + C_ij^2)/n)
    se = jnp.sqrt(
        (jnp.outer(jnp.diag(bridge.cov0), jnp.diag(bridge.cov1)) + bridge.cross_cov**2) / n
    )
    assert float(jnp.max(jnp.abs(c_hat - bridge.cross_cov) / se)) < 4.5


def test_euler_maruyama_recovers_plan(bridge):
    """Simulate the bridge SDE with thermo's Euler–Maruyama; recover C and Σ1."""
    n, n_steps = 8000, 200
    sde = bridge.sde()
    assert isinstance(sde, AbstractSDE)
    x0 = bridge.sample_marginal(jr.key(1), 0.0, n)
    x1, _ = _simulate(jr.key(2), sde, x0, n_steps)
    c_hat, s1_hat = coupling_stats(x0, x1)
    s0, s1, c = bridge.cov0, bridge.cov1, bridge.cross_cov
    # sample-covariance standard errors for Gaussian data (Anderson 2003, Thm 3.4.4):
    # Var(S_ij) = (S_ii S_jj + S_ij^2)/n, Var(C_ij) = (S0_ii S1_jj + C_ij^2)/n
    se_c = jnp.sqrt((jnp.outer(jnp.diag(s0), jnp.diag(s1)) + c**2) / n)
    se_s = jnp.sqrt((jnp.outer(jnp.diag(s1), jnp.diag(s1)) + s1**2) / n)
    se_m = jnp.sqrt(jnp.diag(s1) / n)
    assert float(jnp.max(jnp.abs(c_hat - c) / se_c)) < 4.5
    assert float(jnp.max(jnp.abs(s1_hat - s1) / se_s)) < 4.5
    assert float(jnp.max(jnp.abs(x1.mean(0) - bridge.mu1) / se_m)) < 4.5


@pytest.mark.parametrize(
    ("dtype", "sigma", "rtol"),
    [(jnp.float32, 100.0, 1e-5), (jnp.float64, 1e4, 1e-12), (jnp.float64, 1.0, 1e-14)],
)
def test_cross_covariance_has_no_cancellation_at_large_sigma(dtype, sigma, rtol):
    # Unit covariances: C = (sqrt(4 + sigma^4) - sigma^2)/2 I, evaluated to 50 digits.
    # The textbook form subtracts two numbers near sigma^2 (issue 19: float32, sigma = 100
    # gave 0; float64, sigma = 1e4 was 12 % off).
    from decimal import Decimal, localcontext

    with localcontext() as ctx:
        ctx.prec = 50
        s2 = Decimal(sigma) ** 2
        exact = float(((Decimal(4) + s2 * s2).sqrt() - s2) / 2)
    eye = jnp.eye(2, dtype=dtype)
    c = entropic_cross_covariance(eye, eye, jnp.asarray(sigma, dtype))
    assert c.dtype == dtype
    np.testing.assert_allclose(np.diag(np.asarray(c, np.float64)), exact, rtol=rtol)
    assert np.max(np.abs(np.asarray(c, np.float64) - np.diag(np.diag(c)))) <= rtol * exact


@pytest.mark.parametrize("sigma", [0.3, 30.0, 3000.0])
def test_cross_covariance_matches_high_precision_general_case(sigma):
    # Non-commuting covariances, against the closed form in 60-digit arithmetic (mpmath).
    mpmath = pytest.importorskip("mpmath")
    br = _task()
    cov0, cov1 = np.asarray(br.cov0, np.float64), np.asarray(br.cov1, np.float64)
    with mpmath.workdps(60):
        m0, m1 = mpmath.matrix(cov0.tolist()), mpmath.matrix(cov1.tolist())
        r0 = mpmath.sqrtm(m0)
        s = mpmath.mpf(sigma) ** 2
        eye = mpmath.eye(cov0.shape[0])
        d_sigma = mpmath.sqrtm(4 * r0 * m1 * r0 + s**2 * eye)
        exact = (r0 * d_sigma * mpmath.inverse(r0) - s * eye) / 2
        # sqrtm may return mpc entries with imaginary parts at the 1e-60 level
        exact = np.array([[complex(v) for v in row] for row in exact.tolist()])
    assert np.max(np.abs(exact.imag)) <= 1e-30 * np.max(np.abs(exact.real))
    exact = exact.real
    c = np.asarray(entropic_cross_covariance(br.cov0, br.cov1, sigma))
    assert np.linalg.norm(c - exact) <= 1e-12 * np.linalg.norm(exact)
