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
   with the Einstein spring :math:`\Lambda_E = 3k_BT/(2\,\mathrm{MSD})` of the model.
4. *Structure.* The corrected population, resampled by its weights (systematic) and moved
   by ``n_final_sweeps`` Metropolis sweeps at the target, against long Metropolis chains
   (:func:`thermo.materials.frenkel_ladd_mc` at :math:`\lambda = 1`): energy :math:`W_2`
   and RDF :math:`L_1` next to the MCMC half-vs-half floor, :math:`Q_6`, Lindemann ratio.

Cost is counted in energy evaluations: one per MALA step (energy and gradient) and per
configuration of the Hessian (:math:`3N` gradient evaluations, counted as :math:`3N`), and
two per Metropolis sweep (its :math:`2N` single-particle energies cost :math:`2N(N-1)` pair
terms, two full energies). "At equal error" scales each route's count by
:math:`(\sigma/\sigma_{\rm target})^2`.

``python -m experiments.materials_crystal_generative [--quick]``.
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
from experiments.materials_fcc_frenkel_ladd import simulate_size
from experiments.materials_periodic_generative import radial_distribution
from generative.periodic import (
    bond_order_q6,
    crystal_excess_free_energy,
    lattice_free_energy,
    lattice_gaussian_from_hessian,
    lattice_gaussian_from_samples,
    lindemann_ratio,
)
from thermo.kernel import run as run_kernel
from thermo.materials import (
    fcc_lattice,
    fcc_lattice_energy,
    frenkel_ladd_mc,
    lj_energy_fn,
    periodic_space,
    to_arrays,
)
from thermo.metrics import energy_w2
from thermo.smc import systematic_resampling

