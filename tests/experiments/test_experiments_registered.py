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


#: Experiments whose quick run a dedicated test below reads: that test runs the
#: end-to-end checks too, so the quick run happens once (pytest-xdist would otherwise run
#: it in both workers; its ``xdist_group`` does not hold under pytest 9.2).
_END_TO_END_ELSEWHERE = {
    "fk_compare": "test_fk_compare_quick_rows_spend_the_budgets_they_claim",
    "headline": "test_headline_fk_dds_row_is_the_pretrained_samplers_own_estimate",
}


def _check_end_to_end(name, res):
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


def test_every_experiment_has_an_end_to_end_test():
    assert set(_END_TO_END_ELSEWHERE) <= set(registry.names())
    for test in _END_TO_END_ELSEWHERE.values():
        assert callable(globals()[test])


@pytest.mark.parametrize("name", [n for n in registry.names() if n not in _END_TO_END_ELSEWHERE])
def test_quick_run_end_to_end(name, quick_run):
    _check_end_to_end(name, quick_run(name))


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


def test_fk_compare_quick_rows_spend_the_budgets_they_claim(quick_run):
    """fk_compare's MCMC rows get the corrected sampler's total budget (training included)
    or its marginal cost per sample, counted as thermo.mcmc counts (one per gradient)."""
    from generative.samplers import PRETRAINED, pretrained

    res = quick_run("fk_compare")
    _check_end_to_end("fk_compare", res)
    rows = res.metrics["systems"]["dw4"]
    c, train = PRETRAINED["dw4"], pretrained("dw4").provenance["train_energy_evals"]
    n, marginal = rows["fk"]["n"], 1 + c.n_steps * (1 + c.n_moves)
    assert rows["fk"]["energy_evals"] == n * marginal + train
    assert rows["uncorrected"]["energy_evals"] == n * (c.n_steps + 1) + train
    for method in ("hmc_total", "pt_total"):
        # whole steps per chain: at most one PT step (8 rungs x 10 leapfrog) per chain short
        assert 0.9 * rows["fk"]["energy_evals"] <= rows[method]["energy_evals"]
        assert rows[method]["energy_evals"] <= rows["fk"]["energy_evals"]
    for method in ("hmc_marginal", "pt_marginal"):
        assert abs(rows[method]["marginal_evals_per_sample"] / marginal - 1) < 0.1
    for method, row in rows.items():
        assert row["n"] == n and row["energy_w2"] >= 0, method
    assert rows["fk"]["log_z"]["std_err"] > 0 and rows["uncorrected"]["log_z"]["std_err"] > 0


def test_headline_fk_dds_row_is_the_pretrained_samplers_own_estimate(quick_run):
    """The headline's corrected-sampler row reports exactly what pretrained("dw4").sample
    returns for its key, with the checkpoint's training evaluations added."""
    import jax.random as jr

    from experiments.headline import Config
    from generative.samplers import pretrained

    res = quick_run("headline")
    _check_end_to_end("headline", res)
    row = res.metrics["methods"]["fk_dds"]
    config = Config.quick()
    model = pretrained("dw4")
    out = model.sample(jr.fold_in(jr.PRNGKey(0), config.methods.index("fk_dds")), config.fk_chains)
    train = model.provenance["train_energy_evals"]
    assert row["n_energy_evals"] == int(out.n_energy_evals) + train
    assert row["n_paths"] == config.fk_chains
    assert abs(row["log_z"]["value"] - float(out.log_z)) < 1e-9 * abs(float(out.log_z))
    assert abs(row["log_z"]["std_err"] - float(out.log_z_std)) < 1e-6 * float(out.log_z_std)
