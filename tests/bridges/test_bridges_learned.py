"""The learned solvers (DSB/IPF, DSBM) match the closed-form Gaussian bridge in d = 2.

Tolerances come from the *plug-in floor* (:func:`bridges.gaussian.plug_in_floor`): the
error of the closed form evaluated at the sample means and covariances of the same
number ``N_TRAIN`` of training samples, i.e. the closed-form estimator from the data a
learned solver sees. Its error distribution (mean and standard deviation over 64
independent data sets) is measured in the test. A learned solver whose drift error is
negligible behaves like that estimator, so we require

    paired error of the learned C (or Σ1)  <  mean floor + 4 × sd floor,

the usual 4-standard-deviation band of the floor's own distribution. The learned
bridge's error is measured *paired*: learned and exact drifts are simulated from the
same inputs with the same Brownian increments
(:func:`bridges._common.paired_coupling_errors`), which removes the evaluation noise, so
what is left is the solver's error (training-data noise plus model error). The
reference process (C = Σ0, exact relative error 0.89) fails this bound by far.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from bridges import dsbm, gaussian_bridge, ipf
from bridges._common import (
    AffineDrift,
    _legendre_basis,
    coupling_stats,
    paired_coupling_errors,
    relative_error,
    simulate,
)
from bridges.gaussian import plug_in_floor

SIGMA = 0.8
N_TRAIN = 2048
N_EVAL = N_TRAIN  # one compile of the floor draws serves both floors
_simulate = eqx.filter_jit(simulate)
_paired = eqx.filter_jit(paired_coupling_errors)


@pytest.fixture(scope="module")
def task():
    cov0 = jnp.array([[1.0, 0.3], [0.3, 0.5]])
    cov1 = jnp.array([[0.6, -0.2], [-0.2, 1.2]])
    br = gaussian_bridge(jnp.zeros(2), cov0, jnp.ones(2), cov1, SIGMA)
    x0 = br.sample_marginal(jr.key(1), 0.0, N_TRAIN)
    x1 = br.sample_marginal(jr.key(2), 1.0, N_TRAIN)
    floor = plug_in_floor(jr.key(10), br, N_TRAIN, 64)
    tol_c = floor["plug_in_cross_cov"] + 4 * floor["plug_in_cross_cov_sd"]
    tol_s = floor["plug_in_cov1"] + 4 * floor["plug_in_cov1_sd"]
    print(f"\nplug-in floor (N={N_TRAIN}): {floor}\ntolerances C {tol_c:.4f} Σ1 {tol_s:.4f}")
    # plain errors of N_EVAL simulated pairs: add the evaluation floor in quadrature
    tol_plain = float(np.hypot(tol_c, floor["eval_cross_cov"] + 4 * floor["eval_cross_cov_sd"]))
    return br, x0, x1, tol_c, tol_s, tol_plain


def _paired_errors(br, sde, n_steps):
    xt = br.sample_marginal(jr.key(4), 0.0, N_EVAL)
    c, s = _paired(jr.key(5), sde, br.sde(), xt, n_steps, br.cross_cov, br.cov1)
    return float(c), float(s)


def test_affine_head_contains_the_gaussian_drift():
    # A_t of the correlated 2-D test task is a smooth rational
    # function of t; its degree-7 Legendre projection (K = 8) is accurate to < 1e-5.
    for br in (
        gaussian_bridge(
            jnp.zeros(2),
            jnp.array([[1.0, 0.3], [0.3, 0.5]]),
            jnp.ones(2),
            jnp.array([[0.6, -0.2], [-0.2, 1.2]]),
            SIGMA,
        ),
    ):
        ts = jnp.linspace(0.0, 1.0, 201)
        phi = jax.vmap(lambda t: _legendre_basis(t, 8))(ts)  # (201, 8)
        a = jax.vmap(br.drift_matrix)(ts).reshape(201, -1)
        coef, *_ = jnp.linalg.lstsq(phi, a)
        assert float(jnp.max(jnp.abs(phi @ coef - a))) < 1e-5
    # the residual MLP starts at zero: a fresh network is the zero drift
    net = AffineDrift(3, jr.key(0))
    assert float(jnp.max(jnp.abs(net(0.3, jnp.ones(3))))) == 0.0


def test_legendre_basis_is_orthogonal():
    nodes, weights = np.polynomial.legendre.leggauss(10)
    ts = jnp.asarray(0.5 * (nodes + 1.0))
    phi = jax.vmap(lambda t: _legendre_basis(t, 6))(ts)
    gram = (phi * jnp.asarray(0.5 * weights)[:, None]).T @ phi
    np.testing.assert_allclose(gram, jnp.diag(1.0 / (2 * jnp.arange(6.0) + 1.0)), atol=1e-12)


def test_reference_process_is_far(task):
    br, _, _, tol_c, _, _ = task
    xt = br.sample_marginal(jr.key(4), 0.0, N_EVAL)
    y, _ = _simulate(jr.key(5), br.reference_sde(), xt, 20)
    c, _ = coupling_stats(xt, y)
    assert float(relative_error(c, br.cross_cov)) > 4 * tol_c  # exact: 0.89


@pytest.mark.parametrize(
    "solver, n_sim_steps, options, check_backward",
    [(dsbm, 50, {}, True), (ipf, 20, {"batch_size": 512}, False)],
    ids=["dsbm", "ipf"],
)
def test_learned_bridge_matches_closed_form(task, solver, n_sim_steps, options, check_backward):
    br, x0, x1, tol_c, tol_s, tol_plain = task
    res = solver(
        jr.key(3),
        x0,
        x1,
        SIGMA,
        n_iterations=2,
        n_train_steps=400,
        width=32,
        depth=2,
        n_sim_steps=n_sim_steps,
        **options,
    )
    assert res.losses.shape == (2, 2, 400)
    err_c, err_s = _paired_errors(br, res.forward_sde(), n_sim_steps)
    print(f"{solver.__name__} paired errors: C {err_c:.4f} Σ1 {err_s:.4f}")
    assert err_c < tol_c and err_s < tol_s
    if check_backward:
        # the backward bridge lands on p0 with the same coupling (plain errors)
        xb = br.sample_marginal(jr.key(6), 1.0, N_EVAL)
        y0, _ = _simulate(jr.key(7), res.backward_sde(), xb, n_sim_steps)
        c, _ = coupling_stats(y0, xb)
        assert float(relative_error(c, br.cross_cov)) < tol_plain
