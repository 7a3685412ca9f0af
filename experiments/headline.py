r"""Headline: one atomic system's free energy and samples, estimated several ways, in one table.

The system is DW-4 (``thermo.systems.get("dw4")``; 4 particles in 2-D, pairwise double
wells, :math:`\beta = 1`). Its energy is translation invariant, so every method works on
the centre-of-mass-free subspace and reports the same quantity,

.. math:: \log Z = \log \int_{\mathrm{COM}=0} e^{-\beta U(x)}\,dx

(Lebesgue measure in orthonormal coordinates of the :math:`(n-1)d`-dimensional subspace),
the convention of :func:`thermo.mcmc.ais`. Each row is one method, keyed by name in
:data:`METHODS`; every method returns a population of paths — final samples, per-path
log-weights, energy evaluations — and its :math:`\log Z` comes from the one shared estimator
:func:`thermo.estimators.estimate_log_z`. Sample quality is scored against reference
samples with :func:`thermo.metrics.sample_metrics` (energy :math:`W_2`, interatomic-distance
TV and :math:`W_2`, aligned coordinate :math:`W_2`, MMD) on the raw (unweighted) final
samples. The methods get comparable budgets of energy(-and-gradient) evaluations.

Rows:

* ``ais``: annealed importance sampling with MALA moves along the geometric path from a
  COM-free Gaussian (Neal 2001), :func:`thermo.mcmc.ais`.
* ``langevin_log_rn`` / ``langevin_jarzynski``: annealed *overdamped* Langevin dynamics
  (:func:`thermo.integrate.overdamped_langevin`) along the same geometric path written as a
  protocol :math:`U(x,\lambda)`, from exact base samples. The same paths give two
  estimates: the exact discrete-time log Radon–Nikodym weights (Crooks 1999; unbiased for
  any step size) and Jarzynski's :math:`-\beta W` (Jarzynski 1997; :math:`O(dt)` bias of the
  unadjusted kernel).
* ``baoab_log_rn``: annealed *underdamped* Langevin by BAOAB
  (:func:`thermo.integrate.baoab`, Leimkuhler & Matthews 2013) with Maxwell–Boltzmann
  initial momenta; log-weight :math:`-\beta(W + W_{\rm shadow})` (Sivak, Chodera & Crooks 2013).

* ``diffusion``: an EGNN diffusion model trained on reference samples, used as a proposal
  with exact path weights (Sohl-Dickstein et al. 2015).
* ``cmcd``: a learned diffusion sampler, controlled Monte Carlo diffusion (Vargas et al.
  2024), trained with no data by the log-variance loss (:mod:`generative.samplers`).
* ``pis``: the Schrödinger-bridge row: the path-integral sampler (Zhang & Chen 2022) is a
  controlled Schrödinger–Föllmer process, the Schrödinger bridge from a Dirac mass to the
  target for a Brownian reference, learned with no data (KL loss).
* ``fk_dds``: the corrected diffusion sampler: the committed DDS checkpoint
  ``generative.samplers.pretrained(system)`` run with its Feynman–Kac correction (SMC
  along the reverse chain: exact path-weight increments, resampling, MALA moves). It is
  one SMC population of ``fk_chains`` particles (no batches), and its rows differ from
  the others in two documented ways: the samples scored are its equally weighted
  (resampled) draws, and its :math:`\log Z` is :func:`thermo.estimators.estimate_log_z`
  of the final population as a resampled :class:`thermo.paths.PathEnsemble` (log-weights
  including the resampling normalisers, Lee–Whiteley genealogy error bar, Pareto k the
  largest over the resampling events), exactly the estimate the sampler itself returns.
  Its energy count adds the checkpoint's training evaluations (its provenance), as the
  ``cmcd``/``pis`` rows add theirs; nothing is trained in the run.

The Langevin protocols handle translation invariance exactly: in full space the path is
:math:`\beta U_\lambda(x) = (1-\lambda)\frac{|x|^2}{2s^2} + \lambda\big[\beta U(x) +
\frac{n|\bar x|^2}{2s^2}\big]`, whose centre-of-mass factor :math:`n|\bar x|^2/2s^2` is the
same at every :math:`\lambda` and therefore contributes no work; the full-space ratio
:math:`Z_1/Z_0` equals the COM-free one over the COM-free base, whose normaliser
:math:`\tfrac{(n-1)d}{2}\log 2\pi s^2` is added back.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from experiments import measurement
from experiments._config import Choices, Count, Positive, Range, SystemName
from thermo.estimators import estimate_log_z
from thermo.integrate import baoab, maxwell_boltzmann, overdamped_langevin, run_population
from thermo.protocols import Protocol

__all__ = ["METHODS", "Config", "MethodOutput", "load_reference", "run"]

REPO_ROOT = Path(__file__).resolve().parent.parent
_SHARED_REFERENCE = {
    "dw4": "val_split_DW4.npy",
    "lj13": "val_split_LJ13-1000.npy",
}


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the headline run. The defaults take a few minutes on a 2-core CPU.

    Attributes:
        system: registry name of the system.
        methods: rows to run, keys of :data:`METHODS`.
        n_batches: the Langevin methods run their populations in this many checkpointed
            batches (AIS in one).
        ais_chains, ais_steps: AIS population and number of annealing stages (one MALA
            move, one gradient evaluation, per stage).
        langevin_chains, langevin_steps, langevin_dt: annealed overdamped Langevin
            (two energy-and-gradient evaluations per step while :math:`\\lambda` moves).
        baoab_chains, baoab_steps, baoab_dt, baoab_friction: annealed BAOAB.
        schedule_power: :math:`\\lambda(t) = (t/\\tau)^p` for the Langevin protocols (AIS
            uses its own polynomial schedule of the same kind, power 4).
        diffusion_chains, diffusion_steps, diffusion_t_min: paths and reverse-chain steps
            of the diffusion-model row, on the grid :math:`[t_{\\min}, T]`.
        diffusion_train_steps, diffusion_batch_size, diffusion_hidden, diffusion_layers:
            its EGNN score model and DSM training budget.
        sampler_chains, sampler_steps, sampler_train_iters, sampler_batch_size,
            sampler_learning_rate, sampler_width, sampler_depth, cmcd_dt: the learned
            diffusion samplers (CMCD and PIS rows): paths drawn, time steps, training
            iterations and batch, Adam rate, control MLP, CMCD's Langevin step.
        fk_chains: particles of the corrected sampler's one SMC population (``fk_dds``;
            its other settings are the pretrained checkpoint's).
        n_metric_samples: samples per method for the sample metrics. The first
            ``2 * n_metric_samples`` reference samples are held out for scoring (and for the
            half-vs-half noise floor); the diffusion model trains on the rest.
        reference: ``"auto"`` (the project's own reference samples, else the shared
            published ones, else none), ``"shared"`` or ``"none"``.
    """

    system: SystemName = "dw4"
    methods: tuple[Annotated[str, Choices(tuple(METHODS))], ...] = (
        "ais",
        "langevin",
        "baoab",
        "diffusion",
        "cmcd",
        "pis",
        "fk_dds",
    )
    n_batches: Count = 4
    ais_chains: Count = 4000
    ais_steps: Count = 1000
    langevin_chains: Count = 2000
    langevin_steps: Count = 1000
    langevin_dt: Positive = 5e-3
    baoab_chains: Count = 2000
    baoab_steps: Count = 1000
    baoab_dt: Positive = 1e-2
    baoab_friction: Positive = 1.0
    schedule_power: Positive = 2.0
    diffusion_chains: Count = 2000
    diffusion_steps: Count = 200
    diffusion_t_min: Annotated[float, Range(0.0, 1.0, high_open=True)] = 1e-3
    diffusion_train_steps: Count = 2000
    diffusion_batch_size: Count = 256
    diffusion_hidden: Count = 32
    diffusion_layers: Count = 3
    sampler_chains: Count = 2000
    sampler_steps: Count = 64
    sampler_train_iters: Count = 400
    sampler_batch_size: Count = 64
    sampler_learning_rate: Positive = 3e-3
    sampler_width: Count = 64
    sampler_depth: Count = 2
    cmcd_dt: Positive = 0.01
    fk_chains: Count = 2000
    n_metric_samples: Count = 1000
    reference: Annotated[str, Choices(("auto", "shared", "none"))] = "auto"

    def __post_init__(self):
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown methods {unknown}; available: {sorted(METHODS)}")
        for name in ("langevin_chains", "baoab_chains", "diffusion_chains", "sampler_chains"):
            if getattr(self, name) % self.n_batches:
                raise ValueError(f"{name}={getattr(self, name)} must be a multiple of n_batches")
        if self.reference not in ("auto", "shared", "none"):
            raise ValueError("reference must be 'auto', 'shared' or 'none'")

    @classmethod
    def quick(cls) -> Config:
        """A few-second setting for the tests (tiny populations, short paths)."""
        return cls(
            n_batches=2,
            ais_chains=64,
            ais_steps=20,
            langevin_chains=64,
            langevin_steps=40,
            baoab_chains=64,
            baoab_steps=40,
            diffusion_chains=64,
            diffusion_steps=10,
            diffusion_train_steps=10,
            diffusion_batch_size=32,
            diffusion_hidden=8,
            diffusion_layers=1,
            sampler_chains=64,
            sampler_steps=8,
            sampler_train_iters=3,
            sampler_batch_size=8,
            sampler_width=8,
            sampler_depth=1,
            fk_chains=64,
            n_metric_samples=64,
        )


