r"""Forward noising processes of score-based diffusion models (Song et al. 2021, ICLR).

All three are linear SDEs :math:`dx = f(t)\,x\,dt + g(t)\,dW` on :math:`t \in [0, T]`, so
every transition kernel is Gaussian in closed form,

.. math:: x_t \mid x_s \sim \mathcal N\big(a(s,t)\,x_s,\; \sigma(s,t)^2 I\big),

* **VP** (variance preserving, eq. 11): :math:`f = -\tfrac12\beta(t)`, :math:`g^2 = \beta(t)`,
  :math:`a = e^{-\frac12(B(t) - B(s))}`, :math:`\sigma^2 = 1 - a^2`, prior :math:`\mathcal N(0, I)`;
* **VE** (variance exploding, eq. 9): :math:`f = 0`,
  :math:`\sigma(t) = \sigma_{\min}(\sigma_{\max}/\sigma_{\min})^t`,
  :math:`g^2 = \tfrac{d}{dt}\sigma(t)^2 = 2\sigma(t)^2\log(\sigma_{\max}/\sigma_{\min})`,
  :math:`a = 1`, transition variance :math:`\sigma(t)^2 - \sigma(s)^2`, prior
  :math:`\mathcal N(0, (\sigma(T)^2 - \sigma(0)^2) I)`;
* **sub-VP** (eq. 12): :math:`f = -\tfrac12\beta(t)`, :math:`g^2 = \beta(t)(1 - e^{-2B(t)})`,
  :math:`a = e^{-\frac12(B(t)-B(s))}` and (integrating :math:`a(u,t)^2 g(u)^2` in closed form)
  :math:`\sigma^2 = 1 + e^{-2B(t)} - e^{-(B(t)-B(s))} - e^{-(B(t)+B(s))}`, prior
  :math:`\mathcal N(0, I)`.

Here :math:`B(t) = \int_0^t\beta`. The processes are :class:`thermo.sde.AbstractSDE` s, so
``process.reverse(score_fn, t0, t1)`` and ``process.probability_flow(score_fn)`` come
from thermo.

**Particle systems.** With ``particles=(n_particles, spatial_dim)`` the noise acts only in
the centre-of-mass-free subspace :math:`\{x : \sum_i x_i = 0\}` (Hoogeboom et al. 2022,
"Equivariant diffusion for molecule generation", Sec. 3): the diffusion is the full
matrix :math:`g(t)P` with :math:`P = (I_n - \tfrac1n 11^\top)\otimes I_D`, noise samples are
projected, and the prior is the standard normal on the :math:`(n-1)D`-dimensional
subspace.
"""

from __future__ import annotations

import abc
import math

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float

from thermo._checks import check_count, check_positive
from thermo._typing import PRNGKey, ScalarLike
from thermo.sde import AbstractSDE
from thermo.systems import remove_com

from .schedules import AbstractSchedule, LinearSchedule

__all__ = [
    "AbstractDiffusionProcess",
    "VP",
    "VE",
    "SubVP",
]


