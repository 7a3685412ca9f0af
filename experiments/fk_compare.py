r"""The comparison that matters (issue 15, item 5): corrected vs uncorrected learned samplers vs PT and HMC.

Per system (``dw4``, ``lj13``, ``lj55``), each row draws ``n`` equally weighted samples
(``n_samples``; ``n_samples_lj55`` on LJ-55) and is scored by energy :math:`W_2`
(:func:`thermo.metrics.energy_w2`, the square root) against the project's reference
samples (:func:`thermo.systems.reference_samples`, the same set as ``python -m
experiments.fk_samplers measure``):

* ``fk``: the committed checkpoint with its Feynman–Kac correction,
  ``generative.samplers.pretrained(name).sample(key, n)`` (:math:`\log\hat Z` with the
  Lee–Whiteley standard error, Pareto k of the SMC weights). Its energy evaluations
  are the call's (``n(1 + K(1 + M))``, plus the adaptive schedule's pilot on LJ-13)
  plus the checkpoint's training (its provenance ``train_energy_evals``).
* ``uncorrected``: the same trained DDS, sampled without the correction
  (:func:`generative.samplers.sample_paths`: ``n`` raw paths, ``n(K + 1)`` evaluations);
  :math:`W_2` of its raw (unweighted) samples, and ``energy_w2_importance_resampled`` of
  those samples resampled systematically by their path weights; :math:`\log\hat Z` is the
  importance-weighted estimate :func:`thermo.estimators.estimate_log_z` of the path
  weights with its delta-method error and Pareto k.
* ``hmc_total`` / ``pt_total``: the project's HMC (:func:`thermo.mcmc.hmc`, 10 leapfrog
  steps) and parallel tempering (:func:`thermo.mcmc.replica_exchange`, 8 rungs, HMC
  moves, geometric ladder to ``beta_min`` 0.2 on DW-4, 0.3 on LJ-13, 0.5 on LJ-55) at the
  ``fk`` row's total budget, training included. ``hmc_marginal`` / ``pt_marginal``: at the
  ``fk`` row's marginal cost per extra sample after training, :math:`1 + K(1 + M)`
  evaluations: kept samples are ``thin`` steps apart with ``thin L`` (HMC) or
  ``thin L R`` (PT, R rungs) as close to that cost as a whole ``thin`` allows; their
  warm-up and burn-in (the MCMC counterpart of training) are reported, not matched.
* ``reference_floor``: ``n`` reference samples against the other reference samples,
  the mean, standard deviation and range over 20 random splits: what an exact sampler
  reaches at this ``n``, and how much energy :math:`W_2` moves from draw to draw (rows
  closer than that spread are not distinguished by this metric).

MCMC layout (:func:`mcmc_layout`; the chains are the ``mcmc_baselines`` experiment's):
``n_chains`` independent chains (PT: independent ladders, samples from the target rung)
started from the system's Gaussian ``initial_positions`` (DW-4) or the Mackay
icosahedron plus noise 0.05 (LJ-13, LJ-55; the global minimum: a head start no learned
sampler gets), centre of mass removed; a warm-up adapts the step size (dual averaging,
counted), then a run of ``2 thin (n / n_chains)`` steps whose second half, thinned by
``thin``, gives ``n / n_chains`` samples per chain. Every gradient evaluation counts as one energy
evaluation, as in :mod:`thermo.mcmc` (HMC: ``L`` per step; PT: ``L R`` per step, swaps
free) and in the corrected sampler (one per transport step and per MALA sweep).
HMC and PT give no :math:`\log Z` here (n/a): thermodynamic integration over PT's ladder
gives :math:`\log Z(\beta_0) - \log Z(\beta_{\min})` only, and :math:`Z(\beta_{\min})`
is not known for these unconfined systems.

CPU seconds are process time (all threads) of each row including its compilation;
the ``fk`` row adds the checkpoint's recorded training CPU time in ``cpu_s_total``.

Commands::

    python -m experiments run fk_compare                      # dw4, lj13 (lj55: systems=...)
    python -m experiments run fk_compare systems=lj55 n_samples_lj55=250
    python -m experiments run fk_compare --quick              # DW-4, 64 samples, < 1 min
    python -m experiments.fk_samplers compare [NAME ...]      # the same, table printed

The run directory holds ``comparison.json`` and ``comparison.md`` (the table) beside the
usual ``metrics.json``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Annotated

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from experiments import measurement
from experiments._config import Choices, Count

__all__ = [
    "METHODS",
    "Config",
    "compare_system",
    "load_cached",
    "markdown_table",
    "mcmc_layout",
    "run",
]

METHODS = (
    "fk",
    "uncorrected",
    "hmc_total",
    "pt_total",
    "hmc_marginal",
    "pt_marginal",
    "reference_floor",
)
_PT_REPLICAS = 8
_FLOOR_SPLITS = 20
_LEAPFROG = 10


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings (defaults: the full comparison on DW-4 and LJ-13).

    Attributes:
        systems: pretrained names (``dw4``, ``lj13``, ``lj55``).
        methods: rows (:data:`METHODS`).
        n_samples: samples per row (DW-4, LJ-13).
        n_samples_lj55: samples per row on LJ-55 (its corrected sampler spends about
            16,000 evaluations per sample).
        n_chains: MCMC chains (PT: independent ladders); must divide the sample count.
    """

    systems: tuple[Annotated[str, Choices(("dw4", "lj13", "lj55"))], ...] = ("dw4", "lj13")
    methods: tuple[Annotated[str, Choices(METHODS)], ...] = METHODS
    n_samples: Count = 2000
    n_samples_lj55: Count = 250
    n_chains: Count = 50

    def __post_init__(self):
        for name in self.systems:
            n = self.n_for(name)
            if n % self.n_chains:
                raise ValueError(
                    f"fk_compare: n_chains={self.n_chains} must divide the {name} sample count {n}"
                )

    def n_for(self, name: str) -> int:
        """The sample count of system ``name``."""
        return self.n_samples_lj55 if name == "lj55" else self.n_samples

    @classmethod
    def quick(cls) -> Config:
        """DW-4, 64 samples per row, 8 chains (well under a minute)."""
        return cls(systems=("dw4",), n_samples=64, n_chains=8)


