r"""Charge equilibration (QEq, Rappé & Goddard 1991) for periodic frameworks, in JAX.

Rappé & Goddard (1991, *J. Phys. Chem.* 95, 3358) write the energy of a set of
atomic charges :math:`q` as

.. math::

    E(q) = \sum_i \Big(\chi_i q_i + \tfrac12 J_i q_i^2\Big)
         + \tfrac12 \sum_{i \ne j} q_i q_j J_{ij},

:math:`\chi_i` the electronegativity and :math:`J_i` the idempotential (hardness) of
element :math:`i` (``data/qeq.json``: the paper's Table I, the other elements from UFF,
Rappé et al. 1992, Table 1; transcribed from Open Babel's ``data/qeq.txt``), and
minimise it subject to :math:`\sum_i q_i = Q`. With the Lagrange multiplier
:math:`\mu` (the equalised electronegativity, :math:`\partial E/\partial q_i = \mu`)
this is one linear system,

.. math::

    \begin{pmatrix} H & 1 \\ 1^T & 0 \end{pmatrix}
    \begin{pmatrix} q \\ -\mu \end{pmatrix} =
    \begin{pmatrix} -\chi \\ Q \end{pmatrix},\qquad
    H = \operatorname{diag}(J) + C A,

solved exactly (``jnp.linalg.solve``, float64). In a periodic cell :math:`A` is the
Ewald Coulomb matrix, :math:`\tfrac12 q^T A q = U/C` with :math:`U` the energy of
:func:`thermo.materials.ewald_energy` (real + reciprocal + self + net-charge terms,
tin-foil boundary; each charge is its own molecule), so atom :math:`i` also interacts
with its own periodic images; :math:`C` = 14.399645 eV·Å (CODATA 2018, as
:data:`thermo.materials.COULOMB_CONSTANT_CODATA` but in eV).

Two interactions :math:`J_{ij}(r)` are implemented:

* ``shielding="gaussian"`` (default): each charge is a spherical Gaussian
  :math:`\rho_i \propto e^{-a_i r^2}` whose Coulomb self-energy is :math:`J_i`,
  :math:`C\sqrt{2 a_i/\pi} = J_i`, so that :math:`J_{ij}(r) = C\,\operatorname{erf}(
  \beta_{ij} r)/r`, :math:`\beta_{ij} = \sqrt{a_i a_j/(a_i + a_j)}`, tends to the
  hardness at contact (the role of the Slater orbitals of Rappé & Goddard;
  the Gaussian form is the one of Open Babel's ``qeq.cpp``, whose "radius" is
  :math:`1/\sqrt{a_i}`). In the Ewald sum this subtracts
  :math:`\sum_n \operatorname{erfc}(\beta_{ij}|r_{ij}+n|)/|r_{ij}+n|` in real space.
  Rappé & Goddard's charge-dependent hydrogen hardness is not used.
* ``shielding="none"``: point charges, :math:`J_{ij} = C/r_{ij}`. This energy is
  unbounded below when bonded atoms are close (C–H at 1.09 Å: :math:`J_C + J_H <
  2C/r`), so the constrained Hessian is checked and a ``ValueError`` names the
  problem.

Limits of the model: QEq with these neutral-atom parameters has no bound on a charge
(Rappé & Goddard's hydrogen treatment and charge limits are not implemented), and in
ionic metal–oxygen clusters the Coulomb attraction nearly cancels :math:`\sum J_i`,
so metal charges can exceed the formal oxidation state by far. The solution is the
exact minimiser of the model; whether the charges are usable for adsorption is a
question about the model (EQeq, Wilmer, Kim & Snurr 2012, *J. Phys. Chem. Lett.* 3,
2506, was built for MOFs for this reason).

**EQeq** (:func:`eqeq_charges`; Wilmer, Kim & Snurr 2012, *J. Phys. Chem. Lett.* 3,
2506) keeps the energy form but expands each atom's energy about a *charge centre*
:math:`c_i` (its common oxidation state in MOFs, 0 for non-metals) with measured
ionisation energies :math:`H_k` (:math:`H_0` the electron affinity; ``data/eqeq.json``,
NIST values, its header for the sources):

.. math::

    E_i(q) = E_i(c_i) + \chi_i^*(q - c_i) + \tfrac12 J_i (q - c_i)^2,\qquad
    \chi_i^* = \tfrac12(H_{c_i+1} + H_{c_i}),\quad J_i = H_{c_i+1} - H_{c_i},

the parabola through :math:`E_i(c_i - 1), E_i(c_i), E_i(c_i + 1)`; so
:math:`\chi_i = \chi_i^* - c_i J_i` in the QEq form above (hydrogen's electron
affinity is EQeq's fitted :math:`-2` eV, :data:`EQEQ_HYDROGEN_AFFINITY`). The pair
interaction is the screened Coulomb kernel with an orbital-overlap term,

.. math::

    J_{ij}(R) = \frac{\lambda}{2}\, C\Big[\frac1R + e^{-a_{ij}^2R^2}\big(2a_{ij} -
    a_{ij}^2 R - \frac1R\big)\Big],\qquad a_{ij} = \frac{\sqrt{J_iJ_j}}{C},

summed over the periodic images (the :math:`1/R` part by Ewald, :math:`A` above; the
overlap part, which decays as a Gaussian, directly), so :math:`H = \operatorname{diag}(J)
+ \tfrac{\lambda}{2}C(A + O)`. :math:`\lambda = 1.2` (:data:`EQEQ_LAMBDA`) is the
paper's dielectric screening parameter; with the factor :math:`\tfrac12` of the
paper's reference implementation (Open Babel's ``eqeq.cpp``, P. Fuller 2013, the
WilmerLab EQeq code) the Coulomb interaction is divided by an effective dielectric
constant :math:`2/\lambda = 1.67`. At contact the kernel tends to
:math:`\lambda\sqrt{J_iJ_j}`, so the energy stays bounded. The large :math:`J_i` of
an ion about its oxidation state (Zn²⁺: :math:`H_3 - H_2` = 21.8 eV) is what keeps the
metal charges near and below :math:`c_i`.

Ewald parameters come from a requested relative accuracy with the DL_POLY rule of
:func:`thermo.materials.ewald_parameters`; the real-space sum runs over explicit
lattice translations, so the cutoff need not fit in the cell.
"""

