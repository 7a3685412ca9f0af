r"""An EGNN score model trained on DW-4 / LJ-13 reference samples, scored on held-out ones.

Pipeline (all from :mod:`generative`):

1. **Data.** The reference samples of the system (the project's own,
   :func:`thermo.systems.reference_samples`, or, when those are missing, the published
   ones from ``../shared/data/reference/``; never copied into the project) are centred
   (centre of mass removed), shuffled with a fixed key and split into a training set and
   a held-out set. Coordinates are divided by one scalar, the training set's coordinate
   standard deviation, so the data have unit scale like the VP prior.
2. **Model.** A VP process (linear schedule, :math:`\beta\in[0.1, 20]`) on the
   centre-of-mass-free subspace and an E(n)-equivariant GNN (Satorras et al. 2021) in the
   noise-prediction parameterisation (:class:`generative.score.ScoreModel`), with
   radial-basis distance features in every layer (:class:`generative.networks.EGNN`).
3. **Training.** Denoising score matching (:func:`generative.training.train_score_model`) with Adam,
   a linear warm-up then cosine decay of the learning rate, global-norm gradient
   clipping, and an exponential moving average of the weights
   (:func:`generative.training.with_ema`) used for sampling and likelihood (Song & Ermon
   2020, Technique 5), in float32; checkpointed every 100 steps under ``out_dir`` and
   resumed from there.
4. **Sampling.** The reverse SDE by Euler–Maruyama (thermo's kernel) with a final
   Tweedie denoising step, or the probability-flow ODE (adaptive diffrax).
5. **Scores.** Against the held-out reference samples, with :mod:`thermo.metrics`:
   the energy :math:`W_2` and the interatomic-distance TV, each next to its floor (the
   same metric between two independent reference slices); and the negative
   log-likelihood of held-out samples from the probability-flow ODE with Hutchinson's
   trace estimator (:func:`generative.likelihood.log_likelihood`, float64), in nats per
   centre-of-mass-free dimension (:math:`(n-1)D`), in the original (unscaled)
   coordinates, i.e. including the :math:`-(n-1)D\log s` Jacobian of the scaling.

:func:`main` returns a JSON-able dict of metrics and timings.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from pathlib import Path
from typing import Annotated

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

import thermo.systems as systems
from experiments._config import Choices, Count, NonNegativeInt, Positive, Range, Seed
from experiments._report import save_figure
from generative.likelihood import log_likelihood
from generative.networks import EGNN
from generative.processes import VP
from generative.sampling import sample_probability_flow, sample_reverse_euler_maruyama
from generative.score import ScoreModel
from generative.training import ema_model, train_score_model, with_ema
from thermo import metrics
from thermo.systems import remove_com

__all__ = ["Config", "load_reference", "main"]

_SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "reference"
_PUBLISHED = {"dw4": "val_split_DW4.npy", "lj13": "val_split_LJ13-1000.npy"}


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings (defaults: the LJ-13 run reported in the issue's closing note).

    Attributes:
        system: ``"dw4"`` or ``"lj13"``.
        n_held_out: reference samples kept out of training and used for scoring.
        hidden, n_layers: EGNN width and depth.
        n_rbf, rbf_max: radial-basis distance features of every EGNN layer, centres on
            ``[0, rbf_max]`` in units of the data scale (the normalised pair distances of
            DW-4 and LJ-13 lie in about ``[0.8, 4.5]``).
        n_steps, batch_size: optimiser steps and examples per step.
        learning_rate, warmup_steps: Adam with a linear warm-up to ``learning_rate`` over
            ``warmup_steps`` then cosine decay to zero (``optax.warmup_cosine_decay_schedule``).
        grad_clip: global-norm gradient clipping.
        ema_decay: decay of the exponential moving average of the weights used for
            sampling and likelihood (:func:`generative.training.with_ema`); 0 disables it.
        t_min: smallest diffusion time for training, sampling and likelihood
            (Song et al. 2021 use 1e-3 for VP).
        n_samples: generated samples scored against the held-out set.
        sampler: ``"em"`` (reverse SDE, Euler–Maruyama) or ``"pf"`` (probability-flow ODE,
            adaptive Tsit5 with rtol = atol = ``pf_tol``).
        n_sample_steps: Euler–Maruyama steps of the reverse SDE.
        pf_tol: tolerance of the probability-flow sampler.
        denoise: 1 to finish Euler–Maruyama sampling with Tweedie's denoising step, 0 not to.
        n_nll: held-out points for the likelihood.
        nll_tol: rtol = atol of the probability-flow solve.
        float32: 1 to train and sample in float32 (the runner enables float64 globally;
            the likelihood is always computed in float64).
        seed: the one seed of the run.
        source: ``"auto"`` (project's reference samples, else the published ones),
            ``"project"`` or ``"published"``.
    """

    system: Annotated[str, Choices(tuple(_PUBLISHED))] = "lj13"
    n_held_out: Count = 2000
    hidden: Count = 64
    n_layers: Count = 4
    n_rbf: Count = 16
    rbf_max: Positive = 5.0
    n_steps: Count = 2500
    batch_size: Count = 64
    learning_rate: Positive = 1e-3
    warmup_steps: NonNegativeInt = 200
    grad_clip: Positive = 1.0
    ema_decay: Annotated[float, Range(0.0, 1.0, high_open=True)] = 0.999
    t_min: Annotated[float, Range(0.0, 1.0, high_open=True)] = 1e-3
    n_samples: Count = 500
    sampler: Annotated[str, Choices(("em", "pf"))] = "em"
    n_sample_steps: Count = 200
    pf_tol: Positive = 1e-4
    denoise: Annotated[int, Choices((0, 1))] = 1
    n_nll: NonNegativeInt = 50
    nll_tol: Positive = 1e-4
    float32: Annotated[int, Choices((0, 1))] = 1
    seed: Seed = 0
    source: Annotated[str, Choices(("auto", "project", "published"))] = "auto"

    def __post_init__(self):
        if self.sampler not in ("em", "pf"):
            raise ValueError(f"sampler must be 'em' or 'pf', got {self.sampler!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")

    @classmethod
    def quick(cls, system: str = "dw4") -> Config:
        """A setting for a seconds-long smoke run."""
        return cls(
            system=system,
            n_held_out=100,
            hidden=8,
            n_layers=1,
            n_rbf=4,
            n_steps=20,
            batch_size=16,
            warmup_steps=5,
            n_samples=50,
            n_sample_steps=20,
            n_nll=4,
            nll_tol=1e-3,
        )


