r"""Exact checks of the learned diffusion samplers (PIS, DDS, CMCD).

* PIS and DDS with their *analytic optimal* controls on a Gaussian target (the Föllmer
  drift; the time-reversed OU score): near-zero-variance path log-weights and
  :math:`\log Z` within 4 standard errors of the closed form.
* CMCD with the control switched off equals annealed Langevin AIS
  (:func:`thermo.integrate.overdamped_langevin` with exact log-RN weights) path by path.
* CMCD training with the log-variance loss reduces the variance of the log-weights and
  keeps :math:`\log Z` unbiased (within 4 standard errors).
* Bad input fails with clear messages.

Tolerances are 4 standard errors of the estimators (delta-method error of
``estimate_log_z``; for a variance, the standard error
:math:`\sqrt{(\hat m_4 - \hat v^2)/n}` of the sample variance).
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import thermo.systems as systems
from generative.samplers import CMCD, DDS, PIS, Control, as_target, sample_paths, train_sampler
from thermo.estimators import estimate_log_z
from thermo.integrate import overdamped_langevin, run_population
from thermo.protocols import Protocol

# A centred Gaussian of scale 2 in d = 2 (reference processes have scale 1): log Z known.
TARGET_SCALE = 2.0
GAUSS = systems.Gaussian(2, TARGET_SCALE)
N_PATHS = 1024


def _var_and_se(lw):
    d = lw - jnp.mean(lw)
    v = jnp.mean(d**2)
    return float(v), float(jnp.sqrt(jnp.mean((d**2 - v) ** 2) / lw.shape[0]))


class FollmerGaussian(eqx.Module):
    r"""Föllmer drift for :math:`\tilde\pi = e^{-|x|^2/2s^2}` against :math:`\sigma W` from 0:
    :math:`u^* = \sigma^2\nabla\log h`, :math:`h(t,x) \propto e^{-a|x|^2/2(1+a\sigma^2(T-t))}`,
    :math:`a = 1/s^2 - 1/\sigma^2T`, i.e. :math:`u^* = \frac{\sigma^2 a s^2}{1+a\sigma^2(T-t)}
    \nabla\log\tilde\pi(x)`. ``on`` switches it on (1) or off (0) without a recompile."""

    on: jax.Array
    sigma: float = eqx.field(static=True)
    duration: float = eqx.field(static=True)

    def __call__(self, t, x, score):
        s2, sig2, big_t = TARGET_SCALE**2, self.sigma**2, self.duration
        a = 1.0 / s2 - 1.0 / (sig2 * big_t)
        return self.on * sig2 * a * s2 / (1.0 + a * sig2 * (big_t - t)) * score


class OUScoreGaussian(eqx.Module):
    r"""DDS's optimal :math:`f^* = \nabla\log(p_{T-t}/\mathcal N(0,\sigma^2))` for
    :math:`\pi = \mathcal N(0, s^2)`: the noising OU has :math:`p_\tau = \mathcal N(0, v_\tau)`,
    :math:`v_\tau = \sigma^2 + (s^2-\sigma^2)e^{-2\beta\tau}`, so
    :math:`f^* = s^2(1/v_{T-t} - 1/\sigma^2)\nabla\log\tilde\pi`."""

    on: jax.Array
    sigma: float = eqx.field(static=True)
    duration: float = eqx.field(static=True)
    rate: float = eqx.field(static=True)

    def __call__(self, t, y, score):
        s2, sig2 = TARGET_SCALE**2, self.sigma**2
        v = sig2 + (s2 - sig2) * jnp.exp(-2.0 * self.rate * (self.duration - t))
        return self.on * s2 * (1.0 / v - 1.0 / sig2) * score


@pytest.mark.parametrize("name", ["pis", "dds"])
def test_optimal_control_weights_vary_only_by_discretisation(name):
    """With the exact continuous-time optimal control, log w would be the constant log Z;
    the exact *discrete-time* weights keep an O(dt) variance. So: log Z unbiased within
    4 s.e. at both step counts, and Var[log w] shrinks in proportion to dt (ratio 4 for
    4x the steps, within 4 standard errors of the ratio)."""
    variances = []
    for n_steps in (32, 128):
        if name == "pis":
            sampler = PIS(FollmerGaussian(jnp.ones(()), 1.0, 1.0), n_steps=n_steps, sigma=1.0)
        else:
            sampler = DDS(
                OUScoreGaussian(jnp.ones(()), 1.0, 4.0, 1.0),
                n_steps=n_steps,
                sigma=1.0,
                duration=4.0,
            )
        ens = sample_paths(jr.PRNGKey(11), sampler, GAUSS, N_PATHS)
        est = estimate_log_z(ens.log_weights)
        v, se = _var_and_se(ens.log_weights)
        variances.append((v, se))
        print(
            f"{name} K={n_steps}: log Z {float(est.value):.5f} ± {float(est.std_err):.5f} "
            f"(exact {GAUSS.log_z:.5f}); Var log w {v:.5f} ± {se:.5f}; ESS {float(est.ess):.0f}"
        )
        assert abs(float(est.value) - GAUSS.log_z) < 4 * float(est.std_err)
        # Reweighted (self-normalised) mean |x|^2 = d s^2 within 4 s.e. (the raw samples
        # carry the O(dt) bias; the weights correct it).
        w = jax.nn.softmax(ens.log_weights)
        r2 = jnp.sum(ens.samples**2, axis=1)
        mean_r2 = float(jnp.sum(w * r2))
        se_r2 = float(jnp.sqrt(jnp.sum(w**2 * (r2 - mean_r2) ** 2)))
        assert abs(mean_r2 - 2 * TARGET_SCALE**2) < 4 * se_r2
    (v1, se1), (v2, se2) = variances
    ratio = v1 / v2
    se_ratio = ratio * math.sqrt((se1 / v1) ** 2 + (se2 / v2) ** 2)
    print(f"{name}: Var ratio K=32 / K=128 = {ratio:.3f} ± {se_ratio:.3f} (O(dt) predicts 4)")
    assert abs(ratio - 4.0) < 4 * se_ratio


# --- CMCD(u = 0) is annealed Langevin AIS -----------------------------------------------


def test_cmcd_without_control_is_annealed_langevin_ais():
    """Same key and settings: CMCD(control=None) reproduces, path by path, the log-weights
    of annealed ULA with exact log-RN weights (thermo.integrate.overdamped_langevin on the
    protocol U(x, lam) = (1-lam)|x|^2/(2 s0^2) - lam log pi(x)), up to the base normaliser
    log Z_0 = (d/2) log(2 pi s0^2) that the protocol leaves out."""
    system = systems.get("gmm40")
    target = as_target(system)
    cmcd = CMCD(None, n_steps=20, dt=0.5, schedule_power=2.0)
    key = jr.PRNGKey(3)
    n = 64
    ens = sample_paths(key, cmcd, target, n)

    s0 = cmcd.scale(target)
    protocol = Protocol(
        lambda x, lam: (1 - lam) * 0.5 * jnp.sum(x**2) / s0**2 - lam * system.log_prob(x),
        cmcd.schedule,
    )
    kernel = overdamped_langevin(protocol, beta=1.0, dt=cmcd.dt)

    @jax.jit
    def ais_langevin(key):
        key_init, key_run = jr.split(key)  # the split of generative.samplers.simulate
        x0 = cmcd.initial_positions(key_init, target, n)
        final, _ = run_population(key_run, kernel, jax.vmap(kernel.init)(x0), cmcd.n_steps)
        return final

    final = ais_langevin(key)
    log_z0 = 0.5 * system.dim * math.log(2 * math.pi * s0**2)
    np.testing.assert_allclose(
        np.asarray(ens.samples), np.asarray(final.position), rtol=1e-12, atol=1e-10
    )
    np.testing.assert_allclose(
        np.asarray(ens.log_weights), np.asarray(final.log_weight) + log_z0, rtol=1e-10, atol=1e-9
    )
    spread = float(jnp.std(ens.log_weights))
    print(
        f"CMCD(u=0) vs annealed Langevin: max |diff| "
        f"{float(jnp.max(jnp.abs(ens.log_weights - final.log_weight - log_z0))):.2e}, "
        f"log-weight spread {spread:.2f}"
    )
    assert spread > 0.1  # a non-trivial process: the equality is not between constants


# --- CMCD training with the log-variance loss --------------------------------------------


def test_cmcd_log_variance_training_reduces_variance_and_stays_unbiased():
    # A shifted, anisotropic-free Gaussian whose mean the base does not know: log Z known.
    mean = jnp.array([1.5, -1.0])
    s = 0.6
    target = as_target(lambda x: -0.5 * jnp.sum((x - mean) ** 2) / s**2, dim=2, scale=1.0)
    log_z = math.log(2 * math.pi * s**2)
    cmcd = CMCD(Control(2, jr.PRNGKey(0), width=16, depth=1), n_steps=16, dt=0.05)
    before = sample_paths(jr.PRNGKey(5), cmcd, target, N_PATHS)
    result = train_sampler(
        jr.PRNGKey(6),
        cmcd,
        target,
        n_iters=150,
        batch_size=64,
        loss="log_variance",
        learning_rate=3e-3,
    )
    after = sample_paths(jr.PRNGKey(7), result.sampler, target, N_PATHS)
    v0, se0 = _var_and_se(before.log_weights)
    v1, se1 = _var_and_se(after.log_weights)
    est0, est1 = estimate_log_z(before.log_weights), estimate_log_z(after.log_weights)
    print(
        f"CMCD: Var log w {v0:.3f} ± {se0:.3f} -> {v1:.3f} ± {se1:.3f}; "
        f"log Z {float(est0.value):.4f} ± {float(est0.std_err):.4f} -> "
        f"{float(est1.value):.4f} ± {float(est1.std_err):.4f} (exact {log_z:.4f}); "
        f"ESS {float(est0.ess):.0f} -> {float(est1.ess):.0f}; loss "
        f"{float(jnp.mean(result.losses[:10])):.3f} -> {float(jnp.mean(result.losses[-10:])):.3f}"
    )
    assert result.losses.shape == (150,)
    assert v1 + 4 * se1 < v0 - 4 * se0
    assert abs(float(est1.value) - log_z) < 4 * float(est1.std_err)
    assert result.n_energy_evals == 150 * 64 * (16 + 1)


# --- bad input ----------------------------------------------------------------------------


def test_bad_input_fails_clearly():
    with pytest.raises(ValueError, match="not finite"):
        as_target(lambda x: jnp.log(-jnp.sum(x**2)), dim=2)
    with pytest.raises(ValueError, match="dim"):
        as_target(lambda x: -jnp.sum(x**2))
    with pytest.raises(ValueError, match="control has dim 3"):
        train_sampler(jr.PRNGKey(0), PIS(Control(3, jr.PRNGKey(0))), GAUSS, n_iters=1, batch_size=4)
    with pytest.raises(ValueError, match="loss must be"):
        train_sampler(
            jr.PRNGKey(0),
            PIS(Control(2, jr.PRNGKey(0))),
            GAUSS,
            n_iters=1,
            batch_size=4,
            loss="elbo",
        )
    with pytest.raises(ValueError, match="n_steps"):
        CMCD(None, n_steps=0)
    with pytest.raises(ValueError, match="no trainable"):
        train_sampler(jr.PRNGKey(0), CMCD(None), GAUSS, n_iters=1, batch_size=4)
