r"""Are the Feynman–Kac-corrected sampler's error bars calibrated? (issue 15)

On systems with an exact :math:`\log Z` (``mw5``, ``gmm40``, ``mw32``, ``funnel`` of
:mod:`thermo.systems`) a DDS chain, untrained or briefly trained with the KL loss, is
corrected by :func:`generative.samplers.feynman_kac` over ``n_seeds`` independent seeds.
Each seed gives :math:`\log\hat Z` with its standard error :math:`\hat s` (the
Lee–Whiteley genealogy estimator); its z-score is

.. math:: z = (\log\hat Z - \log Z)/\hat s .

If the error bars are right the z-scores have mean about 0 and standard deviation about
1; the criterion of issue 15 is a standard deviation in :math:`[0.7, 1.4]`. With only
``n_seeds`` draws the sample standard deviation is itself uncertain: the report gives its
approximate standard error :math:`s/\sqrt{2(n-1)}` and the 95% chi-square interval
:math:`s\,[\sqrt{(n-1)/\chi^2_{0.975}}, \sqrt{(n-1)/\chi^2_{0.025}}]` (exact for normal
z), beside the root-mean-square z (which also counts a bias) and the ratio of the
seed-to-seed spread of :math:`\log\hat Z` to the mean reported :math:`\hat s`.

The DDS runs on a short clock (``duration`` 0.01 over ``n_steps``), so that the
reference's step per stage stays small against the targets' mode widths, with its
drift displacement capped at that step, as in ``tests/generative/test_samplers_fk.py``.

Commands::

    python -m experiments run fk_calibration            # 10 seeds on mw5, gmm40, mw32
    python -m experiments run fk_calibration resampling=systematic
    python -m experiments run fk_calibration method=smc n_seeds=100 n_particles=1000 \
        systems=mw5,gmm40,mw32,funnel            # the project's SMC at its defaults
    python -m experiments run fk_calibration --quick
    python -m experiments.fk_samplers calibrate [key=value ...]   # the same, printed
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from typing import Annotated

import jax.random as jr
import numpy as np

import thermo.systems as systems
from experiments import measurement
from experiments._config import Choices, Count, NonNegativeInt, Positive, Range

__all__ = ["Config", "calibrate_system", "run", "z_std_interval"]

#: Issue 15's band for the z-scores' standard deviation.
Z_STD_BAND = (0.7, 1.4)


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings (defaults: the full measurement).

    Attributes:
        systems: :mod:`thermo.systems` names with an exact ``log_z``.
        method: ``"dds"`` (a PIS is corrected the same way), or ``"smc"``: the peer,
            :func:`thermo.mcmc.smc` at its defaults with ``n_particles`` chains (no network;
            the sampler settings below do not apply, ``resampling`` does).
        n_seeds: independent corrected runs per system.
        n_particles: SMC population.
        n_steps: sampler steps :math:`K` (= SMC stages).
        duration: the sampler's time :math:`T`.
        n_moves: MALA sweeps per stage.
        width, depth: the control MLP.
        train_iters: KL training steps before sampling (0: the untrained network).
        batch_size, learning_rate: of that training.
        resampling: the SMC resampling scheme (the genealogy error bar is derived for
            multinomial; ``systematic`` shows what it does to the z-scores).
        smc_target_ess: ``method="smc"`` only: its ``target_ess`` (``None``: the default).
    """

    systems: tuple[str, ...] = ("mw5", "gmm40", "mw32")
    method: Annotated[str, Choices(("dds", "pis", "smc"))] = "dds"
    n_seeds: Count = 10
    n_particles: Count = 4000
    n_steps: Count = 64
    duration: Positive = 0.01
    n_moves: NonNegativeInt = 3
    width: Count = 32
    depth: Count = 2
    train_iters: NonNegativeInt = 20
    batch_size: Count = 16
    learning_rate: Positive = 1e-3
    resampling: Annotated[str, Choices(("multinomial", "systematic"))] = "multinomial"
    smc_target_ess: Annotated[float, Range(0.0, 1.0, low_open=True)] | None = None

    @classmethod
    def quick(cls) -> Config:
        """Seconds: 3 seeds of 128 particles on mw5, untrained."""
        return cls(systems=("mw5",), n_seeds=3, n_particles=128, n_steps=16, train_iters=0)


