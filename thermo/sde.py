r"""The SDE type, its time reversal and its probability-flow ODE.

An Itô SDE on :math:`\mathbb{R}^d`,

.. math:: dX_t = f(t, X_t)\,dt + G(t, X_t)\,dW_t,

is an :class:`AbstractSDE` with ``drift(t, x, args)`` and ``diffusion(t, x, args)``.
The diffusion array's rank says its type (positions ``x`` are always flat, shape
``(d,)``):

* **scalar**: ``G`` has shape ``()``, meaning :math:`G = g I`;
* **diagonal**: ``G`` has shape ``(d,)``, meaning :math:`G = \operatorname{diag}(g)`;
* **full**: ``G`` has shape ``(d, m)`` and multiplies an ``m``-dimensional Brownian motion.

Given a score :math:`s(t, x) = \nabla \log p_t(x)` of the forward marginals,
:meth:`AbstractSDE.reverse` gives Anderson's (1982) time reversal, written in the
*forward-running* reversed clock :math:`s = t_0 + t_1 - t` so that every integrator only
ever steps forward in time:

.. math:: d\bar X_s = \big[-f + G G^\top \nabla\log p + \nabla\!\cdot\!(G G^\top)\big](t_0+t_1-s, \bar X_s)\,ds
          + G(t_0+t_1-s, \bar X_s)\,d\bar W_s,

and :meth:`AbstractSDE.probability_flow` gives the ODE with the same marginals
(Song et al. 2021, eq. 13):

.. math:: \frac{dx}{dt} = f - \tfrac12 G G^\top \nabla \log p_t - \tfrac12 \nabla\!\cdot\!(G G^\top).

The divergence terms vanish when ``G`` does not depend on ``x``; they are computed by
autodiff only for SDEs that declare ``state_dependent_diffusion = True``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._typing import Args, ScalarLike

__all__ = [
    "AbstractSDE",
    "SDE",
    "LangevinSDE",
    "ReverseSDE",
    "ProbabilityFlowODE",
    "diffusion_matvec",
    "diffusion_cov_matvec",
    "diffusion_covariance",
    "brownian_shape",
]

ScoreFn = Callable[[ScalarLike, Float[Array, " d"], Args], Float[Array, " d"]]


def diffusion_matvec(g: Array, v: Array) -> Array:
    """``G v`` for a scalar, diagonal ``(d,)`` or full ``(d, m)`` diffusion ``G``."""
    if g.ndim == 2:
        return g @ v
    return g * v


def diffusion_cov_matvec(g: Array, v: Array) -> Array:
    """``G G^T v`` for a scalar, diagonal or full diffusion ``G``."""
    if g.ndim == 2:
        return g @ (g.T @ v)
    return g**2 * v


def diffusion_covariance(g: Array, d: int) -> Float[Array, "d d"]:
    """The dense ``d x d`` matrix ``G G^T``."""
    if g.ndim == 2:
        return g @ g.T
    return jnp.diag(jnp.broadcast_to(g**2, (d,)))


def brownian_shape(g: Array, x: Array) -> tuple[int, ...]:
    """Shape of the Brownian increment that ``G`` multiplies."""
    if g.ndim == 2:
        return (g.shape[1],)
    return x.shape


class AbstractSDE(eqx.Module):
    r"""An Itô SDE :math:`dX = f(t,X)dt + G(t,X)dW` on flat states ``x`` of shape ``(d,)``.

    Subclasses implement :meth:`drift` and :meth:`diffusion`. Set the class attribute
    ``state_dependent_diffusion = True`` when ``G`` depends on ``x``, so that the
    reversal and the probability flow include :math:`\nabla\cdot(GG^\top)`.
    """

    state_dependent_diffusion = False

    @abc.abstractmethod
    def drift(self, t: ScalarLike, x: Float[Array, " d"], args: Args) -> Float[Array, " d"]:
        """The drift :math:`f(t, x)`."""

    @abc.abstractmethod
    def diffusion(self, t: ScalarLike, x: Float[Array, " d"], args: Args) -> Array:
        """The diffusion :math:`G(t, x)`: shape ``()``, ``(d,)`` or ``(d, m)``."""

    def covariance_divergence(self, t: ScalarLike, x: Float[Array, " d"], args: Args) -> Array:
        r""":math:`[\nabla\cdot(GG^\top)]_i = \sum_j \partial_j (GG^\top)_{ij}` (zero if G is x-free)."""
        if not self.state_dependent_diffusion:
            return jnp.zeros_like(x)
        d = x.shape[0]

        def cov(y):
            return diffusion_covariance(self.diffusion(t, y, args), d)

        jac = jax.jacfwd(cov)(x)  # (d, d, d): d cov_ij / d x_k
        return jnp.einsum("ijj->i", jac)

    def reverse(self, score_fn: ScoreFn, t0: ScalarLike, t1: ScalarLike) -> ReverseSDE:
        """Anderson's (1982) time reversal on ``[t0, t1]``, in the forward-running clock."""
        return ReverseSDE(forward=self, score_fn=score_fn, t0=t0, t1=t1)

    def probability_flow(self, score_fn: ScoreFn) -> ProbabilityFlowODE:
        """The probability-flow ODE with the same marginals (Song et al. 2021)."""
        return ProbabilityFlowODE(sde=self, score_fn=score_fn)


