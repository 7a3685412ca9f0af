"""Test configuration: float64 everywhere, as the estimators' exact checks need it.

The library itself never flips global JAX flags; only tests, experiments and the
book do.
"""

import jax

jax.config.update("jax_enable_x64", True)
