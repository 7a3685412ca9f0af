r"""The live closed loop on CO₂/N₂ adsorbents: CoRE MOFs through a multi-fidelity twin.

Candidates: the first ``n_candidates`` CoRE MOFs of
:func:`thermo.materials.frameworks.default_screening_set` (fewest atoms first; default 200,
the set ``materials_mof_screen`` screens). The value
of every tier is :math:`\log_{10} S`, :math:`S = K_H^{\mathrm{CO_2}}/K_H^{\mathrm{N_2}}`,
the infinite-dilution CO₂/N₂ selectivity at 313 K (the limit of the 15:85 mixture's
selectivity at low pressure). Tiers, cheap to expensive:

0. ``geometry``: :math:`-\log_{10}(\mathrm{LCD}/\text{Å})` from the Zeo++ descriptors
   shipped with CoRE MOF (smaller cavities overlap the walls' potentials and favour the
   more strongly interacting CO₂); cost: its measured look-up time (about zero).
1. ``widom_lj``: Widom insertion (:func:`thermo.materials.widom`) of CO₂ (García-Sánchez
   2009) and N₂ (Martín-Calvo 2011), UFF framework LJ, no electrostatics,
   ``n_insertions_cheap`` each.
2. ``widom_charged``: the same with ``n_insertions_full`` insertions and framework
   charges (``charges``: EQeq by default, Wilmer, Kim & Snurr 2012, the project's screening
   default; or ``"qeq"``) with Ewald electrostatics where the charges are bounded
   (:math:`\max_i |q_i| \le` ``charge_bound``); elsewhere LJ only (how many were used is
   in the metrics). QEq, unbounded, overshoots the charges of metals (above their formal
   oxidation state in some of these frameworks; chapter 9 has the numbers), and the
   frameworks it overcharges then top the oracle's ranking as artefacts of the charges.
3. ``oracle`` (stands in for the experiment): a different force field, DREIDING LJ for
   H, C, N, O, F, S, Cl, Br, P (Mayo, Olafson & Goddard 1990, *J. Phys. Chem.* 94, 8897,
   Table I) with UFF for the other elements, TraPPE CO₂/N₂ (Potoff & Siepmann 2001), the
   bounded charges scaled by ``oracle_charge_scale`` (a different charge scheme),
   ``n_insertions_full`` insertions, plus Gaussian measurement noise ``oracle_noise`` on
   :math:`\log_{10} S` and a latency ``oracle_latency_s`` charged as cost. The twin is
   never exactly right.

Binary GCMC (``thermo.materials.gcmc``) is not a tier: on 2 shared cores it does not fit
the time of a screen of this size.

**A digital-twin benchmark.** Every tier of every candidate is computed once, in the
``precompute`` stage, into an SQLite :class:`thermo.materials.search.EvaluationStore`
(``<out>/search_live/cache/fidelities_<hash>.sqlite``, keyed by the settings, resumable
evaluation by evaluation; never in git), each charged its measured wall time (including
the JAX compile that each framework's shapes need). The strategies then replay those values
and costs through :func:`thermo.materials.search.replay` over ``n_seeds`` seeds each:
``random``, ``single_fidelity`` (EI on the oracle), ``multi_fidelity`` (autoregressive
co-kriging, cost-aware augmented EI over all tiers) and ``boltzmann`` (the delayed-
acceptance Boltzmann search of :mod:`thermo.materials.search.boltzmann`). The search
stops when the best candidate (by the oracle) has been seen by the oracle; the target is
that this costs at most 10 % of running the oracle on every candidate.

Figures: regret against cumulative cost; hit rate (top-decile recall) and calibration
(Spearman :math:`\rho`, and the coverage of a GP's 90 % interval for the oracle from that
tier in 5-fold cross-validation) of each tier against the oracle; cost per discovery; the
loop's overhead (surrogate fits and acquisition, wall time) as a fraction of the replayed
cost.

``python -m experiments run search_live`` (``--quick``: four pinned candidates, the
geometry tier and the oracle at 1,024 insertions, three strategies, 2 seeds).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Annotated

import numpy as np

from experiments._config import Choices, Count, NonNegative, Positive, Seed
from experiments._report import nan_mean_over_runs
from thermo.materials.search import STRATEGIES

__all__ = [
    "Config",
    "TIERS",
    "evaluate_tier",
    "load_cached",
    "precompute",
    "run",
    "tier_calibration",
]

TIERS = ("geometry", "widom_lj", "widom_charged", "oracle")

#: DREIDING (Mayo, Olafson & Goddard 1990, Table I): element -> (R0 [Å], D0 [kcal/mol]);
#: sigma = R0 / 2^(1/6), epsilon = D0 (converted to K like UFF's).
DREIDING_LJ = {
    "H": (3.195, 0.0152),
    "C": (3.8983, 0.0951),
    "N": (3.6621, 0.0774),
    "O": (3.4046, 0.0957),
    "F": (3.4720, 0.0725),
    "P": (4.1500, 0.3200),
    "S": (4.0300, 0.3440),
    "Cl": (3.9503, 0.2833),
    "Br": (3.9500, 0.3200),
}
#: The first four structures of ``default_screening_set()`` (CoRE MOF 2019-ASR).
QUICK_CANDIDATES = ("HADPOU_clean", "LUFQUZ01_clean", "LUFQUZ02_clean", "LUFQUZ_clean")
_KCAL_PER_MOL_IN_K = 503.2195  # 1 kcal/mol / R, in K (CODATA 2018)


def _known_strategies(value) -> bool:
    return isinstance(value, tuple | list) and len(value) > 0 and set(value) <= set(STRATEGIES)


def _known_tiers(value) -> bool:
    return (
        isinstance(value, tuple | list)
        and len(value) >= 2
        and set(value) <= set(TIERS)
        and value[-1] == "oracle"
        and list(value) == [t for t in TIERS if t in value]
    )


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings (defaults: the full screen).

    Attributes:
        n_candidates: CoRE MOFs, the first of the default screening set (200: all of
            ``materials_mof_screen``'s; the cache is resumable, a smaller screen is a
            prefix of a larger one).
        candidates: CoRE MOF names to screen instead (skips the screening set's pass over
            the whole archive; the quick setting pins the first four of the default set).
        tiers: fidelities used, a cheap-to-expensive subset of :data:`TIERS` ending in
            ``"oracle"``.
        temperature: K.
        n_insertions_cheap: insertions per gas at tier 1.
        n_insertions_full: insertions per gas at tier 2 and the oracle.
        charges: framework charge scheme of the charged tiers, ``"eqeq"`` or ``"qeq"``
            (:func:`thermo.materials.frameworks.framework_charges`).
        charge_bound: largest charge magnitude (e) accepted for a framework.
        oracle_charge_scale: factor on the charges in the oracle.
        oracle_noise: standard deviation of the oracle's noise on log10 S.
        oracle_latency_s: latency of an oracle measurement, charged as cost (s).
        strategies: strategies replayed.
        n_seeds: seeded runs per strategy.
        n_init: initial design size (see :func:`thermo.materials.search.run_loop`).
        precompute_seed: seed of the fidelity computations (fixed, so the cache is shared).
    """

    n_candidates: Count = 200
    candidates: tuple[str, ...] = ()
    tiers: Annotated[tuple[str, ...], Choices(TIERS, accept=_known_tiers)] = (
        "geometry",
        "widom_lj",
        "oracle",
    )
    temperature: Positive = 313.0
    n_insertions_cheap: Count = 2048
    n_insertions_full: Count = 20480
    charges: Annotated[str, Choices(("eqeq", "qeq"))] = "eqeq"
    charge_bound: Positive = 2.0
    oracle_charge_scale: Positive = 0.8
    oracle_noise: NonNegative = 0.05
    oracle_latency_s: NonNegative = 60.0
    strategies: Annotated[tuple[str, ...], Choices(STRATEGIES, accept=_known_strategies)] = (
        STRATEGIES
    )
    n_seeds: Count = 10
    n_init: Count = 3
    precompute_seed: Seed = 20261203

    @classmethod
    def quick(cls) -> Config:
        """Four pinned candidates, geometry and the oracle at 1,024 insertions, 2 seeds (CI)."""
        return cls(
            n_candidates=4,
            candidates=QUICK_CANDIDATES,
            tiers=("geometry", "oracle"),
            n_insertions_cheap=1024,
            n_insertions_full=1024,
            strategies=("random", "multi_fidelity", "boltzmann"),
            n_seeds=2,
            n_init=2,
        )