class MethodOutput(NamedTuple):
    """One batch of one method: final samples, named log-weight sets, energy evaluations.

    ``resampling`` (a :class:`thermo.paths.Resampling`): set by an SMC method run as one
    population (``fk_dds``); its log Z is then the resampled ensemble's estimate.
    """

    samples: jax.Array  # (b, dim)
    log_weights: dict[str, jax.Array]  # row suffix -> (b,)
    n_energy_evals: jax.Array  # ()
    resampling: Any = None


# --------------------------------------------------------------------------------------
# Methods: each builds a jitted batch function key -> MethodOutput, plus the normaliser
# offset that turns log(Z_target / Z_base) into the COM-free log Z.
# --------------------------------------------------------------------------------------


def _com_free_base(system) -> tuple[float, float]:
    """``(s, log Z_base)`` of the COM-free isotropic Gaussian base of scale ``s``."""
    s = float(system.prior_scale)
    n_p = system.n_particles
    sub_dim = system.dim if n_p is None else (n_p - 1) * system.spatial_dim
    return s, 0.5 * sub_dim * np.log(2.0 * np.pi * s**2)


def _annealing_protocol(system, config: Config, duration: float) -> Protocol:
    r"""Full-space geometric path with a :math:`\lambda`-independent COM factor (module doc)."""
    s, _ = _com_free_base(system)
    n_p, s_d = system.n_particles, system.spatial_dim

    def energy_fn(x, lam):
        base = 0.5 * jnp.sum(x**2) / s**2
        target = system.beta * system.energy(x)
        if n_p is not None:
            com = jnp.mean(x.reshape(n_p, s_d), axis=0)
            target = target + 0.5 * n_p * jnp.sum(com**2) / s**2
        return (1.0 - lam) * base + lam * target

    def schedule_fn(t):
        return jnp.clip(t / duration, 0.0, 1.0) ** config.schedule_power

    return Protocol(energy_fn, schedule_fn)


