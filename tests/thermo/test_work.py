"""Work, heat and log Radon–Nikodym weights along driven Langevin paths.

Jarzynski's equality on two driven harmonic traps with exact free energies (10,000 paths
each, paths started from exact equilibrium samples), the exactness of the discrete-time
log RN weights at coarse steps, their dt -> 0 limit -beta W, and the first law.
Tolerances are 4 standard errors of the estimator being checked.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from thermo.estimators import estimate_log_z, jarzynski
from thermo.integrate import baoab, maxwell_boltzmann, overdamped_langevin, run_population
from thermo.paths import PathEnsemble
from thermo.protocols import (
    Protocol,
    dissipated_work,
    entropy_production,
    linear_schedule,
    path_ensemble,
)

N_SIGMA = 4.0
N_PATHS = 10_000


def dragged_trap(x, lam):
    """U(x, lam) = k/2 (x - lam)^2 with k = 1: translating the trap leaves Z unchanged."""
    return 0.5 * jnp.sum((x - lam) ** 2)


def stiffened_trap(x, lam):
    """U(x, lam) = lam/2 x^2: Z(lam) = sqrt(2 pi / (beta lam)), so
    beta dF = 1/2 ln(k1 / k0) exactly."""
    return 0.5 * lam * jnp.sum(x**2)


# Dragging: lambda(t) = v t on [0, T]; exact dF = 0.
DRAG_V, DRAG_T, DRAG_DT, DRAG_BETA = 1.0, 2.0, 0.01, 1.0
# Stiffening: k0 -> k1 linearly on [0, T]; exact beta dF = ln(k1/k0)/2.
K0, K1, STIFF_T, STIFF_BETA = 1.0, 4.0, 1.0, 2.0
STIFF_BETA_DF = 0.5 * np.log(K1 / K0)


def _overdamped_paths(key, energy_fn, lam0, lam1, t_end, beta, dt, k_init):
    protocol = Protocol(energy_fn, linear_schedule(lam0, lam1, 0.0, t_end))
    kernel = overdamped_langevin(protocol, beta=beta, dt=dt)
    k1, k2 = jr.split(key)
    # Exact equilibrium start: x0 ~ N(lam0_center, 1/(beta k_init)).
    center = lam0 if energy_fn is dragged_trap else 0.0
    x0 = center + jr.normal(k1, (N_PATHS, 1)) / jnp.sqrt(beta * k_init)
    final, _ = run_population(k2, kernel, jax.vmap(kernel.init)(x0), round(t_end / dt))
    return final


_overdamped_jit = jax.jit(_overdamped_paths, static_argnums=(1, 2, 3, 4, 5, 6, 7))


def _check_jarzynski(reduced_work, beta_df):
    est = jarzynski(reduced_work)
    print(
        f"Jarzynski: beta dF = {float(est.delta_f):.4f}+-{float(est.std_err):.4f} (exact {beta_df:.4f}), "
        f"<beta W> = {float(jnp.mean(reduced_work)):.4f}"
    )
    assert abs(float(est.delta_f) - beta_df) < N_SIGMA * float(est.std_err), est
    # Second law: the mean work exceeds dF, by more than 4 standard errors of the mean.
    mean_w = float(jnp.mean(reduced_work))
    se_w = float(jnp.std(reduced_work)) / np.sqrt(reduced_work.shape[0])
    assert mean_w - beta_df > N_SIGMA * se_w, (mean_w, beta_df, se_w)
    return est


def test_jarzynski_dragged_trap():
    final = _overdamped_jit(
        jr.key(101), dragged_trap, 0.0, DRAG_V * DRAG_T, DRAG_T, DRAG_BETA, DRAG_DT, 1.0
    )
    est = _check_jarzynski(DRAG_BETA * final.work, 0.0)
    # The mean work of the discrete dynamics follows exactly from the mean position,
    # m_{k+1} = m_k - dt (m_k - lam_{k+1}) (linear drift), and the per-step work
    # U(x, lam_{k+1}) - U(x, lam_k) = -(x - lam_k) dlam + dlam^2 / 2, dlam = v dt.
    # (Its dt -> 0 limit is v^2 (T - 1 + e^{-T}), Sekimoto's continuous-time value.)
    n_steps, dlam = round(DRAG_T / DRAG_DT), DRAG_V * DRAG_DT
    m, mean_w_exact = 0.0, 0.0
    for k in range(n_steps):
        mean_w_exact += -(m - k * dlam) * dlam + 0.5 * dlam**2
        m = m - DRAG_DT * (m - (k + 1) * dlam)
    se = float(jnp.std(final.work)) / np.sqrt(N_PATHS)
    assert abs(float(jnp.mean(final.work)) - mean_w_exact) < N_SIGMA * se
    assert float(est.std_err) > 0


def test_jarzynski_stiffened_trap():
    final = _overdamped_jit(jr.key(102), stiffened_trap, K0, K1, STIFF_T, STIFF_BETA, 0.001, K0)
    _check_jarzynski(STIFF_BETA * final.work, STIFF_BETA_DF)


# --------------------------------------------------------------------------------------
# Exact discrete-time log RN weights: unbiased at coarse steps
# --------------------------------------------------------------------------------------


def test_overdamped_log_weights_exact_at_coarse_step():
    # dt = 0.05 with k1 = 4: k dt = 0.2, where the unadjusted kernel's bias in the plain
    # Jarzynski estimate is several standard errors; the log RN weight is exact for any dt.
    final = _overdamped_jit(jr.key(103), stiffened_trap, K0, K1, STIFF_T, STIFF_BETA, 0.05, K0)
    ens = path_ensemble(final)
    assert isinstance(ens, PathEnsemble)
    assert ens.samples.shape == (N_PATHS, 1) and ens.log_weights.shape == (N_PATHS,)
    # One evaluation at init, two per step (lambda changes): counted exactly.
    assert int(ens.n_energy_evals) == N_PATHS * (1 + 2 * round(STIFF_T / 0.05))
    est = estimate_log_z(ens.log_weights)
    print(
        f"overdamped dt=0.05 log-RN: log Z1/Z0 = {float(est.value):.4f}+-{float(est.std_err):.4f} (exact {-STIFF_BETA_DF:.4f})"
    )
    assert abs(float(est.value) + STIFF_BETA_DF) < N_SIGMA * float(est.std_err), est


@jax.jit
def _baoab_stiffening(key):
    dt = 0.5  # coarse: the shadow work is large, and is included in the log weight
    protocol = Protocol(stiffened_trap, linear_schedule(K0, K1, 0.0, STIFF_T * 10))
    kernel = baoab(protocol, beta=STIFF_BETA, dt=dt, friction=1.0)
    k1, k2, k3 = jr.split(key, 3)
    x0 = jr.normal(k1, (N_PATHS, 1)) / jnp.sqrt(STIFF_BETA * K0)
    p0 = maxwell_boltzmann(k2, (N_PATHS, 1), beta=STIFF_BETA)
    final, _ = run_population(k3, kernel, jax.vmap(kernel.init)(x0, p0), round(STIFF_T * 10 / dt))
    return final


def test_baoab_log_weights_exact_and_work_jarzynski():
    final = _baoab_stiffening(jr.key(104))
    est = estimate_log_z(final.log_weight)
    print(
        f"BAOAB dt=0.5 log-RN: log Z1/Z0 = {float(est.value):.4f}+-{float(est.std_err):.4f} (exact {-STIFF_BETA_DF:.4f})"
    )
    assert abs(float(est.value) + STIFF_BETA_DF) < N_SIGMA * float(est.std_err), est
    # log w = -beta (W + W_shadow), by construction of the BAOAB bookkeeping.
    np.testing.assert_allclose(
        final.log_weight, -STIFF_BETA * (final.work + final.shadow_work), rtol=0, atol=1e-10
    )
    # BAOAB's configurational marginal is exact for a harmonic trap, so here even the
    # protocol work alone satisfies Jarzynski within error.
    _check_jarzynski(STIFF_BETA * final.work, STIFF_BETA_DF)


# --------------------------------------------------------------------------------------
# log w -> -beta W as dt -> 0 (non-quadratic energy), first law, entropy production
# --------------------------------------------------------------------------------------


def tilted_well(x, lam):
    return jnp.sum((x**2 - 1.0) ** 2 + lam * x)


@jax.jit
def _log_weight_gap(key, dt, n_steps):
    # dt and n_steps traced: one compilation for every step size (fori_loop driver).
    protocol = Protocol(tilted_well, linear_schedule(0.0, 1.0, 0.0, 1.0))
    kernel = overdamped_langevin(protocol, beta=1.0, dt=dt)
    states = jax.vmap(kernel.init)(jnp.ones((2000, 1)))
    keys = jr.split(key, 2000)

    def body(i, s):
        return jax.vmap(lambda k, si: kernel.step(jr.fold_in(k, i), si)[0])(keys, s)

    final = jax.lax.fori_loop(0, n_steps, body, states)
    gap = final.log_weight + 1.0 * final.work
    return jnp.sqrt(jnp.mean(gap**2))


def test_log_weight_tends_to_minus_beta_work():
    # Per step, log B - log F = beta Q + (trapezoid error, O(dx^3)) - beta dt/4 (|grad U'|^2
    # - |grad U|^2): summed over 1/dt steps the gap to -beta W is O(dt).
    dts = (0.01, 0.005, 0.0025)
    keys = jr.split(jr.key(105), 3)
    rms = [float(_log_weight_gap(k, dt, round(1.0 / dt))) for k, dt in zip(keys, dts, strict=True)]
    slope = np.polyfit(np.log(dts), np.log(rms), 1)[0]
    print(f"rms(log w + beta W) at dt={dts}: {rms}, slope {slope:.3f}")
    assert 0.8 < slope < 1.2, (slope, rms)


def test_first_law_and_entropy_production():
    # Same static configuration as test_jarzynski_stiffened_trap: reuses its compilation.
    final = _overdamped_jit(jr.key(106), stiffened_trap, K0, K1, STIFF_T, STIFF_BETA, 0.001, K0)
    # We need x0 too: recompute it from the same key split as _overdamped_paths.
    k1, _ = jr.split(jr.key(106))
    x0 = jr.normal(k1, (N_PATHS, 1)) / jnp.sqrt(STIFF_BETA * K0)
    u0 = jax.vmap(lambda x: stiffened_trap(x, K0))(x0)
    u1 = jax.vmap(lambda x: stiffened_trap(x, K1))(final.position)
    np.testing.assert_allclose(final.energy, u1, rtol=1e-12)
    # First law per path: dU = W + Q.
    np.testing.assert_allclose(u1 - u0, final.work + final.heat, rtol=0, atol=1e-10)

    # Seifert's total entropy production with equilibrium boundary densities equals the
    # reduced dissipated work beta (W - dF), path by path.
    def log_p(u, k):
        return -STIFF_BETA * u - 0.5 * jnp.log(2 * jnp.pi / (STIFF_BETA * k))

    sigma = entropy_production(final.heat, STIFF_BETA, log_p(u0, K0), log_p(u1, K1))
    w_diss = dissipated_work(final.work, STIFF_BETA, STIFF_BETA_DF / STIFF_BETA)
    np.testing.assert_allclose(sigma, w_diss, rtol=0, atol=1e-10)
    assert float(jnp.mean(w_diss)) > 0


def test_path_ensemble_and_protocol_errors():
    with pytest.raises(ValueError, match="shape"):
        path_ensemble(
            type("S", (), {"position": jnp.zeros(3), "log_weight": jnp.zeros(3)})(),
            n_energy_evals=1,
        )
    with pytest.raises(ValueError, match="t1 > t0"):
        linear_schedule(0.0, 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="both"):
        entropy_production(jnp.zeros(2), 1.0, log_p_initial=jnp.zeros(2))
    with pytest.raises(ValueError, match="beta"):
        overdamped_langevin(lambda x: jnp.sum(x**2), beta=-1.0, dt=0.1)
    with pytest.raises(TypeError):
        overdamped_langevin(3.0, beta=1.0, dt=0.1)


def test_linear_schedule_accepts_a_traced_duration_and_refuses_reversed_times():
    import jax

    from thermo.protocols import linear_schedule

    midpoint = jax.jit(lambda d: linear_schedule(1.0, 4.0, 0.0, d)(0.5 * d))
    assert abs(float(midpoint(2.0)) - 2.5) < 1e-12  # exact linear interpolation
    with pytest.raises(ValueError, match="t1 > t0"):
        linear_schedule(1.0, 4.0, 1.0, 0.5)
