"""An SQLite store of evaluations, written one row per finished evaluation.

Each row: run name, candidate, fidelity, inputs (JSON), result, cost, wall time, seed, code
version, finish time. ``UNIQUE(run, candidate, fidelity)`` makes a second evaluation of the
same pair an error, so a resumed loop can never evaluate anything twice.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from typing import NamedTuple

__all__ = ["Evaluation", "EvaluationStore", "code_version"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run TEXT NOT NULL,
    candidate INTEGER NOT NULL,
    fidelity INTEGER NOT NULL,
    inputs TEXT NOT NULL,
    result REAL NOT NULL,
    cost REAL NOT NULL,
    wall_time REAL NOT NULL,
    seed INTEGER NOT NULL,
    code_version TEXT NOT NULL,
    finished_at REAL NOT NULL,
    UNIQUE (run, candidate, fidelity)
)
"""


@functools.cache
def code_version() -> str:
    """The installed ``stochthermo`` version, with the git commit where the code runs from
    a checkout: ``"0.1.0+g<12 hex>"``, ``".dirty"`` appended when tracked files differ
    from that commit (``"unknown"`` outside an install). An evaluation store then says which
    code produced each stored value."""
    from thermo._git import git_info

    try:
        from importlib.metadata import version

        out = version("stochthermo")
    except Exception:  # noqa: BLE001
        out = "unknown"
    git = git_info()
    if git["commit"]:
        out += f"+g{git['commit'][:12]}" + (".dirty" if git["dirty"] else "")
    return out


class Evaluation(NamedTuple):
    """One stored evaluation."""

    candidate: int
    fidelity: int
    result: float
    cost: float
    wall_time: float
    seed: int
    inputs: dict
    code_version: str


class EvaluationStore:
    """Evaluations of one or more named runs in an SQLite file (``":memory:"`` for none).

    Every :meth:`add` commits, so a killed process loses nothing that :meth:`add` returned.
    """

    def __init__(self, path: str = ":memory:", run: str = "default"):
        self.path, self.run = str(path), run
        self._con = sqlite3.connect(self.path, timeout=30.0)
        if self.path != ":memory:":
            self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute(_SCHEMA)
        self._con.commit()

    def add(self, e: Evaluation) -> None:
        """Insert and commit; raises ``ValueError`` if the pair is already stored."""
        try:
            self._con.execute(
                "INSERT INTO evaluations (run, candidate, fidelity, inputs, result, cost,"
                " wall_time, seed, code_version, finished_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    self.run,
                    int(e.candidate),
                    int(e.fidelity),
                    json.dumps(e.inputs),
                    float(e.result),
                    float(e.cost),
                    float(e.wall_time),
                    int(e.seed),
                    e.code_version,
                    time.time(),
                ),
            )
            self._con.commit()
        except sqlite3.IntegrityError as err:
            self._con.rollback()
            raise ValueError(
                f"candidate {e.candidate} at fidelity {e.fidelity} is already stored in run "
                f"{self.run!r}"
            ) from err

    def evaluations(self) -> list[Evaluation]:
        """This run's evaluations in the order they finished."""
        rows = self._con.execute(
            "SELECT candidate, fidelity, result, cost, wall_time, seed, inputs, code_version"
            " FROM evaluations WHERE run = ? ORDER BY id",
            (self.run,),
        ).fetchall()
        return [
            Evaluation(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[7]) for r in rows
        ]

    def __len__(self) -> int:
        return self._con.execute(
            "SELECT COUNT(*) FROM evaluations WHERE run = ?", (self.run,)
        ).fetchone()[0]

    def close(self) -> None:
        """Close the connection."""
        self._con.close()
