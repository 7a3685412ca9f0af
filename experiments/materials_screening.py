r"""Multi-fidelity screening of binary LJ crystals: lattice energy → harmonic → full free energy.

A generator proposes binary Lennard-Jones crystals (prototype × size ratio
:math:`\sigma_B/\sigma_A` × :math:`\varepsilon_{AB}`; see
:mod:`thermo.materials._screening`). Every candidate goes through the three tiers, and
the objective is the formation free energy per atom against the pure FCC solids,
:math:`\Delta f = F/N - x_A f_A - x_B f_B` (a hit: :math:`\Delta f <` ``threshold``):

* cheap: relaxed lattice energy (positions + cell, L-BFGS);
* middle: classical harmonic free energy from ``jax.hessian`` (unstable structures fail);
* expensive: full free energy by TI from the harmonic reference (HMC at Gauss–Legendre
  nodes).

All tiers are run on all candidates (an audit), so the report gives, per tier, the hit
rate, the Spearman rank correlation with the expensive tier, and the compute, both for
the funnel (each tier only on the previous tier's survivors) and for brute force (TI on
everything), per surviving candidate. Wall times per tier are medians per candidate
(compilation, paid once per system size, is left out) times the number evaluated.

A check with an exact limit: the anharmonic correction of the one-component FCC LJ
crystal, :math:`(F - F_h)/N`, vanishes as :math:`T \to 0` (as :math:`T^2` to leading
order); it is measured at ``check_temperatures``.

``python -m experiments.materials_screening [--quick]``
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time
from typing import Annotated

import jax
import jax.random as jr
import numpy as np

from experiments._config import Choices, Count, NonNegativeInt, Positive, Real, Seed
from experiments._report import save_figure
from experiments._runner import uncached_stage
from thermo.materials._screening import (
    PROTOTYPES,
    evaluate_candidate,
    make_candidate,
    spearman,
)

__all__ = ["Config", "main", "run", "screen"]


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings (defaults: the full run, about 5-10 min on a loaded 2-core machine).

    Attributes:
        seed: PRNG seed.
        temperature: :math:`k_BT/\\varepsilon_{AA}` of the free-energy tiers (LJ FCC melts
            near 0.7 at zero pressure; 0.3 is a solid with a measurable anharmonic part).
        prototypes: ASE prototypes to decorate.
        sigma_b: :math:`\\sigma_B/\\sigma_A` values.
        epsilon_ab: :math:`\\varepsilon_{AB}/\\varepsilon_{AA}` values.
        r_cut_factor: :math:`r_c/\\sigma` of the cut-and-shifted pairs.
        max_atoms: candidates whose supercell is larger are skipped (listed).
        threshold: hit when the tier's :math:`\\Delta f` per atom is below this.
        n_nodes, n_chains, n_burn, n_steps, n_leapfrog: TI settings.
        check_temperatures: temperatures of the FCC low-T check.
    """

    seed: Seed = 9
    temperature: Positive = 0.3
    prototypes: tuple[Annotated[str, Choices(tuple(PROTOTYPES))], ...] = (
        "rocksalt",
        "cscl",
        "l1_0",
        "l1_2",
    )
    sigma_b: tuple[Positive, ...] = (0.85, 1.15)
    epsilon_ab: tuple[Positive, ...] = (0.9, 1.25)
    r_cut_factor: Positive = 1.5
    max_atoms: Count = 64
    threshold: Real = 0.0
    n_nodes: Count = 3
    n_chains: Count = 4
    n_burn: NonNegativeInt = 10
    n_steps: Count = 40
    n_leapfrog: Count = 6
    check_temperatures: tuple[Positive, ...] = (0.1, 0.2)

    def __post_init__(self):
        bad = set(self.prototypes) - set(PROTOTYPES)
        if bad:
            raise ValueError(f"unknown prototypes {sorted(bad)}; choose from {sorted(PROTOTYPES)}")
        if self.temperature <= 0 or min(self.check_temperatures, default=1.0) <= 0:
            raise ValueError("temperatures must be positive")

    @classmethod
    def quick(cls) -> Config:
        """One 32-atom candidate (one compile per tier), tiny TI: a smoke run."""
        return cls(
            prototypes=("l1_2",),
            sigma_b=(1.1,),
            epsilon_ab=(1.25,),
            n_nodes=2,
            n_chains=2,
            n_burn=5,
            n_steps=10,
            check_temperatures=(0.05,),
        )

    def ti_settings(self) -> dict:
        """Keyword arguments of :func:`thermo.materials._harmonic.anharmonic_free_energy`."""
        return {
            "n_nodes": self.n_nodes,
            "n_chains": self.n_chains,
            "n_burn": self.n_burn,
            "n_steps": self.n_steps,
            "n_leapfrog": self.n_leapfrog,
        }