def _ais_batch(ctx, system, config: Config, batch: int, train_data):
    from thermo.mcmc import ais

    def fn(key):
        res = ais(key, system, n_chains=batch, n_steps=config.ais_steps)
        return MethodOutput(res.samples, {"": res.log_weights}, jnp.asarray(res.n_energy_evals))

    return fn, 0.0, ("",)  # ais reports the COM-free log Z directly


def _langevin_batch(ctx, system, config: Config, batch: int, train_data):
    duration = config.langevin_steps * config.langevin_dt
    kernel = overdamped_langevin(
        _annealing_protocol(system, config, duration), beta=1.0, dt=config.langevin_dt
    )
    s, log_z_base = _com_free_base(system)

    @jax.jit
    def fn(key):
        key_x0, key_run = jr.split(key)
        x0 = s * jr.normal(key_x0, (batch, system.dim))  # exact samples of the base
        final, _ = run_population(key_run, kernel, jax.vmap(kernel.init)(x0), config.langevin_steps)
        weights = {"log_rn": final.log_weight, "jarzynski": -final.work}
        return MethodOutput(final.position, weights, jnp.sum(final.n_energy_evals))

    return fn, log_z_base, ("log_rn", "jarzynski")


def _baoab_batch(ctx, system, config: Config, batch: int, train_data):
    duration = config.baoab_steps * config.baoab_dt
    kernel = baoab(
        _annealing_protocol(system, config, duration),
        beta=1.0,
        dt=config.baoab_dt,
        friction=config.baoab_friction,
    )
    s, log_z_base = _com_free_base(system)

    @jax.jit
    def fn(key):
        key_x0, key_p, key_run = jr.split(key, 3)
        x0 = s * jr.normal(key_x0, (batch, system.dim))
        p0 = maxwell_boltzmann(key_p, (batch, system.dim), beta=1.0)
        states = jax.vmap(kernel.init)(x0, p0)
        final, _ = run_population(key_run, kernel, states, config.baoab_steps)
        weights = {"log_rn": final.log_weight}
        return MethodOutput(final.position, weights, jnp.sum(final.n_energy_evals))

    return fn, log_z_base, ("log_rn",)