from __future__ import annotations

import functools
import json
import math
import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erfc

from .cells import replicas_for_cutoff
from .ewald import EwaldKVectors, ewald_parameters
from .structures import DATA_DIR

__all__ = [
    "COULOMB_CONSTANT_EV",
    "EQEQ_HYDROGEN_AFFINITY",
    "EQEQ_LAMBDA",
    "ChargeModelError",
    "QEqResult",
    "eqeq_charges",
    "eqeq_parameters",
    "ewald_coulomb_matrix",
    "qeq_charges",
    "qeq_parameters",
]


class ChargeModelError(ValueError):
    """The charge model cannot charge this structure: an element it has no parameters for,
    or an energy with no minimum at fixed total charge (unbounded below). A caller that
    screens many frameworks can leave such a one uncharged; any other ``ValueError`` is a
    bad input."""


#: :math:`e/(4\pi\varepsilon_0\,\text{Å})` in V, i.e. the Coulomb constant in eV·Å
#: (CODATA 2018: e exact, :math:`\varepsilon_0` = 8.8541878128e-12 F/m).
COULOMB_CONSTANT_EV = 1.602176634e-19 / (4.0 * math.pi * 8.8541878128e-12 * 1e-10)

#: EQeq's dielectric screening parameter :math:`\lambda` (Wilmer, Kim & Snurr 2012).
EQEQ_LAMBDA = 1.2

#: EQeq's fitted electron affinity of hydrogen, eV (Wilmer, Kim & Snurr 2012; its
#: reference code's default ``hI0``), used instead of the measured 0.754 eV.
EQEQ_HYDROGEN_AFFINITY = -2.0


@functools.lru_cache(maxsize=1)
def qeq_parameters() -> dict:
    r"""``{element: (chi, J)}`` in eV (``data/qeq.json``; module docstring for sources)."""
    with open(os.path.join(DATA_DIR, "qeq.json")) as f:
        raw = json.load(f)
    return {el: (float(c), float(j)) for el, (c, j) in raw["elements"].items()}


