r"""The :class:`System` type: an energy, an inverse temperature and what is known exactly.

Every system in the registry is a Boltzmann density on flat configurations
:math:`x \in \mathbb{R}^{\mathrm{dim}}`,

.. math:: p(x) = \frac{e^{-\beta U(x)}}{Z}, \qquad
          \log Z = \log \int e^{-\beta U(x)}\, \mathrm{d}x,

where ``energy`` is :math:`U`, ``beta`` is :math:`\beta` and ``log_z`` is the exact
:math:`\log Z` *in this convention* (the integral of the unnormalised density
``exp(log_prob)``), or ``None`` where no exact value is known.

Particle systems store ``n_particles`` particles in ``spatial_dim`` dimensions as
one flat vector, particle-major: ``x.reshape(n_particles, spatial_dim)``. For the
toy (non-particle) systems ``n_particles`` and ``spatial_dim`` are ``None``.

Systems are immutable :class:`equinox.Module` s; every method acts on ONE
configuration and is meant to be ``jax.vmap`` ed over a population and ``jax.jit`` ed
by the caller (no method is jitted here, so they compose).
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float

from .._checks import check_count
from .._typing import PRNGKey

__all__ = ["ParticleSystem", "System", "pairwise_distances", "remove_com"]


class System(eqx.Module):
    r"""Abstract Boltzmann system :math:`p(x) \propto e^{-\beta U(x)}` on flat ``(dim,)`` vectors.

    Attributes:
        name: the registry name (e.g. ``"lj13"``).
        dim: length of a flat configuration.
        beta: inverse temperature :math:`\beta` (in the energy's units).
        log_z: exact :math:`\log \int e^{-\beta U(x)} dx`, or ``None`` if unknown.
        n_particles: number of particles, ``None`` for non-particle systems.
        spatial_dim: dimension of space per particle, ``None`` for non-particle systems.
        prior_scale: a sensible isotropic standard deviation for an initial
            Gaussian population / a sampler's prior (per coordinate); see
            :meth:`initial_positions`. Each concrete class says where it comes from.
    """

    # declared once here (static: none of them is a pytree leaf); each concrete class's
    # __init__ sets them and declares only its own extra fields
    name: str = eqx.field(static=True)
    dim: int = eqx.field(static=True)
    beta: float = eqx.field(static=True)
    log_z: float | None = eqx.field(static=True)
    n_particles: int | None = eqx.field(static=True)
    spatial_dim: int | None = eqx.field(static=True)
    prior_scale: float = eqx.field(static=True)

    @abc.abstractmethod
    def _energy(self, x: Float[Array, " dim"]) -> Float[Array, ""]:
        """The potential energy of one validated flat configuration."""

    @abc.abstractmethod
    def sample(self, key: PRNGKey, n: int) -> Float[Array, "n dim"]:
        """Exact, independent samples ``(n, dim)`` from :math:`p`.

        Raises:
            NotImplementedError: for systems without an exact sampler.
        """

    def _check(self, x: Float[Array, " dim"]) -> Float[Array, " dim"]:
        x = jnp.asarray(x)
        if x.shape != (self.dim,):
            raise ValueError(
                f"{self.name}: expected one flat configuration of shape ({self.dim},), "
                f"got shape {x.shape}; vmap over a population of shape (n, {self.dim})."
            )
        if not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(float)
        return x

    def energy(self, x: Float[Array, " dim"]) -> Float[Array, ""]:
        r"""Potential energy :math:`U(x)` of one flat configuration ``(dim,) -> ()``."""
        return self._energy(self._check(x))

    def log_prob(self, x: Float[Array, " dim"]) -> Float[Array, ""]:
        r"""Unnormalised log density :math:`-\beta U(x)`; subtract ``log_z`` to normalise."""
        return -self.beta * self.energy(x)

    def score(self, x: Float[Array, " dim"]) -> Float[Array, " dim"]:
        r"""Score :math:`\nabla \log p(x) = -\beta \nabla U(x)`, shape ``(dim,)``."""
        return jax.grad(self.log_prob)(x)

    def force(self, x: Float[Array, " dim"]) -> Float[Array, " dim"]:
        r"""Force :math:`F(x) = -\nabla U(x)`, shape ``(dim,)``."""
        return -jax.grad(self.energy)(x)

    def energy_and_force(
        self, x: Float[Array, " dim"]
    ) -> tuple[Float[Array, ""], Float[Array, " dim"]]:
        r""":math:`(U(x), -\nabla U(x))` in one forward-backward pass."""
        value, grad = jax.value_and_grad(self.energy)(x)
        return value, -grad

    def initial_positions(self, key: PRNGKey, n: int) -> Float[Array, "n dim"]:
        r"""A starting population :math:`x \sim \mathcal N(0, s^2 I)`, ``s = prior_scale``.

        For particle systems the centre of mass of every configuration is removed,
        so the population lives in the subspace where the translation-invariant
        energies are normalisable. These are NOT samples from :math:`p`.
        """
        n = check_count(n, "n", minimum=0)
        x = self.prior_scale * jr.normal(key, (n, self.dim))
        if self.n_particles is not None:
            x = jax.vmap(lambda y: remove_com(y, self.n_particles, self.spatial_dim))(x)
        return x


def remove_com(
    x: Float[Array, "*batch dim"], n_particles: int, spatial_dim: int
) -> Float[Array, "*batch dim"]:
    r"""Subtract the centre of mass: :math:`x_i \leftarrow x_i - \frac1n \sum_j x_j`.

    The orthogonal projector onto the CoM-free subspace, the one every sampler, network
    and metric of the project uses. ``x`` is flat particle-major coordinates with trailing
    size ``n_particles * spatial_dim`` and any leading batch shape (flat in, flat out); a
    NumPy array in gives a NumPy array out.
    """
    if x.shape[-1] != n_particles * spatial_dim:
        raise ValueError(
            f"expected trailing size {n_particles}*{spatial_dim}={n_particles * spatial_dim}, "
            f"got shape {x.shape}"
        )
    # array methods, not jnp functions: a NumPy array stays NumPy (float64 whatever JAX's
    # precision, as the metrics need), a JAX array or tracer stays JAX
    pos = x.reshape((*x.shape[:-1], n_particles, spatial_dim))
    return (pos - pos.mean(axis=-2, keepdims=True)).reshape(x.shape)


def _pair_indices(n_particles: int):
    # NumPy, not jnp: the index table is a compile-time constant instead of being rebuilt
    # inside every traced energy call (XLA does not always hoist it out of loops, e.g. an
    # HMC leapfrog; measured on LJ-55).
    return np.triu_indices(n_particles, k=1)


def pairwise_squared_distances(
    x: Float[Array, " dim"], n_particles: int, spatial_dim: int
) -> Float[Array, " n_pairs"]:
    r""":math:`r_{ij}^2 = |x_i - x_j|^2` for the ``n(n-1)/2`` unique pairs ``i < j``.

    Smooth everywhere, including at coincident particles.
    """
    pos = jnp.reshape(x, (n_particles, spatial_dim))
    i, j = _pair_indices(n_particles)
    diff = pos[i] - pos[j]
    return jnp.sum(diff * diff, axis=-1)


def safe_sqrt(r2: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
    r""":math:`\sqrt{r^2}` whose gradient is 0 (not NaN) at :math:`r^2 = 0` (the "double where").

    Equal to ``sqrt`` for every other argument, so energies at physical distances are
    unchanged and a NaN (or negative) ``r2`` stays NaN instead of becoming a distance.
    """
    zero = r2 == 0.0
    safe = jnp.where(zero, 1.0, r2)
    return jnp.where(zero, 0.0, jnp.sqrt(safe))


def pairwise_distances(
    x: Float[Array, " dim"], n_particles: int, spatial_dim: int
) -> Float[Array, " n_pairs"]:
    r"""Interparticle distances :math:`r_{ij}` for the unique pairs ``i < j``, in the order of
    ``jnp.triu_indices(n_particles, 1)``; differentiable with a finite gradient at ``r = 0``."""
    return safe_sqrt(pairwise_squared_distances(x, n_particles, spatial_dim))


class ParticleSystem(System):
    """Abstract system of ``n_particles`` identical particles in ``spatial_dim`` dimensions.

    The energy is invariant under translations, rotations and permutations of the
    particles. Configurations are flat, particle-major vectors.
    """

    def positions(self, x: Float[Array, " dim"]) -> Float[Array, "n_particles spatial_dim"]:
        """Reshape one flat configuration to ``(n_particles, spatial_dim)``."""
        return jnp.reshape(self._check(x), (self.n_particles, self.spatial_dim))

    def remove_com(self, x: Float[Array, " dim"]) -> Float[Array, " dim"]:
        r"""Remove the centre of mass, :math:`x_i - \bar x` (see :func:`remove_com`)."""
        return remove_com(self._check(x), self.n_particles, self.spatial_dim)

    def pairwise_distances(self, x: Float[Array, " dim"]) -> Float[Array, " n_pairs"]:
        """Unique-pair distances ``(n(n-1)/2,)`` (see :func:`pairwise_distances`)."""
        return pairwise_distances(self._check(x), self.n_particles, self.spatial_dim)

    def sample(self, key: PRNGKey, n: int) -> Float[Array, "n dim"]:
        """Particle systems have no exact sampler.

        Raises:
            NotImplementedError: always; use MCMC (``thermo.mcmc``) or the project's
                reference samples.
        """
        raise NotImplementedError(
            f"{self.name}: no exact sampler exists for this interacting particle "
            "system; draw samples with MCMC (thermo.mcmc) or load the project's "
            "reference samples instead."
        )