def _diffusion_batch(ctx, system, config: Config, batch: int, train_data):
    r"""A diffusion model trained on reference samples, used as a proposal with path weights.

    A VP process (Song et al. 2021) on the COM-free subspace with an EGNN score
    (Satorras et al. 2021) is trained by denoising score matching on held-in reference
    samples (:func:`generative.training.train_score_model`, checkpointed in the run directory). Its
    ancestral reverse chain :math:`B_k` (Ho et al. 2020), started from the prior
    :math:`\pi_T`, proposes paths :math:`x_N \to x_0`, scored against the target path
    measure :math:`\gamma(x_0)\prod_k F_k(x_{k+1}\mid x_k)` built from the exact forward
    kernels :math:`F_k` (Sohl-Dickstein et al. 2015; the diffusion-sampler weight of
    Vargas et al. 2023):

    .. math:: \log w = -\beta U(x_0) + \sum_k \big[\log F_k(x_{k+1}\mid x_k)
              - \log B_k(x_k\mid x_{k+1})\big] - \log\pi_T(x_N),
              \qquad \mathbb E_B[w] = Z.

    All densities live on the COM-free subspace, so :math:`\log Z` is in the headline's
    convention directly. One energy evaluation per path; the score network is evaluated
    ``diffusion_steps`` times per path.
    """
    import equinox as eqx

    from generative.networks.egnn import EGNN
    from generative.processes import VP
    from generative.score import ScoreModel
    from generative.thermodynamics import reverse_chain
    from generative.training import train_score_model

    if system.n_particles is None:
        raise ValueError("the diffusion row is set up for particle systems")
    process = VP(particles=(system.n_particles, system.spatial_dim))
    network = EGNN(
        system.n_particles,
        system.spatial_dim,
        jr.fold_in(ctx.key, 1_000_003),
        hidden=config.diffusion_hidden,
        n_layers=config.diffusion_layers,
    )
    ckpt = ctx.run_dir / "checkpoints" / "diffusion_model.eqx"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    trained = train_score_model(
        jr.fold_in(ctx.key, 1_000_033),
        ScoreModel(network, process),
        jnp.asarray(train_data),
        n_steps=config.diffusion_train_steps,
        batch_size=config.diffusion_batch_size,
        steps_per_call=max(1, min(500, config.diffusion_train_steps)),
        checkpoint_path=ckpt,
        progress=ctx.progress,
    )
    model = trained.model
    d = system.dim
    n_steps = config.diffusion_steps
    times = jnp.linspace(config.diffusion_t_min, process.t1, n_steps + 1)
    params, static = eqx.partition(model, eqx.is_inexact_array)

    def one_path(params, key):
        score = eqx.combine(params, static)
        x_n = process.sample_prior(jr.fold_in(key, n_steps), (d,))
        x0, log_w = reverse_chain(key, process, score, x_n, times)
        return x0, log_w - system.beta * system.energy(x0)

    sample_batch = jax.jit(jax.vmap(one_path, in_axes=(None, 0)))

    def fn(key):
        x0, log_w = sample_batch(params, jr.split(key, batch))
        return MethodOutput(x0, {"": log_w}, jnp.asarray(batch))

    ctx.timings["diffusion training steps"] = float(config.diffusion_train_steps)
    return fn, 0.0, ("",)


