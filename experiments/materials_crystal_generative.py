r"""A crystal's free energy from a generative model: lattice Gaussian + AIS vs Frenkel–Ladd.

For each system (FCC LJ, :math:`T^*`, :math:`\rho^*`, :math:`N = 4n^3`, hard cut
:math:`r_c`):

1. *Model.* The harmonic crystal (:func:`generative.periodic.lattice_gaussian_from_hessian`,
   centre of mass fixed, averaged over the lattice symmetries) is corrected to
   :math:`e^{-\beta U}` by a short AIS run; its weighted samples refit the Gaussian
   (:func:`generative.periodic.lattice_gaussian_from_samples`, the quasi-harmonic model,
   learned from energy evaluations alone).
2. *Free energy.* A production AIS run from the refitted model
   (:func:`generative.periodic.lattice_free_energy`, MALA moves, independent paths) gives
   :math:`\ln Q_{\rm CM}` and :math:`\beta A_{\rm ex}/N`
   (:func:`generative.periodic.crystal_excess_free_energy`, the Frenkel–Ladd terms).
3. *Peer.* The project's Frenkel–Ladd (:func:`experiments.materials_fcc_frenkel_ladd.
   simulate_size`) on the same system (same :math:`N`, :math:`r_c`, fixed centre of mass),
   with the Einstein spring :math:`\Lambda_E = 3k_BT/(2\,\mathrm{MSD})` of the model, run
   in production blocks checkpointed one by one (a resumed run continues the unfinished
   block sequence); its error bar is the statistical-inefficiency one of the whole series
   per node, with the spread of the per-block free energies reported beside it.
4. *Structure.* The corrected population, resampled by its weights (systematic), as is
   and after each of ``final_sweeps`` Metropolis sweeps at the target, against long Metropolis chains
   (:func:`thermo.materials.frenkel_ladd_mc` at :math:`\lambda = 1`): energy :math:`W_2`
   and RDF :math:`L_1` next to the MCMC half-vs-half floor, :math:`Q_6`, Lindemann ratio.

Cost is counted in energy evaluations: one per MALA step (energy and gradient) and per
configuration of the Hessian (:math:`3N` gradient evaluations, counted as :math:`3N`), and
two per Metropolis sweep (its :math:`2N` single-particle energies cost :math:`2N(N-1)` pair
terms, two full energies). "At equal error" scales each route's count by
:math:`(\sigma/\sigma_{\rm target})^2`.

``python -m experiments run materials_crystal_generative`` (resumable; or
``python -m experiments.materials_crystal_generative [--quick]``).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from experiments._config import Count, Positive, Seed
from experiments._runner import uncached_stage
from experiments.materials_fcc_frenkel_ladd import Config as FLConfig
from experiments.materials_fcc_frenkel_ladd import plain_loop, simulate_size
from experiments.materials_periodic_generative import radial_distribution
from generative.periodic import (
    bond_order_q6,
    crystal_excess_free_energy,
    lattice_free_energy,
    lattice_gaussian_from_hessian,
    lattice_gaussian_from_samples,
    lindemann_ratio,
)
from thermo.estimators import estimate_log_z
from thermo.kernel import run as run_kernel
from thermo.materials import (
    CellLJEnergy,
    fcc_lattice,
    fcc_lattice_energy,
    frenkel_ladd_mc,
    lj_beyond_cut_energy,
    periodic_space,
    to_arrays,
)
from thermo.metrics import energy_w2
from thermo.smc import systematic_resampling

__all__ = [
    "Config",
    "compare",
    "frenkel_ladd_system",
    "generative_system",
    "main",
    "path_weight_free_energy",
    "run",
]


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings.

    Attributes:
        seed: PRNG seed.
        systems: ``(T*, rho*, n_cells, r_cut, n_chains, n_stages, fl_blocks)`` per system:
            the state, the FCC cells per side (N = 4 n^3), the cut (between neighbour
            shells and below half the cell), the production AIS run (paths, stages; larger
            N needs more stages for the same ESS) and the Frenkel–Ladd production blocks of
            ``n_production`` sweeps per node (fewer at larger N, whose per-particle
            fluctuations are smaller).
        n_chains_fit, n_stages_fit: the AIS run that refits the model.
        final_sweeps: Metropolis sweeps after resampling at which the structure is
            measured (increasing; structure checks only).
        n_lambda, n_production: Frenkel–Ladd nodes and sweeps per node and block.
        n_mcmc_chains, n_mcmc_sweeps, mcmc_thin: the long reference MCMC.
        se_target: per-particle standard error for the equal-error cost comparison.
    """

    seed: Seed = 2022
    systems: tuple[tuple[Positive, Positive, Count, Positive, Count, Count, Count], ...] = (
        (2.0, 1.28, 2, 1.45, 1024, 400, 26),
        (2.0, 1.28, 3, 2.1, 512, 800, 10),
        (1.0, 0.962, 2, 1.4, 1024, 400, 26),
        (1.0, 0.962, 3, 2.1, 512, 800, 10),
    )
    n_chains_fit: Count = 256
    n_stages_fit: Count = 50
    final_sweeps: tuple[Count, ...] = (20, 100)
    n_lambda: Count = 12
    n_production: Count = 2000
    n_mcmc_chains: Count = 8
    n_mcmc_sweeps: Count = 2000
    mcmc_thin: Count = 10
    se_target: Positive = 0.0005
    n_bins: Count = 40

    def __post_init__(self):
        for row in self.systems:
            if len(row) != 7:
                raise ValueError(f"systems rows need 7 entries, got {row}")
        fs = self.final_sweeps
        if list(fs) != sorted(set(fs)):
            raise ValueError(f"final_sweeps must increase strictly, got {fs}")

    @classmethod
    def quick(cls) -> Config:
        """Smoke setting: N = 32, tiny runs."""
        return cls(
            systems=((2.0, 1.28, 2, 1.45, 32, 10, 2),),
            n_chains_fit=16,
            n_stages_fit=5,
            final_sweeps=(2, 4),
            n_lambda=3,
            n_production=20,
            n_mcmc_chains=2,
            n_mcmc_sweeps=40,
            mcmc_thin=2,
        )


