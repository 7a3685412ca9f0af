"""Every registered experiment runs end to end with ``--quick`` and writes a full result.

These quick runs are the end-to-end tests of the experiments, and they are where this
directory's time budget goes (``tests/experiments`` must stay under 120 s alone). Every
registered experiment runs here, none is left out: a quick setting is a small setting
whose time is imports and compilation (about a CPU-second per compiled program), so an
experiment whose quick run is slow gets a smaller quick setting (fewer compiled
programs), not an exemption. Measured 2026-11-23 on the 2-core machine: this file, 29
tests with ``-n 2``, 102 s wall (187 CPU-s) at load ~2 and 173 s (211 CPU-s) with the
load rising to ~4; the slowest quick runs alone take about 18-23 s.

Re-measure an experiment's quick run with
``time .venv/bin/python -m experiments run NAME --quick --out /tmp/q``.
"""

from __future__ import annotations

import json

import pytest

from experiments import registry, run_experiment

_RUNS = {}

#: Experiments whose quick run writes no figure (metrics and report only); every other
#: experiment must write at least one PNG.
_NO_FIGURES: dict[str, str] = {
    "materials_fcc_frenkel_ladd": "metrics only (Frenkel-Ladd free-energy table)",
    "materials_lj_free_energy": "metrics only (A_ex/N table against JZG)",
    "materials_mfi_widom": "metrics only (Henry coefficient, heat of adsorption)",
    "materials_co2_widom": "metrics only (CO2 Widom weight, Henry coefficient)",
    "materials_nist_lj": "metrics only (U/N, P* table against NIST)",
    "materials_crystal_generative": "metrics only (betaA/N by path weights vs Frenkel-Ladd table)",
}


def test_figure_list_names_registered_experiments():
    """No stale entries: a renamed or removed experiment must leave this list too."""
    assert set(_NO_FIGURES) <= set(registry.names()), set(_NO_FIGURES) - set(registry.names())
    assert all(_NO_FIGURES.values()), "every entry needs a reason"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """Run each experiment once per module (``--quick``, seed 0) and share the result."""

    def get(name):
        if name == "search_replay":
            from experiments.search_replay import data_path

            if not data_path().is_file():
                pytest.skip(f"search_replay needs the shared COF data at {data_path()}")
        if name not in _RUNS:
            out = tmp_path_factory.mktemp(name)
            _RUNS[name] = run_experiment(name, quick=True, seed=0, out=out, progress=False)
        return _RUNS[name]

    return get


@pytest.mark.parametrize("name", registry.names())
def test_quick_run_end_to_end(name, quick_run):
    res = quick_run(name)
    d = res.run_dir
    for f in ["config.json", "metrics.json", "provenance.json", "report.md"]:
        assert (d / f).is_file(), f
    pngs = sorted(d.rglob("*.png"))
    if name not in _NO_FIGURES:
        assert pngs, "the experiment shows at least one figure"
        for png in pngs:
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    assert json.loads((d / "metrics.json").read_text()) == res.metrics and res.metrics
    assert json.loads((d / "status.json").read_text())["state"] == "complete"


@pytest.mark.parametrize("name", registry.names())
def test_registered_experiment_contract(name):
    """Every registered module resolves: a typed Config whose quick() survives a JSON round trip."""
    from experiments._config import config_from_dict, config_to_dict

    spec = registry.get(name)
    quick = spec.config_cls.quick()
    assert config_from_dict(spec.config_cls, config_to_dict(quick)) == quick
    assert callable(spec.run_fn) and spec.description


def test_jarzynski_double_well_quick_matches_exact_free_energy(quick_run):
    """Jarzynski and the exact log-RN estimate agree with quadrature within 4 standard errors."""
    res = quick_run("jarzynski_double_well")
    exact = res.metrics["delta_f_exact"]
    for row in res.metrics["switching"].values():
        for key in ["delta_f_jarzynski", "delta_f_log_rn"]:
            est = row[key]
            assert abs(est["value"] - exact) < 4 * est["std_err"], (key, est, exact)
        # Second law: the mean work exceeds Delta F (by more than its standard error).
        assert row["mean_work"]["value"] - exact > row["mean_work"]["std_err"]


def test_same_seed_same_metrics_on_a_registered_experiment(quick_run, tmp_path):
    """The runner's promise, on a real experiment: the same seed and config give the same
    metrics on the same machine (a second run in a fresh directory, compared exactly)."""
    first = quick_run("jarzynski_double_well")
    again = run_experiment(
        "jarzynski_double_well", quick=True, seed=0, out=tmp_path, progress=False
    )
    assert again.run_dir != first.run_dir
    assert again.metrics == first.metrics