_SAMPLER_KEYS = {"cmcd": 2_000_003, "pis": 2_000_029}


def _learned_sampler_batch(method: str):
    r"""A learned diffusion sampler (:mod:`generative.samplers`), trained once, then sampled.

    ``"cmcd"``: controlled Monte Carlo diffusion (Vargas et al. 2024), annealed Langevin
    along the geometric path with a learned control, trained by the log-variance loss.
    ``"pis"``: the path-integral sampler (Zhang & Chen 2022), a controlled
    Schrödinger–Föllmer process: the Schrödinger bridge from a Dirac at the origin to the
    target, for a Brownian reference (Föllmer 1985; Huang et al. 2021). Both carry exact
    discrete-time log Radon–Nikodym weights against the target path measure, so
    :math:`\mathbb E[w] = Z` on the COM-free subspace (the convention of
    :func:`thermo.mcmc.ais`). Training evaluations are added to the row's energy count.
    """

    def build(ctx, system, config: Config, batch: int, train_data):
        from generative.samplers import make_and_train, sample_paths

        key_net, key_train = jr.split(jr.fold_in(ctx.key, _SAMPLER_KEYS[method]))
        target, trained = make_and_train(
            key_net,
            key_train,
            system,
            method,
            n_iters=config.sampler_train_iters,
            batch_size=config.sampler_batch_size,
            learning_rate=config.sampler_learning_rate,
            progress=ctx.progress,
            n_steps=config.sampler_steps,
            width=config.sampler_width,
            depth=config.sampler_depth,
            cmcd_dt=config.cmcd_dt,
        )
        model = trained.sampler

        def fn(key):
            ens = sample_paths(key, model, target, batch)
            return MethodOutput(ens.samples, {"": ens.log_weights}, jnp.asarray(ens.n_energy_evals))

        fn.setup_energy_evals = int(trained.n_energy_evals)
        return fn, 0.0, ("",)

    return build


def _fk_batch(ctx, system, config: Config, batch: int, train_data):
    r"""The pretrained DDS with its Feynman–Kac correction, one population (module doc).

    ``samples`` are the equally weighted draws; ``log_weights`` the final population's
    (resampling normalisers included) with its ``resampling`` record, so that
    :func:`thermo.estimators.estimate_log_z` of the ensemble is the sampler's own
    :math:`\log\hat Z`. The sampler's target is the system's COM-free density, the
    convention of :func:`thermo.mcmc.ais` (offset 0).
    """
    from generative.samplers import pretrained

    model = pretrained(config.system)

    def fn(key):
        out = model.sample(key, batch)
        ens = out.ensemble
        return MethodOutput(
            out.samples, {"": ens.log_weights}, jnp.asarray(out.n_energy_evals), ens.resampling
        )

    fn.setup_energy_evals = int(model.provenance.get("train_energy_evals", 0))
    fn.one_population = True
    return fn, 0.0, ("",)


#: name -> (builder, total-chains config field). ``builder(ctx, system, config, batch,
#: train_data)`` returns
#: ``(batch_fn, log_z_offset, weight_names)``: ``batch_fn(key) -> MethodOutput``, the
#: offset turning its log-weights' ``log(Z_target/Z_base)`` into the COM-free log Z, and
#: the names of its log-weight sets (one table row each).
METHODS: dict[str, tuple[Callable[..., Any], str]] = {
    "ais": (_ais_batch, "ais_chains"),
    "langevin": (_langevin_batch, "langevin_chains"),
    "baoab": (_baoab_batch, "baoab_chains"),
    "diffusion": (_diffusion_batch, "diffusion_chains"),
    "cmcd": (_learned_sampler_batch("cmcd"), "sampler_chains"),
    "pis": (_learned_sampler_batch("pis"), "sampler_chains"),
    "fk_dds": (_fk_batch, "fk_chains"),
}


# --------------------------------------------------------------------------------------
# Reference samples
# --------------------------------------------------------------------------------------


