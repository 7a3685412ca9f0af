"""The experiment runner: config overrides, run directories, provenance, report, resume."""

from __future__ import annotations

import dataclasses
import json

import jax.numpy as jnp
import numpy as np
import pytest

from experiments import ConfigError, registry, run_experiment
from experiments import _runner as runner_mod
from experiments.__main__ import main as cli_main
from experiments._config import apply_overrides, config_from_dict, config_to_dict
from experiments._report import format_measurement, render_report
from tests.experiments.toy_experiment import Config as ToyConfig

TOY = "toy_runner_test"


@pytest.fixture(autouse=True)
def _toy_registered():
    registry.register(TOY, "tests.experiments.toy_experiment")
    yield
    registry.unregister(TOY)
    runner_mod.CHECKPOINT_HOOKS.clear()


def _run(tmp_path, **kw):
    kw.setdefault("quick", True)
    kw.setdefault("progress", False)
    return run_experiment(TOY, out=tmp_path, **kw)


# --- config overrides --------------------------------------------------------------------


def test_overrides_parse_by_field_type():
    cfg = apply_overrides(
        ToyConfig(),
        ["n_chains=7", "a=0.25", "label=x=y", "shape=2,3", "note=none", "every=2"],
    )
    assert cfg.n_chains == 7 and cfg.a == 0.25 and cfg.label == "x=y"
    assert cfg.shape == (2, 3) and cfg.note is None and cfg.every == 2
    assert apply_overrides(ToyConfig(), ["note=hello"]).note == "hello"
    nested = apply_overrides(ToyConfig(), ["points=1,2.5;3,4"])
    assert nested.points == ((1.0, 2.5), (3.0, 4.0))
    assert config_from_dict(ToyConfig, config_to_dict(nested)) == nested
    assert config_from_dict(ToyConfig, config_to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("n_chain=3", "unknown config key 'n_chain'"),
        ("n_chains=1.5", "expected int"),
        ("a=fast", "expected float"),
        ("shape=1,x", "expected int"),
        ("n_chains", "not of the form key=value"),
    ],
)
def test_bad_overrides_fail_fast(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(ToyConfig(), [override])


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match="valid keys: a, every, label, n_chains"):
        apply_overrides(ToyConfig(), ["bogus=1"])


def test_cli_bad_override_exits_2_before_running(tmp_path, capsys):
    status = cli_main(["run", TOY, "--quick", "--out", str(tmp_path), "n_chains=abc"])
    assert status == 2
    assert "n_chains='abc': expected int" in capsys.readouterr().err
    assert not (tmp_path / TOY).exists()  # nothing was started
    assert cli_main(["run", "no_such_experiment", "--out", str(tmp_path)]) == 2
    # The config's own validation (__post_init__) is reported the same way.
    assert cli_main(["run", TOY, "--out", str(tmp_path), "n_chains=-1"]) == 2
    assert "invalid Config: n_chains must be positive" in capsys.readouterr().err


# --- a run and what it writes ------------------------------------------------------------


def test_run_writes_results_provenance_and_report(tmp_path):
    res = _run(tmp_path, seed=3, overrides=["n_chains=32"])
    d = res.run_dir
    assert d.parent == tmp_path / TOY
    for name in ["config.json", "metrics.json", "provenance.json", "report.md", "hist.png"]:
        assert (d / name).is_file(), name
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["seed"] == 3 and cfg["quick"] is True and cfg["config"]["n_chains"] == 32
    metrics = json.loads((d / "metrics.json").read_text())
    assert metrics == res.metrics
    assert set(metrics["mean"]) == {"value", "std_err"}
    prov = json.loads((d / "provenance.json").read_text())
    assert set(prov["git"]) == {"commit", "dirty"}
    assert prov["packages"]["jax"] and prov["jax_devices"] and prov["seed"] == 3
    assert prov["wall_time_s"] > 0 and prov["jax_enable_x64"] is True
    report = (d / "report.md").read_text()
    assert "±" in report and "![hist.png](hist.png)" in report
    assert "| rows | v | e |" in report  # the table of rows
    assert json.loads((d / "status.json").read_text())["state"] == "complete"
    # The PNG is a real PNG.
    assert (d / "hist.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_seed_same_metrics_and_no_overwrite(tmp_path):
    a = _run(tmp_path, seed=5)
    b = _run(tmp_path, seed=5)
    c = _run(tmp_path, seed=6)
    assert a.run_dir != b.run_dir  # a completed run is never reused or overwritten
    assert a.metrics == b.metrics
    assert c.metrics["mean"] != a.metrics["mean"]
    assert json.loads((a.run_dir / "metrics.json").read_text()) == a.metrics


# --- interruption and resume -------------------------------------------------------------


def _kill_after(step_to_kill: int):
    def hook(name, step):
        if name == "chain" and step == step_to_kill:
            raise KeyboardInterrupt

    return hook


def test_kill_and_auto_resume_gives_the_same_metrics(tmp_path):
    reference = _run(tmp_path / "ref", seed=11).metrics
    runner_mod.CHECKPOINT_HOOKS.append(_kill_after(3))
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, seed=11)
    runner_mod.CHECKPOINT_HOOKS.clear()
    (killed,) = (tmp_path / TOY).iterdir()
    status = json.loads((killed / "status.json").read_text())
    assert status["state"] == "interrupted"
    assert not (killed / "metrics.json").exists()
    # A different config does not pick up the unfinished run.
    other = _run(tmp_path, seed=12)
    assert other.run_dir != killed and not other.resumed
    # The same config resumes it from step 3 and reproduces the uninterrupted metrics.
    steps = []
    runner_mod.CHECKPOINT_HOOKS.append(lambda name, step: steps.append(step))
    resumed = _run(tmp_path, seed=11)
    assert resumed.resumed and resumed.run_dir == killed
    assert steps == [4, 5, 6]  # only the remaining iterations ran
    assert resumed.metrics == reference
    prov = json.loads((killed / "provenance.json").read_text())
    assert prov["resumed"] is True and len(prov["sessions"]) == 2