@functools.lru_cache(maxsize=1)
def eqeq_parameters() -> dict:
    r"""``{element: (c, H_c, H_{c+1})}``: EQeq charge centre (e) and ionisation energies (eV).

    ``data/eqeq.json`` (its header: NIST ionisation energies and electron affinities,
    the EQeq distribution's charge centres); :math:`H_0` is the electron affinity,
    hydrogen's the measured 0.754 eV (:func:`eqeq_charges` applies EQeq's fit).
    """
    with open(os.path.join(DATA_DIR, "eqeq.json")) as f:
        raw = json.load(f)
    return {el: (int(c), float(h0), float(h1)) for el, (c, h0, h1) in raw["elements"].items()}


class QEqResult(NamedTuple):
    """Result of :func:`qeq_charges`.

    Attributes:
        charges: ``(n,)`` e, summing to the requested total.
        electronegativity: the equalised :math:`\\mu = \\partial E/\\partial q_i`, eV.
        energy: :math:`E(q)` at the minimum, eV.
        alpha: Ewald splitting, Å⁻¹; kmax: the k-cube; r_cut: real-space cutoff, Å.
    """

    charges: np.ndarray
    electronegativity: float
    energy: float
    alpha: float
    kmax: tuple[int, int, int]
    r_cut: float


def _shifts(cell_rows: np.ndarray, r_real: float) -> np.ndarray:
    """Integer translations covering every image within ``r_real`` of a wrapped pair."""
    widths = 1.0 / np.linalg.norm(np.linalg.inv(cell_rows), axis=0)
    m = [int(math.ceil(r_real / w)) + 1 for w in widths]
    grid = np.meshgrid(*[np.arange(-k, k + 1) for k in m], indexing="ij")
    return np.stack(grid, -1).reshape(-1, 3).astype(np.float64)


def _image_sum(frac, cell, shifts, pair_term):
    """:math:`\\sum_{\\mathbf n} f(r_{ij,\\mathbf n})` over the image ``shifts`` (a scan):
    ``pair_term(r2, self_term)`` maps the ``(n, n)`` squared image distances and the mask of
    the :math:`i = j, \\mathbf n = 0` self terms to the ``(n, n)`` summand."""
    n = frac.shape[0]
    d0 = frac[:, None, :] - frac[None, :, :]
    d0 = d0 - jnp.round(d0)
    eye = jnp.eye(n, dtype=bool)

    def body(acc, s):
        d = (d0 + s[None, None, :]) @ cell
        r2 = jnp.sum(d * d, axis=-1)
        return acc + pair_term(r2, eye & jnp.all(s == 0)), None

    out, _ = jax.lax.scan(body, jnp.zeros((n, n)), shifts)
    return out


@functools.partial(jax.jit, static_argnames=("gaussian",))
def _real_space_matrix(frac, cell, shifts, alpha, beta, r_cut, r_shield, *, gaussian):
    """:math:`\\sum_n' [\\operatorname{erfc}(\\alpha r) - \\operatorname{erfc}(\\beta r)]/r`."""

    def term(r2, self_term):
        r = jnp.sqrt(jnp.where(self_term, 1.0, r2))
        val = jnp.where((r < r_cut) & ~self_term, erfc(alpha * r) / r, 0.0)
        if gaussian:
            val = val - jnp.where((r < r_shield) & ~self_term, erfc(beta * r) / r, 0.0)
        return val

    return _image_sum(frac, cell, shifts, term)


@jax.jit
def _reciprocal_matrix(kvectors, weights, positions):
    phase = kvectors @ positions.T  # (K, n)
    c, s = jnp.cos(phase), jnp.sin(phase)
    return 2.0 * ((c.T * weights[None, :]) @ c + (s.T * weights[None, :]) @ s)


def _check_cell_positions(positions, cell):
    p = np.asarray(positions, dtype=np.float64)
    c = np.asarray(cell, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or p.shape[0] < 1:
        raise ValueError(f"positions must have shape (n, 3) with n >= 1, got {p.shape}")
    if c.shape != (3, 3) or not np.linalg.det(c) > 0:
        raise ValueError("cell must be a (3, 3) right-handed matrix of cell vectors as rows")
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(c))):
        raise ValueError("positions and cell must be finite")
    return p, c


