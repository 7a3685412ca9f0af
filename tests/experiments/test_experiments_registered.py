"""Every registered experiment runs end to end with ``--quick`` and writes a full result."""

from __future__ import annotations

import json

import pytest

from experiments import registry, run_experiment

_RUNS = {}
#: Experiments written against the runner's RunContext, which save figures through it.
_WITH_FIGURES = {"headline", "jarzynski_double_well"}
#: Quick runs that fit this file's time budget (measured: each under ~25 s CPU). The other
#: modules' own ``quick()`` settings take 10 s to several minutes of CPU (bridges_gaussian);
#: their end-to-end runs are marked ``slow`` (the pyproject marker "not run in CI").
_FAST = {"headline", "jarzynski_double_well"}


def _params():
    return [
        pytest.param(name, marks=() if name in _FAST else pytest.mark.slow)
        for name in registry.names()
    ]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """Run each experiment once per module (``--quick``, seed 0) and share the result."""

    def get(name):
        if name not in _RUNS:
            out = tmp_path_factory.mktemp(name)
            _RUNS[name] = run_experiment(name, quick=True, seed=0, out=out, progress=False)
        return _RUNS[name]

    return get


@pytest.mark.parametrize("name", _params())
def test_quick_run_end_to_end(name, quick_run):
    res = quick_run(name)
    d = res.run_dir
    for f in ["config.json", "metrics.json", "provenance.json", "report.md"]:
        assert (d / f).is_file(), f
    if name in _WITH_FIGURES:
        assert list(d.glob("*.png")), "the experiment shows at least one figure"
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
