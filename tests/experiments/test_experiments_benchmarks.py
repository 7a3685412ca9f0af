"""The benchmark runner: discovery of ``bench_*`` modules, JSON output, failure isolation."""

from __future__ import annotations

import json
import textwrap

import pytest

from experiments.benchmarks.__main__ import discover, run_benchmarks


@pytest.fixture
def bench_package(tmp_path, monkeypatch):
    pkg = tmp_path / "fake_bench_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "bench_ok.py").write_text(
        textwrap.dedent(
            """
            import numpy as np

            def main(quick: bool = False) -> dict:
                n = 10 if quick else 1000
                return {"n": n, "ratio": np.float64(1.5), "times": np.arange(3.0)}
            """
        )
    )
    (pkg / "bench_broken.py").write_text("def main(quick=False):\n    raise RuntimeError('boom')\n")
    (pkg / "bench_large.py").write_text(
        "IN_DEFAULT_RUN = False\ndef main(quick=False):\n    return {}\n"
    )
    (pkg / "helper.py").write_text("X = 1\n")  # not a benchmark
    monkeypatch.syspath_prepend(str(tmp_path))
    return "fake_bench_pkg"


def test_discovers_only_bench_modules(bench_package):
    assert discover(bench_package) == {
        "broken": "fake_bench_pkg.bench_broken",
        "large": "fake_bench_pkg.bench_large",
        "ok": "fake_bench_pkg.bench_ok",
    }


def test_large_benchmarks_run_only_when_named_or_all(bench_package, tmp_path):
    assert set(run_benchmarks(out=tmp_path, package=bench_package)) == {"broken", "ok"}
    assert set(run_benchmarks(["large"], out=tmp_path, package=bench_package)) == {"large"}
    every = run_benchmarks(out=tmp_path, package=bench_package, run_all=True)
    assert set(every) == {"broken", "large", "ok"}


def test_runs_writes_json_and_isolates_failures(bench_package, tmp_path):
    out = tmp_path / "results"
    records = run_benchmarks(quick=True, out=out, package=bench_package)
    assert records["ok"]["status"] == "ok" and records["broken"]["status"] == "error"
    assert "boom" in records["broken"]["error"]
    saved = json.loads((out / "benchmarks" / "ok.json").read_text())
    assert saved["result"] == {"n": 10, "ratio": 1.5, "times": [0.0, 1.0, 2.0]}
    assert saved["quick"] is True and set(saved["provenance"]["git"]) == {"commit", "dirty"}
    # A second run keeps the first one's record in history/.
    run_benchmarks(["bench_ok"], out=out, package=bench_package)
    assert json.loads((out / "benchmarks" / "ok.json").read_text())["result"]["n"] == 1000
    assert len(list((out / "benchmarks" / "history").glob("ok-*.json"))) == 2


def test_unknown_benchmark_name_is_an_error(bench_package, tmp_path):
    with pytest.raises(SystemExit, match="unknown benchmark 'nope'"):
        run_benchmarks(["nope"], out=tmp_path, package=bench_package)


def test_mbar_sweep_is_registered_and_its_workers_agree(monkeypatch):
    """The sweep's in-process worker at its smallest size (2 x 50): ours on both paths and
    FastMBAR agree with pymbar (the subprocess timing itself runs in `make bench`)."""
    pytest.importorskip("pymbar")
    pytest.importorskip("FastMBAR")
    import numpy as np

    from experiments.benchmarks import bench_mbar_sweep
    from thermo.estimators import _mbar

    assert discover()["mbar_sweep"] == "experiments.benchmarks.bench_mbar_sweep"
    # The worker forces a path through this module constant; restore it afterwards.
    monkeypatch.setattr(_mbar, "_NUMPY_MAX_ELEMENTS", _mbar._NUMPY_MAX_ELEMENTS)
    ref = bench_mbar_sweep._worker("pymbar", 2, 50, 1)
    for impl in ("ours_numpy", "fastmbar"):
        out = bench_mbar_sweep._worker(impl, 2, 50, 1)
        assert out["first_s"] > 0 and out["repeat_s"] > 0
        np.testing.assert_allclose(out["f_k"], ref["f_k"], atol=1e-6)
        np.testing.assert_allclose(out["df_k"][1:], ref["df_k"][1:], rtol=1e-3)