def _reference(key, config: Config, temperature: float) -> dict:
    ref = make_candidate("fcc", 1.0, 1.0, r_cut_factor=config.r_cut_factor)
    r = evaluate_candidate(key, ref, temperature=temperature, ti_settings=config.ti_settings())
    return {
        "energy": r.energy,
        "harmonic": r.harmonic,
        "full": r.full,
        "full_std_err": r.full_std_err,
        "n_atoms": r.n_atoms,
    }


def _nan(row: dict) -> dict:
    """Undo the JSON round trip of a stage for the float entries (``None`` -> NaN)."""
    return {k: float("nan") if v is None else v for k, v in row.items()}


def screen(config: Config, stage=uncached_stage) -> dict:
    """Evaluate every candidate on all tiers; return per-candidate rows and the summary.

    The FCC reference and every candidate are one ``stage(name, fn)`` call each
    (``RunContext.stage`` under the runner, so a resumed run skips the finished ones);
    a candidate's key is ``fold_in(key, i)`` with ``i`` its place among the candidates
    the config admits, whatever ran before.
    """
    key = jr.key(config.seed)
    t = config.temperature
    ref = _nan(stage("reference_fcc", lambda: _reference(jr.fold_in(key, 10_000), config, t)))
    rows, skipped = [], []
    i = 0
    for proto in config.prototypes:
        for sb in config.sigma_b:
            for eab in config.epsilon_ab:
                cand = make_candidate(proto, sb, eab, r_cut_factor=config.r_cut_factor)
                if cand.positions.shape[0] > config.max_atoms:
                    skipped.append(cand.name)
                    continue
                i += 1
                args = (jr.fold_in(key, i), cand, proto, sb, eab, ref, config)
                row = stage(
                    "candidate_" + cand.name.replace("/", "_"), lambda a=args: _candidate_row(*a)
                )
                rows.append(_nan(row))
    return {"reference_fcc": ref, "rows": rows, "skipped": skipped}


def _candidate_row(key, cand, proto, sb, eab, ref, config: Config) -> dict:
    """Evaluate one candidate on all tiers; energies relative to the FCC reference."""
    t = config.temperature
    n_ref = ref["n_atoms"]
    res = evaluate_candidate(key, cand, temperature=t, ti_settings=config.ti_settings())
    xb = cand.x_b
    # pure-B references by exact scaling: u_B = u_A, f_B = f_A - T (3N-3)/N log sigma_B
    shift_b = -t * (3 * n_ref - 3) / n_ref * np.log(sb)
    row = {
        "name": cand.name,
        "prototype": proto,
        "sigma_b": sb,
        "epsilon_ab": eab,
        "x_b": xb,
        "n_atoms": res.n_atoms,
        "stable": res.stable,
        "cheap": res.energy - ref["energy"],
        "middle": res.harmonic - ref["harmonic"] - xb * shift_b,
        "expensive": res.full - ref["full"] - xb * shift_b,
        "expensive_std_err": float(np.hypot(res.full_std_err, ref["full_std_err"])),
        "cost": res.cost,
    }
    print(
        f"{cand.name:22s} N={res.n_atoms:3d} stable={res.stable!s:5s} "
        f"cheap={row['cheap']:+.4f} middle={row['middle']:+.4f} "
        f"expensive={row['expensive']:+.4f}±{row['expensive_std_err']:.4f}",
        flush=True,
    )
    return row