class AbstractDiffusionProcess(AbstractSDE):
    r"""A linear forward noising SDE :math:`dx = f(t)x\,dt + g(t)\,dW` with Gaussian kernels.

    Concrete subclasses give :meth:`drift_coefficient` :math:`f(t)`,
    :meth:`diffusion_coefficient` :math:`g(t)`, :meth:`transition_coefficients`
    :math:`(a(s,t), \sigma(s,t))` and :attr:`prior_std`.
    """

    # Concrete subclasses declare the fields ``t1: float`` (the horizon T) and
    # ``particles: tuple[int, int] | None`` (static).

    def __check_init__(self):
        check_positive(self.t1, "t1")
        if self.particles is not None:
            if len(self.particles) != 2:
                raise ValueError(
                    f"particles must be (n_particles, spatial_dim), got {self.particles!r}"
                )
            check_count(self.particles[0], "particles[0] (n_particles)")
            check_count(self.particles[1], "particles[1] (spatial_dim)")

    # -- the SDE ---------------------------------------------------------------
    @abc.abstractmethod
    def drift_coefficient(self, t: ScalarLike) -> Float[Array, ""]:
        """The scalar :math:`f(t)` in the drift :math:`f(t)x`."""

    @abc.abstractmethod
    def diffusion_coefficient(self, t: ScalarLike) -> Float[Array, ""]:
        """The scalar :math:`g(t)`."""

    @abc.abstractmethod
    def transition_coefficients(
        self, s: ScalarLike, t: ScalarLike
    ) -> tuple[Float[Array, ""], Float[Array, ""]]:
        r""":math:`(a, \sigma)` with :math:`x_t\mid x_s \sim \mathcal N(a x_s, \sigma^2 I)`, :math:`s \le t`."""

    @property
    @abc.abstractmethod
    def prior_std(self) -> float:
        """Standard deviation of the isotropic Gaussian prior at ``t1``."""

    def drift(self, t, x, args=None):
        return self.drift_coefficient(t) * x

    def diffusion(self, t, x, args=None):
        g = jnp.asarray(self.diffusion_coefficient(t), dtype=jnp.result_type(x, float))
        if self.particles is None:
            return g
        return g * self.projection_matrix()

    # -- the subspace ----------------------------------------------------------
    def projection_matrix(self) -> Float[Array, "d d"]:
        r"""The CoM projector :math:`P = (I_n - \tfrac1n 11^\top)\otimes I_D` (particles only)."""
        if self.particles is None:
            raise ValueError("projection_matrix needs particles=(n_particles, spatial_dim)")
        n, dim = self.particles
        return jnp.kron(jnp.eye(n) - jnp.full((n, n), 1.0 / n), jnp.eye(dim))

    def project(self, x: Float[Array, "*batch d"]) -> Float[Array, "*batch d"]:
        """Remove the centre of mass (:func:`thermo.systems.remove_com`; identity without ``particles``)."""
        if self.particles is None:
            return x
        return remove_com(x, *self.particles)

    def n_free_dims(self, d: int) -> int:
        """Dimension of the space the process lives in: ``d`` or ``(n-1)*D``."""
        if self.particles is None:
            return d
        n, dim = self.particles
        return (n - 1) * dim

    def noise(self, key: PRNGKey, shape: tuple[int, ...]) -> Array:
        """Standard normal noise in the process's (sub)space."""
        return self.project(jr.normal(key, shape))

    def retract(self, x: Float[Array, "*batch d"]) -> Float[Array, "*batch d"]:
        r"""Map a point back onto the state space after a step: the identity on
        :math:`\mathbb R^d`; wrapping into the cell for a process on the torus."""
        return x

    def denoising_target(
        self,
        x0: Float[Array, "batch d"],
        xt: Float[Array, "batch d"],
        eps: Float[Array, "batch d"],
        std: Float[Array, "batch 1"],
    ) -> Float[Array, "batch d"]:
        r"""Denoising score matching's target in noise units, :math:`-\sigma\nabla\log p_{0t}(x_t\mid x_0)`.

        For the Gaussian kernels of this type it is the noise :math:`\varepsilon` itself
        (Vincent 2011); a process with another kernel (a wrapped Gaussian on the torus)
        overrides it.
        """
        return eps

    # -- kernels ---------------------------------------------------------------
    def marginal_coefficients(self, t: ScalarLike) -> tuple[Float[Array, ""], Float[Array, ""]]:
        r""":math:`(a(0,t), \sigma(0,t))`: :math:`x_t = a\,x_0 + \sigma\,\varepsilon`."""
        return self.transition_coefficients(0.0, t)

    def marginal_mean_std(
        self, t: ScalarLike, x0: Float[Array, " d"]
    ) -> tuple[Float[Array, " d"], Float[Array, ""]]:
        r"""Mean and std of :math:`p_{0t}(x_t\mid x_0) = \mathcal N(a(0,t) x_0, \sigma(0,t)^2 I)`."""
        a, std = self.marginal_coefficients(t)
        return a * x0, std

    def transition(
        self, s: ScalarLike, t: ScalarLike, xs: Float[Array, " d"]
    ) -> tuple[Float[Array, " d"], Float[Array, ""]]:
        r"""Mean and std of :math:`p_{st}(x_t \mid x_s)`, :math:`s \le t`."""
        a, std = self.transition_coefficients(s, t)
        return a * xs, std

    def sample_marginal(
        self, key: PRNGKey, t: ScalarLike, x0: Float[Array, " d"]
    ) -> tuple[Float[Array, " d"], Float[Array, " d"]]:
        r"""Draw :math:`x_t = a x_0 + \sigma\varepsilon`; returns ``(x_t, eps)``."""
        eps = self.noise(key, x0.shape)
        mean, std = self.marginal_mean_std(t, x0)
        return mean + std * eps, eps

    def transition_log_prob(
        self, s: ScalarLike, t: ScalarLike, xs: Float[Array, " d"], xt: Float[Array, " d"]
    ) -> Float[Array, ""]:
        r""":math:`\log p_{st}(x_t\mid x_s)` (on the CoM-free subspace for particles)."""
        mean, std = self.transition(s, t, xs)
        return gaussian_log_prob(xt, mean, variance=std**2, n_dims=self.n_free_dims(xt.shape[-1]))

    # -- prior -----------------------------------------------------------------
    def sample_prior(self, key: PRNGKey, shape: tuple[int, ...]) -> Array:
        r"""Draw from the prior :math:`\mathcal N(0, \sigma_T^2 I)`; ``shape = (..., d)``."""
        return self.prior_std * self.noise(key, shape)

    def prior_log_prob(self, x: Float[Array, " d"]) -> Float[Array, ""]:
        r""":math:`\log \mathcal N(x; 0, \sigma_T^2 I)` (on the CoM-free subspace for particles)."""
        return gaussian_log_prob(
            x, jnp.zeros_like(x), variance=self.prior_std**2, n_dims=self.n_free_dims(x.shape[-1])
        )