def test_explicit_resume_and_refusals(tmp_path):
    runner_mod.CHECKPOINT_HOOKS.append(_kill_after(2))
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, seed=1)
    runner_mod.CHECKPOINT_HOOKS.clear()
    (killed,) = (tmp_path / TOY).iterdir()
    with pytest.raises(ConfigError, match="drop overrides"):
        _run(tmp_path, resume=killed, overrides=["a=0.1"])
    fresh = _run(tmp_path, seed=1, auto_resume=False)
    assert fresh.run_dir != killed and not fresh.resumed
    res = _run(tmp_path, resume=killed)
    assert res.resumed and res.metrics == fresh.metrics
    with pytest.raises(ConfigError, match="complete"):
        _run(tmp_path, resume=killed)


def test_checkpoint_round_trip_and_mismatch(tmp_path):
    import jax.random as jr

    ckpt = runner_mod.Checkpoint(tmp_path, "state")
    like = {"x": jnp.zeros((3, 2)), "k": jr.key(0), "n": jnp.zeros((), jnp.int32)}
    assert ckpt.restore(like) is None
    tree = {"x": jnp.arange(6.0).reshape(3, 2), "k": jr.key(7), "n": jnp.asarray(4, jnp.int32)}
    ckpt.save(9, tree)
    step, got = ckpt.restore(like)
    assert step == 9
    np.testing.assert_array_equal(got["x"], tree["x"])
    np.testing.assert_array_equal(jr.key_data(got["k"]), jr.key_data(tree["k"]))
    with pytest.raises(ValueError, match="does not match"):
        ckpt.restore({"x": jnp.zeros((2, 2)), "k": jr.key(0), "n": jnp.zeros((), jnp.int32)})
    with pytest.raises(ValueError, match="leaves"):
        ckpt.restore({"x": jnp.zeros((3, 2))})


# --- reporting ---------------------------------------------------------------------------


def test_measurement_formatting():
    assert format_measurement(1.23456, 0.0123) == "1.235 ± 0.012"
    assert format_measurement(-12.3456, 1.5) == "-12.3 ± 1.5"
    assert format_measurement(2.0, None) == "2"
    assert format_measurement(None, 0.1) == "n/a"


def test_report_renders_a_table_per_method():
    metrics = {
        "log_z_exact": 1.0,
        "rows": {
            "ais": {"log_z": {"value": 1.01, "std_err": 0.02}, "n_energy_evals": 1000},
            "jarzynski": {"log_z": {"value": 0.9, "std_err": 0.1}, "ess": 12.5},
        },
    }
    text = render_report(
        name="x", description="", record={"config": {}}, metrics=metrics, run_info={}, figures=[]
    )
    assert "| rows | log_z | n_energy_evals | ess |" in text
    assert "| ais | 1.010 ± 0.020 | 1000 | n/a |" in text
    assert "| jarzynski | 0.90 ± 0.10 | n/a | 12.5 |" in text