def load_reference(name: str, mode: str = "auto") -> tuple[np.ndarray | None, str]:
    """Reference samples ``(m, dim)`` for the sample metrics, and where they came from.

    ``auto`` prefers the project's own (``thermo.systems.reference_samples``), then the
    published samples in ``../shared/data/reference/`` (cross-checks only; never copied
    into the project); returns ``(None, reason)`` when neither is available.
    """
    if mode == "none":
        return None, "none (disabled)"
    if mode == "auto":
        try:
            from thermo.systems import reference_samples

            ref = reference_samples(name)
            return np.asarray(ref), f"project reference samples (thermo.systems, {name})"
        except (ImportError, FileNotFoundError, KeyError, ValueError):
            pass
    fname = _SHARED_REFERENCE.get(name)
    path = REPO_ROOT.parent / "shared" / "data" / "reference" / (fname or "")
    if fname and path.exists():
        return np.load(path).astype(np.float64), f"published samples ../shared/.../{fname}"
    return None, f"absent: no reference samples for {name}; sample metrics skipped"


# --------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------


def _run_method(ctx, system, config: Config, method: str, index: int, train_data) -> dict[str, Any]:
    builder, chains_field = METHODS[method]
    n_total = getattr(config, chains_field)
    # thermo.mcmc.ais jits a fresh closure on every call (one compile per call), so AIS
    # runs as a single batch; the other methods compile once and run checkpointed batches.
    # An SMC population (fk_dds) is one batch too: splitting it would change the method.
    n_batches = 1 if method in ("ais", "fk_dds") else config.n_batches
    batch = n_total // n_batches
    fn, log_z_offset, weight_names = builder(ctx, system, config, batch, train_data)
    if getattr(fn, "one_population", False):
        return _run_population(ctx, system, method, index, fn, log_z_offset, n_total)
    acc = (
        jnp.zeros((n_batches, batch, system.dim)),
        {k: jnp.zeros((n_batches, batch)) for k in weight_names},
        jnp.zeros((), jnp.int64),
        jnp.zeros(()),
    )

    def body(key, acc, i):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn(key))
        samples, weights, evals, wall = acc
        return (
            samples.at[i].set(out.samples),
            {k: weights[k].at[i].set(out.log_weights[k]) for k in weights},
            evals + out.n_energy_evals,
            wall + (time.perf_counter() - t0),
        )

    key = jr.fold_in(ctx.key, index)
    samples, weights, evals, wall = ctx.loop(
        key, body, acc, n_batches, name=f"method_{method}", desc=method
    )
    evals = evals + getattr(fn, "setup_energy_evals", 0)  # e.g. a sampler's training
    samples = np.asarray(samples.reshape(-1, system.dim))
    np.save(ctx.run_dir / f"samples_{method}.npy", samples)
    rows = {}
    for suffix, lw in weights.items():
        est = estimate_log_z(lw.reshape(-1))
        k_tail = float(est.pareto_k)  # NaN below 10 weights
        rows[f"{method}_{suffix}" if suffix else method] = {
            "log_z": measurement(est.value + log_z_offset, est.std_err),
            "ess": est.ess,
            # PSIS tail index of the weights: above 0.5 the error bar is not trustworthy.
            "pareto_k": k_tail if np.isfinite(k_tail) else None,
            "n_paths": n_total,
            "n_energy_evals": evals,
        }
    return {"rows": rows, "wall_time_s": wall}


def _run_population(ctx, system, method, index, fn, log_z_offset, n_total) -> dict[str, Any]:
    """One resampled SMC population (``fk_dds``): its log Z from the resampled ensemble."""
    from thermo.paths import PathEnsemble

    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(jr.fold_in(ctx.key, index)))
    wall = time.perf_counter() - t0
    evals = int(out.n_energy_evals) + getattr(fn, "setup_energy_evals", 0)
    samples = np.asarray(out.samples)
    np.save(ctx.run_dir / f"samples_{method}.npy", samples)
    est = estimate_log_z(
        PathEnsemble(out.samples, out.log_weights[""], out.n_energy_evals, out.resampling)
    )
    k_tail = float(est.pareto_k)
    row = {
        "log_z": measurement(est.value + log_z_offset, est.std_err),
        "ess": est.ess,
        "pareto_k": k_tail if np.isfinite(k_tail) else None,
        "n_paths": n_total,
        "n_energy_evals": evals,
    }
    return {"rows": {method: row}, "wall_time_s": wall}


