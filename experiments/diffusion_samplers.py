r"""Learned diffusion samplers (PIS, DDS, CMCD) against AIS and SMC at equal energy budgets.

For each system (``mw5``, ``gmm40``, ``funnel``, ``dw4``) and each method, the table
reports :math:`\log Z` (through :func:`thermo.estimators.estimate_log_z`; SMC through its
own genealogy error) with its standard error and its error against the exact value where
the system has one, the Kish ESS of the final weights, the energy :math:`W_2` of the raw
(unweighted) final samples against reference samples (:func:`thermo.metrics.energy_w2`),
the energy(-and-gradient) evaluations (training and sampling separately) and the wall
times.

* **Learned samplers** (:mod:`generative.samplers`): :class:`~generative.samplers.PIS`
  (KL loss), :class:`~generative.samplers.DDS` (KL loss) and
  :class:`~generative.samplers.CMCD` (log-variance loss), each with a score-informed MLP
  control, ``n_steps`` steps (one energy-and-gradient evaluation per step and path),
  trained for ``n_iters`` steps of ``batch_size`` paths, then sampled with ``n_samples``
  paths. Their budget is
  :math:`B = (\mathtt{n\_iters}\cdot\mathtt{batch\_size} + \mathtt{n\_samples})(K+1)`.
* **AIS** (:func:`thermo.mcmc.ais`, MALA, one gradient per stage): ``n_samples`` chains
  and :math:`B/\mathtt{n\_samples} - 1` stages, i.e. the same budget.
* **SMC** (:func:`thermo.mcmc.smc`, adaptive tempering, MALA): ``n_samples`` particles;
  a pilot run with one MALA move per stage finds the number of stages :math:`S`, and the
  reported run uses :math:`\lfloor (B/\mathtt{n\_samples} - 1)/S \rfloor` moves per stage
  (the pilot's cost is not counted; the row states the evaluations actually used).

Log Z conventions: exact :math:`\log Z` from the system object for ``mw5`` (quadrature),
``gmm40`` and ``funnel`` (0, normalised). For ``dw4`` (unknown) every method reports the
centre-of-mass-free :math:`\log\int_{\mathrm{COM}=0}e^{-\beta U}` of
:func:`thermo.mcmc.ais` (the learned samplers run on that subspace), so the rows are
comparable with each other and with ``experiments/headline.py``. Reference samples: exact
draws (``system.sample``) for the toy systems; the project's DW-4 reference set
(``thermo.systems.reference_samples``) for ``dw4``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Annotated, Any

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from experiments import measurement
from experiments._config import Choices, Count, Positive

__all__ = ["Config", "run", "CMCD_DT"]

#: CMCD Langevin steps per system, below the explicit-Euler stability limit 2/L of the
#: target's stiffest region (L the largest curvature of beta*U there: 40 at the mw5 wells,
#: so 0.02 < 0.05; 0.58 for gmm40's components; O(10) in DW-4's wells). The funnel's neck
#: (curvature e^{-x0}) is stiffer than any fixed step; there the displacement cap keeps the
#: kernel stable (the weights stay exact) and 0.02 lets the mouth mix.
CMCD_DT = {"mw5": 0.02, "gmm40": 0.3, "funnel": 0.02, "dw4": 0.01}
METHODS = ("pis", "dds", "cmcd", "ais", "smc")


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings; the defaults take about 15 minutes on a loaded 2-core CPU.

    Attributes:
        systems: registry names.
        methods: subset of ``("pis", "dds", "cmcd", "ais", "smc")``.
        n_steps: time steps :math:`K` of the learned samplers.
        n_iters, batch_size, learning_rate: training (Adam, gradient clipping at 1).
        width, depth: the control MLP.
        n_samples: paths drawn after training; also AIS chains and SMC particles.
        dds_duration: DDS's :math:`T` (OU rate 1).
        cmcd_dt_scale: multiplies :data:`CMCD_DT`.
        cmcd_schedule_power: :math:`p` of CMCD's :math:`\\lambda_k = (k/K)^p`.
        max_displacement: drift displacement cap per step, in units of the target's scale
            (a safety net; weights stay exact).
        n_reference: reference samples for the energy :math:`W_2`.
    """

    systems: tuple[Annotated[str, Choices(tuple(CMCD_DT))], ...] = ("mw5", "gmm40", "funnel", "dw4")
    methods: tuple[Annotated[str, Choices(METHODS)], ...] = METHODS
    n_steps: Count = 64
    n_iters: Count = 400
    batch_size: Count = 64
    learning_rate: Positive = 3e-3
    width: Count = 64
    depth: Count = 2
    n_samples: Count = 2000
    dds_duration: Positive = 4.0
    cmcd_dt_scale: Positive = 1.0
    cmcd_schedule_power: Positive = 2.0
    max_displacement: Positive = 1.0
    n_reference: Count = 2000

    def __post_init__(self):
        unknown = set(self.methods) - set(METHODS)
        if unknown:
            raise ValueError(f"unknown methods {sorted(unknown)}; choose from {METHODS}")
        bad = set(self.systems) - set(CMCD_DT)
        if bad:
            raise ValueError(f"no settings for systems {sorted(bad)}; have {sorted(CMCD_DT)}")
        if min(self.n_steps, self.n_iters, self.batch_size, self.n_samples) < 1:
            raise ValueError("n_steps, n_iters, batch_size and n_samples must be positive")

    @classmethod
    def quick(cls) -> Config:
        """A seconds-long smoke setting (one system, CMCD and AIS, tiny budgets).

        The system is ``gmm40`` (exact log Z, exact samples drawn directly): ``mw5``'s
        rejection sampler compiles one more program for its reference samples.
        """
        return cls(
            systems=("gmm40",),
            methods=("cmcd", "ais"),
            n_steps=8,
            n_iters=3,
            batch_size=8,
            width=8,
            depth=1,
            n_samples=64,
            n_reference=128,
        )