__all__ = ["Config", "main", "run", "simulate_system"]


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings.

    Attributes:
        seed: PRNG seed.
        systems: ``(T*, rho*, n_cells, r_cut)``; ``r_cut`` sits between neighbour shells
            and below half the cell.
        n_chains_fit, n_stages_fit: the AIS run that refits the model.
        n_chains, n_stages: the production AIS run.
        n_final_sweeps: Metropolis sweeps after resampling (structure checks only).
        n_lambda, n_production: Frenkel–Ladd nodes and sweeps per node.
        n_mcmc_chains, n_mcmc_sweeps, mcmc_thin: the long reference MCMC.
        se_target: per-particle standard error for the equal-error cost comparison.
    """

    seed: Seed = 2022
    systems: tuple[tuple[Positive, Positive, Count, Positive], ...] = (
        (2.0, 1.28, 2, 1.45),
        (2.0, 1.28, 3, 2.1),
    )
    n_chains_fit: Count = 256
    n_stages_fit: Count = 50
    n_chains: Count = 512
    n_stages: Count = 200
    n_final_sweeps: Count = 20
    n_lambda: Count = 8
    n_production: Count = 1000
    n_mcmc_chains: Count = 8
    n_mcmc_sweeps: Count = 2000
    mcmc_thin: Count = 10
    se_target: Positive = 0.0005
    n_bins: Count = 40

    @classmethod
    def quick(cls) -> Config:
        """Smoke setting: N = 32, tiny runs."""
        return cls(
            systems=((2.0, 1.28, 2, 1.45),),
            n_chains_fit=16,
            n_stages_fit=5,
            n_chains=32,
            n_stages=10,
            n_final_sweeps=2,
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


def simulate_system(key, config: Config, t: float, rho: float, n_cells: int, r_cut: float) -> dict:
    """One system: model, AIS free energy, Frenkel–Ladd peer, structure checks."""
    k_fit, k_prod, k_res, k_fin, k_fl, k_mc = jr.split(key, 6)
    pos, box, _ = to_arrays(fcc_lattice(n_cells, rho))
    n = pos.shape[0]
    disp, _ = periodic_space(box)
    u_fn = lj_energy_fn(disp, r_cut=r_cut)
    sites = jnp.asarray(pos)
    a_nn = (4.0 / rho) ** (1.0 / 3.0) / np.sqrt(2.0)
    t0 = time.perf_counter()
    model0 = lattice_gaussian_from_hessian(u_fn, pos, box, t)
    fit = lattice_free_energy(
        k_fit, model0, u_fn, t, n_chains=config.n_chains_fit, n_stages=config.n_stages_fit
    )
    model = lattice_gaussian_from_samples(fit.positions, pos, box, log_weights=fit.log_weights)
    res = lattice_free_energy(
        k_prod, model, u_fn, t, n_chains=config.n_chains, n_stages=config.n_stages
    )
    t_gen = time.perf_counter() - t0
    w = np.exp(np.asarray(res.log_weights) - np.max(res.log_weights))
    w /= w.sum()
    d = np.array(jax.vmap(model.displacements)(res.positions))
    d -= d.mean(axis=1, keepdims=True)
    msd = float(np.sum(w * np.mean(np.sum(d * d, -1), -1)))
    u_cut = float(u_fn(sites)) / n
    u_full = float(fcc_lattice_energy(rho))
    gen = crystal_excess_free_energy(
        n,
        rho,
        t,
        float(res.log_q_com),
        float(res.log_z_std),
        lattice_energy_cut=u_cut,
        lattice_energy_full=u_full,
        msd=msd,
        r_cut=r_cut,
    )
    evals_gen = 3 * n + int(fit.n_energy_evals) + int(res.n_energy_evals)
    print(
        f"N={n} T*={t} rho*={rho}: generative beta A/N = {gen['value']:.5f} +- {gen['std_err']:.5f} "
        f"(ESS {float(res.ess) / config.n_chains:.2f}, k {float(res.pareto_k):.2f}, "
        f"{evals_gen} evals, {t_gen:.0f} s)",
        flush=True,
    )
    # Frenkel–Ladd on the same system
    spring = 3.0 * t / (2.0 * float(jnp.sum(model.scales**2)) / n)
    fl_cfg = FLConfig(
        temperature=t,
        density=rho,
        sizes=(n_cells,),
        r_cut=r_cut,
        spring=spring,
        n_lambda=config.n_lambda,
        n_production=config.n_production,
    )
    t1 = time.perf_counter()
    fl = simulate_size(k_fl, fl_cfg, n_cells)
    t_fl = time.perf_counter() - t1
    sweeps_fl = config.n_lambda * (
        fl_cfg.n_adapt * fl_cfg.adapt_sweeps + fl_cfg.n_equilibrate + config.n_production
    )
    evals_fl = 2 * sweeps_fl
    fl_v, fl_se = fl["beta_free_energy"]["value"], fl["beta_free_energy"]["std_err"]
    diff = gen["value"] - fl_v
    comb = float(np.hypot(gen["std_err"], fl_se))
    print(
        f"  Frenkel–Ladd {fl_v:.5f} +- {fl_se:.5f} ({evals_fl} evals, {t_fl:.0f} s); "
        f"difference {diff:+.5f} (combined SE {comb:.5f})",
        flush=True,
    )
    # structure: resample, a few target sweeps, vs long MCMC
    idx = systematic_resampling(k_res, jnp.asarray(res.log_weights))
    x_res = res.positions[idx]
    step = 0.5 * np.sqrt(msd)
    fin, acc_fin = _metropolis(
        k_fin, disp, sites, t, r_cut, x_res, config.n_final_sweeps, config.n_final_sweeps, step
    )
    x_gen = np.asarray(fin[:, -1])
    x0 = jnp.broadcast_to(sites, (config.n_mcmc_chains, n, 3))
    traj, acc = _metropolis(
        k_mc, disp, sites, t, r_cut, x0, config.n_mcmc_sweeps, config.mcmc_thin, step
    )
    traj = np.asarray(traj)[:, traj.shape[1] // 5 :]  # drop 20% as equilibration
    half = config.n_mcmc_chains // 2
    ref_a = traj[:half].reshape(-1, n, 3)
    ref_b = traj[half:].reshape(-1, n, 3)
    m = min(len(x_gen), len(ref_b))
    e = jax.jit(jax.vmap(u_fn))

    def epp(x):
        return np.asarray(e(jnp.asarray(x))) / n

    e_a, e_b, e_g = epp(ref_a), epp(ref_b), epp(x_gen)
    cell = np.diag(np.asarray(box)) if np.ndim(box) == 1 else np.asarray(box)
    cell = np.diag(cell) if cell.ndim == 1 else cell
    inv = np.linalg.inv(cell)
    r_max = 0.5 / np.linalg.norm(inv, axis=1).max()

    def rdf(x):
        f = x @ inv.T
        return radial_distribution(f - np.floor(f), cell, r_max, config.n_bins)

    r, g_a = rdf(ref_a)
    _, g_b = rdf(ref_b[:m])
    _, g_g = rdf(x_gen[:m])
    dr = r[1] - r[0]
    r_nb = 0.5 * a_nn * (1 + np.sqrt(2.0))
    q_a, q_g = bond_order_q6(ref_a, cell, r_nb), bond_order_q6(x_gen, cell, r_nb)
    q_se = float(np.hypot(q_a.std(ddof=1) / np.sqrt(half), q_g.std(ddof=1) / np.sqrt(len(q_g))))
    out = {
        "temperature": t,
        "density": rho,
        "n_particles": n,
        "r_cut": r_cut,
        "generative": gen
        | {
            "ess_fraction": float(res.ess) / config.n_chains,
            "pareto_k": float(res.pareto_k),
            "log_q_com": float(res.log_q_com),
            "acceptance": float(res.acceptance_rate),
            "fit_ess_fraction": float(fit.ess) / config.n_chains_fit,
            "msd": msd,
            "energy_evals": evals_gen,
            "wall_s": t_gen,
        },
        "frenkel_ladd": {
            "value": fl_v,
            "std_err": fl_se,
            "spring": spring,
            "energy_evals": evals_fl,
            "wall_s": t_fl,
            "terms": fl["terms"],
        },
        "difference": diff,
        "combined_std_err": comb,
        "within_0.002": bool(abs(diff) < 0.002),
        "combined_se_below_0.001": bool(comb < 0.001),
        "energy_evals_at_se_target": {
            "generative": evals_gen * (gen["std_err"] / config.se_target) ** 2,
            "frenkel_ladd": evals_fl * (fl_se / config.se_target) ** 2,
            "se_target": config.se_target,
        },
        "structure": {
            "energy_w2": energy_w2(e_g[:m], e_a),
            "energy_w2_floor": energy_w2(e_b[:m], e_a),
            "rdf_l1": float(np.sum(np.abs(g_g - g_a)) * dr),
            "rdf_l1_floor": float(np.sum(np.abs(g_b - g_a)) * dr),
            "q6_mcmc": float(q_a.mean()),
            "q6_generated": float(q_g.mean()),
            "q6_se": q_se,
            "lindemann_mcmc": lindemann_ratio(ref_a, model, a_nn),
            "lindemann_generated": lindemann_ratio(x_gen, model, a_nn),
            "mcmc_acceptance": float(np.mean(acc)),
            "final_sweeps_acceptance": float(np.mean(acc_fin)),
            "n_generated": int(m),
            "n_mcmc_half": int(len(ref_a)),
        },
    }
    s = out["structure"]
    print(
        f"  structure: energy W2 {s['energy_w2']:.4f} (floor {s['energy_w2_floor']:.4f}), RDF L1 "
        f"{s['rdf_l1']:.4f} (floor {s['rdf_l1_floor']:.4f}), Q6 {s['q6_generated']:.4f} vs "
        f"{s['q6_mcmc']:.4f} +- {q_se:.4f}, Lindemann {s['lindemann_generated']:.4f} vs "
        f"{s['lindemann_mcmc']:.4f}",
        flush=True,
    )
    return out


def main(config: Config | None = None, out_dir=None, stage=uncached_stage) -> dict:
    """Every system is one ``stage``, key ``fold_in(key, i)``."""
    config = config or Config()
    jax.config.update("jax_enable_x64", True)  # experiment entry point
    key = jr.key(config.seed)
    rows = {}
    for i, (t, rho, nc, rc) in enumerate(config.systems):
        args = (jr.fold_in(key, i), config, t, rho, nc, rc)
        res = stage(f"system_{i}", lambda a=args: simulate_system(*a))
        rows[f"T={t},rho={rho},N={res['n_particles']}"] = res
    out = pathlib.Path(out_dir or "results/materials_crystal_generative")
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(rows, indent=2))
    return {"systems": rows}


def run(config: Config, ctx) -> dict:
    """Runner entry point: each system is a ``ctx.stage`` (resume skips finished ones)."""
    return main(config, ctx.run_dir, stage=ctx.stage)


if __name__ == "__main__":
    import sys

    main(Config.quick() if "--quick" in sys.argv else None)
