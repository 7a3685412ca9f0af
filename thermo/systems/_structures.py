r"""Starting structures and local minimisation: Mackay icosahedra and L-BFGS relaxation.

A Mackay icosahedron (Mackay 1962) of :math:`k` shells has
:math:`1 + \sum_{m=1}^k (10m^2 + 2)` atoms: 1, 13, 55, 147, ... Shell :math:`m` holds
the points :math:`(a\,v_i + b\,v_j + c\,v_l)` for every triangular face
:math:`(v_i, v_j, v_l)` of the unit icosahedron and every :math:`a + b + c = m`,
:math:`a, b, c \ge 0` (the vertices, edge points and face points of the scaled
triangle grid). These are the standard starting points for the LJ-13 and LJ-55
global minima (Northby 1987; Wales & Doye 1997).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.tree_utils as otu
from jaxtyping import Array, Float, Int

__all__ = ["Relaxed", "icosahedron_vertices", "mackay_icosahedron", "relax"]


def icosahedron_vertices() -> np.ndarray:
    r"""The 12 vertices of a regular icosahedron with circumradius 1, shape ``(12, 3)``.

    They are the cyclic permutations of :math:`(0, \pm1, \pm\varphi)`,
    :math:`\varphi = (1 + \sqrt5)/2`, divided by :math:`\sqrt{1 + \varphi^2}`.
    """
    phi = (1.0 + math.sqrt(5.0)) / 2.0
    v = []
    for s1 in (-1.0, 1.0):
        for s2 in (-1.0, 1.0):
            v.append((0.0, s1, s2 * phi))
            v.append((s1, s2 * phi, 0.0))
            v.append((s2 * phi, 0.0, s1))
    v = np.asarray(v)
    return v / np.linalg.norm(v[0])


def _faces(v: np.ndarray) -> list[tuple[int, int, int]]:
    d = np.linalg.norm(v[:, None] - v[None], axis=-1)
    edge = d[d > 1e-9].min()
    adj = np.abs(d - edge) < 1e-6
    n = len(v)
    return [
        (i, j, k)
        for i in range(n)
        for j in range(i + 1, n)
        for k in range(j + 1, n)
        if adj[i, j] and adj[j, k] and adj[i, k]
    ]


def mackay_icosahedron(n_shells: int, shell_spacing: float = 1.0) -> np.ndarray:
    r"""Mackay icosahedron with ``n_shells`` shells around a central atom, shape ``(N, 3)``.

    ``N = 13`` for one shell, ``55`` for two, ``147`` for three. Shell :math:`m`
    has its vertices at radius :math:`m \cdot` ``shell_spacing`` (the radial
    nearest-neighbour distance; the tangential one is 5.1 % longer). Centred at 0.
    """
    if n_shells < 0:
        raise ValueError(f"n_shells must be >= 0, got {n_shells}")
    v = icosahedron_vertices()
    faces = _faces(v)
    points = [np.zeros(3)]
    for m in range(1, n_shells + 1):
        shell = []
        for i, j, k in faces:
            for a in range(m + 1):
                for b in range(m + 1 - a):
                    c = m - a - b
                    shell.append(a * v[i] + b * v[j] + c * v[k])
        shell = np.asarray(shell)
        _, first = np.unique(np.round(shell, 9), axis=0, return_index=True)
        shell = shell[np.sort(first)]
        points.extend(shell)
    out = np.asarray(points) * shell_spacing
    expected = 1 + sum(10 * m * m + 2 for m in range(1, n_shells + 1))
    assert out.shape == (expected, 3), out.shape
    return out


class Relaxed(NamedTuple):
    """Result of :func:`relax`.

    Attributes:
        position: the local minimiser, shape ``(dim,)``.
        energy: its energy, shape ``()``.
        grad_norm: :math:`|\\nabla U|` there, shape ``()``.
        n_steps: L-BFGS iterations used, shape ``()``.
    """

    position: Float[Array, " dim"]
    energy: Float[Array, ""]
    grad_norm: Float[Array, ""]
    n_steps: Int[Array, ""]


def relax(
    energy_fn: Callable[[Float[Array, " dim"]], Float[Array, ""]],
    x0: Float[Array, " dim"],
    *,
    max_steps: int = 2000,
    gtol: float = 1e-9,
    memory_size: int = 20,
) -> Relaxed:
    r"""Local minimisation of ``energy_fn`` by L-BFGS with a zoom line search (optax.lbfgs).

    Iterates until :math:`|\nabla U| <` ``gtol`` or ``max_steps`` iterations
    (Nocedal & Wright 2006, Alg. 7.5), inside one ``lax.while_loop``. Use float64
    for tight tolerances. Not jitted: wrap it in ``jax.jit`` (``energy_fn`` static).
    """
    x0 = jnp.asarray(x0)
    opt = optax.lbfgs(memory_size=memory_size)
    value_and_grad = optax.value_and_grad_from_state(energy_fn)

    def step(carry):
        x, state = carry
        value, grad = value_and_grad(x, state=state)
        # optax 0.2.8's lbfgs mixes its int32 memory index with int64 under x64
        with jax.numpy_dtype_promotion("standard"):
            updates, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=energy_fn)
        return optax.apply_updates(x, updates), state

    def cond(carry):
        _, state = carry
        count = otu.tree_get(state, "count")
        grad = otu.tree_get(state, "grad")
        return (count == 0) | ((count < max_steps) & (otu.tree_norm(grad) >= gtol))

    x, state = jax.lax.while_loop(cond, step, (x0, opt.init(x0)))
    return Relaxed(
        position=x,
        energy=energy_fn(x),
        grad_norm=jnp.linalg.norm(jax.grad(energy_fn)(x)),
        n_steps=otu.tree_get(state, "count"),
    )