# -- the fidelities -------------------------------------------------------------------------

_FRAMEWORKS: dict = {}


def _dreiding_parameters() -> dict:
    from thermo.materials import uff_parameters

    out = {k: dict(v) for k, v in uff_parameters().items()}
    for el, (r0, d0) in DREIDING_LJ.items():
        out[el] = {"epsilon": d0 * _KCAL_PER_MOL_IN_K, "sigma": r0 * 2.0 ** (-1.0 / 6.0)}
    return out


def _force_fields(oracle: bool) -> dict:
    from thermo.materials import adsorption_force_field, load_molecule

    frame = _dreiding_parameters() if oracle else "uff"
    model = {"CO2": "trappe", "N2": "trappe"} if oracle else {"CO2": None, "N2": None}
    return {g: adsorption_force_field(load_molecule(g, model[g]), frame) for g in ("CO2", "N2")}


def _bounded_charges(atoms, bound: float, method: str = "eqeq"):
    """Charges by ``method`` if every ``|q| <= bound``, else ``None`` (and the largest ``|q|``).

    A framework the charge model cannot charge runs without charges, like one over the
    bound, with the largest ``|q|`` reported as NaN: one with an element the model has no
    parameters for (EQeq has none for Pt, for one), or one on which the model's energy has
    no minimum (unbounded below at fixed total charge, as EQeq is on a few CoRE MOFs).
    """
    from thermo.materials.frameworks import framework_charges
    from thermo.materials.qeq import ChargeModelError

    try:
        q = np.asarray(framework_charges(atoms, method=method), float)
    except ChargeModelError:
        return None, float("nan")
    qmax = float(np.max(np.abs(q)))
    return (q if np.isfinite(qmax) and qmax <= bound else None), qmax


