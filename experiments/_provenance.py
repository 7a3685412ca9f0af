"""Provenance of a run: git commit and dirty flag, package versions, JAX devices, host."""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from pathlib import Path
from typing import Any

__all__ = ["PACKAGES", "git_info", "package_versions", "provenance"]

REPO_ROOT = Path(__file__).resolve().parent.parent

PACKAGES = (
    "stochthermo",
    "jax",
    "jaxlib",
    "equinox",
    "diffrax",
    "optax",
    "numpyro",
    "blackjax",
    "jax-md",
    "ott-jax",
    "pymbar",
    "numpy",
    "scipy",
    "matplotlib",
)


def git_info() -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the repository holding the code
    (:func:`thermo._git.git_info` at the repository root)."""
    from thermo._git import git_info as _git_info

    return _git_info(REPO_ROOT)


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages results depend on (``None`` if absent)."""
    versions: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def provenance() -> dict[str, Any]:
    """Everything needed to trace a result: git, versions, JAX devices and x64 flag, host."""
    import jax

    return {
        "git": git_info(),
        "packages": package_versions(),
        "jax_devices": [str(d) for d in jax.devices()],
        "jax_backend": jax.default_backend(),
        "jax_enable_x64": bool(jax.config.jax_enable_x64),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "argv": list(sys.argv),
    }
