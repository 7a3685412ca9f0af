"""Thermodynamic integration: quadrature exactness, exact error propagation, and the
stiffened harmonic trap u_lambda(x) = k(lambda) x^2 / 2 with k = k0 + lambda (k1 - k0),
whose Delta f = log(k1/k0) / 2 and <du/dlambda>_lambda = (k1 - k0) / (2 k(lambda))."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from thermo.estimators import ti, ti_weights

METHODS = ["trapezoid", "simpson", "cubic_spline"]


@pytest.mark.parametrize(
    ("method", "degree"), [("trapezoid", 1), ("simpson", 3), ("cubic_spline", 1)]
)
def test_quadrature_exact_on_polynomials(method, degree):
    lam = np.linspace(0.0, 2.0, 9)
    coeffs = np.arange(1.0, degree + 2.0)
    y = np.polyval(coeffs, lam)
    exact = np.polyval(np.polyint(coeffs), 2.0) - np.polyval(np.polyint(coeffs), 0.0)
    np.testing.assert_allclose(float(ti(lam, y, method=method).delta_f), exact, rtol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_error_propagation_is_exact_linear(method):
    """sigma^2 = J diag(sem^2) J^T with J the Jacobian of the estimate w.r.t. the means."""
    lam = np.array([0.0, 0.1, 0.25, 0.5, 0.7, 1.0])
    mean = np.sin(3 * lam)
    sem = 0.01 + 0.02 * lam
    jac = jax.jacobian(lambda m: ti(lam, m, method=method).delta_f)(jnp.asarray(mean))
    est = ti(lam, mean, sem, method=method)
    np.testing.assert_allclose(
        float(est.std_err), float(jnp.sqrt(jnp.sum((jac * sem) ** 2))), rtol=1e-12
    )
    np.testing.assert_allclose(np.asarray(jac), ti_weights(lam, method), rtol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_stiffened_trap_within_four_sigma(method):
    k0, k1, n = 1.0, 4.0, 4000
    lam = np.linspace(0.0, 1.0, 21)
    k = k0 + lam * (k1 - k0)
    rng = np.random.default_rng(21)
    x = rng.standard_normal((lam.size, n)) / np.sqrt(k)[:, None]
    dudl = 0.5 * (k1 - k0) * x**2
    est = ti(lam, dudl.mean(1), dudl.std(1, ddof=1) / np.sqrt(n), method=method)
    truth = 0.5 * np.log(k1 / k0)
    # The quadrature error on this grid (<= 1e-3 for the trapezoid) is < 0.15 sigma.
    assert float(est.std_err) > 0
    assert abs(float(est.delta_f) - truth) < 4 * float(est.std_err)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (([0.0, 1.0], [1.0, np.nan]), {}, "NaN"),
        (([0.0, 1.0, 0.5], [1.0, 2.0, 3.0]), {}, "increasing"),
        (([0.0, 1.0], [1.0, 2.0, 3.0]), {}, "shape"),
        (([0.0, 1.0], [1.0, 2.0]), {"method": "simpson"}, "at least 3"),
        (([0.0, 1.0], [1.0, 2.0], [0.1, -0.1]), {}, "non-negative"),
        (([0.0, 1.0], [1.0, 2.0]), {"method": "romberg"}, "method"),
    ],
)
def test_bad_input_is_refused(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ti(*args, **kwargs)


def test_gauss_legendre_is_exact_to_degree_2n_minus_1_on_any_interval():
    from thermo.estimators import gauss_legendre

    a, b, n = -0.3, 2.2, 4
    x, w = gauss_legendre(a, b, n)
    for k in range(2 * n):  # integral of x^k on [a, b]
        exact = (b ** (k + 1) - a ** (k + 1)) / (k + 1)
        assert abs(float(ti(x, x**k, weights=w).delta_f) - exact) < 1e-12 * max(1.0, abs(exact))
    # one degree more is not integrated exactly (the rule is not a lucky constant)
    k = 2 * n
    assert (
        abs(float(ti(x, x**k, weights=w).delta_f) - (b ** (k + 1) - a ** (k + 1)) / (k + 1)) > 1e-6
    )


def test_ti_with_explicit_weights_propagates_the_error():
    from thermo.estimators import gauss_legendre

    x, w = gauss_legendre(0.0, 1.0, 5)
    sem = np.full(5, 0.1)
    res = ti(x, np.ones(5), sem, weights=w)
    np.testing.assert_allclose(float(res.std_err), 0.1 * np.sqrt(np.sum(w**2)), rtol=1e-12)
    with pytest.raises(ValueError, match="weights"):
        ti(x, np.ones(5), weights=w[:3])
    with pytest.raises(ValueError, match="a < b"):
        gauss_legendre(1.0, 1.0, 3)
    with pytest.raises(ValueError, match="integer"):
        gauss_legendre(0.0, 1.0, 2.5)