def gaussian_log_prob(
    x: Array,
    mean: Array | ScalarLike,
    *,
    variance: Array | ScalarLike,
    n_dims: int,
) -> Array:
    r"""Log-density of an isotropic Gaussian on an ``n_dims``-dimensional (sub)space.

    .. math:: \log\mathcal N(x;\mu, v I_k) = -\frac{|x-\mu|^2}{2v} - \frac k2 \log(2\pi v),

    summed over the last axis (``x - mean`` must lie in that subspace; ``n_dims = k`` is its
    dimension, e.g. :math:`(n-1)d` for CoM-free particles; ``variance`` is :math:`v =
    \sigma^2`). The project's one Gaussian log-density (diffusion kernels, reverse chains,
    the learned samplers' reference processes).
    """
    r = x - mean
    return -0.5 * jnp.sum(r * r, axis=-1) / variance - 0.5 * n_dims * jnp.log(
        2.0 * jnp.pi * variance
    )


class _AbstractVPFamily(AbstractDiffusionProcess):
    r"""The VP family: drift :math:`-\tfrac12\beta(t)x` from a schedule, prior :math:`\mathcal N(0, I)`."""

    schedule: eqx.AbstractVar[AbstractSchedule]

    def drift_coefficient(self, t):
        return -0.5 * self.schedule.beta(t)

    @property
    def prior_std(self):
        return 1.0


class VP(_AbstractVPFamily):
    r"""Variance-preserving SDE :math:`dx = -\tfrac12\beta x\,dt + \sqrt\beta\,dW` (Song et al. 2021, eq. 11).

    Example:
        >>> vp = VP()
        >>> a, std = vp.marginal_coefficients(1.0)
        >>> round(float(a**2 + std**2), 12)
        1.0
    """

    schedule: AbstractSchedule = LinearSchedule()
    t1: float = 1.0
    particles: tuple[int, int] | None = eqx.field(static=True, default=None)

    def diffusion_coefficient(self, t):
        return jnp.sqrt(self.schedule.beta(t))

    def transition_coefficients(self, s, t):
        db = self.schedule.integral(t) - self.schedule.integral(s)
        return jnp.exp(-0.5 * db), jnp.sqrt(-jnp.expm1(-db))


class SubVP(_AbstractVPFamily):
    r"""sub-VP SDE :math:`dx = -\tfrac12\beta x\,dt + \sqrt{\beta(1-e^{-2B})}\,dW` (Song et al. 2021, eq. 12)."""

    schedule: AbstractSchedule = LinearSchedule()
    t1: float = 1.0
    particles: tuple[int, int] | None = eqx.field(static=True, default=None)

    def diffusion_coefficient(self, t):
        b = self.schedule.integral(t)
        return jnp.sqrt(self.schedule.beta(t) * -jnp.expm1(-2.0 * b))

    def transition_coefficients(self, s, t):
        bt = self.schedule.integral(t)
        bs = self.schedule.integral(s)
        a = jnp.exp(-0.5 * (bt - bs))
        # 1 + e^{-2Bt} - e^{-(Bt-Bs)} - e^{-(Bt+Bs)} = (1 - e^{-(Bt-Bs)}) (1 - e^{-(Bt+Bs)})
        var = -jnp.expm1(-(bt - bs)) * -jnp.expm1(-(bt + bs))
        return a, jnp.sqrt(var)


class VE(AbstractDiffusionProcess):
    r"""Variance-exploding SDE :math:`dx = \sqrt{d\sigma^2/dt}\,dW` with geometric :math:`\sigma(t)` (Song et al. 2021, eq. 9).

    Defaults :math:`\sigma_{\min}=0.01`, :math:`\sigma_{\max}=50` are the paper's CIFAR-10
    values; choose :math:`\sigma_{\max}` near the largest pairwise data distance (Song &
    Ermon 2020, "Improved techniques", Technique 1).
    """

    sigma_min: float = 0.01
    sigma_max: float = 50.0
    t1: float = 1.0
    particles: tuple[int, int] | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        check_positive(self.sigma_min, "sigma_min")
        check_positive(self.sigma_max, "sigma_max")
        if not 0.0 < self.sigma_min < self.sigma_max:
            raise ValueError(
                f"need 0 < sigma_min < sigma_max, got {self.sigma_min}, {self.sigma_max}"
            )

    def sigma(self, t: ScalarLike) -> Float[Array, ""]:
        r""":math:`\sigma(t) = \sigma_{\min}(\sigma_{\max}/\sigma_{\min})^{t}`."""
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** jnp.asarray(t)

    def drift_coefficient(self, t):
        return jnp.zeros_like(jnp.asarray(t, dtype=float))

    def diffusion_coefficient(self, t):
        return self.sigma(t) * math.sqrt(2.0 * math.log(self.sigma_max / self.sigma_min))

    def transition_coefficients(self, s, t):
        # clamp: adaptive solvers may probe t a rounding error below s
        var = jnp.maximum(self.sigma(t) ** 2 - self.sigma(s) ** 2, 0.0)
        return jnp.ones_like(var), jnp.sqrt(var)

    @property
    def prior_std(self):
        return math.sqrt((self.sigma_max / self.sigma_min) ** (2 * self.t1) - 1.0) * self.sigma_min