def _budget(config: Config) -> tuple[int, int]:
    """(training, sampling) energy evaluations of one learned sampler."""
    per_path = config.n_steps + 1
    return config.n_iters * config.batch_size * per_path, config.n_samples * per_path


def _reference(system, name: str, key, n: int) -> tuple[np.ndarray, str]:
    try:
        return np.asarray(system.sample(key, n)), "exact samples (system.sample)"
    except NotImplementedError:
        from thermo.systems import reference_samples

        ref = np.asarray(reference_samples(name))
        return ref[:n], f"project reference samples (thermo.systems.reference_samples, {name})"


def _learned(method: str, system, name: str, config: Config, key) -> dict[str, Any]:
    from generative.samplers import DEFAULT_LOSS, make_and_train, sample_paths

    key_net, key_train, key_sample = jr.split(key, 3)
    t0 = time.perf_counter()
    target, result = make_and_train(
        key_net,
        key_train,
        system,
        method,
        n_iters=config.n_iters,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        n_steps=config.n_steps,
        width=config.width,
        depth=config.depth,
        cmcd_dt=CMCD_DT[name] * config.cmcd_dt_scale,
        cmcd_schedule_power=config.cmcd_schedule_power,
        dds_duration=config.dds_duration,
        max_displacement=config.max_displacement,
    )
    jax.block_until_ready(result.losses)
    t_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    ens = sample_paths(key_sample, result.sampler, target, config.n_samples)
    jax.block_until_ready(ens.log_weights)
    t_sample = time.perf_counter() - t0
    losses = np.asarray(result.losses)
    n10 = max(1, len(losses) // 10)
    return {
        "samples": np.asarray(ens.samples),
        "log_weights": np.asarray(ens.log_weights),
        "train_evals": int(result.n_energy_evals),
        "sample_evals": int(ens.n_energy_evals),
        "train_s": t_train,
        "sample_s": t_sample,
        "loss": f"{DEFAULT_LOSS[method]}: {losses[:n10].mean():.3g} -> {losses[-n10:].mean():.3g}",
    }


def _annealing(method: str, system, config: Config, key, budget: int) -> dict[str, Any]:
    from thermo.mcmc import ais, smc

    n = config.n_samples
    per_chain = max(2, budget // n)
    t0 = time.perf_counter()
    if method == "ais":
        res = ais(key, system, n_chains=n, n_steps=per_chain - 1)
        note = f"{per_chain - 1} MALA stages"
    else:
        key_pilot, key_run = jr.split(key)
        pilot = smc(key_pilot, system, n_chains=n, n_mcmc_steps=1)
        stages = max(1, int(pilot.n_temperatures))
        moves = max(1, (per_chain - 1) // stages)
        res = smc(key_run, system, n_chains=n, n_mcmc_steps=moves)
        note = f"{int(res.n_temperatures)} stages x {moves} MALA moves"
    jax.block_until_ready(res.log_weights)
    wall = time.perf_counter() - t0
    return {
        "samples": np.asarray(res.samples),
        "log_weights": np.asarray(res.log_weights),
        "log_z": (float(res.log_z), float(res.log_z_std), float(res.ess)),
        "train_evals": 0,
        "sample_evals": int(res.n_energy_evals),
        "train_s": 0.0,
        "sample_s": wall,
        "loss": note,
    }


def _row(
    system, out: dict[str, Any], energy_fn, reference_energies: np.ndarray, n_keep: int
) -> dict[str, Any]:
    """One table row; ``energy_fn`` is the system's jitted, vmapped energy (one per system,
    so that every row reuses its compilation). The energies of the first ``n_keep`` finite
    samples go to ``row["_energies"]`` (for the figure)."""
    from thermo.estimators import estimate_log_z
    from thermo.metrics import energy_w2

    lw = np.asarray(out["log_weights"])
    finite = np.isfinite(lw)
    if "log_z" in out:  # SMC/AIS: their own estimate (genealogy error for SMC)
        value, std_err, ess = out["log_z"]
    elif finite.any():
        est = estimate_log_z(jnp.asarray(lw[finite]))
        value, std_err, ess = float(est.value), float(est.std_err), float(est.ess)
        # Non-finite paths (if any) have weight zero in this estimate; they are counted.
        value += float(np.log(finite.mean()))
    else:
        value = std_err = ess = float("nan")
    x = np.asarray(out["samples"])
    ok = np.all(np.isfinite(x), axis=1)
    e_samples = np.asarray(energy_fn(x[ok]))
    w2 = energy_w2(e_samples, reference_energies)
    row = {
        "log_z": measurement(value, std_err),
        "ess": ess,
        "energy_w2": w2,
        "train_evals": out["train_evals"],
        "sample_evals": out["sample_evals"],
        "total_evals": out["train_evals"] + out["sample_evals"],
        "train_s": out["train_s"],
        "sample_s": out["sample_s"],
        "non_finite_paths": int((~finite).sum()),
        "notes": out["loss"],
        "_energies": e_samples[:n_keep],
    }
    if system.log_z is not None:
        row["log_z_error"] = measurement(value - system.log_z, std_err)
    return row


def _figure(ctx, system_names, samples, energies_ref, table) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(system_names)
    fig, axes = plt.subplots(2, n, figsize=(4.2 * n, 7), squeeze=False)
    for j, name in enumerate(system_names):
        ax = axes[0, j]
        e_ref = energies_ref[name]
        lo, hi = np.quantile(e_ref, [0.0, 0.99])
        hi = hi + 0.5 * (hi - lo)
        ax.hist(e_ref, bins=50, range=(lo, hi), density=True, color="k", alpha=0.25, label="ref")
        for method, e in samples[name].items():
            ax.hist(e, bins=50, range=(lo, hi), density=True, histtype="step", label=method)
        ax.set(title=name, xlabel=r"energy $U(x)$", ylabel="density")
        ax.legend(fontsize=7)
        ax = axes[1, j]
        rows = table[name]
        methods = list(rows)
        key = "log_z_error" if "log_z_error" in rows[methods[0]] else "log_z"
        vals = [rows[m][key]["value"] for m in methods]
        errs = [rows[m][key]["std_err"] or 0.0 for m in methods]
        vals = [np.nan if v is None else v for v in vals]
        ax.errorbar(range(len(methods)), vals, yerr=errs, fmt="o", capsize=4)
        if key == "log_z_error":
            ax.axhline(0.0, color="k", lw=0.8)
        ax.set_xticks(range(len(methods)), methods)
        ax.set(ylabel=r"$\log\hat Z - \log Z$" if key == "log_z_error" else r"$\log\hat Z$")
    fig.suptitle("diffusion samplers vs AIS/SMC at equal energy budgets")
    fig.tight_layout()
    ctx.save_figure(fig, "diffusion_samplers")


def run(config: Config, ctx) -> dict:
    """Train and sample every method on every system; one table per system, one figure."""
    import thermo.systems as systems

    budget_train, budget_sample = _budget(config)
    budget = budget_train + budget_sample
    ctx.log(f"budget per method: {budget} evaluations ({budget_train} train + {budget_sample})")
    metrics: dict[str, Any] = {
        "budget": {
            "learned_train_evals": budget_train,
            "learned_sample_evals": budget_sample,
            "total_evals": budget,
        }
    }
    tables: dict[str, dict[str, Any]] = {}
    sample_energies: dict[str, dict[str, np.ndarray]] = {}
    ref_energies: dict[str, np.ndarray] = {}
    for name in config.systems:
        system = systems.get(name)
        # The same key for every system and a per-method key by the method's place in
        # METHODS: a row does not depend on which other systems or methods are run.
        key_sys = jr.fold_in(ctx.key, 0)
        reference, source = _reference(system, name, jr.fold_in(key_sys, 999), config.n_reference)
        ctx.log(f"{name}: reference = {source}")
        energy = jax.jit(jax.vmap(system.energy))
        ref_energies[name] = np.asarray(energy(reference))
        rows: dict[str, Any] = {}
        sample_energies[name] = {}
        for method in config.methods:
            key = jr.fold_in(key_sys, METHODS.index(method))

            def compute(method=method, key=key, system=system, name=name, en=energy):
                if method in ("ais", "smc"):
                    out = _annealing(method, system, config, key, budget)
                else:
                    out = _learned(method, system, name, config, key)
                return _row(system, out, en, ref_energies[name], config.n_reference)

            ctx.log(f"{name}: {method}")
            row = ctx.stage(f"{name}_{method}", compute)
            sample_energies[name][method] = np.asarray(row.pop("_energies"), dtype=float)
            ctx.timings[f"{name} {method} (s)"] = row["train_s"] + row["sample_s"]
            rows[method] = row
        tables[name] = rows
        metrics[f"table_{name}"] = rows
        metrics[f"reference_{name}"] = source
    _figure(ctx, list(config.systems), sample_energies, ref_energies, tables)
    return metrics