def evaluate_tier(key, tier: str, name: str, row: dict, atoms, config: Config) -> dict:
    r"""One tier of one MOF: ``{"value": log10 S, ...}`` plus the details of the run.

    ``row`` holds the MOF's descriptors (``LCD`` ...); ``atoms`` its structure.
    """
    if tier == "geometry":
        return {"value": float(-np.log10(row["LCD"]))}
    import jax.random as jr

    from thermo.materials import widom

    oracle = tier == "oracle"
    n_ins = config.n_insertions_cheap if tier == "widom_lj" else config.n_insertions_full
    charges, qmax = (None, float("nan"))
    if tier != "widom_lj":
        charges, qmax = _bounded_charges(atoms, config.charge_bound, config.charges)
        if charges is not None and oracle:
            charges = config.oracle_charge_scale * charges
    ffs = _force_fields(oracle)
    out = {"charged": charges is not None, "max_abs_charge": qmax}
    chunk = 256
    n_blocks = max(4, min(10, n_ins // (8 * chunk)))
    henry = {}
    for i, gas in enumerate(("CO2", "N2")):
        r = widom(
            jr.fold_in(key, i),
            atoms,
            adsorbate=gas,
            temperature=config.temperature,
            n_insertions=n_ins,
            n_blocks=n_blocks,
            chunk_size=chunk,
            force_field=ffs[gas],
            framework_charges=charges,
        )
        henry[gas] = (r.henry_mol_per_kg_pa, r.std_err / max(r.weight, 1e-300))
    ratio = henry["CO2"][0] / henry["N2"][0]
    out["henry_co2_mol_kg_pa"] = henry["CO2"][0]
    out["henry_n2_mol_kg_pa"] = henry["N2"][0]
    # delta method: sd(log10 S) = sqrt(rel_CO2^2 + rel_N2^2) / ln 10
    out["value_sd"] = float(np.hypot(henry["CO2"][1], henry["N2"][1]) / np.log(10.0))
    value = float(np.log10(ratio)) if ratio > 0 and np.isfinite(ratio) else float("nan")
    if oracle and config.oracle_noise > 0:
        rng = np.random.default_rng([config.precompute_seed, int(row["index"])])
        value += config.oracle_noise * float(rng.standard_normal())
    out["value"] = value
    return out


def _precompute_key(config: Config) -> str:
    keep = {
        k: v
        for k, v in dataclasses.asdict(config).items()
        if k
        not in {
            "strategies",
            "n_seeds",
            "n_init",
            "oracle_latency_s",
            "n_candidates",
            "tiers",
        }
    }
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:12]


def precompute(config: Config, cache_dir: Path, *, progress: bool = True, log=print) -> dict:
    """Every tier of every candidate, into the resumable SQLite cache (see module docstring).

    Returns ``{"names", "features" (n, 4), "values" (L, n), "costs" (L, n) [s], "details"}``.
    Rows already in the cache are read, not recomputed; the cache is keyed by the settings
    that change a value (not by ``n_candidates``: a larger screen extends a smaller one).
    """
    import jax.random as jr
    from tqdm.auto import tqdm

    from thermo.materials.frameworks import default_screening_set, load_core_mofs
    from thermo.materials.search import Evaluation, EvaluationStore
    from thermo.materials.search.store import code_version

    cache_dir.mkdir(parents=True, exist_ok=True)
    tag = _precompute_key(config)
    table_path = cache_dir / "screening_set.json"
    n = config.n_candidates
    if config.candidates:
        from thermo.materials.frameworks import core_mof_descriptors

        desc = core_mof_descriptors()
        desc = desc[desc["filename"].isin(list(config.candidates))].set_index("filename")
        missing = sorted(set(config.candidates) - set(desc.index))
        if missing:
            raise ValueError(f"not in the CoRE MOF descriptor table: {missing}")
        cols = ["PLD", "LCD", "LFPD", "AV_VF"]
        table = [
            {"filename": nm, **{k: float(desc.loc[nm, k]) for k in cols}}
            for nm in config.candidates
        ][:n]
    else:
        table = json.loads(table_path.read_text()) if table_path.exists() else []
        if len(table) < n:
            log(f"reading the CoRE MOF screening set ({n} structures; one pass over the archive)")
            df = default_screening_set(max(n, len(table)))
            table = json.loads(df.to_json(orient="records"))
            table_path.write_text(json.dumps(table))
        table = table[:n]
    for i, r in enumerate(table):
        r["index"] = i
    names = [r["filename"] for r in table]
    store = EvaluationStore(cache_dir / f"fidelities_{tag}.sqlite", run=tag)
    done = {(e.candidate, e.fidelity): e for e in store.evaluations()}
    tiers = [TIERS.index(t) for t in config.tiers]
    todo = [(c, t) for c in range(n) for t in tiers if (c, t) not in done]
    need = sorted({names[c] for c, t in todo if TIERS[t] != "geometry"})
    missing = [nm for nm in need if nm not in _FRAMEWORKS]
    if missing:
        _FRAMEWORKS.update(load_core_mofs(missing))
    key = jr.key(config.precompute_seed)
    version = code_version()
    for c, t in tqdm(todo, desc="precompute", disable=not progress):
        t0 = time.perf_counter()
        res = evaluate_tier(
            jr.fold_in(key, c * len(TIERS) + t),
            TIERS[t],
            names[c],
            table[c],
            _FRAMEWORKS.get(names[c]),
            config,
        )
        wall = time.perf_counter() - t0
        res["name"] = names[c]
        e = Evaluation(c, t, res["value"], wall, wall, c * len(TIERS) + t, res, version)
        store.add(e)
        done[(c, t)] = e
    store.close()
    values = np.array([[done[(c, t)].result for c in range(n)] for t in tiers], float)
    costs = np.array([[done[(c, t)].cost for c in range(n)] for t in tiers], float)
    details = [[done[(c, t)].inputs for c in range(n)] for t in tiers]
    feats = np.array([[r["PLD"], r["LCD"], r["LFPD"], r["AV_VF"]] for r in table], float)
    return {"names": names, "features": feats, "values": values, "costs": costs, "details": details}


# -- the replayed search ----------------------------------------------------------------------


def _spearman(a, b) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def tier_calibration(features, values, tiers, key_seed: int = 0) -> dict:
    r"""Each tier against the oracle (the last row of ``values (L, n)``).

    * ``spearman``: rank correlation with the oracle.
    * ``hit_rate``: the fraction of the oracle's top decile (at least 1) in the tier's.
    * ``coverage_90``: 5-fold cross-validation of the two-fidelity autoregressive GP
      (:class:`thermo.materials.search.AutoregressiveGP`) fitted to the tier on every
      candidate and the oracle on the other folds: the fraction of held-out oracle values
      inside its 90 % predictive interval (latent sd and the fitted oracle noise).
    """
    from thermo.materials.search import AutoregressiveGP

    n = values.shape[1]
    top = max(1, round(0.1 * n))
    oracle = values[-1]
    best = set(np.argsort(-oracle)[:top].tolist())
    rng = np.random.default_rng(key_seed)
    folds = np.array_split(rng.permutation(n), min(5, n))
    out = {}
    for k, name in enumerate(tiers[:-1]):
        row = {
            "spearman": _spearman(values[k], oracle),
            "hit_rate": len(best & set(np.argsort(-values[k])[:top].tolist())) / top,
        }
        inside = []
        for fold in folds:
            train = np.setdiff1d(np.arange(n), fold)
            idx = np.concatenate([np.arange(n), train])
            lvl = np.concatenate([np.zeros(n, int), np.ones(len(train), int)])
            y = np.concatenate([values[k], oracle[train]])
            gp = AutoregressiveGP(features, 2).fit(idx, lvl, y)
            mean, sd = gp.predict(1, fold)
            tot = np.sqrt(sd**2 + gp.noise_var()[1])
            inside.extend((np.abs(oracle[fold] - mean) <= 1.6449 * tot).tolist())
        row["coverage_90"] = float(np.mean(inside))
        row["coverage_90_std_err"] = float(np.sqrt(0.9 * 0.1 / n))
        out[name] = row
    return out


def _one(key, strategy, data, n_init):
    from thermo.materials.search import replay

    v, c = data["values"], data["costs"]
    best = int(np.argmax(v[-1]))
    r = replay(
        key,
        data["features"],
        v,
        c,
        budget=1e12,
        strategy=strategy,
        stop_index=best,
        n_init=n_init,
        # the design and cost rule its figures were measured with (run_loop's defaults are
        # design="cheap" and cost_model=False)
        design="all",
        cost_model=True,
    )
    top = len(v) - 1
    decile = set(np.argsort(-v[-1])[: max(1, round(0.1 * v.shape[1]))].tolist())
    seen, regret = [], []
    for i, lv in r.history:
        if lv == top:
            seen.append(v[top, i])
        regret.append(float(v[top, best] - max(seen)) if seen else float("nan"))
    return {
        "cost_to_find_s": float(r.cost[-1]),
        "n_evaluations": len(r.history),
        "n_top": sum(1 for _, lv in r.history if lv == top),
        "n_discoveries": len({i for i, lv in r.history if lv == top} & decile),
        "overhead_s": r.overhead_seconds,
        "curve_cost": r.cost.tolist(),
        "curve_regret": regret,
    }


def run(config: Config, ctx) -> dict:
    """Precompute the tiers (cached), replay every strategy over ``n_seeds`` seeds; figures."""
    import jax.random as jr
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cache = Path(ctx.run_dir).parents[1] / "search_live" / "cache"
    t0 = time.perf_counter()
    data = precompute(config, cache, progress=ctx.progress, log=ctx.log)
    ctx.timings["precompute_s"] = time.perf_counter() - t0
    v = data["values"]
    c = data["costs"].copy()
    c[-1] += config.oracle_latency_s
    keep = np.all(np.isfinite(v), axis=0)
    dropped = [nm for nm, k in zip(data["names"], keep, strict=True) if not k]
    data = {
        "features": data["features"][keep],
        "values": v[:, keep],
        "costs": c[:, keep],
        "names": [nm for nm, k in zip(data["names"], keep, strict=True) if k],
    }
    n = len(data["names"])
    v, c = data["values"], data["costs"]
    best = int(np.argmax(v[-1]))
    full_cost = float(c[-1].sum())
    calib = ctx.stage("calibration", lambda: tier_calibration(data["features"], v, config.tiers))
    rows = {}
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 3.8))
    grid = np.geomspace(max(c.min(), 1e-3), c.sum(), 300)
    for si, strat in enumerate(config.strategies):
        runs = [
            ctx.stage(
                f"{strat}_{s}",
                lambda s=s, strat=strat, si=si: _one(
                    jr.fold_in(jr.fold_in(ctx.key, si), s), strat, data, config.n_init
                ),
            )
            for s in range(config.n_seeds)
        ]
        cost = np.array([r["cost_to_find_s"] for r in runs])
        se = float(cost.std(ddof=1) / np.sqrt(len(cost))) if len(cost) > 1 else float("nan")
        disc = np.array([r["n_discoveries"] for r in runs], float)
        rows[strat] = {
            "mean_cost_to_find_s": float(cost.mean()),
            "std_err_s": se,
            "fraction_of_full_oracle_cost": float(cost.mean() / full_cost),
            "fraction_std_err": se / full_cost,
            "median_fraction": float(np.median(cost) / full_cost),
            "fraction_of_runs_within_10pct": float(np.mean(cost <= 0.1 * full_cost)),
            "mean_evaluations": float(np.mean([r["n_evaluations"] for r in runs])),
            "mean_oracle_evaluations": float(np.mean([r["n_top"] for r in runs])),
            "cost_per_discovery_s": float(cost.sum() / max(disc.sum(), 1.0)),
            "overhead_fraction": float(sum(r["overhead_s"] for r in runs) / cost.sum()),
        }
        reg = np.array(
            [
                # before the first oracle result the regret is undefined (stored as None)
                np.interp(grid, r["curve_cost"], np.array(r["curve_regret"], float), left=np.nan)
                for r in runs
            ]
        )
        reg = np.where(
            grid[None, :] > np.array([r["curve_cost"][-1] for r in runs])[:, None], 0.0, reg
        )
        m, s = nan_mean_over_runs(reg)
        (line,) = ax.plot(grid, m, label=strat)
        ax.fill_between(grid, m - s, m + s, color=line.get_color(), alpha=0.2)
    ax.axvline(0.1 * full_cost, color="k", ls=":", lw=1, label="10 % of oracle on all")
    ax.set_xscale("log")
    ax.set_xlabel("cumulative cost [s]")
    ax.set_ylabel(r"regret ($\log_{10} S$, oracle)")
    ax.legend(fontsize=8)
    names = list(calib)
    xs = np.arange(len(names))
    bx.bar(xs - 0.27, [calib[k]["spearman"] for k in names], 0.27, label="Spearman vs oracle")
    bx.bar(xs, [calib[k]["hit_rate"] for k in names], 0.27, label="top-decile hit rate")
    bx.bar(xs + 0.27, [calib[k]["coverage_90"] for k in names], 0.27, label="GP 90 % coverage")
    bx.axhline(0.9, color="k", ls=":", lw=1)
    bx.set_xticks(xs, names)
    bx.legend(fontsize=8)
    ctx.save_figure(fig, "regret_and_calibration")
    return {
        "n_candidates": n,
        "dropped_non_finite": dropped,
        "tiers": list(config.tiers),
        "best_candidate": data["names"][best],
        "best_oracle_log10_selectivity": float(v[-1, best]),
        "mean_cost_per_tier_s": {t: float(c[k].mean()) for k, t in enumerate(config.tiers)},
        "full_oracle_cost_s": full_cost,
        "target_fraction": 0.1,
        "calibration": calib,
        "strategies": rows,
        "n_seeds": config.n_seeds,
    }


