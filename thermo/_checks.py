r"""Argument checks shared by every public entry point: bad input fails at the boundary.

One place for the checks of numeric arguments (step sizes, ``dt``, counts, densities,
temperatures, schedule lengths), so that every entry point says the same thing in the
same words: the argument's name, the allowed range and the value it got.

* Checks run host-side on Python numbers and concrete arrays, once, when a kernel or an
  estimator is built; they never enter a compiled loop. A traced value (inside ``jit``,
  ``vmap`` or ``grad``, e.g. a step size under adaptation) passes through unchecked.
* Every check returns its argument unchanged (a count is returned as a Python ``int``),
  so a valid call computes bit for bit what it computed before.
* :func:`warn_if_diverged` is the host-side check after a fixed-step run: it looks at
  the final positions once and warns when they are non-finite or have exploded.
* The estimators' data checks (:func:`check_1d_finite`, :func:`check_u_kn`,
  :func:`check_n_k`): errors at the boundary, never a silent NaN. Checks on values
  (finiteness) need concrete arrays; when an estimator is traced (under ``jit``/``vmap``,
  e.g. inside :func:`thermo.estimators.bootstrap`) only the shape checks run, the value
  checks having been done on the original data.

Errors are ``ValueError`` (a value out of range, a non-integer count) or ``TypeError``
(not a number at all).
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "DivergenceWarning",
    "as_float_array",
    "check_1d_finite",
    "check_n_k",
    "check_u_kn",
    "check_count",
    "check_finite",
    "check_positive",
    "check_psd",
    "check_real",
    "is_traced",
    "warn_if_diverged",
]

#: A run is flagged as exploded when its largest final coordinate exceeds this many
#: times the largest initial one (or 1 when that is smaller). A stable fixed-step run
#: moves a finite distance: free diffusion for 10^6 unit steps travels about 10^3; an
#: unstable step grows geometrically and passes 10^6 within tens of steps.
EXPLOSION_FACTOR = 1e6


class DivergenceWarning(RuntimeWarning):
    """A fixed-step trajectory ended non-finite or exploded: the step size is too large."""


def is_traced(x: Any) -> bool:
    """True when ``x`` (or a leaf of it) is an abstract value inside a JAX transformation."""
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(x))


def _as_numbers(value: Any, name: str) -> np.ndarray:
    if isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be a number, got the bool {value!r}")
    try:
        arr = np.asarray(value)
    except Exception:  # noqa: BLE001 (anything that is not array-like)
        raise TypeError(f"{name} must be a number, got {type(value).__name__}") from None
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    return arr


def _show(arr: np.ndarray) -> str:
    if arr.ndim == 0:
        return repr(arr.item())
    bad = ~np.isfinite(arr.astype(np.float64))
    return f"an array containing {(arr[bad] if bad.any() else arr).flat[0]!r}"


def check_real(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    finite: bool = True,
) -> Any:
    """``value`` (a number or an array of them, every entry) in the given interval.

    Args:
        value: a Python number, NumPy or concrete JAX array; a traced value is returned
            unchecked.
        name: the argument's name, as the user wrote it.
        low, high: bounds (``None``: unbounded).
        low_open, high_open: exclude the bound itself.
        finite: also reject ``inf`` (NaN is always rejected).

    Returns:
        ``value`` unchanged.

    Raises:
        ValueError: naming ``name``, the interval and the offending value.
        TypeError: when ``value`` is not numeric.
    """
    if is_traced(value):
        return value
    arr = _as_numbers(value, name)
    a = arr.astype(np.float64)
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    interval = f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"
    bad = np.isnan(a)
    if finite:
        bad |= np.isinf(a)
    if low is not None:
        bad |= (a <= low) if low_open else (a < low)
    if high is not None:
        bad |= (a >= high) if high_open else (a > high)
    if np.any(bad):
        worst = arr[bad].flat[0].item() if arr.ndim else arr.item()
        got = repr(worst) if arr.ndim == 0 else f"an array containing {worst!r}"
        kind = "a finite number" if finite else "a number"
        raise ValueError(f"{name} must be {kind} in {interval}, got {got}")
    return value


def check_positive(value: Any, name: str, *, allow_zero: bool = False, finite: bool = True) -> Any:
    """``value > 0`` (``>= 0`` with ``allow_zero``) and finite, every entry; returned unchanged.

    Raises:
        ValueError: naming ``name`` and the offending value (NaN included).
        TypeError: when ``value`` is not numeric.
    """
    if is_traced(value):
        return value
    arr = _as_numbers(value, name)
    a = arr.astype(np.float64)
    bad = np.isnan(a) | ((a < 0) if allow_zero else (a <= 0))
    if finite:
        bad |= np.isinf(a)
    if np.any(bad):
        worst = arr[bad].flat[0].item() if arr.ndim else arr.item()
        got = repr(worst) if arr.ndim == 0 else f"an array containing {worst!r}"
        what = "non-negative" if allow_zero else "positive"
        fin = " and finite" if finite else ""
        raise ValueError(f"{name} must be {what}{fin}, got {got}")
    return value


def check_finite(value: Any, name: str) -> Any:
    """Every entry of ``value`` finite (no NaN, no inf); see :func:`check_real`."""
    if is_traced(value):
        return value
    arr = _as_numbers(value, name)
    if not np.all(np.isfinite(arr.astype(np.float64))):
        raise ValueError(f"{name} must be finite, got {_show(arr)}")
    return value


def check_count(value: Any, name: str, *, minimum: int = 1) -> int:
    """A whole number ``>= minimum``, returned as a Python ``int``.

    Integral floats (``3.0``, ``1e4``) are accepted; ``2.7``, NaN, inf and bools are not,
    so a count is never silently truncated. A traced value is returned unchanged.
    """
    if is_traced(value):
        return value
    if isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be an integer, got the bool {value!r}")
    arr = _as_numbers(value, name)
    if arr.ndim != 0:
        raise TypeError(f"{name} must be a single integer, got an array of shape {arr.shape}")
    v = arr.item()
    if isinstance(v, float):
        if not math.isfinite(v) or v != math.floor(v):
            raise ValueError(f"{name} must be a whole number (>= {minimum}), got {v!r}")
        v = int(v)
    elif not isinstance(v, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    v = int(v)
    if v < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {v}")
    return v


def check_psd(matrix: Any, name: str, *, strict: bool = True, rtol: float = 1e-6) -> Any:
    """A symmetric (positive-definite with ``strict``, else semi-definite) finite matrix, or a
    stack ``(..., d, d)`` of them; checked by ``numpy.linalg.eigvalsh``.

    The symmetry tolerance is ``rtol`` times the largest entry; the definiteness test
    compares the smallest eigenvalue with ``-d * eps * max|lambda|`` (semi-definite) or
    ``0`` (definite), ``eps`` the machine epsilon of the matrix's dtype.
    """
    if is_traced(matrix):
        return matrix
    arr = _as_numbers(matrix, name)
    if arr.ndim < 2 or arr.shape[-1] != arr.shape[-2]:
        raise ValueError(f"{name} must be a square matrix (or a stack of them), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    a = arr.astype(np.float64)
    scale = float(np.max(np.abs(a))) if a.size else 0.0
    if not np.allclose(a, np.swapaxes(a, -1, -2), rtol=0.0, atol=rtol * max(scale, 1e-300)):
        raise ValueError(f"{name} must be symmetric")
    eig = np.linalg.eigvalsh(a)
    eps = float(np.finfo(arr.dtype).eps) if np.issubdtype(arr.dtype, np.floating) else 2.2e-16
    floor = -arr.shape[-1] * eps * max(float(np.max(np.abs(eig))), 1e-300)
    smallest = float(np.min(eig))
    if (strict and smallest <= 0.0) or (not strict and smallest < floor):
        what = "positive definite" if strict else "positive semi-definite"
        raise ValueError(f"{name} must be {what}; its smallest eigenvalue is {smallest:.3g}")
    return matrix


def _positions(state: Any):
    if hasattr(state, "dtype") and hasattr(state, "shape"):  # the positions themselves
        return state
    for field in ("position", "positions"):
        pos = getattr(state, field, None)
        if pos is not None and hasattr(pos, "dtype"):
            return pos
    return None


def warn_if_diverged(initial_state: Any, final_state: Any, who: str) -> None:
    """Warn (:class:`DivergenceWarning`) when a run's final positions are non-finite or
    exploded (:data:`EXPLOSION_FACTOR` times the initial scale).

    Host-side, once, after the run. A state is an array of positions or has a
    ``position`` (or ``positions``) field; other states and traced ones are not looked at.
    """
    final = _positions(final_state)
    if final is None or is_traced(final) or is_traced(initial_state):
        return
    x = np.asarray(final)
    if not np.issubdtype(x.dtype, np.floating) or x.size == 0:
        return
    finite = np.isfinite(x)
    if not np.all(finite):
        n_bad = int(np.sum(~finite))
        warnings.warn(
            f"{who}: the trajectory diverged: {n_bad} final position coordinate(s) are NaN or "
            "inf; the step size (dt / step_size) is too large for this energy",
            DivergenceWarning,
            stacklevel=3,
        )
        return
    start = _positions(initial_state)
    scale0 = 1.0 if start is None else max(1.0, float(np.max(np.abs(np.asarray(start)))))
    scale = float(np.max(np.abs(x)))
    if scale > EXPLOSION_FACTOR * scale0:
        warnings.warn(
            f"{who}: the trajectory exploded: max |position| = {scale:.3g}, from {scale0:.3g} "
            "at the start; the step size (dt / step_size) is too large for this energy",
            DivergenceWarning,
            stacklevel=3,
        )


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
