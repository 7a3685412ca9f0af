r"""Feynman–Kac-corrected learned samplers: regenerate the checkpoints and measure them.

Commands (run from the repository root)::

    python -m experiments.fk_samplers train NAME [--out DIR]   # resumes if interrupted
    python -m experiments.fk_samplers measure NAME [--n N] [--seed 1] [--checkpoints DIR]
    python -m experiments.fk_samplers peers NAME [--n N] [--seed 1]   # AIS, SMC
    python -m experiments.fk_samplers calibrate [--quick] [--seed 0] [key=value ...]
    python -m experiments.fk_samplers reference NAME [--batches B] [--steps K] [--record]
    python -m experiments.fk_samplers compare [NAME ...] [--quick] [key=value ...]

``train`` rebuilds ``generative/samplers/checkpoints/NAME.{eqx,json}`` from
:data:`generative.samplers.PRETRAINED` (a :func:`thermo.fit.fit` checkpoint
``NAME.fit`` beside them makes an interrupted run resume; delete it afterwards).
``measure`` prints one JSON row: energy :math:`W_2` (:func:`thermo.metrics.energy_w2`,
the square root) of ``n`` corrected samples against the project's reference samples
(:func:`thermo.systems._reference.reference_samples`, and the shared validation split
when present), :math:`\log\hat Z` with its standard error and Pareto k, the energy
evaluations of sampling and of training, the CPU time of the call, and, where
:data:`experiments.fk_reference.REFERENCE_FILE` has a row for the system, the long AIS
reference and the z-score :math:`|\Delta|/\sqrt{s_{\mathrm{FK}}^2 + s_{\mathrm{ref}}^2}`
against it. ``reference`` runs (resumably) and records that reference
(:mod:`experiments.fk_reference`). ``measure`` and ``peers`` run with
float64 off (the library default) unless ``JAX_ENABLE_X64`` is set. ``calibrate`` runs
the registered experiment ``fk_calibration`` (:mod:`experiments.fk_calibration`: z-scores
of the corrected log Z over seeds on systems with an exact one) into ``results/`` and
prints its per-system summary. ``compare`` runs the registered experiment ``fk_compare``
(:mod:`experiments.fk_compare`: corrected and uncorrected samplers against the project's
PT and HMC at the same total budget and at the same marginal cost per sample) on the
named systems (default dw4 and lj13) and prints its table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

__all__ = ["main", "measure", "peers"]

_SHARED_SPLITS = {"dw4": "val_split_DW4.npy", "lj13": "val_split_LJ13-1000.npy"}
#: ``measure``'s default sample size: 2,000, but 250 on LJ-55, whose 160 sweeps per stage
#: make 250 samples cost about 4M evaluations.
_DEFAULT_N = {"lj55": 250}


def _shared_reference(name: str) -> np.ndarray | None:
    root = os.environ.get("STOCHTHERMO_SHARED_DATA")
    base = Path(root) if root else Path(__file__).resolve().parent.parent / "../shared/data"
    path = base / "reference" / _SHARED_SPLITS.get(name, "-")
    return np.load(path) if path.exists() else None


def measure(
    name: str,
    n: int = 2000,
    seed: int = 1,
    checkpoints: str | None = None,
    *,
    lambdas: str | None = None,
    n_moves: int | None = None,
    n_steps: int | None = None,
    resampling: str = "multinomial",
) -> dict:
    """One row of the table (module docstring).

    ``lambdas`` (``"linear"``: :math:`k/K`, ``"power"``: :math:`(k/K)^4`, or
    ``"adaptive"``), ``n_moves`` and
    ``n_steps`` (the checkpoint's network on a chain of ``n_steps`` stages over the same
    duration) override the pretrained config's.
    """
    import thermo.systems as systems
    from generative.samplers import pretrained
    from generative.samplers._pretrained import CHECKPOINT_DIR
    from thermo.metrics import energy_w2
    from thermo.systems._reference import reference_samples

    model = pretrained(name, checkpoints or CHECKPOINT_DIR)
    if n_steps is not None:
        model = _with_n_steps(model, n_steps)
    system = systems.get(model.config.system)
    energy = jax.jit(jax.vmap(system.energy))
    t0, w0 = time.process_time(), time.time()
    out = model.sample(
        jr.PRNGKey(seed),
        n,
        lambdas=lambdas,
        n_moves=n_moves,
        resampling=resampling,
    )
    out.samples.block_until_ready()
    cpu, wall = time.process_time() - t0, time.time() - w0
    e = np.asarray(energy(out.samples))
    row = {
        "system": name,
        "n": n,
        "seed": seed,
        "lambdas": model.config.lambdas if lambdas is None else lambdas,
        "resampling": resampling,
        "n_steps": model.config.n_steps,
        "n_moves": model.config.n_moves if n_moves is None else n_moves,
        "log_z": float(out.log_z),
        "log_z_std": float(out.log_z_std),
        "pareto_k": float(out.pareto_k),
        "sample_energy_evals": out.n_energy_evals,
        "train_energy_evals": model.provenance.get("train_energy_evals"),
        "sample_cpu_s_incl_compile": cpu,
        "sample_wall_s_incl_compile": wall,
        "x64": bool(jax.config.jax_enable_x64),
    }
    row.update(_vs_reference(name, row["log_z"], row["log_z_std"]))
    try:
        ref = reference_samples(name)
        row["energy_w2_project_ref"] = energy_w2(e, np.asarray(energy(jnp.asarray(ref))))
    except (FileNotFoundError, ValueError) as err:
        row["energy_w2_project_ref"] = f"missing: {err}"
    shared = _shared_reference(name)
    if shared is None:
        row["energy_w2_shared_val"] = "missing (no shared split for this system)"
    else:
        shared = shared.reshape(shared.shape[0], -1)
        row["energy_w2_shared_val"] = energy_w2(e, np.asarray(energy(jnp.asarray(shared))))
    return row


def _vs_reference(name: str, log_z: float, log_z_std: float) -> dict:
    """The committed AIS reference of ``name`` and the z-score of ``log_z`` against it."""
    from experiments.fk_reference import load_reference, z_score

    ref = load_reference(name)
    if ref is None:
        return {"log_z_reference": "missing (python -m experiments.fk_samplers reference)"}
    return {
        "log_z_reference": ref["log_z"],
        "log_z_reference_std": ref["log_z_std"],
        "z_vs_reference": z_score(log_z, log_z_std, ref["log_z"], ref["log_z_std"]),
    }


def _reference(args) -> dict:
    """The ``reference`` subcommand: run or resume the batches, combine, maybe record."""
    import dataclasses

    from experiments import fk_reference as fr

    config = fr.REFERENCE.get(args.name)
    if config is None:
        raise SystemExit(f"reference: no settings for {args.name!r}; known: {sorted(fr.REFERENCE)}")
    changes = {
        k: v
        for k, v in {
            "n_steps": args.steps,
            "n_chains": args.chains,
            "n_mcmc_steps": args.moves,
            "x64": args.x64,
        }.items()
        if v is not None
    }
    config = dataclasses.replace(config, **changes)
    jax.config.update("jax_enable_x64", config.x64)
    import thermo.systems as systems

    run_dir = args.run_dir or f"results/fk_reference/{args.name}-K{config.n_steps}-s{args.seed}"
    if args.batches:
        fr.run_reference(
            systems.get(args.name), config, run_dir, args.batches, args.seed, progress=True
        )
    summary = fr.combine(run_dir)
    if args.record:
        half = fr.combine(args.half) if args.half else None
        half_command = None if half is None else _reference_command(half)
        summary = fr.record(args.name, summary, _reference_command(summary), half, half_command)
    return summary


def _reference_command(summary: dict) -> str:
    """The command that reproduces a combined reference run (its run directory's batches)."""
    c = summary["config"]
    return (
        f"python -m experiments.fk_samplers reference {summary['system']} "
        f"--batches {summary['n_batches']} --seed {summary['seed']} --steps {c['n_steps']} "
        f"--chains {c['n_chains']} --moves {c['n_mcmc_steps']} --{'' if c['x64'] else 'no-'}x64"
    )


def _with_n_steps(model, n_steps: int):
    """``model``'s network on a DDS chain of ``n_steps`` stages over the same duration."""
    import dataclasses

    from generative.samplers._pretrained import _chain

    config = dataclasses.replace(model.config, n_steps=int(n_steps))
    old = model.sampler
    sampler = _chain(old.control, config, old.sigma, old.output_scale)
    return type(model)(model.name, config, sampler, model.provenance)


def peers(name: str, n: int = 2000, seed: int = 1) -> list[dict]:
    """The project's AIS and adaptive SMC at the corrected sampler's sampling budget.

    AIS: ``n`` chains, the same number of stages :math:`K` and MALA sweeps per stage as
    the pretrained config (cost :math:`\approx n K (1 + M)`); adaptive SMC: ``n``
    particles, the same sweeps, at most :math:`K` stages. Equally weighted draws are a
    systematic resampling of the final weights.
    """
    import thermo.systems as systems
    from generative.samplers import PRETRAINED
    from thermo.mcmc import ais, smc
    from thermo.metrics import energy_w2
    from thermo.smc import systematic_resampling
    from thermo.systems._reference import reference_samples

    config = PRETRAINED[name]
    system = systems.get(config.system)
    energy = jax.jit(jax.vmap(system.energy))
    e_ref = np.asarray(energy(jnp.asarray(reference_samples(name))))
    rows = []
    runs = {
        "ais": lambda key: ais(
            key, system, n_chains=n, n_steps=config.n_steps, n_mcmc_steps=config.n_moves
        ),
        "smc": lambda key: smc(
            key, system, n_chains=n, max_steps=config.n_steps, n_mcmc_steps=config.n_moves
        ),
    }
    for method, run in runs.items():
        key_run, key_res = jr.split(jr.PRNGKey(seed))
        t0 = time.process_time()
        r = run(key_run)
        r.samples.block_until_ready()
        cpu = time.process_time() - t0
        x = r.samples[systematic_resampling(key_res, r.log_weights)]
        rows.append(
            {
                "system": name,
                "method": method,
                "n": n,
                "log_z": float(r.log_z),
                "log_z_std": float(r.log_z_std),
                "pareto_k": float(r.pareto_k),
                "energy_evals": int(r.n_energy_evals),
                "cpu_s_incl_compile": cpu,
                "energy_w2_project_ref": energy_w2(np.asarray(energy(x)), e_ref),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.fk_samplers")
    sub = parser.add_subparsers(dest="command", required=True)
    p_train = sub.add_parser("train")
    p_train.add_argument("name")
    p_train.add_argument("--out", default=None)
    p_measure = sub.add_parser("measure")
    p_measure.add_argument("name")
    p_measure.add_argument("--n", type=int, default=None, help="default 2000 (lj55: 250)")
    p_measure.add_argument("--seed", type=int, default=1)
    p_measure.add_argument("--checkpoints", default=None)
    p_measure.add_argument("--lambdas", choices=("linear", "power", "adaptive"), default=None)
    p_measure.add_argument("--n-moves", type=int, default=None)
    p_measure.add_argument("--n-steps", type=int, default=None)
    p_measure.add_argument(
        "--resampling", choices=("multinomial", "systematic"), default="multinomial"
    )
    p_peers = sub.add_parser("peers")
    p_peers.add_argument("name")
    p_peers.add_argument("--n", type=int, default=None, help="default 2000 (lj55: 250)")
    p_peers.add_argument("--seed", type=int, default=1)
    p_cal = sub.add_parser("calibrate")
    p_cal.add_argument("overrides", nargs="*", help="key=value settings of fk_calibration")
    p_cal.add_argument("--quick", action="store_true")
    p_cal.add_argument("--seed", type=int, default=0)
    p_cal.add_argument("--out", default="results")
    p_ref = sub.add_parser("reference", help="long AIS reference log Z (fk_reference)")
    p_ref.add_argument("name")
    p_ref.add_argument("--batches", type=int, default=0, help="run/resume batches 0..B-1")
    p_ref.add_argument("--seed", type=int, default=0)
    p_ref.add_argument("--steps", type=int, default=None)
    p_ref.add_argument("--chains", type=int, default=None, help="chains per batch")
    p_ref.add_argument("--moves", type=int, default=None, help="HMC moves per stage")
    p_ref.add_argument("--x64", action=argparse.BooleanOptionalAction, default=None)
    p_ref.add_argument("--run-dir", default=None)
    p_ref.add_argument("--record", action="store_true", help="write the row to REFERENCE_FILE")
    p_ref.add_argument("--half", default=None, help="run dir with half the stages (check)")
    p_cmp = sub.add_parser("compare")
    p_cmp.add_argument("names", nargs="*", help="dw4, lj13, lj55 (default: dw4 lj13)")
    p_cmp.add_argument("--set", dest="overrides", nargs="*", default=[], help="key=value")
    p_cmp.add_argument("--quick", action="store_true")
    p_cmp.add_argument("--seed", type=int, default=0)
    p_cmp.add_argument("--out", default="results")
    args = parser.parse_args(argv)
    if args.command == "reference":
        print(json.dumps(_reference(args)))
    elif args.command == "compare":
        from experiments import run_experiment

        overrides = list(args.overrides)
        if args.names:
            overrides.append("systems=" + ",".join(args.names))
        res = run_experiment(
            "fk_compare",
            quick=args.quick,
            seed=args.seed,
            out=args.out,
            overrides=overrides,
            progress=False,
        )
        print((res.run_dir / "comparison.md").read_text(), end="")
        print(f"run directory: {res.run_dir}")
    elif args.command == "calibrate":
        from experiments import run_experiment

        res = run_experiment(
            "fk_calibration",
            quick=args.quick,
            seed=args.seed,
            out=args.out,
            overrides=args.overrides,
            progress=False,
        )
        for name, row in res.metrics["systems"].items():
            print(json.dumps({"system": name, **row}))
        print(f"run directory: {res.run_dir}")
    elif args.command == "train":
        from generative.samplers import train_checkpoint
        from generative.samplers._pretrained import CHECKPOINT_DIR

        print(json.dumps(train_checkpoint(args.name, args.out or CHECKPOINT_DIR), indent=2))
    elif args.command == "peers":
        n = _DEFAULT_N.get(args.name, 2000) if args.n is None else args.n
        for row in peers(args.name, n, args.seed):
            print(json.dumps(row))
    else:
        row = measure(
            args.name,
            _DEFAULT_N.get(args.name, 2000) if args.n is None else args.n,
            args.seed,
            args.checkpoints,
            lambdas=args.lambdas,
            n_moves=args.n_moves,
            n_steps=args.n_steps,
            resampling=args.resampling,
        )
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
