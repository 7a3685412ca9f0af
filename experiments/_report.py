r"""Metrics as JSON and as a markdown report with uncertainties.

An experiment's ``run`` returns a metrics dict. Its values are

* a **leaf**: a number, bool, string or ``None``;
* a **measurement**: ``{"value": x, "std_err": s}`` (see :func:`measurement`), shown as
  ``x ± s`` with the error's two significant digits setting the precision;
* a **group**: a dict of leaves/measurements (flattened to ``group/key`` rows);
* a **table**: a dict of groups, e.g. one row per method, rendered as one markdown table
  whose columns are the union of the rows' keys.

:func:`to_jsonable` turns JAX/NumPy scalars and arrays into plain JSON (non-finite floats
become ``None``, so the files stay standard JSON).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "format_measurement",
    "measurement",
    "nan_mean_over_runs",
    "render_report",
    "save_figure",
    "to_jsonable",
]


def save_figure(fig: Any, path: Any, *, dpi: int) -> None:
    """Lay out a matplotlib figure tightly, write it to ``path`` (creating the folder) and
    close it (the runner's own figures go through ``RunContext.save_figure``)."""
    from pathlib import Path

    import matplotlib.pyplot as plt

    path = Path(path)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def nan_mean_over_runs(a: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error over axis 0 of the finite entries of ``a`` (runs, points).

    A point no run has a value at yet (a regret before the first result) is NaN in both,
    without NumPy's empty-slice warnings; the error uses the count of finite runs there.
    """
    a = np.asarray(a, dtype=float)
    ok = np.isfinite(a)
    n = ok.sum(0)
    total = np.where(ok, a, 0.0).sum(0)
    mean = np.where(n > 0, total / np.maximum(n, 1), np.nan)
    dev = np.where(ok, a - mean, 0.0)
    sd = np.sqrt((dev**2).sum(0) / np.maximum(n, 1))
    return mean, np.where(n > 0, sd / np.sqrt(np.maximum(n, 1)), np.nan)


def measurement(value: Any, std_err: Any) -> dict[str, float | None]:
    """A value with its standard error, as stored in ``metrics.json``."""
    return {"value": _to_float(value), "std_err": _to_float(std_err)}


def _to_float(x: Any) -> float | None:
    f = float(np.asarray(x))
    return f if math.isfinite(f) else None


def to_jsonable(obj: Any) -> Any:
    """Recursively convert JAX/NumPy values, tuples and mappings to plain JSON types."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, str | bool) or obj is None:
        return obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Sequence):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "shape") and hasattr(obj, "dtype"):
        arr = np.asarray(obj)
        if arr.ndim == 0:
            if arr.dtype == np.bool_:
                return bool(arr)
            if np.issubdtype(arr.dtype, np.integer):
                return int(arr)
            return _to_float(arr)
        return [to_jsonable(v) for v in arr]
    if isinstance(obj, np.generic):
        return to_jsonable(np.asarray(obj))
    raise TypeError(f"cannot store a {type(obj).__name__} in metrics.json")


def _is_measurement(v: Any) -> bool:
    return isinstance(v, Mapping) and "value" in v and set(v) <= {"value", "std_err", "unit"}


def _is_leaf(v: Any) -> bool:
    return not isinstance(v, Mapping) or _is_measurement(v)


def _is_table(v: Any) -> bool:
    return (
        isinstance(v, Mapping)
        and len(v) > 0
        and not _is_measurement(v)
        and all(isinstance(r, Mapping) and not _is_measurement(r) for r in v.values())
        and all(_is_leaf(c) for r in v.values() for c in r.values())
    )


def _fmt_number(x: Any) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        return f"{x:.6g}"
    if isinstance(x, list):
        return json.dumps(x)
    return str(x)


def format_measurement(value: float | None, std_err: float | None) -> str:
    """``value ± std_err`` rounded to the error's two significant digits."""
    if value is None:
        return "n/a"
    if std_err is None or std_err <= 0 or not math.isfinite(std_err):
        return _fmt_number(value)
    digits = min(12, max(0, 1 - math.floor(math.log10(std_err))))
    return f"{value:.{digits}f} ± {std_err:.{digits}f}"


def _fmt(v: Any) -> str:
    if _is_measurement(v):
        text = format_measurement(v.get("value"), v.get("std_err"))
        return f"{text} {v['unit']}" if v.get("unit") else text
    return _fmt_number(v)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def render_report(
    *,
    name: str,
    description: str,
    record: Mapping[str, Any],
    metrics: Mapping[str, Any],
    run_info: Mapping[str, Any],
    figures: Sequence[str],
) -> str:
    """The markdown report: run info, config, metrics tables with uncertainties, figures."""
    lines = [f"# {name}", ""]
    if description:
        lines += [description.strip(), ""]
    lines += ["## Run", ""]
    lines += _table(["", ""], [[k, _fmt_number(v)] for k, v in run_info.items()])
    lines += ["", "## Config", ""]
    cfg = dict(record.get("config", {}))
    lines += _table(["key", "value"], [[k, _fmt_number(v)] for k, v in cfg.items()])
    scalars: list[list[str]] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    for key, val in metrics.items():
        if _is_table(val):
            tables.append((key, val))
        elif _is_leaf(val):
            scalars.append([key, _fmt(val)])
        elif isinstance(val, Mapping):
            for sub, sv in val.items():
                scalars.append([f"{key}/{sub}", _fmt(sv) if _is_leaf(sv) else json.dumps(sv)])
    lines += ["", "## Metrics", ""]
    if scalars:
        lines += _table(["metric", "value"], scalars)
        lines.append("")
    for key, tab in tables:
        columns: list[str] = []
        for row in tab.values():
            columns += [c for c in row if c not in columns]
        rows = [[r] + [_fmt(tab[r].get(c)) for c in columns] for r in tab]
        lines += [f"### {key}", ""]
        lines += _table([key, *columns], rows)
        lines.append("")
    lines.append("Uncertainties are one standard error.")
    if figures:
        lines += ["", "## Figures", ""]
        lines += [f"![{f}]({f})" for f in figures]
    return "\n".join(lines) + "\n"