def load_reference(name: str, source: str = "auto") -> tuple[np.ndarray, str]:
    """Reference samples ``(n, dim)`` of ``name`` and a string saying where they came from.

    ``source="auto"`` uses the project's own (:func:`thermo.systems.reference_samples`)
    and falls back to the published ones in ``../shared/data/reference/``; the error
    says plainly when neither is present.
    """
    if source in ("auto", "project"):
        try:
            return np.asarray(systems.reference_samples(name), np.float64), "project"
        except (FileNotFoundError, ValueError):
            if source == "project":
                raise
    path = _SHARED / _PUBLISHED.get(name, "")
    if name not in _PUBLISHED or not path.exists():
        raise FileNotFoundError(
            f"no reference samples for {name!r}: neither the project's own nor {path} exist"
        )
    return np.asarray(np.load(path), np.float64), f"published:{path.name}"


def main(config: Config | dict | None = None, out_dir: str | Path | None = None) -> dict:
    """Train, sample and score (module doc). Returns a JSON-able dict.

    With ``out_dir`` the training checkpoints to ``out_dir/checkpoints/dsm.eqx`` every
    100 steps and a rerun with the same directory resumes from it (the runner's
    automatic resume of an interrupted run passes the same directory).
    """
    if config is None:
        config = Config()
    elif isinstance(config, dict):
        config = Config(**config)
    system = systems.get(config.system)
    n_p, s_d = system.n_particles, system.spatial_dim
    particles = (n_p, s_d)
    free = (n_p - 1) * s_d
    key = jr.key(config.seed)
    k_split, k_init, k_train, k_sample, k_nll = jr.split(key, 5)

    ref, source = load_reference(config.system, config.source)
    ref = np.asarray(remove_com(jnp.asarray(ref), *particles))
    perm = np.asarray(jr.permutation(k_split, ref.shape[0]))
    held_out, train_set = ref[perm[: config.n_held_out]], ref[perm[config.n_held_out :]]
    scale = float(np.sqrt(np.mean(train_set**2) * (n_p * s_d) / free))  # per free dim

    ckpt = None
    if out_dir is not None:
        ckpt = Path(out_dir) / "checkpoints" / "dsm.eqx"
        ckpt.parent.mkdir(parents=True, exist_ok=True)

    process = VP(particles=particles)
    low = jax.enable_x64(False) if config.float32 else contextlib.nullcontext()
    with low:
        dtype = jnp.float32 if config.float32 else jnp.float64
        # one compiled initialiser instead of many eager random ops (saves seconds of
        # dispatch and per-op compilation in the quick setting)
        net = eqx.filter_jit(
            lambda k: jax.tree_util.tree_map(
                lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a,
                EGNN(
                    n_p,
                    s_d,
                    k,
                    hidden=config.hidden,
                    n_layers=config.n_layers,
                    n_rbf=config.n_rbf,
                    rbf_max=config.rbf_max,
                ),
            )
        )(k_init)
        model = ScoreModel(net, process)
        schedule = optax.warmup_cosine_decay_schedule(
            0.0, config.learning_rate, min(config.warmup_steps, config.n_steps - 1), config.n_steps
        )
        optimizer = optax.chain(optax.clip_by_global_norm(config.grad_clip), optax.adam(schedule))
        if config.ema_decay > 0:
            optimizer = with_ema(optimizer, config.ema_decay)

        t_start = time.perf_counter()
        result = train_score_model(
            k_train,
            model,
            jnp.asarray(train_set / scale, dtype),
            n_steps=config.n_steps,
            batch_size=config.batch_size,
            optimizer=optimizer,
            t_min=config.t_min,
            steps_per_call=max(1, min(100, config.n_steps)),
            checkpoint_path=ckpt,
            progress=True,
        )
        jax.block_until_ready(result.losses)
        train_seconds = time.perf_counter() - t_start
        model = ema_model(result) if config.ema_decay > 0 else result.model

        t_start = time.perf_counter()
        if config.sampler == "em":
            sample_fn = sample_reverse_euler_maruyama
            options = dict(n_steps=config.n_sample_steps, denoise=bool(config.denoise))
        else:
            sample_fn = sample_probability_flow
            options = dict(rtol=config.pf_tol, atol=config.pf_tol)
        samples = sample_fn(
            k_sample, process, model, config.n_samples, n_p * s_d, t_min=config.t_min, **options
        )
        samples = np.asarray(jax.block_until_ready(samples), np.float64) * scale
        sample_seconds = time.perf_counter() - t_start
    finite = np.all(np.isfinite(samples), axis=1)

    base = train_set[: config.n_held_out]
    # one energy call (one compilation) for generated, held-out and baseline samples
    gen = samples[finite]
    e_all = np.asarray(jax.jit(jax.vmap(system.energy))(jnp.concatenate([gen, held_out, base])))
    e_gen, e_ref, e_base = np.split(e_all, [len(gen), len(gen) + len(held_out)])
    dist = metrics.distance_histogram_metrics(samples[finite], held_out, n_p, s_d)
    # Baseline: a second held-out-sized slice of the training data scored the same way,
    # the floor these finite-sample metrics reach for a perfect sampler.
    dist_base = metrics.distance_histogram_metrics(base, held_out, n_p, s_d)

    t_start = time.perf_counter()
    model64 = jax.tree_util.tree_map(
        lambda a: a.astype(jnp.result_type(float)) if eqx.is_inexact_array(a) else a, model
    )
    nll_points = jnp.asarray(held_out[: config.n_nll] / scale)
    ll = log_likelihood(
        k_nll,
        process,
        model64,
        nll_points,
        t_min=config.t_min,
        trace="hutchinson",
        rtol=config.nll_tol,
        atol=config.nll_tol,
    )
    log_p = np.asarray(ll.log_prob) - free * math.log(scale)
    nll_seconds = time.perf_counter() - t_start
    nll_per_dim = -log_p / free

    if out_dir is not None:
        _figure(Path(out_dir), samples[finite], held_out, e_gen, e_ref, n_p, s_d, config.system)

    n_params = sum(x.size for x in jax.tree_util.tree_leaves(eqx.filter(net, eqx.is_inexact_array)))
    e_fin = e_gen[np.isfinite(e_gen)]
    return {
        "system": config.system,
        "reference_source": source,
        "config": dataclasses.asdict(config),
        "n_train": int(train_set.shape[0]),
        "n_held_out": int(held_out.shape[0]),
        "data_scale": scale,
        "n_parameters": int(n_params),
        "final_loss": float(jnp.mean(result.losses[-100:])) if result.losses.size else None,
        "energy_w2": metrics.energy_w2(e_gen, e_ref),
        "distance_tv": dist["tv"],
        "distance_w2": dist["w2"],
        "baseline_energy_w2": metrics.energy_w2(e_base, e_ref),
        "baseline_distance_tv": dist_base["tv"],
        "nll_per_dim": float(np.mean(nll_per_dim)),
        "nll_per_dim_std_err": float(np.std(nll_per_dim, ddof=1) / math.sqrt(len(nll_per_dim)))
        if len(nll_per_dim) > 1
        else None,
        "fraction_finite_samples": float(np.mean(finite)),
        "mean_energy_generated": float(np.mean(e_fin)) if e_fin.size else None,
        "median_energy_generated": float(np.median(e_fin)) if e_fin.size else None,
        "fraction_energy_above_reference_max": float(np.mean(e_gen > np.max(e_ref))),
        "mean_energy_reference": float(np.mean(e_ref)),
        "train_seconds": train_seconds,
        "train_start_step": int(result.start_step),
        "sample_seconds": sample_seconds,
        "nll_seconds": nll_seconds,
        "device": jax.devices()[0].device_kind,
    }


