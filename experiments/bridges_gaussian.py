r"""Schrödinger bridges against exact answers: Gaussian closed form, mixture benchmark, 2-D showcase.

Three parts, each a ``main``-style function returning JSON-able metrics:

* :func:`gaussian_solvers`: the Gaussian task of Shi et al. (2023, Sec. 6.1),
  :math:`\mathcal N(-0.1\cdot\mathbf 1, I)\to\mathcal N(0.1\cdot\mathbf 1, I)` with reference
  :math:`\sigma dB`, in :math:`d = 5, 20, 50`. IPF/DSB (De Bortoli et al. 2021), DSBM (Shi
  et al. 2023) and the static Sinkhorn plan are compared with the closed form (Bunne et
  al. 2023): relative Frobenius errors of the learned cross-covariance :math:`C` and of
  :math:`\Sigma_1`, iterations and wall time. Two floors make the comparison honest:
  the *plug-in floor* (the closed form evaluated at the sample covariances of the
  ``n_train`` training samples: the best estimator from the solver's own data) and the
  *evaluation floor* (sample moments of ``n_eval`` exact plan pairs). Errors are
  reported plain (against the exact values, floor = both in quadrature) and *paired*
  (learned vs exact drift on common random numbers, floor = plug-in), with
  error/floor ratios. The closed-form KL to the reference is reported next to a
  Girsanov Monte Carlo estimate along the learned forward bridge.
* :func:`mixture_benchmark`: the Gushchin et al. (2023) mixture construction
  (:mod:`bridges.benchmark`, regenerated instances) at :math:`\varepsilon = 0.1`, scored
  by cBW2-UVP for LightSB (Korotin et al. 2024), next to the published numbers, with the
  score's standard error and the estimator floor of the true plan.
* :func:`showcase`: moons :math:`\leftrightarrow` Gaussian in 2-D, bridge paths of the
  Sinkhorn bridge and of DSBM, saved as a figure.

Run everything with :func:`main` (``python -m experiments.bridges_gaussian [quick]``).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys
import time
from typing import Annotated

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from bridges import dsbm, gaussian_bridge, ipf, sinkhorn_bridge
from bridges._common import coupling_stats, paired_coupling_errors, relative_error, simulate
from bridges.benchmark import (
    PUBLISHED_CBW2_UVP,
    cbw2_uvp_estimate,
    fit_lightsb,
    make_benchmark,
    sample_moments_floor,
)
from bridges.gaussian import plug_in_floor
from bridges.sinkhorn import plan_cross_covariance
from bridges.thermodynamics import girsanov_kl
from experiments._config import Choices, Count, Fraction, NonNegativeInt, Positive, Real, Seed
from experiments._runner import uncached_stage

__all__ = [
    "Config",
    "SOLVERS",
    "gaussian_solvers",
    "main",
    "mixture_benchmark",
    "run",
    "showcase",
]

#: The learned solvers of the Gaussian task: IPF/DSB (De Bortoli et al. 2021) and DSBM
#: (Shi et al. 2023).
SOLVERS = ("ipf_dsb", "dsbm")


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings (defaults: about 10 minutes in all on a lightly loaded 2-core CPU).

    Attributes:
        seed: master seed.
        dims: dimensions of the Gaussian task (Shi et al. 2023 use 5, 20, 50).
        sigma: reference diffusion coefficient.
        mean_shift: the task's means are -/+ ``mean_shift`` * ones (Shi et al.: 0.1).
        n_train: training samples per marginal (sets the plug-in floor).
        n_eval: evaluation pairs (sets the sampling floor of the plain errors).
        floor_repeats: independent data sets over which the floors are averaged.
        solvers: the learned solvers compared in the Gaussian task, a subset of
            ``("ipf_dsb", "dsbm")`` (the quick setting runs DSBM only: every solver
            compiles its own training and simulation programs).
        n_iterations: IPF / IMF iterations.
        n_train_steps: Adam steps per network fit (DSBM).
        ipf_train_steps, ipf_batch_size: the same for IPF, whose mean-matching targets
            carry ``n_sim_steps`` times more noise (variance ``sigma^2 / gamma``).
        batch_size, width, depth, network: network training settings.
        ipf_steps, dsbm_steps: Euler steps of IPF's chains and of DSBM's simulations.
        sinkhorn_n: samples per marginal for the static Sinkhorn plan.
        mixture_dims: dimensions of the mixture benchmark.
        mixture_eps: its entropic regularisation.
        lightsb_steps, lightsb_components, lightsb_lr, lightsb_final_lr_fraction,
            lightsb_batch_size: LightSB budget. ``K = 50`` components (as Korotin et al.'s
            benchmark notebook) matter most: ``r_k`` start at ``K`` target samples, and
            with ``K = 10`` the d = 16 instance's fifth mode (12 % of the mass) gets no
            initial component; Adam cannot move one there across the empty space between
            modes, and the score is 1.5-2.7 % instead of 0.12 %.
        n_test_inputs: test inputs for cBW2-UVP.
        floor_samples: conditional samples per test input for the sample-moment floor
            of cBW2-UVP with the true plan (0: skip).
        showcase_train_steps, showcase_n: DSBM budget and sample size of the 2-D figure.
    """

    seed: Seed = 0
    dims: tuple[Count, ...] = (5, 20, 50)
    sigma: Positive = 1.0
    mean_shift: Real = 0.1
    n_train: Count = 4096
    n_eval: Count = 10000
    floor_repeats: Count = 16
    solvers: tuple[Annotated[str, Choices(SOLVERS)], ...] = SOLVERS
    n_iterations: Count = 4
    n_train_steps: Count = 1000
    ipf_train_steps: Count = 1000
    ipf_batch_size: Count = 512
    batch_size: Count = 256
    width: Count = 128
    depth: Count = 2
    network: Annotated[str, Choices(("affine_mlp", "affine", "mlp"))] = "affine_mlp"
    ipf_steps: Count = 20
    dsbm_steps: Count = 50
    sinkhorn_n: Count = 2000
    mixture_dims: tuple[Count, ...] = (2, 16)
    mixture_eps: Positive = 0.1
    lightsb_steps: Count = 3000
    lightsb_components: Count = 50
    lightsb_lr: Positive = 1e-2
    lightsb_final_lr_fraction: Fraction = 0.01
    lightsb_batch_size: Count = 256
    n_test_inputs: Count = 1000
    floor_samples: NonNegativeInt = 1000
    showcase_train_steps: NonNegativeInt = 600
    showcase_n: Count = 1000

    def __post_init__(self):
        unknown = set(self.solvers) - set(SOLVERS)
        if unknown:
            raise ValueError(f"unknown solvers {sorted(unknown)}; choose from {SOLVERS}")

    @classmethod
    def quick(cls) -> Config:
        """A setting of seconds for the end-to-end test: tiny budgets, and as few compiled
        programs as cover the code path (compile time dominates, about a CPU-second per
        program): the Gaussian task in d = 2 with DSBM only (IPF's training compiles its
        own programs), an affine drift, no mixture benchmark (LightSB's training is one
        more large program; ``tests/bridges`` checks it), and the Sinkhorn showcase.
        """
        return cls(
            dims=(2,),
            n_train=256,
            n_eval=256,
            floor_repeats=2,
            solvers=("dsbm",),
            n_iterations=1,
            n_train_steps=50,
            ipf_train_steps=50,
            ipf_batch_size=64,
            batch_size=64,
            width=16,
            depth=1,
            network="affine",
            ipf_steps=5,
            dsbm_steps=5,
            sinkhorn_n=128,
            mixture_dims=(),
            lightsb_steps=100,
            lightsb_components=5,
            n_test_inputs=64,
            floor_samples=0,
            showcase_train_steps=0,
            showcase_n=128,
        )


