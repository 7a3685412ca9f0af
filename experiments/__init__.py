"""Reproducible experiments: ``python -m experiments run NAME`` (see :mod:`experiments._runner`).

Public helpers for experiment modules: :class:`RunContext` (figures, checkpoints,
resumable loops, cached stages), :func:`measurement` (a value with its standard error),
:func:`run_experiment` (the runner as a function) and :mod:`experiments.registry`.
"""

from ._config import ConfigError as ConfigError
from ._report import measurement as measurement
from ._runner import RunContext as RunContext
from ._runner import RunResult as RunResult
from ._runner import run_experiment as run_experiment
