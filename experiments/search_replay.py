r"""Replay of a published multi-fidelity materials search: 608 COFs for Xe/Kr separation.

Gantzler, Deshwal, Doppa & Simon (2023, *Digital Discovery*) computed a cheap fidelity (Henry
selectivity) and an expensive one (binary GCMC selectivity) for every COF, with the wall time
of each calculation, and report the mean cost to acquire the top COF at the top fidelity:
multi-fidelity BO 48.0 h, single-fidelity BO 237.6 h, random 1,176 h. Each strategy of
:func:`thermo.materials.search.replay` is run over seeded replays; each evaluation returns
the stored value and is charged the stored wall time.

The data (``../shared/data/benchmarks/cof_xe_kr/cofs.csv``, or
``$STOCHTHERMO_SHARED_DATA/benchmarks/cof_xe_kr/cofs.csv``) is not part of the project. When
it is absent the experiment says so and replays a synthetic two-fidelity library made in
code instead (``"data": "synthetic"`` in the metrics), so the pipeline still runs.
"""

import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Annotated

import jax
import jax.random as jr
import numpy as np

from experiments._config import Choices, Count, Seed
from experiments._runner import uncached_stage
from thermo.materials.search import STRATEGIES, random_search_expected_cost, replay

__all__ = ["Config", "PUBLISHED_HOURS", "load_cofs", "main", "run"]

#: Mean cost (hours) to acquire the top COF, Gantzler et al. 2023 (via the data's README).
PUBLISHED_HOURS = {"multi_fidelity": 48.0, "single_fidelity": 237.6, "random": 1176.0}


def _known_strategies(value) -> bool:
    return isinstance(value, tuple | list) and len(value) > 0 and set(value) <= set(STRATEGIES)


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings.

    Attributes:
        seed: PRNG seed (replay ``s`` uses ``fold_in(key, s)``).
        n_seeds: replays per model-based strategy.
        n_random_seeds: replays of random search (cheap; no surrogate).
        strategies: the strategies to replay.
        n_init: initial random candidates of the model-based strategies.
        data: ``"auto"`` (the published COF data when present, else synthetic) or
            ``"synthetic"`` (the small library made in code; the CI setting).
    """

    seed: Seed = 20261202
    n_seeds: Count = 30
    n_random_seeds: Count = 300
    strategies: Annotated[tuple, Choices(STRATEGIES, accept=_known_strategies)] = STRATEGIES
    n_init: Count = 3
    data: Annotated[str, Choices(("auto", "synthetic"))] = "auto"

    @classmethod
    def quick(cls) -> "Config":
        """A CI-sized setting: one replay per strategy on the synthetic library."""
        return cls(
            n_seeds=1, n_random_seeds=20, strategies=("random", "multi_fidelity"), data="synthetic"
        )


def _shared_path() -> Path:
    root = os.environ.get("STOCHTHERMO_SHARED_DATA")
    base = Path(root) if root else Path(__file__).resolve().parents[2] / "shared" / "data"
    return base / "benchmarks" / "cof_xe_kr" / "cofs.csv"


def load_cofs(path: Path | str):
    """Features ``(608, 14)``, values and costs ``(2, 608)`` (costs in hours), names."""
    import csv

    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    col = {h: i for i, h in enumerate(header)}
    feat = header[1:15]
    x = np.array([[float(r[col[h]]) for h in feat] for r in body])
    vals = np.array(
        [[float(r[col[k]]) for r in body] for k in ("henry_selectivity", "gcmc_selectivity")]
    )
    costs = np.array(
        [[float(r[col[k]]) / 60.0 for r in body] for k in ("henry_minutes", "gcmc_minutes")]
    )
    return x, vals, costs, [r[0] for r in body]


def _synthetic(n: int = 40, seed: int = 0):
    """A two-fidelity library with a correlated cheap tier (costs 1 and ~13 units)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    hi = np.exp(0.7 * x[:, 0] - 0.4 * x[:, 1] ** 2 + 0.3 * x[:, 2])
    lo = hi * np.exp(0.25 * rng.normal(size=n))
    costs = np.stack([rng.uniform(0.1, 0.4, n), rng.uniform(1.5, 5.0, n)])
    return x, np.stack([lo, hi]), costs, [f"synthetic-{i}" for i in range(n)]


