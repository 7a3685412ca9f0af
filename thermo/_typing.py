"""Shape-typed aliases shared by every module (jaxtyping)."""

from __future__ import annotations

from typing import Any

from jaxtyping import Array, Float, Int, PRNGKeyArray, PyTree, Scalar

PRNGKey = PRNGKeyArray
Position = Float[Array, "dim"]
Positions = Float[Array, "n dim"]
LogWeights = Float[Array, "n"]
ScalarLike = float | Scalar
Args = Any

__all__ = [
    "Array",
    "Args",
    "Float",
    "Int",
    "LogWeights",
    "Position",
    "Positions",
    "PRNGKey",
    "PyTree",
    "Scalar",
    "ScalarLike",
]
