"""Forward processes: closed-form kernels against the SDE; exact mixture scores."""

import jax
import jax.numpy as jnp
import jax.random as jr
import pytest

from generative.exact import exact_score_fn, gaussian_kl_to_standard, marginal_mixture
from generative.processes import VE, VP, SubVP
from generative.schedules import CosineSchedule, LinearSchedule
from thermo.systems import remove_com

from ._gen_fixtures import MIXTURE

PROCESSES = [VP(), SubVP(), VE(sigma_max=10.0), VP(CosineSchedule(), t1=0.99)]


@pytest.mark.parametrize("process", PROCESSES, ids=["vp", "subvp", "ve", "vp-cosine"])
def test_kernels_match_sde_and_compose(process):
    # Chapman-Kolmogorov: (0->s) then (s->t) equals (0->t).
    a1, s1 = process.transition_coefficients(0.0, 0.3)
    a2, s2 = process.transition_coefficients(0.3, 0.8)
    a3, s3 = process.transition_coefficients(0.0, 0.8)
    assert jnp.allclose(a1 * a2, a3, rtol=1e-12)
    assert jnp.allclose(a2**2 * s1**2 + s2**2, s3**2, rtol=1e-12)

    # The kernel solves the moment ODEs of dx = f x dt + g dW:
    # da/dt = f a, d(sigma^2)/dt = 2 f sigma^2 + g^2 (central differences, h = 1e-5).
    h = 1e-5
    for t in (0.2, 0.6):
        a = lambda u: process.marginal_coefficients(u)[0]  # noqa: E731
        v = lambda u: process.marginal_coefficients(u)[1] ** 2  # noqa: E731
        f = process.drift_coefficient(t)
        g2 = process.diffusion_coefficient(t) ** 2
        assert jnp.allclose((a(t + h) - a(t - h)) / (2 * h), f * a(t), rtol=1e-7, atol=1e-9)
        assert jnp.allclose((v(t + h) - v(t - h)) / (2 * h), 2 * f * v(t) + g2, rtol=1e-7)


def test_schedules_integral_is_antiderivative():
    h = 1e-6
    for sched in (LinearSchedule(), CosineSchedule()):
        for t in (0.1, 0.5, 0.9):
            fd = (sched.integral(t + h) - sched.integral(t - h)) / (2 * h)
            assert jnp.allclose(fd, sched.beta(t), rtol=1e-6)
        assert sched.integral(0.0) == 0.0


def test_vp_marginal_sampling_moments():
    # x_t = a x0 + std eps, so for x0 = fixed point, the sample mean/var match (a x0, std^2);
    # standard errors: std/sqrt(n) for the mean, std^2 sqrt(2/n) for the variance.
    vp = VP()
    x0 = jnp.array([2.0, -1.0])
    n = 20000
    keys = jr.split(jr.key(0), n)
    xt, _ = jax.vmap(lambda k: vp.sample_marginal(k, 0.4, x0))(keys)
    a, std = vp.marginal_coefficients(0.4)
    assert jnp.all(jnp.abs(xt.mean(0) - a * x0) < 4 * std / jnp.sqrt(n))
    assert jnp.all(jnp.abs(xt.var(0) - std**2) < 4 * std**2 * jnp.sqrt(2.0 / n))


def test_exact_mixture_score_is_gradient_of_marginal():
    vp = VP()
    score = exact_score_fn(vp, MIXTURE)
    x = jnp.array([0.3, -0.2])

    @jax.jit
    def both(t):
        return score(t, x, None), jax.grad(marginal_mixture(vp, MIXTURE, t).log_prob)(x)

    for t in (0.0, 0.3, 1.0):
        got, expected = both(t)
        assert jnp.allclose(got, expected, rtol=1e-10)
    # at t = T the VP marginal is close to N(0, I): KL below 1e-3 (a(T) = e^{-5.025}).
    p_t = marginal_mixture(vp, MIXTURE, 1.0)
    assert gaussian_kl_to_standard(p_t.mean(), p_t.covariance()) < 1e-3


def test_particle_process_is_com_free():
    vp = VP(particles=(4, 2))
    x = jr.normal(jr.key(1), (8,))
    xt, eps = vp.sample_marginal(jr.key(2), 0.5, remove_com(x, 4, 2))
    assert jnp.allclose(xt.reshape(4, 2).sum(0), 0.0, atol=1e-12)
    assert jnp.allclose(eps.reshape(4, 2).sum(0), 0.0, atol=1e-12)
    g = vp.diffusion(0.5, x)
    assert g.shape == (8, 8)
    # G G^T = g^2 P on the subspace; the prior log-density counts (n-1)D = 6 dimensions.
    assert jnp.allclose(vp.prior_log_prob(jnp.zeros(8)), -3 * jnp.log(2 * jnp.pi))


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        VE(sigma_min=1.0, sigma_max=0.5)
    with pytest.raises(ValueError):
        remove_com(jnp.zeros(7), 4, 2)