def _figures(ctx, system, config: Config, table: dict, reference: np.ndarray | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from thermo.metrics import interatomic_distances

    energy = jax.jit(jax.vmap(system.energy))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for method in config.methods:
        if not (ctx.run_dir / f"samples_{method}.npy").exists():
            continue
        x = np.load(ctx.run_dir / f"samples_{method}.npy")
        e = np.asarray(energy(x))
        lo, hi = np.quantile(e, [0.0, 0.99])
        axes[0].hist(e, bins=60, range=(lo, hi), density=True, histtype="step", label=method)
        if system.n_particles is not None:
            dist = interatomic_distances(x, system.n_particles, system.spatial_dim)
            axes[1].hist(dist, bins=80, density=True, histtype="step", label=method)
    if reference is not None:
        e_ref = np.asarray(energy(reference))
        axes[0].hist(e_ref, bins=60, density=True, color="k", alpha=0.2, label="reference")
        if system.n_particles is not None:
            d_ref = interatomic_distances(reference, system.n_particles, system.spatial_dim)
            axes[1].hist(d_ref, bins=80, density=True, color="k", alpha=0.2, label="reference")
    axes[0].set(xlabel=r"energy $U(x)$", ylabel="density", title="energy distributions")
    axes[1].set(xlabel="interatomic distance", ylabel="density", title="distance distributions")
    names = list(table)
    vals = [table[n]["log_z"]["value"] for n in names]
    errs = [table[n]["log_z"]["std_err"] or 0.0 for n in names]
    axes[2].errorbar(range(len(names)), vals, yerr=errs, fmt="o", capsize=4)
    axes[2].set_xticks(range(len(names)), names, rotation=30, ha="right")
    axes[2].set(ylabel=r"$\log Z$ (COM-free)", title=r"$\log Z$ $\pm$ 1 s.e.")
    for ax in axes[:2]:
        ax.legend(fontsize=8)
    fig.suptitle(f"{system.name}: samples and free energy by method")
    fig.tight_layout()
    ctx.save_figure(fig, "headline")


def _pretrained_names() -> tuple[str, ...]:
    from generative.samplers import PRETRAINED

    return tuple(PRETRAINED)


def run(config: Config, ctx) -> dict:
    """Run every method, score its samples, and return the table (one row per estimate)."""
    import thermo.systems as systems
    from thermo.metrics import sample_metrics

    system = systems.get(config.system)
    reference, ref_source = load_reference(config.system, config.reference)
    ctx.log(f"{system.name}: reference = {ref_source}")
    held_out = train_data = None
    if reference is not None:
        n_hold = min(2 * config.n_metric_samples, reference.shape[0] // 2)
        held_out, train_data = reference[:n_hold], reference[n_hold:]
    table: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    for index, method in enumerate(config.methods):
        if method == "diffusion" and train_data is None:
            skipped[method] = "no reference samples to train the diffusion model on"
            continue
        if method == "fk_dds" and config.system not in _pretrained_names():
            skipped[method] = f"no pretrained corrected sampler for {config.system}"
            continue
        done = ctx.stage(
            f"method_{method}",
            lambda method=method, index=index: _run_method(
                ctx, system, config, method, index, train_data
            ),
        )
        rows = done["rows"]
        ctx.timings[f"method {method} (s)"] = done["wall_time_s"]
        if held_out is not None:
            sm = ctx.stage(
                f"metrics_{method}",
                lambda method=method: sample_metrics(
                    system,
                    np.load(ctx.run_dir / f"samples_{method}.npy"),
                    held_out,
                    max_samples=config.n_metric_samples,
                ),
            )
            for row in rows.values():
                row.update({k: v for k, v in sm.items() if k != "log_z_error"})
        table.update(rows)
    metrics: dict[str, Any] = {"system": system.name, "reference": ref_source}
    if skipped:
        metrics["skipped"] = skipped
    if held_out is not None:
        half = held_out.shape[0] // 2
        floor = ctx.stage(
            "metrics_reference_halves",
            lambda: sample_metrics(
                system, held_out[:half], held_out[half : 2 * half], max_samples=half
            ),
        )
        metrics["reference_half_vs_half"] = {k: v for k, v in floor.items() if k != "log_z_error"}
    metrics["methods"] = table
    _figures(ctx, system, config, table, held_out)
    return metrics