def _figure(out_dir, gen, ref, e_gen, e_ref, n_p, s_d, name) -> None:
    """Write ``samples.png``: interatomic-distance and energy histograms, generated vs
    held-out (energies clipped at the held-out maximum + 10, so outliers pile up there)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    d_gen = metrics.interatomic_distances(gen, n_p, s_d)
    d_ref = metrics.interatomic_distances(ref, n_p, s_d)
    bins = np.linspace(0.0, float(np.quantile(d_ref, 0.999)) * 1.2, 80)
    ax[0].hist(d_ref, bins, density=True, histtype="step", label="held-out reference")
    ax[0].hist(d_gen, bins, density=True, histtype="step", label="EGNN diffusion")
    ax[0].set_xlabel("interatomic distance")
    ax[0].legend()
    top = float(np.max(e_ref)) + 10.0
    ebins = np.linspace(float(np.min(e_ref)) - 5.0, top, 80)
    ax[1].hist(e_ref, ebins, density=True, histtype="step", label="held-out reference")
    ax[1].hist(np.minimum(e_gen, top), ebins, density=True, histtype="step", label="EGNN diffusion")
    ax[1].set_xlabel("energy")
    fig.suptitle(name)
    save_figure(fig, out_dir / "samples.png", dpi=100)


if __name__ == "__main__":
    import json
    import sys

    jax.config.update("jax_enable_x64", True)  # as the runner does; training runs in float32
    from experiments._config import apply_overrides

    cfg = apply_overrides(Config(), sys.argv[1:])  # key=value, parsed and range-checked
    print(json.dumps(main(cfg), indent=2))
