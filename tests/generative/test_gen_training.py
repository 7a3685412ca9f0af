"""Denoising score matching: the loss decreases; checkpoint/resume reproduces a straight run."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
import pytest

from generative.networks import MLP
from generative.processes import VP
from generative.score import ScoreModel
from generative.training import dsm_loss, train_score_model

from ._gen_fixtures import MIXTURE

DATA = MIXTURE.sample(jr.key(0), 2048)


def _model():
    return ScoreModel(MLP(2, jr.key(1), width=32, depth=2), VP())


@pytest.mark.parametrize("weighting", ["noise", "likelihood"])
def test_dsm_loss_decreases(weighting):
    # The loss is evaluated on a fixed held-out key and batch before and after training;
    # 300 Adam steps must lower it (the untrained MLP is far from the score).
    model = _model()
    loss_fn = eqx.filter_jit(
        lambda m: dsm_loss(
            jr.key(99), m, DATA[:1024], weighting=weighting, importance_sampling=True
        )
    )
    before = loss_fn(model)
    result = train_score_model(
        jr.key(2),
        model,
        DATA,
        n_steps=300,
        batch_size=128,
        optimizer=optax.adam(3e-3),
        weighting=weighting,
        importance_sampling=True,
        steps_per_call=150,
        progress=False,
    )
    after = loss_fn(result.model)
    assert result.losses.shape == (300,)
    assert after < 0.8 * before, (before, after)


def test_checkpoint_resume_reproduces_uninterrupted_run(tmp_path):
    kwargs = dict(batch_size=64, steps_per_call=10, progress=False)
    straight = train_score_model(jr.key(5), _model(), DATA, n_steps=40, **kwargs)
    path = tmp_path / "ckpt.eqx"
    first = train_score_model(jr.key(5), _model(), DATA, n_steps=20, checkpoint_path=path, **kwargs)
    assert first.start_step == 0 and path.exists()
    resumed = train_score_model(
        jr.key(5), _model(), DATA, n_steps=40, checkpoint_path=path, **kwargs
    )
    assert resumed.start_step == 20 and resumed.losses.shape == (20,)
    a = jax.tree_util.tree_leaves(eqx.filter(straight.model, eqx.is_inexact_array))
    b = jax.tree_util.tree_leaves(eqx.filter(resumed.model, eqx.is_inexact_array))
    assert all(jnp.allclose(u, v, rtol=0, atol=1e-12) for u, v in zip(a, b, strict=True))
    assert jnp.allclose(straight.losses[20:], resumed.losses, atol=1e-12)


def test_train_rejects_bad_data():
    with pytest.raises(ValueError):
        train_score_model(
            jr.key(0), _model(), jnp.full((10, 2), jnp.nan), n_steps=1, progress=False
        )