_simulate = eqx.filter_jit(simulate)


@eqx.filter_jit
def _evaluate(k_sim, k_kl, sde, br, xe, n_steps):
    """The learned bridge's simulated end points, paired errors and Girsanov KL: one
    compiled program per solver (three separately jitted calls compile three)."""
    ye, _ = simulate(k_sim, sde, xe, n_steps)
    paired = paired_coupling_errors(k_sim, sde, br.sde(), xe, n_steps, br.cross_cov, br.cov1)
    return ye, paired, girsanov_kl(k_kl, sde, xe[:2048], n_steps)


def gaussian_solvers(config: Config, stage=uncached_stage) -> dict:
    r"""IPF/DSB, DSBM and Sinkhorn vs the closed-form Gaussian bridge, per dimension.

    For each solver: the *plain* relative errors of :math:`C` and :math:`\Sigma_1` (sample
    moments of ``n_eval`` simulated pairs against the exact values; floor: the
    evaluation floor of ``n_eval`` exact pairs, combined in quadrature with the plug-in
    floor of ``n_train``), and the *paired* errors (learned vs exact drift on common
    random numbers, :func:`bridges._common.paired_coupling_errors`, which removes the
    evaluation noise; floor: the plug-in floor of ``n_train``). Ratios error/floor near 1
    mean the solver is as accurate as the closed form estimated from its own data.

    Per dimension, the floors, each solver and Sinkhorn are one ``stage(name, fn)`` call
    each (``RunContext.stage`` under the runner: a resumed run skips the finished ones).
    The keys of dimension ``d`` come from the split chain over ``config.dims``, advanced
    for every dimension whether it ran or not, so they do not depend on what ran before.
    """
    out = {}
    key = jr.key(config.seed)
    for d in config.dims:
        key, k0, k1, k_ipf, k_dsbm, k_ev, k_sim, k_fl, k_sk, k_kl = jr.split(key, 10)
        mu = config.mean_shift * jnp.ones(d)
        br = gaussian_bridge(-mu, jnp.eye(d), mu, jnp.eye(d), config.sigma)

        def floors(k_fl=k_fl, br=br):
            return (
                plug_in_floor(k_fl, br, config.n_train, config.floor_repeats),
                plug_in_floor(jr.fold_in(k_fl, 1), br, config.n_eval, config.floor_repeats),
            )

        fl_train, fl_eval = stage(f"gaussian_d={d}_floors", floors)
        floor_plain_c = float(np.hypot(fl_train["plug_in_cross_cov"], fl_eval["eval_cross_cov"]))
        floor_plain_s = float(np.hypot(fl_train["plug_in_cov1"], fl_eval["eval_cov1"]))
        row = {
            "closed_form": {
                "cross_cov_diag": float(br.cross_cov[0, 0]),
                "kl_to_reference": float(br.kl_to_reference()),
            },
            "floor": {
                "plug_in_n_train": fl_train,
                "eval_n_eval": {
                    k: v for k, v in fl_eval.items() if k.startswith("eval") or k == "n"
                },
                "plain_cross_cov": floor_plain_c,
                "plain_cov1": floor_plain_s,
            },
        }
        solvers = (
            (
                "ipf_dsb",
                ipf,
                k_ipf,
                config.ipf_steps,
                config.ipf_train_steps,
                config.ipf_batch_size,
            ),
            ("dsbm", dsbm, k_dsbm, config.dsbm_steps, config.n_train_steps, config.batch_size),
        )
        for name, fn, k_fit, n_steps, n_adam, batch in solvers:
            if name not in config.solvers:
                continue
            keys = (k0, k1, k_ev, k_fit, k_sim, k_kl)
            floor = (fl_train, floor_plain_c, floor_plain_s)
            solver = (name, fn, n_steps, n_adam, batch)
            row[name] = stage(
                f"gaussian_d={d}_{name}",
                lambda a=(config, d, br, keys, solver, floor): _solver_row(*a),
            )
        row["sinkhorn_static"] = stage(
            f"gaussian_d={d}_sinkhorn", lambda k=k_sk, br=br: _sinkhorn_row(config, k, br)
        )
        out[f"d={d}"] = row
    return out


