"""Particle (centre-of-mass-free) processes: rank-deficient kernels and path log-weights.

* ``thermo.integrate.euler_maruyama_log_prob`` with the projected diffusion ``g P`` (rank
  ``(n-1)D`` of ``nD``) equals the Gaussian log-density written in an explicit orthonormal
  basis of the CoM-free subspace.
* ``generative.thermodynamics.path_log_weights`` on a particle VP process: for CoM-free
  Gaussian "data" (isotropic on the subspace) the score is linear and the reverse chain's
  density is Gaussian in closed form (scalar recursion); the importance-weighted estimate
  of log p(x) is within 4 standard errors of it and the ELBO lies below it.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from generative.processes import VP, gaussian_log_prob
from generative.thermodynamics import elbo, path_log_weights
from thermo.estimators import estimate_log_z
from thermo.integrate import euler_maruyama, euler_maruyama_log_prob
from thermo.systems import remove_com

PARTICLES = (3, 2)  # 3 particles in 2-D: d = 6, CoM-free dimension k = 4
D = 6
K = 4
PROCESS = VP(particles=PARTICLES)


def _subspace_basis():
    """Orthonormal basis (d, k) of the CoM-free subspace: eigenvectors of P with eigenvalue 1."""
    lam, vec = np.linalg.eigh(np.asarray(PROCESS.projection_matrix()))
    assert np.allclose(lam[:2], 0.0, atol=1e-12) and np.allclose(lam[2:], 1.0)
    return jnp.asarray(vec[:, 2:])


def test_euler_maruyama_log_prob_rank_deficient_matches_subspace_density():
    q = _subspace_basis()
    t, dt = 0.4, 0.01
    keys = jr.split(jr.key(0), 8)

    def one(key):
        k1, k2 = jr.split(key)
        x = remove_com(jr.normal(k1, (D,)), *PARTICLES)
        g = PROCESS.diffusion_coefficient(t)
        x_next = x + PROCESS.drift(t, x) * dt + g * jnp.sqrt(dt) * PROCESS.noise(k2, (D,))
        got = euler_maruyama_log_prob(PROCESS, t, dt, x, x_next)
        # the same density in orthonormal subspace coordinates z = Q^T r, N(0, g^2 dt I_k)
        z = q.T @ (x_next - x - PROCESS.drift(t, x) * dt)
        expected = gaussian_log_prob(z, 0.0, variance=g**2 * dt, n_dims=K)
        return got, expected

    got, expected = jax.jit(jax.vmap(one))(keys)
    assert bool(jnp.all(jnp.isfinite(got)))
    assert jnp.max(jnp.abs(got - expected)) < 1e-8


def test_euler_maruyama_kernel_log_weight_on_subspace_is_finite():
    # The kernel's forward/backward log-weight bookkeeping on a CoM-projected SDE (it used
    # to fail: Cholesky of the singular g^2 P dt); forward and backward terms both finite.
    score = lambda t, x, args: -x  # noqa: E731  (the score of the prior, CoM-free)
    reverse = PROCESS.reverse(score, 0.0, 1.0)
    kernel = euler_maruyama(PROCESS, 0.01, reverse_sde=reverse)
    x0 = remove_com(jr.normal(jr.key(3), (D,)), *PARTICLES)
    state = kernel.init(x0)
    state, info = jax.jit(kernel.step)(jr.key(4), state)
    assert bool(jnp.isfinite(info.log_weight_increment))
    assert jnp.allclose(state.position.reshape(3, 2).sum(0), 0.0, atol=1e-12)


MU = remove_com(jnp.array([1.0, -0.5, 0.3, 0.8, -0.2, 0.1]), *PARTICLES)


class LinearScore(eqx.Module):
    """Score of the forward marginal of N(mean, var P) data: -P(x - a mean)/(a^2 var + s^2).

    A module (not a closure), so that both parametrisations share one compilation.
    """

    mean: jax.Array
    var: jax.Array

    def __call__(self, t, x, args=None):
        a, s = PROCESS.marginal_coefficients(t)
        return -remove_com(x - a * self.mean, *PARTICLES) / (a**2 * self.var + s**2)


def _reverse_chain_log_prob(mean, var, x, n_steps):
    """Exact log-density (on the subspace) of the n-step ancestral chain with that score.

    Everything is isotropic on the subspace, so the chain's marginal is N(m, c P): with
    A = (1 - sd^2 prec)/a and prec = 1/(a_t^2 var + sd_t^2), m <- A m + sd^2 prec a_t mean / a
    and c <- A^2 c + sd^2, started from the prior N(0, P).
    """
    ts = np.linspace(0.0, PROCESS.t1, n_steps + 1)
    m, c = jnp.zeros(D), PROCESS.prior_std**2
    for k in range(n_steps, 0, -1):
        a_t, sd_t = PROCESS.marginal_coefficients(ts[k])
        prec = 1.0 / (a_t**2 * var + sd_t**2)
        a, sd = PROCESS.transition_coefficients(ts[k - 1], ts[k])
        big_a = (1.0 - sd**2 * prec) / a
        m = big_a * m + sd**2 * prec * a_t * mean / a
        c = big_a**2 * c + sd**2
    return gaussian_log_prob(x, m, variance=c, n_dims=K)


@pytest.mark.parametrize(
    ("score_mean", "score_var"),
    [(MU, 0.4), (jnp.zeros(D), 2.0)],
    ids=["exact-score", "misspecified-score"],
)
def test_particle_path_weights_unbiased(score_mean, score_var):
    n_steps, n_paths = 10, 4000
    x = remove_com(jnp.array([0.6, 0.1, -0.4, 0.5, 0.2, -0.3]), *PARTICLES)
    paths = path_log_weights(
        jr.key(7),
        PROCESS,
        LinearScore(score_mean, jnp.asarray(score_var)),
        x,
        n_paths,
        n_steps=n_steps,
    )
    est = estimate_log_z(paths.log_weights)
    truth = _reverse_chain_log_prob(score_mean, score_var, x, n_steps)
    assert paths.samples.shape == (n_paths, D)
    # the forward paths stay on the subspace
    assert jnp.max(jnp.abs(paths.samples.reshape(n_paths, 3, 2).sum(1))) < 1e-10
    bound = elbo(paths.log_weights)
    print(
        f"particle path weights: IW log p = {float(est.value):.4f} +- {float(est.std_err):.4f}, "
        f"exact chain log p = {float(truth):.4f}, ELBO = {float(bound.value):.4f}"
    )
    assert jnp.abs(est.value - truth) < 4 * est.std_err
    assert bound.value + 4 * bound.std_err < truth
