r"""Adsorption at infinite dilution in a rigid framework by Widom test-particle insertion.

A rigid adsorbate is inserted at uniformly random positions (and uniformly random
orientations, for multi-site molecules) in a rigid periodic framework. With
:math:`\Delta U` the adsorbate–framework energy of an insertion and
:math:`\beta = 1/k_B T`, the Widom (Rosenbluth, for a rigid molecule) weight is

.. math:: \langle W \rangle = \langle e^{-\beta \Delta U} \rangle,

which is RASPA's "Rosenbluth weight" relative to the ideal gas (Widom 1963;
Dubbeldam et al. 2013, *Mol. Simul.* 39, 1253, eqs. 31–33). The Henry coefficient
follows as

.. math::

    K_H = \frac{\langle W \rangle}{R T \rho_f}\ [\mathrm{mol\,kg^{-1}\,Pa^{-1}}],
    \qquad
    K_H = \frac{\langle W \rangle\, V_{\rm uc}}{k_B T}\ [\text{molecules per unit cell per Pa}],

with :math:`\rho_f` the framework density and :math:`V_{\rm uc}` the unit-cell
volume. The enthalpy of adsorption at infinite dilution (Vlugt et al. 2008,
*J. Chem. Theory Comput.* 4, 1107, eq. 12) is

.. math:: \Delta H = \frac{\langle \Delta U\, W\rangle}{\langle W\rangle} - k_B T,
   \qquad q_{\rm st} = -\Delta H.

The pair potential is Lennard-Jones with Lorentz–Berthelot mixing, truncated and
shifted at :math:`r_c = 12` Å, no tail correction (the shipped TraPPE-zeo/CH₄
parameters in ``data/trappe_zeo_methane.json``, as in RASPA3's example 7, or any
force field from :func:`thermo.materials.adsorption_force_field`). The supercell is the
smallest replication with every perpendicular width at least :math:`2 r_c` (2×2×2 for
MFI, as RASPA3 uses), so the minimum image is exact.

Charged adsorbates in a charged framework (``framework_charges``) add the Ewald
energy of the insertion (:mod:`thermo.materials.ewald`): the real-space
:math:`C\sum q_s q_f \operatorname{erfc}(\alpha r)/r` over framework atoms within
:math:`r_c`, and the Fourier part
:math:`C\sum_k w_k\,(2\,\mathrm{Re}[S_f(k)^* S_m(k)] + |S_m(k)|^2)` plus the
molecule's self and exclusion constants (RASPA3's ``ewaldFourier`` difference). The
framework's structure factor :math:`S_f(k)` is computed once, so an insertion costs
O(k-vectors × sites) for the Fourier part. :math:`(\alpha, k_{\max})` follow from a
relative precision (default :math:`10^{-6}`, RASPA's) by
:func:`thermo.materials.ewald_parameters`.

Insertions are split into independent blocks; the blocks are sharded across all
available devices with ``jax.shard_map`` and the standard error is that of the
block means. An optional precomputed energy grid (trilinear interpolation of
:math:`\Delta U` on a regular fractional grid of the supercell) trades exactness for
speed.
"""

from __future__ import annotations

import json
import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax.sharding import Mesh, PartitionSpec
from jax_md import space

from .._checks import check_count, check_positive
from .cells import box_matrix, check_cutoff, periodic_space, replicas_for_cutoff
from .ewald import (
    COULOMB_CONSTANT_RASPA,
    EwaldKVectors,
    _self_exclusion,
    ewald_parameters,
    kspace_mask,
)
from .lj import lj_pair
from .structures import DATA_DIR, load_framework

__all__ = ["WidomResult", "framework_energy_fn", "load_force_field", "widom"]

# CODATA 2018 exact values.
K_BOLTZMANN = 1.380649e-23  # J/K
AVOGADRO = 6.02214076e23  # 1/mol
GAS_CONSTANT = K_BOLTZMANN * AVOGADRO  # J/(mol K)
ANGSTROM3 = 1e-30  # m^3
AMU_KG = 1e-3 / AVOGADRO  # kg per (g/mol)

_ENERGY_CLAMP = 1e10  # K; an overlap energy larger than this has weight 0 anyway


