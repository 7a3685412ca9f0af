"""Score networks: EGNN equivariance, MLP shapes, the flax adapters."""

import jax
import jax.numpy as jnp
import jax.random as jr
import pytest

from generative.networks import EGNN, MLP, FlaxLinenNetwork, FlaxNNXNetwork
from generative.processes import VP
from generative.score import ScoreModel

N_PARTICLES, DIM = 5, 3


def _random_rotation(key, dim):
    q, r = jnp.linalg.qr(jr.normal(key, (dim, dim)))
    q = q * jnp.sign(jnp.diag(r))[None, :]  # Haar-distributed orthogonal matrix
    return q.at[:, 0].multiply(jnp.sign(jnp.linalg.det(q)))  # a proper rotation


@pytest.fixture(scope="module")
def egnn_score():
    net = EGNN(N_PARTICLES, DIM, jr.key(0), hidden=16, n_layers=2)
    net = jax.tree_util.tree_map(
        lambda a: a.astype(jnp.float64) if isinstance(a, jax.Array) else a, net
    )
    return ScoreModel(net, VP(particles=(N_PARTICLES, DIM)))


def test_egnn_score_is_rotation_permutation_equivariant(egnn_score):
    x = jr.normal(jr.key(1), (N_PARTICLES * DIM,), dtype=jnp.float64)
    rot = _random_rotation(jr.key(2), DIM)
    perm = jr.permutation(jr.key(3), N_PARTICLES)
    shift = jnp.array([0.7, -1.3, 2.0])

    def transform(v, translate):
        p = v.reshape(N_PARTICLES, DIM) @ rot.T
        return (p[perm] + (shift[None] if translate else 0.0)).reshape(-1)

    score = jax.jit(lambda x: egnn_score(0.37, x))
    out = score(x)
    # rotate + permute + translate the input: the score rotates and permutes with it
    # (translations drop out: the model works in the centre-of-mass-free subspace).
    out_t = score(transform(x, translate=True))
    assert jnp.max(jnp.abs(out_t - transform(out, translate=False))) < 1e-5
    assert jnp.max(jnp.abs(out)) > 1e-3  # not trivially zero
    assert jnp.allclose(out.reshape(N_PARTICLES, DIM).sum(0), 0.0, atol=1e-10)
    # a reflection is in E(n) too
    refl = jnp.diag(jnp.array([-1.0, 1.0, 1.0]))
    out_r = score((x.reshape(N_PARTICLES, DIM) @ refl).reshape(-1))
    assert jnp.max(jnp.abs(out_r - (out.reshape(N_PARTICLES, DIM) @ refl).reshape(-1))) < 1e-5


def test_mlp_shapes_and_bad_input():
    net = MLP(3, jr.key(0), width=8, depth=2)
    assert net(0.5, jnp.ones(3)).shape == (3,)
    with pytest.raises(ValueError):
        net(0.5, jnp.ones(4))


def test_flax_nnx_adapter_matches_module_and_trains():
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self, d, rngs):
            # float64 parameters: the inputs are float64 (x64) and promotion is strict
            self.l1 = nnx.Linear(d + 1, 16, param_dtype=jnp.float64, rngs=rngs)
            self.l2 = nnx.Linear(16, d, param_dtype=jnp.float64, rngs=rngs)

        def __call__(self, t, x):
            return self.l2(nnx.silu(self.l1(jnp.concatenate([x, jnp.atleast_1d(t)]))))

    module = Net(2, nnx.Rngs(0))
    net = FlaxNNXNetwork(module)
    x = jnp.array([0.3, -0.1])
    assert jnp.allclose(net(0.2, x), module(0.2, x))
    score = ScoreModel(net, VP())
    _, std = VP().marginal_coefficients(0.2)
    assert jnp.allclose(score(0.2, x, None), -module(0.2, x) / std)
    # gradients reach the flax parameters through equinox's filters
    import equinox as eqx

    grads = eqx.filter_grad(lambda s: jnp.sum(s(0.2, x, None) ** 2))(score)
    leaves = jax.tree_util.tree_leaves(eqx.filter(grads, eqx.is_inexact_array))
    assert len(leaves) == 4 and all(bool(jnp.any(g != 0)) for g in leaves)


def test_flax_linen_adapter_matches_module():
    import flax.linen as nn

    class Net(nn.Module):
        @nn.compact
        def __call__(self, t, x):
            return nn.Dense(x.shape[-1], param_dtype=jnp.float64)(
                jnp.concatenate([x, jnp.atleast_1d(t)])
            )

    module = Net()
    x = jnp.array([0.3, -0.1])
    params = module.init(jr.key(0), 0.2, x)
    net = FlaxLinenNetwork(module, params)
    assert jnp.allclose(net(0.2, x), module.apply(params, 0.2, x))
