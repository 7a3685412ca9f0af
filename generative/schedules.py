r"""Noise schedules :math:`\beta(t)` for the variance-preserving family, as equinox modules.

A schedule gives the rate :math:`\beta(t)` of the forward process
:math:`dx = -\tfrac12\beta(t)x\,dt + \sqrt{\beta(t)}\,dW` on :math:`t\in[0,1]` and its
integral :math:`B(t) = \int_0^t \beta(s)\,ds`, so that the signal coefficient is
:math:`\alpha(t) = e^{-B(t)/2}` (Song et al. 2021, "Score-based generative modeling
through stochastic differential equations", ICLR, eq. 11 and App. B).
"""

from __future__ import annotations

import abc
import math

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from thermo._checks import check_positive
from thermo._typing import ScalarLike

__all__ = ["AbstractSchedule", "LinearSchedule", "CosineSchedule"]


class AbstractSchedule(eqx.Module):
    r"""A noise rate :math:`\beta(t) > 0` on :math:`[0, 1]` and its integral :math:`B(t)`."""

    @abc.abstractmethod
    def beta(self, t: ScalarLike) -> Float[Array, ""]:
        r"""The rate :math:`\beta(t)`."""

    @abc.abstractmethod
    def integral(self, t: ScalarLike) -> Float[Array, ""]:
        r""":math:`B(t) = \int_0^t \beta(s)\,ds`."""


class LinearSchedule(AbstractSchedule):
    r"""The linear schedule :math:`\beta(t) = \beta_{\min} + t(\beta_{\max} - \beta_{\min})`.

    :math:`B(t) = \beta_{\min} t + \tfrac12 t^2 (\beta_{\max} - \beta_{\min})`. The
    defaults :math:`\beta_{\min} = 0.1`, :math:`\beta_{\max} = 20` are the continuous
    limit of DDPM's 1000-step schedule (Ho et al. 2020; Song et al. 2021, App. C).

    Example:
        >>> s = LinearSchedule()
        >>> round(float(s.integral(1.0)), 6)
        10.05
    """

    beta_min: float = 0.1
    beta_max: float = 20.0

    def __check_init__(self):
        check_positive(self.beta_min, "beta_min", allow_zero=True)
        check_positive(self.beta_max, "beta_max")
        if not (0.0 <= self.beta_min <= self.beta_max) or self.beta_max <= 0.0:
            raise ValueError(
                f"need 0 <= beta_min <= beta_max, beta_max > 0; got {self.beta_min}, {self.beta_max}"
            )

    def beta(self, t):
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def integral(self, t):
        return self.beta_min * t + 0.5 * t**2 * (self.beta_max - self.beta_min)


class CosineSchedule(AbstractSchedule):
    r"""The cosine schedule of Nichol & Dhariwal (2021, "Improved DDPM", eq. 17), in continuous time.

    :math:`\bar\alpha(t) = f(t)/f(0)`, :math:`f(t) = \cos^2\!\big(\tfrac{t+s}{1+s}\tfrac\pi2\big)`,
    so :math:`B(t) = -\log\bar\alpha(t)` and
    :math:`\beta(t) = B'(t) = \tfrac{\pi}{1+s}\tan\!\big(\tfrac{t+s}{1+s}\tfrac\pi2\big)`.
    The offset :math:`s = 0.008` is the paper's. :math:`\beta` diverges at :math:`t = 1`,
    so run the process on :math:`[0, T]` with :math:`T < 1` (e.g. ``T = 0.995``), or rely on
    ``max_beta`` (the paper clips the discrete :math:`\beta_t` at 0.999 per step; here the
    continuous rate is clipped at ``max_beta``, and :math:`B` is the integral of the clipped
    rate, so the pair stays consistent).
    """

    offset: float = 0.008
    max_beta: float = 1000.0

    def __check_init__(self):
        # s >= 0 keeps beta(t) = pi/(1+s) tan(angle(t)) positive on [0, 1]: a negative s
        # makes angle(0) negative (beta < 0 near t = 0) and s = -1 divides by zero.
        check_positive(self.offset, "offset", allow_zero=True)
        check_positive(self.max_beta, "max_beta")

    def _angle(self, t):
        return (t + self.offset) / (1.0 + self.offset) * (math.pi / 2)

    def _t_clip(self):
        # beta(t) = c tan(angle(t)) reaches max_beta at angle = atan(max_beta / c).
        c = math.pi / (1.0 + self.offset)
        return math.atan(self.max_beta / c) * 2 / math.pi * (1.0 + self.offset) - self.offset

    def _raw_integral(self, t):
        # -log cos^2(angle(t)) + log cos^2(angle(0))
        return -2.0 * jnp.log(jnp.cos(self._angle(t))) + 2.0 * jnp.log(jnp.cos(self._angle(0.0)))

    def beta(self, t):
        t = jnp.asarray(t)
        raw = math.pi / (1.0 + self.offset) * jnp.tan(self._angle(jnp.minimum(t, self._t_clip())))
        return jnp.where(t < self._t_clip(), raw, self.max_beta)

    def integral(self, t):
        t = jnp.asarray(t)
        tc = self._t_clip()
        return self._raw_integral(jnp.minimum(t, tc)) + self.max_beta * jnp.maximum(t - tc, 0.0)
