"""thermo.estimators.alchemlyb on real alchemical data (the alchemtest sets).

Each set is parsed with alchemlyb's own parsers, exactly as alchemlyb's test fixtures do
(``alchemlyb/tests/conftest.py``), fitted with the project's MBAR/BAR/TI, and compared:

* with the numbers alchemlyb 2.5.0's test-suite asserts (value and error, rel 1e-3),
  copied from ``alchemlyb/tests/test_fep_estimators.py`` and ``test_ti_estimators.py``
  of the installed alchemlyb 2.5.0 (repository alchemistry/alchemlyb, ``src/alchemlyb/
  tests/``); these are alchemlyb + pymbar's results, the issue's reference;
* with alchemlyb itself as a peer in the same process (every fitted matrix, rel 1e-6),
  on the GROMACS benzene Coulomb set and the 4-lambda expanded-ensemble set;
* through an alchemlyb pipeline (decorrelate, concat, estimate, convert units) run twice,
  once with ``from alchemlyb.estimators import MBAR`` and once with the project's import.

Run time is dominated by parsing (alchemlyb) and by one JAX compile of MBAR per data set
shape; the other expanded-ensemble cases and water-particle variants (same physics,
irregular sample counts that compile BAR once per pair of counts) are marked ``slow``.
"""

from __future__ import annotations

import functools
import logging
import subprocess
import sys

import numpy as np
import pytest

alchemlyb = pytest.importorskip("alchemlyb")
pytest.importorskip("alchemtest")
pytest.importorskip("pymbar")
logging.getLogger("pymbar").setLevel(logging.ERROR)

from alchemlyb.estimators import BAR as AlchemlybBAR  # noqa: E402
from alchemlyb.estimators import MBAR as AlchemlybMBAR  # noqa: E402
from alchemlyb.estimators import TI as AlchemlybTI  # noqa: E402
from alchemlyb.parsing import amber, gmx, gomc  # noqa: E402

from tests._dependencies import pymbar_promotion  # noqa: E402
from thermo.estimators.alchemlyb import BAR, MBAR, TI, NotFittedError  # noqa: E402

# ----------------------------------------------------------------------------------
# Data (parsed once per session, as alchemlyb's fixtures do)
# ----------------------------------------------------------------------------------


def _concat(parts, key):
    return alchemlyb.concat([p[key] for p in parts])


@functools.cache
def _gmx_benzene_parts(leg):
    """One frame pair per window file, as a user's script parses them."""
    from alchemtest.gmx import load_benzene

    return tuple(gmx.extract(f, T=300) for f in load_benzene()["data"][leg])


@functools.cache
def _gmx_benzene(leg):
    parts = _gmx_benzene_parts(leg)
    return {"u_nk": _concat(parts, "u_nk"), "dHdl": _concat(parts, "dHdl")}


@functools.cache
def _gmx_all_states(loader_name, filter_):
    import alchemtest.gmx

    files = getattr(alchemtest.gmx, loader_name)()["data"]["AllStates"]
    parts = [gmx.extract(f, T=300, filter=filter_) for f in files]
    return {"u_nk": _concat(parts, "u_nk"), "dHdl": _concat(parts, "dHdl")}


@functools.cache
def _amber_bace():
    from alchemtest.amber import load_bace_example

    files = load_bace_example()["data"]["complex"]["vdw"]
    return {"u_nk": alchemlyb.concat([amber.extract_u_nk(f, T=298.0) for f in files])}


@functools.cache
def _amber_simplesolvated(leg):
    from alchemtest.amber import load_simplesolvated

    files = load_simplesolvated()["data"][leg]
    return {"dHdl": alchemlyb.concat([amber.extract_dHdl(f, T=298.0) for f in files])}


@functools.cache
def _gomc_benzene():
    from alchemtest.gomc import load_benzene

    parts = [gomc.extract(f, T=298) for f in load_benzene()["data"]]
    return {"u_nk": _concat(parts, "u_nk"), "dHdl": _concat(parts, "dHdl")}


