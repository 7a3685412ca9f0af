r"""A multilayer perceptron with a sinusoidal time embedding, for flat data.

The time embedding is the transformer's sinusoidal encoding (Vaswani et al. 2017, Sec.
3.5) used by DDPM (Ho et al. 2020), applied to continuous :math:`t\in[0, T]`:

.. math:: e(t) = \big[\sin(\omega_j t), \cos(\omega_j t)\big]_{j < k},\qquad
          \omega_j = \omega_{\max}^{j/(k-1)},

with geometrically spaced frequencies from 1 to :math:`\omega_{\max}` (default 100, so
that the finest wavelength, :math:`2\pi/100\approx 0.06`, resolves a few hundred
sampler steps on :math:`[0,1]`).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from thermo._typing import PRNGKey, ScalarLike

__all__ = ["sinusoidal_embedding", "MLP"]


def sinusoidal_embedding(
    t: ScalarLike, dim: int, max_frequency: float = 100.0
) -> Float[Array, " dim"]:
    r"""Sinusoidal features :math:`[\sin\omega_j t, \cos\omega_j t]` of a scalar time; ``dim`` even."""
    if dim % 2 != 0 or dim < 2:
        raise ValueError(f"embedding dim must be even and >= 2, got {dim}")
    half = dim // 2
    freqs = jnp.exp(jnp.linspace(0.0, math.log(max_frequency), half))
    arg = jnp.asarray(t) * freqs
    return jnp.concatenate([jnp.sin(arg), jnp.cos(arg)])


class MLP(eqx.Module):
    r"""A noise/score network :math:`(t, x)\mapsto \mathbb R^d`: an MLP on :math:`[x, e(t)]`.

    Args:
        dim: data dimension ``d``.
        key: PRNG key for the initial weights.
        width: hidden width.
        depth: number of hidden layers.
        embed_dim: size of the time embedding (even).
        activation: hidden activation (SiLU by default, as in DDPM's U-Net).
    """

    mlp: eqx.nn.MLP
    dim: int = eqx.field(static=True)
    embed_dim: int = eqx.field(static=True)

    def __init__(
        self,
        dim: int,
        key: PRNGKey,
        *,
        width: int = 128,
        depth: int = 3,
        embed_dim: int = 16,
        activation=jax.nn.silu,
    ):
        self.dim = int(dim)
        self.embed_dim = int(embed_dim)
        self.mlp = eqx.nn.MLP(
            in_size=self.dim + self.embed_dim,
            out_size=self.dim,
            width_size=width,
            depth=depth,
            activation=activation,
            key=key,
        )

    def __call__(self, t: ScalarLike, x: Float[Array, " d"]) -> Float[Array, " d"]:
        if x.shape != (self.dim,):
            raise ValueError(f"MLP expects x of shape ({self.dim},), got {x.shape}")
        emb = sinusoidal_embedding(t, self.embed_dim).astype(x.dtype)
        return self.mlp(jnp.concatenate([x, emb]))
