r"""CoRE MOF frameworks for screening: descriptors, batch loading, QEq charges, a default set.

The CoRE MOF 2019 database (Chung et al. 2019, *J. Chem. Eng. Data* 64, 5985; PyPI
``core-mof``, MIT / CC BY) ships 12,020 computation-ready structures per dataset
(``"2019-ASR"``, all solvent removed; ``"2019-FSR"``, free solvent removed; ``"2014"``)
as P1 CIFs in one ``.tar.xz``, with Zeo++ pore descriptors (Willems et al. 2012,
*Microporous Mesoporous Mater.* 149, 134) in a CSV: ``LCD`` (largest cavity
diameter, Å), ``PLD`` (pore limiting diameter, Å), ``LFPD`` (largest free sphere
along a free path, Å), surface areas and void fractions.

Reading one CIF from the package decompresses the archive (a few seconds), so
:func:`load_core_mofs` and :func:`core_mof_atom_counts` read many in one pass.
Framework LJ parameters are UFF (:func:`thermo.materials.uff_parameters`, all
elements H–Lr), framework charges EQeq by default (Wilmer, Kim & Snurr 2012) or QEq
(:func:`framework_charges`), and :func:`henry_coefficients` gives a framework's Henry
coefficients for several adsorbates (Widom insertion with Ewald electrostatics).
"""

from __future__ import annotations

import functools
import io
import re
import tarfile
import warnings
from importlib import resources

import ase
import ase.io
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax.scipy.special import erfc

from .._checks import check_count, check_positive
from .adsorption import (
    AMU_KG,
    ANGSTROM3,
    GAS_CONSTANT,
    K_BOLTZMANN,
    WidomResult,
    _ewald_kvectors,
    _fourier_grid,
    _mixed_parameters,
    _random_rotation,
)
from .cells import box_matrix, check_cutoff, replicas_for_cutoff
from .ewald import COULOMB_CONSTANT_RASPA, _self_exclusion
from .lj import lj_pair
from .molecules import Molecule, adsorption_force_field, uff_parameters
from .qeq import eqeq_charges, eqeq_parameters, qeq_charges, qeq_parameters

__all__ = [
    "CO2_KINETIC_DIAMETER",
    "core_mof_atom_counts",
    "core_mof_descriptors",
    "default_screening_set",
    "CHARGE_MODELS",
    "framework_charges",
    "henry_coefficients",
    "load_core_mofs",
]

#: Kinetic diameter of CO₂, Å (Breck 1974, *Zeolite Molecular Sieves*, Wiley; N₂ 3.64 Å).
CO2_KINETIC_DIAMETER = 3.3

_DATASETS = ("2014", "2019-ASR", "2019-FSR")

#: Charge models of :func:`framework_charges` -> the function giving their element tables.
CHARGE_MODELS = {"eqeq": eqeq_parameters, "qeq": qeq_parameters}


def _check_dataset(dataset: str) -> None:
    if dataset not in _DATASETS:
        raise ValueError(f"unknown CoRE MOF dataset {dataset!r}; known {list(_DATASETS)}")


def _package():
    try:
        import CoRE_MOF
    except ImportError as err:  # pragma: no cover - a declared dependency
        raise ImportError("CoRE MOF access needs the PyPI package 'core-mof'") from err
    return CoRE_MOF


def core_mof_descriptors(dataset: str = "2019-ASR"):
    """The package's descriptor table (``pandas.DataFrame``, one row per structure).

    Columns include ``filename`` (the structure name), ``LCD``, ``PLD``, ``LFPD``
    (Å, Zeo++), ``AV_VF`` (void fraction), ``ASA_m2_g``, ``All_Metals``, ``Has_OMS``,
    ``Extension`` (``"clean"``, ``"charged"``, ...) and ``DISORDER``.
    """
    _check_dataset(dataset)
    table = _package().get_properties(dataset)
    return table.loc[:, [c for c in table.columns if not c.startswith("Unnamed")]]


def _members(dataset: str):
    """Yield ``(name, cif_text)`` for every CIF of a dataset, in archive order."""
    pkg = _package()
    path = resources.files(pkg.data) / f"{dataset}.tar.xz"
    with tarfile.open(path, "r") as tar:
        for m in tar:
            if m.isfile() and m.size > 0 and m.name.endswith(".cif"):
                name = m.name.split("/")[-1][: -len(".cif")]
                yield name, tar.extractfile(m).read().decode("utf-8", "replace")


