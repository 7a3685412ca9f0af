"""Integrators: Euler–Maruyama vs diffrax vs exact Ornstein–Uhlenbeck moments, weak order,
diffusion types, reverse SDE and probability-flow ODE, BAOAB Boltzmann sampling.

Every statistical tolerance is a multiple (4) of the estimator's own standard error;
seeds are fixed in each test.
"""

from __future__ import annotations

import diffrax as dfx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from scipy import stats

from thermo.integrate import (
    baoab,
    euler_maruyama,
    run_population,
    solve,
    solve_ode,
)
from thermo.sde import SDE

N_SIGMA = 4.0  # |estimate - truth| < 4 standard errors: a two-sided 6e-5 false-alarm rate

# --------------------------------------------------------------------------------------
# Ornstein–Uhlenbeck dX = -theta X dt + sigma dW, exact moments
# --------------------------------------------------------------------------------------
THETA, SIGMA, X0, T_OU = 1.0, jnp.sqrt(2.0), 2.0, 1.0
OU_DIM, OU_PATHS = 2, 4000
# EM's O(dt) bias at these steps is < 0.3 standard errors (exact EM recursion, see below).
EM_DT, DIFFRAX_DT, DIFFRAX_PATHS = 0.005, 0.01, 2000


def ou_sde(kind: str) -> SDE:
    def drift(t, x, a):
        return -THETA * x

    if kind == "scalar":
        return SDE(drift, lambda t, x, a: SIGMA)
    if kind == "diagonal":
        return SDE(drift, lambda t, x, a: SIGMA * jnp.ones(OU_DIM))
    return SDE(drift, lambda t, x, a: SIGMA * jnp.eye(OU_DIM))


def ou_exact(t):
    mean = X0 * np.exp(-THETA * t)
    var = SIGMA**2 / (2 * THETA) * (1 - np.exp(-2 * THETA * t))
    return float(mean), float(var)


def moments_with_errors(samples):
    """Mean and variance of all coordinates pooled, with their standard errors
    (Gaussian fourth moment for the variance's error: Var(s^2) = 2 sigma^4 / (n - 1))."""
    x = np.asarray(samples).ravel()
    n = x.size
    mean, var = x.mean(), x.var(ddof=1)
    return mean, np.sqrt(var / n), var, var * np.sqrt(2.0 / (n - 1))


@jax.jit
def _em_ou_population(key):
    kernel = euler_maruyama(ou_sde("diagonal"), EM_DT)
    states = jax.vmap(kernel.init)(jnp.full((OU_PATHS, OU_DIM), X0))
    final, _ = run_population(key, kernel, states, round(T_OU / EM_DT))
    return final.position


@jax.jit
def _diffrax_ou_population(key):
    keys = jr.split(key, DIFFRAX_PATHS)

    def one(k):
        return solve(k, ou_sde("scalar"), jnp.full(OU_DIM, X0), 0.0, T_OU, dt0=DIFFRAX_DT).ys[-1]

    return jax.vmap(one)(keys)


def test_euler_maruyama_and_diffrax_match_exact_ou():
    mean_exact, var_exact = ou_exact(T_OU)
    em = _em_ou_population(jr.key(11))
    dx = _diffrax_ou_population(jr.key(12))
    results = {}
    for name, x in (("euler_maruyama", em), ("diffrax", dx)):
        m, se_m, v, se_v = moments_with_errors(x)
        results[name] = (m, se_m, v, se_v)
        print(
            f"OU {name}: mean {m:.4f}+-{se_m:.4f} (exact {mean_exact:.4f}), var {v:.4f}+-{se_v:.4f} (exact {var_exact:.4f})"
        )
        assert abs(m - mean_exact) < N_SIGMA * se_m, (name, m, mean_exact, se_m)
        assert abs(v - var_exact) < N_SIGMA * se_v, (name, v, var_exact, se_v)
    (m1, s1, v1, sv1), (m2, s2, v2, sv2) = results.values()
    assert abs(m1 - m2) < N_SIGMA * np.hypot(s1, s2)
    assert abs(v1 - v2) < N_SIGMA * np.hypot(sv1, sv2)


