r"""Jarzynski's equality on a 1-D double well: work distributions and free-energy estimates.

A particle in :math:`U(x,\lambda) = (1-\lambda)\,\tfrac{k_0}{2}x^2 + \lambda\,h\,(x^2-1)^2` is
switched from the harmonic trap (:math:`\lambda=0`) to the double well (:math:`\lambda=1`)
by overdamped Langevin dynamics in a time :math:`\tau`, starting from exact samples of
the trap. Per path, :mod:`thermo.integrate` accumulates the work
:math:`W = \sum_k [U(x_k,\lambda_{k+1}) - U(x_k,\lambda_k)]` and the exact discrete-time
log Radon–Nikodym weight. Jarzynski's equality (Jarzynski 1997)

.. math:: \Delta F = -\beta^{-1}\log \mathbb{E}\big[e^{-\beta W}\big]

is estimated with :func:`thermo.estimators.jarzynski`, and the log-RN weights go through
:func:`thermo.estimators.estimate_log_z`; both are compared with the exact
:math:`\Delta F = -\beta^{-1}\log(Z_1/Z_0)` from quadrature. Slower switching dissipates
less (:math:`\langle W\rangle - \Delta F \ge 0` shrinks) and the estimate's error bar with it.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from experiments import measurement
from experiments._config import Count, NonNegative, Positive
from thermo.estimators import estimate_log_z, jarzynski
from thermo.integrate import overdamped_langevin, run_population
from thermo.protocols import Protocol, linear_schedule

__all__ = ["Config", "double_well_protocol", "exact_delta_f", "run", "switch"]


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings. Defaults: 10,000 paths per switching time, ``dt = 1e-3``.

    Attributes:
        beta: inverse temperature.
        k0: stiffness of the initial harmonic trap (4: its standard deviation 1/2 puts
            the starting population over both wells at +-1 without far tails).
        barrier: :math:`h`, the double well's barrier height at :math:`\\lambda = 1`.
        durations: switching times :math:`\\tau` to compare.
        dt: Langevin step (the :math:`O(dt)` bias of the unadjusted kernel on the plain
            Jarzynski estimate stays well below its standard error at ``1e-3``).
        n_paths: paths per switching time.
        n_batches: the paths run in this many checkpointed batches.
    """

    beta: Positive = 1.0
    k0: Positive = 4.0
    barrier: NonNegative = 2.0
    durations: tuple[Positive, ...] = (0.1, 0.5, 2.0)
    dt: Positive = 1e-3
    n_paths: Count = 10_000
    n_batches: Count = 10

    def __post_init__(self):
        if self.n_paths % self.n_batches != 0:
            raise ValueError(f"n_paths={self.n_paths} must be a multiple of n_batches")
        if not self.durations or min(self.durations) < self.dt:
            raise ValueError("each duration must be at least one step dt")

    @classmethod
    def quick(cls) -> Config:
        """A few-second setting for the tests."""
        return cls(durations=(0.5,), dt=1e-2, n_paths=256, n_batches=2)


def double_well_protocol(config: Config, duration: float) -> Protocol:
    r""":math:`U(x,\lambda(t))` with :math:`\lambda(t)` linear from 0 to 1 over ``duration``."""

    def energy_fn(x, lam):
        trap = 0.5 * config.k0 * jnp.sum(x**2)
        well = config.barrier * jnp.sum((x**2 - 1.0) ** 2)
        return (1.0 - lam) * trap + lam * well

    return Protocol(energy_fn, linear_schedule(0.0, 1.0, 0.0, duration))