def load_force_field(path: str | None = None) -> dict:
    """Load the LJ force-field JSON (default: shipped TraPPE-zeo + TraPPE CH4)."""
    path = path or os.path.join(DATA_DIR, "trappe_zeo_methane.json")
    with open(path) as f:
        return json.load(f)


class WidomResult(NamedTuple):
    """Widom insertion results (energies in K, i.e. divided by :math:`k_B`).

    Attributes:
        weight: :math:`\\langle W\\rangle = \\langle e^{-\\beta\\Delta U}\\rangle`.
        std_err: standard error of ``weight`` from the block means.
        henry: :math:`K_H` in molecules per unit cell per Pa.
        henry_std_err: its standard error.
        henry_mol_per_kg_pa: :math:`K_H` in mol/kg/Pa.
        enthalpy: :math:`\\Delta H` in K (multiply by R for J/mol).
        isosteric_heat_kj_mol: :math:`q_{st} = -\\Delta H` in kJ/mol.
        n_insertions: number of insertions used.
        block_weights: ``(n_blocks,)`` block means of :math:`W`.
        unit_cells: the replication used.
    """

    weight: float
    std_err: float
    henry: float
    henry_std_err: float
    henry_mol_per_kg_pa: float
    enthalpy: float
    isosteric_heat_kj_mol: float
    n_insertions: int
    block_weights: np.ndarray
    unit_cells: tuple[int, int, int]


def _ewald_kvectors(
    cell_rows, r_cut, precision, alpha=None, kmax=None, kspace="cube"
) -> EwaldKVectors:
    """The k-vectors for a requested accuracy (:func:`ewald_parameters`), with ``alpha`` or
    ``kmax`` overriding the automatic choice where given; ``kspace`` the k-set."""
    if alpha is None or kmax is None:
        auto_alpha, auto_kmax = ewald_parameters(cell_rows, r_cut, precision)
        alpha = auto_alpha if alpha is None else alpha
        kmax = auto_kmax if kmax is None else kmax
    return EwaldKVectors(cell_rows, alpha=float(alpha), kmax=kmax, kspace=kspace)


def _mixed_parameters(ff: dict, symbols: list[str], site: str):
    atoms = ff["atoms"]
    missing = sorted(set(symbols) - set(atoms))
    if missing:
        raise ValueError(f"no LJ parameters for framework elements {missing}")
    if site not in atoms:
        raise ValueError(f"no LJ parameters for adsorbate site {site!r}")
    if ff.get("mixing_rule", "Lorentz-Berthelot") != "Lorentz-Berthelot":
        raise ValueError("only Lorentz-Berthelot mixing is implemented")
    eps = np.array([np.sqrt(atoms[s]["epsilon"] * atoms[site]["epsilon"]) for s in symbols])
    sig = np.array([0.5 * (atoms[s]["sigma"] + atoms[site]["sigma"]) for s in symbols])
    return eps, sig


def _check_triple(values, name: str, minimum: int = 1) -> tuple[int, int, int]:
    """Three whole numbers ``>= minimum`` (a replication or a grid), or a ``ValueError``."""
    if isinstance(values, str) or len(values) != 3:
        raise ValueError(f"{name} must be three integers (a, b, c), got {values!r}")
    return tuple(check_count(n, f"{name} entry", minimum=minimum) for n in values)


