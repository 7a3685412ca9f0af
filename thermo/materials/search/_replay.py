r"""Search strategies over a finite candidate library with several fidelities, and the replay.

A *fidelity* :math:`l = 0, \dots, L-1` (cheap to expensive) returns a value
:math:`y_l(m)` of candidate :math:`m` at a cost :math:`c_l(m)`; the goal is the candidate
best at the top fidelity, bought as cheaply as possible. In a *replay* both are looked up in
tables computed beforehand (each evaluation returns the stored value and is charged the
stored cost), so a planner can be benchmarked against a published search.

Strategies (``strategy=``):

* ``"random"``: candidates in a random order, each at the top fidelity.
* ``"single_fidelity"``: Bayesian optimisation on the top fidelity alone: a GP
  (:mod:`._gp` with one fidelity) and expected improvement (Jones, Schonlau & Welch 1998).
* ``"multi_fidelity"``: the autoregressive multi-fidelity GP over all fidelities; the
  candidate maximises the top-fidelity expected improvement, and the fidelity maximises the
  reduction of the posterior variance of :math:`f_{L-1}(m)` per unit expected cost,

  .. math:: l^* = \arg\max_l \frac{\mathrm{Cov}[f_{L-1}(m), f_l(m)\mid D]^2}
                 {(\mathrm{Var}[f_l(m)\mid D] + \sigma_l^2)\,\bar c_l},

  the cost-aware information rule of multi-fidelity BO (Kandasamy et al. 2016; Gantzler
  et al. 2023 choose between a Henry and a GCMC fidelity the same way). A fidelity already
  evaluated for :math:`m` is not repeated.
* ``"boltzmann"``: the search as sampling with delayed acceptance. Candidates are proposed
  from :math:`q_t(m) \propto e^{\lambda_t u_t(m)}`, with :math:`u_t` the standardised upper
  confidence bound of the top-fidelity surrogate and :math:`\lambda_t` annealed linearly
  from ``lambda_start`` to ``lambda_end``; the cheap tier screens each proposal first
  (fidelity :math:`L-2` is evaluated if it has not been), and the expensive one sees it with
  the second-stage probability :math:`\min(1, e^{\lambda_t (u'_t(m) - u_t(m))})` of
  Christen & Fox (2005), :math:`u'_t` being the bound after the cheap result: promotion is
  certain when the cheap tier raised the estimate and exponentially unlikely when it
  lowered it.

Targets are modelled on a log scale (``log_values=True``, for positive quantities such as
selectivities) and standardised on the observations so far.
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import jax.numpy as jnp
import jax.random as jr
import numpy as np
from scipy.stats import norm

from ._gp import fit_params, init_params, posterior, posterior_cross

__all__ = ["SearchResult", "replay", "STRATEGIES", "random_search_expected_cost"]

STRATEGIES = ("random", "single_fidelity", "multi_fidelity", "boltzmann")
#: Observation buffer capacity of the GP (grown by doubling when full; one compile each).
_CAPACITY = 128


class SearchResult(NamedTuple):
    """Output of :func:`replay`.

    Attributes:
        history: ordered ``(candidate_index, fidelity_index)`` of every evaluation.
        cost: ``(len(history),)`` cumulative cost after each evaluation.
        values: ``(len(history),)`` the value each evaluation returned.
        best_index: the best candidate known at the top fidelity at the end (-1: none).
        overhead_seconds: wall time of the planner itself (surrogate fits, acquisition),
            excluding the evaluations.
        n_fidelities: number of fidelities of the problem.
    """

    history: list[tuple[int, int]]
    cost: np.ndarray
    values: np.ndarray
    best_index: int
    overhead_seconds: float
    n_fidelities: int

    def cost_to_acquire(self, index: int, fidelity: int | None = None) -> float:
        """Cumulative cost when ``index`` was first evaluated at ``fidelity`` (default the
        top one); ``inf`` if it never was."""
        fid = self.n_fidelities - 1 if fidelity is None else int(fidelity)
        for k, (i, f) in enumerate(self.history):
            if i == index and f == fid:
                return float(self.cost[k])
        return math.inf


def random_search_expected_cost(costs_top: np.ndarray, index: int) -> float:
    r"""Exact mean cost of random search to reach ``index`` at the top fidelity.

    In a uniformly random order each other candidate comes first with probability 1/2, so
    :math:`\mathbb E[C] = c_m + \tfrac12 \sum_{j \ne m} c_j`.
    """
    c = np.asarray(costs_top, dtype=np.float64)
    return float(c[index] + 0.5 * (c.sum() - c[index]))


def _validate(features, values, costs, budget, strategy):
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    c = np.asarray(costs, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"features must be (n, d) with n >= 2, got shape {x.shape}")
    n = x.shape[0]
    if y.ndim != 2 or y.shape[1] != n or y.shape != c.shape:
        raise ValueError(
            "fidelity_values and fidelity_costs must both be (n_fidelities, n) with "
            f"n = {n} candidates, got {y.shape} and {c.shape}"
        )
    for name, a in (("features", x), ("fidelity_values", y), ("fidelity_costs", c)):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} contains NaN or inf")
    if np.any(c <= 0):
        raise ValueError("fidelity_costs must be positive")
    if not (isinstance(budget, int | float) and budget > 0):
        raise ValueError(f"budget must be a positive number, got {budget!r}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    return x, y, c


class _Model:
    """The GP over the observations so far (standardised features, standardised targets)."""

    def __init__(self, x, n_fidelities, log_values):
        std = x.std(axis=0)
        self.x = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
        self.L = n_fidelities
        self.log_values = log_values
        self.params = init_params(n_fidelities, x.shape[1])
        self.capacity = _CAPACITY
        self.obs: list[tuple[int, int, float]] = []
        self.fits = 0

    def add(self, i, f, value):
        self.obs.append((i, f, math.log(value) if self.log_values else value))

    def _arrays(self):
        while len(self.obs) > self.capacity:
            self.capacity *= 2
        n = len(self.obs)
        idx = np.zeros(self.capacity, dtype=np.int64)
        fid = np.zeros(self.capacity, dtype=np.int32)
        y = np.zeros(self.capacity)
        mask = np.zeros(self.capacity, dtype=bool)
        for k, (i, f, v) in enumerate(self.obs):
            idx[k], fid[k], y[k], mask[k] = i, f, v, True
        mu, sd = y[:n].mean(), y[:n].std() if n > 1 else 1.0
        sd = sd if sd > 0 else 1.0
        y = np.where(mask, (y - mu) / sd, 0.0)
        return (
            jnp.asarray(self.x[idx]),
            jnp.asarray(fid),
            jnp.asarray(y),
            jnp.asarray(mask),
            mu,
            sd,
        )

    def fit(self, n_steps):
        x, f, y, m, _, _ = self._arrays()
        self.params = fit_params(self.params, x, f, y, m, n_steps)
        self.fits += 1

    def predict(self, fidelity):
        x, f, y, m, mu, sd = self._arrays()
        xs = jnp.asarray(self.x)
        mean, var = posterior(self.params, x, f, y, m, xs, jnp.full(xs.shape[0], fidelity))
        return np.asarray(mean), np.sqrt(np.asarray(var)), mu, sd

    def information(self, candidate, fidelity):
        """Variance reduction of the top latent at ``candidate`` from one observation at
        ``fidelity`` (standardised units)."""
        x, f, y, m, _, _ = self._arrays()
        xs = jnp.asarray(self.x[candidate : candidate + 1])
        top = jnp.full((1,), self.L - 1)
        lvl = jnp.full((1,), fidelity)
        cov_tb, _ = posterior_cross(self.params, x, f, y, m, xs, top, lvl)
        var_b, noise_b = posterior_cross(self.params, x, f, y, m, xs, lvl, lvl)
        return float(cov_tb[0] ** 2 / (var_b[0] + noise_b[0]))


def _expected_improvement(mean, std, best):
    z = (mean - best) / std
    return (mean - best) * norm.cdf(z) + std * norm.pdf(z)


def replay(
    key,
    features,
    fidelity_values,
    fidelity_costs,
    *,
    budget: float,
    strategy: str,
    n_init: int = 3,
    stop_index: int | None = None,
    log_values: bool = True,
    refit_every: int = 5,
    lambda_start: float = 1.0,
    lambda_end: float = 10.0,
) -> SearchResult:
    r"""Replay a search over stored multi-fidelity results (module doc).

    Args:
        key: PRNG key (initial design, random order, Boltzmann proposals).
        features: ``(n, d)`` candidate descriptors.
        fidelity_values: ``(n_fidelities, n)`` stored values, cheap to expensive.
        fidelity_costs: ``(n_fidelities, n)`` stored costs (any unit), positive.
        budget: stop once the cumulative cost reaches it.
        strategy: one of :data:`STRATEGIES`.
        n_init: random candidates evaluated first (at every fidelity for the
            multi-fidelity strategies, at the top one otherwise); ignored by ``"random"``.
        stop_index: also stop once this candidate has been evaluated at the top fidelity
            (a benchmark's stopping rule; the planner never reads it otherwise).
        log_values: model :math:`\log y` (values must then be positive).
        refit_every: hyperparameters are refitted after every evaluation for the first 30
            observations, then every this many.
        lambda_start, lambda_end: the annealed inverse temperature of ``"boltzmann"``.

    Returns:
        :class:`SearchResult`.
    """
    x, y, c = _validate(features, fidelity_values, fidelity_costs, budget, strategy)
    if log_values and np.any(y <= 0):
        raise ValueError("log_values=True needs positive fidelity_values")
    L, n = y.shape
    top = L - 1
    if not 1 <= int(n_init) <= n:
        raise ValueError(f"n_init must be in [1, {n}], got {n_init}")
    k_init, k_loop = jr.split(key)
    rng = np.random.default_rng(np.asarray(jr.randint(k_init, (2,), 0, 2**31 - 1)))
    history: list[tuple[int, int]] = []
    values: list[float] = []
    costs: list[float] = []
    done: set[tuple[int, int]] = set()
    overhead = 0.0
    model = _Model(x, L if strategy in ("multi_fidelity", "boltzmann") else 1, log_values)

    def evaluate(i, f):
        history.append((int(i), int(f)))
        values.append(float(y[f, i]))
        costs.append(float(c[f, i]))
        done.add((int(i), int(f)))
        if strategy != "random":
            model.add(int(i), f if model.L > 1 else 0, float(y[f, i]))

    def finished():
        spent = sum(costs)
        return spent >= budget or (stop_index is not None and (stop_index, top) in done)

    if strategy == "random":
        for i in rng.permutation(n):
            evaluate(i, top)
            if finished():
                break
        return _result(history, values, costs, overhead, top)

    first = rng.choice(n, size=int(n_init), replace=False)
    for i in first:
        for f in range(L) if model.L > 1 else [top]:
            if not finished():
                evaluate(i, f)
    t0 = time.perf_counter()
    model.fit(300)
    overhead += time.perf_counter() - t0
    iteration = 0
    while not finished() and len(done) < L * n:
        iteration += 1
        t0 = time.perf_counter()
        n_obs = len(model.obs)
        if n_obs <= 30 or iteration % max(int(refit_every), 1) == 0:
            model.fit(100)
        open_ = np.array([(i, top) not in done for i in range(n)])
        if not open_.any():
            break
        mean, std, _, _ = model.predict(model.L - 1)
        best_top = max((v for (i, f, v) in model.obs if f == model.L - 1), default=None)
        if strategy in ("single_fidelity", "multi_fidelity"):
            *_, mu, sd = model._arrays()
            best = (best_top - mu) / sd if best_top is not None else float(np.max(mean))
            ei = np.where(open_, _expected_improvement(mean, std, best), -np.inf)
            cand = int(np.argmax(ei))
            fid = top
            if strategy == "multi_fidelity":
                mean_cost = [
                    np.mean([cc for (i, f), cc in zip(history, costs, strict=True) if f == lv])
                    for lv in range(L)
                ]
                scores = [
                    -np.inf if (cand, lv) in done else model.information(cand, lv) / mean_cost[lv]
                    for lv in range(L)
                ]
                fid = int(np.argmax(scores))
            overhead += time.perf_counter() - t0
            evaluate(cand, fid)
            continue
        # boltzmann: propose from exp(lambda u), screen cheaply, promote by delayed acceptance
        frac = min(1.0, sum(costs) / budget) if math.isfinite(budget) else 0.0
        lam = lambda_start + (lambda_end - lambda_start) * min(1.0, iteration / 100.0 + frac)
        ucb = (mean + std - np.mean(mean)) / max(np.std(mean + std), 1e-12)
        logits = np.where(open_, lam * ucb, -np.inf)
        p = np.exp(logits - logits.max())
        p /= p.sum()
        cand = int(rng.choice(n, p=p))
        screen = top - 1
        overhead += time.perf_counter() - t0
        if (cand, screen) not in done:
            evaluate(cand, screen)
            if finished():
                break
            t0 = time.perf_counter()
            mean2, std2, _, _ = model.predict(model.L - 1)
            u2 = (mean2[cand] + std2[cand] - np.mean(mean)) / max(np.std(mean + std), 1e-12)
            accept = rng.uniform() < min(1.0, math.exp(min(0.0, lam * (u2 - ucb[cand]))))
            overhead += time.perf_counter() - t0
        else:
            accept = True
        if accept:
            evaluate(cand, top)
    return _result(history, values, costs, overhead, top)


def _result(history, values, costs, overhead, top):
    at_top = [(v, i) for (i, f), v in zip(history, values, strict=True) if f == top]
    best = max(at_top)[1] if at_top else -1
    return SearchResult(history, np.cumsum(costs), np.asarray(values), int(best), overhead, top + 1)