def _auto_ewald(cell_rows, r_cut, precision):
    """DL_POLY :math:`(\\alpha, k_{\\max})` for ``r_cut``, via the smallest fitting supercell."""
    reps = np.asarray(replicas_for_cutoff(cell_rows.T, r_cut))
    alpha, kmax_super = ewald_parameters(cell_rows * reps[:, None], r_cut, precision)
    # unit-cell index n is supercell index n * reps: |n| <= kmax_super / reps
    kmax = tuple(max(1, int(math.ceil(k / r))) for k, r in zip(kmax_super, reps, strict=True))
    return alpha, kmax


def _gaussian_exponents(hardness: np.ndarray) -> np.ndarray:
    """:math:`a_i = (\\pi/2)(J_i/C)^2`, so that :math:`C\\sqrt{2a_i/\\pi} = J_i` (Å⁻²)."""
    return 0.5 * math.pi * (hardness / COULOMB_CONSTANT_EV) ** 2


def _shield_cutoff(beta_min: float, precision: float) -> float:
    """Smallest r with erfc(beta_min r) <= precision (bisection)."""
    lo, hi = 0.0, 1.0
    while math.erfc(beta_min * hi) > precision:
        hi *= 2.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if math.erfc(beta_min * mid) > precision else (lo, mid)
    return hi


def ewald_coulomb_matrix(
    positions,
    cell,
    *,
    alpha: float,
    kmax,
    r_cut: float,
    exponents=None,
    precision: float = 1e-12,
) -> np.ndarray:
    r"""Periodic Coulomb matrix :math:`A` (Å⁻¹) with :math:`U = \tfrac{C}{2} q^T A q`.

    .. math::

        A_{ij} = \sum_n{}' \frac{\operatorname{erfc}(\alpha r_{ij,n})}{r_{ij,n}}
            + \frac{4\pi}{V}\sum_{k\ne0} \frac{e^{-k^2/4\alpha^2}}{k^2}\cos(k\cdot r_{ij})
            - \frac{2\alpha}{\sqrt\pi}\delta_{ij} - \frac{\pi}{V\alpha^2},

    :math:`r_{ij,n} = |r_i - r_j + n|` over lattice translations :math:`n` within
    ``r_cut`` (the prime drops :math:`i = j, n = 0`), the k-sum over the cube
    :math:`|n_a| \le k_{\max,a}`; the last term is the neutralising background, so
    :math:`\tfrac{C}{2}q^TAq` is :func:`thermo.materials.ewald_energy` for any
    :math:`\sum q`. With Gaussian ``exponents`` :math:`a_i` (Å⁻²) the real-space
    sum also subtracts :math:`\operatorname{erfc}(\beta_{ij} r)/r`,
    :math:`\beta_{ij} = \sqrt{a_i a_j/(a_i+a_j)}` (Gaussian charges; module docstring),
    out to where :math:`\operatorname{erfc}(\beta r) <` ``precision``.

    Args:
        positions: ``(n, 3)`` Å; cell: ``(3, 3)`` cell vectors as rows, Å.
        alpha: Å⁻¹; kmax: three integers; r_cut: real-space cutoff, Å (any size).
        exponents: optional ``(n,)`` Gaussian exponents, Å⁻².
        precision: truncation of the Gaussian correction.

    Returns:
        ``(n, n)`` symmetric matrix, Å⁻¹.
    """
    p, c = _check_cell_positions(positions, cell)
    if not (alpha > 0 and r_cut > 0):
        raise ValueError(f"alpha and r_cut must be positive, got {alpha}, {r_cut}")
    kv = EwaldKVectors(c, alpha=alpha, kmax=kmax)
    gaussian = exponents is not None
    if gaussian:
        a = np.asarray(exponents, dtype=np.float64).reshape(-1)
        if a.shape != (p.shape[0],) or not np.all(a > 0):
            raise ValueError(f"exponents must be ({p.shape[0]},) and positive")
        beta = np.sqrt(a[:, None] * a[None, :] / (a[:, None] + a[None, :]))
        r_shield = _shield_cutoff(float(beta.min()), precision)
    else:
        beta, r_shield = np.ones((p.shape[0], p.shape[0])), 0.0
    r_real = max(float(r_cut), r_shield)
    frac = p @ np.linalg.inv(c)
    real = _real_space_matrix(
        jnp.asarray(frac % 1.0),
        jnp.asarray(c),
        jnp.asarray(_shifts(c, r_real)),
        float(alpha),
        jnp.asarray(beta),
        float(r_cut),
        float(r_shield),
        gaussian=gaussian,
    )
    rec = _reciprocal_matrix(kv.kvectors, kv.weights, jnp.asarray(p))
    n = p.shape[0]
    a_mat = real + rec - 2.0 * alpha / math.sqrt(math.pi) * jnp.eye(n)
    a_mat = a_mat - math.pi / (kv.volume * alpha**2)
    return np.asarray(0.5 * (a_mat + a_mat.T))


