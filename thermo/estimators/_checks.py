"""Input validation shared by the estimators (errors at the boundary, never a silent NaN).

Checks on values (finiteness) need concrete arrays; when an estimator is traced (under
``jit``/``vmap``, e.g. inside :func:`thermo.estimators.bootstrap`) only the shape checks
run, the value checks having been done on the original data.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def is_traced(x) -> bool:
    """True when ``x`` is an abstract value inside a JAX transformation."""
    return isinstance(x, jax.core.Tracer)


def as_float_array(x):
    """``x`` as a floating JAX array (ints are promoted to the default float dtype)."""
    arr = jnp.asarray(x)
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.result_type(float))
    return arr


def check_1d_finite(x, name: str):
    """A non-empty, finite 1-D float array, or a ``ValueError`` naming ``name``."""
    arr = as_float_array(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if not is_traced(arr) and not bool(np.all(np.isfinite(np.asarray(arr)))):
        raise ValueError(f"{name} contains NaN or inf values")
    return arr


def check_n_k(n_k, n_states: int, n_samples: int) -> np.ndarray:
    """Per-state sample counts: non-negative integers of length K summing to N."""
    arr = np.asarray(n_k)
    if arr.ndim != 1 or arr.shape[0] != n_states:
        raise ValueError(f"N_k must have shape ({n_states},) to match u_kn, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("N_k contains NaN or inf values")
    if np.any(arr < 0):
        raise ValueError(f"N_k must be non-negative, got {arr.tolist()}")
    if not np.all(arr == np.round(arr)):
        raise ValueError("N_k must hold whole numbers of samples")
    arr = arr.astype(np.int64)
    if int(arr.sum()) != n_samples:
        raise ValueError(
            f"N_k sums to {int(arr.sum())} but u_kn has {n_samples} samples (columns); "
            "samples must be ordered by the state they were drawn from, N_k[k] of each"
        )
    if int(arr.sum()) == 0:
        raise ValueError("N_k is all zeros: no samples")
    return arr


def check_u_kn(u_kn) -> np.ndarray | jax.Array:
    """A finite 2-D reduced-potential matrix ``(K, N)``; kept as given (no copy)."""
    if not hasattr(u_kn, "shape") or not hasattr(u_kn, "dtype"):
        u_kn = np.asarray(u_kn, dtype=np.float64)
    if u_kn.ndim != 2:
        raise ValueError(f"u_kn must be a 2-D array (K states, N samples), got shape {u_kn.shape}")
    if u_kn.shape[0] == 0 or u_kn.shape[1] == 0:
        raise ValueError(f"u_kn is empty, shape {u_kn.shape}")
    finite = jnp.all(jnp.isfinite(u_kn)) if isinstance(u_kn, jax.Array) else np.isfinite(u_kn).all()
    if not bool(finite):
        raise ValueError(
            "u_kn contains NaN or inf values; reduced potentials must be finite "
            "(a state that forbids a sample needs a large finite energy, not inf)"
        )
    return u_kn
