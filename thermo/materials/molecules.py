r"""Rigid adsorbate models, UFF framework parameters and CoRE MOF structures, as data.

* ``data/molecules.json``: CO₂ (García-Sánchez et al. 2009; TraPPE, Potoff & Siepmann
  2001), N₂ (Martín-Calvo et al. 2011; TraPPE) and CH₄ (TraPPE-UA, Martin & Siepmann
  1998; and the Dubbeldam et al. 2004 value RASPA3's methane examples use), each site
  with its position (Å), :math:`\epsilon/k_B` (K), :math:`\sigma` (Å) and charge (e).
* ``data/uff.json``: UFF :math:`x_i` and :math:`D_i` (Rappé et al. 1992, Table 1),
  converted to :math:`\sigma = 2^{-1/6} x_i` and :math:`\epsilon/k_B = D_i\cdot
  4184/R` K (:math:`R` from the CODATA 2018 exact :math:`k_B N_A`).
* :func:`core_mof_framework` reads a structure of the CoRE MOF database (Chung et al.
  2019, *J. Chem. Eng. Data* 64, 5985) from its PyPI package ``core-mof``.

:func:`adsorption_force_field` assembles the force-field dictionary that
:func:`thermo.materials.framework_energy_fn` reads.
"""

from __future__ import annotations

import functools
import io
import json
import os
import warnings
from typing import NamedTuple

import ase
import ase.io
import numpy as np

from .structures import DATA_DIR

__all__ = [
    "Molecule",
    "adsorption_force_field",
    "core_mof_framework",
    "load_molecule",
    "uff_parameters",
]

_GAS_CONSTANT = 1.380649e-23 * 6.02214076e23  # J/(mol K), CODATA 2018 exact
_KCAL_PER_MOL_IN_K = 4184.0 / _GAS_CONSTANT


class Molecule(NamedTuple):
    """A rigid adsorbate model.

    Attributes:
        name: ``"CO2"``, ``"N2"``, ``"CH4"``.
        model: the parameter set (``"garcia-sanchez-2009"``, ``"trappe"``, ...).
        site_names: ``n_sites`` site labels.
        positions: ``(n_sites, 3)`` site positions in the molecular frame, Å.
        epsilon: ``(n_sites,)`` K; sigma: ``(n_sites,)`` Å; charges: ``(n_sites,)`` e.
        citation: the paper the parameters come from.
    """

    name: str
    model: str
    site_names: tuple[str, ...]
    positions: np.ndarray
    epsilon: np.ndarray
    sigma: np.ndarray
    charges: np.ndarray
    citation: str


_DEFAULT_MODEL = {"CO2": "garcia-sanchez-2009", "N2": "martin-calvo-2011", "CH4": "trappe"}


@functools.lru_cache(maxsize=1)
def _molecule_table() -> dict:
    with open(os.path.join(DATA_DIR, "molecules.json")) as f:
        return json.load(f)["molecules"]


def load_molecule(name: str, model: str | None = None) -> Molecule:
    """Load a rigid molecule from ``data/molecules.json`` (see the module docstring).

    Args:
        name: ``"CO2"``, ``"N2"`` or ``"CH4"``.
        model: parameter set; default García-Sánchez 2009 (CO₂), Martín-Calvo 2011
            (N₂), TraPPE (CH₄).
    """
    table = _molecule_table()
    if name not in table:
        raise ValueError(f"unknown molecule {name!r}; known {sorted(table)}")
    model = model or _DEFAULT_MODEL[name]
    if model not in table[name]:
        raise ValueError(f"unknown model {model!r} for {name}; known {sorted(table[name])}")
    entry = table[name][model]
    sites = entry["sites"]
    charges = np.array([s[4] for s in sites], dtype=np.float64)
    if abs(charges.sum()) > 1e-12:
        raise ValueError(f"{name}/{model} is not neutral (net charge {charges.sum()})")
    return Molecule(
        name=name,
        model=model,
        site_names=tuple(s[0] for s in sites),
        positions=np.array([s[1] for s in sites], dtype=np.float64),
        epsilon=np.array([s[2] for s in sites], dtype=np.float64),
        sigma=np.array([s[3] for s in sites], dtype=np.float64),
        charges=charges,
        citation=entry["citation"],
    )