_LOOP = re.compile(r"loop_\s*\n((?:\s*_\S+\s*\n)+)((?:(?!\s*(?:loop_|_|data_)).*\n?)*)")
_SYMOP_TAGS = ("_symmetry_equiv_pos_as_xyz", "_space_group_symop_operation_xyz")


def _read_cif(text: str) -> ase.Atoms:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore")
        return ase.io.read(io.StringIO(text), format="cif")


def _elements(symbols) -> tuple[str, ...]:
    return tuple(sorted({re.match(r"[A-Z][a-z]?", s).group(0) for s in symbols}))


def _count_atoms(text: str) -> tuple[int, tuple[str, ...]]:
    """Atom count and elements of a CIF's unit cell.

    P1 CIFs (all but a handful of CoRE MOF 2019's): the rows of the ``_atom_site``
    loop, read as text; any other space group: ASE's symmetry expansion.
    """
    n_ops, rows, headers = None, None, None
    for match in _LOOP.finditer(text):
        tags = match.group(1).split()
        body = [r.split() for r in match.group(2).splitlines() if r.strip()]
        if any(t in tags for t in _SYMOP_TAGS):
            n_ops = len(body)
        if "_atom_site_fract_x" in tags:
            rows, headers = body, tags
    if n_ops != 1 or rows is None:
        atoms = _read_cif(text)
        return len(atoms), _elements(atoms.get_chemical_symbols())
    tag = "_atom_site_type_symbol"
    col = headers.index(tag) if tag in headers else headers.index("_atom_site_label")
    return len(rows), _elements(r[col] for r in rows)


@functools.lru_cache(maxsize=3)
def core_mof_atom_counts(dataset: str = "2019-ASR") -> dict:
    """``{name: (n_atoms, elements)}`` of every structure, from one pass over the archive.

    Counts the rows of each P1 CIF's ``_atom_site`` loop (the atoms of the unit cell
    as distributed); the few CIFs in another space group are expanded with ASE.
    """
    _check_dataset(dataset)
    return {name: _count_atoms(text) for name, text in _members(dataset)}


def load_core_mofs(names, dataset: str = "2019-ASR") -> dict:
    """``{name: ase.Atoms}`` for the given structures, read in one pass over the archive.

    Raises ``KeyError`` naming the structures the dataset does not hold.
    """
    _check_dataset(dataset)
    wanted = set(names)
    out = {}
    for name, text in _members(dataset):
        if name in wanted:
            atoms = _read_cif(text)
            atoms.info["core_mof"] = f"{dataset}/{name}"
            out[name] = atoms
            if len(out) == len(wanted):
                break
    missing = sorted(wanted - set(out))
    if missing:
        raise KeyError(
            f"not in CoRE MOF {dataset}: {missing[:5]}{' ...' if len(missing) > 5 else ''}"
        )
    return out


def framework_charges(
    atoms: ase.Atoms, total_charge: float = 0.0, *, method: str = "eqeq", **kwargs
) -> np.ndarray:
    r"""Charges ``(n,)`` (e) of a periodic framework from charge equilibration.

    ``method="eqeq"`` (default, the screening model): EQeq, Wilmer, Kim & Snurr 2012
    (:func:`thermo.materials.eqeq_charges`: charge centres at common oxidation states,
    NIST ionisation energies, :math:`\lambda = 1.2`); ``method="qeq"``:
    Gaussian-shielded QEq, Rappé & Goddard 1991 / UFF parameters
    (:func:`thermo.materials.qeq_charges`; unbounded metal charges in MOFs, see its
    module docstring). Both on the Ewald Coulomb matrix; keyword arguments go to the
    chosen function.
    """
    if method not in CHARGE_MODELS:
        raise ValueError(f"unknown charge method {method!r}; known {sorted(CHARGE_MODELS)}")
    solve = eqeq_charges if method == "eqeq" else qeq_charges
    res = solve(
        atoms.get_chemical_symbols(),
        atoms.get_positions(),
        atoms.cell.array,
        total_charge,
        **kwargs,
    )
    return res.charges