class SDE(AbstractSDE):
    """An SDE given by two plain functions ``drift_fn(t, x, args)`` and ``diffusion_fn``.

    Example:
        >>> import jax.numpy as jnp
        >>> ou = SDE(lambda t, x, a: -x, lambda t, x, a: jnp.sqrt(2.0))
        >>> ou.drift(0.0, jnp.ones(2), None).tolist()
        [-1.0, -1.0]
    """

    drift_fn: Callable[..., Array]
    diffusion_fn: Callable[..., Array]
    state_dependent: bool = eqx.field(static=True, default=False)

    @property
    def state_dependent_diffusion(self) -> bool:  # type: ignore[override]
        return self.state_dependent

    def drift(self, t, x, args):
        return self.drift_fn(t, x, args)

    def diffusion(self, t, x, args):
        return jnp.asarray(self.diffusion_fn(t, x, args))


class LangevinSDE(AbstractSDE):
    r"""Overdamped Langevin dynamics as an SDE, :math:`dX = -\nabla_x U(X, t)\,dt + \sqrt{2/\beta}\,dW`,

    whose stationary density for a time-independent :math:`U` is :math:`e^{-\beta U}/Z`
    (mobility one; Risken 1989). ``energy_fn(x)`` or, with ``time_dependent=True``,
    ``energy_fn(x, t)`` (e.g. ``lambda x, t: protocol.energy(x, t)`` for a
    :class:`thermo.protocols.Protocol`). Its diffusion is the scalar :math:`\sqrt{2/\beta}`,
    so diffrax (:func:`thermo.integrate.solve`) and the fixed-step kernels
    (:func:`thermo.integrate.euler_maruyama`, :func:`thermo.integrate.overdamped_langevin`,
    which also keeps the work books) integrate the same process.
    """

    energy_fn: Callable[..., Array]
    beta: ScalarLike
    time_dependent: bool = eqx.field(static=True, default=False)

    def energy(self, t: ScalarLike, x: Float[Array, " d"]) -> Float[Array, ""]:
        """:math:`U(x)` or :math:`U(x, t)`."""
        return self.energy_fn(x, t) if self.time_dependent else self.energy_fn(x)

    def drift(self, t, x, args):
        return -jax.grad(lambda y: self.energy(t, y))(x)

    def diffusion(self, t, x, args):
        return jnp.sqrt(2.0 / jnp.asarray(self.beta, x.dtype))


class ReverseSDE(AbstractSDE):
    r"""Time reversal of ``forward`` on ``[t0, t1]`` (Anderson 1982).

    Runs forward in the reversed clock :math:`s\in[t_0,t_1]`, :math:`t = t_0 + t_1 - s`:
    a path started from :math:`p_{t_1}` at :math:`s=t_0` has marginal :math:`p_{t}` at
    clock :math:`s`, ending in :math:`p_{t_0}` at :math:`s = t_1`.
    """

    forward: AbstractSDE
    score_fn: ScoreFn
    t0: ScalarLike
    t1: ScalarLike

    @property
    def state_dependent_diffusion(self) -> bool:  # type: ignore[override]
        return self.forward.state_dependent_diffusion

    def forward_time(self, s: ScalarLike) -> ScalarLike:
        """The forward-process time ``t0 + t1 - s`` that clock ``s`` corresponds to."""
        return self.t0 + self.t1 - s

    def drift(self, s, x, args):
        t = self.forward_time(s)
        g = self.forward.diffusion(t, x, args)
        score = self.score_fn(t, x, args)
        return (
            -self.forward.drift(t, x, args)
            + diffusion_cov_matvec(g, score)
            + self.forward.covariance_divergence(t, x, args)
        )

    def diffusion(self, s, x, args):
        return self.forward.diffusion(self.forward_time(s), x, args)


class ProbabilityFlowODE(eqx.Module):
    r"""The probability-flow ODE :math:`\dot x = f - \tfrac12 GG^\top\nabla\log p_t - \tfrac12\nabla\cdot GG^\top`."""

    sde: AbstractSDE
    score_fn: ScoreFn

    def vector_field(self, t: ScalarLike, x: Float[Array, " d"], args: Args) -> Float[Array, " d"]:
        """The ODE's velocity at ``(t, x)``."""
        g = self.sde.diffusion(t, x, args)
        score = self.score_fn(t, x, args)
        return (
            self.sde.drift(t, x, args)
            - 0.5 * diffusion_cov_matvec(g, score)
            - 0.5 * self.sde.covariance_divergence(t, x, args)
        )

    def __call__(self, t, x, args):
        return self.vector_field(t, x, args)
