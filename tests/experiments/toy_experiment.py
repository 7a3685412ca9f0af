"""A tiny experiment used by the runner tests: an AR(1) chain ensemble with a checkpointed loop.

``x_{i+1} = a x_i + sqrt(1 - a^2) xi_i`` leaves N(0, 1) invariant, so the ensemble mean
after many steps estimates 0 with standard error ``1/sqrt(n_chains)``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import jax.random as jr

from experiments import measurement


@dataclasses.dataclass(frozen=True)
class Config:
    n_chains: int = 256
    n_iters: int = 8
    a: float = 0.5
    every: int = 1
    label: str = "toy"
    shape: tuple[int, ...] = (1,)
    note: str | None = None
    points: tuple[tuple[float, float], ...] = ((0.0, 1.0),)

    def __post_init__(self):
        if self.n_chains <= 0:
            raise ValueError("n_chains must be positive")

    @classmethod
    def quick(cls) -> Config:
        return cls(n_chains=64, n_iters=6)


@jax.jit
def _body(key, state, a):
    x, s = state
    x = a * x + jnp.sqrt(1.0 - a**2) * jr.normal(key, x.shape)
    return x, s + jnp.mean(x)


def run(config: Config, ctx) -> dict:
    key_init, key_loop = jr.split(ctx.key)
    x0 = jr.normal(key_init, (config.n_chains,))
    state = (x0, jnp.zeros(()))
    x, s = ctx.loop(
        key_loop,
        lambda k, st, i: _body(k, st, config.a),
        state,
        config.n_iters,
        name="chain",
        every=config.every,
    )
    extra = ctx.stage("extra", lambda: {"max": jnp.max(x)})
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.hist(jax.device_get(x), bins=10)
    ctx.save_figure(fig, "hist")
    return {
        "mean": measurement(jnp.mean(x), jnp.std(x) / jnp.sqrt(x.shape[0])),
        "running_sum": s,
        "max": extra["max"],
        "rows": {"a": {"v": 1.0, "e": measurement(2.0, 0.1)}, "b": {"v": 3}},
    }