def default_screening_set(
    n: int = 200,
    dataset: str = "2019-ASR",
    *,
    min_pld: float = CO2_KINETIC_DIAMETER,
    require_elements: tuple[str, ...] = ("C", "H"),
    charge_model: str = "eqeq",
):
    r"""The ``n`` CoRE MOFs screened by default, by a fixed rule (``pandas.DataFrame``).

    Rule: keep the structures of ``dataset`` whose pore limiting diameter is at least
    ``min_pld`` (default CO₂'s kinetic diameter, 3.3 Å, so CO₂ and N₂, 3.64 Å, can
    diffuse in — N₂ may still be excluded from the narrowest), that are not flagged
    ``DISORDER``, whose ``Extension`` is not ``"charged"`` (a neutral framework, as
    QEq at total charge 0 assumes), that contain ``require_elements`` (default C and
    H: an organic linker with its hydrogens; the smallest CoRE MOF 2019 cells
    include linkers whose hydrogens are missing, such as 10-atom Cd–C cells) and
    whose elements all have UFF parameters and parameters of ``charge_model`` (default
    EQeq, :data:`CHARGE_MODELS`; EQeq has no data for Ru, Pt and U, whose next
    ionisation energies NIST does not tabulate); then take the ``n`` with the fewest atoms in the unit cell (ties by
    name), so that the Ewald and LJ sums of a screen stay cheap on 2 cores.

    Returns:
        Rows ``filename``, ``n_atoms``, ``elements``, ``PLD``, ``LCD``, ``LFPD``,
        ``AV_VF``, ``All_Metals``, sorted by ``n_atoms``.
    """
    if not (isinstance(n, int) and n >= 1):
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not min_pld > 0:
        raise ValueError(f"min_pld must be positive, got {min_pld}")
    if charge_model not in CHARGE_MODELS:
        raise ValueError(f"unknown charge_model {charge_model!r}; known {sorted(CHARGE_MODELS)}")
    table = core_mof_descriptors(dataset)
    counts = core_mof_atom_counts(dataset)
    known = set(uff_parameters()) & set(CHARGE_MODELS[charge_model]())
    keep = table[
        (table["PLD"] >= min_pld)
        & table["DISORDER"].isna()
        & (table["Extension"] != "charged")
        & table["filename"].isin(list(counts))
    ].copy()
    keep["n_atoms"] = [counts[f][0] for f in keep["filename"]]
    keep["elements"] = [" ".join(counts[f][1]) for f in keep["filename"]]
    need = set(require_elements)
    keep = keep[[need <= set(counts[f][1]) <= known for f in keep["filename"]]]
    keep = keep.sort_values(["n_atoms", "filename"], kind="stable")
    if len(keep) < n:
        raise ValueError(f"only {len(keep)} structures satisfy the rule, {n} requested")
    cols = ["filename", "n_atoms", "elements", "PLD", "LCD", "LFPD", "AV_VF", "All_Metals"]
    return keep.loc[:, cols].head(n).reset_index(drop=True)


def _bucket(n: int, base: int) -> int:
    """``n`` rounded up to ``base * {1, 1.5} * 2^k`` (few distinct padded shapes, so few compiles)."""
    size = base
    while size < n:
        size = size * 3 // 2 if (size & (size - 1)) == 0 else size * 4 // 3
    return size


class _Insertion(eqx.Module):
    """One (framework, molecule) pair in padded, fixed shapes (``S`` sites, ``M`` atoms)."""

    frame_frac: jax.Array  # (M, 3) supercell fractions; padding rows 0
    far: jax.Array  # (M,) 0, inf for padding
    eps: jax.Array  # (S, M) K
    sig: jax.Array  # (S, M) Å
    qq: jax.Array  # (S, M) C q_site q_atom, K Å
    supercell: jax.Array  # (3, 3) cell vectors as columns
    inv_super: jax.Array  # (3, 3)
    offsets: jax.Array  # (S, 3) Å, centred
    site_q: jax.Array  # (S,) e
    k_ranges: tuple  # three (K_a,) wave numbers, padding 0
    k_weights: jax.Array  # (K_1, K_2, K_3), padding 0
    s_frame: jax.Array  # (K_1, K_2, K_3) complex framework structure factor
    const: jax.Array  # self + exclusion term of the molecule, K
    alpha: jax.Array  # Å^-1
    coulomb_constant: jax.Array  # K Å
    r_cut: jax.Array  # Å
    shift: jax.Array  # bool: LJ shifted at r_cut


