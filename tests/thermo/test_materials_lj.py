"""Periodic cells and the hard-cut LJ pair: brute-force and analytic checks."""

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from thermo.materials import (
    CellLJEnergy,
    check_cutoff,
    fcc_lattice,
    fcc_lattice_energy,
    lj_beyond_cut_energy,
    lj_energy_fn,
    lj_neighbor_energy_fn,
    lj_virial_fn,
    neighbor_list,
    periodic_space,
    perpendicular_widths,
    replicas_for_cutoff,
    tail_energy_per_particle,
    tail_pressure,
    to_arrays,
)
from thermo.materials.lj import lj_pair

TRICLINIC = np.array([[6.0, 1.5, -1.0], [0.0, 5.5, 1.2], [0.0, 0.0, 5.8]])  # columns = vectors


def _brute_min_image(d_frac, box, n_img=2):
    """Shortest image of a displacement by explicit search over neighbouring cells."""
    shifts = np.array(list(itertools.product(range(-n_img, n_img + 1), repeat=3)), dtype=float)
    cands = (d_frac[None, :] + shifts) @ box.T
    return cands[np.argmin(np.linalg.norm(cands, axis=1))]


def _brute_energy(pos, box, r_cut, shift=False):
    """Double loop over pairs and explicit images (numpy)."""
    inv = np.linalg.inv(box)
    e = 0.0
    n = len(pos)
    sc6 = (1.0 / r_cut) ** 6
    u_c = 4 * (sc6**2 - sc6) if shift else 0.0
    for i in range(n):
        for j in range(i + 1, n):
            d = _brute_min_image(inv @ (pos[i] - pos[j]), box)
            r = np.linalg.norm(d)
            if r < r_cut:
                e += 4 * (r**-12 - r**-6) - u_c
    return e


def _random_config(seed, box, n, min_dist=0.85):
    rng = np.random.default_rng(seed)
    inv = np.linalg.inv(box)
    pts = []
    while len(pts) < n:
        x = box @ rng.uniform(size=3)
        if all(np.linalg.norm(_brute_min_image(inv @ (x - p), box)) > min_dist for p in pts):
            pts.append(x)
    return np.array(pts)


def test_triclinic_minimum_image_matches_brute_force_search():
    disp, _ = periodic_space(TRICLINIC)
    rng = np.random.default_rng(0)
    half_w = 0.5 * perpendicular_widths(TRICLINIC).min()
    a = TRICLINIC @ rng.uniform(size=(400, 3)).T
    b = TRICLINIC @ rng.uniform(size=(400, 3)).T
    ours = np.asarray(jax.vmap(disp)(jnp.asarray(a.T), jnp.asarray(b.T)))
    inv = np.linalg.inv(TRICLINIC)
    n_checked = 0
    for k in range(400):
        ref = _brute_min_image(inv @ (a[:, k] - b[:, k]), TRICLINIC)
        if np.linalg.norm(ref) < half_w:  # the guaranteed range of the fractional wrap
            n_checked += 1
            np.testing.assert_allclose(ours[k], ref, atol=1e-10)
        # Whatever the distance, ours is always *an* image of the displacement.
        frac = inv @ (ours[k] - (a[:, k] - b[:, k]))
        np.testing.assert_allclose(frac, np.round(frac), atol=1e-10)
    assert n_checked > 50


@pytest.mark.parametrize("box", [np.diag([5.2, 5.6, 6.0]), TRICLINIC], ids=["ortho", "triclinic"])
@pytest.mark.parametrize("shift", [False, True])
def test_energy_matches_numpy_double_loop(box, shift):
    r_cut = 2.5
    check_cutoff(box, r_cut)
    pos = _random_config(1, box, 24)
    disp, _ = periodic_space(box)
    ours = lj_energy_fn(disp, r_cut=r_cut, shift=shift)(jnp.asarray(pos))
    np.testing.assert_allclose(float(ours), _brute_energy(pos, box, r_cut, shift), rtol=1e-10)


def test_cell_energy_with_traced_sides_matches_double_loop_and_gradient():
    """CellLJEnergy (the cell an array field) equals the brute force, under jit, in energy
    and force, across two cells with one compiled function."""
    traces = []

    def _energy(u, x):
        traces.append(1)  # runs once per compilation
        return u(x)

    energy = eqx.filter_jit(_energy)
    grad = eqx.filter_jit(lambda u, x: jax.grad(u)(x))
    for sides in ([5.2, 5.6, 6.0], [5.5, 5.5, 5.9]):
        box = np.diag(sides)
        pos = _random_config(3, box, 24)
        u = CellLJEnergy(jnp.asarray(sides), r_cut=2.5)
        np.testing.assert_allclose(
            float(energy(u, jnp.asarray(pos))), _brute_energy(pos, box, 2.5), rtol=1e-10
        )
        disp, _ = periodic_space(box)
        ref = jax.grad(lj_energy_fn(disp, r_cut=2.5))(jnp.asarray(pos))
        np.testing.assert_allclose(
            np.asarray(grad(u, jnp.asarray(pos))), ref, rtol=1e-9, atol=1e-12
        )
    assert len(traces) == 1