def _summary(rows: list[dict], threshold: float) -> dict:
    cheap = np.array([r["cheap"] for r in rows])
    middle = np.array([r["middle"] for r in rows])
    full = np.array([r["expensive"] for r in rows])
    stable = np.array([r["stable"] for r in rows])
    hit = {
        "cheap": cheap < threshold,
        "middle": stable & (middle < threshold),
        "expensive": stable & np.isfinite(full) & (full < threshold),
    }
    n = len(rows)

    def tier_cost(name, mask):
        evals = np.array([r["cost"][name]["evals"] for r in rows])
        walls = np.array([r["cost"][name]["wall_s"] for r in rows])
        ran = evals > 0
        med = float(np.median(walls[ran])) if ran.any() else 0.0
        return float(evals[mask].sum()), med * float(np.sum(mask & ran))

    funnel_mask = {
        "relax": np.ones(n, bool),
        "harmonic": hit["cheap"],
        "full": hit["cheap"] & hit["middle"],
    }
    survivors = hit["cheap"] & hit["middle"] & hit["expensive"]
    n_surv = int(survivors.sum())
    funnel_evals = funnel_wall = 0.0
    tiers = {}
    for tier, cost_name, values in (
        ("cheap", "relax", cheap),
        ("middle", "harmonic", middle),
        ("expensive", "full", full),
    ):
        ev, wall = tier_cost(cost_name, funnel_mask[cost_name])
        ev_all, wall_all = tier_cost(cost_name, np.ones(n, bool) if tier != "expensive" else stable)
        funnel_evals += ev
        funnel_wall += wall
        tiers[tier] = {
            "hit_rate": float(hit[tier].mean()) if n else float("nan"),
            "n_hits": int(hit[tier].sum()),
            "spearman_vs_expensive": spearman(values, full),
            "funnel_candidates": int(funnel_mask[cost_name].sum()),
            "funnel_evals": ev,
            "funnel_wall_s": wall,
            "evals_per_candidate": ev_all / max(1, int(np.sum(values == values))),
            "median_wall_s_per_candidate": wall_all / max(1, n),
        }
    brute_ev = sum(tier_cost(c, np.ones(n, bool))[0] for c in ("relax", "harmonic"))
    brute_ev += tier_cost("full", stable)[0]
    brute_wall = sum(tier_cost(c, np.ones(n, bool))[1] for c in ("relax", "harmonic"))
    brute_wall += tier_cost("full", stable)[1]
    n_exp_hits = int(hit["expensive"].sum())
    return {
        "n_candidates": n,
        "n_stable": int(stable.sum()),
        "tiers": tiers,
        "funnel": {
            "survivors": n_surv,
            "recall_of_expensive_hits": n_surv / n_exp_hits if n_exp_hits else float("nan"),
            "evals_per_survivor": funnel_evals / n_surv if n_surv else float("inf"),
            "wall_s_per_survivor": funnel_wall / n_surv if n_surv else float("inf"),
        },
        "brute_force": {
            "hits": n_exp_hits,
            "evals_per_hit": brute_ev / n_exp_hits if n_exp_hits else float("inf"),
            "wall_s_per_hit": brute_wall / n_exp_hits if n_exp_hits else float("inf"),
        },
    }


def _low_temperature_check(config: Config, stage=uncached_stage) -> list[dict]:
    out = []
    for j, t in enumerate(config.check_temperatures):
        key = jr.fold_in(jr.key(config.seed), 20_000 + j)
        r = _nan(stage(f"fcc_T={t:g}", lambda k=key, t=t: _reference(k, config, t)))
        d = r["full"] - r["harmonic"]
        out.append(
            {
                "temperature": t,
                "anharmonic_per_atom": d,
                "std_err": r["full_std_err"],
                "ratio_to_T2": d / t**2,
            }
        )
        print(
            f"FCC T*={t:g}: (F - F_h)/N = {d:+.6f} ± {r['full_std_err']:.6f}  "
            f"/T^2 = {d / t**2:+.4f}",
            flush=True,
        )
    return out


