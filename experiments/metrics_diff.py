"""Every registered experiment's quick metrics, and their difference between two commits.

``python -m experiments.metrics_diff record OUT.json [NAME ...]`` runs each registered
experiment (or the named ones) with ``--quick`` and seed 0 in a temporary results folder
and writes ``{name: metrics}``; ``python -m experiments.metrics_diff compare BEFORE.json
AFTER.json`` prints a Markdown table: for each experiment, how many scalar metrics are
bitwise equal, and the largest relative change of the others with its metric. Timings
(wall/CPU seconds, rates, overhead fractions) are left out: they differ on every run. This is the
check a refactor must pass ("default metrics unchanged: bitwise where the random stream is
unchanged, otherwise within the standard errors"): record on the old commit, record on the
new one, compare.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import tempfile
from pathlib import Path

__all__ = ["compare", "flatten", "record"]


def flatten(tree, prefix: str = "") -> dict[str, float]:
    """Scalar leaves of a nested metrics dict as ``{"a.b.0": value}`` (numbers only)."""
    out: dict[str, float] = {}
    if isinstance(tree, dict):
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(tree, list | tuple):
        for i, v in enumerate(tree):
            out.update(flatten(v, f"{prefix}{i}."))
    elif isinstance(tree, bool):
        out[prefix[:-1]] = float(tree)
    elif isinstance(tree, int | float):
        out[prefix[:-1]] = float(tree)
    return out


def record(path: str | Path, names: list[str] | None = None) -> dict:
    """Run the experiments (quick, seed 0) and write ``{name: metrics or error}``."""
    from . import registry
    from ._runner import run_experiment

    names = names or registry.names()
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            print(f"== {name}", flush=True)
            try:
                res = run_experiment(name, quick=True, seed=0, out=Path(tmp), progress=False)
                result[name] = {"metrics": res.metrics}
            except Exception as err:  # one failing experiment must not stop the others
                result[name] = {"error": f"{type(err).__name__}: {err}"}
            Path(path).write_text(json.dumps(result, indent=1, default=float))
    return result


_TIMING = re.compile(r"(wall|seconds|cpu|per_s|overhead|(^|_)s$|(^|_)s_)")


def _is_timing(key: str) -> bool:
    """Wall/CPU times, rates and overhead fractions: they differ on every run."""
    return bool(_TIMING.search(key.rsplit(".", 1)[-1])) or ".wall_s." in f".{key}."


def _rel(a: float, b: float) -> float:
    if a == b or (math.isnan(a) and math.isnan(b)):
        return 0.0
    return abs(a - b) / max(abs(a), abs(b), 1e-300)


def compare(before: dict, after: dict) -> str:
    """A Markdown table of the differences between two :func:`record` outputs."""
    rows = [
        "| experiment | metrics (timings left out) | bitwise equal "
        "| largest relative change (metric) |"
    ]
    rows.append("| --- | --- | --- | --- |")
    for name in sorted(set(before) | set(after)):
        b, a = before.get(name, {}), after.get(name, {})
        if "metrics" not in b or "metrics" not in a:
            why = b.get("error") or a.get("error") or "missing on one side"
            rows.append(f"| {name} | – | – | {why} |")
            continue
        fb, fa = flatten(b["metrics"]), flatten(a["metrics"])
        timing = {k for k in set(fb) | set(fa) if _is_timing(k)}
        common = sorted((set(fb) & set(fa)) - timing)
        equal = sum(fb[k] == fa[k] or (math.isnan(fb[k]) and math.isnan(fa[k])) for k in common)
        worst = max(common, key=lambda k: _rel(fb[k], fa[k]), default=None)
        change = (
            "none"
            if worst is None or _rel(fb[worst], fa[worst]) == 0
            else (f"{_rel(fb[worst], fa[worst]):.2e} ({worst}: {fb[worst]:.6g} → {fa[worst]:.6g})")
        )
        extra = len((set(fb) ^ set(fa)) - timing)
        note = f"; {extra} metrics on one side only" if extra else ""
        rows.append(f"| {name} | {len(common)} | {equal} | {change}{note} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.metrics_diff")
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record", help="run every experiment quick and write its metrics")
    r.add_argument("out")
    r.add_argument("names", nargs="*")
    c = sub.add_parser("compare", help="compare two records")
    c.add_argument("before")
    c.add_argument("after")
    args = parser.parse_args(argv)
    if args.cmd == "record":
        record(args.out, args.names or None)
        return 0
    for p in (args.before, args.after):
        if not Path(p).is_file():
            print(f"metrics_diff: {p} does not exist", file=sys.stderr)
            return 2
    before = json.loads(Path(args.before).read_text())
    after = json.loads(Path(args.after).read_text())
    print(compare(before, after))
    return 0


if __name__ == "__main__":
    sys.exit(main())
