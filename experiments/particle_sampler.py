r"""iDEM, an energy-based diffusion sampler with the EGNN, on DW-4 and LJ-13 (issue 7).

The sampler is :func:`generative.samplers._particle.run_idem` (Akhound-Sadegh et al.
2024): a VE diffusion on the centre-of-mass-free subspace whose EGNN score network
regresses the Monte Carlo score estimator :math:`S_K` of the noised Boltzmann density,
trained on a replay buffer of its own samples; no data are used. Its samples come from
the ancestral reverse chain with exact path log-weights, so

.. math:: \log Z = \log\int_{\mathrm{COM}=0} e^{-\beta U(x)}\,dx

(the convention of :func:`thermo.mcmc.ais` and ``experiments.headline``) comes from the
shared estimator :func:`thermo.estimators.estimate_log_z`, with its standard error and
Kish ESS. On DW-4 a second estimate weighs probability-flow-ODE samples by the exact
ODE likelihood (``ode_samples > 0``).

Sample quality (raw, unweighted samples; and the same samples resampled by their path
weights) against the project's reference samples
(:func:`thermo.systems.reference_samples`) with :func:`thermo.metrics.sample_metrics`:
energy :math:`W_2`, aligned coordinate :math:`W_2` (on at most ``n_metric`` samples),
interatomic-distance TV/W2. Published anchors (ASBS paper, Liu et al. 2025, Table 2, which
quotes iDEM/AS/ASBS in the same DEM convention of LJ-13): DW-4 energy W2 0.20, coordinate
W2 0.43; LJ-13 energy W2 1.99, coordinate W2 1.59 (ASBS). A baseline row scores a second
slice of the reference samples the same way (the floor of these finite-sample metrics).

Commands::

    python -m experiments run particle_sampler                 # DW-4
    python -m experiments run particle_sampler system=lj13     # LJ-13
    python -m experiments run particle_sampler --quick
"""

from __future__ import annotations

import dataclasses
import time
from typing import Annotated

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import thermo.systems as systems
from experiments import measurement
from experiments._config import Choices, Count, NonNegativeInt, Positive
from generative.samplers._particle import (
    PRESETS,
    IDEMSettings,
    _outer_step_jit,
    init_idem,
    n_train_energy_evals,
    sample_idem,
)
from thermo import metrics
from thermo.estimators import estimate_log_z

__all__ = ["ANCHORS", "Config", "run", "settings_for"]