def _insertion_energy(ins: _Insertion, frac, rotation):
    r""":math:`\Delta U` (K) of the molecule with centre at supercell fraction ``frac``.

    LJ (Lorentz–Berthelot, cut and optionally shifted at :math:`r_c`) and the Ewald
    real-space term over every framework atom by the minimum image (:math:`r_c \le
    w_{\min}/2`), plus the Fourier difference :math:`C\sum_k w_k(2\mathrm{Re}[S_f^*s_m] +
    |s_m|^2) + c_m` (RASPA3's ``ewaldFourier``), as :func:`thermo.materials.widom`.
    """
    site_frac = frac[None, :] + (rotation @ ins.offsets.T).T @ ins.inv_super.T
    d = site_frac[:, None, :] - ins.frame_frac[None, :, :]
    d = d - jnp.round(d)
    r = jnp.sqrt(jnp.sum((d @ ins.supercell.T) ** 2, axis=-1)) + ins.far[None, :]
    inside = r < ins.r_cut
    r_safe = jnp.where(inside & (r > 0), r, ins.r_cut)
    lj_cut = lj_pair(r_safe, ins.sig, ins.eps, ins.r_cut, False)
    sc6 = (ins.sig / ins.r_cut) ** 6
    lj = lj_cut - jnp.where(ins.shift, 4.0 * ins.eps * (sc6 * sc6 - sc6), 0.0)
    real = ins.qq * erfc(ins.alpha * r_safe) / r_safe
    u = jnp.sum(jnp.where(inside & (ins.eps > 0), lj, 0.0)) + jnp.sum(jnp.where(inside, real, 0.0))
    phases = [
        2.0 * jnp.pi * site_frac[:, a, None] * ins.k_ranges[a][None, :].astype(site_frac.dtype)
        for a in range(3)
    ]
    e = [jax.lax.complex(jnp.cos(ph), jnp.sin(ph)) for ph in phases]
    s_m = jnp.einsum("s,si,sj,sk->ijk", ins.site_q.astype(e[0].dtype), e[0], e[1], e[2])
    cross = 2.0 * jnp.real(jnp.conj(ins.s_frame) * s_m) + jnp.abs(s_m) ** 2
    u = u + ins.const + ins.coulomb_constant * jnp.sum(ins.k_weights * cross)
    return jnp.minimum(u, 1e10)


@eqx.filter_jit
def _widom_blocks(keys, batch: _Insertion, beta, n_blocks: int, n_chunks: int, chunk_size: int):
    """``(G, n_blocks, 2)`` block means of :math:`W` and :math:`\\Delta U\\,W` for ``G`` pairs."""

    def one(key, ins):
        def chunk(k):
            k_pos, k_rot = jr.split(k)
            frac = jr.uniform(k_pos, (chunk_size, 3))
            rot = jax.vmap(lambda kk: _random_rotation(kk, 3))(jr.split(k_rot, chunk_size))
            u = jax.vmap(lambda f, rr: _insertion_energy(ins, f, rr))(frac, rot)
            w = jnp.exp(-beta * u)
            return jnp.stack([jnp.sum(w), jnp.sum(jnp.where(w > 0, u * w, 0.0))])

        def block(k):
            return jnp.sum(jax.lax.map(chunk, jr.split(k, n_chunks)), 0) / (n_chunks * chunk_size)

        return jax.lax.map(block, jr.split(key, n_blocks))

    return jax.vmap(one)(keys, batch)


def _pad_to(a, shape, value=0.0):
    out = np.full(shape, value, dtype=np.asarray(a).dtype)
    out[tuple(slice(0, n) for n in np.shape(a))] = a
    return out


