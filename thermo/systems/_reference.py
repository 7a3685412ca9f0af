r"""The project's own reference samples for ``dw4``, ``lj13`` and ``lj55``.

They were made by long, seeded replica-exchange (HMC within parallel tempering) runs,
thinned by the measured integrated autocorrelation time of the energy, and stored as
``float32`` with ``np.savez_compressed`` in ``thermo/systems/data/<name>.npz``; each has a
provenance record ``<name>.json`` (system and energy convention, seed, sampler
settings, swap rates, :math:`\tau_{\mathrm{int}}`, ESS, git commit). The samples have
their centre of mass removed. Regenerate them with
``python -m experiments.make_reference_samples``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["reference_provenance", "reference_samples"]

DATA_DIR = Path(__file__).resolve().parent / "data"
AVAILABLE = ("dw4", "lj13", "lj55")


def _path(name: str, suffix: str) -> Path:
    if name not in AVAILABLE:
        raise ValueError(
            f"no reference samples for {name!r}; the project ships them for {AVAILABLE}"
        )
    path = DATA_DIR / f"{name}.{suffix}"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing; regenerate it with `python -m experiments.make_reference_samples {name}`"
        )
    return path


def reference_samples(name: str) -> np.ndarray:
    """The project's own reference samples of ``name``, shape ``(n, dim)``, float32.

    Args:
        name: ``"dw4"``, ``"lj13"`` or ``"lj55"`` (energies in the registry's convention,
            see :func:`reference_provenance`).

    Returns:
        ``(n, dim)`` COM-free configurations: n = 9,600 for dw4, 10,000 for lj13; for lj55
        ``reference_provenance("lj55")["n_samples"]`` (its provenance also records how
        much of the planned production run was done, tau_int and ESS).

    Raises:
        ValueError: for other names. FileNotFoundError: if the data file is missing.
    """
    with np.load(_path(name, "npz")) as data:
        return np.asarray(data["samples"])


def reference_provenance(name: str) -> dict:
    """The provenance record of :func:`reference_samples` ``(name)`` (a JSON dict)."""
    return json.loads(_path(name, "json").read_text())