# --------------------------------------------------------------------------------------
# Weak order of Euler–Maruyama
# --------------------------------------------------------------------------------------
# OU from x0 = 0 up to T = 4 (near stationarity). The EM second moment follows the exact
# recursion v_{k+1} = (1 - theta dt)^2 v_k + sigma^2 dt, whose error against the exact
# sigma^2/(2 theta) (1 - e^{-2 theta T}) is first order in dt.
WEAK_DTS = (0.4, 0.2, 0.1)
WEAK_T = 4.0
# 100,000 independent scalar paths per step size: the relative standard error of the
# second moment, sqrt(2/n) = 0.45 %, is < 10 % of the smallest relative error (5 %).
WEAK_CHAINS, WEAK_DIM = 500, 200


def em_second_moment_exact(dt: float) -> float:
    a = (1 - THETA * dt) ** 2
    n = round(WEAK_T / dt)
    return float(SIGMA**2 * dt * (1 - a**n) / (1 - a))


@jax.jit
def _weak_second_moment(key, dt, n_steps):
    # dt and n_steps are traced, so one compilation serves every step size: the kernel's
    # step is driven by a fori_loop with a dynamic trip count (a test-only driver).
    kernel = euler_maruyama(ou_sde("scalar"), dt)
    states = jax.vmap(kernel.init)(jnp.zeros((WEAK_CHAINS, WEAK_DIM)))
    keys = jr.split(key, WEAK_CHAINS)

    def body(i, s):
        return jax.vmap(lambda k, si: kernel.step(jr.fold_in(k, i), si)[0])(keys, s)

    final = jax.lax.fori_loop(0, n_steps, body, states)
    x2 = final.position**2
    return jnp.mean(x2), jnp.std(x2) / jnp.sqrt(x2.size)


def test_euler_maruyama_weak_order_one():
    exact = SIGMA**2 / (2 * THETA) * (1 - np.exp(-2 * THETA * WEAK_T))
    keys = jr.split(jr.key(2024), len(WEAK_DTS))
    errors = []
    for key, dt in zip(keys, WEAK_DTS, strict=True):
        m2, se = (float(v) for v in _weak_second_moment(key, dt, round(WEAK_T / dt)))
        # The kernel reproduces the exact discrete-time moment (tests the kernel itself).
        assert abs(m2 - em_second_moment_exact(dt)) < N_SIGMA * se, (dt, m2, se)
        errors.append(m2 - exact)
    errors = np.asarray(errors)
    assert np.all(errors > 0)  # EM overestimates the OU variance for these dt
    slope = np.polyfit(np.log(WEAK_DTS), np.log(errors), 1)[0]
    exact_slope = np.polyfit(
        np.log(WEAK_DTS), np.log([em_second_moment_exact(dt) - exact for dt in WEAK_DTS]), 1
    )[0]
    # Theory: weak order 1. The band [0.8, 1.2] allows the pre-asymptotic curvature
    # (exact discrete slope ~1.12 here) plus Monte Carlo noise (<10 % on the smallest error).
    print(
        f"EM weak order: fitted slope {slope:.3f} (exact discrete {exact_slope:.3f}), errors {errors}"
    )
    assert 0.8 < exact_slope < 1.2, exact_slope
    assert 0.8 < slope < 1.2, slope


# --------------------------------------------------------------------------------------
# Diffusion types: scalar == diagonal == full (d x d) pathwise; full (d x m) in law
# --------------------------------------------------------------------------------------