DATA = {
    "gmx_benzene_Coulomb": lambda: _gmx_benzene("Coulomb"),
    "gmx_benzene_VDW": lambda: _gmx_benzene("VDW"),
    "gmx_expanded_ensemble_case_1": lambda: _gmx_all_states("load_expanded_ensemble_case_1", False),
    "gmx_expanded_ensemble_case_2": lambda: _gmx_all_states("load_expanded_ensemble_case_2", False),
    "gmx_expanded_ensemble_case_3": lambda: _gmx_all_states("load_expanded_ensemble_case_3", False),
    "gmx_water_particle_with_total_energy": lambda: _gmx_all_states(
        "load_water_particle_with_total_energy", True
    ),
    "gmx_water_particle_with_potential_energy": lambda: _gmx_all_states(
        "load_water_particle_with_potential_energy", True
    ),
    "gmx_water_particle_without_energy": lambda: _gmx_all_states(
        "load_water_particle_without_energy", True
    ),
    "amber_bace_example_complex_vdw": _amber_bace,
    "amber_simplesolvated_charge": lambda: _amber_simplesolvated("charge"),
    "amber_simplesolvated_vdw": lambda: _amber_simplesolvated("vdw"),
    "gomc_benzene": _gomc_benzene,
}

SLOW = {
    "gmx_expanded_ensemble_case_1",
    "gmx_expanded_ensemble_case_2",
    "gmx_water_particle_with_potential_energy",
    "gmx_water_particle_without_energy",
}


def _cases(table):
    return [
        pytest.param(*row, marks=pytest.mark.slow, id=row[0])
        if row[0] in SLOW
        else pytest.param(*row, id=row[0])
        for row in table
    ]


# alchemlyb 2.5.0, tests/test_fep_estimators.py, TestMBAR.X_delta_f: (set, delta_f, error)
MBAR_ASSERTED = [
    ("gmx_benzene_Coulomb", 3.041, 0.02088),
    ("gmx_benzene_VDW", -3.007, 0.04519),
    ("gmx_expanded_ensemble_case_1", 75.923, 0.14124),
    ("gmx_expanded_ensemble_case_2", 75.915, 0.14372),
    ("gmx_expanded_ensemble_case_3", 76.173, 0.11345),
    ("gmx_water_particle_with_total_energy", -11.680, 0.083655),
    ("gmx_water_particle_with_potential_energy", -11.675, 0.083589),
    ("gmx_water_particle_without_energy", -11.654, 0.083415),
    ("amber_bace_example_complex_vdw", 2.41149, 0.0620658),
    ("gomc_benzene", -0.79994, 0.091579),
]
# ... TestBAR.X_delta_f (the NAMD sets of that list are not among this sets)
BAR_ASSERTED = [
    ("gmx_benzene_Coulomb", 3.044, 0.01640),
    ("gmx_benzene_VDW", -3.033, 0.03438),
    ("gmx_expanded_ensemble_case_1", 75.993, 0.11056),
    ("gmx_expanded_ensemble_case_2", 76.009, 0.11220),
    ("gmx_expanded_ensemble_case_3", 76.219, 0.08886),
    ("gmx_water_particle_with_total_energy", -11.675, 0.065055),
    ("gmx_water_particle_with_potential_energy", -11.724, 0.064964),
    ("gmx_water_particle_without_energy", -11.660, 0.064914),
    ("amber_bace_example_complex_vdw", 2.39294, 0.051192),
    ("gomc_benzene", -0.87095, 0.071263),
]
# ... tests/test_ti_estimators.py, TestTI.X_delta_f (AMBER values in kcal/mol / kT_amber)
_KT_AMBER = amber.k_b * 298.0
TI_ASSERTED = [
    ("gmx_benzene_Coulomb", 3.089, 0.02157),
    ("gmx_benzene_VDW", -3.056, 0.04863),
    ("gmx_expanded_ensemble_case_1", 76.220, 0.15568),
    ("gmx_expanded_ensemble_case_2", 76.247, 0.15889),
    ("gmx_expanded_ensemble_case_3", 76.387, 0.12532),
    ("gmx_water_particle_with_total_energy", -11.696, 0.091775),
    ("gmx_water_particle_with_potential_energy", -11.751, 0.091149),
    ("gmx_water_particle_without_energy", -11.687, 0.091604),
    ("amber_simplesolvated_charge", -60.114 / _KT_AMBER, 0.08186 / _KT_AMBER),
    ("amber_simplesolvated_vdw", 3.824 / _KT_AMBER, 0.13254 / _KT_AMBER),
]


