"""Test configuration: float64 everywhere; strict dtype and rank promotion when asked for.

x64 because the estimators' exact checks need it. Strict dtype promotion
(``jax_numpy_dtype_promotion="strict"``) turns every implicit float32/float64 or
int/float mix into an error, and ``jax_numpy_rank_promotion="raise"`` turns every implicit
broadcast between arrays of different rank into one (STYLE.md), so the library's casts
and broadcasts are written out. Where a dependency itself breaks these rules, the call
into it is wrapped in ``jax.numpy_dtype_promotion("standard")`` /
``jax.numpy_rank_promotion("allow")`` with a comment naming the dependency, at the
narrowest place.

Strict promotion is the default; ``STOCHTHERMO_STRICT_PROMOTION=0`` runs the suite under
JAX's standard promotion instead (to tell a promotion error from a numerical failure).
The dependencies that need an exception, each wrapped where it is called: jax-md's
``space``/``partition`` (float32 constants; :func:`thermo.materials.cells.standard_promotion`)
and numpyro's NUTS adaptation (int64/float64 mixes; :func:`thermo.mcmc.nuts`).

The library itself never flips global JAX flags; only tests, experiments and the
book do. Tests and the book also use JAX's persistent compilation cache in
``.jax_cache/`` (:mod:`experiments._jax_cache`; ``STOCHTHERMO_JAX_CACHE=0`` turns it off).
"""

import os

# JAX's persistent compilation cache (experiments/_jax_cache.py): set before jax is
# imported so that jax reads it as its configuration; STOCHTHERMO_JAX_CACHE=0 turns it off.
from experiments._jax_cache import cache_environment

os.environ.update(cache_environment())

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
# jax-md 0.2.29 multiplies int64 by float32 while importing (jax_md.rigid_body): import it
# once here, before promotion turns strict, so the library's `from jax_md import ...` works.
import jax_md  # noqa: E402, F401

if os.environ.get("STOCHTHERMO_STRICT_PROMOTION", "1") != "0":
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    jax.config.update("jax_numpy_rank_promotion", "raise")