def framework_energy_fn(
    framework,
    *,
    adsorbate: str = "CH4",
    force_field: dict | None = None,
    unit_cells: tuple[int, int, int] | None = None,
    r_cut: float | None = None,
    bin_width: float | None = 2.0,
    framework_charges: dict | np.ndarray | None = None,
    ewald_precision: float = 1e-6,
    ewald_alpha: float | None = None,
    ewald_kmax: tuple[int, int, int] | None = None,
    coulomb_constant: float = COULOMB_CONSTANT_RASPA,
):
    r"""Adsorbate–framework energy :math:`\Delta U(u, R)` (K) for a rigid adsorbate.

    Args:
        framework: ``ase.Atoms`` or a CIF path (unit cell).
        adsorbate: key of ``force_field["adsorbates"]``.
        force_field: parsed JSON (default: :func:`load_force_field`).
        unit_cells: supercell replication; default the smallest one with
            :math:`r_c \le w_{\min}/2`. Raises if the given one violates it.
        r_cut: cutoff in Å (default the force field's, 12 Å).
        bin_width: if set (Å), the unit cell is cut into bins about this wide and
            each bin keeps the framework atoms (of the supercell) within
            :math:`r_c + h` of its centre, :math:`h` the bin's half-diagonal; an
            insertion then only visits its bin's list (single-site adsorbates;
            exact, since the list is a superset of the atoms within :math:`r_c`).
            ``None`` sums over all framework atoms.
        framework_charges: ``{element: charge}`` or a ``(n_atoms,)`` array for the
            unit cell (e); with charged adsorbate sites (third entry of a site,
            e.g. from :func:`thermo.materials.adsorption_force_field`) this adds the
            Ewald energy (module docstring). ``None``: LJ only.
        ewald_precision: relative accuracy that sets :math:`(\alpha, k_{\max})`
            (:func:`thermo.materials.ewald_parameters`) unless both are given.
        ewald_alpha, ewald_kmax: explicit Ewald parameters (Å⁻¹, three integers).
        coulomb_constant: K·Å (default RASPA3's 167101.0800).

    Returns:
        ``(energy_fn, info)``: ``energy_fn(frac, rotation)`` maps fractional
        supercell coordinates ``(3,)`` of the adsorbate centre and a ``(3, 3)``
        rotation matrix to :math:`\Delta U` in K; ``info`` holds the supercell
        matrix, replication, unit-cell volume (Å^3) and mass (g/mol).
    """
    if unit_cells is not None:
        unit_cells = _check_triple(unit_cells, "unit_cells")
    if bin_width is not None:
        check_positive(bin_width, "bin_width")
    if r_cut is not None:
        check_positive(r_cut, "r_cut")
    ff = force_field or load_force_field()
    r_cut = float(r_cut or ff["r_cut"])
    shift = ff.get("truncation", "shifted") == "shifted"
    atoms = load_framework(framework)
    cell_uc = atoms.cell.array.T
    reps = tuple(unit_cells) if unit_cells is not None else replicas_for_cutoff(cell_uc, r_cut)
    supercell = box_matrix(cell_uc * np.asarray(reps)[None, :])
    check_cutoff(supercell, r_cut)
    big = atoms.repeat(reps)
    frame_frac = jnp.asarray(np.linalg.solve(supercell, big.get_positions().T).T % 1.0)
    symbols = big.get_chemical_symbols()
    if adsorbate not in ff["adsorbates"]:
        raise ValueError(f"unknown adsorbate {adsorbate!r}; known {sorted(ff['adsorbates'])}")
    sites = ff["adsorbates"][adsorbate]["sites"]
    site_names = [s[0] for s in sites]
    offsets = np.array([s[1] for s in sites], dtype=np.float64)
    offsets = offsets - offsets.mean(axis=0)
    params = [_mixed_parameters(ff, symbols, name) for name in site_names]
    eps = jnp.asarray(np.stack([p[0] for p in params]))  # (n_sites, M)
    sig = jnp.asarray(np.stack([p[1] for p in params]))
    offsets_frac = jnp.asarray(np.linalg.solve(supercell, offsets.T).T)  # (n_sites, 3)
    disp_fn, _ = periodic_space(supercell, fractional_coordinates=True)
    inv_super = jnp.asarray(np.linalg.inv(supercell))
    t_super = jnp.asarray(supercell)

    def energy_fn(frac, rotation):
        # Site fractional positions: centre + T^{-1} R offsets.
        site_frac = frac[None, :] + (inv_super @ (rotation @ (t_super @ offsets_frac.T))).T
        dr = jax.vmap(lambda s: jax.vmap(lambda f: disp_fn(s, f))(frame_frac))(site_frac)
        r = space.distance(dr)  # (n_sites, M)
        u = jnp.sum(lj_pair(r, sig, eps, r_cut, shift))
        return jnp.minimum(u, _ENERGY_CLAMP)

    site_charges = np.array([float(s[2]) if len(s) > 2 else 0.0 for s in sites])
    coulomb = framework_charges is not None and bool(np.any(site_charges != 0))
    info_ewald = None
    if coulomb:
        if abs(site_charges.sum()) > 1e-10:
            raise ValueError(f"adsorbate {adsorbate!r} is charged ({site_charges.sum()} e)")
        q_uc = _framework_charge_array(atoms, framework_charges)
        q_big = np.tile(q_uc, int(np.prod(reps)))  # ase's repeat tiles whole unit cells
        cell_rows = supercell.T
        kv = _ewald_kvectors(cell_rows, r_cut, ewald_precision, ewald_alpha, ewald_kmax)
        cj = jnp.asarray(cell_rows)
        const = coulomb_constant * float(
            _self_exclusion(
                jnp.asarray(offsets),
                jnp.asarray(site_charges),
                jnp.asarray(~np.eye(len(sites), dtype=bool)),
                cj,
                jnp.linalg.inv(cj),
                kv.alpha,
            )
        )
        qq = site_charges[:, None] * q_big[None, :]
        ewald = (kv, q_big, const, coulomb_constant, qq, site_charges)
        info_ewald = {"alpha": kv.alpha, "kmax": kv.kmax, "n_kvectors": int(kv.kvectors.shape[0])}
    else:
        ewald = None

    if len(site_names) == 1 and not coulomb:
        if bin_width is not None:
            energy_fn = _binned_energy_fn(
                np.asarray(frame_frac),
                np.asarray(eps[0]),
                np.asarray(sig[0]),
                supercell,
                reps,
                r_cut,
                shift,
                float(bin_width),
                disp_fn,
            )
    else:
        energy_fn = _molecule_energy_fn(
            np.asarray(frame_frac),
            np.asarray(eps),
            np.asarray(sig),
            offsets,
            supercell,
            reps,
            r_cut,
            shift,
            bin_width,
            disp_fn,
            ewald,
        )

    mass = float(np.sum(atoms.get_masses()))
    info = {
        "ewald": info_ewald,
        "supercell": supercell,
        "unit_cells": reps,
        "volume_unit_cell": float(atoms.cell.volume),
        "mass_unit_cell": mass,
        "n_sites": len(site_names),
    }
    return energy_fn, info


