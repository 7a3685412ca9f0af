r"""From a network to a score function: the noise-prediction parameterisation.

A network :math:`\varepsilon_\theta(t, x)` trained to predict the noise in
:math:`x_t = a(t)x_0 + \sigma(t)\varepsilon` gives the score
:math:`s_\theta(t, x) = -\varepsilon_\theta(t, x)/\sigma(t)` (Ho et al. 2020; Song et al.
2021, App. C), since :math:`\nabla\log p_{0t}(x_t\mid x_0) = -\varepsilon/\sigma(t)`.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
from jaxtyping import Array, Float

from thermo._typing import Args, ScalarLike

from .processes import AbstractDiffusionProcess

__all__ = ["ScoreModel"]


class ScoreModel(eqx.Module):
    r"""Score :math:`s_\theta(t,x) = -\varepsilon_\theta(t, x)/\sigma(0,t)` of a noise-prediction network.

    ``network(t, x) -> (d,)`` is any callable pytree (an equinox network, or a flax one
    through :mod:`generative.networks.flax_adapter`). Calling the model with thermo's
    score signature ``(t, x, args)`` returns the score; for particle processes the output
    is projected onto the CoM-free subspace.
    """

    network: Callable[[ScalarLike, Array], Array]
    process: AbstractDiffusionProcess

    def noise_prediction(self, t: ScalarLike, x: Float[Array, " d"]) -> Float[Array, " d"]:
        r""":math:`\varepsilon_\theta(t, x)` (CoM-free for particle processes)."""
        return self.process.project(self.network(t, x))

    def __call__(
        self, t: ScalarLike, x: Float[Array, " d"], args: Args = None
    ) -> Float[Array, " d"]:
        _, std = self.process.marginal_coefficients(t)
        return -self.noise_prediction(t, x) / std