@jax.jit
def _solve_qeq(hessian, chi, total_charge, basis):
    n = chi.shape[0]
    kkt = jnp.block([[hessian, jnp.ones((n, 1))], [jnp.ones((1, n)), jnp.zeros((1, 1))]])
    rhs = jnp.concatenate([-chi, total_charge[None]])
    sol = jnp.linalg.solve(kkt, rhs)
    q, mu = sol[:n], -sol[n]
    energy = chi @ q + 0.5 * q @ hessian @ q
    curvature = jnp.linalg.eigvalsh(basis.T @ hessian @ basis)
    return q, mu, energy, jnp.min(curvature) if n > 1 else jnp.inf


def _neutral_basis(n: int) -> np.ndarray:
    """Orthonormal ``(n, n - 1)`` basis of the charge-conserving subspace."""
    if n == 1:
        return np.zeros((1, 1))
    m = np.eye(n)[:, : n - 1] - 1.0 / n
    q, _ = np.linalg.qr(np.concatenate([np.ones((n, 1)) / math.sqrt(n), m], axis=1))
    return q[:, 1:]


def _check_inputs(symbols, positions, cell, total_charge, table, r_cut, alpha, kmax, model):
    symbols = list(symbols)
    p, c = _check_cell_positions(positions, cell)
    if len(symbols) != p.shape[0]:
        raise ValueError(f"{len(symbols)} symbols for {p.shape[0]} positions")
    unknown = sorted(set(symbols) - set(table))
    if unknown:
        raise ChargeModelError(f"no {model} for elements {unknown}")
    if not math.isfinite(total_charge):
        raise ValueError(f"total_charge must be finite, got {total_charge}")
    if not r_cut > 0:
        raise ValueError(f"r_cut must be positive, got {r_cut}")
    if (alpha is None) != (kmax is None):
        raise ValueError("give both alpha and kmax, or neither")
    return symbols, p, c


def _equilibrate(p, c, total_charge, chi, hessian, alpha, kmax, r_cut, what) -> QEqResult:
    """Solve the KKT system of the charge energy; fail fast if it is unbounded below."""
    q, mu, energy, curvature = _solve_qeq(
        jnp.asarray(hessian),
        jnp.asarray(chi),
        jnp.asarray(float(total_charge)),
        jnp.asarray(_neutral_basis(p.shape[0])),
    )
    if not float(curvature) > 0:
        raise ChargeModelError(
            f"QEq energy is unbounded below at fixed total charge (smallest constrained "
            f"curvature {float(curvature):.3g} eV); {what}"
        )
    return QEqResult(
        charges=np.asarray(q),
        electronegativity=float(mu),
        energy=float(energy),
        alpha=float(alpha),
        kmax=tuple(int(k) for k in kmax),
        r_cut=float(r_cut),
    )


