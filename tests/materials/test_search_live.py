"""The live loop's fidelity cache (experiments/search_live.py): killed, it resumes, loses
nothing and evaluates nothing twice.

The physics of the tiers (Widom insertions, seconds each) is swapped for a deterministic
function of ``(candidate, tier)`` with a fixed delay: what is tested is the cache's
resume path, which is the experiment's own code.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("CoRE_MOF")

_CHILD = textwrap.dedent(
    """
    import sys, time, dataclasses
    sys.path.insert(0, {root!r})
    from pathlib import Path
    import experiments.search_live as live

    def fake(key, tier, name, row, atoms, config):
        time.sleep({delay})
        return {{"value": float(row["index"] * 10 + live.TIERS.index(tier)) + 0.5}}

    live.evaluate_tier = fake
    live._FRAMEWORKS.update({{n: None for n in live.QUICK_CANDIDATES}})
    cfg = dataclasses.replace(
        live.Config.quick(), tiers=("geometry", "widom_lj", "oracle"), precompute_seed=7
    )
    out = live.precompute(cfg, Path({cache!r}), progress=False, log=lambda m: None)
    print(out["values"].tolist())
    """
)


def _store(cache: Path):
    from thermo.materials.search import EvaluationStore

    files = sorted(cache.glob("fidelities_*.sqlite"))
    if not files:
        return []
    return EvaluationStore(files[0], run=files[0].stem.split("_", 1)[1]).evaluations()


def test_precompute_cache_kill_and_resume(tmp_path):
    root = str(Path(__file__).resolve().parents[2])
    cache = tmp_path / "cache"
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD.format(root=root, cache=str(cache), delay=0.5)],
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    t0 = time.time()
    while time.time() - t0 < 120 and len(_store(cache)) < 3:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    before = _store(cache)
    assert 3 <= len(before) < 12, len(before)
    done = subprocess.run(
        [sys.executable, "-c", _CHILD.format(root=root, cache=str(cache), delay=0.0)],
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        check=True,
    )
    after = _store(cache)
    assert after[: len(before)] == before  # nothing lost
    pairs = [(e.candidate, e.fidelity) for e in after]
    assert len(pairs) == 12 and len(set(pairs)) == 12  # complete, nothing twice
    values = np.array(eval(done.stdout.strip().splitlines()[-1]))  # noqa: S307
    expected = np.array([[c * 10 + t + 0.5 for c in range(4)] for t in (0, 1, 3)])
    np.testing.assert_array_equal(values, expected)
    assert all(e.inputs["name"] for e in after)


def test_charges_where_the_charge_model_cannot_charge(monkeypatch):
    """A framework with an element the charge model has no parameters for, or on which the
    model is unbounded below, runs without charges (like one over the bound); any other
    error of the charge model is raised, not hidden."""
    import ase

    import thermo.materials.frameworks as fw
    from experiments.search_live import _bounded_charges
    from thermo.materials.qeq import ChargeModelError

    atoms = ase.Atoms("ZnO2", positions=np.eye(3), cell=5.0 * np.eye(3), pbc=True)

    def charges(message, error=ChargeModelError):
        def fn(atoms, method):
            if message:
                raise error(message)
            return np.array([0.5, -1.5, 1.0]) if method == "eqeq" else np.array([3.0, -3.0])

        return fn

    monkeypatch.setattr(fw, "framework_charges", charges(None))
    q, qmax = _bounded_charges(atoms, 2.0, "eqeq")
    np.testing.assert_array_equal(q, [0.5, -1.5, 1.0])
    assert qmax == 1.5
    assert _bounded_charges(atoms, 2.0, "qeq") == (None, 3.0)  # over the bound
    monkeypatch.undo()  # the real EQeq, which has no parameters for Pt
    pt = ase.Atoms("PtO2", positions=np.eye(3), cell=5.0 * np.eye(3), pbc=True)
    q, qmax = _bounded_charges(pt, 2.0, "eqeq")
    assert q is None and np.isnan(qmax)
    monkeypatch.setattr(fw, "framework_charges", charges("energy is unbounded below at ..."))
    q, qmax = _bounded_charges(atoms, 2.0, "eqeq")
    assert q is None and np.isnan(qmax)
    monkeypatch.setattr(fw, "framework_charges", charges("positions must be finite", ValueError))
    with pytest.raises(ValueError, match="finite"):
        _bounded_charges(atoms, 2.0, "eqeq")
