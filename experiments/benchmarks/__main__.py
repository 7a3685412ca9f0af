"""Benchmark runner: ``python -m experiments.benchmarks [NAME ...] [--quick] [--out DIR]``.

Discovers the modules ``experiments/benchmarks/bench_*.py``; each has
``main(quick: bool = False) -> dict`` that times ours against a peer in the same run and
prints its own table. The runner runs the selected ones (all by default), writes
``<out>/benchmarks/<name>.json`` (the result, the wall time and the provenance: git
commit and dirty flag, package versions, JAX devices) plus a timestamped copy under
``<out>/benchmarks/history/`` so that earlier results are never lost, and prints a
summary. A benchmark that raises is reported and the others still run; the exit status
is then 1.

A module that sets ``IN_DEFAULT_RUN = False`` (one that needs tens of GB of disk or an
hour, such as the out-of-core MBAR run) is left out of the default set (``make bench``)
and runs when named or with ``--all``; ``--list`` marks those modules.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import pkgutil
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["discover", "main", "run_benchmarks"]

_PACKAGE = "experiments.benchmarks"


def discover(package: str = _PACKAGE) -> dict[str, str]:
    """``{short name: module path}`` for every ``bench_*`` module in ``package``."""
    pkg = importlib.import_module(package)
    found = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("bench_") and not info.ispkg:
            found[info.name.removeprefix("bench_")] = f"{package}.{info.name}"
    return dict(sorted(found.items()))


def in_default_run(module: str) -> bool:
    """Whether ``module`` runs when no benchmark is named (its ``IN_DEFAULT_RUN``)."""
    return bool(getattr(importlib.import_module(module), "IN_DEFAULT_RUN", True))


def _resolve(names: Sequence[str], available: dict[str, str], run_all: bool = False) -> list[str]:
    chosen = []
    for name in names:
        short = name.removeprefix("bench_").removesuffix(".py")
        if short not in available:
            raise SystemExit(
                f"error: unknown benchmark {name!r}; available: {', '.join(available) or 'none'}"
            )
        chosen.append(short)
    if chosen or run_all:
        return chosen or list(available)
    return [name for name, module in available.items() if in_default_run(module)]


def run_benchmarks(
    names: Sequence[str] = (),
    *,
    quick: bool = False,
    out: str | Path = "results",
    package: str = _PACKAGE,
    run_all: bool = False,
) -> dict[str, dict[str, Any]]:
    """Run benchmarks (the named ones; else the default set, or all with ``run_all``)
    and write their JSON; returns ``{name: record}``.

    Each record is ``{"name", "module", "quick", "status" ("ok"/"error"), "wall_time_s",
    "result" (the module's dict) or "error", "provenance"}``.
    """
    import jax

    from .._provenance import provenance
    from .._report import to_jsonable
    from .._runner import write_json_atomic

    available = discover(package)
    chosen = _resolve(names, available, run_all)
    out_dir = Path(out) / "benchmarks"
    (out_dir / "history").mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_enable_x64", True)
    records = {}
    for name in chosen:
        print(f"== benchmark {name} ({'quick' if quick else 'full'})", flush=True)
        record: dict[str, Any] = {"name": name, "module": available[name], "quick": bool(quick)}
        t0 = time.perf_counter()
        try:
            mod = importlib.import_module(available[name])
            result = mod.main(quick=quick)
            record["result"] = to_jsonable(result)
            record["status"] = "ok"
        except Exception as err:  # one failing benchmark must not stop the others
            traceback.print_exc()
            record["status"] = "error"
            record["error"] = f"{type(err).__name__}: {err}"
        record["wall_time_s"] = time.perf_counter() - t0
        record["finished"] = _dt.datetime.now(_dt.UTC).isoformat()
        record["provenance"] = provenance()
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        write_json_atomic(out_dir / "history" / f"{name}-{stamp}.json", record)
        write_json_atomic(out_dir / f"{name}.json", record)
        records[name] = record
    return records


def _print_summary(records: dict[str, dict[str, Any]]) -> None:
    print("\n| benchmark | status | wall time (s) |")
    print("| --- | --- | --- |")
    for name, rec in records.items():
        status = rec["status"] if rec["status"] == "ok" else f"error: {rec['error']}"
        print(f"| {name} | {status} | {rec['wall_time_s']:.1f} |")


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; exit status 1 if any benchmark failed."""
    parser = argparse.ArgumentParser(prog="python -m experiments.benchmarks")
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--out", default="results", help="results root (default results/)")
    parser.add_argument(
        "--all", action="store_true", help="also the large ones left out of the default set"
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, module in discover().items():
            note = "" if in_default_run(module) else "  (large: only when named or --all)"
            print(f"{name:28s} {module}{note}")
        return 0
    records = run_benchmarks(args.names, quick=args.quick, out=args.out, run_all=args.all)
    if not records:
        print("no benchmarks found (experiments/benchmarks/bench_*.py)")
        return 0
    _print_summary(records)
    return 0 if all(r["status"] == "ok" for r in records.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