def _framework_charge_array(atoms, framework_charges) -> np.ndarray:
    symbols = atoms.get_chemical_symbols()
    if isinstance(framework_charges, dict):
        missing = sorted(set(symbols) - set(framework_charges))
        if missing:
            raise ValueError(f"no framework charge for elements {missing}")
        return np.array([float(framework_charges[s]) for s in symbols])
    q = np.asarray(framework_charges, dtype=np.float64).reshape(-1)
    if q.shape != (len(symbols),):
        raise ValueError(f"framework_charges must have {len(symbols)} entries, got {q.shape}")
    return q


def _bin_lists(frame_frac, supercell, reps, radius_extra, r_cut, bin_width):
    """Per-bin lists (padded with index M) of framework atoms within r_c + h + extra."""
    reps_a = np.asarray(reps, dtype=np.float64)
    cell_uc = supercell / reps_a[None, :]
    lengths = np.linalg.norm(cell_uc, axis=0)
    n_bins = np.maximum(1, np.ceil(lengths / bin_width).astype(int))
    corners = np.array(np.meshgrid([-0.5, 0.5], [-0.5, 0.5], [-0.5, 0.5], indexing="ij"))
    corners = corners.reshape(3, -1).T / n_bins
    half_diag = np.max(np.linalg.norm(corners @ cell_uc.T, axis=1))
    radius = r_cut + half_diag + radius_extra
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in n_bins], indexing="ij"), -1).reshape(-1, 3)
    centres = (idx + 0.5) / n_bins / reps_a
    d = centres[:, None, :] - frame_frac[None, :, :]
    d -= np.round(d)
    inside = np.linalg.norm(d @ supercell.T, axis=-1) < radius
    width = int(inside.sum(axis=1).max())
    order = np.argsort(~inside, axis=1, kind="stable")[:, :width]
    valid = np.take_along_axis(inside, order, axis=1)
    return np.where(valid, order, frame_frac.shape[0]), n_bins