def test_diffusion_types_agree_pathwise():
    x0 = jnp.array([0.3, -1.2])
    outs_em, outs_dfx = [], []
    for kind in ("scalar", "diagonal", "full"):
        sde = ou_sde(kind)
        if kind == "diagonal":
            # solve() maps scalar and diagonal G to the same DiagonalLinearOperator: the
            # pathwise check of that branch is scalar == full below.
            kernel = euler_maruyama(sde, 0.05)
            state = kernel.init(x0)
            for key in jr.split(jr.key(5), 4):
                state, _ = kernel.step(key, state)
            outs_em.append(state.position)
            outs_dfx.append(None)
            continue
        kernel = euler_maruyama(sde, 0.05)
        state = kernel.init(x0)
        for key in jr.split(jr.key(5), 4):  # a few eager steps: no scan to compile
            state, _ = kernel.step(key, state)
        outs_em.append(state.position)
        outs_dfx.append(solve(jr.key(6), sde, x0, 0.0, 1.0, dt0=0.05).ys[-1])
    np.testing.assert_allclose(outs_em[1], outs_em[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(outs_em[2], outs_em[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(outs_dfx[2], outs_dfx[0], rtol=0, atol=1e-12)


def test_adaptive_diffrax_solve_follows_the_same_brownian_path():
    # The Brownian path is a function of the key alone, so an adaptive Heun solve and a
    # fixed-step one converge to the same strong solution. Heun has strong order 1 for
    # additive noise: at dt = 0.005 the fixed-step error is ~1e-4, so 2e-3 is a loose band.
    sde = SDE(lambda t, x, a: -x + jnp.sin(3 * t), lambda t, x, a: 0.5 * jnp.ones(2))
    kw = dict(solver=dfx.Heun(), brownian_tol=1e-4)
    fixed = solve(jr.key(9), sde, jnp.ones(2), 0.0, 1.0, dt0=0.005, **kw).ys[-1]
    adaptive = solve(
        jr.key(9),
        sde,
        jnp.ones(2),
        0.0,
        1.0,
        dt0=0.05,
        adaptive=True,
        rtol=1e-4,
        atol=1e-6,
        dtmin=2e-4,
        **kw,
    )
    np.testing.assert_allclose(adaptive.ys[-1], fixed, rtol=0, atol=2e-3)
    # It adapted: fewer accepted steps than the 5,000 it would take crawling at dtmin.
    assert 0 < int(adaptive.stats["num_accepted_steps"]) < round(1.0 / 2e-4)


RECT_PATHS = 4000


@jax.jit
def _rectangular_vs_diagonal(key):
    # G = [a I, b I] (d x 2d) has G G^T = (a^2 + b^2) I: the same law as diag(sqrt(a^2+b^2)).
    a, b = 0.6, 0.8
    rect = SDE(
        lambda t, x, p: -x, lambda t, x, p: jnp.concatenate([a * jnp.eye(2), b * jnp.eye(2)], 1)
    )
    diag = SDE(lambda t, x, p: -x, lambda t, x, p: jnp.hypot(a, b) * jnp.ones(2))
    k1, k2 = jr.split(key)
    x0 = jnp.ones((RECT_PATHS, 2))
    outs = []
    for sde, k in ((rect, k1), (diag, k2)):
        kernel = euler_maruyama(sde, 0.01)
        final, _ = run_population(k, kernel, jax.vmap(kernel.init)(x0), 100)
        outs.append(final.position)
    return outs


def test_rectangular_full_diffusion_matches_diagonal_in_law():
    rect, diag = _rectangular_vs_diagonal(jr.key(7))
    m1, s1, v1, sv1 = moments_with_errors(rect)
    m2, s2, v2, sv2 = moments_with_errors(diag)
    assert abs(m1 - m2) < N_SIGMA * np.hypot(s1, s2)
    assert abs(v1 - v2) < N_SIGMA * np.hypot(sv1, sv2)


CORR_L = jnp.array([[1.0, 0.0], [0.8, 0.6]])  # full, correlated noise
CORR_PATHS, CORR_T, CORR_DT = 3000, 2.0, 0.02
CORR_SDE = SDE(lambda t, x, a: -x, lambda t, x, a: CORR_L)


@jax.jit
def _correlated_ou(key):
    k1, k2 = jr.split(key)
    keys = jr.split(k1, CORR_PATHS)
    x_dfx = jax.vmap(lambda k: solve(k, CORR_SDE, jnp.zeros(2), 0.0, CORR_T, dt0=CORR_DT).ys[-1])(
        keys
    )
    kernel = euler_maruyama(CORR_SDE, CORR_DT)
    states = jax.vmap(kernel.init)(jnp.zeros((CORR_PATHS, 2)))
    final, _ = run_population(k2, kernel, states, round(CORR_T / CORR_DT))
    return x_dfx, final.position


@pytest.mark.parametrize("which", [0, 1], ids=["diffrax_euler", "euler_maruyama"])
def test_full_correlated_diffusion_covariance(which):
    # dX = -X dt + L dW from 0 by Euler-Maruyama (dfx.Euler is the same scheme): exactly
    # Cov(X_N) = L L^T dt (1 - a^N) / (1 - a), a = (1 - dt)^2 (-> (1 - e^{-2T}) L L^T / 2).
    x = np.asarray(_correlated_ou(jr.key(8))[which])
    a, n_steps = (1 - CORR_DT) ** 2, round(CORR_T / CORR_DT)
    cov_exact = np.asarray(CORR_L @ CORR_L.T) * CORR_DT * (1 - a**n_steps) / (1 - a)
    n = x.shape[0]
    for i, j in ((0, 0), (1, 1), (0, 1)):
        prod = x[:, i] * x[:, j]
        assert abs(prod.mean() - cov_exact[i, j]) < N_SIGMA * prod.std() / np.sqrt(n), (i, j)


# --------------------------------------------------------------------------------------
# Reverse SDE and probability-flow ODE with the exact score of a VP-SDE
# --------------------------------------------------------------------------------------
# Forward VP-SDE (Song et al. 2021): dX = -beta(t)/2 X dt + sqrt(beta(t)) dW with a
# time-dependent beta(t) = B0 + (B1 - B0) t, so that a wrong clock in the reversal shows.
B0, B1, T_VP = 0.5, 5.0, 1.0
MU0, S0 = 2.0, 0.5  # p_0 = N(MU0, S0^2) in every coordinate
VP_DIM, VP_PATHS, VP_DT = 2, 4000, 0.002
VP_DIFFRAX_PATHS, VP_DIFFRAX_DT = 2000, 0.01


def vp_alpha(t):
    return jnp.exp(-0.5 * (B0 * t + 0.5 * (B1 - B0) * t**2))


def vp_marginal(t):
    a = vp_alpha(t)
    return MU0 * a, S0**2 * a**2 + 1 - a**2


def vp_score(t, x, args):
    m, v = vp_marginal(t)
    return -(x - m) / v


VP = SDE(
    lambda t, x, a: -0.5 * (B0 + (B1 - B0) * t) * x,
    lambda t, x, a: jnp.sqrt(B0 + (B1 - B0) * t),
)


def _sample_p_T(key, n=VP_PATHS):
    m, v = vp_marginal(T_VP)
    return m + jnp.sqrt(v) * jr.normal(key, (n, VP_DIM))


@jax.jit
def _reverse_em(key):
    k1, k2 = jr.split(key)
    rev = VP.reverse(vp_score, 0.0, T_VP)
    kernel = euler_maruyama(rev, VP_DT)
    final, _ = run_population(
        k2, kernel, jax.vmap(kernel.init)(_sample_p_T(k1)), round(T_VP / VP_DT)
    )
    return final.position


@jax.jit
def _reverse_diffrax(key):
    k1, k2 = jr.split(key)
    rev = VP.reverse(vp_score, 0.0, T_VP)
    keys = jr.split(k2, VP_DIFFRAX_PATHS)

    def one(k, x):
        return solve(k, rev, x, 0.0, T_VP, dt0=VP_DIFFRAX_DT, solver=dfx.Heun()).ys[-1]

    return jax.vmap(one)(keys, _sample_p_T(k1, VP_DIFFRAX_PATHS))


@pytest.mark.parametrize("integrator", ["euler_maruyama", "diffrax_heun"])
def test_reverse_sde_recovers_p0(integrator):
    fn = _reverse_em if integrator == "euler_maruyama" else _reverse_diffrax
    x = fn(jr.key(31))
    m, se_m, v, se_v = moments_with_errors(x)
    print(
        f"reverse SDE {integrator}: mean {m:.4f}+-{se_m:.4f} (exact {MU0}), var {v:.4f}+-{se_v:.4f} (exact {S0**2})"
    )
    assert abs(m - MU0) < N_SIGMA * se_m, (m, se_m)
    assert abs(v - S0**2) < N_SIGMA * se_v, (v, se_v)


@jax.jit
def _probability_flow(x_T):
    pf = VP.probability_flow(vp_score)
    return jax.vmap(lambda x: solve_ode(pf, x, T_VP, 0.0, rtol=1e-9, atol=1e-9).ys[-1])(x_T)


def test_probability_flow_maps_p_T_to_p_0_deterministically():
    x_T = _sample_p_T(jr.key(41))[:512]
    x_0 = _probability_flow(x_T)
    # For Gaussian marginals the flow is the affine map matching the moments exactly.
    m_T, v_T = vp_marginal(T_VP)
    expected = MU0 + S0 / jnp.sqrt(v_T) * (x_T - m_T)
    print(
        f"probability flow: max |x_0 - exact map| = {float(jnp.max(jnp.abs(x_0 - expected))):.2e}"
    )
    np.testing.assert_allclose(x_0, expected, rtol=0, atol=1e-6)
    # Deterministic: a second solve gives the same numbers.
    np.testing.assert_array_equal(_probability_flow(x_T), x_0)


# --------------------------------------------------------------------------------------
# BAOAB samples the Boltzmann distribution (KS tests)
# --------------------------------------------------------------------------------------
KS_CHAINS, KS_THIN = 500, 400  # 500 chains x 4 records, records 400 steps apart


def double_well(x):
    """Asymmetric double well U = (x^2 - 1)^2 + 0.3 x (the tilt makes the mode weights matter)."""
    return jnp.sum((x**2 - 1.0) ** 2 + 0.3 * x)


def harmonic(x):
    return 0.5 * 2.0 * jnp.sum(x**2)  # stiffness k = 2


def _baoab_samples(key, energy_fn, beta, dt, n_burn, n_records):
    kernel = baoab(energy_fn, beta=beta, dt=dt, friction=1.0)
    k1, k2 = jr.split(key)
    states = jax.vmap(kernel.init)(jnp.zeros((KS_CHAINS, 1)))
    states, _ = run_population(k1, kernel, states, n_burn, observable_fn=None)
    _, trace = run_population(
        k2, kernel, states, KS_THIN * n_records, thin=KS_THIN, observable_fn=lambda s, i: s.position
    )
    return trace.reshape(-1)


_baoab_jit = jax.jit(_baoab_samples, static_argnums=(1, 2, 3, 4, 5))


def boltzmann_cdf(energy_fn, beta, lo=-5.0, hi=5.0, n=200_001):
    """The exact CDF of e^{-beta U} on the line, by fine-grid trapezoidal quadrature
    (grid error ~1e-10, far below what a KS test on 2,000 samples resolves)."""
    grid = np.linspace(lo, hi, n)
    u = np.asarray(jax.vmap(lambda y: energy_fn(y[None]))(jnp.asarray(grid)))
    dens = np.exp(-beta * (u - u.min()))
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(grid))])
    cdf /= cdf[-1]
    return lambda x: np.interp(x, grid, cdf)


def test_baoab_harmonic_ks():
    # BAOAB's configurational marginal is exact for harmonic U at any stable dt
    # (Leimkuhler & Matthews 2013), so a large step is fine.
    beta = 1.0
    x = np.asarray(_baoab_jit(jr.key(51), harmonic, beta, 0.5, 200, 4))
    res = stats.kstest(x, stats.norm(scale=1 / np.sqrt(2.0 * beta)).cdf)
    print(f"BAOAB harmonic KS: n={x.size}, p={res.pvalue:.3f}")
    assert res.pvalue > 0.01, res


def test_baoab_double_well_ks():
    beta = 2.0
    x = np.asarray(_baoab_jit(jr.key(52), double_well, beta, 0.05, 2000, 4))
    res = stats.kstest(x, boltzmann_cdf(double_well, beta))
    print(f"BAOAB double well KS: n={x.size}, p={res.pvalue:.3f}")
    assert res.pvalue > 0.01, res
    # And the test has power: the same samples are rejected against the untilted well.
    res_wrong = stats.kstest(x, boltzmann_cdf(lambda y: jnp.sum((y**2 - 1.0) ** 2), beta))
    assert res_wrong.pvalue < 0.01, res_wrong
