"""Harmonic free energy and the TI anharmonic correction against closed forms and quadrature."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jax_md import space
from scipy.integrate import quad

from thermo.estimators import gauss_legendre
from thermo.materials._harmonic import (
    anharmonic_free_energy,
    harmonic_free_energy,
)
from thermo.materials.cells import standard_promotion
from thermo.systems import remove_com

T = 0.5


def _ring(n=8, k=2.0, a=1.0):
    """N particles on a periodic ring (box N a along x) joined by vector springs of stiffness k."""
    disp = standard_promotion(space.periodic(jnp.array([n * a, 10.0, 10.0]))[0])
    bond = jnp.array([a, 0.0, 0.0])

    def energy(r):
        d = jax.vmap(disp)(jnp.roll(r, -1, axis=0), r) - bond[None, :]
        return 0.5 * k * jnp.sum(d**2)

    r0 = jnp.stack(
        [jnp.arange(n, dtype=jnp.result_type(float)) * a, jnp.full(n, 5.0), jnp.full(n, 5.0)],
        axis=1,
    )
    return energy, r0


def test_ring_closed_form():
    # Each Cartesian component is a periodic chain with eigenvalues 4k sin^2(pi m/N),
    # m = 0..N-1, and prod_{m=1}^{N-1} 4 sin^2(pi m/N) = N^2, so with the 3 zero modes
    # removed F_h = (3T/2) [(N-1) log(k/(2 pi T)) + 2 log N].
    n, k = 8, 2.0
    energy, r0 = _ring(n, k)
    res = harmonic_free_energy(energy, r0, temperature=T)
    exact = 1.5 * T * ((n - 1) * np.log(k / (2 * np.pi * T)) + 2 * np.log(n))
    assert abs(float(res.free_energy) - exact) < 1e-10
    assert int(res.n_negative) == 0
    m = np.arange(n)
    lam = np.sort(np.tile(4 * k * np.sin(np.pi * m / n) ** 2, 3))
    np.testing.assert_allclose(np.asarray(res.eigenvalues), lam, atol=1e-10)


def test_simple_cubic_crystal_spectrum():
    # L^3 simple-cubic crystal with nearest-neighbour vector springs: per Cartesian
    # component, lambda(q) = k sum_d 4 sin^2(pi q_d / L).
    ell, k, a = 3, 1.5, 1.1
    g = np.stack(np.meshgrid(*[np.arange(ell)] * 3, indexing="ij"), -1).reshape(-1, 3)
    r0 = jnp.asarray(g * a, dtype=float)
    disp = standard_promotion(space.periodic(ell * a)[0])
    nbr = [np.ravel_multi_index(((g + e) % ell).T, (ell,) * 3) for e in np.eye(3, dtype=int)]

    def energy(r):
        tot = 0.0
        for d_axis, idx in enumerate(nbr):
            d = jax.vmap(disp)(r[idx], r) - a * jnp.eye(3)[d_axis][None, :]
            tot = tot + 0.5 * k * jnp.sum(d**2)
        return tot

    res = harmonic_free_energy(energy, r0, temperature=T)
    q = np.stack(np.meshgrid(*[np.arange(ell)] * 3, indexing="ij"), -1).reshape(-1, 3)
    lam_q = k * np.sum(4 * np.sin(np.pi * q / ell) ** 2, axis=1)
    lam = np.sort(np.tile(lam_q, 3))
    np.testing.assert_allclose(np.asarray(res.eigenvalues), lam, atol=1e-10)
    kept = lam[3:]
    exact = 0.5 * T * np.sum(np.log(kept / (2 * np.pi * T)))
    assert abs(float(res.free_energy) - exact) < 1e-10


def test_unstable_structure_is_flagged():
    res = harmonic_free_energy(
        lambda x: jnp.sum(jnp.array([1.0, -1.0, 2.0]) * x**2),
        jnp.ones(3),
        temperature=T,
        n_zero_modes=0,
    )
    assert int(res.n_negative) == 1 and not np.isfinite(float(res.free_energy))
    with pytest.raises(ValueError, match="not a stable minimum"):
        anharmonic_free_energy(
            jr.key(0),
            lambda x: jnp.sum(x**2 * jnp.array([1.0, -1.0, 2.0])[None]),
            jnp.ones((1, 3)),
            temperature=T,
            n_zero_modes=0,
        )


def test_remove_com_is_a_projector():
    v = jr.normal(jr.key(0), (12,))
    p = remove_com(v, 4, 3)
    np.testing.assert_allclose(np.asarray(p.reshape(4, 3).sum(0)), 0.0, atol=1e-14)
    np.testing.assert_allclose(np.asarray(remove_com(p, 4, 3)), np.asarray(p), atol=1e-14)
    # NumPy in, NumPy float64 out (thermo.metrics relies on it)
    q = remove_com(np.asarray(v, np.float64), 4, 3)
    assert isinstance(q, np.ndarray) and q.dtype == np.float64


def test_ti_of_a_harmonic_crystal_is_zero():
    # U = U_h exactly, so <U - U_h>_lambda = 0 at every node (with the centre of mass fixed).
    energy, r0 = _ring()
    res = anharmonic_free_energy(
        jr.key(1), energy, r0, temperature=T, n_nodes=2, n_chains=2, n_burn=2, n_steps=8
    )
    assert abs(res.delta_f) < 1e-10
    assert abs(res.free_energy - res.harmonic) < 1e-10
    assert res.acceptance_rate > 0.5


def _oscillator(x, p):
    return jnp.sum(0.5 * p[0] * x**2 + p[1] * x**4)


def test_ti_anharmonic_oscillator_matches_quadrature():
    # Three independent quartic oscillators u(x) = k x^2/2 + g x^4 (pinned: no zero modes);
    # F = -3 T log int exp(-u/T) dx by quadrature. Tolerance: 4 standard errors plus the
    # Gauss-Legendre error of the node rule (below 1e-3 for this smooth integrand, bounded
    # by comparing 6 and 12 nodes of the exact integrand computed by quadrature).
    k, g = 1.0, 0.5
    z = quad(lambda x: np.exp(-(0.5 * k * x * x + g * x**4) / T), -10, 10)[0]
    exact = -3 * T * np.log(z)

    def mean_du(lam):
        w = lambda x: np.exp(-(0.5 * k * x * x + lam * g * x**4) / T)  # noqa: E731
        return 3 * quad(lambda x: g * x**4 * w(x), -10, 10)[0] / quad(w, -10, 10)[0]

    f_h = 1.5 * T * np.log(k / (2 * np.pi * T))
    quad_err = []
    for n in (6, 12):
        x, wts = gauss_legendre(0.0, 1.0, n)
        quad_err.append(f_h + np.sum(wts * np.array([mean_du(v) for v in x])))
    gl_bias = abs(quad_err[0] - exact)
    assert abs(quad_err[1] - exact) < 1e-6  # the node rule converges to the quadrature answer
    res = anharmonic_free_energy(
        jr.key(2),
        _oscillator,
        jnp.zeros((1, 3)),
        params=jnp.array([k, g]),
        temperature=T,
        n_zero_modes=0,
        n_nodes=6,
        n_chains=16,
        n_burn=50,
        n_steps=400,
    )
    assert res.std_err > 0
    assert abs(res.harmonic - f_h) < 1e-12
    assert abs(res.free_energy - exact) < 4 * res.std_err + gl_bias, (res, exact)