def qeq_charges(
    symbols,
    positions,
    cell,
    total_charge: float = 0.0,
    *,
    shielding: str = "gaussian",
    precision: float = 1e-10,
    r_cut: float = 12.0,
    alpha: float | None = None,
    kmax=None,
    parameters: dict | None = None,
) -> QEqResult:
    r"""QEq charges of a periodic structure (module docstring for the equations).

    Args:
        symbols: ``n`` element symbols.
        positions: ``(n, 3)`` Å. cell: ``(3, 3)`` cell vectors as rows, Å (an
            ``ase.Atoms``' ``get_positions()`` and ``cell.array``).
        total_charge: :math:`Q`, e (0 for a framework).
        shielding: ``"gaussian"`` (Gaussian-orbital :math:`J_{ij}`) or ``"none"``
            (point charges).
        precision: relative Ewald accuracy that sets :math:`(\alpha, k_{\max})`
            (:func:`thermo.materials.ewald_parameters`) unless both are given.
        r_cut: real-space cutoff, Å (explicit images, so it may exceed the cell).
        alpha, kmax: explicit Ewald parameters (Å⁻¹, three integers).
        parameters: ``{element: (chi, J)}`` in eV, default :func:`qeq_parameters`.

    Returns:
        :class:`QEqResult`. Raises ``ValueError`` on unknown elements, a
        non-finite total charge, or an energy that is unbounded below on
        :math:`\sum q = Q` (the constrained Hessian is not positive definite).
    """
    table = qeq_parameters() if parameters is None else parameters
    symbols, p, c = _check_inputs(
        symbols, positions, cell, total_charge, table, r_cut, alpha, kmax, "QEq parameters (chi, J)"
    )
    if shielding not in ("gaussian", "none"):
        raise ValueError(f"shielding must be 'gaussian' or 'none', got {shielding!r}")
    if alpha is None:
        alpha, kmax = _auto_ewald(c, float(r_cut), precision)
    chi = np.array([table[s][0] for s in symbols], dtype=np.float64)
    hard = np.array([table[s][1] for s in symbols], dtype=np.float64)
    if not np.all(hard > 0):
        raise ValueError("QEq hardnesses J must be positive")
    exponents = _gaussian_exponents(hard) if shielding == "gaussian" else None
    a_mat = ewald_coulomb_matrix(
        p, c, alpha=alpha, kmax=kmax, r_cut=r_cut, exponents=exponents, precision=precision
    )
    hessian = np.diag(hard) + COULOMB_CONSTANT_EV * a_mat
    return _equilibrate(
        p,
        c,
        total_charge,
        chi,
        hessian,
        alpha,
        kmax,
        r_cut,
        f"with shielding={shielding!r} the hardnesses cannot hold the Coulomb attraction "
        "of close atoms (use shielding='gaussian' or check the structure for overlapping "
        "atoms)",
    )


@jax.jit
def _overlap_matrix(frac, cell, shifts, a, r_max):
    """:math:`\\sum_n' e^{-a_{ij}^2R^2}(2a_{ij} - a_{ij}^2R - 1/R)`, images within ``r_max``."""

    def term(r2, self_term):
        skip = self_term | (r2 >= r_max * r_max)
        r = jnp.sqrt(jnp.where(skip, 1.0, r2))
        val = jnp.exp(-a * a * r * r) * (2.0 * a - a * a * r - 1.0 / r)
        return jnp.where(skip, 0.0, val)

    return _image_sum(frac, cell, shifts, term)


def _overlap_cutoff(a_min: float, precision: float) -> float:
    """Smallest r beyond which :math:`e^{-a^2r^2}(2a + a^2 r + 1/r) \\le` ``precision``."""

    def bound(r):
        return math.exp(-a_min * a_min * r * r) * (2.0 * a_min + a_min * a_min * r + 1.0 / r)

    lo, hi = 1e-3, 1.0
    while bound(hi) > precision:
        hi *= 2.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if bound(mid) > precision else (lo, mid)
    return hi