def _insertion_pair(atoms, mol, q_uc, framework_lj, r_cut, precision, n_sites, m_pad, k_pad):
    """Padded :class:`_Insertion` arrays of ``mol`` in ``atoms`` (numpy, to be stacked)."""
    cell_uc = atoms.cell.array.T
    reps = replicas_for_cutoff(cell_uc, r_cut)
    supercell = box_matrix(cell_uc * np.asarray(reps)[None, :])
    check_cutoff(supercell, r_cut)
    big = atoms.repeat(reps)
    frame_frac = np.linalg.solve(supercell, big.get_positions().T).T % 1.0
    m = frame_frac.shape[0]
    ff = adsorption_force_field(mol, framework_lj, r_cut=r_cut)
    eps_sig = [_mixed_parameters(ff, big.get_chemical_symbols(), n) for n in mol.site_names]
    s = len(mol.site_names)
    offsets = mol.positions - mol.positions.mean(axis=0)
    charged = q_uc is not None and bool(np.any(mol.charges != 0))
    q_big = np.tile(q_uc, int(np.prod(reps))) if charged else np.zeros(m)
    kv = _ewald_kvectors(supercell.T, r_cut, precision)
    ranges, weights, s_f = _fourier_grid(kv, frame_frac, q_big, supercell)
    cj = jnp.asarray(supercell.T)
    const = COULOMB_CONSTANT_RASPA * float(
        _self_exclusion(
            jnp.asarray(offsets),
            jnp.asarray(mol.charges),
            jnp.asarray(~np.eye(s, dtype=bool)),
            cj,
            jnp.linalg.inv(cj),
            kv.alpha,
        )
    )
    site_q = mol.charges if charged else np.zeros(s)
    k_shape = tuple(max(k, len(r)) for k, r in zip(k_pad, ranges, strict=True))
    return dict(
        frame_frac=_pad_to(frame_frac, (m_pad, 3)),
        far=_pad_to(np.zeros(m), (m_pad,), np.inf),
        eps=_pad_to(np.stack([e for e, _ in eps_sig]), (n_sites, m_pad)),
        sig=_pad_to(np.stack([g for _, g in eps_sig]), (n_sites, m_pad), 1.0),
        qq=_pad_to(COULOMB_CONSTANT_RASPA * site_q[:, None] * q_big[None, :], (n_sites, m_pad)),
        supercell=supercell,
        inv_super=np.linalg.inv(supercell),
        offsets=_pad_to(offsets, (n_sites, 3)),
        site_q=_pad_to(site_q, (n_sites,)),
        k_ranges=tuple(_pad_to(np.asarray(r), (k,)) for r, k in zip(ranges, k_shape, strict=True)),
        k_weights=_pad_to(np.asarray(weights), k_shape),
        s_frame=_pad_to(np.asarray(s_f), k_shape),
        const=np.asarray(const if charged else 0.0),
        alpha=np.asarray(kv.alpha),
        coulomb_constant=np.asarray(COULOMB_CONSTANT_RASPA),
        r_cut=np.asarray(float(r_cut)),
        shift=np.asarray(True),
    ), (m, tuple(len(r) for r in ranges), reps)


