"""The git commit of the checkout that holds this code (for provenance records)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

__all__ = ["git_info"]

_ROOT = Path(__file__).resolve().parent.parent


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=20, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def git_info(root: Path | None = None) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the repository at ``root``
    (default: the one holding this package).

    ``dirty`` is true when tracked files differ from the commit (``git status
    --porcelain --untracked-files=no`` is non-empty), so a result can be traced to
    exactly the code that produced it, or flagged as not traceable. Outside a git checkout
    (an installed wheel) both are ``None``.
    """
    root = _ROOT if root is None else Path(root)
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}
