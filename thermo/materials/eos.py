r"""Johnson–Zollweg–Gubbins (1993) modified Benedict–Webb–Rubin EOS of the LJ fluid.

Reference: J. K. Johnson, J. A. Zollweg and K. E. Gubbins, "The Lennard-Jones
equation of state revisited", *Mol. Phys.* **78**, 591–618 (1993),
doi:10.1080/00268979300100411. Coefficients :math:`x_1 \dots x_{32}` and
:math:`\gamma = 3` are their Table 10 (the fit to the full, tail-corrected
potential). In reduced units (:math:`\varepsilon = \sigma = k_B = 1`), with
:math:`F = e^{-\gamma\rho^2}`,

.. math::

    \frac{A_{\rm ex}}{N\varepsilon} = \sum_{i=1}^{8} \frac{a_i(T)\,\rho^i}{i}
        + \sum_{i=1}^{6} b_i(T)\, G_i(\rho),
    \qquad
    G_1 = \frac{1 - F}{2\gamma},\quad
    G_i = -\frac{F\rho^{2(i-1)} - 2(i-1)\,G_{i-1}}{2\gamma},

    P = \rho T + \sum_{i=1}^{8} a_i \rho^{i+1} + F \sum_{i=1}^{6} b_i \rho^{2i+1},

with the temperature functions :math:`a_i(T), b_i(T)` of their Table 5.
"""

from __future__ import annotations

import jax.numpy as jnp

from .._checks import check_positive

__all__ = ["JZG_GAMMA", "JZG_X", "jzg_excess_free_energy", "jzg_pressure", "jzg_excess_energy"]

JZG_GAMMA = 3.0

# Johnson, Zollweg & Gubbins 1993, Table 10: x_1 ... x_32.
JZG_X = (
    0.8623085097507421,
    2.976218765822098,
    -8.402230115796038,
    0.1054136629203555,
    -0.8564583828174598,
    1.582759470107601,
    0.7639421948305453,
    1.753173414312048,
    2.798291772190376e03,
    -4.8394220260857657e-02,
    0.9963265197721935,
    -3.698000291272493e01,
    2.084012299434647e01,
    8.305402124717285e01,
    -9.574799715203068e02,
    -1.477746229234994e02,
    6.398607852471505e01,
    1.603993673294834e01,
    6.805916615864377e01,
    -2.791293578795945e03,
    -6.245128304568454,
    -8.116836104958410e03,
    1.488735559561229e01,
    -1.059346754655084e04,
    -1.131607632802822e02,
    -8.867771540418822e03,
    -3.986982844450543e01,
    -4.689270299917261e03,
    2.593535277438717e02,
    -2.694523589434903e03,
    -7.218487631550215e02,
    1.721802063863269e02,
)


def _check_state(temperature, density) -> None:
    """The JZG fit covers :math:`0.7 \\le T^* \\le 6`, :math:`0 \\le \\rho^* \\le 1.25`; outside
    it the polynomial is an extrapolation, but a non-positive temperature or a negative
    density has no meaning at all and is refused."""
    check_positive(temperature, "temperature")
    check_positive(density, "density", allow_zero=True)


def _ab(t):
    x = (None, *JZG_X)  # 1-based like the paper
    a = [
        x[1] * t + x[2] * jnp.sqrt(t) + x[3] + x[4] / t + x[5] / t**2,
        x[6] * t + x[7] + x[8] / t + x[9] / t**2,
        x[10] * t + x[11] + x[12] / t,
        x[13] + 0.0 * t,
        x[14] / t + x[15] / t**2,
        x[16] / t,
        x[17] / t + x[18] / t**2,
        x[19] / t**2,
    ]
    b = [
        x[20] / t**2 + x[21] / t**3,
        x[22] / t**2 + x[23] / t**4,
        x[24] / t**2 + x[25] / t**3,
        x[26] / t**2 + x[27] / t**4,
        x[28] / t**2 + x[29] / t**3,
        x[30] / t**2 + x[31] / t**3 + x[32] / t**4,
    ]
    return a, b


def jzg_excess_free_energy(temperature, density):
    r"""JZG excess Helmholtz free energy per particle :math:`A_{\rm ex}/(N\varepsilon)`.

    Args:
        temperature: :math:`T^* = k_B T/\varepsilon` (scalar or array).
        density: :math:`\rho^* = \rho\sigma^3` (broadcast against ``temperature``).

    Returns:
        :math:`A_{\rm ex}/(N\varepsilon)`; divide by :math:`T^*` for
        :math:`\beta A_{\rm ex}/N`. Example: ``-0.686026`` at ``(2.0, 0.5)``.

    Raises:
        ValueError: for a temperature that is not positive and finite or a negative (or
            non-finite) density (checked when concrete).
    """
    _check_state(temperature, density)
    t = jnp.asarray(temperature)
    rho = jnp.asarray(density)
    a, b = _ab(t)
    g = JZG_GAMMA
    f = jnp.exp(-g * rho**2)
    out = sum(a[i - 1] * rho**i / i for i in range(1, 9))
    big_g = (1.0 - f) / (2.0 * g)
    out = out + b[0] * big_g
    for i in range(2, 7):
        big_g = -(f * rho ** (2 * (i - 1)) - 2.0 * (i - 1) * big_g) / (2.0 * g)
        out = out + b[i - 1] * big_g
    return out


def jzg_pressure(temperature, density):
    r"""JZG pressure :math:`P^* = \rho T + \sum_i a_i\rho^{i+1} + F\sum_i b_i\rho^{2i+1}`.

    Raises:
        ValueError: as :func:`jzg_excess_free_energy`.
    """
    _check_state(temperature, density)
    t = jnp.asarray(temperature)
    rho = jnp.asarray(density)
    a, b = _ab(t)
    f = jnp.exp(-JZG_GAMMA * rho**2)
    p = rho * t + sum(a[i - 1] * rho ** (i + 1) for i in range(1, 9))
    return p + f * sum(b[i - 1] * rho ** (2 * i + 1) for i in range(1, 7))


def jzg_excess_energy(temperature, density):
    r"""JZG excess internal energy :math:`U_{\rm ex}/N = \partial(\beta A_{\rm ex}/N)/\partial\beta`.

    Computed by automatic differentiation of :func:`jzg_excess_free_energy`:
    :math:`U/N = A/N - T\,\partial(A/N)/\partial T`.

    Raises:
        ValueError: as :func:`jzg_excess_free_energy`.
    """
    import jax

    _check_state(temperature, density)
    t = jnp.asarray(temperature, dtype=float)
    rho = jnp.asarray(density)

    def a_of_t(tt):
        return jzg_excess_free_energy(tt, rho)

    dadt = jnp.vectorize(jax.grad(a_of_t))(t) if t.ndim else jax.grad(a_of_t)(t)
    return a_of_t(t) - t * dadt
