"""JAX's persistent compilation cache for the test suite and the book build.

Compilation dominates the time of the tests and of the book's chapters (a quick
experiment is mostly imports and XLA compiles), and most programs are the same from one
run to the next. With the cache, a program XLA compiled once (in an earlier run, or in
the other pytest worker, or in the tests before the book) is read back from disk instead of
compiled again; the executed computation is the same program, so results do not change.
A fresh clone starts cold (CI measures that case).

The cache lives in ``.jax_cache/`` at the repository root (git ignores it; ``make clean``
removes it). ``STOCHTHERMO_JAX_CACHE=0`` turns it off; a ``JAX_COMPILATION_CACHE_DIR``
already set is respected. The library itself never turns it on: only tests and the book
build do, as they set other global JAX flags.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_DIR", "cache_environment"]

CACHE_DIR = Path(__file__).resolve().parent.parent / ".jax_cache"


def cache_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment variables that turn the cache on, unless asked not to.

    Returns the variables to set (empty when ``STOCHTHERMO_JAX_CACHE=0``), given the
    current environment ``env`` (default :data:`os.environ`). Every program is cached,
    however short its compile: the suite is made of many small ones.
    """
    env = os.environ if env is None else env
    if env.get("STOCHTHERMO_JAX_CACHE", "1") == "0":
        return {}
    return {
        "JAX_COMPILATION_CACHE_DIR": env.get("JAX_COMPILATION_CACHE_DIR") or str(CACHE_DIR),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": env.get(
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0"
        ),
    }