def load_cached(cache_dir: Path | None = None, tiers=("geometry", "widom_lj", "oracle")):
    """The largest screen in a fidelity cache with every tier of ``tiers`` complete.

    Looks in ``cache_dir`` (default ``results/search_live/cache`` under the project root) and
    returns ``{"names", "features", "values" (L, n), "costs" (L, n) [s]}`` over the
    complete candidates in index order (the oracle's latency not added), or ``None`` when
    there is no cache (a fresh clone).
    """
    from thermo.materials.search import EvaluationStore

    root = Path(__file__).resolve().parents[1]
    cache_dir = Path(cache_dir) if cache_dir is not None else root / "results/search_live/cache"
    table_path = cache_dir / "screening_set.json"
    if not table_path.exists():
        return None
    table = json.loads(table_path.read_text())
    want = [TIERS.index(t) for t in tiers]
    best = None
    for path in sorted(cache_dir.glob("fidelities_*.sqlite")):
        st = EvaluationStore(path, run=path.stem.split("_", 1)[1])
        got = {(e.candidate, e.fidelity): e for e in st.evaluations()}
        st.close()
        n = 0
        while n < len(table) and all((n, t) in got for t in want):
            if got[(n, want[0])].inputs.get("name", table[n]["filename"]) != table[n]["filename"]:
                break
            n += 1
        if n >= 2 and (best is None or n > best[0]):
            best = (n, got)
    if best is None:
        return None
    n, got = best
    return {
        "names": [r["filename"] for r in table[:n]],
        "features": np.array(
            [[r["PLD"], r["LCD"], r["LFPD"], r["AV_VF"]] for r in table[:n]], float
        ),
        "values": np.array([[got[(c, t)].result for c in range(n)] for t in want], float),
        "costs": np.array([[got[(c, t)].cost for c in range(n)] for t in want], float),
    }