def _fourier_grid(kv, frame_frac, frame_q, supercell):
    r"""Half k-space on a grid :math:`n_1 \ge 0`: ranges, weights (0 off the half and off
    ``kv``'s k-set, :func:`thermo.materials.ewald.kspace_mask`), :math:`S_f`.

    With :math:`f` fractional coordinates, :math:`k\cdot r = 2\pi\, n\cdot f`, so the
    framework's structure factor is tabulated once on the grid.
    """
    k1, k2, k3 = kv.kmax
    ranges = [np.arange(0, k1 + 1), np.arange(-k2, k2 + 1), np.arange(-k3, k3 + 1)]
    n = np.stack(np.meshgrid(*ranges, indexing="ij"), -1)  # (k1+1, 2k2+1, 2k3+1, 3)
    first = np.where(n[..., 0] != 0, n[..., 0], np.where(n[..., 1] != 0, n[..., 1], n[..., 2]))
    recip = 2.0 * np.pi * np.linalg.inv(supercell)  # rows b_a, k = n @ recip
    k = n @ recip
    k2sum = np.sum(k * k, axis=-1)
    volume = float(np.linalg.det(supercell))
    with np.errstate(divide="ignore", invalid="ignore"):
        w = 2.0 * (2.0 * np.pi / volume) * np.exp(-k2sum / (4.0 * kv.alpha**2)) / k2sum
    w = np.where((first > 0) & kspace_mask(n, supercell.T, kv.kmax, kv.kspace), w, 0.0)
    flat = n.reshape(-1, 3)
    s_f = np.zeros(flat.shape[0], dtype=np.complex128)
    for i in range(0, frame_frac.shape[0], 256):
        s_f += np.exp(2j * np.pi * flat @ frame_frac[i : i + 256].T) @ frame_q[i : i + 256]
    return (
        [jnp.asarray(r, dtype=jnp.float64) for r in ranges],
        jnp.asarray(w),
        jnp.asarray(s_f.reshape(n.shape[:-1])),
    )


