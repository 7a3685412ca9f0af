"""Candidate spaces and fidelities.

A *fidelity* is an evaluator plus a cost model, a noise model and a latency. Evaluations run
in executors (maybe other processes), so fidelities are plain picklable objects whose
``__call__(candidate, seed)`` returns ``(value, cost)``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np

__all__ = ["CandidateSpace", "Fidelity", "ReplayFidelity"]


@dataclasses.dataclass(frozen=True)
class CandidateSpace:
    """A finite library of candidates, one feature vector each (``features (n, d)``)."""

    features: np.ndarray
    names: tuple[str, ...] | None = None

    def __post_init__(self):
        f = np.asarray(self.features, dtype=float)
        if f.ndim != 2 or f.shape[0] < 2:
            raise ValueError(f"features must be (n >= 2, d), got shape {f.shape}")
        if not np.all(np.isfinite(f)):
            raise ValueError("features contain non-finite values")
        if self.names is not None and len(self.names) != f.shape[0]:
            raise ValueError("names and features differ in length")
        object.__setattr__(self, "features", f)

    def __len__(self) -> int:
        return self.features.shape[0]


@dataclasses.dataclass(frozen=True)
class Fidelity:
    """A live fidelity: ``evaluate_fn(candidate, seed) -> value``.

    Attributes:
        evaluate_fn: the evaluator (picklable for process/Dask executors).
        cost_fn: ``candidate -> cost`` charged per evaluation (default: measured wall time).
        noise_sd: standard deviation of Gaussian noise added to each value (noise model).
        latency: seconds slept before returning (stands in for queueing/experiment delay).
        name: label.
    """

    evaluate_fn: Callable[[int, int], float]
    cost_fn: Callable[[int], float] | None = None
    noise_sd: float = 0.0
    latency: float = 0.0
    name: str = "fidelity"

    def __call__(self, candidate: int, seed: int) -> tuple[float, float]:
        t0 = time.perf_counter()
        value = float(self.evaluate_fn(candidate, seed))
        if self.noise_sd > 0:
            value += self.noise_sd * np.random.default_rng([seed, candidate]).standard_normal()
        if self.latency > 0:
            time.sleep(self.latency)
        cost = time.perf_counter() - t0 if self.cost_fn is None else float(self.cost_fn(candidate))
        return value, cost


@dataclasses.dataclass(frozen=True)
class ReplayFidelity:
    """Returns the stored ``values[candidate]`` and charges the stored ``costs[candidate]``."""

    values: np.ndarray
    costs: np.ndarray
    latency: float = 0.0
    name: str = "replay"

    def __call__(self, candidate: int, seed: int) -> tuple[float, float]:
        del seed
        if self.latency > 0:
            time.sleep(self.latency)
        return float(self.values[candidate]), float(self.costs[candidate])

    @property
    def mean_cost(self) -> float:
        return float(np.mean(self.costs))