def _figure(result: dict, config: Config, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    protos = sorted({r["prototype"] for r in rows})
    colors = dict(zip(protos, plt.cm.tab10.colors, strict=False))
    fig, axes = plt.subplots(1, 4, figsize=(17, 4))
    for ax, tier, label in (
        (axes[0], "cheap", "lattice energy $\\Delta u_0$"),
        (axes[1], "middle", "harmonic $\\Delta f_h$"),
    ):
        for p in protos:
            sel = [r for r in rows if r["prototype"] == p and np.isfinite(r["expensive"])]
            if sel:
                ax.errorbar(
                    [r[tier] for r in sel],
                    [r["expensive"] for r in sel],
                    yerr=[r["expensive_std_err"] for r in sel],
                    fmt="o",
                    color=colors[p],
                    label=p,
                )
        rho = result["summary"]["tiers"][tier]["spearman_vs_expensive"]
        ax.axhline(config.threshold, color="k", lw=0.5)
        ax.axvline(config.threshold, color="k", lw=0.5)
        ax.set_xlabel(f"{label} per atom")
        ax.set_ylabel("full (TI) $\\Delta f$ per atom")
        ax.set_title(f"{tier}: Spearman {rho:.3f}")
    axes[0].legend(fontsize=7)
    s = result["summary"]["tiers"]
    names = ["cheap", "middle", "expensive"]
    axes[2].bar(names, [s[n]["funnel_candidates"] for n in names], color="0.7", label="evaluated")
    axes[2].bar(names, [s[n]["n_hits"] for n in names], color="C2", alpha=0.7, label="hits")
    ax2 = axes[2].twinx()
    ax2.plot(names, [s[n]["funnel_evals"] for n in names], "ko-")
    ax2.set_yscale("log")
    ax2.set_ylabel("energy/gradient evaluations (funnel)")
    axes[2].set_ylabel("candidates")
    axes[2].legend(fontsize=7, loc="upper center")
    axes[2].set_title(f"funnel, T*={config.temperature:g}")
    chk = result["low_temperature_check"]
    if chk:
        ts = np.array([c["temperature"] for c in chk])
        axes[3].errorbar(
            ts, [c["anharmonic_per_atom"] for c in chk], yerr=[c["std_err"] for c in chk], fmt="o-"
        )
        axes[3].axhline(0, color="k", lw=0.5)
    axes[3].set_xlabel("$T^*$")
    axes[3].set_ylabel("$(F - F_h)/N$, FCC")
    axes[3].set_title("anharmonic correction → 0 as T → 0")
    save_figure(fig, path, dpi=120)


def run(config: Config, ctx) -> dict:
    """Runner entry point: the reference, every candidate and every low-T check point
    are ``ctx.stage`` calls (a resumed run skips the finished ones)."""
    return main(config, ctx.run_dir, stage=ctx.stage)


def main(
    config: Config | None = None, out_dir: str | pathlib.Path | None = None, stage=uncached_stage
) -> dict:
    """Run the screen and the low-T check; print a table; save the figure and metrics."""
    config = config or Config()
    jax.config.update("jax_enable_x64", True)  # experiment entry point
    t0 = time.perf_counter()
    result = screen(config, stage)
    result["summary"] = _summary(result["rows"], config.threshold)
    result["low_temperature_check"] = _low_temperature_check(config, stage)
    result["wall_s"] = time.perf_counter() - t0
    s = result["summary"]
    print(f"\n{s['n_candidates']} candidates ({s['n_stable']} stable), T*={config.temperature}")
    print(f"{'tier':10s} {'hit rate':>9s} {'Spearman':>9s} {'funnel evals':>13s} {'funnel s':>9s}")
    for name, tier in s["tiers"].items():
        print(
            f"{name:10s} {tier['hit_rate']:9.3f} {tier['spearman_vs_expensive']:9.3f} "
            f"{tier['funnel_evals']:13.0f} {tier['funnel_wall_s']:9.2f}"
        )
    f, b = s["funnel"], s["brute_force"]
    print(
        f"funnel: {f['survivors']} survivors, recall {f['recall_of_expensive_hits']:.2f}, "
        f"{f['evals_per_survivor']:.0f} evals and {f['wall_s_per_survivor']:.2f} s per survivor; "
        f"brute force: {b['evals_per_hit']:.0f} evals and {b['wall_s_per_hit']:.2f} s per hit"
    )
    out = pathlib.Path(out_dir or "results/materials_screening")
    out.mkdir(parents=True, exist_ok=True)
    _figure(result, config, out / "screening.png")
    (out / "metrics.json").write_text(json.dumps(result, indent=2, default=float))
    result["figure"] = str(out / "screening.png")
    return result


if __name__ == "__main__":
    import sys

    main(Config.quick() if "--quick" in sys.argv else None)