def henry_coefficients(
    key,
    framework: ase.Atoms,
    molecules,
    *,
    temperature: float = 313.0,
    n_insertions: int = 65_536,
    n_blocks: int = 8,
    chunk_size: int = 256,
    charges: str | np.ndarray | None = "eqeq",
    framework_lj: str | dict = "uff",
    r_cut: float = 12.0,
    ewald_precision: float = 1e-6,
) -> dict:
    r"""Henry coefficients of several rigid adsorbates in one rigid framework (Widom insertion).

    The model of :func:`thermo.materials.widom` (Widom 1963; Vlugt et al. 2008 for the
    heat): framework LJ ``framework_lj`` (default UFF, Rappé et al. 1992) with the
    molecule's sites by Lorentz–Berthelot (:func:`thermo.materials.adsorption_force_field`),
    cut and shifted at ``r_cut``, no tail correction, and, when the framework is charged,
    the Ewald molecule–framework Coulomb energy (RASPA3's Coulomb constant); uniformly
    random centres and orientations:

    .. math:: K_H = \frac{\langle e^{-\beta\Delta U}\rangle V_{\rm uc}}{k_BT},
       \qquad q_{\rm st} = -\Big(\frac{\langle\Delta U\,e^{-\beta\Delta U}\rangle}
       {\langle e^{-\beta\Delta U}\rangle} - k_BT\Big).

    Unlike :func:`~thermo.materials.widom`, the frameworks and molecules are padded to a
    few fixed shapes (framework atoms, k-vectors and sites; padding carries no
    interaction) and all molecules are evaluated in one ``vmap``-ed, module-level jitted
    kernel, so a screen over many frameworks compiles a handful of times, not once per
    framework and molecule. Every framework atom is visited (no bins).

    Args:
        key: PRNG key; molecule ``i`` uses ``fold_in(key, i)``.
        framework: ``ase.Atoms`` (unit cell; e.g. from :func:`load_core_mofs`).
        molecules: sequence of :class:`thermo.materials.Molecule` (distinct names).
        temperature: K.
        n_insertions: insertions per molecule, rounded down to a multiple of
            ``n_blocks * chunk_size``; n_blocks: blocks for the standard error (that of
            the block means); chunk_size: insertions evaluated together.
        charges: ``"eqeq"`` or ``"qeq"`` (computed by :func:`framework_charges`), a
            ``(n_atoms,)`` array (e), or ``None`` (LJ only).
        framework_lj: ``"uff"``, ``"trappe-zeo"`` or an ``{element: {"epsilon",
            "sigma"}}`` dict.
        r_cut: LJ and real-space Ewald cutoff, Å (the supercell is the smallest
            replication with :math:`r_c \le w_{\min}/2`).
        ewald_precision: relative accuracy of the Ewald sum
            (:func:`thermo.materials.ewald_parameters`).

    Returns:
        ``{molecule name: WidomResult}`` (``henry`` in molecules per unit cell per Pa
        with ``henry_std_err``, ``henry_mol_per_kg_pa``, ``isosteric_heat_kj_mol``).
    """
    mols = list(molecules)
    if not mols or not all(isinstance(m, Molecule) for m in mols):
        raise TypeError("molecules must be a non-empty sequence of Molecules")
    if len({m.name for m in mols}) != len(mols):
        raise ValueError(f"molecule names must be distinct, got {[m.name for m in mols]}")
    if not isinstance(framework, ase.Atoms):
        raise TypeError(f"framework must be an ase.Atoms, got {type(framework).__name__}")
    check_positive(temperature, "temperature")
    check_positive(r_cut, "r_cut")
    n_insertions = check_count(n_insertions, "n_insertions")
    n_blocks = check_count(n_blocks, "n_blocks", minimum=2)
    chunk_size = check_count(chunk_size, "chunk_size")
    n_chunks = n_insertions // (n_blocks * chunk_size)
    if n_chunks < 1:
        raise ValueError(
            f"n_insertions={n_insertions} is smaller than n_blocks*chunk_size="
            f"{n_blocks * chunk_size}"
        )
    if isinstance(charges, str):
        q = framework_charges(framework, method=charges)
    elif charges is None:
        q = None
    else:
        q = np.asarray(charges, dtype=np.float64).reshape(-1)
        if q.shape != (len(framework),) or not np.all(np.isfinite(q)):
            raise ValueError(f"charges must be {len(framework)} finite numbers, got {q.shape}")
    for mol in mols:
        if abs(float(np.sum(mol.charges))) > 1e-10:
            raise ValueError(f"molecule {mol.name} is charged ({np.sum(mol.charges)} e)")
    reps = replicas_for_cutoff(framework.cell.array.T, r_cut)
    m_pad = _bucket(len(framework) * int(np.prod(reps)), 256)
    n_sites = max(len(m.site_names) for m in mols)
    # the k-grid of the supercell for this precision, padded to one cube per kmax
    supercell_rows = box_matrix(framework.cell.array.T * np.asarray(reps)).T
    k = max(_ewald_kvectors(supercell_rows, r_cut, ewald_precision).kmax)
    k_pad = (k + 1, 2 * k + 1, 2 * k + 1)
    parts = [
        _insertion_pair(
            framework, m, q, framework_lj, r_cut, ewald_precision, n_sites, m_pad, k_pad
        )[0]
        for m in mols
    ]
    stacked = jax.tree.map(lambda *xs: jnp.asarray(np.stack(xs)), *parts)
    batch = _Insertion(**stacked)
    keys = jnp.stack([jr.fold_in(key, i) for i in range(len(mols))])
    stats = np.asarray(
        _widom_blocks(keys, batch, 1.0 / float(temperature), n_blocks, n_chunks, chunk_size)
    )  # (G, n_blocks, 2)
    v_uc = float(framework.cell.volume) * ANGSTROM3
    kt = K_BOLTZMANN * float(temperature)
    rho_f = float(np.sum(framework.get_masses())) * AMU_KG / v_uc
    out = {}
    for mol, st in zip(mols, stats, strict=True):
        w_blocks, uw_blocks = st[:, 0], st[:, 1]
        weight = float(w_blocks.mean())
        std_err = float(w_blocks.std(ddof=1) / np.sqrt(n_blocks))
        enthalpy = float(uw_blocks.mean() / weight - temperature) if weight > 0 else float("nan")
        out[mol.name] = WidomResult(
            weight=weight,
            std_err=std_err,
            henry=weight * v_uc / kt,
            henry_std_err=std_err * v_uc / kt,
            henry_mol_per_kg_pa=weight / (GAS_CONSTANT * float(temperature) * rho_f),
            enthalpy=enthalpy,
            isosteric_heat_kj_mol=float(-enthalpy * GAS_CONSTANT / 1000.0),
            n_insertions=int(n_blocks * n_chunks * chunk_size),
            block_weights=w_blocks,
            unit_cells=tuple(int(r) for r in reps),
        )
    return out