def test_experiment_module_contract_is_checked(monkeypatch):
    import sys
    import types

    @dataclasses.dataclass
    class NoQuick:
        a: int = 1

    mod = types.ModuleType("_fake_experiment_no_quick")
    mod.Config = NoQuick
    mod.run = lambda config, ctx: {}
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    registry.register("fake_no_quick", mod.__name__)
    try:
        with pytest.raises(ConfigError, match="classmethod quick"):
            registry.get("fake_no_quick")
    finally:
        registry.unregister("fake_no_quick")
    with pytest.raises(ConfigError, match="unknown experiment"):
        registry.get("definitely_not_registered")


# --- listing -----------------------------------------------------------------------------


def test_list_shows_every_experiment_with_its_description(capsys):
    """``python -m experiments list``: one line per registered experiment, with the first
    line of its module docstring (an import failure would show instead)."""
    assert cli_main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    by_name = {line.split()[0]: line.split(maxsplit=1)[1:] for line in lines if line.strip()}
    assert set(by_name) == set(registry.names())
    for name in registry.names():
        summary = by_name[name][0].strip() if by_name[name] else ""
        assert summary and "cannot import" not in summary, (name, summary)
        assert summary == registry.get(name).description.splitlines()[0].strip()


# --- resume of a registered experiment ---------------------------------------------------


def _without_wall_times(obj):
    """The metrics less their wall times (measured, so never reproducible)."""
    if isinstance(obj, dict):
        return {k: _without_wall_times(v) for k, v in obj.items() if k != "wall_s"}
    if isinstance(obj, list):
        return [_without_wall_times(v) for v in obj]
    return obj


def test_registered_experiment_resumes_its_finished_stages(tmp_path, monkeypatch):
    """``mcmc_baselines --quick`` killed in its third row (the two log Z rows done)
    resumes without recomputing them and gives the metrics of an uninterrupted run."""
    from experiments import mcmc_baselines as mb

    calls = {"log_z": 0, "sampler": 0}
    log_z_row, sampler_row = mb._log_z_row, mb._sampler_row

    def counted_log_z(*args):
        calls["log_z"] += 1
        return log_z_row(*args)

    def counted_sampler(*args):
        calls["sampler"] += 1
        return sampler_row(*args)

    def killed(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(mb, "_log_z_row", counted_log_z)
    monkeypatch.setattr(mb, "_sampler_row", killed)
    name = "mcmc_baselines"
    with pytest.raises(KeyboardInterrupt):
        run_experiment(name, quick=True, seed=0, out=tmp_path, progress=False)
    (killed_dir,) = (tmp_path / name).iterdir()
    assert json.loads((killed_dir / "status.json").read_text())["state"] == "interrupted"
    done = sorted(p.name for p in (killed_dir / "stages").iterdir())
    assert done == ["log_z_mw5_ais.json", "log_z_mw5_smc.json"] and calls["log_z"] == 2

    monkeypatch.setattr(mb, "_sampler_row", counted_sampler)
    resumed = run_experiment(name, quick=True, seed=0, out=tmp_path, progress=False)
    assert resumed.resumed and resumed.run_dir == killed_dir
    assert calls == {"log_z": 2, "sampler": 1}  # only the unfinished row ran
    assert (killed_dir / "mcmc_baselines.png").is_file()

    fresh = run_experiment(
        name, quick=True, seed=0, out=tmp_path, progress=False, auto_resume=False
    )
    assert not fresh.resumed and calls == {"log_z": 4, "sampler": 2}
    assert _without_wall_times(resumed.metrics) == _without_wall_times(fresh.metrics)
    # Not a comparison of empty tables: both rows of each kind carry their numbers.
    assert [r["method"] for r in fresh.metrics["log_z"]] == ["ais", "smc"]
    assert all(isinstance(r["log_z"], float) for r in fresh.metrics["log_z"])
    assert isinstance(fresh.metrics["samplers"][0]["energy_w2"], float)


def test_nan_mean_over_runs_matches_numpy_and_stays_quiet():
    """The seed mean of regret curves: NumPy's nanmean/nanstd where a run has a value, NaN
    (and no warning) where none has."""
    import warnings

    from experiments._report import nan_mean_over_runs

    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 7))
    a[rng.random(a.shape) < 0.3] = np.nan
    a[:, 0] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m, s = nan_mean_over_runs(a)
    some = np.isfinite(a).any(0)
    assert np.all(np.isnan(m[~some])) and np.all(np.isnan(s[~some]))
    n = np.isfinite(a[:, some]).sum(0)
    np.testing.assert_allclose(m[some], np.nanmean(a[:, some], 0), rtol=1e-12)
    np.testing.assert_allclose(s[some], np.nanstd(a[:, some], 0) / np.sqrt(n), rtol=1e-12)