def test_forces_match_finite_differences():
    box = TRICLINIC
    pos = _random_config(2, box, 16)
    disp, _ = periodic_space(box)
    energy = jax.jit(lj_energy_fn(disp, r_cut=2.5))
    grad = np.asarray(jax.grad(energy)(jnp.asarray(pos)))
    h = 1e-6
    for i, k in [(0, 0), (3, 1), (7, 2), (15, 0)]:
        dp = np.zeros_like(pos)
        dp[i, k] = h
        fd = (energy(jnp.asarray(pos + dp)) - energy(jnp.asarray(pos - dp))) / (2 * h)
        np.testing.assert_allclose(grad[i, k], float(fd), rtol=1e-5, atol=1e-7)


def test_virial_is_volume_derivative_of_energy():
    # W = sum r u'(r) = dU(lambda R; lambda L)/dlambda at lambda = 1 (uniform scaling).
    side = np.array([5.2, 5.6, 6.0])
    pos = _random_config(3, np.diag(side), 24)
    disp, _ = periodic_space(np.diag(side))
    virial = float(lj_virial_fn(disp, r_cut=2.5)(jnp.asarray(pos)))

    def scaled_energy(lam):
        from jax_md import space

        d, _ = space.periodic(jnp.asarray(side) * lam)
        return lj_energy_fn(d, r_cut=2.5)(jnp.asarray(pos) * lam)

    np.testing.assert_allclose(virial, float(jax.grad(scaled_energy)(1.0)), rtol=1e-9)


def test_tail_corrections_match_quadrature():
    rho, r_cut = 0.8, 3.0
    u_int = integrate.quad(lambda r: r**2 * float(lj_pair(r, r_cut=np.inf)), r_cut, np.inf)[0]
    np.testing.assert_allclose(
        float(tail_energy_per_particle(rho, r_cut=r_cut)), 2 * np.pi * rho * u_int, rtol=1e-9
    )
    # P_tail = -(2 pi / 3) rho^2 int r^3 u'(r) dr
    du = integrate.quad(lambda r: r**3 * 24 * (r**-7 - 2 * r**-13), r_cut, np.inf)[0]
    np.testing.assert_allclose(
        float(tail_pressure(rho, r_cut=r_cut)), -2 * np.pi / 3 * rho**2 * du, rtol=1e-9
    )


def test_neighbor_list_energy_equals_all_pairs():
    box = np.diag([7.0, 7.0, 7.0])
    pos = _random_config(4, box, 60)
    disp, _ = periodic_space(box)
    nbr_fns = neighbor_list(disp, box, 2.5, skin=0.3)
    nbrs = nbr_fns.allocate(jnp.asarray(pos))
    assert not bool(nbrs.did_buffer_overflow)
    e_nbr = lj_neighbor_energy_fn(disp, r_cut=2.5)(jnp.asarray(pos), nbrs)
    e_all = lj_energy_fn(disp, r_cut=2.5)(jnp.asarray(pos))
    np.testing.assert_allclose(float(e_nbr), float(e_all), rtol=1e-10)


def test_cutoff_guard_and_replication():
    with pytest.raises(ValueError, match="perpendicular width"):
        check_cutoff(TRICLINIC, 3.0)
    mfi = np.diag([20.022, 19.899, 13.383])
    assert replicas_for_cutoff(mfi, 12.0) == (2, 2, 2)
    with pytest.raises(ValueError):
        periodic_space(np.zeros((3, 3)))


def test_beyond_cut_energy_of_a_lattice_is_the_lattice_sum_difference():
    """On a perfect FCC crystal U_full - U_cut is the full lattice sum minus the cut one.

    The explicit sum reaches 1.4 box lengths; beyond it the homogeneous tail stands in
    for the lattice, whose shells there deviate from g = 1 by a few 1e-4 per particle.
    """
    pos, box, _ = to_arrays(fcc_lattice(3, 1.13))
    disp, _ = periodic_space(box)
    u_cut = float(lj_energy_fn(disp, r_cut=2.1)(jnp.asarray(pos))) / 108
    du = lj_beyond_cut_energy(np.stack([pos, pos + 0.37]), np.diag(box), r_cut=2.1) / 108
    assert du.shape == (2,)
    assert float(du[0]) == pytest.approx(float(fcc_lattice_energy(1.13)) - u_cut, abs=1e-3)
    assert float(du[1]) == pytest.approx(float(du[0]), abs=1e-5)  # translation invariant