#: ASBS paper (Liu et al. 2025), best published numbers quoted in the issue.
ANCHORS = {
    "dw4": {"energy_w2": 0.20, "coordinate_w2": 0.43},
    "lj13": {"energy_w2": 1.99, "coordinate_w2": 1.59},
}


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings; ``None`` fields take the system's preset
    (:data:`generative.samplers._particle.PRESETS`).

    Attributes:
        system: ``"dw4"`` or ``"lj13"``.
        sigma_min, sigma_max: geometric VE schedule.
        hidden, n_layers: EGNN size.
        n_outer, n_inner: outer (buffer refresh) and inner (Adam) iterations.
        batch_size: buffer points per Adam step.
        n_mc: importance samples :math:`K` of the score estimator.
        buffer_size, n_new: replay buffer capacity and samples added per outer step.
        n_sample_steps: ancestral reverse-chain steps.
        learning_rate: Adam.
        max_target_norm: clip of the noise-unit target.
        n_samples: final samples (path-weighted).
        ode_samples: probability-flow samples weighted by the exact ODE likelihood
            (0: skip; ``None``: 200 on DW-4, 0 on LJ-13, whose exact trace costs 39
            Jacobian-vector products per solver stage).
        n_metric: samples used by the coordinate W2 / MMD (exact OT is cubic).
    """

    system: Annotated[str, Choices(tuple(PRESETS))] = "dw4"
    sigma_min: Positive = 0.01
    sigma_max: Positive | None = None
    hidden: Count = 32
    n_layers: Count = 3
    n_outer: Count | None = None
    n_inner: Count = 100
    batch_size: Count | None = None
    n_mc: Count | None = None
    buffer_size: Count = 4096
    n_new: Count = 512
    n_sample_steps: Count = 100
    learning_rate: Positive = 1e-3
    max_target_norm: Positive | None = None
    n_samples: Count = 2000
    ode_samples: NonNegativeInt | None = None
    n_metric: Count = 1000

    @classmethod
    def quick(cls) -> Config:
        """A seconds-long smoke run on DW-4."""
        return cls(
            hidden=8,
            n_layers=1,
            n_outer=2,
            n_inner=5,
            batch_size=16,
            n_mc=16,
            buffer_size=128,
            n_new=64,
            n_sample_steps=10,
            n_samples=64,
            ode_samples=0,
            n_metric=64,
        )


def settings_for(config: Config) -> IDEMSettings:
    """The :class:`IDEMSettings` of ``config`` (``None`` fields from the system preset)."""
    if config.system not in PRESETS:
        raise ValueError(f"system must be one of {sorted(PRESETS)}, got {config.system!r}")
    names = {f.name for f in dataclasses.fields(IDEMSettings)}
    values = {k: v for k, v in dataclasses.asdict(config).items() if k in names and v is not None}
    return IDEMSettings.for_system(config.system, **values)


def _figure(ctx, name, system, samples, reference, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    energy = jax.jit(jax.vmap(system.energy))
    e_s, e_r = np.asarray(energy(jnp.asarray(samples))), np.asarray(energy(jnp.asarray(reference)))
    n_p, s_d = system.n_particles, system.spatial_dim
    d_s = np.asarray(metrics.interatomic_distances(samples, n_p, s_d)).ravel()
    d_r = np.asarray(metrics.interatomic_distances(reference, n_p, s_d)).ravel()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    lo, hi = np.quantile(e_r, [0.001, 0.999])
    pad = 0.1 * (hi - lo)
    bins = np.linspace(lo - pad, hi + pad, 60)
    axes[0].hist(e_r, bins=bins, density=True, alpha=0.5, label="reference")
    axes[0].hist(np.clip(e_s, bins[0], bins[-1]), bins=bins, density=True, alpha=0.5, label="iDEM")
    axes[0].set_xlabel(r"energy $U$")
    axes[0].set_ylabel("density")
    axes[0].legend()
    bins = np.linspace(0.0, float(np.quantile(d_r, 0.999)) * 1.2, 80)
    axes[1].hist(d_r, bins=bins, density=True, alpha=0.5, label="reference")
    axes[1].hist(np.clip(d_s, 0, bins[-1]), bins=bins, density=True, alpha=0.5, label="iDEM")
    axes[1].set_xlabel("interatomic distance")
    axes[1].legend()
    fig.suptitle(title)
    ctx.save_figure(fig, f"histograms_{name}")


def _log_z_row(log_w: np.ndarray) -> dict:
    finite = np.isfinite(log_w)
    est = estimate_log_z(
        jnp.asarray(log_w[finite], jnp.float64 if jax.config.x64_enabled else None)
    )
    return {
        "log_z": measurement(est.value, est.std_err),
        "ess": float(est.ess),
        "ess_fraction": float(est.ess) / max(1, int(finite.sum())),
        "fraction_finite_weights": float(finite.mean()),
    }


def run(config: Config, ctx) -> dict:
    """Train iDEM, sample with path log-weights, score against the reference samples."""
    settings = settings_for(config)
    system = systems.get(config.system)
    n_p, s_d = system.n_particles, system.spatial_dim
    key = ctx.key
    k_run, k_ode, k_ref, k_resample = jr.split(key, 4)

    # iDEM's outer loop (the steps and keys of generative.samplers._particle.train_idem),
    # driven by the runner's resumable loop: the state is checkpointed every outer step.
    k_train, k_sample = jr.split(k_run)  # as in run_idem
    k_init, k_loop = jr.split(k_train)
    state = init_idem(k_init, n_p, s_d, settings)
    arrays, static = eqx.partition(state, eqx.is_array)
    beta = float(system.beta)

    def body(key, carry, i):
        arrays, losses = carry
        new, chunk = _outer_step_jit(
            key, eqx.combine(arrays, static), system.energy, beta, settings
        )
        return eqx.partition(new, eqx.is_array)[0], losses.at[i].set(chunk)

    losses0 = jnp.zeros((settings.n_outer, settings.n_inner), state.buffer.dtype)
    t0 = time.perf_counter()
    arrays, losses = ctx.loop(
        k_loop, body, (arrays, losses0), settings.n_outer, name="idem", desc="iDEM outer"
    )
    model = eqx.combine(arrays, static).model
    losses = np.asarray(losses).reshape(-1)
    train_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    paths = jax.block_until_ready(
        sample_idem(k_sample, model, system, config.n_samples, n_steps=settings.n_sample_steps)
    )
    sample_seconds = time.perf_counter() - t0
    n_train = n_train_energy_evals(settings)
    samples = np.asarray(paths.samples, np.float64)
    log_w = np.asarray(paths.log_weights, np.float64)
    finite = np.all(np.isfinite(samples), axis=1)

    reference = np.asarray(systems.reference_samples(config.system), np.float64)
    perm = np.asarray(jr.permutation(k_ref, reference.shape[0]))
    n_ref = min(config.n_samples, reference.shape[0] // 2)
    ref, base = reference[perm[:n_ref]], reference[perm[n_ref : 2 * n_ref]]
    n_metric = min(config.n_metric, n_ref)
    sample_scores = metrics.sample_metrics(system, samples[finite], ref, max_samples=n_metric)
    baseline_scores = metrics.sample_metrics(system, base, ref, max_samples=n_metric)
    # importance resampling by the path weights (multinomial; at most ESS distinct samples)
    ok = finite & np.isfinite(log_w)
    probs = np.asarray(jax.nn.softmax(jnp.asarray(log_w[ok])))
    idx = np.asarray(jr.choice(k_resample, int(ok.sum()), (int(ok.sum()),), p=jnp.asarray(probs)))
    resampled_scores = metrics.sample_metrics(system, samples[ok][idx], ref, max_samples=n_metric)

    out = {
        "system": config.system,
        "settings": dataclasses.asdict(settings),
        "n_particles": n_p,
        "spatial_dim": s_d,
        "path_weights": _log_z_row(log_w),
        "samples": sample_scores,
        "samples_resampled_by_weights": resampled_scores,
        "reference_vs_reference": baseline_scores,
        "anchors_asbs": ANCHORS.get(config.system),
        "fraction_finite_samples": float(finite.mean()),
        "first_loss": float(np.mean(losses[: settings.n_inner])),
        "final_loss": float(np.mean(losses[-settings.n_inner :])),
        "n_energy_evals_train": n_train,
        "n_energy_evals_sampling": int(paths.n_energy_evals),
        "n_energy_evals_total": n_train + int(paths.n_energy_evals),
    }
    ctx.timings.update(
        {
            "train_seconds": train_seconds,
            "sample_seconds": sample_seconds,
        }
    )
    ctx.log(
        f"energy W2 {sample_scores['energy_w2']:.3f}, coordinate W2 "
        f"{sample_scores['coordinate_w2']:.3f}, log Z {out['path_weights']['log_z']}, "
        f"train {train_seconds:.0f} s, sample {sample_seconds:.0f} s"
    )
    n_ode = (
        (200 if config.system == "dw4" else 0) if config.ode_samples is None else config.ode_samples
    )
    if n_ode > 0:
        t1 = time.perf_counter()
        ode = sample_idem(k_ode, model, system, n_ode, weights="ode", t_min=settings.t_min)
        ode_samples = np.asarray(ode.samples, np.float64)
        ok = np.all(np.isfinite(ode_samples), axis=1)
        out["ode_weights"] = _log_z_row(np.asarray(ode.log_weights, np.float64))
        out["ode_samples"] = metrics.sample_metrics(
            system, ode_samples[ok], ref, max_samples=min(n_metric, int(ok.sum()))
        )
        ctx.timings["ode_seconds"] = time.perf_counter() - t1
    _figure(
        ctx,
        config.system,
        system,
        samples[finite],
        ref,
        f"iDEM on {config.system}: energy W2 {sample_scores['energy_w2']:.2f}, "
        f"coordinate W2 {sample_scores['coordinate_w2']:.2f}",
    )
    return out