def _metropolis(key, disp, sites, t, r_cut, x0, n_sweeps, thin, step):
    kern = frenkel_ladd_mc(
        disp, sites, temperature=t, spring=1.0, lam=1.0, step_size=step, r_cut=r_cut
    )

    def one(k, x):
        return run_kernel(
            k,
            kern,
            kern.init(x),
            n_sweeps,
            thin=thin,
            observable_fn=lambda s, i: (s.positions, i.acceptance_rate),
        )[1]

    return jax.jit(jax.vmap(one))(jr.split(key, x0.shape[0]), x0)


def _system(rho, n_cells, r_cut):
    """The FCC crystal; its energy takes the cell as an array, so densities share compiles."""
    pos, box, _ = to_arrays(fcc_lattice(n_cells, rho))
    disp, _ = periodic_space(box)
    return pos, box, disp, CellLJEnergy(jnp.asarray(np.diag(np.asarray(box))), r_cut=r_cut)


def full_potential_reweighting(res, box, t, r_cut, gen) -> dict:
    r"""The full potential's :math:`\beta A_{\rm ex}/N` by reweighting the AIS population.

    :math:`\ln Q_{\rm full} = \ln Q_{\rm cut} + \ln\sum_i \bar w_i e^{-\beta\Delta U_i}`
    with :math:`\Delta U = U_{\rm full} - U_{\rm cut}` per configuration
    (:func:`thermo.materials.lj_beyond_cut_energy`). Exact, unlike the static lattice sum
    plus the first-order thermal tail in ``gen`` (which misses the neighbour pairs that
    cross the cut as the crystal vibrates): ``value`` replaces those two terms of ``gen``
    by the reweighting. One extra energy evaluation per path.
    """
    n = res.positions.shape[1]
    sides = np.diag(np.asarray(box)) if np.ndim(box) == 2 else np.asarray(box)
    du = lj_beyond_cut_energy(res.positions, sides, r_cut=r_cut)
    lw = jnp.asarray(res.log_weights)
    cut, full = estimate_log_z(lw), estimate_log_z(lw - du / t)
    reweight = -float(full.value - cut.value) / n
    terms = gen["terms"]
    shortcut = terms["lattice_full_minus_cut"] + terms["thermal_tail"]
    return {
        "value": gen["value"] - shortcut + reweight,
        "std_err": float(full.std_err) / n,
        "reweighting": reweight,
        "lattice_and_thermal_tail": shortcut,
        "pareto_k": float(full.pareto_k),
        "energy_evals": int(res.positions.shape[0]),  # one full energy per path
    }