@functools.cache
def _fitted_mbar(name):
    return MBAR().fit(DATA[name]()["u_nk"])


@functools.cache
def _fitted_mbar_entropy():
    return MBAR().fit(_gmx_benzene("Coulomb")["u_nk"], compute_entropy_enthalpy=True)


# ----------------------------------------------------------------------------------
# Against alchemlyb's asserted values
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "value", "error"), _cases(MBAR_ASSERTED))
def test_mbar_reproduces_alchemlyb_asserted_values(name, value, error):
    est = _fitted_mbar(name)
    assert est.delta_f_.iloc[0, -1] == pytest.approx(value, rel=1e-3)
    assert est.d_delta_f_.iloc[0, -1] == pytest.approx(error, rel=1e-3)


@pytest.mark.parametrize(("name", "value", "error"), _cases(BAR_ASSERTED))
def test_bar_reproduces_alchemlyb_asserted_values(name, value, error):
    est = BAR().fit(DATA[name]()["u_nk"])
    d = est.d_delta_f_.to_numpy()
    # alchemlyb's TestBAR.get_delta_f: the adjacent errors added in quadrature
    err = np.sqrt(sum(d[i, i + 1] ** 2 for i in range(d.shape[0] - 1)))
    assert est.delta_f_.iloc[0, -1] == pytest.approx(value, rel=1e-3)
    assert err == pytest.approx(error, rel=1e-3)


@pytest.mark.parametrize(("name", "value", "error"), _cases(TI_ASSERTED))
def test_ti_reproduces_alchemlyb_asserted_values(name, value, error):
    est = TI().fit(DATA[name]()["dHdl"])
    assert est.delta_f_.iloc[0, -1] == pytest.approx(value, rel=1e-3)
    assert est.d_delta_f_.iloc[0, -1] == pytest.approx(error, rel=1e-3)


def test_mbar_enthalpy_entropy_reproduces_alchemlyb_asserted_values():
    """alchemlyb 2.5.0 ``test_enthalpy_entropy_mbar`` (GROMACS benzene Coulomb, abs 1e-6)."""
    est = _fitted_mbar_entropy()
    expected = {
        "delta_f_": [0.0, 1.619069, 2.557990, 2.986302, 3.041156],
        "delta_h_": [0.0, 1.241970, 1.695000, 1.706555, 1.388906],
        "delta_sT_": [0.0, -0.377099, -0.862990, -1.279746, -1.652250],
        "d_delta_f_": [0.0, 0.008802, 0.014432, 0.018097, 0.020879],
        "d_delta_h_": [0.0, 0.011598, 0.016538, 0.018077, 0.018940],
        "d_delta_sT_": [0.0, 0.012242, 0.019519, 0.023606, 0.026107],
    }
    for attr, row in expected.items():
        got = getattr(est, attr).iloc[0, :].to_numpy()
        np.testing.assert_allclose(got, row, atol=1e-6, err_msg=attr)


# ----------------------------------------------------------------------------------
# Against alchemlyb as a peer (every output, same input, same process)
# ----------------------------------------------------------------------------------


def _assert_frames_close(ours, theirs, what, rtol=1e-6, atol=1e-10, attrs=True):
    assert list(ours.index) == list(theirs.index), what
    assert list(ours.columns) == list(theirs.columns), what
    if attrs:
        assert ours.attrs == theirs.attrs, what
    np.testing.assert_allclose(
        ours.to_numpy(), theirs.to_numpy(), rtol=rtol, atol=atol, err_msg=what
    )


def test_mbar_every_output_matches_alchemlyb():
    u_nk = _gmx_benzene("Coulomb")["u_nk"]
    ours = _fitted_mbar_entropy()
    with pymbar_promotion():
        ref = AlchemlybMBAR().fit(u_nk, compute_entropy_enthalpy=True)
    assert ours.states_ == ref.states_
    for attr in ("delta_f_", "d_delta_f_", "delta_h_", "d_delta_h_", "delta_sT_", "d_delta_sT_"):
        _assert_frames_close(getattr(ours, attr), getattr(ref, attr), attr)
    # alchemlyb leaves theta_ without units attrs; ours carries them like every output
    _assert_frames_close(ours.theta_, ref.theta_, "theta_", atol=1e-12, attrs=False)
    np.testing.assert_allclose(ours.overlap_matrix, ref.overlap_matrix, rtol=1e-6, atol=1e-12)


