r"""Ewald summation for periodic point charges: frameworks and rigid multi-site molecules.

Conventions of this module: positions in Å as ``(n, 3)`` arrays, charges in units of
the elementary charge, ``cell`` the ``(3, 3)`` matrix whose **rows** are the cell
vectors (ASE's ``atoms.cell.array``; :mod:`thermo.materials.cells` uses columns, so
those helpers get ``cell.T``), energies in the units of ``coulomb_constant``
(default RASPA3's :math:`e^2/(4\pi\varepsilon_0 k_B\,\text{Å}) = 167101.0800` K·Å, so
kelvin; CODATA 2018 gives :data:`COULOMB_CONSTANT_CODATA` = 167100.9469 K·Å).

For :math:`N` charges :math:`q_i` at :math:`r_i` in a cell of volume :math:`V`, with
splitting parameter :math:`\alpha` (Ewald 1921; Frenkel & Smit, *Understanding
Molecular Simulation*, 2nd ed. 2002, sec. 12.1; Allen & Tildesley 2017, sec. 6.2),
the Coulomb energy with conducting ("tin-foil") boundary conditions is
:math:`U = U_{\rm real} + U_{\rm rec} + U_{\rm self} + U_{\rm excl} + U_{\rm net}`:

.. math::

    U_{\rm real} &= C \sum_{i<j,\ \text{not bonded}} q_i q_j
        \frac{\operatorname{erfc}(\alpha r_{ij})}{r_{ij}}\quad (r_{ij} < r_c,
        \text{minimum image}),\\
    U_{\rm rec} &= C\,\frac{2\pi}{V} \sum_{k \ne 0}
        \frac{e^{-k^2/4\alpha^2}}{k^2}\, |S(k)|^2,\qquad
        S(k) = \sum_j q_j e^{i k\cdot r_j},\quad k = 2\pi\, n B,\ |n_a| \le k_{\max,a},\\
    U_{\rm self} &= -C\,\frac{\alpha}{\sqrt\pi} \sum_i q_i^2,\qquad
    U_{\rm excl} = -C \sum_{i<j\ \text{same molecule}} q_i q_j
        \frac{\operatorname{erf}(\alpha r_{ij})}{r_{ij}},\\
    U_{\rm net} &= -C\,\frac{\pi Q^2}{2 V \alpha^2},\qquad Q = \sum_i q_i,

with :math:`B` the reciprocal cell (rows :math:`b_a`, :math:`a_a\cdot b_b=\delta_{ab}`),
the reciprocal sum over the full cube of integer vectors :math:`n` (evaluated over
one half with a factor 2, as :math:`|S(-k)| = |S(k)|`). :math:`U_{\rm excl}` removes
the Coulomb interaction inside each rigid molecule that the reciprocal sum adds; the
net-charge term is the energy of the uniform neutralising background that makes the
sum of a charged cell finite and independent of :math:`\alpha` (Hub, de Groot & van
der Spoel 2014, *J. Chem. Theory Comput.* 10, 381, eq. 3; Bogusz, Cheatham & Brooks
1998, *J. Chem. Phys.* 108, 7070).

:func:`ewald_fourier_energy` is RASPA3's ``ewaldFourier`` term (Dubbeldam et al.
2024, *J. Chem. Theory Comput.* 20, 10649; the code of iRASPA/RASPA3,
``Interactions::computeEwaldFourierEnergy``): the reciprocal sum of the molecule–
molecule and framework–molecule terms, :math:`|S_f + S_m|^2 - |S_f|^2`, plus the
molecules' self and exclusion terms, the framework–framework term being a constant
of a rigid framework. :func:`ewald_parameters` picks :math:`(\alpha, k_{\max})` from a
requested relative accuracy with the rule of DL_POLY (Smith, Forester & Todorov,
*DL_POLY Classic User Manual*, sec. 2.4.1, after Kolafa & Perram 1992, *Mol. Simul.*
9, 351) that RASPA also uses. With those automatic parameters RASPA3 does not sum the
whole cube but the integer sphere :math:`|n|^2 \le \max_a k_{\max,a}^2` inside it
(``ForceField::initializeEwaldParameters`` sets ``reciprocalIntegerCutOffSquared``);
:class:`EwaldKVectors` and :func:`kspace_mask` offer that set (``kspace="raspa"``, the
default of :func:`thermo.materials.gcmc_system`), while :func:`ewald_fourier_energy`
and the other functions here sum the cube, as RASPA3 does with explicit parameters
(its Ewald unit tests).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erf, erfc

from .cells import check_cutoff

__all__ = [
    "COULOMB_CONSTANT_CODATA",
    "COULOMB_CONSTANT_RASPA",
    "EwaldKVectors",
    "KSPACES",
    "ewald_energy",
    "ewald_fourier_energy",
    "ewald_kvectors",
    "ewald_parameters",
    "kspace_mask",
    "structure_factor",
]

#: RASPA3's value of :math:`e^2/(4\pi\varepsilon_0 k_B)` in K·Å (its ``units`` module).
COULOMB_CONSTANT_RASPA = 167101.0800
# CODATA 2018: e = 1.602176634e-19 C (exact), eps0 = 8.8541878128e-12 F/m,
# k_B = 1.380649e-23 J/K (exact); 1 Å = 1e-10 m.
COULOMB_CONSTANT_CODATA = 1.602176634e-19**2 / (
    4.0 * math.pi * 8.8541878128e-12 * 1e-10 * 1.380649e-23
)


def _as_cell(cell) -> np.ndarray:
    c = np.asarray(cell, dtype=np.float64)
    if c.shape != (3, 3):
        raise ValueError(f"cell must be a (3, 3) matrix of cell vectors as rows, got {c.shape}")
    if not np.all(np.isfinite(c)) or np.linalg.det(c) <= 0:
        raise ValueError("cell must be finite and right-handed (positive determinant)")
    return c


def _as_kmax(kmax) -> tuple[int, int, int]:
    k = np.asarray(kmax)
    if k.shape != (3,) or np.any(k < 0) or np.any(k != np.round(k)):
        raise ValueError(f"kmax must be three non-negative integers, got {kmax!r}")
    return tuple(int(x) for x in k)


#: The k-sets of :class:`EwaldKVectors` (``kspace``), all inside the cube
#: :math:`|n_a| \le k_{\max,a}`: ``"cube"`` the whole cube; ``"raspa"`` RASPA3's integer
#: sphere :math:`n_1^2+n_2^2+n_3^2 \le \max_a k_{\max,a}^2` (its
#: ``reciprocalIntegerCutOffSquared`` with automatic Ewald parameters); ``"sphere"`` the
#: physical sphere :math:`|k| \le k_c` inscribed in the cube,
#: :math:`k_c = \min_a 2\pi k_{\max,a}/|a_a|` over the axes with :math:`k_{\max,a} > 0`.
KSPACES = ("cube", "raspa", "sphere")


def _check_kspace(kspace) -> str:
    if not isinstance(kspace, str) or kspace not in KSPACES:
        raise ValueError(f"kspace must be one of {KSPACES}, got {kspace!r}")
    return kspace


def kspace_mask(n, cell, kmax, kspace: str) -> np.ndarray:
    r"""Which integer vectors ``n`` (``(..., 3)``, inside the cube) the k-set ``kspace`` keeps.

    Args:
        n: integer wave numbers, :math:`k = 2\pi\, n B`.
        cell: ``(3, 3)`` cell vectors as rows, Å.
        kmax: three integers, the cube's half-widths.
        kspace: one of :data:`KSPACES`.

    Returns:
        A boolean array of shape ``n.shape[:-1]``.
    """
    c = _as_cell(cell)
    km = _as_kmax(kmax)
    kspace = _check_kspace(kspace)
    n = np.asarray(n)
    inside = np.all(np.abs(n) <= np.asarray(km), axis=-1)
    if kspace == "cube":
        return inside
    if kspace == "raspa":
        return inside & (np.sum(n * n, axis=-1) <= max(km) ** 2)
    lengths = np.linalg.norm(c, axis=1)
    radii = [2.0 * np.pi * k / a for k, a in zip(km, lengths, strict=True) if k > 0]
    if not radii:
        return inside
    k = n @ (2.0 * np.pi * np.linalg.inv(c).T)
    # a relative margin keeps the vectors on the sphere (e.g. the axes' ends, orthorhombic)
    return inside & (np.sum(k * k, axis=-1) <= min(radii) ** 2 * (1.0 + 1e-12))


def _as_positions(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.size == 0:
        return np.zeros((0, 3))
    if a.ndim != 2 or a.shape[1] != 3:
        raise ValueError(f"{name} must have shape (n, 3), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")
    return a


def _as_charges(q, n: int, name: str) -> np.ndarray:
    a = np.asarray(q, dtype=np.float64).reshape(-1)
    if a.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {np.shape(q)}")
    return a


def ewald_parameters(cell, r_cut: float, precision: float = 1e-6) -> tuple[float, tuple]:
    r"""Ewald splitting :math:`\alpha` and k-cube :math:`k_{\max}` for a relative accuracy.

    The DL_POLY rule (DL_POLY Classic manual sec. 2.4.1; Kolafa & Perram 1992) that
    RASPA uses (``ForceField::initializeEwaldParameters``): with
    :math:`\epsilon = \min(|{\rm precision}|, 1/2)`,

    .. math::

        t = \sqrt{|\ln(\epsilon r_c)|},\quad
        \alpha = \frac{\sqrt{|\ln(\epsilon r_c t)|}}{r_c},\quad
        t_1 = \sqrt{-\ln\!\big(\epsilon r_c (2 t \alpha)^2\big)},\quad
        k_{\max,a} = \operatorname{rint}\!\Big(\frac14 + \frac{w_a \alpha t_1}{\pi}\Big),

    :math:`w_a` the perpendicular widths of the cell. The real-space cutoff is checked
    against the cell (:math:`r_c \le w_{\min}/2`).

    Args:
        cell: ``(3, 3)`` cell vectors as rows, Å.
        r_cut: real-space cutoff, Å.
        precision: requested relative accuracy (RASPA's default ``1e-6``).

    Returns:
        ``(alpha, kmax)``: :math:`\alpha` in Å⁻¹ and three integers.
    """
    c = _as_cell(cell)
    check_cutoff(c.T, r_cut)
    if not precision > 0:
        raise ValueError(f"precision must be positive, got {precision}")
    eps = min(abs(float(precision)), 0.5)
    rc = float(r_cut)
    tol = math.sqrt(abs(math.log(eps * rc)))
    alpha = math.sqrt(abs(math.log(eps * rc * tol))) / rc
    tol1 = math.sqrt(-math.log(eps * rc * (2.0 * tol * alpha) ** 2))
    widths = 1.0 / np.linalg.norm(np.linalg.inv(c), axis=0)  # rows of inv(c.T)
    kmax = tuple(int(np.rint(0.25 + w * alpha * tol1 / math.pi)) for w in widths)
    return alpha, kmax


class EwaldKVectors:
    r"""Half of a k-set with its Ewald weights, built once per cell, :math:`\alpha`, k-cube.

    The k-set is the cube :math:`|n_a| \le k_{\max,a}` (``kspace="cube"``, the default,
    the sum of :func:`ewald_fourier_energy`) or a sphere inside it (:data:`KSPACES`).

    Attributes:
        kvectors: ``(K, 3)`` wave vectors :math:`k = 2\pi n B` (Å⁻¹), one of each
            :math:`\pm k` pair, :math:`n \ne 0`.
        weights: ``(K,)`` :math:`2 \cdot \frac{2\pi}{V} e^{-k^2/4\alpha^2}/k^2` (the
            factor 2 counts :math:`-k`), Å⁻¹.
        alpha, kmax, kspace, volume: the parameters.
    """

    def __init__(self, cell, *, alpha: float, kmax, kspace: str = "cube"):
        c = _as_cell(cell)
        if not alpha > 0:
            raise ValueError(f"alpha must be positive, got {alpha}")
        km = _as_kmax(kmax)
        kspace = _check_kspace(kspace)
        grids = np.meshgrid(*[np.arange(-k, k + 1) for k in km], indexing="ij")
        n = np.stack(grids, -1).reshape(-1, 3)
        # keep the half with the first non-zero component positive
        first = np.where(n[:, 0] != 0, n[:, 0], np.where(n[:, 1] != 0, n[:, 1], n[:, 2]))
        n = n[(first > 0) & kspace_mask(n, c, km, kspace)]
        recip = 2.0 * np.pi * np.linalg.inv(c).T  # rows b_a with a_a . b_b = 2 pi delta
        k = n @ recip
        k2 = np.sum(k * k, axis=1)
        volume = float(np.linalg.det(c))
        self.kvectors = jnp.asarray(k)
        self.weights = jnp.asarray(2.0 * (2.0 * np.pi / volume) * np.exp(-k2 / (4 * alpha**2)) / k2)
        self.alpha = float(alpha)
        self.kmax = km
        self.kspace = kspace
        self.volume = volume


def ewald_kvectors(cell, *, alpha: float, kmax, kspace: str = "cube") -> EwaldKVectors:
    """Build :class:`EwaldKVectors` (see there)."""
    return EwaldKVectors(cell, alpha=alpha, kmax=kmax, kspace=kspace)


@jax.jit
def structure_factor(kvectors, positions, charges):
    r""":math:`S(k) = \sum_j q_j e^{i k\cdot r_j}` as ``(K, 2)`` (real, imaginary parts).

    Args:
        kvectors: ``(K, 3)`` Å⁻¹; positions ``(n, 3)`` Å; charges ``(n,)`` e.
    """
    phase = kvectors @ positions.T  # (K, n)
    return jnp.stack([jnp.cos(phase) @ charges, jnp.sin(phase) @ charges], axis=-1)


def _min_image(d, cell, inv_cell):
    frac = d @ inv_cell
    return (frac - jnp.round(frac)) @ cell


@jax.jit
def _self_exclusion(positions, charges, same, cell, inv_cell, alpha):
    """Self term plus intramolecular exclusion, without the Coulomb constant."""
    d = _min_image(positions[:, None, :] - positions[None, :, :], cell, inv_cell)
    r = jnp.sqrt(jnp.sum(d * d, axis=-1) + jnp.eye(positions.shape[0]))
    pair = charges[:, None] * charges[None, :] * erf(alpha * r) / r
    excl = 0.5 * jnp.sum(jnp.where(same, pair, 0.0))
    return -alpha / jnp.sqrt(jnp.pi) * jnp.sum(charges**2) - excl


@jax.jit
def _fourier_kernel(kvectors, weights, s_framework, positions, charges):
    s_mol = structure_factor(kvectors, positions, charges)
    total = s_framework + s_mol
    return jnp.sum(weights * (jnp.sum(total**2, -1) - jnp.sum(s_framework**2, -1)))


def _same_molecule(molecule_index, n: int) -> np.ndarray:
    m = np.asarray(molecule_index).reshape(-1)
    if m.shape != (n,):
        raise ValueError(f"molecule_index must have shape ({n},), got {np.shape(molecule_index)}")
    return (m[:, None] == m[None, :]) & ~np.eye(n, dtype=bool)


def ewald_fourier_energy(
    framework_positions,
    framework_charges,
    positions,
    charges,
    molecule_index,
    cell,
    *,
    alpha: float,
    kmax,
    coulomb_constant: float = COULOMB_CONSTANT_RASPA,
) -> float:
    r"""RASPA3's ``ewaldFourier`` energy of rigid molecules in a rigid framework.

    .. math::

        U = C\Big[\frac{2\pi}{V}\sum_{k\ne 0,\,|n_a|\le k_{\max,a}}
            \frac{e^{-k^2/4\alpha^2}}{k^2}\big(|S_f(k)+S_m(k)|^2 - |S_f(k)|^2\big)
            - \frac{\alpha}{\sqrt\pi}\sum_{i\in m} q_i^2
            - \sum_{i<j\ \text{same molecule}} q_i q_j \frac{\operatorname{erf}(\alpha r_{ij})}{r_{ij}}\Big]

    (module docstring; framework–framework reciprocal energy left out as a constant).
    No net-charge term: use :func:`ewald_energy` for charged systems.

    Args:
        framework_positions: ``(n_f, 3)`` Å (``n_f`` may be 0).
        framework_charges: ``(n_f,)`` e.
        positions: ``(n, 3)`` adsorbate atom positions, Å.
        charges: ``(n,)`` e.
        molecule_index: ``(n,)`` molecule label of each adsorbate atom.
        cell: ``(3, 3)`` cell vectors as rows, Å.
        alpha: splitting parameter, Å⁻¹.
        kmax: three integers, the k-cube half-widths.
        coulomb_constant: :math:`C` (default RASPA3's 167101.0800 K·Å).

    Returns:
        The energy in units of ``coulomb_constant`` / Å (K by default).
    """
    c = _as_cell(cell)
    fp = _as_positions(framework_positions, "framework_positions")
    fq = _as_charges(framework_charges, fp.shape[0], "framework_charges")
    p = _as_positions(positions, "positions")
    q = _as_charges(charges, p.shape[0], "charges")
    same = _same_molecule(molecule_index, p.shape[0])
    kv = EwaldKVectors(c, alpha=alpha, kmax=kmax)
    s_f = structure_factor(kv.kvectors, jnp.asarray(fp), jnp.asarray(fq))
    rec = _fourier_kernel(kv.kvectors, kv.weights, s_f, jnp.asarray(p), jnp.asarray(q))
    cj = jnp.asarray(c)
    se = _self_exclusion(
        jnp.asarray(p), jnp.asarray(q), jnp.asarray(same), cj, jnp.linalg.inv(cj), float(alpha)
    )
    return float(coulomb_constant * (rec + se))


@jax.jit
def _real_space(positions, charges, same, cell, inv_cell, alpha, r_cut):
    n = positions.shape[0]
    d = _min_image(positions[:, None, :] - positions[None, :, :], cell, inv_cell)
    r = jnp.sqrt(jnp.sum(d * d, axis=-1) + jnp.eye(n))
    keep = (r < r_cut) & ~same & ~jnp.eye(n, dtype=bool)
    pair = charges[:, None] * charges[None, :] * erfc(alpha * r) / r
    return 0.5 * jnp.sum(jnp.where(keep, pair, 0.0))


def ewald_energy(
    positions,
    charges,
    cell,
    *,
    alpha: float,
    kmax,
    r_cut: float,
    molecule_index=None,
    coulomb_constant: float = COULOMB_CONSTANT_RASPA,
    return_terms: bool = False,
):
    r"""Total Ewald Coulomb energy of all charges in a periodic cell (module docstring).

    :math:`U_{\rm real} + U_{\rm rec} + U_{\rm self} + U_{\rm excl} + U_{\rm net}`, the
    real-space sum by the minimum image with :math:`r_c \le w_{\min}/2` checked. Pairs
    with the same ``molecule_index`` (a rigid molecule) do not interact; ``None``
    makes every charge its own molecule.

    Args:
        positions: ``(n, 3)`` Å; charges: ``(n,)`` e; cell: ``(3, 3)`` rows, Å.
        alpha: Å⁻¹; kmax: three integers; r_cut: real-space cutoff, Å.
        molecule_index: optional ``(n,)`` labels.
        coulomb_constant: :math:`C` (default RASPA3's, so K).
        return_terms: also return the dict of the five terms.

    Returns:
        The energy (units of ``coulomb_constant``/Å), or ``(energy, terms)``.
    """
    c = _as_cell(cell)
    check_cutoff(c.T, r_cut)
    p = _as_positions(positions, "positions")
    q = _as_charges(charges, p.shape[0], "charges")
    mol = np.arange(p.shape[0]) if molecule_index is None else molecule_index
    same = jnp.asarray(_same_molecule(mol, p.shape[0]))
    kv = EwaldKVectors(c, alpha=alpha, kmax=kmax)
    pj, qj, cj = jnp.asarray(p), jnp.asarray(q), jnp.asarray(c)
    inv = jnp.linalg.inv(cj)
    s = structure_factor(kv.kvectors, pj, qj)
    zero = jnp.zeros_like(s)
    terms = {
        "real": _real_space(pj, qj, same, cj, inv, float(alpha), float(r_cut)),
        "reciprocal": _fourier_kernel(kv.kvectors, kv.weights, zero, pj, qj),
        "self": -float(alpha) / math.sqrt(math.pi) * jnp.sum(qj**2),
        "exclusion": _self_exclusion(pj, qj, same, cj, inv, float(alpha))
        + float(alpha) / math.sqrt(math.pi) * jnp.sum(qj**2),
        "net_charge": -math.pi * float(np.sum(q)) ** 2 / (2.0 * kv.volume * float(alpha) ** 2),
    }
    terms = {k: float(coulomb_constant * v) for k, v in terms.items()}
    total = sum(terms.values())
    return (total, terms) if return_terms else total
