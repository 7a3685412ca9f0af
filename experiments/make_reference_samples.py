r"""Regenerate the project's own reference samples for ``dw4``, ``lj13`` and ``lj55``.

Each system is sampled by ``n_runs`` independent, seeded replica-exchange (HMC within
parallel tempering) runs over a geometric :math:`\beta` ladder from the system's
:math:`\beta` down to ``beta_min`` (:func:`thermo.mcmc.replica_exchange`). Steps:

1. start every replica from a physical structure (LJ: the Mackay icosahedron plus
   small noise; DW-4: the system's Gaussian ``initial_positions``), with the centre of
   mass removed; the HMC moves project momenta and forces onto the COM-free subspace, so
   the centre of mass stays at 0 (the energies are translation invariant);
2. warm up with per-rung dual-averaging step sizes
   (:func:`thermo.mcmc.adapt_replica_step_sizes`), then discard a burn-in;
3. record the target rung (replica 0) every ``record_every`` steps, measure the
   integrated autocorrelation time :math:`\tau_{\mathrm{int}}` of its energy over the
   runs (Sokal window, :func:`thermo.mcmc.diagnostics.integrated_autocorr_time`), thin
   by :math:`\lceil\tau_{\mathrm{int}}\rceil` steps, and keep up to ``n_keep`` samples;
4. save ``float32`` samples with ``np.savez_compressed`` to
   ``thermo/systems/data/<name>.npz`` and the provenance (system, convention, seed,
   sampler settings, swap rates, :math:`\tau_{\mathrm{int}}`, ESS, git commit, wall
   time) to ``<name>.json``.

Run ``python -m experiments.make_reference_samples [dw4 lj13 lj55] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

DATA_DIR = Path(__file__).resolve().parents[1] / "thermo" / "systems" / "data"

# Settings per system. Ladders: beta_min chosen so the hottest rung crosses the
# DW-4 pair barrier (4.4 per pair) / melts the LJ cluster; 8 rungs give swap rates
# of O(0.3) or more (reported in the provenance).

#: The protocol the two small systems share (32 runs of an 8-rung ladder, 10 leapfrog
#: steps, 500 warm-up and 500 burn-in steps, every 5th step kept, 10,000 samples).
_SMALL_SYSTEM = dict(
    n_runs=32,
    n_replicas=8,
    n_integration_steps=10,
    n_warmup=500,
    n_burn=500,
    record_every=5,
    n_keep=10000,
)
CONFIGS = {
    "dw4": dict(
        _SMALL_SYSTEM, seed=20261123, beta_min=0.2, initial_step_size=0.1, n_production=3000
    ),
    "lj13": dict(
        _SMALL_SYSTEM, seed=20261124, beta_min=0.3, initial_step_size=0.01, n_production=5000
    ),
    "lj55": dict(
        seed=20261125,
        # 16 runs x 6,400 production steps, thinned by tau_int (~19 steps -> stride 20)
        # give 16 * 320 = 5,120 samples (8.9e6 energy-gradient evaluations). The per-rung
        # step sizes are fixed to those dual averaging found in the earlier short run with
        # the same ladder (its provenance), so there is no warm-up. Burn-in and production
        # run in pieces of `piece_steps` with a checkpoint after each (``--checkpoint
        # DIR``); ``--finalize`` writes the samples from the pieces done so far.
        n_runs=16,
        n_replicas=8,
        beta_min=0.5,
        n_integration_steps=10,
        step_sizes=[0.01645, 0.01690, 0.01767, 0.01808, 0.01922, 0.01995, 0.02074, 0.02201],
        n_warmup=0,
        n_burn=400,
        n_production=6400,
        record_every=10,
        n_keep=6000,
        piece_steps=200,
    ),
}

CONVENTIONS = {
    "dw4": "DW-4: E = sum_{i<j} [0.9 (d_ij - 4)^4 - 4 (d_ij - 4)^2], beta = 1, "
    "each pair once; samples stored with the centre of mass removed",
    "lj13": "LJ-13, DEM/EFM convention: E = sum_{i!=j} [(1/r)^12 - 2 (1/r)^6] "
    "+ 1/2 sum_i |x_i - xbar|^2, beta = 1; centre of mass removed",
    "lj55": "LJ-55, DEM/EFM convention: E = sum_{i!=j} [(1/r)^12 - 2 (1/r)^6] "
    "+ 1/2 sum_i |x_i - xbar|^2, beta = 1; centre of mass removed",
}


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parents[1],
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _initial_positions(key, system, n_runs: int, n_replicas: int) -> jnp.ndarray:
    from thermo.systems import mackay_icosahedron

    n = n_runs * n_replicas
    if system.name.startswith("lj"):
        shells = {13: 1, 55: 2}[system.n_particles]
        base = jnp.asarray(mackay_icosahedron(shells), dtype=float).reshape(-1)
        x = base + 0.05 * jr.normal(key, (n, system.dim))
    else:
        x = system.initial_positions(key, n)
    x = jax.vmap(system.remove_com)(x)
    return x.reshape(n_runs, n_replicas, system.dim)


def _production_in_pieces(key_burn, key_prod, states, vstep, observe, c, checkpoint, finalize):
    """Burn-in and production in pieces of ``c["piece_steps"]`` steps, resumable.

    Burn-in piece ``i`` uses ``fold_in(key_burn, i)`` and production piece ``i``
    ``fold_in(key_prod, i)``, so a resumed run gives exactly the uninterrupted result.
    After every piece the state and the production records so far are pickled to
    ``checkpoint/state.pkl`` (when ``checkpoint`` is set). With ``finalize`` no new
    piece runs; the records done so far are returned.

    The checkpoint also keeps every piece's wall time, so the provenance reports the
    run's total compute time however many resumed calls it took.

    Returns:
        ``(states, records, n_production_steps_done, piece_seconds)``.
    """
    import pickle

    from thermo.kernel import run

    piece = int(c["piece_steps"])
    if piece % c["record_every"] or c["n_production"] % piece or c["n_burn"] % piece:
        raise ValueError(
            "piece_steps must divide n_burn and n_production and be a multiple of record_every"
        )
    n_burn_pieces = c["n_burn"] // piece
    n_pieces = n_burn_pieces + c["n_production"] // piece
    ckpt = None if checkpoint is None else Path(checkpoint) / "state.pkl"
    done, records, piece_seconds = 0, [], []
    if ckpt is not None and ckpt.exists():
        saved = pickle.loads(ckpt.read_bytes())
        if saved["settings"] != c:
            raise ValueError(f"{ckpt} was written with other settings: {saved['settings']}")
        states, done, records = saved["states"], saved["done"], saved["records"]
        piece_seconds = list(saved.get("piece_seconds", []))
        print(f"resuming from {ckpt}: {done}/{n_pieces} pieces done", flush=True)

    def save():
        if ckpt is not None:
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            blob = dict(
                settings=c,
                states=jax.device_get(states),
                done=done,
                records=records,
                piece_seconds=piece_seconds,
            )
            tmp = ckpt.with_suffix(".tmp")
            tmp.write_bytes(pickle.dumps(blob))
            tmp.replace(ckpt)

    go_burn = jax.jit(lambda k, s: run(k, vstep, s, piece, observable_fn=None)[0])
    go = jax.jit(
        lambda k, s: run(k, vstep, s, piece, thin=c["record_every"], observable_fn=observe)
    )
    while done < n_pieces and not finalize:
        t0 = time.time()
        if done < n_burn_pieces:
            states = go_burn(jr.fold_in(key_burn, done), states)
        else:
            states, rec = go(jr.fold_in(key_prod, done - n_burn_pieces), states)
            records.append(jax.device_get(rec))
        done += 1
        piece_seconds.append(time.time() - t0)
        save()
        print(f"piece {done}/{n_pieces}: {time.time() - t0:.1f} s", flush=True)
    if not records:
        raise RuntimeError("no production piece done yet")
    stacked = jax.tree_util.tree_map(lambda *xs: np.concatenate(xs, axis=0), *records)
    return states, stacked, len(records) * piece, piece_seconds


def _swap_rates_all_pairs(key, vstep, states, n_steps: int) -> np.ndarray:
    """Swap acceptance per neighbour pair from ``n_steps`` more steps, every step recorded.

    A trace thinned by an even stride holds only one parity of the even/odd swap scheme,
    so it leaves half the pairs unmeasured; this short continuation measures them all.
    """
    from thermo.kernel import run
    from thermo.mcmc.diagnostics import swap_acceptance_rates

    _, infos = jax.jit(lambda k, s: run(k, vstep, s, n_steps, observable_fn=lambda _, info: info))(
        key, states
    )
    return np.asarray(swap_acceptance_rates(infos)).mean(axis=0)


def generate(
    name: str,
    config: dict,
    *,
    progress: bool = True,
    checkpoint: str | Path | None = None,
    finalize: bool = False,
) -> tuple[np.ndarray, dict]:
    """Run the replica-exchange chains for ``name`` and return ``(samples, provenance)``.

    ``checkpoint``: a directory for resumable runs (used when the settings have
    ``piece_steps``); ``finalize``: use the production pieces done so far."""
    import thermo.systems as systems
    from thermo.kernel import run
    from thermo.mcmc import adapt_replica_step_sizes, geometric_ladder, replica_exchange
    from thermo.mcmc.diagnostics import (
        effective_sample_size,
        integrated_autocorr_time,
        swap_acceptance_rates,
    )

    c = dict(config)
    system = systems.get(name)
    betas = geometric_ladder(system.beta, c["beta_min"] * system.beta, c["n_replicas"])
    project_fn = system.remove_com
    key = jr.key(c["seed"])
    key_init, key_warm, key_burn, key_prod = jr.split(key, 4)
    t0 = time.time()
    x0 = _initial_positions(key_init, system, c["n_runs"], c["n_replicas"])
    if "step_sizes" in c:  # fixed per-rung step sizes: no warm-up
        step_sizes, states = jnp.asarray(c["step_sizes"]), None
    else:
        states, step_sizes = jax.jit(
            lambda k, x: adapt_replica_step_sizes(
                k,
                system.energy,
                betas,
                x,
                c["n_warmup"],
                initial_step_size=c["initial_step_size"],
                n_integration_steps=c["n_integration_steps"],
                project_fn=project_fn,
            )
        )(key_warm, x0)
    kernel = replica_exchange(
        system.energy,
        betas,
        step_sizes,
        n_integration_steps=c["n_integration_steps"],
        project_fn=project_fn,
    )
    if states is None:
        states = jax.vmap(kernel.init)(x0)
    n_runs = c["n_runs"]

    def vstep(key, states):
        return jax.vmap(kernel.step)(jr.split(key, n_runs), states)

    def observe(state, info):
        return state.positions[:, 0], state.energies[:, 0], info

    burn = jax.jit(lambda k, s: run(k, vstep, s, c["n_burn"], observable_fn=None)[0])
    piece = c.get("piece_steps")
    piece_seconds: list[float] = []
    if piece is None:
        states = burn(key_burn, states)
        states, (pos, energies, infos) = run(
            key_prod,
            jax.jit(vstep),
            states,
            c["n_production"],
            thin=c["record_every"],
            observable_fn=observe,
            progress=progress,
        )
    else:
        states, (pos, energies, infos), n_done, piece_seconds = _production_in_pieces(
            key_burn, key_prod, states, vstep, observe, c, checkpoint, finalize
        )
        c = dict(c, n_production_done=n_done)
    wall = time.time() - t0
    pos = np.asarray(pos)  # (n_records, n_runs, dim)
    energies = np.asarray(energies)  # (n_records, n_runs)
    # tau_int of the target-rung energy, in recorded steps, then in MCMC steps.
    tau_records = float(integrated_autocorr_time(energies.T[..., None])[0])
    tau_steps = tau_records * c["record_every"]
    stride = max(1, math.ceil(tau_records))
    kept = pos[::stride]  # (n_thinned, n_runs, dim)
    kept_e = energies[::stride]
    flat = kept.transpose(1, 0, 2).reshape(-1, system.dim)
    if flat.shape[0] > c["n_keep"]:
        idx = np.linspace(0, flat.shape[0] - 1, c["n_keep"]).round().astype(int)
        flat = flat[idx]
    ess_energy = float(effective_sample_size(energies.T[..., None])[0])
    ess_thinned = (
        float(effective_sample_size(kept_e.T[..., None])[0])
        if kept_e.shape[0] >= 4
        else float("nan")
    )
    swap = np.asarray(swap_acceptance_rates(infos)).mean(axis=0)
    swap_note = "from the recorded production trace"
    if np.isnan(swap).any():
        n_extra = 10 * c["record_every"]
        swap = _swap_rates_all_pairs(jr.fold_in(key_prod, 10**6), vstep, states, n_extra)
        swap_note = (
            f"the production trace (every {c['record_every']}th step) holds one parity of the "
            f"even/odd swap scheme only, so these come from {n_extra} more steps after it, "
            "every step recorded"
        )
    acc = np.asarray(infos.acceptance_rate).mean(axis=(0, 1))
    provenance = dict(
        system=name,
        convention=CONVENTIONS[name],
        beta=float(system.beta),
        sampler="replica exchange (HMC within parallel tempering), thermo.mcmc.replica_exchange",
        settings=c,
        betas=np.asarray(betas).tolist(),
        step_sizes=np.asarray(step_sizes).tolist(),
        within_rung_acceptance=acc.tolist(),
        swap_acceptance=swap.tolist(),
        swap_acceptance_source=swap_note,
        tau_int_energy_steps=tau_steps,
        tau_int_observable="energy of the target rung (replica 0), Sokal window c=5, "
        "autocorrelation averaged over runs",
        thinning_stride_steps=stride * c["record_every"],
        ess_energy_all_records=ess_energy,
        ess_energy_thinned=ess_thinned,
        n_samples=int(flat.shape[0]),
        mean_energy=float(energies.mean()),
        energy_evaluations=int(
            n_runs
            * c["n_replicas"]
            * c["n_integration_steps"]
            * (c["n_warmup"] + c["n_burn"] + c.get("n_production_done", c["n_production"]))
        ),
        wall_time_s=wall,
        # Resumed piecewise runs: the summed wall time of every piece over all calls.
        compute_time_s=float(np.sum(piece_seconds)) if piece_seconds else wall,
        jax_version=jax.__version__,
        dtype_run=str(pos.dtype),
        dtype_stored="float32",
        git_commit=_git_commit(),
    )
    return flat.astype(np.float32), provenance


def main(argv: list[str] | None = None) -> dict:
    """Regenerate the selected systems' reference samples (all three by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(CONFIGS))
    parser.add_argument("--quick", action="store_true", help="tiny run into /tmp (smoke test)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--checkpoint", type=Path, default=None, help="resumable-run directory (piecewise runs)"
    )
    parser.add_argument(
        "--finalize", action="store_true", help="write samples from the checkpointed pieces"
    )
    args = parser.parse_args(argv)
    out = args.out or (Path("/tmp/stochthermo_reference") if args.quick else DATA_DIR)
    out.mkdir(parents=True, exist_ok=True)
    report = {}
    for name in args.names:
        config = dict(CONFIGS[name])
        if args.quick:
            config.update(n_runs=4, n_warmup=50, n_burn=50, n_production=200, n_keep=100)
            if "piece_steps" in config:
                config.update(piece_steps=100, n_burn=100)
        ckpt = None if args.checkpoint is None else args.checkpoint / name
        samples, prov = generate(name, config, checkpoint=ckpt, finalize=args.finalize)
        np.savez_compressed(out / f"{name}.npz", samples=samples)
        (out / f"{name}.json").write_text(json.dumps(prov, indent=2) + "\n")
        report[name] = {k: prov[k] for k in ("tau_int_energy_steps", "n_samples", "wall_time_s")}
        print(name, json.dumps(report[name]), flush=True)
    return report


if __name__ == "__main__":
    jax.config.update("jax_enable_x64", True)
    main()