def _replays(config, x, vals, costs, strategy, top) -> dict:
    n = config.n_random_seeds if strategy == "random" else config.n_seeds
    key = jr.fold_in(jr.key(config.seed), STRATEGIES.index(strategy))
    out, curves = [], []
    t0 = time.perf_counter()
    overhead = 0.0
    for s in range(n):
        res = replay(
            jr.fold_in(key, s),
            x,
            vals,
            costs,
            budget=math.inf,
            strategy=strategy,
            n_init=config.n_init,
            stop_index=top,
        )
        out.append(res.cost_to_acquire(top))
        overhead += res.overhead_seconds
        best = np.maximum.accumulate(
            [
                v if f == vals.shape[0] - 1 else -np.inf
                for (_, f), v in zip(res.history, res.values, strict=True)
            ]
        )
        curves.append({"cost": res.cost.tolist(), "best": best.tolist()})
    c = np.asarray(out)
    evaluated = float(np.sum(c))
    return {
        "mean_cost": float(c.mean()),
        "std_err": float(c.std(ddof=1) / math.sqrt(c.size)) if c.size > 1 else float("nan"),
        "median_cost": float(np.median(c)),
        "n_replays": int(c.size),
        "costs": c.tolist(),
        "planner_seconds": overhead,
        "overhead_fraction_of_evaluation_cost": overhead / 3600.0 / evaluated if evaluated else 0.0,
        "wall_s": time.perf_counter() - t0,
        "curves": curves[:10],
    }


def main(config: Config | None = None, stage=uncached_stage, save_figure=None) -> dict:
    """Replay every strategy; print the table against the published costs."""
    config = config or Config()
    jax.config.update("jax_enable_x64", True)  # experiment entry point, not library code
    path = _shared_path()
    if config.data == "auto" and path.exists():
        x, vals, costs, names = load_cofs(path)
        data = "published"
    else:
        if config.data == "auto":
            print(
                f"note: {path} is absent (set STOCHTHERMO_SHARED_DATA to the shared data folder); "
                "replaying a synthetic two-fidelity library instead"
            )
        x, vals, costs, names = _synthetic()
        data = "synthetic"
    top = int(np.argmax(vals[-1]))
    out = {
        "data": data,
        "top_candidate": names[top],
        "random_exact_mean_cost": random_search_expected_cost(costs[-1], top),
        "strategies": {},
    }
    print(f"{'strategy':>16} {'mean cost (h)':>18} {'published':>10} {'replays':>8}")
    for strategy in config.strategies:
        res = stage(strategy, lambda s=strategy: _replays(config, x, vals, costs, s, top))
        pub = PUBLISHED_HOURS.get(strategy) if data == "published" else None
        res["published_mean_cost"] = pub
        out["strategies"][strategy] = res
        print(
            f"{strategy:>16} {res['mean_cost']:10.1f} +- {_num(res['std_err']):5.1f} "
            f"{_num(pub):10.1f} {res['n_replays']:8d}",
            flush=True,
        )
    if save_figure is not None:
        save_figure(_figure(out), "regret_vs_cost")
    return out


def _num(v) -> float:
    return float("nan") if v is None else float(v)


def _figure(out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for k, (name, res) in enumerate(out["strategies"].items()):
        for j, cur in enumerate(res["curves"]):
            best = np.array([np.nan if b is None else b for b in cur["best"]], dtype=float)
            ok = np.isfinite(best)
            ax.step(
                np.asarray(cur["cost"])[ok],
                best[ok],
                where="post",
                color=f"C{k}",
                alpha=0.5,
                label=name if j == 0 else None,
            )
    ax.set_xscale("log")
    ax.set_xlabel("cumulative cost")
    ax.set_ylabel("best top-fidelity value found")
    ax.legend()
    fig.tight_layout()
    return fig


def run(config: Config, ctx=None) -> dict:
    """Runner entry point: each strategy is a ``ctx.stage``; the figure goes to the run dir."""
    if ctx is None:
        return main(config)
    return main(config, ctx.stage, ctx.save_figure)