def eqeq_charges(
    symbols,
    positions,
    cell,
    total_charge: float = 0.0,
    *,
    screening: float = EQEQ_LAMBDA,
    hydrogen_affinity: float = EQEQ_HYDROGEN_AFFINITY,
    precision: float = 1e-10,
    r_cut: float = 12.0,
    alpha: float | None = None,
    kmax=None,
    parameters: dict | None = None,
) -> QEqResult:
    r"""EQeq charges of a periodic structure (Wilmer, Kim & Snurr 2012; module docstring).

    Minimises :math:`E(q) = \sum_i(\chi_i q_i + \tfrac12 J_i q_i^2) + \tfrac12
    \sum_{i\ne j} q_iq_j J_{ij}` at :math:`\sum_i q_i = Q`, with
    :math:`J_i = H_{c_i+1} - H_{c_i}`, :math:`\chi_i = \tfrac12(H_{c_i+1} + H_{c_i}) -
    c_iJ_i` and the periodic :math:`J_{ij}` of the module docstring (Ewald for the
    :math:`\tfrac{\lambda}{2}C/R` part). One linear solve, float64.

    Args:
        symbols: ``n`` element symbols. positions: ``(n, 3)`` Å. cell: ``(3, 3)`` cell
            vectors as rows, Å.
        total_charge: :math:`Q`, e (0 for a framework).
        screening: :math:`\lambda` (default 1.2, the paper's); the Coulomb kernel is
            :math:`\tfrac{\lambda}{2}C/R`.
        hydrogen_affinity: :math:`H_0` of hydrogen, eV (default EQeq's fitted −2.0;
            the measured value is 0.754).
        precision: relative Ewald accuracy and truncation of the overlap sum.
        r_cut: real-space cutoff, Å; alpha, kmax: explicit Ewald parameters.
        parameters: ``{element: (c, H_c, H_{c+1})}``, default :func:`eqeq_parameters`.

    Returns:
        :class:`QEqResult`. Raises ``ValueError`` on elements without EQeq data, a
        non-positive ``screening`` or hardness, a non-finite total charge, or an
        energy unbounded below at fixed total charge.
    """
    table = dict(eqeq_parameters() if parameters is None else parameters)
    symbols, p, c = _check_inputs(
        symbols,
        positions,
        cell,
        total_charge,
        table,
        r_cut,
        alpha,
        kmax,
        "EQeq parameters (c, H_c, H_c+1)",
    )
    if not (math.isfinite(screening) and screening > 0):
        raise ValueError(f"screening (lambda) must be positive, got {screening}")
    if not math.isfinite(hydrogen_affinity):
        raise ValueError(f"hydrogen_affinity must be finite, got {hydrogen_affinity}")
    if "H" in table:
        centre_h, _, h1 = table["H"]
        table["H"] = (centre_h, float(hydrogen_affinity) if centre_h == 0 else table["H"][1], h1)
    if alpha is None:
        alpha, kmax = _auto_ewald(c, float(r_cut), precision)
    centre = np.array([table[s][0] for s in symbols], dtype=np.float64)
    h_c = np.array([table[s][1] for s in symbols], dtype=np.float64)
    h_c1 = np.array([table[s][2] for s in symbols], dtype=np.float64)
    hard = h_c1 - h_c
    if not np.all(hard > 0):
        bad = sorted({s for s, j in zip(symbols, hard, strict=True) if not j > 0})
        raise ValueError(f"EQeq hardness H_c+1 - H_c must be positive; not for {bad}")
    chi = 0.5 * (h_c1 + h_c) - centre * hard
    a = np.sqrt(hard[:, None] * hard[None, :]) / COULOMB_CONSTANT_EV
    r_ov = _overlap_cutoff(float(a.min()), precision)
    frac = jnp.asarray((p @ np.linalg.inv(c)) % 1.0)
    overlap = _overlap_matrix(
        frac, jnp.asarray(c), jnp.asarray(_shifts(c, r_ov)), jnp.asarray(a), float(r_ov)
    )
    a_mat = ewald_coulomb_matrix(p, c, alpha=alpha, kmax=kmax, r_cut=r_cut, precision=precision)
    kernel = 0.5 * float(screening) * COULOMB_CONSTANT_EV
    hessian = np.diag(hard) + kernel * (a_mat + np.asarray(0.5 * (overlap + overlap.T)))
    return _equilibrate(
        p,
        c,
        total_charge,
        chi,
        hessian,
        alpha,
        kmax,
        r_cut,
        "check the structure for overlapping atoms",
    )
