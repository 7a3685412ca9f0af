"""Promotion exceptions for dependencies that break the tests' strict rules (conftest.py)."""

import contextlib

import jax


@contextlib.contextmanager
def pymbar_promotion():
    """Around a call into pymbar (directly or through alchemlyb's MBAR): pymbar 4.0.3's JAX
    solvers broadcast by rank promotion ((K, N) - (N,)) and mix int64 N_k with float64, so the
    call runs under jax's default rank and dtype promotion."""
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        yield
