r"""Static entropic OT between samples (ott-jax Sinkhorn) and the Sinkhorn bridge.

**Cost convention.** The Schrödinger bridge for the reference :math:`dX = \sigma dB` on
:math:`[0,1]` has the static plan :math:`\pi(x,y)\propto e^{-\|x-y\|^2/(2\sigma^2)}a(x)b(y)`.
ott-jax's :class:`~ott.geometry.costs.SqEuclidean` is :math:`c(x,y)=\|x-y\|^2` (not
halved) and its plan is :math:`P_{ij} = \exp((f_i + g_j - c_{ij})/\varepsilon)`, so the
bridge's plan needs :math:`\varepsilon = 2\sigma^2` (:func:`epsilon_from_sigma`). We also
pin ``scale_cost=1.0``: ott's cost rescalings would silently change the effective
:math:`\sigma`.

**Sinkhorn bridge** (Pooladian & Niles-Weed 2024, "Plug-in estimation of Schrödinger
bridges"). With the target samples :math:`y_j` and Sinkhorn potential :math:`g_j`, the
bridge's drift is the Brownian-bridge drift averaged over the estimated conditional
law of :math:`X_1` given :math:`X_t = z`:

.. math:: b(t, z) = \frac{\sum_j w_j(t,z)\,y_j - z}{1-t},\qquad
          w_j(t,z)\propto \exp\Big(\big(g_j - \tfrac{\|z-y_j\|^2}{1-t}\big)/\varepsilon\Big),

which at :math:`t = 0` reproduces the rows of the Sinkhorn plan.
"""

from __future__ import annotations

from typing import NamedTuple, TypedDict, Unpack

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int
from ott.geometry import costs, pointcloud
from ott.problems.linear import linear_problem
from ott.solvers.linear import sinkhorn as ott_sinkhorn

from thermo._checks import check_count, check_positive
from thermo._typing import Args, ScalarLike
from thermo.sde import AbstractSDE

__all__ = [
    "EntropicPlan",
    "SinkhornBridge",
    "SinkhornBridgeSDE",
    "SinkhornOptions",
    "entropic_plan",
    "epsilon_from_sigma",
    "plan_cross_covariance",
    "sinkhorn_bridge",
]


def epsilon_from_sigma(sigma: ScalarLike) -> Float[Array, ""]:
    r"""ott's :math:`\varepsilon` for cost :math:`\|x-y\|^2` matching the reference :math:`\sigma dB`: :math:`2\sigma^2`."""
    return 2.0 * jnp.asarray(sigma) ** 2


class EntropicPlan(NamedTuple):
    """A solved discrete entropic OT problem.

    Attributes:
        matrix: ``(n, m)`` coupling, rows sum to ``a``, columns to ``b``.
        f: ``(n,)`` and ``g``: ``(m,)`` dual potentials, ``matrix = exp((f_i+g_j-c_ij)/eps)``.
        epsilon: the regularisation used (for cost ``|x-y|^2``).
        converged: whether Sinkhorn met ``threshold``.
        n_iterations: Sinkhorn iterations used.
    """

    matrix: Float[Array, "n m"]
    f: Float[Array, " n"]
    g: Float[Array, " m"]
    epsilon: Float[Array, ""]
    converged: Bool[Array, ""]
    n_iterations: Int[Array, ""]


def _check_points(name: str, x: Array) -> None:
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must have shape (n, d) with n > 0, got {x.shape}")


def entropic_plan(
    x: Float[Array, "n d"],
    y: Float[Array, "m d"],
    sigma: ScalarLike,
    *,
    threshold: float = 1e-6,
    max_iterations: int = 5000,
) -> EntropicPlan:
    r"""Entropic OT plan between the empirical measures of ``x`` and ``y`` (uniform weights).

    Solves :math:`\min_P \langle P, C\rangle - \varepsilon H(P)` with
    :math:`C_{ij} = \|x_i - y_j\|^2` and :math:`\varepsilon = 2\sigma^2` by ott-jax's
    log-domain Sinkhorn (Cuturi 2013; Cuturi et al. 2022), which is the static
    Schrödinger bridge problem for the reference :math:`\sigma dB` on :math:`[0,1]`.
    """
    _check_points("x", x)
    _check_points("y", y)
    check_positive(sigma, "sigma")
    check_positive(threshold, "threshold")
    max_iterations = check_count(max_iterations, "max_iterations")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y dimensions differ: {x.shape[1]} vs {y.shape[1]}")
    return _entropic_plan(x, y, sigma, threshold, max_iterations)