def _molecule_energy_fn(
    frame_frac, eps, sig, offsets, supercell, reps, r_cut, shift, bin_width, disp_fn, ewald
):
    r"""Rigid multi-site adsorbate: LJ (+ Ewald real space and Fourier part) in one pass.

    With ``bin_width`` the molecule's centre is moved into the first unit cell (the
    framework, and so the energy, is periodic in the unit cell) and only the framework
    atoms listed for its bin are visited: those within :math:`r_c + h + d_{\max}` of
    the bin centre, :math:`h` the bin's half-diagonal and :math:`d_{\max}` the largest
    site distance from the centre, a superset of every site's :math:`r_c` sphere.
    """
    m = frame_frac.shape[0]
    reps_a = np.asarray(reps, dtype=np.float64)
    if bin_width is not None:
        d_max = float(np.max(np.linalg.norm(offsets, axis=1)))
        lists, n_bins = _bin_lists(frame_frac, supercell, reps, d_max, r_cut, float(bin_width))
    else:
        lists, n_bins = np.arange(m)[None, :], np.ones(3, dtype=int)
    lists = jnp.asarray(lists)
    n_bins_j = jnp.asarray(n_bins, dtype=jnp.int32)
    n_bins_f = jnp.asarray(np.asarray(n_bins, dtype=np.float64))
    strides = jnp.asarray([n_bins[1] * n_bins[2], n_bins[2], 1], dtype=jnp.int32)
    reps_j = jnp.asarray(reps_a)
    pad = lambda a, v: jnp.asarray(np.concatenate([a, np.full(a.shape[:-1] + (1,), v)], -1))  # noqa: E731
    pad_frac = jnp.asarray(np.concatenate([frame_frac, np.zeros((1, 3))]))
    pad_eps, pad_sig = pad(eps, 0.0), pad(sig, 1.0)
    pad_far = jnp.asarray(np.concatenate([np.zeros(m), [np.inf]]))
    inv_super = jnp.asarray(np.linalg.inv(supercell))
    offsets_j = jnp.asarray(offsets)
    if ewald is not None:
        kv, frame_q, const, coulomb_constant, qq, site_q = ewald
        pad_qq = pad(qq * coulomb_constant, 0.0)
        site_q = jnp.asarray(site_q)
        k_range, weights, s_f = _fourier_grid(kv, frame_frac, frame_q, supercell)

    def energy_fn(frac, rotation):
        if bin_width is not None:
            u_uc = jnp.mod(frac * reps_j, 1.0)
            b = jnp.minimum((u_uc * n_bins_f).astype(jnp.int32), n_bins_j - 1)
            nbrs = lists[jnp.sum(b * strides)]
            centre = u_uc / reps_j
        else:
            nbrs = lists[0]
            centre = frac
        site_frac = centre[None, :] + (rotation @ offsets_j.T).T @ inv_super.T
        dr = jax.vmap(lambda s: jax.vmap(lambda f: disp_fn(s, f))(pad_frac[nbrs]))(site_frac)
        r = space.distance(dr) + pad_far[nbrs][None, :]  # (n_sites, width)
        u = jnp.sum(lj_pair(r, pad_sig[:, nbrs], pad_eps[:, nbrs], r_cut, shift))
        if ewald is not None:
            r_safe = jnp.where(jnp.isfinite(r) & (r > 0), r, 1.0)
            real = pad_qq[:, nbrs] * jax.scipy.special.erfc(kv.alpha * r_safe) / r_safe
            u = u + jnp.sum(jnp.where(r < r_cut, real, 0.0))
            # e^{i k.r} = prod_a e^{2 pi i n_a f_a}: three short exponentials per site.
            phases = [2.0 * jnp.pi * site_frac[:, a, None] * k_range[a][None, :] for a in range(3)]
            e = [jnp.exp(jax.lax.complex(jnp.zeros_like(p), p)) for p in phases]
            s_m = jnp.einsum("s,si,sj,sk->ijk", site_q.astype(e[0].dtype), e[0], e[1], e[2])
            cross = 2.0 * jnp.real(jnp.conj(s_f) * s_m) + jnp.abs(s_m) ** 2
            u = u + const + coulomb_constant * jnp.sum(weights * cross)
        return jnp.minimum(u, _ENERGY_CLAMP)

    return energy_fn


def _binned_energy_fn(frame_frac, eps, sig, supercell, reps, r_cut, shift, bin_width, disp_fn):
    """Single-site energy visiting only the framework atoms listed for the insertion's bin.

    The energy is periodic in the unit cell, so bins tile the unit cell; a supercell
    fractional position ``u`` maps to unit-cell fraction ``(u * reps) mod 1``, which is
    moved to the first unit cell of the supercell.
    """
    lists_np, n_bins = _bin_lists(frame_frac, supercell, reps, 0.0, r_cut, bin_width)
    lists = jnp.asarray(lists_np)  # padded with m = frame_frac.shape[0]
    m = frame_frac.shape[0]
    reps_a = np.asarray(reps, dtype=np.float64)
    pad_frac = jnp.asarray(np.concatenate([frame_frac, np.zeros((1, 3))]))
    pad_eps = jnp.asarray(np.concatenate([eps, [0.0]]))
    pad_sig = jnp.asarray(np.concatenate([sig, [1.0]]))
    pad_far = jnp.asarray(np.concatenate([np.zeros(m), [np.inf]]))
    n_bins_j = jnp.asarray(n_bins, dtype=jnp.int32)
    n_bins_f = jnp.asarray(np.asarray(n_bins, dtype=np.float64))
    reps_j = jnp.asarray(reps_a)
    strides = jnp.asarray([n_bins[1] * n_bins[2], n_bins[2], 1], dtype=jnp.int32)

    def energy_fn(frac, rotation):
        del rotation
        u_uc = jnp.mod(frac * reps_j, 1.0)
        b = jnp.minimum((u_uc * n_bins_f).astype(jnp.int32), n_bins_j - 1)
        nbrs = lists[jnp.sum(b * strides)]
        x = u_uc / reps_j
        dr = jax.vmap(lambda f: disp_fn(x, f))(pad_frac[nbrs])
        r = space.distance(dr) + pad_far[nbrs]
        u = jnp.sum(lj_pair(r, pad_sig[nbrs], pad_eps[nbrs], r_cut, shift))
        return jnp.minimum(u, _ENERGY_CLAMP)

    return energy_fn


