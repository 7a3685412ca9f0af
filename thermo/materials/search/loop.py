r"""The search loop: strategies, the resumable driver and the replay contract.

Strategies (each chooses the next ``(candidate, fidelity)`` pairs from the history alone, so a
resumed loop takes the same decisions):

* ``"random"``: the top fidelity on candidates in a random order (one permutation per key).
* ``"single_fidelity"``: expected improvement (Jones, Schonlau & Welch 1998) of a GP on the
  top fidelity only, :math:`\mathrm{EI} = \sigma\,[z\Phi(z)+\varphi(z)]`,
  :math:`z = (\mu - f^\star)/\sigma`.
* ``"multi_fidelity"``: the augmented EI of Gantzler et al. (Digital Discovery 2023, after
  Huang et al. 2006): an initial design of ``n_init`` candidates, run at the cheapest
  fidelity (``design="cheap"``, the default) or at every fidelity (``"all"``, as published),
  chosen by farthest-point (max-min distance) design from a random seed candidate; then the
  pair :math:`(x, l)` maximising
  :math:`\mathrm{EI}_L(x)\,\rho_l(x)\,/\,\hat c_l(x)`, with :math:`\mathrm{EI}_L` the
  expected improvement of the top-fidelity latent over the best top-fidelity value seen,
  :math:`\rho_l(x) = \mathrm{corr}[f_l(x), f_L(x)]` under the multi-fidelity GP posterior
  (:math:`\rho_L = 1`; by default the Kennedy-O'Hagan autoregressive co-kriging
  :class:`~thermo.materials.search.surrogate.AutoregressiveGP`, whose correlation varies
  with :math:`x` and approaches 1 where the cheap value is known, ``surrogate="coregional"``
  for :class:`~thermo.materials.search.surrogate.MultiFidelityGP`), and :math:`\hat c_l(x)` the expected cost. The score is compared in
  log space (LogEI, Ament et al. 2023) so that it still ranks candidates where EI underflows.
  The published rule, the default, uses the mean cost per fidelity; ``cost_model=True``
  charges a candidate already run at the cheapest fidelity its own cheap cost times the
  mean cost ratio (see ``_Strategy._expected_costs``), which pays only where that ratio
  varies little from candidate to candidate.
* ``"boltzmann"``: the search as sampling (:mod:`thermo.materials.search.boltzmann`), a
  delayed-acceptance chain (Christen & Fox 2005) over the candidates with target
  :math:`\pi_t(m) \propto e^{\lambda_t s(m)}`, :math:`s` the standardised surrogate mean of
  the top fidelity, :math:`\lambda_t = \lambda_0 + \dot\lambda\,t` annealed with the number
  :math:`t` of evaluations. After the same initial design as ``multi_fidelity``, a proposal
  :math:`y` is drawn from :math:`e^{\lambda_t s}` over the candidates not yet seen at the top
  fidelity by adaptive-tempering SMC (:func:`~thermo.materials.search.boltzmann.boltzmann_smc`,
  whose moves are delayed-acceptance steps screened by the cheapest fidelity's surrogate
  mean). Then the fidelities are the stages: :math:`y` is evaluated at the cheapest fidelity
  it lacks, the surrogate refitted, and it goes on to the next fidelity with probability
  :math:`\min(1, e^{\lambda_t([s'(y)-s(y)] - [s'(x)-s(x)])})` (the stage ratio for an
  independence proposal, :math:`s` the scores before, :math:`s'` after the evaluation,
  :math:`x` the chain's state); a proposal that passes the top fidelity becomes the state.
  Only the survivors of the cheap stages reach the expensive ones. The chain's state and the
  scores a decision needs are written with each evaluation (``inputs["da"]``), so a resumed
  search takes the same decisions. As the surrogate changes after every evaluation this is
  an adaptive search, not an exact sampler (the fixed-score kernel is exact; tested).

Costs are in the units of the fidelities' costs. The expected cost of a fidelity before it is
run is the mean cost charged at it so far (``cost_guess`` before that).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import NamedTuple

import jax.random as jr
import numpy as np
from scipy.special import erfcx
from scipy.stats import norm

from .executors import InProcessExecutor
from .fidelity import CandidateSpace, ReplayFidelity
from .store import Evaluation, EvaluationStore, code_version
from .surrogate import AutoregressiveGP, MultiFidelityGP

__all__ = [
    "ACQUISITIONS",
    "DESIGNS",
    "STRATEGIES",
    "SURROGATES",
    "VALUE_TRANSFORMS",
    "SearchResult",
    "expected_improvement",
    "gittins_index",
    "log_expected_improvement",
    "max_diverse_design",
    "replay",
    "run_loop",
]

STRATEGIES = ("random", "single_fidelity", "multi_fidelity", "boltzmann")
SURROGATES = ("autoregressive", "coregional")
DESIGNS = ("all", "cheap")
ACQUISITIONS = ("ei_per_cost", "gittins")
VALUE_TRANSFORMS = ("identity", "log")


class SearchResult(NamedTuple):
    """What a search returns.

    Attributes:
        history: ``[(candidate, fidelity), ...]`` in evaluation order.
        cost: ``(len(history),)`` cumulative cost after each evaluation.
        values: ``(len(history),)`` the value each evaluation returned.
        best_index: the best candidate known at the top fidelity (``-1`` if none yet).
        overhead_seconds: wall time of the strategy (surrogate fits, acquisition) this session.
    """

    history: list[tuple[int, int]]
    cost: np.ndarray
    values: np.ndarray
    best_index: int
    overhead_seconds: float


def expected_improvement(mean, sd, best):
    r""":math:`\mathrm{EI} = (\mu-f^\star)\Phi(z) + \sigma\varphi(z)`, :math:`z=(\mu-f^\star)/\sigma`."""
    mean, sd = np.asarray(mean, float), np.maximum(np.asarray(sd, float), 1e-12)
    z = (mean - best) / sd
    return (mean - best) * norm.cdf(z) + sd * norm.pdf(z)


def gittins_index(mean, sd, cost):
    r"""Pandora's-box reservation values :math:`g` (Weitzman 1979; Xie et al. 2024, PBGI):
    the solution of :math:`\mathrm{EI}(\mu, \sigma, g) = c`.

    With :math:`g = \mu - \sigma u`, :math:`\mathrm{EI} = \sigma h(u)`,
    :math:`h(u) = \varphi(u) + u\Phi(u)` increasing, so :math:`u = h^{-1}(c/\sigma)`: found
    by bisection on :math:`\log h` (:func:`log_expected_improvement`) where
    :math:`c/\sigma < 10`, else :math:`u = c/\sigma` (there :math:`h(u) - u < 10^{-23}`).
    A box is worth opening while its index exceeds the best value in hand: the index falls
    with the cost and rises with the uncertainty.

    Args:
        mean, sd: posterior mean and standard deviation of each box's value.
        cost: the price of opening each box, in the value's units (``>= 0``).
    """
    mean, sd, cost = np.broadcast_arrays(*(np.asarray(a, float) for a in (mean, sd, cost)))
    if np.any(cost < 0) or np.any(sd < 0):
        raise ValueError("gittins_index: cost and sd must be >= 0")
    sd = np.maximum(sd, 1e-12)
    t = cost / sd
    u = t.copy()
    small = t < 10.0
    if small.any():
        log_t = np.log(np.maximum(t[small], 1e-300))
        lo, hi = np.full(log_t.shape, -40.0), np.full(log_t.shape, 10.0)
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            above = log_expected_improvement(mid, 1.0, 0.0) > log_t
            hi = np.where(above, mid, hi)
            lo = np.where(above, lo, mid)
        u[small] = 0.5 * (lo + hi)
    return mean - sd * u


def log_expected_improvement(mean, sd, best):
    r""":math:`\log\mathrm{EI} = \log\sigma + \log h(z)`, :math:`h(z) = \varphi(z) + z\Phi(z)`,
    evaluated stably in the far tail (LogEI, Ament et al., NeurIPS 2023, eq. 9): for
    :math:`z \le -1`, :math:`\log h(z) = -z^2/2 - \tfrac12\log 2\pi +
    \log\big(1 - \sqrt{\pi/2}\,|z|\,\mathrm{erfcx}(-z/\sqrt2)\big)`, so candidates whose plain EI
    underflows to zero still rank correctly. Shapes as :func:`expected_improvement`.
    """
    mean, sd = np.asarray(mean, float), np.maximum(np.asarray(sd, float), 1e-12)
    z0 = (mean - best) / sd
    z = np.atleast_1d(z0).astype(float)
    out = np.empty_like(z)
    hi = z > -1
    zh = z[hi]
    out[hi] = np.log(norm.pdf(zh) + zh * norm.cdf(zh))
    zl = z[~hi]
    t = np.sqrt(np.pi / 2) * np.abs(zl) * erfcx(-zl / np.sqrt(2))
    out[~hi] = -0.5 * zl**2 - 0.5 * np.log(2 * np.pi) + np.log1p(-np.minimum(t, 1 - 1e-300))
    return out.reshape(np.shape(z0)) + np.log(sd)


def _best_open_pairs(score: np.ndarray, done, q: int) -> list[tuple[int, int]]:
    """The ``q`` highest-scoring ``(candidate, fidelity)`` pairs of a ``(n_fid, n)`` score
    that are not in ``done`` (ties in a stable order)."""
    score = score.copy()
    for c, lvl in done:
        score[lvl, c] = -np.inf
    flat = np.argsort(-score, axis=None, kind="stable")[:q]
    return [
        (int(c), int(lvl))
        for lvl, c in zip(*np.unravel_index(flat, score.shape), strict=True)
        if score[lvl, c] > -np.inf
    ]


@dataclasses.dataclass
class _State:
    n: int
    n_fid: int
    idx: np.ndarray
    lvl: np.ndarray
    y: np.ndarray
    cost: np.ndarray
    done: set
    inputs: list = dataclasses.field(default_factory=list)
    z: np.ndarray | None = None  # the values on the surrogate's scale (``y`` if None)

    def __post_init__(self):
        if self.z is None:
            self.z = self.y


def max_diverse_design(features, seed_index: int, k: int) -> list[int]:
    r"""Farthest-point (max-min distance) design of ``k`` candidates starting at ``seed_index``.

    Features are min-max scaled to :math:`[0, 1]` per column; each next candidate maximises
    its distance to the nearest one chosen so far (Gantzler et al. 2023's initial design).
    ``features (n, d)``; returns ``k`` distinct indices.
    """
    f = np.asarray(features, float)
    span = f.max(0) - f.min(0)
    x = (f - f.min(0)) / np.where(span > 0, span, 1.0)
    ids = [int(seed_index)]
    dist = np.linalg.norm(x - x[seed_index], axis=1)
    for _ in range(k - 1):
        nxt = int(np.argmax(dist))
        if dist[nxt] <= 0:
            break
        ids.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(x - x[nxt], axis=1))
    return ids


class _Strategy:
    def __init__(
        self,
        name,
        key,
        space,
        n_fid,
        *,
        n_init,
        cost_guess,
        lambda0,
        lambda_rate,
        cost_model,
        surrogate="autoregressive",
        design="all",
        acquisition="ei_per_cost",
        gittins_lambda=0.01,
    ):
        self.name, self.key, self.space, self.n_fid = name, key, space, n_fid
        self.n_init, self.cost_guess = n_init, np.asarray(cost_guess, float)
        self.lambda0, self.lambda_rate = lambda0, lambda_rate
        self.cost_model = cost_model
        self.surrogate = surrogate
        self.acquisition, self.gittins_lambda = acquisition, float(gittins_lambda)
        n = len(space)
        self.order = np.asarray(jr.permutation(jr.fold_in(key, 0), n))
        self.gp = None
        self.last_fit_n: int | None = None
        self.meta: dict = {}
        # multi-fidelity initial design: n_init candidates, each at every fidelity ("all"), or
        # at the cheapest fidelity only ("cheap"; the top fidelity then runs only where the
        # acquisition asks for it)
        ids = max_diverse_design(space.features, int(self.order[0]), min(n_init, n))
        levels = range(n_fid) if design == "all" else range(1)
        self.design = [(int(i), lvl) for i in ids for lvl in levels]

    def _expected_cost(self, s: _State, lvl: int) -> float:
        m = s.lvl == lvl
        return float(s.cost[m].mean()) if m.any() else float(self.cost_guess[lvl])

    def _next_random(self, s: _State, lvl: int, q: int):
        out = [(int(i), lvl) for i in self.order if (int(i), lvl) not in s.done]
        return out[:q]

    def _fit(self, s: _State):
        """Fit the surrogate to ``s`` (warm-started from the previous fit; the top fidelity
        only for ``single_fidelity``) and note the history length it saw in ``last_fit_n``."""
        self.last_fit_n = len(s.y)
        top = self.n_fid - 1
        if self.name == "single_fidelity":
            m = s.lvl == top
            if self.gp is None:
                self.gp = MultiFidelityGP(self.space.features, 1)
            return self.gp.fit(s.idx[m], np.zeros(m.sum(), int), s.z[m]), 0
        if self.gp is None:
            ar = self.surrogate == "autoregressive"
            cls = AutoregressiveGP if ar else MultiFidelityGP
            self.gp = cls(self.space.features, self.n_fid)
        return self.gp.fit(s.idx, s.lvl, s.z), top

    def propose(self, s: _State, q: int) -> list[tuple[int, int]]:
        top = self.n_fid - 1
        if self.name == "random":
            return self._next_random(s, top, q)
        if self.name == "single_fidelity":
            if (s.lvl == top).sum() < self.n_init:
                return self._next_random(s, top, min(q, self.n_init - int((s.lvl == top).sum())))
            gp, lv = self._fit(s)
            return self._ei_top(s, gp, lv, q, fidelity=top)
        if self.name == "multi_fidelity":
            todo = [p for p in self.design if p not in s.done]
            if todo:
                return todo[:q]
            gp, _ = self._fit(s)
            return self._multi_fidelity(s, gp, q)
        # the Boltzmann search starts from the multi-fidelity initial design
        todo = [p for p in self.design if p not in s.done]
        if todo:
            return todo[:q]
        gp, _ = self._fit(s)
        return self._boltzmann(s, gp)

    def _open(self, s: _State, top: int) -> np.ndarray:
        return np.array([(i, top) not in s.done for i in range(s.n)])

    def _best_top(self, s: _State, gp, lv):
        top = self.n_fid - 1
        m = s.lvl == top
        if m.any():
            return float(s.z[m].max())
        mean, _ = gp.predict(lv, s.idx)
        return float(mean.max())

    def _ei_top(self, s, gp, lv, q, fidelity):
        mean, sd = gp.predict(lv)
        ei = expected_improvement(mean, sd, self._best_top(s, gp, lv))
        ei[~self._open(s, self.n_fid - 1)] = -np.inf
        order = np.argsort(-ei, kind="stable")
        return [(int(i), fidelity) for i in order[:q] if np.isfinite(ei[i])]

    def _expected_costs(self, s: _State) -> np.ndarray:
        r"""``(n_fid, n)`` expected cost of each pair.

        Without ``cost_model``: the mean cost charged at each fidelity so far (Gantzler et
        al.'s cost ratio). With it, a candidate whose cheapest fidelity has been run is charged
        :math:`\hat c_l(x) = c_0(x)\,\hat r_l`: both simulations scale with the same
        framework (atoms, cell volume), so the cost ratio, not the cost, is shared;
        :math:`\hat r_l = \exp(\overline{\log r} + \tfrac12 s^2_{\log r})` is the log-normal
        mean of the ratios :math:`c_l(x)/c_0(x)` seen on candidates run at both.
        """
        mean = np.array([self._expected_cost(s, lvl) for lvl in range(self.n_fid)])
        out = np.repeat(mean[:, None], s.n, axis=1)
        if not self.cost_model:
            return out
        c0 = {int(i): float(c) for i, lvl, c in zip(s.idx, s.lvl, s.cost, strict=True) if lvl == 0}
        seen = np.array(sorted(c0), int)
        for lvl in range(1, self.n_fid):
            pairs = [
                np.log(c / c0[int(i)])
                for i, lv, c in zip(s.idx, s.lvl, s.cost, strict=True)
                if lv == lvl and int(i) in c0
            ]
            if not pairs or not len(seen):
                continue
            log_r = np.asarray(pairs)
            var = log_r.var(ddof=1) if len(log_r) > 1 else 0.0
            ratio = np.exp(log_r.mean() + 0.5 * var)
            out[lvl, seen] = np.array([c0[int(i)] for i in seen]) * ratio
        return out

    def _gittins(self, s, gp, q):
        r"""Cost-aware choice by Pandora's-box indices (:func:`gittins_index`).

        Values are in units of the spread of the top-fidelity values seen so far, costs in
        units of the expected mean top-fidelity cost, times ``gittins_lambda``. Opening
        :math:`(x, L-1)` reveals :math:`f_{L-1}(x) \sim \mathcal N(\mu, \sigma^2)` at cost
        :math:`c_{L-1}(x)`. A cheaper fidelity :math:`l` reveals no top value itself: it
        moves the top posterior mean to :math:`\mu' \sim \mathcal N(\mu, (\rho\sigma)^2)`
        (:math:`\rho` the posterior correlation of :math:`f_l(x)` and :math:`f_{L-1}(x)`),
        after which the top value is nearly known and is claimed at cost :math:`c_{L-1}(x)`:
        the nested box's index is that of :math:`\mu' - c_{L-1}(x)` at cost :math:`c_l(x)`
        (exact as :math:`\rho \to 1`). The ``q`` highest indices over open pairs are run.
        """
        top = self.n_fid - 1
        mean, sd = gp.predict(top)
        y_top = s.z[s.lvl == top]
        scale = float(y_top.std()) if len(y_top) > 1 and y_top.std() > 0 else float(sd.mean())
        cost = self._expected_costs(s)
        c_unit = self._expected_cost(s, top)
        lam = self.gittins_lambda * scale / c_unit
        index = np.empty((self.n_fid, s.n))
        index[top] = gittins_index(mean, sd, lam * cost[top])
        for lvl in range(top):
            _, sd_l = gp.predict(lvl)
            rho = np.clip(gp.cross_cov(lvl, top) / np.maximum(sd_l * sd, 1e-300), 0.0, 1.0)
            index[lvl] = gittins_index(mean - lam * cost[top], rho * sd, lam * cost[lvl])
        return _best_open_pairs(index, s.done, q)

    def _multi_fidelity(self, s, gp, q):
        if self.acquisition == "gittins":
            return self._gittins(s, gp, q)
        top = self.n_fid - 1
        mean, sd = gp.predict(top)
        log_ei = log_expected_improvement(mean, sd, self._best_top(s, gp, top))
        log_cost = np.log(self._expected_costs(s))
        score = np.empty((self.n_fid, s.n))
        for lvl in range(self.n_fid):
            if lvl == top:
                score[lvl] = log_ei - log_cost[lvl]
                continue
            _, sd_l = gp.predict(lvl)
            rho = gp.cross_cov(lvl, top) / np.maximum(sd_l * sd, 1e-300)
            with np.errstate(divide="ignore"):
                score[lvl] = log_ei + np.log(np.maximum(rho, 0.0)) - log_cost[lvl]
        return _best_open_pairs(score, s.done, q)

    def _scores(self, gp, level):
        mean, _ = gp.predict(level)
        return (mean - mean.mean()) / (mean.std() + 1e-12)

    def _boltzmann(self, s, gp):
        from .boltzmann import boltzmann_smc

        top = self.n_fid - 1
        step = len(s.y)
        key = jr.fold_in(self.key, 1 + step)
        u_key, p_key = jr.split(key)
        lam = self.lambda0 + self.lambda_rate * step
        score = self._scores(gp, top)
        opn = self._open(s, top)
        da = s.inputs[-1].get("da") if s.inputs else None
        x = -1 if da is None else int(da["x"])
        sx = float(score[x]) if x >= 0 else 0.0
        if da is not None:
            y = int(da["y"])
            # the stage just evaluated: pass on with the delayed-acceptance probability
            log_alpha = da["lam"] * ((score[y] - da["score_y"]) - (sx - da["score_x"]))
            passed = np.log(float(jr.uniform(u_key))) < min(0.0, float(log_alpha))
            if passed and s.lvl[-1] == top:
                x, sx = y, float(score[y])  # accepted: the chain moves to y
            elif passed:
                nxt = next(lvl for lvl in range(self.n_fid) if (y, lvl) not in s.done)
                return self._da_pair(y, nxt, x, score, sx, da["lam"])
        if not opn.any():
            return []
        cheap = self._scores(gp, 0)
        res = boltzmann_smc(
            p_key, np.stack([cheap, score]), lam, mask=opn, n_particles=self.n_particles
        )
        w = np.asarray(res.log_weights, float)
        w = np.exp(w - w.max())
        g_key = jr.fold_in(p_key, 1)
        pick = int(jr.choice(g_key, len(w), p=w / w.sum()))
        y = int(np.asarray(res.samples)[pick, 0])
        nxt = next(lvl for lvl in range(self.n_fid) if (y, lvl) not in s.done)
        return self._da_pair(y, nxt, x, score, sx, lam)

    def _da_pair(self, y, lvl, x, score, sx, lam):
        self.meta[(y, lvl)] = {
            "da": {"x": x, "y": y, "lam": lam, "score_y": float(score[y]), "score_x": sx}
        }
        return [(y, lvl)]


class _Evaluate:
    """Picklable evaluation task: ``(candidate, fidelity, seed) -> (value, cost, wall)``."""

    def __init__(self, fidelities):
        self.fidelities = list(fidelities)

    def __call__(self, item):
        cand, lvl, seed = item
        t0 = time.perf_counter()
        value, cost = self.fidelities[lvl](cand, seed)
        return float(value), float(cost), time.perf_counter() - t0


def _seed(key, cand: int, lvl: int, n_fid: int) -> int:
    base = [int(k) for k in np.asarray(jr.key_data(key)).ravel()]
    return int(np.random.default_rng([*base, cand, lvl]).integers(2**31 - 1))


def _prefix(s: _State, n: int) -> _State:
    """The state after the first ``n`` evaluations of ``s``."""
    return _State(
        s.n,
        s.n_fid,
        s.idx[:n],
        s.lvl[:n],
        s.y[:n],
        s.cost[:n],
        {(int(i), int(lv)) for i, lv in zip(s.idx[:n], s.lvl[:n], strict=True)},
        s.inputs[:n],
        s.z[:n],
    )


def _transformed(y: np.ndarray, how: str, evals) -> np.ndarray:
    """The values ``y`` on the surrogate's scale (``how`` in :data:`VALUE_TRANSFORMS`)."""
    if how == "identity":
        return y
    bad = np.flatnonzero(~(y > 0))
    if bad.size:
        e = evals[int(bad[0])]
        raise ValueError(
            f"value_transform='log' needs positive values; candidate {e.candidate} at "
            f"fidelity {e.fidelity} returned {e.result} (the evaluation is stored)"
        )
    return np.log(y)


def run_loop(
    key,
    space: CandidateSpace,
    fidelities: Sequence,
    *,
    strategy: str,
    budget: float,
    store: EvaluationStore | None = None,
    executor=None,
    batch_size: int = 1,
    n_init: int = 3,
    cost_guess: Sequence[float] | None = None,
    stop_index: int | None = None,
    max_evaluations: int | None = None,
    lambda0: float = 1.0,
    lambda_rate: float = 0.1,
    cost_model: bool = False,
    surrogate: str = "autoregressive",
    n_particles: int = 256,
    design: str = "cheap",
    acquisition: str = "ei_per_cost",
    gittins_lambda: float = 0.01,
    value_transform: str = "identity",
) -> SearchResult:
    """Run (or resume) a search until ``budget`` is spent.

    Evaluations already in ``store`` (a killed earlier session of the same run) are the
    starting history; every new evaluation is written to ``store`` as it finishes. The loop
    never submits a ``(candidate, fidelity)`` pair that is stored.

    Args:
        key: PRNG key (the decisions are a function of the key and the history).
        space: the candidate library.
        fidelities: ``[fidelity_0, ..., fidelity_{L-1}]`` cheap to expensive, each callable
            ``(candidate, seed) -> (value, cost)``.
        strategy: one of :data:`STRATEGIES`.
        budget: stop once the cumulative cost reaches it.
        store: evaluation store (default: in memory).
        executor: :class:`InProcessExecutor` (default), ``ProcessPoolExecutor`` or
            ``DaskExecutor``.
        batch_size: pairs proposed and run concurrently per round.
        n_init: initial design size: random top-tier evaluations for ``single_fidelity``,
            and for ``multi_fidelity`` and ``boltzmann`` that many max-diverse candidates (see
            ``design``).
        cost_guess: expected cost per fidelity before any is charged (default: mean of a
            ``ReplayFidelity``'s costs, else 1).
        stop_index: stop once this candidate has been evaluated at the top fidelity.
        max_evaluations: stop after this many evaluations in total.
        lambda0, lambda_rate: the Boltzmann search's inverse temperature schedule.
        cost_model: ``multi_fidelity`` only: per-candidate expected costs from the candidate's
            cheap-tier cost and the observed cost ratio (default ``False``: the mean cost
            per fidelity, as published).
        surrogate: ``multi_fidelity`` and ``boltzmann``: ``"autoregressive"`` (default,
            :class:`~thermo.materials.search.surrogate.AutoregressiveGP`, Kennedy-O'Hagan
            co-kriging) or ``"coregional"`` (:class:`MultiFidelityGP`, one shared fidelity
            correlation and length scales).
        n_particles: ``boltzmann`` only: SMC population drawing each proposal.
        design: ``multi_fidelity`` and ``boltzmann``: the initial design's ``n_init``
            max-diverse candidates run at every fidelity (``"all"``, Gantzler et al.'s
            design) or at the cheapest one only (``"cheap"``, the default): the top
            fidelity then runs only on candidates the acquisition picks, so no top-fidelity cost is spent on
            the design's space-filling (often atypical, so unpromising) candidates; the
            discrepancy's hyperparameters start from the a-priori
            :data:`~thermo.materials.search.surrogate.AR_PRIOR`.
        acquisition: ``multi_fidelity`` only: ``"ei_per_cost"`` (Gantzler et al.: top-fidelity
            log EI, plus the log fidelity correlation for a cheaper fidelity, minus the log
            expected cost) or ``"gittins"`` (Pandora's-box indices, ``_Strategy._gittins``:
            a costly but near-certain best candidate is run before cheaper, less promising
            ones, which EI per cost does not do).
        gittins_lambda: ``"gittins"`` only: the price of one mean top-fidelity evaluation in
            units of the spread of the top-fidelity values (small: the index is nearly the
            posterior mean; large: cheap boxes first).
        value_transform: the scale the surrogates model and expected improvement is taken
            on: ``"identity"`` or ``"log"`` (positive values only, such as selectivities or
            Henry coefficients; an output warping: ratios of adsorption constants are close
            to log-normal, and the fidelities are closer to linearly related in logs). The
            search still maximises the value itself (the log is monotone); the history and
            ``values`` hold the untransformed values.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if not fidelities:
        raise ValueError("need at least one fidelity")
    if not (np.isfinite(budget) and budget > 0):
        raise ValueError(f"budget must be positive and finite, got {budget}")
    if surrogate not in SURROGATES:
        raise ValueError(f"surrogate must be one of {SURROGATES}, got {surrogate!r}")
    if batch_size < 1 or n_init < 1:
        raise ValueError("batch_size and n_init must be >= 1")
    if n_particles < 2:
        raise ValueError(f"n_particles must be >= 2, got {n_particles}")
    if design not in DESIGNS:
        raise ValueError(f"design must be one of {DESIGNS}, got {design!r}")
    if acquisition not in ACQUISITIONS:
        raise ValueError(f"acquisition must be one of {ACQUISITIONS}, got {acquisition!r}")
    if not (np.isfinite(gittins_lambda) and gittins_lambda > 0):
        raise ValueError(f"gittins_lambda must be positive and finite, got {gittins_lambda}")
    if value_transform not in VALUE_TRANSFORMS:
        raise ValueError(
            f"value_transform must be one of {VALUE_TRANSFORMS}, got {value_transform!r}"
        )
    n_fid = len(fidelities)
    if cost_guess is None:
        cost_guess = [f.mean_cost if isinstance(f, ReplayFidelity) else 1.0 for f in fidelities]
    store = EvaluationStore() if store is None else store
    executor = InProcessExecutor() if executor is None else executor
    strat = _Strategy(
        strategy,
        key,
        space,
        n_fid,
        n_init=n_init,
        cost_guess=cost_guess,
        lambda0=lambda0,
        lambda_rate=lambda_rate,
        cost_model=cost_model,
        surrogate=surrogate,
        design=design,
        acquisition=acquisition,
        gittins_lambda=gittins_lambda,
    )
    strat.n_particles = int(n_particles)
    evals = store.evaluations()
    task = _Evaluate(fidelities)
    version = code_version()
    overhead = 0.0
    top = n_fid - 1

    def state():
        y = np.array([e.result for e in evals], float)
        return _State(
            len(space),
            n_fid,
            np.array([e.candidate for e in evals], int),
            np.array([e.fidelity for e in evals], int),
            y,
            np.array([e.cost for e in evals], float),
            {(e.candidate, e.fidelity) for e in evals},
            [e.inputs for e in evals],
            _transformed(y, value_transform, evals),
        )

    def finished(s):
        if sum(e.cost for e in evals) >= budget:
            return True
        if max_evaluations is not None and len(evals) >= max_evaluations:
            return True
        return stop_index is not None and (stop_index, top) in s.done

    # A resumed loop first refits its surrogate on the history prefixes the killed session
    # fitted on (``inputs["fit_n"]``), so that the warm-started hyperparameters, and with them
    # every later decision, are those of an uninterrupted run.
    t0 = time.perf_counter()
    full = state() if evals else None
    for n in sorted({e.inputs["fit_n"] for e in evals if e.inputs.get("fit_n") is not None}):
        strat._fit(_prefix(full, n))
    overhead += time.perf_counter() - t0

    while True:
        s = state()
        if finished(s):
            break
        t0 = time.perf_counter()
        strat.last_fit_n = None
        pairs = strat.propose(s, batch_size)
        fit_n = strat.last_fit_n
        overhead += time.perf_counter() - t0
        pairs = [p for p in dict.fromkeys(pairs) if p not in s.done]
        if not pairs:
            break
        items = [(c, lvl, _seed(key, c, lvl, n_fid)) for c, lvl in pairs]
        for (c, lvl, seed), (value, cost, wall) in executor.map_unordered(task, items):
            inputs = {"candidate": c, "fidelity": lvl, **strat.meta.pop((c, lvl), {})}
            if fit_n is not None:
                inputs["fit_n"] = fit_n
            e = Evaluation(c, lvl, value, cost, wall, seed, inputs, version)
            store.add(e)
            evals.append(e)
    s = state()
    m = s.lvl == top
    best = int(s.idx[m][np.argmax(s.y[m])]) if m.any() else -1
    return SearchResult(
        [(int(a), int(b)) for a, b in zip(s.idx, s.lvl, strict=True)],
        np.cumsum(s.cost),
        s.y,
        best,
        overhead,
    )


def replay(
    key,
    features,
    fidelity_values,
    fidelity_costs,
    *,
    budget: float,
    strategy: str,
    value_transform: str = "auto",
    **kwargs,
) -> SearchResult:
    """Replay a stored multi-fidelity screen through the loop (Gantzler et al. 2023 setup).

    Each evaluation returns ``fidelity_values[l, i]`` and is charged ``fidelity_costs[l, i]``.

    Args:
        key: PRNG key.
        features: ``(n, d)`` candidate features.
        fidelity_values: ``(n_fidelities, n)``, cheap to expensive.
        fidelity_costs: ``(n_fidelities, n)``, positive.
        budget: total cost allowed (same units as the costs).
        strategy: one of :data:`STRATEGIES`.
        value_transform: as in :func:`run_loop`, or ``"auto"`` (the default): ``"log"``
            where every stored value is positive (a table of selectivities or Henry
            coefficients), else ``"identity"``. It decides from the sign of the table only.
        **kwargs: passed to :func:`run_loop` (``stop_index``, ``store``, ``executor``, ...).

    Returns:
        :class:`SearchResult` (``history``, cumulative ``cost``, ``best_index``, ...).
    """
    f = np.asarray(features, dtype=float)
    v = np.asarray(fidelity_values, dtype=float)
    c = np.asarray(fidelity_costs, dtype=float)
    if f.ndim != 2:
        raise ValueError(f"features must be (n, d), got shape {f.shape}")
    n = f.shape[0]
    if v.ndim != 2 or v.shape[1] != n:
        raise ValueError(f"fidelity_values must be (n_fidelities, {n}), got shape {v.shape}")
    if c.shape != v.shape:
        raise ValueError(f"fidelity_costs shape {c.shape} != fidelity_values shape {v.shape}")
    if not (np.all(np.isfinite(v)) and np.all(np.isfinite(c))):
        raise ValueError("fidelity_values and fidelity_costs must be finite")
    if np.any(c <= 0):
        raise ValueError("fidelity_costs must be positive")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if value_transform == "auto":
        value_transform = "log" if np.all(v > 0) else "identity"
    space = CandidateSpace(f)
    fids = [ReplayFidelity(v[k], c[k], name=f"replay_{k}") for k in range(v.shape[0])]
    return run_loop(
        key,
        space,
        fids,
        strategy=strategy,
        budget=budget,
        value_transform=value_transform,
        **kwargs,
    )