def path_weight_free_energy(
    k_fit, k_prod, t, rho, n_cells, r_cut, n_chains, n_stages, *, n_chains_fit, n_stages_fit
) -> dict:
    """The generative route's free energy of one crystal (model, refit, production AIS).

    Returns a dict with ``gen`` (:func:`generative.periodic.crystal_excess_free_energy`),
    the production AIS result ``res``, the refit ``model``, the fitting run ``fit``, the
    weighted ``msd``, the system ``(pos, box, disp, u_fn)``, ``evals`` and the timings.
    """
    pos, box, disp, u_fn = _system(rho, n_cells, r_cut)
    n = pos.shape[0]
    t0, c0 = time.perf_counter(), time.process_time()
    model0 = lattice_gaussian_from_hessian(u_fn, pos, box, t)
    fit = lattice_free_energy(k_fit, model0, u_fn, t, n_chains=n_chains_fit, n_stages=n_stages_fit)
    model = lattice_gaussian_from_samples(fit.positions, pos, box, log_weights=fit.log_weights)
    res = lattice_free_energy(k_prod, model, u_fn, t, n_chains=n_chains, n_stages=n_stages)
    res.log_weights.block_until_ready()
    t_gen, c_gen = time.perf_counter() - t0, time.process_time() - c0
    w = np.exp(np.asarray(res.log_weights) - np.max(res.log_weights))
    w /= w.sum()
    d = np.array(jax.vmap(model.displacements)(res.positions))
    d -= d.mean(axis=1, keepdims=True)
    msd = float(np.sum(w * np.mean(np.sum(d * d, -1), -1)))
    gen = crystal_excess_free_energy(
        n,
        rho,
        t,
        float(res.log_q_com),
        float(res.log_z_std),
        lattice_energy_cut=float(u_fn(jnp.asarray(pos))) / n,
        lattice_energy_full=float(fcc_lattice_energy(rho)),
        msd=msd,
        r_cut=r_cut,
    )
    full = full_potential_reweighting(res, box, t, r_cut, gen)
    evals = 3 * n + int(fit.n_energy_evals) + int(res.n_energy_evals)  # the cut system's
    print(
        f"N={n} T*={t} rho*={rho}: generative beta A/N = {gen['value']:.5f} +- {gen['std_err']:.5f} "
        f"(ESS {float(res.ess) / n_chains:.2f}, k {float(res.pareto_k):.2f}, "
        f"{evals} evals, {c_gen:.0f} CPU s, {t_gen:.0f} s wall)",
        flush=True,
    )
    return {
        "gen": gen,
        "full_potential": full,
        "res": res,
        "model": model,
        "fit": fit,
        "msd": msd,
        "system": (pos, box, disp, u_fn),
        "evals": evals,
        "wall_s": t_gen,
        "cpu_s": c_gen,
    }