def test_bar_and_ti_every_output_match_alchemlyb():
    data = _gmx_benzene("Coulomb")
    ours, ref = BAR().fit(data["u_nk"]), AlchemlybBAR().fit(data["u_nk"])
    assert ours.states_ == ref.states_
    _assert_frames_close(ours.delta_f_, ref.delta_f_, "BAR delta_f_")
    _assert_frames_close(ours.d_delta_f_, ref.d_delta_f_, "BAR d_delta_f_")  # NaN where ref has
    ours, ref = TI().fit(data["dHdl"]), AlchemlybTI().fit(data["dHdl"])
    _assert_frames_close(ours.delta_f_, ref.delta_f_, "TI delta_f_", rtol=1e-12)
    _assert_frames_close(ours.d_delta_f_, ref.d_delta_f_, "TI d_delta_f_", rtol=1e-12)
    _assert_frames_close(ours.dhdl, ref.dhdl, "TI dhdl", rtol=1e-12)


def test_ti_multi_lambda_matches_alchemlyb():
    """Four lambda components (fep, coul, vdw, restraint), missing dHdl entries (NaN) in a
    component that does not move, and separate_dhdl."""
    dhdl = _gmx_all_states("load_expanded_ensemble_case_3", False)["dHdl"]
    ours, ref = TI().fit(dhdl), AlchemlybTI().fit(dhdl)
    assert ours.states_ == ref.states_
    _assert_frames_close(ours.delta_f_, ref.delta_f_, "delta_f_", rtol=1e-12)
    _assert_frames_close(ours.d_delta_f_, ref.d_delta_f_, "d_delta_f_", rtol=1e-12)
    for a, b in zip(ours.separate_dhdl(), ref.separate_dhdl(), strict=True):
        assert a.name == b.name and list(a.index) == list(b.index)
        np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-12)


def _synthetic_dhdl(lambdas, n, seed):
    import pandas as pd

    rng = np.random.default_rng(seed)
    frames = []
    for lam in lambdas:
        idx = pd.MultiIndex.from_tuples(
            [(float(t), *lam) for t in range(n)], names=["time", "coul-lambda", "vdw-lambda"]
        )
        vals = rng.normal(loc=[3.0 * lam[0], -2.0 + lam[1]], scale=[1.0, 0.5], size=(n, 2))
        frames.append(pd.DataFrame(vals, index=idx, columns=["coul", "vdw"]))
    out = pd.concat(frames)
    out.attrs = {"temperature": 300, "energy_unit": "kT"}
    return out


