"""The CO2/N2 CoRE MOF screen (experiments.materials_mof_screen): its quick run and its
selectivity arithmetic. The quick run is shared with test_experiments_registered."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.materials_mof_screen import Config, selectivity
from tests.experiments.test_experiments_registered import quick_run  # noqa: F401 (fixture)


def test_selectivity_and_its_propagated_error():
    s, se = selectivity([6.0, 1.0], [0.6, 0.0], [2.0, 4.0], [0.2, 0.4])
    np.testing.assert_allclose(s, [3.0, 0.25], rtol=1e-15)
    # relative errors add in quadrature: sqrt(0.1^2 + 0.1^2), sqrt(0 + 0.1^2)
    np.testing.assert_allclose(se, [3.0 * np.sqrt(0.02), 0.025], rtol=1e-14)


def test_quick_screen_metrics_are_consistent(quick_run):  # noqa: F811
    pytest.importorskip("CoRE_MOF", reason="PyPI package core-mof not installed")
    m = quick_run("materials_mof_screen").metrics
    cfg = Config.quick()
    assert m["n_frameworks"] == len(cfg.names) and not m["eqeq_failed"]
    assert 0.0 < m["eqeq_max_abs_charge"] < 3.0
    for row in m["frameworks"]:
        k1 = row["henry_co2_molecules_per_uc_per_pa"]
        k2 = row["henry_n2_molecules_per_uc_per_pa"]
        assert k1["value"] > 0 and k2["value"] > 0 and k1["std_err"] > 0
        s, se = selectivity(k1["value"], k1["std_err"], k2["value"], k2["std_err"])
        assert row["selectivity_henry"] == pytest.approx({"value": s, "std_err": se}, rel=1e-12)
    (g,) = m["gcmc"]
    assert g["name"] == m["selectivity_henry_top"][0]["name"]
    assert g["moves"] == cfg.gcmc_n_blocks * cfg.gcmc_steps_per_block
    assert g["loading_co2_per_uc"]["value"] >= 0 and g["loading_n2_per_uc"]["value"] >= 0


def test_gcmc_doubles_its_slots_when_they_overflow(tmp_path, capsys):
    """At 100 bar one slot cannot hold the loading: the run is repeated with 2, 4, ...
    slots until none overflows, and the loading it reports fits in the slots it used."""
    pytest.importorskip("CoRE_MOF", reason="PyPI package core-mof not installed")
    from experiments._runner import run_experiment

    res = run_experiment(
        "materials_mof_screen",
        quick=True,
        out=tmp_path,
        progress=False,
        overrides=["names=LUFQUZ_clean", "gcmc_capacity=1", "pressure=1e7"],
    )
    (g,) = res.metrics["gcmc"]
    assert g["capacity"] > 1
    n_uc = int(np.prod(g["unit_cells"]))
    assert (g["loading_co2_per_uc"]["value"] + g["loading_n2_per_uc"]["value"]) * n_uc <= g[
        "capacity"
    ]
    assert "all 1 molecule slots filled; repeating with 2" in capsys.readouterr().out
