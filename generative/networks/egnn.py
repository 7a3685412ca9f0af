r"""An E(n)-equivariant graph network (EGNN; Satorras, Hoogeboom & Welling 2021, ICML).

Particles :math:`x_i\in\mathbb R^D`, :math:`i = 1..n`, carry invariant features
:math:`h_i` (here the time embedding, the same for every particle). One layer is
(Satorras et al. 2021, eqs. 3-6, with the normalised coordinate update of their E(n)
flows paper, Satorras et al. 2021b, eq. 12):

.. math::
    m_{ij} &= \phi_e\big(h_i, h_j, \|x_i - x_j\|^2\big),\\
    x_i &\leftarrow x_i + \frac{1}{n-1}\sum_{j\ne i}
          \frac{x_i - x_j}{\|x_i - x_j\| + 1}\,\phi_x(m_{ij}),\\
    h_i &\leftarrow h_i + \phi_h\big(h_i, \textstyle\sum_{j\ne i} m_{ij}\big).

Distances are invariant and the coordinate update is a sum of relative vectors times
invariants, so the map :math:`x\mapsto x_L - x_0` commutes with rotations, reflections,
translations and permutations of the particles. The output has zero mean over particles,
i.e. it lies in the centre-of-mass-free subspace (Hoogeboom et al. 2022).
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float

from thermo._typing import PRNGKey, ScalarLike
from thermo.systems import remove_com

from .mlp import sinusoidal_embedding

__all__ = ["EGNNLayer", "EGNN"]


def _radial_basis(dist: Array, n_rbf: int, rbf_max: float) -> Array:
    r"""Gaussian radial basis :math:`\exp(-(r - c_k)^2 / 2w^2)`, :math:`c_k` evenly spaced on
    :math:`[0, r_{\max}]` and :math:`w` their spacing (SchNet's distance expansion, Schütt et
    al. 2017). ``dist``: ``(..., 1)`` -> ``(..., n_rbf)``."""
    centres = jnp.linspace(0.0, rbf_max, n_rbf, dtype=dist.dtype)
    width = rbf_max / max(n_rbf - 1, 1)
    centres = centres.reshape((1,) * (dist.ndim - 1) + (n_rbf,))
    return jnp.exp(-0.5 * ((dist - centres) / width) ** 2)


def _identity(y: Array) -> Array:
    return y


def _apply_tail(mlp: eqx.nn.MLP, pre: Array, activation, final_activation) -> Array:
    """Finish an ``eqx.nn.MLP`` given the pre-activation of its first layer (any batch shape):
    the same function as ``mlp`` with a scalar activation, applied to the last axis."""
    y = activation(pre)
    for layer in mlp.layers[1:-1]:
        y = activation(
            y @ layer.weight.T + jnp.broadcast_to(layer.bias, (*y.shape[:-1], layer.bias.shape[0]))
        )
    last = mlp.layers[-1]
    return final_activation(
        y @ last.weight.T + jnp.broadcast_to(last.bias, (*y.shape[:-1], last.bias.shape[0]))
    )


class EGNNLayer(eqx.Module):
    r"""One E(n)-equivariant message-passing layer (Satorras et al. 2021, eqs. 3-6).

    The edge network sees :math:`[h_i, h_j, \|x_i - x_j\|^2]` and, with ``n_rbf > 0``, a
    Gaussian radial-basis expansion of :math:`\|x_i - x_j\|` (centres on
    ``[0, rbf_max]``), which resolves the steep short-range part of pair potentials (e.g.
    the Lennard-Jones core) better than the raw squared distance. The first linear map of
    the edge network is split into its :math:`h_i`, :math:`h_j` and distance blocks, so the
    node blocks are computed once per particle instead of once per pair (the same function,
    :math:`O(n)` instead of :math:`O(n^2)` work for those blocks).

    Args:
        hidden: feature width.
        key: PRNG key.
        activation: hidden activation (SiLU, as in Satorras et al.).
        n_rbf: number of radial-basis distance features (0: only :math:`\|x_i-x_j\|^2`).
        rbf_max: largest radial-basis centre (in the units of the coordinates).
    """

    edge_mlp: eqx.nn.MLP
    coord_mlp: eqx.nn.MLP
    node_mlp: eqx.nn.MLP
    activation: Callable[[Array], Array] = eqx.field(static=True)
    hidden: int = eqx.field(static=True)
    n_rbf: int = eqx.field(static=True)
    rbf_max: float = eqx.field(static=True)

    def __init__(
        self,
        hidden: int,
        key: PRNGKey,
        *,
        activation=jax.nn.silu,
        n_rbf: int = 0,
        rbf_max: float = 4.0,
    ):
        if n_rbf < 0 or rbf_max <= 0:
            raise ValueError(f"need n_rbf >= 0 and rbf_max > 0, got {n_rbf}, {rbf_max}")
        k_e, k_x, k_h = jr.split(key, 3)
        self.activation = activation
        self.hidden = int(hidden)
        self.n_rbf = int(n_rbf)
        self.rbf_max = float(rbf_max)
        self.edge_mlp = eqx.nn.MLP(
            2 * hidden + 1 + self.n_rbf,
            hidden,
            hidden,
            1,
            activation=activation,
            final_activation=activation,
            key=k_e,
        )
        self.coord_mlp = eqx.nn.MLP(hidden, 1, hidden, 1, activation=activation, key=k_x)
        self.node_mlp = eqx.nn.MLP(2 * hidden, hidden, hidden, 1, activation=activation, key=k_h)

    def __call__(
        self, h: Float[Array, "n hidden"], x: Float[Array, "n D"]
    ) -> tuple[Float[Array, "n hidden"], Float[Array, "n D"]]:
        n = x.shape[0]
        hid = self.hidden
        diff = x[:, None, :] - x[None, :, :]  # (n, n, D)
        dist2 = jnp.sum(diff**2, axis=-1, keepdims=True)  # (n, n, 1)
        # sqrt(dist2 + 1e-12) keeps the gradient finite on the (masked) diagonal.
        dist = jnp.sqrt(dist2 + 1e-12)
        feats = dist2
        if self.n_rbf:
            feats = jnp.concatenate([dist2, _radial_basis(dist, self.n_rbf, self.rbf_max)], -1)
        first = self.edge_mlp.layers[0]
        w_i, w_j, w_d = (
            first.weight[:, :hid],
            first.weight[:, hid : 2 * hid],
            first.weight[:, 2 * hid :],
        )
        pre = (
            (h @ w_i.T)[:, None, :]
            + (h @ w_j.T)[None, :, :]
            + feats @ w_d.T
            + first.bias[None, None, :]
        )
        m = _apply_tail(self.edge_mlp, pre, self.activation, self.activation)  # (n, n, hidden)
        mask = 1.0 - jnp.eye(n, dtype=x.dtype)
        m = m * mask[..., None]
        c0 = self.coord_mlp.layers[0]
        w = _apply_tail(
            self.coord_mlp, m @ c0.weight.T + c0.bias[None, None, :], self.activation, _identity
        )
        w = w * mask[..., None]  # (n, n, 1)
        x = x + jnp.sum(diff / (dist + 1.0) * w, axis=1) / (n - 1)
        h = h + jax.vmap(self.node_mlp)(jnp.concatenate([h, jnp.sum(m, axis=1)], axis=-1))
        return h, x


class EGNN(eqx.Module):
    r"""EGNN noise/score network on flat particle coordinates, ``(t, x) -> (n*D,)``.

    The input is centred (CoM removed), passed through ``n_layers`` EGNN layers with the
    time embedding as every particle's initial feature, and the output is the centred
    displacement :math:`x_L - x_0`, flattened.

    Args:
        n_particles: ``n``.
        spatial_dim: ``D``.
        key: PRNG key.
        hidden: feature width.
        n_layers: number of message-passing layers.
        embed_dim: time-embedding size (even).
        n_rbf, rbf_max: radial-basis distance features of every layer (see
            :class:`EGNNLayer`; default none, as in Satorras et al.).
    """

    embed: eqx.nn.Linear
    layers: tuple[EGNNLayer, ...]
    n_particles: int = eqx.field(static=True)
    spatial_dim: int = eqx.field(static=True)
    embed_dim: int = eqx.field(static=True)

    def __init__(
        self,
        n_particles: int,
        spatial_dim: int,
        key: PRNGKey,
        *,
        hidden: int = 32,
        n_layers: int = 3,
        embed_dim: int = 16,
        n_rbf: int = 0,
        rbf_max: float = 4.0,
    ):
        if n_particles < 2:
            raise ValueError(f"EGNN needs at least 2 particles, got {n_particles}")
        self.n_particles = int(n_particles)
        self.spatial_dim = int(spatial_dim)
        self.embed_dim = int(embed_dim)
        k_emb, *k_layers = jr.split(key, n_layers + 1)
        self.embed = eqx.nn.Linear(embed_dim, hidden, key=k_emb)
        self.layers = tuple(EGNNLayer(hidden, k, n_rbf=n_rbf, rbf_max=rbf_max) for k in k_layers)

    def __call__(self, t: ScalarLike, x: Float[Array, " d"]) -> Float[Array, " d"]:
        n, dim = self.n_particles, self.spatial_dim
        if x.shape != (n * dim,):
            raise ValueError(f"EGNN expects x of shape ({n * dim},), got {x.shape}")
        pos = remove_com(x, n, dim).reshape(n, dim)
        emb = self.embed(sinusoidal_embedding(t, self.embed_dim).astype(x.dtype))
        h = jnp.broadcast_to(emb, (n, emb.shape[0]))
        y = pos
        for layer in self.layers:
            h, y = layer(h, y)
        return remove_com((y - pos).reshape(n * dim), n, dim)