def test_ti_non_monotone_path_matches_alchemlyb():
    """A component that goes up and back down along the path (a shared window whose two
    segments have opposite signs) and a flat stretch: the error keeps the covariance of the
    segments through their shared window (alchemlyb's trapezoid weights exactly)."""
    lambdas = [(0.0, 0.0), (0.25, 0.5), (0.5, 1.0), (0.75, 0.4), (1.0, 0.4), (1.0, 1.0)]
    dhdl = _synthetic_dhdl(lambdas, n=40, seed=3)
    ours, ref = TI().fit(dhdl), AlchemlybTI().fit(dhdl)
    _assert_frames_close(ours.delta_f_, ref.delta_f_, "delta_f_", rtol=1e-12, atol=1e-12)
    _assert_frames_close(ours.d_delta_f_, ref.d_delta_f_, "d_delta_f_", rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------------
# One changed import
# ----------------------------------------------------------------------------------


def _pipeline(mbar_cls, ti_cls):
    """An alchemlyb user's script: decorrelate each window, concat, estimate, kcal/mol
    (the per-window frames are parsed once for both runs)."""
    from alchemlyb.postprocessors.units import to_kcalmol
    from alchemlyb.preprocessing.subsampling import decorrelate_dhdl, decorrelate_u_nk

    windows = _gmx_benzene_parts("Coulomb")
    u_nk = alchemlyb.concat([decorrelate_u_nk(w["u_nk"].copy(), method="dE") for w in windows])
    dhdl = alchemlyb.concat([decorrelate_dhdl(w["dHdl"].copy()) for w in windows])
    with pymbar_promotion():  # a no-op for our MBAR
        mbar = mbar_cls().fit(u_nk)
    ti = ti_cls().fit(dhdl)
    return {
        "n_samples": len(u_nk),
        "mbar": to_kcalmol(mbar.delta_f_),
        "d_mbar": to_kcalmol(mbar.d_delta_f_),
        "overlap": mbar.overlap_matrix,
        "ti": to_kcalmol(ti.delta_f_),
        "d_ti": to_kcalmol(ti.d_delta_f_),
    }


def test_alchemlyb_pipeline_with_one_changed_import():
    theirs = _pipeline(AlchemlybMBAR, AlchemlybTI)
    ours = _pipeline(MBAR, TI)
    assert ours["n_samples"] == theirs["n_samples"] < len(_gmx_benzene("Coulomb")["u_nk"])
    for key in ("mbar", "d_mbar", "ti", "d_ti"):
        assert ours[key].attrs["energy_unit"] == "kcal/mol"
        _assert_frames_close(ours[key], theirs[key], key)
    np.testing.assert_allclose(ours["overlap"], theirs["overlap"], rtol=1e-6, atol=1e-12)


# ----------------------------------------------------------------------------------
# Interface
# ----------------------------------------------------------------------------------


def test_units_attrs_are_kept():
    est = _fitted_mbar("gmx_benzene_Coulomb")
    for frame in (est.delta_f_, est.d_delta_f_, est.theta_):
        assert frame.attrs == {"temperature": 300, "energy_unit": "kT"}


@pytest.mark.parametrize("initial_f_k", [None, "array"])
def test_initial_f_k_does_not_change_the_answer(initial_f_k):
    u_nk = _gmx_benzene("Coulomb")["u_nk"]
    ref = _fitted_mbar("gmx_benzene_Coulomb")
    init = np.linspace(0.0, 2.0, u_nk.shape[1]) if initial_f_k == "array" else None
    est = MBAR(initial_f_k=init).fit(u_nk)
    np.testing.assert_allclose(est.delta_f_.to_numpy(), ref.delta_f_.to_numpy(), atol=1e-9)
    # alchemlyb 2.5.0 test_initial_f_k asserts this value for "BAR" and None
    assert np.isclose(est.delta_f_.loc[0.00, 1.00], 3.0411556983908046)


def test_bootstrap_error_agrees_with_the_analytic_one():
    """Bootstrap (B resamples) and asymptotic errors estimate the same standard deviation;
    the bootstrap's own relative sampling error is ~1/sqrt(2B), so they agree to 4 of those.
    The point estimate is the analytic solve's, as alchemlyb."""
    n_boot = 100
    u_nk = _gmx_benzene("Coulomb")["u_nk"]
    ref = _fitted_mbar("gmx_benzene_Coulomb")
    est = MBAR(n_bootstraps=n_boot, random_state=0).fit(u_nk)
    np.testing.assert_array_equal(est.delta_f_.to_numpy(), ref.delta_f_.to_numpy())
    boot = est.d_delta_f_.iloc[0, 1:].to_numpy()
    analytic = ref.d_delta_f_.iloc[0, 1:].to_numpy()
    np.testing.assert_array_less(np.abs(boot / analytic - 1.0), 4.0 / np.sqrt(2 * n_boot))
    again = MBAR(n_bootstraps=n_boot, random_state=0).fit(u_nk)
    np.testing.assert_array_equal(again.d_delta_f_.to_numpy(), est.d_delta_f_.to_numpy())


def test_fitted_attributes_are_read_only_and_none_before_fit():
    for cls in (MBAR, BAR, TI):
        est = cls()
        assert est.delta_f_ is None and est.d_delta_f_ is None and est.states_ is None
        for attr in ("delta_f_", "d_delta_f_", "states_"):
            with pytest.raises(AttributeError):
                setattr(est, attr, 1)
    with pytest.raises(NotFittedError, match="call fit"):
        MBAR().overlap_matrix  # noqa: B018


def test_scikit_learn_parameter_protocol():
    est = MBAR(maximum_iterations=50, n_bootstraps=3)
    params = est.get_params()
    assert params["maximum_iterations"] == 50 and params["n_bootstraps"] == 3
    assert set(params) >= {
        "maximum_iterations",
        "relative_tolerance",
        "initial_f_k",
        "method",
        "n_bootstraps",
        "verbose",
    }
    assert est.set_params(relative_tolerance=1e-9).relative_tolerance == 1e-9
    assert repr(est).startswith("MBAR(maximum_iterations=50")
    with pytest.raises(ValueError, match="invalid parameter"):
        est.set_params(nope=1)
    assert set(BAR().get_params()) == {
        "maximum_iterations",
        "relative_tolerance",
        "method",
        "verbose",
    }
    assert set(TI().get_params()) == {"verbose"}


def test_bad_input_fails_with_a_clear_message():
    u_nk = _gmx_benzene("Coulomb")["u_nk"]
    with pytest.raises(ValueError, match="Only `BAR` is supported"):
        MBAR(initial_f_k="aaa")
    with pytest.raises(TypeError, match="pandas DataFrame"):
        MBAR().fit(u_nk.to_numpy())
    with pytest.raises(ValueError, match="indexed by"):
        MBAR().fit(u_nk.reset_index(drop=True))
    with pytest.raises(ValueError, match="not represented in u_nk columns"):
        BAR().fit(u_nk.drop(columns=[0.5]))
    bad = u_nk.copy()
    bad.iloc[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"NaN or inf reduced potentials in columns \[0.5\]"):
        MBAR().fit(bad)
    with pytest.raises(ValueError, match="n_bootstraps"):
        MBAR(n_bootstraps=1).fit(u_nk)
    with pytest.raises(ValueError, match="initial_f_k must be 5 finite"):
        MBAR(initial_f_k=np.zeros(3)).fit(u_nk)
    with pytest.raises(ValueError, match="method must be one of"):
        BAR(method="newton").fit(u_nk)
    dhdl = _gmx_benzene("Coulomb")["dHdl"]
    with pytest.raises(ValueError, match="one column per lambda level"):
        TI().fit(dhdl.assign(extra=1.0))
    lam = dhdl.index.get_level_values("fep-lambda")
    lone = dhdl[(lam == 0.0) | ((lam == 0.25) & (np.cumsum(lam == 0.25) == 1))]  # 1 sample
    with pytest.raises(ValueError, match=">= 2 finite samples"):
        TI().fit(lone)


def test_import_thermo_estimators_does_not_import_pandas():
    code = (
        "import sys, thermo.estimators; "
        "bad = [m for m in ('pandas', 'alchemlyb', 'pymbar', 'sklearn') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


_X64_SCRIPT = """
import jax, numpy as np, pandas as pd
assert not jax.config.jax_enable_x64
from thermo.estimators.alchemlyb import MBAR
# harmonic states u_k = k x^2 / 2: f_k - f_0 = log(k / k_0) / 2 exactly
springs = np.array([1.0, 2.0, 4.0])
rng = np.random.default_rng(7)
x = np.concatenate([rng.normal(scale=k**-0.5, size=400) for k in springs])
lam = np.repeat([0.0, 0.5, 1.0], 400)
idx = pd.MultiIndex.from_arrays([np.tile(np.arange(400.0), 3), lam], names=["time", "lambda"])
u_nk = pd.DataFrame(0.5 * springs[None, :] * x[:, None] ** 2, index=idx, columns=[0.0, 0.5, 1.0])
est = MBAR().fit(u_nk)
assert not jax.config.jax_enable_x64, "the global flag must be restored"
f, df = est.delta_f_.iloc[0, -1], est.d_delta_f_.iloc[0, -1]
assert est.delta_f_.to_numpy().dtype == np.float64
print(f, df, abs(f - 0.5 * np.log(4.0)) / df)
"""


def test_float64_inside_fit_without_flipping_the_global_flag():
    """Run where JAX is in its default 32-bit mode (a fresh process that imports neither
    alchemlyb nor pymbar, which switch x64 on): the fit still runs in float64, leaves the
    flag off, and recovers the exact harmonic free energy within 4 of its standard errors."""
    out = subprocess.run(
        [sys.executable, "-c", _X64_SCRIPT], check=True, capture_output=True, text=True
    )
    f, df, z = (float(v) for v in out.stdout.split())
    assert z < 4.0, (f, df)