def z_std_interval(z: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """The sample standard deviation of ``z``, its approximate SE and chi-square interval."""
    from scipy.stats import chi2

    z = np.asarray(z, float)
    n = z.size
    s = float(np.std(z, ddof=1))
    a = 1.0 - level
    lo = s * math.sqrt((n - 1) / chi2.ppf(1 - a / 2, n - 1))
    hi = s * math.sqrt((n - 1) / chi2.ppf(a / 2, n - 1))
    return s, s / math.sqrt(2 * (n - 1)), (lo, hi)


def _sampler(key, target, config: Config):
    """The chain, its drift displacement per step capped at the reference's own step
    (``make_sampler``'s ``max_displacement`` is in units of the target's scale)."""
    from generative.samplers import make_sampler

    step = config.duration / config.n_steps if config.method == "dds" else 1.0 / config.n_steps
    return make_sampler(
        key,
        target,
        config.method,
        n_steps=config.n_steps,
        width=config.width,
        depth=config.depth,
        dds_duration=config.duration,
        max_displacement=math.sqrt((2.0 if config.method == "dds" else 1.0) * step),
    )


def calibrate_system(key, name: str, config: Config) -> dict:
    """``n_seeds`` corrected runs on ``name``: per-seed rows and the z-score summary."""
    from generative.samplers import as_target, feynman_kac, train_sampler

    system = systems.get(name)
    exact = getattr(system, "log_z", None)
    if exact is None:
        raise ValueError(f"fk_calibration: {name!r} has no exact log_z")
    if config.method == "smc":
        return _summary(exact, *_smc_runs(key, system, config))
    target = as_target(system)
    k_init, k_train, k_runs = jr.split(key, 3)
    sampler = _sampler(k_init, target, config)
    train_evals = 0
    t0 = time.process_time()
    if config.train_iters:
        res = train_sampler(
            k_train,
            sampler,
            target,
            n_iters=config.train_iters,
            batch_size=config.batch_size,
            learning_rate=config.learning_rate,
            progress=False,
        )
        sampler, train_evals = res.sampler, int(res.n_energy_evals)
    log_z, se, k_hat, evals = _seed_runs(
        k_runs,
        config.n_seeds,
        lambda seed_key: feynman_kac(
            seed_key,
            sampler,
            target,
            config.n_particles,
            n_moves=config.n_moves,
            resampling=config.resampling,
        ),
    )
    cpu = time.process_time() - t0
    return _summary(exact, log_z, se, k_hat, evals, train_evals, cpu)


def _seed_runs(key, n_seeds: int, run_fn):
    """``run_fn(seed_key)`` for ``n_seeds`` keys split from ``key``: the per-seed log Z,
    its standard error and Pareto k, and the energy evaluations of one run."""
    log_z, se, k_hat, evals = [], [], [], 0
    for seed_key in jr.split(key, n_seeds):
        r = run_fn(seed_key)
        log_z.append(float(r.log_z))
        se.append(float(r.log_z_std))
        k_hat.append(float(r.pareto_k))
        evals = int(r.n_energy_evals)
    return log_z, se, k_hat, evals


def _smc_runs(key, system, config: Config):
    """``n_seeds`` runs of :func:`thermo.mcmc.smc` at its defaults (the peer)."""
    from thermo.mcmc import smc

    extra = {} if config.smc_target_ess is None else {"target_ess": config.smc_target_ess}

    def run(seed_key):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # Pareto k is reported per seed
            return smc(
                seed_key, system, n_chains=config.n_particles, resampling=config.resampling, **extra
            )

    t0 = time.process_time()
    log_z, se, k_hat, evals = _seed_runs(key, config.n_seeds, run)
    return log_z, se, k_hat, evals, 0, time.process_time() - t0


def _summary(exact, log_z, se, k_hat, evals, train_evals, cpu) -> dict:
    log_z, se = np.array(log_z), np.array(se)
    z = (log_z - exact) / se
    s, s_se, (lo, hi) = z_std_interval(z)
    return {
        "exact_log_z": float(exact),
        "log_z": log_z.tolist(),
        "log_z_std": se.tolist(),
        "z": z.tolist(),
        "pareto_k": k_hat,
        "mean_error": measurement(
            np.mean(log_z - exact), np.std(log_z, ddof=1) / math.sqrt(log_z.size)
        ),
        "z_mean": float(np.mean(z)),
        "z_std": measurement(s, s_se),
        "z_std_95": [lo, hi],
        "z_rms": float(np.sqrt(np.mean(z**2))),
        "spread_over_mean_se": float(np.std(log_z, ddof=1) / np.mean(se)),
        "z_std_in_band": bool(Z_STD_BAND[0] <= s <= Z_STD_BAND[1]),
        "max_abs_z": float(np.max(np.abs(z))),
        "energy_evals_per_run": evals,
        "train_energy_evals": train_evals,
        "cpu_s": cpu,
    }


_PER_SEED = ("log_z", "log_z_std", "z", "pareto_k")


def _figure(ctx, rows: dict, per_seed: dict, config: Config) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.8 + 1.4 * len(rows), 3.2))
    for i, (name, row) in enumerate(rows.items()):
        z = np.asarray(per_seed[name]["z"])
        jitter = np.linspace(-0.15, 0.15, z.size)
        ax.plot(i + jitter, z, "o", alpha=0.7)
        s = row["z_std"]["value"]
        ax.errorbar(i + 0.3, 0.0, yerr=s, fmt="_", color="k", capsize=4)
    ax.axhspan(-1, 1, color="0.9", zorder=0)
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xticks(range(len(rows)), list(rows))
    ax.set_ylabel(r"$(\log\hat Z - \log Z)/\hat s$")
    label = "thermo.mcmc.smc" if config.method == "smc" else f"FK-corrected {config.method.upper()}"
    ax.set_title(f"{label}, {config.resampling} resampling: z-scores (bar: their std)")
    ctx.save_figure(fig, "fk_calibration")


def run(config: Config, ctx) -> dict:
    """Calibrate on every system of ``config`` (module docstring)."""
    for name in config.systems:
        if getattr(systems.get(name), "log_z", None) is None:
            raise ValueError(f"fk_calibration: {name!r} has no exact log_z")
    rows, per_seed = {}, {}
    for i, name in enumerate(config.systems):
        row = calibrate_system(jr.fold_in(ctx.key, i), name, config)
        ctx.timings[f"cpu_s_{name}"] = row.pop("cpu_s")
        per_seed[name] = {k: row.pop(k) for k in _PER_SEED}
        rows[name] = row
    _figure(ctx, rows, per_seed, config)
    return {"systems": rows, "per_seed": per_seed, "z_std_band": list(Z_STD_BAND)}