def exact_delta_f(config: Config) -> float:
    r""":math:`\Delta F = -\beta^{-1}\log(Z_1/Z_0)` by quadrature (Simpson on a fine grid).

    :math:`Z_0 = \sqrt{2\pi/(\beta k_0)}` in closed form; :math:`Z_1` on :math:`[-5, 5]`, where
    the integrand of the double well is below :math:`e^{-\beta h\,576}`.
    """
    from scipy.integrate import simpson

    grid = np.linspace(-5.0, 5.0, 200_001)
    z1 = simpson(np.exp(-config.beta * config.barrier * (grid**2 - 1.0) ** 2), x=grid)
    log_z0 = 0.5 * np.log(2.0 * np.pi / (config.beta * config.k0))
    return float(-(np.log(z1) - log_z0) / config.beta)


def switch(key, config: Config, duration: float, n_paths: int):
    r"""Run ``n_paths`` switching paths of length ``duration``; returns the final states.

    The initial positions are exact samples of :math:`e^{-\beta k_0 x^2/2}`; the state's
    ``work``, ``log_weight`` and ``n_energy_evals`` are per path.
    """
    n_steps = max(1, round(duration / config.dt))
    kernel = overdamped_langevin(
        double_well_protocol(config, duration), beta=config.beta, dt=config.dt
    )
    key_x0, key_run = jr.split(key)
    x0 = jr.normal(key_x0, (n_paths, 1)) / jnp.sqrt(config.beta * config.k0)
    states = jax.vmap(kernel.init)(x0)
    final, _ = run_population(key_run, kernel, states, n_steps)
    return final


def _one_duration(ctx, config: Config, duration: float, index: int, delta_f: float) -> dict:
    batch = config.n_paths // config.n_batches
    switch_batch = jax.jit(lambda k: switch(k, config, duration, batch))

    def body(key, acc, i):
        final = switch_batch(key)
        work, log_w, evals = acc
        return (
            work.at[i].set(final.work),
            log_w.at[i].set(final.log_weight),
            evals + jnp.sum(final.n_energy_evals),
        )

    zeros = jnp.zeros((config.n_batches, batch))
    acc = (zeros, zeros, jnp.zeros((), jnp.int64))
    key = jr.fold_in(ctx.key, index)
    work, log_w, evals = ctx.loop(
        key, body, acc, config.n_batches, name=f"tau_{index}", desc=f"tau={duration}"
    )
    work, log_w = work.reshape(-1), log_w.reshape(-1)
    beta = config.beta
    jz = jarzynski(beta * work)
    rn = estimate_log_z(log_w)
    mean_w = jnp.mean(work)
    se_w = jnp.std(work) / jnp.sqrt(work.shape[0])
    return {
        "delta_f_jarzynski": measurement(jz.delta_f / beta, jz.std_err / beta),
        "delta_f_log_rn": measurement(-rn.value / beta, rn.std_err / beta),
        "mean_work": measurement(mean_w, se_w),
        "dissipated_work": measurement(beta * (mean_w - delta_f), beta * se_w),
        "z_jarzynski": float((jz.delta_f / beta - delta_f) / (jz.std_err / beta)),
        "ess": rn.ess,
        "n_energy_evals": evals,
        "work_samples": work[: min(2000, work.shape[0])],
    }


def run(config: Config, ctx) -> dict:
    """Switch at every duration, estimate :math:`\\Delta F`, plot the work distributions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    delta_f = exact_delta_f(config)
    rows = {}
    for i, tau in enumerate(config.durations):
        rows[f"tau={tau:g}"] = ctx.stage(
            f"tau_{i}", lambda i=i, tau=tau: _one_duration(ctx, config, tau, i, delta_f)
        )
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, row in rows.items():
        w = np.asarray(row["work_samples"])
        lo, hi = np.quantile(w, [0.002, 0.998])
        ax.hist(w, bins=60, range=(lo, hi), density=True, alpha=0.5, label=label)
    ax.axvline(delta_f, color="k", ls="--", label=r"exact $\Delta F$")
    ax.set_xlabel(r"work $W$ [$k_BT$]")
    ax.set_ylabel("density")
    ax.legend()
    ctx.save_figure(fig, "work_distributions")
    for row in rows.values():
        del row["work_samples"]
    return {"delta_f_exact": delta_f, "switching": rows}
