r"""Adapters that make a flax network (nnx or linen) a network usable everywhere in generative/.

The rest of the library speaks equinox: a network is a pytree whose array leaves are the
trainable parameters, called as ``network(t, x) -> (d,)``. These adapters wrap a flax
module into exactly that, so it can be put in :class:`generative.score.ScoreModel`,
trained by :func:`generative.training.train_score_model` (optax over the array leaves, selected with
``eqx.is_inexact_array``), checkpointed with ``eqx.tree_serialise_leaves``, and used as
a score in every sampler, likelihood and thermodynamic function.

**flax nnx** (stateless functional split, ``nnx.split`` / ``nnx.merge``):

.. code-block:: python

    from flax import nnx

    class Net(nnx.Module):
        def __init__(self, d, rngs):
            self.l1 = nnx.Linear(d + 1, 64, rngs=rngs)
            self.l2 = nnx.Linear(64, d, rngs=rngs)

        def __call__(self, t, x):  # the required signature: (t, x) -> (d,)
            return self.l2(nnx.silu(self.l1(jnp.concatenate([x, jnp.atleast_1d(t)]))))

    network = FlaxNNXNetwork(Net(2, nnx.Rngs(0)))
    score = ScoreModel(network, VP())

The nnx graph definition is stored as a static field and the ``nnx.State`` (a pytree of
``nnx.Variable`` s holding arrays) as the dynamic part; every call merges the two into a
fresh module, so the wrapped module must be pure (no mutable batch statistics or
dropout RNG streams updated during the call).

**flax linen** (``apply`` with an explicit parameter tree):

.. code-block:: python

    network = FlaxLinenNetwork(module, params)  # params = module.init(key, t, x)
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
from jaxtyping import Array, Float

from thermo._typing import ScalarLike

__all__ = ["FlaxNNXNetwork", "FlaxLinenNetwork"]


class FlaxNNXNetwork(eqx.Module):
    """Wrap a flax ``nnx.Module`` with ``__call__(t, x) -> (d,)`` as an equinox network.

    Args:
        module: the nnx module (it is split into a static graph definition and a state
            pytree; the module object itself is not kept).
    """

    graphdef: Any = eqx.field(static=True)
    state: Any

    def __init__(self, module: Any):
        from flax import nnx

        self.graphdef, self.state = nnx.split(module)

    def to_module(self) -> Any:
        """The nnx module with the current (e.g. trained) parameters."""
        from flax import nnx

        return nnx.merge(self.graphdef, self.state)

    def __call__(self, t: ScalarLike, x: Float[Array, " d"]) -> Float[Array, " d"]:
        return self.to_module()(t, x)


class FlaxLinenNetwork(eqx.Module):
    """Wrap a flax ``linen.Module`` and its parameters as an equinox network.

    Args:
        module: the linen module; its ``__call__(t, x)`` must return shape ``(d,)``.
        params: the variables from ``module.init(key, t, x)``.
    """

    module: Any = eqx.field(static=True)
    params: Any

    def __call__(self, t: ScalarLike, x: Float[Array, " d"]) -> Float[Array, " d"]:
        return self.module.apply(self.params, t, x)
