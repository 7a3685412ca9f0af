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
import jax.random as jr
import numpy as np

from .adsorption import widom
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
    bin_width: float | None = 2.0,
) -> dict:
    r"""Henry coefficients of several rigid adsorbates in one rigid framework (Widom insertion).

    For each molecule, :func:`thermo.materials.widom` with the force field of
    :func:`thermo.materials.adsorption_force_field` (framework LJ ``framework_lj``,
    default UFF, Rappé et al. 1992; Lorentz–Berthelot; shifted at ``r_cut``; no tail
    correction) and, when the framework is charged, the Ewald molecule–framework
    Coulomb energy:

    .. math:: K_H = \frac{\langle e^{-\beta\Delta U}\rangle V_{\rm uc}}{k_BT},
       \qquad q_{\rm st} = -\Big(\frac{\langle\Delta U\,e^{-\beta\Delta U}\rangle}
       {\langle e^{-\beta\Delta U}\rangle} - k_BT\Big).

    Args:
        key: PRNG key; molecule ``i`` uses ``fold_in(key, i)``.
        framework: ``ase.Atoms`` (unit cell; e.g. from :func:`load_core_mofs`).
        molecules: sequence of :class:`thermo.materials.Molecule` (distinct names).
        temperature: K.
        n_insertions, n_blocks, chunk_size: as :func:`thermo.materials.widom` (the
            standard error is that of the ``n_blocks`` block means).
        charges: ``"eqeq"`` or ``"qeq"`` (computed by :func:`framework_charges`), a
            ``(n_atoms,)`` array (e), or ``None`` (LJ only).
        framework_lj: ``"uff"``, ``"trappe-zeo"`` or an ``{element: {"epsilon",
            "sigma"}}`` dict.
        r_cut: LJ and real-space Ewald cutoff, Å.
        ewald_precision: relative accuracy of the Ewald sum.
        bin_width: framework bin width for the insertions, Å.

    Returns:
        ``{molecule name: WidomResult}`` (``henry`` in molecules per unit cell per Pa,
        ``henry_mol_per_kg_pa``, ``isosteric_heat_kj_mol``, their standard errors).
    """
    mols = list(molecules)
    if not mols or not all(isinstance(m, Molecule) for m in mols):
        raise TypeError("molecules must be a non-empty sequence of Molecules")
    if len({m.name for m in mols}) != len(mols):
        raise ValueError(f"molecule names must be distinct, got {[m.name for m in mols]}")
    if not isinstance(framework, ase.Atoms):
        raise TypeError(f"framework must be an ase.Atoms, got {type(framework).__name__}")
    if isinstance(charges, str):
        q = framework_charges(framework, method=charges)
    elif charges is None:
        q = None
    else:
        q = np.asarray(charges, dtype=np.float64).reshape(-1)
        if q.shape != (len(framework),):
            raise ValueError(f"charges must have {len(framework)} entries, got {q.shape}")
    out = {}
    for i, mol in enumerate(mols):
        ff = adsorption_force_field(mol, framework_lj, r_cut=r_cut)
        out[mol.name] = widom(
            jr.fold_in(key, i),
            framework,
            adsorbate=mol.name,
            temperature=temperature,
            n_insertions=n_insertions,
            n_blocks=n_blocks,
            chunk_size=chunk_size,
            force_field=ff,
            framework_charges=q,
            ewald_precision=ewald_precision,
            bin_width=bin_width,
        )
    return out