def _finite(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _energy_fn(system):
    return jax.jit(jax.vmap(system.energy))


def _fk_row(key, model, system, n):
    t0 = time.process_time()
    out = model.sample(key, n)
    out.samples.block_until_ready()
    cpu = time.process_time() - t0
    train = int(model.provenance.get("train_energy_evals", 0))
    c = model.config
    return np.asarray(out.samples), {
        "log_z": measurement(out.log_z, out.log_z_std),
        "pareto_k": _finite(out.pareto_k),
        "energy_evals": int(out.n_energy_evals) + train,
        "sampling_energy_evals": int(out.n_energy_evals),
        "train_energy_evals": train,
        "marginal_evals_per_sample": 1 + c.n_steps * (1 + c.n_moves),
        "cpu_s": cpu,
        "cpu_s_total": cpu + float(model.provenance.get("train_cpu_seconds_this_process", 0.0)),
        "layout": f"{n} SMC particles, K={c.n_steps} stages, {c.n_moves} MALA sweeps "
        f"per stage, lambdas={c.lambdas}",
    }


def _uncorrected_row(key, model, system, n, energy):
    from generative.samplers import as_target, sample_paths
    from thermo.estimators import estimate_log_z
    from thermo.smc import systematic_resampling

    key_paths, key_res = jr.split(key)
    t0 = time.process_time()
    ens = sample_paths(key_paths, model.sampler, as_target(system), n)
    ens.samples.block_until_ready()
    cpu = time.process_time() - t0
    est = estimate_log_z(ens.log_weights)
    x = np.asarray(ens.samples)
    resampled = x[np.asarray(systematic_resampling(key_res, ens.log_weights))]
    train = int(model.provenance.get("train_energy_evals", 0))
    return x, {
        "log_z": measurement(est.value, est.std_err),
        "pareto_k": _finite(est.pareto_k),
        "ess": float(est.ess),
        "energy_evals": int(ens.n_energy_evals) + train,
        "sampling_energy_evals": int(ens.n_energy_evals),
        "train_energy_evals": train,
        "marginal_evals_per_sample": model.config.n_steps + 1,
        "cpu_s": cpu,
        "cpu_s_total": cpu + float(model.provenance.get("train_cpu_seconds_this_process", 0.0)),
        "_resampled": resampled,
        "layout": f"{n} raw DDS paths (no resampling, no moves)",
    }


def mcmc_layout(n_keep: int, cost_step: int, *, budget_per_chain=None, marginal=None):
    """``(n_warm, n_run, thin)`` steps per chain (module docstring).

    ``budget_per_chain``: the run is the longest ``2 thin n_keep`` steps within 4/5 of
    the steps the budget allows, and the warm-up takes the rest. ``marginal``: ``thin``
    is the whole number of steps closest to ``marginal`` evaluations, the run
    ``2 thin n_keep`` steps and the warm-up a quarter of it (the same 1/5 : 4/5 split).
    """
    if (budget_per_chain is None) == (marginal is None):
        raise ValueError("mcmc_layout: give exactly one of budget_per_chain and marginal")
    if marginal is not None:
        thin = max(1, round(marginal / cost_step))
        n_run = 2 * thin * n_keep
        return n_run // 4, n_run, thin
    n_steps = int(budget_per_chain) // cost_step
    thin = max(1, ((n_steps - n_steps // 5) // 2) // n_keep)
    n_run = 2 * thin * n_keep
    return max(1, n_steps - n_run), n_run, thin


def _mcmc_row(key, system, method, n, n_chains, *, budget=None, marginal=None):
    """HMC or PT: ``budget`` total evaluations, or kept samples ``marginal`` evaluations apart."""
    from experiments.mcmc_baselines import _pt_sampler, _single_chain_sampler

    n_keep = n // n_chains
    cost_step = _LEAPFROG * (_PT_REPLICAS if method == "pt" else 1)  # per chain per step
    per_chain = None if budget is None else budget // n_chains
    layout = mcmc_layout(n_keep, cost_step, budget_per_chain=per_chain, marginal=marginal)
    n_warm, n_run, thin = layout
    t0 = time.process_time()
    if method == "pt":
        x, info = _pt_sampler(key, system, 0, n_chains, n_keep, _PT_REPLICAS, layout=layout)
    else:
        x, info = _single_chain_sampler(key, system, "hmc", 0, n_chains, n_keep, layout)
    cpu = time.process_time() - t0
    return np.asarray(x), {
        "log_z": "n/a",
        "pareto_k": "n/a",
        "energy_evals": int(info.pop("energy_evals")),
        "marginal_evals_per_sample": thin * cost_step,
        "cpu_s": cpu,
        **info,
        "layout": f"{n_chains} chains x {n_keep} samples: {n_warm} warm-up + "
        f"{n_run // 2} burn-in steps, then {n_run // 2} steps thinned by {thin}"
        + (f"; {_PT_REPLICAS} rungs" if method == "pt" else "")
        + f"; {_LEAPFROG} leapfrog steps",
    }


def compare_system(key, name: str, config: Config, stage) -> dict:
    """The rows of one system (module docstring); each row is one ``stage`` call."""
    import thermo.systems as systems
    from generative.samplers import pretrained
    from thermo.metrics import energy_w2

    model = pretrained(name)
    system = systems.get(model.config.system)
    energy = _energy_fn(system)
    n = config.n_for(name)
    ref = np.asarray(systems.reference_samples(name))
    e_ref = np.asarray(energy(jnp.asarray(ref)))
    c = model.config
    fk_total = n * (1 + c.n_steps * (1 + c.n_moves)) + int(
        model.provenance.get("train_energy_evals", 0)
    )

    def score(x):
        return energy_w2(np.asarray(energy(jnp.asarray(x))), e_ref)

    def row(method, i):
        k = jr.fold_in(key, i)
        if method == "fk":
            x, r = _fk_row(k, model, system, n)
        elif method == "uncorrected":
            x, r = _uncorrected_row(k, model, system, n, energy)
            r["energy_w2_importance_resampled"] = score(r.pop("_resampled"))
        elif method == "reference_floor":
            rng = np.random.default_rng(int(jr.randint(k, (), 0, 2**31 - 1)))
            w2 = []
            for _ in range(_FLOOR_SPLITS):
                perm = rng.permutation(len(ref))
                w2.append(energy_w2(e_ref[perm[:n]], e_ref[perm[n:]]))
            return {
                "energy_w2": float(np.mean(w2)),
                "energy_w2_sd": float(np.std(w2, ddof=1)),
                "energy_w2_range": [float(np.min(w2)), float(np.max(w2))],
                "n": n,
                "n_reference": len(ref) - n,
                "n_splits": _FLOOR_SPLITS,
            }
        else:
            mcmc, setting = method.split("_")
            if setting == "total":
                budget = fk_total if "fk" not in done else done["fk"]["energy_evals"]
                x, r = _mcmc_row(k, system, mcmc, n, config.n_chains, budget=budget)
            else:
                x, r = _mcmc_row(
                    k, system, mcmc, n, config.n_chains, marginal=1 + c.n_steps * (1 + c.n_moves)
                )
        return {"energy_w2": score(x), "n": int(len(x)), **r}

    done = {}
    for i, method in enumerate(METHODS):
        if method in config.methods:
            done[method] = stage(f"{name}_{method}", lambda m=method, i=i: row(m, i))
    return done


def load_cached(results_dir: str | Path | None = None) -> dict | None:
    """The table of the newest complete full (not ``--quick``) run per system, or ``None``.

    Looks under ``results_dir`` (default ``results/fk_compare`` under the project root);
    a fresh clone has none. Returns ``{system: {method: row}}`` with ``"_run_dir"`` and
    ``"_config"`` of the run each system's rows came from.
    """
    from experiments._runner import _read_json

    root = Path(__file__).resolve().parents[1]
    base = Path(results_dir) if results_dir is not None else root / "results" / "fk_compare"
    table: dict = {}
    for run_dir in sorted(base.glob("*/"), reverse=True):  # names are UTC time stamps
        status, cfg = run_dir / "status.json", run_dir / "config.json"
        table_path = run_dir / "comparison.json"
        if not (status.exists() and cfg.exists() and table_path.exists()):
            continue
        if _read_json(status).get("state") != "complete" or _read_json(cfg).get("quick"):
            continue
        for name, rows in _read_json(table_path).items():
            if name not in table:
                meta = {"_run_dir": str(run_dir), "_config": _read_json(cfg)["config"]}
                table[name] = {**rows, **meta}
    return table or None


def markdown_table(table: dict) -> str:
    """The comparison as a Markdown table (one line per system and method)."""
    lines = [
        "| system | method | n | energy W2 | energy evals (total) | marginal evals/sample "
        "| CPU s | CPU s incl. training | log Z ± SE | Pareto k |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]

    def fmt(v, spec):
        return format(v, spec) if isinstance(v, int | float) else ("" if v is None else str(v))

    for name, rows in table.items():
        for method, r in rows.items():
            if method.startswith("_"):
                continue
            lz = r.get("log_z")
            if isinstance(lz, dict):
                lz = f"{lz['value']:.3f} ± {lz['std_err']:.3f}" if lz["std_err"] else "n/a"
            cpu = r.get("cpu_s")
            w2 = fmt(r["energy_w2"], ".3f")
            if "energy_w2_sd" in r:
                w2 += f" (sd {r['energy_w2_sd']:.3f})"
            lines.append(
                f"| {name} | {method} | {r.get('n', '')} | {w2} "
                f"| {fmt(r.get('energy_evals'), ',')} "
                f"| {fmt(r.get('marginal_evals_per_sample'), ',')} | {fmt(cpu, '.1f')} "
                f"| {fmt(r.get('cpu_s_total', cpu), '.1f')} "
                f"| {'' if lz is None else lz} | {fmt(r.get('pareto_k'), '.2f')} |"
            )
    return "\n".join(lines) + "\n"


def _figure(ctx, table: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(table), figsize=(4.2 * len(table), 3.4), squeeze=False)
    for ax, (name, rows) in zip(axes[0], table.items(), strict=True):
        for method, r in rows.items():
            if method == "reference_floor":
                lo, hi = r.get("energy_w2_range", (r["energy_w2"],) * 2)
                ax.axhspan(lo, hi, color="0.9", zorder=0, label="reference floor (range)")
                ax.axhline(r["energy_w2"], color="0.5", ls="--", lw=1)
                continue
            ax.plot(r["energy_evals"], r["energy_w2"], "o", label=method)
        ax.set(xscale="log", yscale="log", xlabel="energy evaluations (total)", title=name)
        ax.set_ylabel("energy $W_2$")
        ax.legend(fontsize=7)
    fig.suptitle("corrected vs uncorrected learned sampler vs PT / HMC")
    fig.tight_layout()
    ctx.save_figure(fig, "fk_compare")


def run(config: Config, ctx) -> dict:
    """Every system's rows (module docstring); writes ``comparison.{json,md}`` and a figure."""
    from experiments._runner import write_json_atomic

    table = {}
    for i, name in enumerate(config.systems):
        table[name] = compare_system(jr.fold_in(ctx.key, i), name, config, ctx.stage)
        ctx.log(f"{name}: " + json.dumps({m: r["energy_w2"] for m, r in table[name].items()}))
    write_json_atomic(ctx.run_dir / "comparison.json", table)
    (ctx.run_dir / "comparison.md").write_text(markdown_table(table))
    _figure(ctx, table)
    return {"systems": table, "x64": bool(jax.config.jax_enable_x64)}
