"""A bridge's paths as a PathEnsemble: the Girsanov weights against the reference.

Exact facts checked (module docstring of :mod:`bridges.paths`):

* both Euler chains are normalised path densities from the same start points, so
  ``E_P[w] = 1`` for every drift and step count: ``estimate_log_z`` of the ensemble is 0
  within 4 of its own standard errors (Pareto k below 0.5, so that error bar exists),
  for the Brownian and for an Ornstein–Uhlenbeck reference;
* ``-log w`` is the Girsanov exponent ``sum |b|^2 dt / 2 sigma^2`` plus a martingale
  term of mean zero, so its per-path difference to :func:`bridges.girsanov_kl` on the
  same paths has mean 0 within 4 standard errors;
* the Schrödinger bridge from ``p0`` to ``p0 * N(0, sigma^2 I)`` is the reference itself:
  its closed-form drift is zero, every weight is 0 and the ESS is ``n``.
"""

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import pytest

from bridges import DSBMResult, gaussian_bridge, girsanov_kl, path_ensemble
from bridges._common import AffineDrift, simulate
from thermo.sde import SDE

SIGMA = 0.8
N_PATHS = 2000
N_STEPS = 16
COV0 = jnp.array([[1.0, 0.3], [0.3, 0.5]])
_simulate = eqx.filter_jit(simulate)


@pytest.fixture(scope="module")
def bridge():
    """The exact Schrödinger bridge between two Gaussians, at KL about 0.16 to the reference."""
    cov1 = COV0 + SIGMA**2 * jnp.eye(2) + jnp.array([[0.2, -0.1], [-0.1, -0.2]])
    br = gaussian_bridge(jnp.zeros(2), COV0, 0.3 * jnp.ones(2), cov1, SIGMA)
    return br, br.sample_marginal(jr.key(1), 0.0, N_PATHS)


def _ou(t, x, args):
    return -0.5 * x


@pytest.mark.parametrize("reference", ["brownian", "ou"])
def test_weights_integrate_to_one(bridge, reference):
    br, x0 = bridge
    ref = None
    if reference == "ou":
        ref = SDE(_ou, lambda t, x, a: jnp.asarray(SIGMA, dtype=x.dtype))
    out = path_ensemble(jr.key(3), br.sde(), x0, N_STEPS, reference_sde=ref)
    est = out.log_z
    assert out.ensemble.log_weights.shape == (N_PATHS,)
    assert out.ensemble.samples.shape == (N_PATHS, 2)
    assert int(out.ensemble.n_energy_evals) == N_PATHS * N_STEPS
    assert float(est.pareto_k) < 0.5, est
    assert abs(float(est.value)) < 4 * float(est.std_err), est
    assert float(out.kl.value) > 4 * float(out.kl.std_err)  # the bridge is not the reference


def test_kl_is_the_girsanov_exponent(bridge):
    br, x0 = bridge
    out = path_ensemble(jr.key(4), br.sde(), x0, N_STEPS)
    # the same key gives the same Euler paths as bridges._common.simulate
    x1, _ = _simulate(jr.key(4), br.sde(), x0, N_STEPS)
    assert jnp.allclose(out.ensemble.samples, x1, rtol=1e-12, atol=1e-12)
    riemann = girsanov_kl(jr.key(4), br.sde(), x0, N_STEPS)
    diff = out.kl.per_path - riemann.per_path  # minus the martingale term, mean 0
    se = jnp.std(diff, ddof=1) / jnp.sqrt(N_PATHS)
    assert abs(float(diff.mean())) < 4 * float(se)


def test_bridge_to_the_reference_marginal_has_full_ess():
    cov1 = COV0 + SIGMA**2 * jnp.eye(2)
    br = gaussian_bridge(jnp.zeros(2), COV0, jnp.zeros(2), cov1, SIGMA)
    x0 = br.sample_marginal(jr.key(5), 0.0, N_PATHS)
    out = path_ensemble(jr.key(6), br.sde(), x0, N_STEPS)
    assert float(jnp.max(jnp.abs(out.ensemble.log_weights))) < 1e-8
    assert float(out.log_z.ess) == pytest.approx(N_PATHS, rel=1e-8)


def test_fitted_result_path_ensemble_both_directions(bridge):
    """A fit's result simulates its own SDEs; zero drifts (untrained affine heads) are the
    reference, so every weight is exactly zero."""
    _, x0 = bridge
    net = AffineDrift(2, jr.key(0), depth=0)
    res = DSBMResult(net, net, jnp.asarray(SIGMA), N_STEPS, jnp.zeros((1, 2, 1)), 1, 0.0)
    for backward in (False, True):
        out = res.path_ensemble(jr.key(7), x0, backward=backward)
        assert float(jnp.max(jnp.abs(out.ensemble.log_weights))) == 0.0
        assert float(out.log_z.ess) == pytest.approx(N_PATHS, rel=1e-12)


def test_bad_input_fails_fast(bridge):
    br, x0 = bridge
    with pytest.raises(ValueError, match="shape"):
        path_ensemble(jr.key(0), br.sde(), x0[0], N_STEPS)
    with pytest.raises(ValueError, match="NaN"):
        path_ensemble(jr.key(0), br.sde(), x0.at[0, 0].set(jnp.nan), N_STEPS)
    with pytest.raises(ValueError, match="n_steps"):
        path_ensemble(jr.key(0), br.sde(), x0, 0)
    with pytest.raises(ValueError, match="AbstractSDE"):
        path_ensemble(jr.key(0), br.drift, x0, N_STEPS)
    other = eqx.tree_at(lambda b: b.sigma, br, jnp.asarray(2 * SIGMA))
    with pytest.raises(ValueError, match="mutually singular"):
        path_ensemble(jr.key(0), br.sde(), x0, N_STEPS, reference_sde=other.reference_sde())