@functools.lru_cache(maxsize=1)
def uff_parameters() -> dict:
    r"""UFF LJ parameters ``{element: {"epsilon": K, "sigma": Å}}`` (Rappé et al. 1992)."""
    with open(os.path.join(DATA_DIR, "uff.json")) as f:
        raw = json.load(f)
    return {
        el: {
            "epsilon": d * _KCAL_PER_MOL_IN_K,
            "sigma": x * 2.0 ** (-1.0 / 6.0),
            "source": raw["citation"],
        }
        for el, (x, d) in raw["elements"].items()
    }


def adsorption_force_field(
    molecule: Molecule,
    framework: dict | str = "uff",
    *,
    r_cut: float = 12.0,
    truncation: str = "shifted",
) -> dict:
    r"""Force-field dict for :func:`thermo.materials.framework_energy_fn`.

    Framework LJ parameters from UFF (``"uff"``), the shipped TraPPE-zeo O/Si
    (``"trappe-zeo"``, Bai, Tsapatsis & Siepmann 2013) or a given ``{element:
    {"epsilon", "sigma"}}`` dict; the molecule's sites with their charges; Lorentz–
    Berthelot mixing, truncated and shifted at ``r_cut``, no tail correction.
    """
    if framework == "uff":
        atoms = {k: dict(v) for k, v in uff_parameters().items()}
    elif framework == "trappe-zeo":
        from .adsorption import load_force_field

        base = load_force_field()["atoms"]
        atoms = {k: dict(base[k]) for k in ("O", "Si")}
    elif isinstance(framework, dict):
        atoms = {k: dict(v) for k, v in framework.items()}
    else:
        raise ValueError(
            f"framework parameters must be 'uff', 'trappe-zeo' or a dict, got {framework!r}"
        )
    clash = sorted(set(molecule.site_names) & set(atoms))
    if clash:
        raise ValueError(f"site names {clash} collide with framework element names")
    for name, eps, sig in zip(molecule.site_names, molecule.epsilon, molecule.sigma, strict=True):
        atoms[name] = {"epsilon": float(eps), "sigma": float(sig)}
    sites = [
        [n, [float(v) for v in p], float(q)]
        for n, p, q in zip(molecule.site_names, molecule.positions, molecule.charges, strict=True)
    ]
    return {
        "mixing_rule": "Lorentz-Berthelot",
        "truncation": truncation,
        "r_cut": float(r_cut),
        "tail_corrections": False,
        "atoms": atoms,
        "adsorbates": {molecule.name: {"sites": sites, "source": molecule.citation}},
    }


@functools.lru_cache(maxsize=8)
def _core_mof_cif(dataset: str, name: str) -> bytes:
    try:
        import CoRE_MOF
    except ImportError as err:  # pragma: no cover - a declared dependency
        raise ImportError("core_mof_framework needs the PyPI package 'core-mof'") from err
    return CoRE_MOF.get_CIF_structure_data(dataset, name)


def core_mof_framework(name: str = "EDUSIF_clean", dataset: str = "2019-ASR") -> ase.Atoms:
    """A CoRE MOF 2019 structure (PyPI ``core-mof``) as ``ase.Atoms`` (P1, as distributed).

    The default ``EDUSIF_clean`` is IRMOF-1 (MOF-5, Zn₄O(BDC)₃) in its 106-atom
    rhombohedral primitive cell. Extraction from the package's ``.tar.xz`` takes a few
    seconds; the CIF text is cached per process.
    """
    data = _core_mof_cif(dataset, name)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore")
        atoms = ase.io.read(io.StringIO(data.decode("utf-8")), format="cif")
    atoms.info["core_mof"] = f"{dataset}/{name}"
    return atoms