def _solver_row(config: Config, d: int, br, keys, solver, floor) -> dict:
    """Fit one solver at dimension ``d`` and score it: a row of :func:`gaussian_solvers`."""
    k0, k1, k_ev, k_fit, k_sim, k_kl = keys
    name, fn, n_steps, n_adam, batch = solver
    fl_train, floor_plain_c, floor_plain_s = floor
    x0 = br.sample_marginal(k0, 0.0, config.n_train)
    x1 = br.sample_marginal(k1, 1.0, config.n_train)
    xe = br.sample_marginal(k_ev, 0.0, config.n_eval)
    res = fn(
        k_fit,
        x0,
        x1,
        config.sigma,
        n_sim_steps=n_steps,
        n_train_steps=n_adam,
        batch_size=batch,
        n_iterations=config.n_iterations,
        width=config.width,
        depth=config.depth,
        network=config.network,
    )
    ye, (pc, ps), kl = _evaluate(k_sim, k_kl, res.forward_sde(), br, xe, n_steps)
    c, s1 = coupling_stats(xe, ye)
    err_c = float(relative_error(c, br.cross_cov))
    err_s = float(relative_error(s1, br.cov1))
    out = {
        "rel_err_cross_cov": err_c,
        "rel_err_cov1": err_s,
        "ratio_to_floor_cross_cov": err_c / floor_plain_c,
        "ratio_to_floor_cov1": err_s / floor_plain_s,
        "paired_rel_err_cross_cov": float(pc),
        "paired_rel_err_cov1": float(ps),
        "paired_ratio_to_plug_in_cross_cov": float(pc) / fl_train["plug_in_cross_cov"],
        "paired_ratio_to_plug_in_cov1": float(ps) / fl_train["plug_in_cov1"],
        "rel_err_mean1": float(jnp.linalg.norm(ye.mean(0) - br.mu1) / jnp.linalg.norm(br.mu1)),
        "iterations": res.n_iterations,
        "adam_steps_total": 2 * res.n_iterations * n_adam,
        "batch_size": batch,
        "wall_time_s": res.wall_time,
        "girsanov_kl": float(kl.value),
        "girsanov_kl_std_err": float(kl.std_err),
    }
    print(f"d={d} {name}: {out}", flush=True)
    return out