@eqx.filter_jit
def _entropic_plan(x, y, sigma, threshold, max_iterations):
    eps = epsilon_from_sigma(sigma)
    geom = pointcloud.PointCloud(x, y, cost_fn=costs.SqEuclidean(), epsilon=eps, scale_cost=1.0)
    prob = linear_problem.LinearProblem(geom)
    solver = ott_sinkhorn.Sinkhorn(threshold=threshold, max_iterations=max_iterations)
    # ott-jax 0.6.0's marginal error computes |.| ** norm_error[:, None] on shapes (n,), (1, 1)
    # and a float ** int64 power: allow rank and standard dtype promotion inside the solve
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        out = solver(prob)
    return EntropicPlan(
        matrix=out.matrix,
        f=out.f,
        g=out.g,
        epsilon=eps,
        converged=jnp.asarray(out.converged),
        n_iterations=jnp.asarray(out.n_iters),
    )


def plan_cross_covariance(
    plan_matrix: Float[Array, "n m"], x: Float[Array, "n d"], y: Float[Array, "m d"]
) -> Float[Array, "d d"]:
    r"""Cross-covariance of a discrete coupling: :math:`\sum_{ij}P_{ij}(x_i-\bar x)(y_j-\bar y)^\top`.

    Means are the coupling's marginal means; ``plan_matrix`` must sum to one.
    """
    a = plan_matrix.sum(axis=1)
    b = plan_matrix.sum(axis=0)
    xc = x - (a @ x)[None]
    yc = y - (b @ y)[None]
    return xc.T @ plan_matrix @ yc


class SinkhornBridge(eqx.Module):
    r"""The plug-in Sinkhorn bridge (Pooladian & Niles-Weed 2024); see the module docstring.

    Attributes:
        y: ``(m, d)`` target samples.
        g: ``(m,)`` Sinkhorn potential on the targets (cost ``|x-y|^2``).
        epsilon: ``2 sigma^2``.
        sigma: reference diffusion coefficient.
    """

    y: Float[Array, "m d"]
    g: Float[Array, " m"]
    epsilon: Float[Array, ""]
    sigma: Float[Array, ""]

    def conditional_weights(self, t: ScalarLike, z: Float[Array, " d"]) -> Float[Array, " m"]:
        r""":math:`w_j(t,z)`: estimated law of :math:`X_1` given :math:`X_t = z` on the targets."""
        sq = jnp.sum((z[None] - self.y) ** 2, axis=-1)
        return jax.nn.softmax((self.g - sq / (1.0 - t)) / self.epsilon)

    def drift(self, t: ScalarLike, z: Float[Array, " d"], args: Args = None) -> Float[Array, " d"]:
        r""":math:`b(t,z) = (\sum_j w_j y_j - z)/(1-t)`, defined for :math:`t<1`."""
        del args
        w = self.conditional_weights(t, z)
        return (w @ self.y - z) / (1.0 - t)

    def sde(self) -> SinkhornBridgeSDE:
        """The bridge as a :class:`thermo.sde.AbstractSDE` with diffusion ``sigma``."""
        return SinkhornBridgeSDE(bridge=self)


class SinkhornBridgeSDE(AbstractSDE):
    r""":math:`dX = b(t, X)dt + \sigma dB` with the Sinkhorn bridge drift."""

    bridge: SinkhornBridge

    def drift(self, t, x, args):
        return self.bridge.drift(t, x, args)

    def diffusion(self, t, x, args):
        return self.bridge.sigma


class SinkhornOptions(TypedDict, total=False):
    """The keyword options of :func:`entropic_plan`, which :func:`sinkhorn_bridge` passes on.

    Attributes:
        threshold: ott-jax's Sinkhorn convergence threshold. Default 1e-6.
        max_iterations: Sinkhorn iterations at the most. Default 5000.
    """

    threshold: float
    max_iterations: int


def sinkhorn_bridge(
    x: Float[Array, "n d"],
    y: Float[Array, "m d"],
    sigma: ScalarLike,
    **options: Unpack[SinkhornOptions],
) -> tuple[SinkhornBridge, EntropicPlan]:
    """Fit the Sinkhorn bridge from source samples ``x`` to target samples ``y``.

    The plan is :func:`entropic_plan` ``(x, y, sigma, **options)`` (:class:`SinkhornOptions`).
    Returns the bridge (whose drift uses only ``y`` and ``g``) and the static plan.
    """
    plan = entropic_plan(x, y, sigma, **options)
    bridge = SinkhornBridge(
        y=jnp.asarray(y), g=plan.g, epsilon=plan.epsilon, sigma=jnp.asarray(sigma, dtype=y.dtype)
    )
    return bridge, plan
