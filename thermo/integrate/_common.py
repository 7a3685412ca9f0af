r"""Boundary checks shared by the integrators (private)."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from .._checks import check_positive
from ..protocols import Protocol


def _check_position(x: Array, name: str = "x0") -> Array:
    x = jnp.asarray(x)
    if x.ndim != 1:
        raise ValueError(
            f"{name} must be one flat state of shape (d,), got shape {x.shape}; "
            "vmap over a population instead of passing a batch"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return eqx.error_if(x, ~jnp.all(jnp.isfinite(x)), f"{name} contains NaN or inf")


def _check_diffusion_shape(g_shape: tuple[int, ...], d: int) -> None:
    ok = (
        len(g_shape) == 0
        or (len(g_shape) == 1 and g_shape[0] == d)
        or (len(g_shape) == 2 and g_shape[0] == d)
    )
    if not ok:
        raise ValueError(
            f"diffusion must have shape () (scalar), ({d},) (diagonal) or ({d}, m) (full) "
            f"for a state of dimension {d}; got {g_shape}"
        )


def _positive(value: Any, name: str) -> None:
    check_positive(value, name)  # skips a traced value


def _value_and_grad(protocol: Protocol, x, lam):
    return jax.value_and_grad(protocol.energy_fn)(x, lam)