def _sinkhorn_row(config: Config, k_sk, br) -> dict:
    """The static Sinkhorn plan's relative cross-covariance error at one dimension."""
    t0 = time.perf_counter()
    xs = br.sample_marginal(k_sk, 0.0, config.sinkhorn_n)
    ys = br.sample_marginal(jr.fold_in(k_sk, 1), 1.0, config.sinkhorn_n)
    # sigma as an array (traced, not a static Python float): the showcase's plan of
    # the same shape then reuses this compiled solver
    _, plan = sinkhorn_bridge(xs, ys, jnp.asarray(config.sigma))
    c_sk = plan_cross_covariance(plan.matrix, xs, ys)
    return {
        "rel_err_cross_cov": float(relative_error(c_sk, br.cross_cov)),
        "sinkhorn_iterations": int(plan.n_iterations),
        "n_samples": config.sinkhorn_n,
        "wall_time_s": time.perf_counter() - t0,
    }


def mixture_benchmark(config: Config, stage=uncached_stage) -> dict:
    r"""LightSB on regenerated Gushchin et al. (2023) mixture instances, scored by cBW2-UVP.

    Reports the score with its Monte Carlo standard error over the test inputs, and the
    estimator floors of the *true* plan: exactly 0 with exact conditional moments (what
    we use for LightSB, whose conditionals are Gaussian mixtures in closed form), and the
    positive bias when the moments come from ``floor_samples`` conditional draws (the
    sample-based protocol). Each dimension is one ``stage(name, fn)`` call with the key
    ``fold_in(key, 1000 + d)``.
    """
    out = {}
    for d in config.mixture_dims:
        out[f"d={d}"] = stage(f"mixture_d={d}", lambda d=d: _mixture_row(config, d))
    return out


