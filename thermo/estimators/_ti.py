r"""Thermodynamic integration (Kirkwood 1935, J. Chem. Phys. 3, 300).

.. math:: \Delta f = f(\lambda_1) - f(\lambda_0)
          = \int_{\lambda_0}^{\lambda_1} \Big\langle \frac{\partial u}{\partial\lambda}
            \Big\rangle_\lambda \, d\lambda \approx \sum_i c_i\, \overline{\partial_\lambda u}_i

Every quadrature used here (trapezoid, composite Simpson, natural cubic spline) is linear
in the data, so it is a weight vector :math:`c` that depends on the grid only; the
standard error is propagated exactly, :math:`\sigma^2 = \sum_i c_i^2\,\mathrm{sem}_i^2`
(independent windows). The weights are built once from the (concrete) grid with SciPy,
by integrating the unit vectors; the estimate is then a JAX dot product.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import scipy.integrate
import scipy.interpolate
from jaxtyping import Array, Float

from .._checks import check_1d_finite, is_traced
from ._path import FreeEnergy

__all__ = ["ti", "ti_weights", "gauss_legendre"]

_METHODS = ("trapezoid", "simpson", "cubic_spline")


def gauss_legendre(a: float, b: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    r"""``n``-point Gauss–Legendre nodes and weights on :math:`[a, b]` (A&S 25.4.29).

    .. math:: \int_a^b y(x)\,dx \approx \sum_i w_i\, y(x_i),\qquad
              x_i = \tfrac{b-a}{2}(\xi_i + 1) + a,\quad w_i = \tfrac{b-a}{2}\,\omega_i,

    with :math:`(\xi_i, \omega_i)` the nodes and weights on :math:`[-1, 1]`
    (``numpy.polynomial.legendre.leggauss``); exact for polynomials of degree
    :math:`2n - 1`. Pass the weights to :func:`ti` (``weights=``) to integrate data taken
    at the nodes.

    Returns:
        NumPy float64 ``(n,)`` nodes and ``(n,)`` weights.
    """
    if isinstance(n, bool) or not float(n).is_integer() or int(n) < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    a, b = float(a), float(b)
    if not (np.isfinite(a) and np.isfinite(b)) or not b > a:
        raise ValueError(f"need finite a < b, got a={a}, b={b}")
    x, w = np.polynomial.legendre.leggauss(int(n))
    if a == -1.0 and b == 1.0:  # the reference interval itself: no round-off from mapping
        return x, w
    half = 0.5 * (b - a)
    return half * (x + 1.0) + a, half * w


def ti_weights(lambdas, method: str = "trapezoid") -> np.ndarray:
    r"""Quadrature weights :math:`c` with :math:`\int y\,d\lambda \approx c \cdot y`.

    * ``"trapezoid"``: composite trapezoid rule (exact for linear integrands).
    * ``"simpson"``: composite Simpson rule on a possibly non-uniform grid (SciPy's
      ``simpson``; exact for cubics on uniform odd grids).
    * ``"cubic_spline"``: integral of the natural cubic spline through the points
      (Press et al., Numerical Recipes, sec. 3.3).

    Args:
        lambdas: ``(m,)`` strictly increasing grid, ``m >= 2`` (``>= 3`` for Simpson and
            the spline).
        method: one of the three above.

    Returns:
        ``(m,)`` NumPy weights.
    """
    lam = np.asarray(lambdas, dtype=np.float64)
    if lam.ndim != 1 or lam.shape[0] < 2:
        raise ValueError(f"lambdas must be a 1-D array of at least 2 points, got shape {lam.shape}")
    if not np.all(np.isfinite(lam)) or np.any(np.diff(lam) <= 0):
        raise ValueError("lambdas must be finite and strictly increasing")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    m = lam.shape[0]
    if method == "trapezoid":
        h = np.diff(lam)
        c = np.zeros(m)
        c[:-1] += 0.5 * h
        c[1:] += 0.5 * h
        return c
    if m < 3:
        raise ValueError(f"{method} needs at least 3 lambda points")
    eye = np.eye(m)
    if method == "simpson":
        return scipy.integrate.simpson(eye, x=lam, axis=1)
    spline = scipy.interpolate.CubicSpline(lam, eye, axis=1, bc_type="natural")
    return spline.integrate(lam[0], lam[-1])


def ti(
    lambdas: Float[Array, " m"],
    mean_dudl: Float[Array, " m"],
    sem_dudl: Float[Array, " m"] | None = None,
    *,
    method: str = "trapezoid",
    weights: Float[Array, " m"] | None = None,
) -> FreeEnergy:
    r"""Thermodynamic integration over :math:`\lambda` (Kirkwood 1935) with exact error
    propagation through the (linear) quadrature.

    .. math:: \Delta f = \sum_i c_i \langle \partial_\lambda u\rangle_i, \qquad
              \sigma = \Big(\sum_i c_i^2\, \mathrm{sem}_i^2\Big)^{1/2}

    Args:
        lambdas: ``(m,)`` increasing grid from the initial to the final state.
        mean_dudl: ``(m,)`` averages of the reduced :math:`\partial u/\partial\lambda`.
        sem_dudl: ``(m,)`` their standard errors (e.g. ``std / sqrt(n / g)``); ``None``
            gives a zero error (quadrature only).
        method: ``"trapezoid"``, ``"simpson"`` or ``"cubic_spline"`` (:func:`ti_weights`).
        weights: explicit quadrature weights :math:`c` for data at any nodes (e.g.
            :func:`gauss_legendre`, whose nodes need not include the end points); replaces
            ``method``.

    Returns:
        :class:`FreeEnergy` ``(delta_f = f(lambda_last) - f(lambda_first), std_err)``; the
        standard error excludes the quadrature (discretisation) error.
    """
    if weights is None:
        c = ti_weights(lambdas, method)
    else:
        c = np.asarray(weights, dtype=np.float64)
        lam = np.asarray(lambdas, dtype=np.float64)
        if c.ndim != 1 or c.shape != lam.shape or not np.all(np.isfinite(c)):
            raise ValueError(
                f"weights must be finite and shaped like lambdas {lam.shape}, got {c.shape}"
            )
    mean = check_1d_finite(mean_dudl, "mean_dudl")
    if mean.shape != c.shape:
        raise ValueError(f"mean_dudl must have shape {c.shape} like lambdas, got {mean.shape}")
    c = jnp.asarray(c, dtype=mean.dtype)
    delta_f = c @ mean
    if sem_dudl is None:
        return FreeEnergy(delta_f, jnp.zeros_like(delta_f))
    sem = check_1d_finite(sem_dudl, "sem_dudl")
    if sem.shape != c.shape:
        raise ValueError(f"sem_dudl must have shape {c.shape} like lambdas, got {sem.shape}")
    if not is_traced(sem) and not bool(jnp.all(sem >= 0)):
        raise ValueError("sem_dudl must be non-negative")
    return FreeEnergy(delta_f, jnp.sqrt(jnp.sum((c * sem) ** 2)))
