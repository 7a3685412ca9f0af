r"""Crystal structures through ASE: read CIF/XYZ, convert, build lattices.

Conventions: ASE stores lattice vectors as **rows** of ``atoms.cell``; jax-md and
:mod:`thermo.materials.cells` use **columns**, so ``box = atoms.cell.array.T``.
"""

from __future__ import annotations

import os
import warnings

import ase
import ase.build
import ase.io
import numpy as np

from .._checks import check_count, check_positive

__all__ = [
    "DATA_DIR",
    "fcc_lattice",
    "from_arrays",
    "load_framework",
    "read_structure",
    "shared_materials_path",
    "to_arrays",
]

DATA_DIR = os.path.join(os.path.dirname(__file__), "data")


def shared_materials_path(name: str, *, required: bool = True) -> str | None:
    """Path of a reference input in the shared data folder (never shipped with the project).

    Looks in ``$STOCHTHERMO_SHARED_DATA/materials/`` when that variable is set, else in
    ``<repository>/../shared/data/materials/`` (e.g. ``MFI_SI.cif``, from RASPA3). These
    files serve cross-checks and tests only.

    Args:
        name: file name.
        required: raise ``FileNotFoundError`` (naming where it looked) when absent;
            with ``False`` return ``None`` instead.
    """
    env = os.environ.get("STOCHTHERMO_SHARED_DATA")
    if env:
        folder = os.path.join(env, "materials")
    else:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        folder = os.path.join(root, "..", "shared", "data", "materials")
    path = os.path.normpath(os.path.join(folder, name))
    if os.path.exists(path):
        return path
    if required:
        raise FileNotFoundError(
            f"shared reference input {name!r} not found at {path}; it is not shipped with the "
            "project (set STOCHTHERMO_SHARED_DATA to the shared data folder)"
        )
    return None


def read_structure(path: str | os.PathLike, **kwargs) -> ase.Atoms:
    """Read a CIF, XYZ or any ASE-readable file with ``ase.io.read`` (symmetry expanded).

    Bare names of files shipped in ``thermo/materials/data``
    are resolved there.

    Raises:
        FileNotFoundError: when the file does not exist.
        ValueError: when ASE cannot parse it (a truncated or garbage file), naming the
            file and ASE's own error; ASE's parsers otherwise fail with a bare
            ``AssertionError`` or ``StopIteration``.
    """
    p = os.fspath(path)
    if not os.path.exists(p) and os.path.exists(os.path.join(DATA_DIR, p)):
        p = os.path.join(DATA_DIR, p)
    if not os.path.exists(p):
        raise FileNotFoundError(f"structure file not found: {path}")
    with warnings.catch_warnings():
        # ase warns that it does not interpret _symmetry_cell_setting; harmless.
        warnings.filterwarnings("ignore", message="crystal system")
        try:
            atoms = ase.io.read(p, **kwargs)
        except (AssertionError, StopIteration, IndexError, KeyError, ValueError) as err:
            detail = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
            raise ValueError(
                f"could not read a structure from {path!r} (ASE's parser failed with {detail}); "
                "is it a valid CIF/XYZ file?"
            ) from err
        except ase.io.formats.UnknownFileTypeError as err:
            raise ValueError(f"could not read a structure from {path!r}: {err}") from err
    if isinstance(atoms, list):
        atoms = atoms[-1]
    return atoms


def load_framework(framework) -> ase.Atoms:
    """Accept an ``ase.Atoms`` (returned as a copy) or a path; raise on empty structures."""
    if isinstance(framework, ase.Atoms):
        atoms = framework.copy()
    elif isinstance(framework, (str, os.PathLike)):
        atoms = read_structure(framework)
    else:
        raise TypeError(f"framework must be ase.Atoms or a path, got {type(framework).__name__}")
    if len(atoms) == 0:
        raise ValueError("framework has no atoms")
    if not np.all(atoms.pbc) or atoms.cell.volume <= 0:
        raise ValueError("framework must be periodic in 3D with a non-degenerate cell")
    return atoms


def to_arrays(atoms: ase.Atoms) -> tuple[np.ndarray, np.ndarray, list[str]]:
    r"""``(positions (n, 3), box (3, 3) column vectors, symbols)`` from an ``ase.Atoms``."""
    return (
        np.asarray(atoms.get_positions(), dtype=np.float64),
        np.asarray(atoms.cell.array, dtype=np.float64).T.copy(),
        list(atoms.get_chemical_symbols()),
    )


def from_arrays(positions, box, symbols: str | list[str] = "Ar") -> ase.Atoms:
    r"""Build a periodic ``ase.Atoms`` from positions ``(n, 3)`` and a column-vector box."""
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ValueError(f"positions must have shape (n, 3), got {pos.shape}")
    from .cells import box_matrix

    cell = box_matrix(box).T
    if isinstance(symbols, str):
        symbols = [symbols] * pos.shape[0]
    return ase.Atoms(symbols=symbols, positions=pos, cell=cell, pbc=True)


def fcc_lattice(n_cells: int, density: float, symbol: str = "Ar") -> ase.Atoms:
    r"""Perfect FCC crystal of :math:`N = 4 n^3` sites at number density :math:`\rho`.

    Built with ``ase.build.bulk(symbol, "fcc", a, cubic=True).repeat(n)``; the
    conventional cubic cell holds 4 atoms, so :math:`a = (4/\rho)^{1/3}`
    (reduced units when ``density`` is :math:`\rho\sigma^3`).
    """
    n_cells = check_count(n_cells, "n_cells")
    check_positive(density, "density")
    a = (4.0 / density) ** (1.0 / 3.0)
    return ase.build.bulk(symbol, "fcc", a=a, cubic=True).repeat((n_cells,) * 3)