def _mixture_row(config: Config, d: int) -> dict:
    """LightSB on the regenerated mixture instance of dimension ``d``, scored."""
    key = jr.fold_in(jr.key(config.seed), 1000 + d)
    k_b, k_init, k_fit, k_test = jr.split(key, 4)
    bench = make_benchmark(k_b, d, config.mixture_eps)
    init = bench.sample_p1(k_init, config.lightsb_components)
    res = fit_lightsb(
        k_fit,
        bench.sample_p0,
        bench.sample_p1,
        d,
        config.mixture_eps,
        n_components=config.lightsb_components,
        n_steps=config.lightsb_steps,
        batch_size=config.lightsb_batch_size,
        learning_rate=config.lightsb_lr,
        final_lr_fraction=config.lightsb_final_lr_fraction,
        init_points=init,
    )
    x = bench.sample_p0(k_test, config.n_test_inputs)
    m, c = jax.vmap(res.model.conditional_moments)(x)
    score, score_se = cbw2_uvp_estimate(bench, x, m, c)
    tm, tc = jax.vmap(bench.conditional_moments)(x)
    exact_floor, _ = cbw2_uvp_estimate(bench, x, tm, tc)
    row = {
        "cbw2_uvp_percent_lightsb_ours": float(score),
        "cbw2_uvp_std_err": float(score_se),
        "true_plan_exact_moments": float(exact_floor),
        "published_best_of_gushchin2023": PUBLISHED_CBW2_UVP["best_of_gushchin2023"].get(d),
        "published_lightsb_korotin2024": PUBLISHED_CBW2_UVP["lightsb_korotin2024"].get(d),
        "adam_steps": res.n_iterations,
        "n_components": config.lightsb_components,
        "wall_time_s": res.wall_time,
        "instance": "regenerated (same construction, our random parameters; see bridges.benchmark)",
    }
    if config.floor_samples > 0:
        fv, fse = sample_moments_floor(jr.fold_in(k_test, 1), bench, x, config.floor_samples)
        row["true_plan_sample_moments"] = float(fv)
        row["true_plan_sample_moments_std_err"] = float(fse)
        row["floor_samples"] = config.floor_samples
    print(f"mixture d={d}: {row}", flush=True)
    return row


def moons(key, n: int):
    """Two interleaved half circles (radius 1) with Gaussian noise of std 0.1, centred."""
    k_side, k_angle, k_noise = jr.split(key, 3)
    side = jr.bernoulli(k_side, 0.5, (n,))
    angle = jr.uniform(k_angle, (n,)) * jnp.pi
    upper = jnp.stack([jnp.cos(angle), jnp.sin(angle)], -1)
    lower = jnp.stack([1.0 - jnp.cos(angle), 0.5 - jnp.sin(angle)], -1)
    pts = jnp.where(side[:, None], upper, lower) + 0.1 * jr.normal(k_noise, (n, 2))
    return (pts - jnp.array([0.5, 0.25])[None, :]) * 1.5


