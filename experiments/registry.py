r"""The registry of experiments: name → module with a typed ``Config`` and ``run``.

An experiment is one module that defines

* ``Config``: a dataclass of plain-typed fields (defaults = the full setting) with a
  classmethod ``quick()`` returning the small setting the tests run end to end;
* ``run(config: Config, ctx: RunContext) -> dict``: the metrics (see
  :mod:`experiments._report` for their shape), writing figures through ``ctx``.
  A module with only ``main(config) -> dict`` is wrapped as ``run = lambda config, ctx:
  main(config)`` (or ``main(config, out_dir=run_dir)`` when ``main`` takes ``out_dir``, so
  its figures land in the run directory); it then gets no checkpoints from the runner. A
  module with only ``main(quick: bool)`` gets the config :class:`QuickFlagConfig`.

Modules are imported lazily, so ``python -m experiments list`` stays cheap and an
experiment whose optional dependencies are broken does not take the others down.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Callable
from typing import Any

from ._config import ConfigError

__all__ = ["Experiment", "QuickFlagConfig", "get", "names", "register", "unregister"]

#: Experiments whose command line (``python -m experiments run``) first makes XLA's CPU
#: client with a one-thread pool (:func:`thermo.cpu.use_one_cpu_thread`): GCMC moves are
#: chains of small kernels. Tests that run them in-process keep their pool (speed only).
ONE_CPU_THREAD = frozenset({"materials_co2_gcmc", "materials_raspa_side_by_side"})

#: name -> module path. Each module defines ``Config`` and ``run``.
_MODULES: dict[str, str] = {
    "headline": "experiments.headline",
    "jarzynski_double_well": "experiments.jarzynski_double_well",
    "bridges_gaussian": "experiments.bridges_gaussian",
    "diffusion_particles": "experiments.diffusion_particles",
    "materials_fcc_frenkel_ladd": "experiments.materials_fcc_frenkel_ladd",
    "materials_lj_free_energy": "experiments.materials_lj_free_energy",
    "materials_mfi_widom": "experiments.materials_mfi_widom",
    "materials_co2_widom": "experiments.materials_co2_widom",
    "materials_co2_gcmc": "experiments.materials_co2_gcmc",
    "materials_raspa_side_by_side": "experiments.materials_raspa_side_by_side",
    "materials_nist_lj": "experiments.materials_nist_lj",
    "materials_screening": "experiments.materials_screening",
    "materials_mof_screen": "experiments.materials_mof_screen",
    "materials_periodic_generative": "experiments.materials_periodic_generative",
    "materials_crystal_generative": "experiments.materials_crystal_generative",
    "materials_coexistence": "experiments.materials_coexistence",
    "mcmc_baselines": "experiments.mcmc_baselines",
    "diffusion_samplers": "experiments.diffusion_samplers",
    "particle_sampler": "experiments.particle_sampler",
    "fk_calibration": "experiments.fk_calibration",
    "fk_compare": "experiments.fk_compare",
    "search_replay": "experiments.search_replay",
    "search_live": "experiments.search_live",
}


@dataclasses.dataclass(frozen=True)
class QuickFlagConfig:
    """The config of a module whose entry point is ``main(quick: bool = False)``."""

    quick_setting: bool = False

    @classmethod
    def quick(cls) -> QuickFlagConfig:
        """The module's own quick setting."""
        return cls(quick_setting=True)


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A registered experiment, resolved from its module."""

    name: str
    module: str
    config_cls: type
    run_fn: Callable[[Any, Any], dict]
    description: str


def names() -> list[str]:
    """The registered experiment names, sorted."""
    return sorted(_MODULES)


def register(name: str, module: str) -> None:
    """Register ``module`` (a dotted import path) under ``name``."""
    if not name.isidentifier():
        raise ValueError(f"experiment names are identifiers, got {name!r}")
    _MODULES[name] = module


def unregister(name: str) -> None:
    """Remove ``name`` from the registry (used by tests that register a toy experiment)."""
    _MODULES.pop(name, None)


def get(name: str) -> Experiment:
    """Resolve the experiment ``name``.

    Raises:
        ConfigError: unknown name (the message lists the registered ones), or a module
            that lacks ``Config`` (a dataclass with ``quick()``) or ``run``.
    """
    if name not in _MODULES:
        raise ConfigError(f"unknown experiment {name!r}; registered: {', '.join(names())}")
    module_path = _MODULES[name]
    mod = importlib.import_module(module_path)
    config_cls = getattr(mod, "Config", None)
    run_fn = getattr(mod, "run", None)
    main_fn = getattr(mod, "main", None)
    if config_cls is None and run_fn is None and callable(main_fn):
        if "quick" in inspect.signature(main_fn).parameters:
            config_cls = QuickFlagConfig

            def run_fn(config, ctx, _main=main_fn):
                del ctx
                return _main(quick=config.quick_setting)

    if run_fn is None and callable(main_fn):
        takes_out_dir = "out_dir" in inspect.signature(main_fn).parameters

        def run_fn(config, ctx, _main=main_fn, _out=takes_out_dir):
            # A main(config, out_dir=...) writes its figures into the run directory.
            return _main(config, out_dir=ctx.run_dir) if _out else _main(config)

    if config_cls is None or not dataclasses.is_dataclass(config_cls):
        raise ConfigError(f"{module_path} must define a dataclass Config")
    if not callable(getattr(config_cls, "quick", None)):
        raise ConfigError(f"{module_path}.Config must have a classmethod quick()")
    if not callable(run_fn):
        raise ConfigError(f"{module_path} must define run(config, ctx) or main(config)")
    doc = (mod.__doc__ or "").strip()
    return Experiment(
        name=name, module=module_path, config_cls=config_cls, run_fn=run_fn, description=doc
    )