def _random_rotation(key, n_sites: int):
    if n_sites == 1:
        return jnp.eye(3)
    q = jr.normal(key, (4,))
    w, x, y, z = q / jnp.linalg.norm(q)  # uniform on SO(3) (Shoemake 1992)
    return jnp.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _make_grid_energy(energy_fn, n_grid: tuple[int, int, int], chunk: int):
    """Tabulate energy_fn on a regular fractional grid; return a trilinear interpolant."""
    axes = [jnp.arange(n) / n for n in n_grid]
    pts = jnp.stack(jnp.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    eye = jnp.eye(3)
    grid = jax.lax.map(lambda p: energy_fn(p, eye), pts, batch_size=chunk).reshape(n_grid)
    shape = jnp.asarray(n_grid, dtype=jnp.int32)
    shape_f = jnp.asarray(np.asarray(n_grid, dtype=np.float64))

    def interp(frac, rotation):
        del rotation
        x = jnp.mod(frac, 1.0) * shape_f
        i0 = jnp.floor(x).astype(jnp.int32)
        t = x - i0.astype(x.dtype)
        out = 0.0
        for dx in (0, 1):
            for dy in (0, 1):
                for dz in (0, 1):
                    idx = jnp.mod(i0 + jnp.array([dx, dy, dz], dtype=jnp.int32), shape)
                    wgt = (
                        (t[0] if dx else 1 - t[0])
                        * (t[1] if dy else 1 - t[1])
                        * (t[2] if dz else 1 - t[2])
                    )
                    out = out + wgt * grid[idx[0], idx[1], idx[2]]
        return out

    return interp


def widom(
    key,
    framework,
    *,
    adsorbate: str = "CH4",
    temperature: float = 300.0,
    n_insertions: int = 1_000_000,
    n_blocks: int = 10,
    chunk_size: int = 1024,
    unit_cells: tuple[int, int, int] | None = None,
    force_field: dict | None = None,
    energy_grid: tuple[int, int, int] | None = None,
    bin_width: float | None = 2.0,
    framework_charges: dict | np.ndarray | None = None,
    ewald_precision: float = 1e-6,
) -> WidomResult:
    r"""Widom insertion of a rigid adsorbate into a rigid framework; see module docstring.

    Defaults reproduce RASPA3's example 7 (methane in MFI, TraPPE, LB mixing,
    shifted at 12 Å, no tail correction, 2×2×2 cells, 300 K; reference
    :math:`\langle W\rangle = 27.39 \pm 0.06`).

    Args:
        key: PRNG key.
        framework: ``ase.Atoms`` or a CIF path (e.g.
            :func:`thermo.materials.shared_materials_path` ``("MFI_SI.cif")``, or
            :func:`thermo.materials.core_mof_framework`).
        adsorbate: adsorbate name in the force field (``"CH4"``).
        temperature: K.
        n_insertions: total insertions; rounded down to a multiple of
            ``n_blocks * chunk_size``.
        n_blocks: independent blocks for the standard error (rounded up to a
            multiple of the device count; blocks are sharded across devices).
        chunk_size: insertions evaluated together (memory ``chunk*M*3`` floats).
        unit_cells: supercell replication (default: smallest satisfying the
            minimum-image criterion).
        force_field: parsed force-field JSON (default: shipped TraPPE).
        energy_grid: optional ``(n_a, n_b, n_c)`` fractional grid of the supercell
            on which :math:`\Delta U` is precomputed and trilinearly interpolated
            (single-site adsorbates only; approximate).
        bin_width: per-bin framework lists (exact speed-up); see
            :func:`framework_energy_fn`. ``None`` visits every framework atom.
        framework_charges: ``{element: charge}`` or per-atom array (e): adds the
            Ewald energy for charged adsorbates (see :func:`framework_energy_fn`).
        ewald_precision: relative accuracy of the Ewald sum (RASPA's default 1e-6).

    Returns:
        :class:`WidomResult`.
    """
    check_positive(temperature, "temperature")
    n_insertions = check_count(n_insertions, "n_insertions")
    n_blocks = check_count(n_blocks, "n_blocks")
    chunk_size = check_count(chunk_size, "chunk_size")
    if energy_grid is not None:
        energy_grid = _check_triple(energy_grid, "energy_grid", minimum=2)
    energy_fn, info = framework_energy_fn(
        framework,
        adsorbate=adsorbate,
        force_field=force_field,
        unit_cells=unit_cells,
        bin_width=bin_width,
        framework_charges=framework_charges,
        ewald_precision=ewald_precision,
    )
    n_sites = info["n_sites"]
    devices = jax.devices()
    n_dev = len(devices)
    n_blocks = int(-(-max(int(n_blocks), 2) // n_dev) * n_dev)
    n_chunks = int(n_insertions) // (n_blocks * chunk_size)
    if n_chunks < 1:
        raise ValueError(
            f"n_insertions={n_insertions} is smaller than n_blocks*chunk_size={n_blocks * chunk_size}"
        )
    key_grid, key = jr.split(key)
    del key_grid
    if energy_grid is not None:
        if n_sites != 1:
            raise ValueError("energy_grid is only available for single-site adsorbates")
        energy_fn = _make_grid_energy(energy_fn, tuple(int(n) for n in energy_grid), chunk_size)
    beta = 1.0 / float(temperature)

    def chunk_stats(k):
        k_pos, k_rot = jr.split(k)
        frac = jr.uniform(k_pos, (chunk_size, 3))
        rot = jax.vmap(lambda kk: _random_rotation(kk, n_sites))(jr.split(k_rot, chunk_size))
        u = jax.vmap(energy_fn)(frac, rot)
        w = jnp.exp(-beta * u)
        uw = jnp.where(w > 0, u * w, 0.0)
        return jnp.stack([jnp.sum(w), jnp.sum(uw)])

    def block_stats(k):
        sums = jax.lax.map(chunk_stats, jr.split(k, n_chunks))
        return jnp.sum(sums, axis=0) / (n_chunks * chunk_size)

    mesh = Mesh(np.array(devices), ("blocks",))
    sharded = jax.jit(
        jax.shard_map(
            lambda ks: jax.lax.map(block_stats, ks),
            mesh=mesh,
            in_specs=PartitionSpec("blocks"),
            out_specs=PartitionSpec("blocks"),
        )
    )
    stats = np.asarray(sharded(jr.split(key, n_blocks)), dtype=np.float64)  # (n_blocks, 2)
    w_blocks, uw_blocks = stats[:, 0], stats[:, 1]
    weight = float(w_blocks.mean())
    std_err = float(w_blocks.std(ddof=1) / np.sqrt(n_blocks))
    v_uc = info["volume_unit_cell"] * ANGSTROM3
    kt = K_BOLTZMANN * temperature
    henry = weight * v_uc / kt
    rho_f = info["mass_unit_cell"] * AMU_KG / v_uc  # kg/m^3
    henry_mol_kg = weight / (GAS_CONSTANT * temperature * rho_f)
    enthalpy = float(uw_blocks.mean() / weight - temperature) if weight > 0 else float("nan")
    return WidomResult(
        weight=weight,
        std_err=std_err,
        henry=float(henry),
        henry_std_err=float(std_err * v_uc / kt),
        henry_mol_per_kg_pa=float(henry_mol_kg),
        enthalpy=enthalpy,
        isosteric_heat_kj_mol=float(-enthalpy * GAS_CONSTANT / 1000.0),
        n_insertions=int(n_blocks * n_chunks * chunk_size),
        block_weights=w_blocks,
        unit_cells=info["unit_cells"],
    )


def henry_from_weight(weight: float, volume_unit_cell: float, temperature: float) -> float:
    r""":math:`K_H = \langle W\rangle V_{\rm uc}/(k_B T)` in molecules per unit cell per Pa (V in Å^3)."""
    return weight * volume_unit_cell * ANGSTROM3 / (K_BOLTZMANN * temperature)