def _showcase_paths(config: Config) -> dict:
    """The showcase's simulated paths (what its figure draws) and the DSBM end moments."""
    key = jr.fold_in(jr.key(config.seed), 7)
    k_m, k_g, k_sk, k_d, k_sim1, k_sim2 = jr.split(key, 6)
    sigma = 0.5
    n = config.showcase_n
    n_show = min(n, 300)
    x0 = moons(k_m, n)
    x1 = jr.normal(k_g, (n, 2))
    sk, _ = sinkhorn_bridge(x0, x1, jnp.asarray(sigma))
    n_steps = 50
    # the Sinkhorn drift is singular at t = 1; the Euler grid stops at t = 1 - 1/n_steps
    _, p_sk = _simulate(k_sim1, sk.sde(), x0[:n_show], n_steps, record=True)
    panels = [(p_sk, "Sinkhorn bridge (Pooladian & Niles-Weed)")]
    out = {}
    if config.showcase_train_steps > 0:
        res = dsbm(
            k_d,
            x0,
            x1,
            sigma,
            n_iterations=2,
            n_train_steps=config.showcase_train_steps,
            width=64,
            depth=2,
        )
        _, p_ds = _simulate(k_sim2, res.forward_sde(), x0[:n_show], n_steps, record=True)
        panels.append((p_ds, "DSBM (Shi et al.)"))
        final = np.asarray(p_ds[:, -1])
        out = {
            "dsbm_final_mean": final.mean(0).tolist(),
            "dsbm_final_cov": np.cov(final.T).tolist(),
            "dsbm_wall_time_s": res.wall_time,
        }
    # the figure draws 120 whole paths and the end points of all n_show
    shown = [
        {
            "title": title,
            "paths": np.asarray(paths)[:120],
            "start": np.asarray(paths)[:, 0],
            "end": np.asarray(paths)[:, -1],
        }
        for paths, title in panels
    ]
    return {"sigma": sigma, "panels": shown, "metrics": out}


def showcase(config: Config, out_dir: pathlib.Path | None = None, stage=uncached_stage) -> dict:
    """Moons -> Gaussian bridge paths (Sinkhorn bridge, and DSBM unless ``showcase_train_steps`` is 0); saves ``bridges_moons.png``.

    The simulation is one ``stage("showcase", fn)`` call whose result holds the arrays
    the figure draws (a resumed run redraws the figure from it).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = stage("showcase", lambda: _showcase_paths(config))
    panels = data["panels"]
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5 * len(panels), 5), sharex=True, sharey=True, squeeze=False
    )
    for ax, panel in zip(axes[0], panels, strict=True):
        paths = np.asarray(panel["paths"], dtype=float)
        start = np.asarray(panel["start"], dtype=float)
        end = np.asarray(panel["end"], dtype=float)
        for p in paths:
            ax.plot(p[:, 0], p[:, 1], color="0.6", lw=0.4, alpha=0.5)
        ax.scatter(start[:, 0], start[:, 1], s=4, c="tab:blue", label="moons (t=0)")
        ax.scatter(end[:, 0], end[:, 1], s=4, c="tab:red", label="t=1")
        ax.set_title(panel["title"])
        ax.set_aspect("equal")
    axes[0, 0].legend(loc="upper right")
    fig.suptitle(f"Schrödinger bridge paths, moons -> N(0, I), sigma = {data['sigma']}")
    out_dir = pathlib.Path(out_dir or "results/bridges")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "bridges_moons.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return {"figure": str(path), **data["metrics"]}


def run(config: Config, ctx) -> dict:
    """Runner entry point: every dimension's floors, solvers and Sinkhorn plan, every
    mixture dimension and the showcase are ``ctx.stage`` calls (a resumed run skips the
    finished ones)."""
    return main(config, ctx.run_dir, stage=ctx.stage)


def main(
    config: Config | None = None, out_dir: str | pathlib.Path | None = None, stage=uncached_stage
) -> dict:
    """Run the three parts and return their metrics (also written to ``metrics.json``)."""
    config = config or Config()
    out_dir = pathlib.Path(out_dir or "results/bridges")
    metrics = {
        "config": dataclasses.asdict(config),
        "gaussian": gaussian_solvers(config, stage),
        "mixture_benchmark": mixture_benchmark(config, stage),
        "showcase": showcase(config, out_dir, stage),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


if __name__ == "__main__":
    main(Config.quick() if "quick" in sys.argv[1:] else Config())