def generative_system(key, config: Config, t, rho, n_cells, r_cut, n_chains, n_stages) -> dict:
    """Model, AIS free energy and structure checks of one system (no Frenkel–Ladd)."""
    k_fit, k_prod, k_res, k_fin, _, k_mc = jr.split(key, 6)
    pw = path_weight_free_energy(
        k_fit,
        k_prod,
        t,
        rho,
        n_cells,
        r_cut,
        n_chains,
        n_stages,
        n_chains_fit=config.n_chains_fit,
        n_stages_fit=config.n_stages_fit,
    )
    pos, box, disp, u_fn = pw["system"]
    gen, res, model, fit, msd = pw["gen"], pw["res"], pw["model"], pw["fit"], pw["msd"]
    evals_gen, t_gen, c_gen = pw["evals"], pw["wall_s"], pw["cpu_s"]
    n = pos.shape[0]
    sites = jnp.asarray(pos)
    a_nn = (4.0 / rho) ** (1.0 / 3.0) / np.sqrt(2.0)
    # structure: resample, target sweeps, vs long MCMC
    idx = systematic_resampling(k_res, jnp.asarray(res.log_weights))
    x_res = res.positions[idx]
    step = 0.5 * np.sqrt(msd)
    x0 = jnp.broadcast_to(sites, (config.n_mcmc_chains, n, 3))
    traj, acc = _metropolis(
        k_mc, disp, sites, t, r_cut, x0, config.n_mcmc_sweeps, config.mcmc_thin, step
    )
    traj = np.asarray(traj)[:, traj.shape[1] // 5 :]  # drop 20% as equilibration
    half = config.n_mcmc_chains // 2
    ref_a = traj[:half].reshape(-1, n, 3)
    ref_b = traj[half:].reshape(-1, n, 3)
    m = min(n_chains, len(ref_b))
    e = jax.jit(jax.vmap(u_fn))

    def epp(x):
        return np.asarray(e(jnp.asarray(x))) / n

    e_a, e_b = epp(ref_a), epp(ref_b)
    cell = np.diag(np.asarray(box)) if np.ndim(box) == 1 else np.asarray(box)
    inv = np.linalg.inv(cell)
    r_max = 0.5 / np.linalg.norm(inv, axis=1).max()

    def rdf(x):
        f = x @ inv.T
        return radial_distribution(f - np.floor(f), cell, r_max, config.n_bins)

    r, g_a = rdf(ref_a)
    _, g_b = rdf(ref_b[:m])
    dr = r[1] - r[0]
    r_nb = 0.5 * a_nn * (1 + np.sqrt(2.0))
    q_a = bond_order_q6(ref_a, cell, r_nb)
    floor = {
        "energy_w2_floor": energy_w2(e_b[:m], e_a),
        "rdf_l1_floor": float(np.sum(np.abs(g_b - g_a)) * dr),
        "q6_mcmc": float(q_a.mean()),
        "lindemann_mcmc": lindemann_ratio(ref_a, model, a_nn),
        "mcmc_acceptance": float(np.mean(acc)),
        "n_generated": int(m),
        "n_mcmc_half": int(len(ref_a)),
    }
    # the corrected population after each number of final sweeps (0: resampled as is)
    sweeps = (0, *config.final_sweeps)
    blocks = np.diff(np.asarray(sweeps))
    x_gen, by_sweeps = x_res, {}
    for s_done, n_more in zip(sweeps, (*blocks, 0), strict=True):
        xg = np.asarray(x_gen)[:m]
        q_g = bond_order_q6(xg, cell, r_nb)
        q_se = float(np.hypot(q_a.std(ddof=1) / np.sqrt(half), q_g.std(ddof=1) / np.sqrt(m)))
        _, g_g = rdf(xg)
        by_sweeps[str(s_done)] = {
            "energy_w2": energy_w2(epp(xg), e_a),
            "rdf_l1": float(np.sum(np.abs(g_g - g_a)) * dr),
            "q6_generated": float(q_g.mean()),
            "q6_se": q_se,
            "q6_z": float((q_g.mean() - q_a.mean()) / q_se),
            "lindemann_generated": lindemann_ratio(xg, model, a_nn),
        }
        if n_more:
            fin, _ = _metropolis(
                jr.fold_in(k_fin, s_done),
                disp,
                sites,
                t,
                r_cut,
                x_gen,
                int(n_more),
                int(n_more),
                step,
            )
            x_gen = fin[:, -1]
    for s_done, v in by_sweeps.items():
        print(
            f"  structure after {s_done} sweeps: energy W2 {v['energy_w2']:.4f} (floor "
            f"{floor['energy_w2_floor']:.4f}), RDF L1 {v['rdf_l1']:.4f} (floor "
            f"{floor['rdf_l1_floor']:.4f}), Q6 z {v['q6_z']:+.2f}",
            flush=True,
        )
    return {
        "temperature": t,
        "density": rho,
        "n_particles": n,
        "r_cut": r_cut,
        "generative": gen
        | {
            "n_chains": int(n_chains),
            "n_stages": int(n_stages),
            "ess_fraction": float(res.ess) / n_chains,
            "pareto_k": float(res.pareto_k),
            "log_q_com": float(res.log_q_com),
            "acceptance": float(res.acceptance_rate),
            "fit_ess_fraction": float(fit.ess) / config.n_chains_fit,
            "msd": msd,
            "model_msd": float(jnp.sum(model.scales**2)) / n,
            "energy_evals": evals_gen,
            "wall_s": t_gen,
            "cpu_s": c_gen,
            # the exact full potential (one more evaluation per path), beside the shortcut
            "full_potential": pw["full_potential"],
        },
        "structure": floor | {"after_final_sweeps": by_sweeps},
    }


def frenkel_ladd_system(key, config: Config, t, rho, n_cells, r_cut, spring, n_blocks, loop, name):
    """The project's Frenkel–Ladd on the same system, checkpointed per block through ``loop``."""
    fl_cfg = FLConfig(
        temperature=t,
        density=rho,
        sizes=(n_cells,),
        r_cut=r_cut,
        spring=spring,
        n_lambda=config.n_lambda,
        n_production=config.n_production,
        n_blocks=n_blocks,
    )
    fl = simulate_size(key, fl_cfg, n_cells, loop=loop, name=name)
    sweeps = config.n_lambda * (
        fl_cfg.n_adapt * fl_cfg.adapt_sweeps + fl_cfg.n_equilibrate + n_blocks * config.n_production
    )
    return {
        "value": fl["beta_free_energy"]["value"],
        "std_err": fl["beta_free_energy"]["std_err"],
        "block_std_err": fl["beta_free_energy"].get("block_std_err"),
        "spring": spring,
        "n_lambda": config.n_lambda,
        "n_sweeps_per_node": fl["n_sweeps_per_node"],
        "energy_evals": 2 * sweeps,
        "statistical_inefficiencies": fl["statistical_inefficiencies"],
        "du_dlam_per_particle": fl["du_dlam_per_particle"],
        "du_dlam_std_errs": fl["du_dlam_std_errs"],
        "lambdas": fl["lambdas"],
        "terms": fl["terms"],
        "wall_s": fl["wall_s"],
        "cpu_s": fl["cpu_s"],
    }


def compare(gen_row: dict, fl: dict, se_target: float) -> dict:
    r"""The row: both routes, their difference, z, and the cost at equal error.

    Each route adds the analytic thermal tail (the pairs beyond the cut) with its own MSD
    estimate: the generative one from the weighted population at the target, Frenkel–Ladd's
    from its last node, :math:`\lambda < 1`, where the residual springs shrink it. The
    two tails are the same analytic term, not part of either simulation, so the
    comparison of the two routes on the same cut system is ``difference_cut_system``
    (both tails removed); ``difference`` keeps each route's own tail.
    """
    g = gen_row["generative"]
    diff = g["value"] - fl["value"]
    tail = g["terms"]["thermal_tail"] - fl["terms"]["thermal_tail"]
    diff_cut = diff - tail
    comb = float(np.hypot(g["std_err"], fl["std_err"]))
    return gen_row | {
        "frenkel_ladd": fl,
        "difference": diff,
        "thermal_tail_difference": tail,
        "difference_cut_system": diff_cut,
        "combined_std_err": comb,
        "z": diff / comb,
        "z_cut_system": diff_cut / comb,
        "within_0.002": bool(abs(diff) < 0.002),
        "cut_system_within_0.002": bool(abs(diff_cut) < 0.002),
        "combined_se_below_0.001": bool(comb < 0.001),
        "energy_evals_at_se_target": {
            "generative": g["energy_evals"] * (g["std_err"] / se_target) ** 2,
            "frenkel_ladd": fl["energy_evals"] * (fl["std_err"] / se_target) ** 2,
            "se_target": se_target,
        },
    }


def main(config: Config | None = None, out_dir=None, stage=uncached_stage, loop=plain_loop) -> dict:
    """Each system is two ``stage`` calls (generative, Frenkel–Ladd), key ``fold_in(key, i)``.

    Under the runner the Frenkel–Ladd stage checkpoints per block (``loop``), so a resumed
    run skips the finished systems and continues an unfinished Frenkel–Ladd run.
    """
    config = config or Config()
    jax.config.update("jax_enable_x64", True)  # experiment entry point
    key = jr.key(config.seed)
    rows = {}
    for i, (t, rho, nc, rc, n_chains, n_stages, n_blocks) in enumerate(config.systems):
        k_sys = jr.fold_in(key, i)
        gen_args = (k_sys, config, t, rho, nc, rc, n_chains, n_stages)
        g = stage(f"system_{i}_generative", lambda a=gen_args: generative_system(*a))
        spring = 3.0 * t / (2.0 * g["generative"]["model_msd"])
        k_fl = jr.split(k_sys, 6)[4]
        fl_args = (k_fl, config, t, rho, nc, rc, spring, n_blocks, loop, f"system_{i}")
        fl = stage(f"system_{i}_frenkel_ladd", lambda a=fl_args: frenkel_ladd_system(*a))
        row = compare(g, fl, config.se_target)
        se_b = fl["block_std_err"]
        se_b = "-" if se_b is None else f"{se_b:.5f}"
        print(
            f"  Frenkel–Ladd {fl['value']:.5f} +- {fl['std_err']:.5f} (block spread {se_b}; "
            f"{fl['energy_evals']} evals, {fl['cpu_s']:.0f} CPU s); "
            f"difference {row['difference']:+.5f}, cut system {row['difference_cut_system']:+.5f} "
            f"(combined SE {row['combined_std_err']:.5f}, z {row['z']:+.2f}, "
            f"{row['z_cut_system']:+.2f})",
            flush=True,
        )
        rows[f"T={t},rho={rho},N={g['n_particles']}"] = row
    out = pathlib.Path(out_dir or "results/materials_crystal_generative")
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(rows, indent=2))
    return {"systems": rows}


def run(config: Config, ctx) -> dict:
    """Runner entry point: per system a generative and a Frenkel–Ladd ``ctx.stage``."""
    return main(config, ctx.run_dir, stage=ctx.stage, loop=ctx.loop)


if __name__ == "__main__":
    import sys

    main(Config.quick() if "--quick" in sys.argv else None)
