"""Exact-answer tests of the search loop (issue 18)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from thermo.materials import search
from thermo.materials.search import surrogate


def _library(n=40, d=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    hi = np.sin(x[:, 0]) + 0.5 * x[:, 1]
    lo = 0.8 * hi + 0.1 * x[:, 2]
    costs = np.stack([np.full(n, 0.1), rng.uniform(1.0, 2.0, n)])
    return x, np.stack([lo, hi]), costs


def test_gp_posterior_matches_closed_form():
    """Two points, one fidelity: mean/var against R&W eq. 2.25-2.26 written out by hand."""
    p = surrogate.init_params(1, 1)
    p = p._replace(log_ell=jnp.array([0.0]), log_noise=jnp.array([np.log(0.1)]))
    x = jnp.array([[0.0], [1.0]])
    y = jnp.array([1.0, -0.5])
    lvl = jnp.zeros(2, int)
    mask = jnp.ones(2)
    xs = jnp.array([[0.5]])
    b = float(surrogate._coreg(p)[0, 0])
    k = b * np.exp(-0.5 * np.array([[0, 1], [1, 0]])) + np.eye(2) * (0.1 + surrogate._JITTER)
    ks = b * np.exp(-0.5 * np.array([0.25, 0.25]))
    mean_ref = ks @ np.linalg.solve(k, np.asarray(y))
    var_ref = b - ks @ np.linalg.solve(k, ks)
    mean, var = surrogate.posterior(p, x, lvl, y, mask, xs, jnp.zeros(1, int))
    np.testing.assert_allclose(mean[0], mean_ref, rtol=1e-10)
    np.testing.assert_allclose(var[0], var_ref, rtol=1e-10)
    # padding rows change nothing
    xp = jnp.concatenate([x, jnp.zeros((3, 1))])
    mean2, var2 = surrogate.posterior(
        p,
        xp,
        jnp.zeros(5, int),
        jnp.concatenate([y, jnp.zeros(3)]),
        jnp.array([1.0, 1, 0, 0, 0]),
        xs,
        jnp.zeros(1, int),
    )
    np.testing.assert_allclose(mean2, mean, rtol=1e-10)
    np.testing.assert_allclose(var2, var, rtol=1e-10)
    lml = surrogate.log_marginal_likelihood(p, x, lvl, y, mask)
    sign, logdet = np.linalg.slogdet(k)
    ref = (
        -0.5 * np.asarray(y) @ np.linalg.solve(k, np.asarray(y)) - 0.5 * logdet - np.log(2 * np.pi)
    )
    np.testing.assert_allclose(lml, ref, rtol=1e-10)


def test_expected_improvement_picks_obvious_candidate():
    """Same sd, one mean far above the incumbent: EI picks it; at equal means, the wider sd."""
    ei = search.expected_improvement([0.0, 2.0, 0.5], [0.1, 0.1, 0.1], best=1.0)
    assert int(np.argmax(ei)) == 1
    ei = search.expected_improvement([0.0, 0.0], [0.1, 1.0], best=1.0)
    assert int(np.argmax(ei)) == 1
    # closed form at z = 0: EI = sd * phi(0)
    np.testing.assert_allclose(
        search.expected_improvement([1.0], [2.0], 1.0), 2 / np.sqrt(2 * np.pi)
    )


def test_random_cost_to_find_matches_closed_form():
    """Uniform random order: E[cost to find i*] = c* + (sum_{j != i*} c_j)/2 (each other
    candidate precedes i* with probability 1/2: the hypergeometric single-success draw)."""
    x, v, c = _library(n=30)
    best = int(np.argmax(v[1]))
    exact = c[1, best] + (c[1].sum() - c[1, best]) / 2
    found = []
    for s in range(200):
        r = search.replay(jr.PRNGKey(s), x, v, c, budget=1e9, strategy="random", stop_index=best)
        assert r.best_index == best and r.history[-1] == (best, 1)
        found.append(r.cost[-1])
    found = np.asarray(found)
    se = found.std(ddof=1) / np.sqrt(len(found))
    assert abs(found.mean() - exact) < 4 * se, (found.mean(), exact, se)


def test_store_round_trip(tmp_path):
    st = search.EvaluationStore(tmp_path / "e.db", run="r")
    e = search.Evaluation(3, 1, 2.5, 0.7, 0.01, 42, {"candidate": 3}, "v")
    st.add(e)
    with pytest.raises(ValueError, match="already stored"):
        st.add(e)
    st.close()
    st2 = search.EvaluationStore(tmp_path / "e.db", run="r")
    assert st2.evaluations() == [e]
    assert len(search.EvaluationStore(tmp_path / "e.db", run="other")) == 0


def test_code_version_names_the_commit(tmp_path):
    """In a git checkout each stored evaluation names the commit that computed it; outside
    one (no repository at the path) there is no commit to name."""
    from thermo._git import git_info
    from thermo.materials.search.store import code_version

    head = subprocess.run(
        ["git", "rev-parse", "HEAD"],
        cwd=Path(search.__file__).parent,
        capture_output=True,
        text=True,
    )
    if head.returncode != 0:
        pytest.skip("the code does not run from a git checkout")
    assert f"+g{head.stdout.strip()[:12]}" in code_version()
    assert git_info(tmp_path) == {"commit": None, "dirty": None}


def test_replay_validates_inputs():
    x, v, c = _library()
    with pytest.raises(ValueError, match="fidelity_values"):
        search.replay(jr.PRNGKey(0), x, v[:, :-1], c, budget=10, strategy="random")
    with pytest.raises(ValueError, match="strategy"):
        search.replay(jr.PRNGKey(0), x, v, c, budget=10, strategy="bogus")
    with pytest.raises(ValueError, match="positive"):
        search.replay(jr.PRNGKey(0), x, v, -c, budget=10, strategy="random")
    with pytest.raises(ValueError, match="surrogate"):
        search.replay(jr.PRNGKey(0), x, v, c, budget=10, strategy="random", surrogate="bogus")


@pytest.mark.parametrize(
    ("strategy", "gp"),
    [
        ("single_fidelity", "autoregressive"),
        ("multi_fidelity", "autoregressive"),
        ("multi_fidelity", "coregional"),
        ("boltzmann", "autoregressive"),
    ],
)
def test_model_strategies_find_best_cheaper_than_random(strategy, gp):
    x, v, c = _library()
    best = int(np.argmax(v[1]))
    r = search.replay(
        jr.PRNGKey(0), x, v, c, budget=1e9, strategy=strategy, stop_index=best, surrogate=gp
    )
    assert r.best_index == best
    assert len(set(r.history)) == len(r.history)
    # random's expected cost is about half the top-tier total
    assert r.cost[-1] < 0.5 * c[1].sum()


def test_gp_interval_coverage_on_held_out():
    """95 % predictive intervals of the fitted GP cover held-out noisy draws of a GP sample."""
    rng = np.random.default_rng(1)
    x = rng.uniform(-2, 2, size=(160, 1))
    k = np.exp(-0.5 * (x - x.T) ** 2) + 1e-8 * np.eye(160)
    f = np.linalg.cholesky(k) @ rng.standard_normal(160)
    y = f + 0.1 * rng.standard_normal(160)
    gp = search.MultiFidelityGP(x, 1).fit(np.arange(60), np.zeros(60, int), y[:60])
    mean, sd = gp.predict(0, np.arange(60, 160))
    tot = np.sqrt(sd**2 + gp.noise_var()[0])
    cover = np.mean(np.abs(y[60:] - mean) < 1.96 * tot)
    n = 100
    assert abs(cover - 0.95) < 4 * np.sqrt(0.95 * 0.05 / n), cover


def test_dask_executor_matches_in_process():
    distributed = pytest.importorskip("dask.distributed")
    x, v, c = _library()
    ref = search.replay(jr.PRNGKey(3), x, v, c, budget=8.0, strategy="random", batch_size=3)
    with distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cl:
        with distributed.Client(cl) as client:
            r = search.replay(
                jr.PRNGKey(3),
                x,
                v,
                c,
                budget=8.0,
                strategy="random",
                batch_size=3,
                executor=search.DaskExecutor(client),
            )
    assert sorted(r.history) == sorted(ref.history)
    np.testing.assert_allclose(r.cost[-1], ref.cost[-1])


_CHILD = textwrap.dedent(
    """
    import sys, numpy as np, jax, jax.random as jr
    jax.config.update("jax_enable_x64", True)  # as the test process (conftest.py)
    sys.path.insert(0, {root!r})
    from thermo.materials import search
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)); hi = np.sin(x[:, 0]) + 0.5 * x[:, 1]
    v = np.stack([0.8 * hi, hi]); c = np.stack([np.full(40, 0.1), np.ones(40)])
    fids = [search.ReplayFidelity(v[l], c[l], latency={lat}) for l in range(2)]
    st = search.EvaluationStore({db!r}, run="k")
    search.run_loop(jr.PRNGKey(5), search.CandidateSpace(x), fids, strategy={strategy!r},
                    budget={budget}, store=st, executor={executor})
    """
)


@pytest.mark.parametrize(("strategy", "budget"), [("random", 20.0), ("boltzmann", 8.0)])
def test_kill_and_resume(tmp_path, strategy, budget):
    """A loop killed mid-run resumes: nothing lost, nothing evaluated twice, same history.

    For ``boltzmann`` the delayed-acceptance chain's state travels in the stored inputs, so
    the resumed run takes the decisions of an uninterrupted one.
    """
    root = str(Path(__file__).resolve().parents[2])
    db = str(tmp_path / "k.db")
    fmt = {"root": root, "strategy": strategy, "budget": budget, "executor": "None"}
    code = _CHILD.format(db=db, lat=0.2, **fmt)
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env={**os.environ, "JAX_PLATFORMS": "cpu"}
    )
    t0 = time.time()
    while time.time() - t0 < 120:
        if os.path.exists(db) and len(search.EvaluationStore(db, run="k")) >= 4:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    before = search.EvaluationStore(db, run="k").evaluations()
    assert len(before) >= 4, len(before)
    ns = {}
    exec(_CHILD.format(db=db, lat=0.0, **fmt), ns)  # resume in process
    after = search.EvaluationStore(db, run="k").evaluations()
    assert len(after) > len(before)
    assert after[: len(before)] == before
    pairs = [(e.candidate, e.fidelity) for e in after]
    assert len(set(pairs)) == len(pairs)
    fresh = search.EvaluationStore(str(tmp_path / "f.db"), run="k")
    exec(_CHILD.format(db=str(tmp_path / "f.db"), lat=0.0, **fmt), ns)
    ref = [(e.candidate, e.fidelity) for e in fresh.evaluations()]
    assert pairs == ref
    if strategy == "boltzmann":
        assert [e.inputs for e in after] == [e.inputs for e in fresh.evaluations()]
        assert any("da" in e.inputs for e in after)


def test_log_expected_improvement_matches_log_ei_and_stays_finite():
    """Where plain EI is representable, LogEI equals its log; far in the tail, where EI
    underflows to 0, LogEI stays finite, decreasing in |z|, and follows the asymptote
    log h(z) ~ -z^2/2 - log(2 pi)/2 - 2 log|z| (Mills-ratio expansion)."""
    mean = np.array([3.0, 1.0, 0.0, -1.0, -4.0, -10.0])
    sd = np.array([1.0, 0.5, 2.0, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(
        search.log_expected_improvement(mean, sd, 1.0),
        np.log(search.expected_improvement(mean, sd, 1.0)),
        rtol=1e-9,
    )
    z = -np.array([40.0, 60.0, 100.0])
    assert np.all(search.expected_improvement(z, 1.0, 0.0) == 0.0)
    lg = search.log_expected_improvement(z, 1.0, 0.0)
    assert np.all(np.isfinite(lg)) and np.all(np.diff(lg) < 0)
    asym = -0.5 * z**2 - 0.5 * np.log(2 * np.pi) - 2 * np.log(-z)
    # next term of the expansion: h(z) ~ phi(z)/z^2 (1 - 3/z^2 + ...)
    assert np.all(np.abs(lg - asym) < 4 / z**2), (lg, asym)


def test_max_diverse_design_is_farthest_point():
    """On a line, from the middle point, the farthest-point design takes one end (ties go to
    the lowest index), then the other end, then the point nearest an end."""
    x = np.array([[0.0], [0.1], [0.5], [0.9], [1.0]])
    assert search.max_diverse_design(x, 2, 4) == [2, 0, 4, 1]
    # scaling or shifting a column does not change the design (features are min-max scaled)
    assert search.max_diverse_design(np.c_[x * 10 + 3, x], 2, 4) == [2, 0, 4, 1]


def test_multi_fidelity_design_and_cost_ratio():
    """The multi-fidelity search with the published design starts with n_init candidates at
    both fidelities, and charges a candidate with a known cheap cost that cost times the observed ratio."""
    x, v, c = _library()
    c = np.stack(
        [c[0] * np.linspace(1.0, 2.0, c.shape[1]), c[0] * 10 * np.linspace(1.0, 2.0, c.shape[1])]
    )
    r = search.replay(
        jr.PRNGKey(1),
        x,
        v,
        c,
        budget=1e9,
        strategy="multi_fidelity",
        max_evaluations=8,
        n_init=3,
        design="all",
    )
    design = r.history[:6]
    assert [lvl for _, lvl in design] == [0, 1] * 3
    assert [i for i, _ in design[::2]] == [i for i, _ in design[1::2]]
    from thermo.materials.search.loop import _State, _Strategy

    idx = np.array([i for i, _ in r.history])
    lvl = np.array([lv for _, lv in r.history])
    st = _State(x.shape[0], 2, idx, lvl, v[lvl, idx], c[lvl, idx], set(r.history))
    strat = _Strategy(
        "multi_fidelity",
        jr.PRNGKey(1),
        search.CandidateSpace(x),
        2,
        n_init=3,
        cost_guess=[1.0, 1.0],
        lambda0=1.0,
        lambda_rate=0.1,
        cost_model=True,
    )
    est = strat._expected_costs(st)
    seen = np.unique(idx[lvl == 0])
    # the cost ratio is exactly 10 here, so its log-variance is 0 and the estimate is exact
    np.testing.assert_allclose(est[1, seen], c[1, seen], rtol=1e-12)
    unseen = np.setdiff1d(np.arange(x.shape[0]), seen)
    np.testing.assert_allclose(est[1, unseen], c[1, idx[lvl == 1]].mean(), rtol=1e-12)


@pytest.mark.parametrize("strategy", ["multi_fidelity", "boltzmann"])
def test_cheap_design_runs_only_the_cheap_fidelity(strategy):
    """``design="cheap"`` (the default): the same max-diverse candidates as the published design, at the
    cheapest fidelity only; the top fidelity is then reached and the best still found."""
    x, v, c = _library()
    best = int(np.argmax(v[1]))
    kw = dict(budget=1e9, strategy=strategy, stop_index=best, n_init=3)
    full = search.replay(jr.PRNGKey(1), x, v, c, max_evaluations=6, design="all", **kw)
    r = search.replay(jr.PRNGKey(1), x, v, c, **kw)  # design="cheap" is the default
    assert r.history[:3] == [(i, 0) for i, _ in full.history[::2][:3]]
    assert r.best_index == best
    assert len(set(r.history)) == len(r.history)
    with pytest.raises(ValueError, match="design"):
        search.replay(jr.PRNGKey(0), x, v, c, budget=10, strategy=strategy, design="bogus")


def test_gittins_index_solves_ei_equals_cost():
    """The reservation value g solves EI(mu, sigma, g) = c (checked by a root finder), is
    mu - c for a known value, and falls with the cost and rises with the uncertainty."""
    from scipy.optimize import brentq

    mean = np.array([0.0, 1.5, -2.0, 3.0, 0.0])
    sd = np.array([1.0, 0.3, 2.0, 1e-9, 5.0])
    cost = np.array([0.1, 1e-3, 0.5, 0.2, 40.0])
    g = search.gittins_index(mean, sd, cost)
    for m, s_, c_, g_ in zip(mean, sd, cost, g, strict=True):

        def excess(t, m=m, s_=s_, c_=c_):
            return search.expected_improvement(m, s_, t) - c_

        ref = brentq(excess, m - 60 * s_ - c_, m + 60)
        np.testing.assert_allclose(g_, ref, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(g[3], 3.0 - 0.2, atol=1e-9)  # sigma -> 0: g = mu - c
    costs = np.array([1e-4, 1e-2, 1.0])
    assert np.all(np.diff(search.gittins_index(0.0, 1.0, costs)) < 0)
    assert np.all(np.diff(search.gittins_index(0.0, np.array([0.5, 1.0, 2.0]), 0.1)) > 0)
    with pytest.raises(ValueError, match="cost"):
        search.gittins_index(0.0, 1.0, -1.0)


def test_gittins_acquisition_finds_best_and_validates():
    x, v, c = _library()
    best = int(np.argmax(v[1]))
    kw = dict(budget=1e9, strategy="multi_fidelity", stop_index=best, acquisition="gittins")
    r = search.replay(jr.PRNGKey(0), x, v, c, **kw)
    assert r.best_index == best
    assert len(set(r.history)) == len(r.history)
    assert r.cost[-1] < 0.5 * c[1].sum()
    with pytest.raises(ValueError, match="acquisition"):
        search.replay(
            jr.PRNGKey(0), x, v, c, budget=10, strategy="multi_fidelity", acquisition="ucb"
        )
    with pytest.raises(ValueError, match="gittins_lambda"):
        search.replay(
            jr.PRNGKey(0), x, v, c, budget=10, strategy="multi_fidelity", gittins_lambda=0.0
        )


# --------------------------------------------------------------------------------------
# Kennedy-O'Hagan autoregressive co-kriging (surrogate.AutoregressiveGP)
# --------------------------------------------------------------------------------------


def _se(xa, xb, ell):
    d2 = ((xa[:, None, :] - xb[None, :, :]) / ell) ** 2
    return np.exp(-0.5 * d2.sum(-1))


def _ar_draws(rng, x, rho, var, ell, beta, n_draws):
    """Joint prior draws of ``(f_0(x), f_1(x))`` from the generative AR(1) model itself:
    independent GPs for f_0 and delta, f_1 = rho f_0 + delta. ``(n_draws, 2, n)``."""
    n = x.shape[0]
    out = []
    for j in range(2):
        k = var[j] * _se(x, x, ell[j]) + 1e-10 * np.eye(n)
        out.append(beta[j] + rng.standard_normal((n_draws, n)) @ np.linalg.cholesky(k).T)
    f0, delta = out
    return np.stack([f0, rho * f0 + delta], axis=1)


def test_autoregressive_gp_recovers_rho():
    """Data drawn exactly from f_1 = rho f_0 + delta (rho = 1.5): the fitted rho is within
    4 Laplace standard errors (inverse Hessian of the negative log posterior) of the truth,
    and the fit has converged (gradient of the loss ~ 0)."""
    import jax
    from jax.flatten_util import ravel_pytree

    rng = np.random.default_rng(3)
    n, rho = 40, 1.5
    x = rng.uniform(-3, 3, size=(n, 1))
    f = _ar_draws(rng, x, rho, (1.0, 0.2), (1.0, 0.5), (0.5, -1.0), 1)[0]
    noise = 1e-3
    hi = np.arange(0, n, 2)  # high fidelity on every other low-fidelity point
    idx = np.concatenate([np.arange(n), hi])
    lvl = np.concatenate([np.zeros(n, int), np.ones(len(hi), int)])
    y = f[lvl, idx] + np.sqrt(noise) * rng.standard_normal(len(idx))
    gp = search.AutoregressiveGP(x, 2, n_steps=1500)  # the loop's warm refits add steps
    gp.fit(idx, lvl, y)
    flat, unravel = ravel_pytree(gp.params)

    def loss(v):
        q = unravel(v)
        return -(surrogate.ar_log_marginal_likelihood(q, *gp._data) + surrogate._ar_prior(q))

    g = jax.jit(jax.grad(loss))(flat)
    h = jax.jit(jax.hessian(loss))(flat)
    marker = jax.tree.map(jnp.zeros_like, gp.params)._replace(rho=jnp.ones(1))
    i_rho = int(np.flatnonzero(np.asarray(ravel_pytree(marker)[0]))[0])
    se = float(np.sqrt(np.linalg.inv(np.asarray(h))[i_rho, i_rho]))
    assert float(jnp.max(jnp.abs(g))) < 1e-6  # a stationary point of the loss
    assert 0 < se < 0.5, se
    assert abs(gp.rho()[0] - rho) < 4 * se, (gp.rho()[0], se)


def _fixed_ar(x, idx, lvl, y, *, rho, var, ell, noise):
    gp = search.AutoregressiveGP(x, 2)
    gp.fit(idx, lvl, y)  # sets the standardisation and the padded data
    gp.params = surrogate.ARParams(
        jnp.log(jnp.asarray(ell, float)),
        jnp.log(jnp.asarray(var, float)),
        jnp.asarray([rho], float),
        jnp.zeros(2),
        jnp.log(jnp.asarray(noise, float)),
    )
    return gp


def test_autoregressive_gp_interpolates_and_matches_closed_form():
    """Noise-free (1e-6, the model's floor) low and high data at the same points: the posterior mean
    reproduces both fidelities' data, the variance there is ~0, and mean/variance/covariance
    elsewhere equal the closed form built from the model's definition in numpy."""
    rng = np.random.default_rng(4)
    x = rng.uniform(-2, 2, size=(12, 2))
    f = _ar_draws(rng, x, 0.7, (1.0, 0.3), ((1.0, 1.5), (0.6, 0.8)), (0.0, 0.0), 1)[0]
    obs = np.arange(8)
    idx = np.concatenate([obs, obs])
    lvl = np.repeat([0, 1], 8)
    y = f[lvl, idx]
    ell = np.array([[1.0, 1.5], [0.6, 0.8]])
    s2 = 1e-6  # the smallest noise the model allows
    gp = _fixed_ar(x, idx, lvl, y, rho=0.7, var=(1.0, 0.3), ell=ell, noise=(s2, s2))
    # in standardised units the variances are scaled by 1/sd^2: compare in those units
    sd, mu = gp.sd, gp.mu
    xs = np.asarray(gp.x)  # the model's (standardised) features
    for level in (0, 1):
        mean, s = gp.predict(level, obs)
        np.testing.assert_allclose(mean, f[level, obs], atol=1e-4 * sd)
        # the latent's variance at a datum is at most that datum's noise (+ the jitter)
        assert np.all((s / sd) ** 2 <= s2 + surrogate._JITTER), s
    # closed form (standardised units: kernel variances as set, data (y - mu)/sd)
    k0, k1 = (v * _se(xs, xs, e) for v, e in zip((1.0, 0.3), ell, strict=True))
    blocks = {(0, 0): k0, (0, 1): 0.7 * k0, (1, 0): 0.7 * k0, (1, 1): 0.49 * k0 + k1}
    kyy = np.block([[blocks[a, b][np.ix_(obs, obs)] for b in (0, 1)] for a in (0, 1)])
    kyy += (s2 + surrogate._JITTER) * np.eye(16)
    new = np.arange(8, 12)
    ys = (y - mu) / sd
    for level in (0, 1):
        ksy = np.hstack([blocks[level, b][np.ix_(new, obs)] for b in (0, 1)])
        m_ref = ksy @ np.linalg.solve(kyy, ys) * sd + mu
        v_ref = np.diag(blocks[level, level][np.ix_(new, new)] - ksy @ np.linalg.solve(kyy, ksy.T))
        mean, s = gp.predict(level, new)
        np.testing.assert_allclose(mean, m_ref, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(s**2, v_ref * sd**2, rtol=1e-5, atol=1e-10)
    k0y = np.hstack([blocks[0, b][np.ix_(new, obs)] for b in (0, 1)])
    k1y = np.hstack([blocks[1, b][np.ix_(new, obs)] for b in (0, 1)])
    c_ref = np.diag(blocks[0, 1][np.ix_(new, new)] - k0y @ np.linalg.solve(kyy, k1y.T))
    np.testing.assert_allclose(gp.cross_cov(0, 1, new), c_ref * sd**2, rtol=1e-5, atol=1e-10)


def test_autoregressive_gp_variance_at_observed_high_point_is_noise():
    """A high-fidelity observation with noise s2 = 1e-4, 18 length scales (standardised
    features: spacing 0.89, length scale 0.05) from any other
    data and unobserved at the low fidelity: posterior variance K s2 / (K + s2) ~ s2."""
    x = np.array([[0.0], [10.0], [20.0], [30.0]])
    idx = np.array([0, 1, 2, 3])
    lvl = np.array([0, 0, 1, 1])
    y = np.array([0.3, -0.2, 1.1, 0.4])
    s2 = 1e-4
    gp = _fixed_ar(x, idx, lvl, y, rho=0.9, var=(1.0, 0.2), ell=[[0.05], [0.05]], noise=(s2, s2))
    _, s = gp.predict(1, [2])
    k = 0.81 * 1.0 + 0.2
    s2j = s2 + surrogate._JITTER  # the Gram matrix carries the jitter too
    expect = k * s2j / (k + s2j)
    np.testing.assert_allclose((s[0] / gp.sd) ** 2, expect, rtol=1e-6)
    assert abs(expect / s2 - 1) < 2e-2
    np.testing.assert_allclose(gp.noise_var(), s2 * gp.sd**2, rtol=1e-10)


def test_autoregressive_gp_correlation_matches_monte_carlo():
    """Posterior correlation corr[f_0(x), f_1(x) | y] against a Monte Carlo estimate: joint
    prior draws of (data, latents) from the generative model (independent GPs, f_1 = rho
    f_0 + delta, noise added) and the residual correlation after the least-squares regression
    of the latents on the data, which for Gaussians is the posterior correlation. Tolerance:
    4 standard errors, (1 - r^2) / sqrt(N)."""
    rng = np.random.default_rng(5)
    x = rng.uniform(-2, 2, size=(9, 1))
    obs_lo, obs_hi, test = np.arange(6), np.array([0, 1]), np.arange(6, 9)
    rho, var, ell, s2 = 0.8, (1.0, 0.4), ((1.0,), (0.7,)), (0.05, 0.02)
    n_draws = 40000
    f = _ar_draws(rng, x, rho, var, ell, (0.0, 0.0), n_draws)  # (N, 2, 9)
    y_lo = f[:, 0, obs_lo] + np.sqrt(s2[0]) * rng.standard_normal((n_draws, len(obs_lo)))
    y_hi = f[:, 1, obs_hi] + np.sqrt(s2[1]) * rng.standard_normal((n_draws, len(obs_hi)))
    a = np.hstack([np.ones((n_draws, 1)), y_lo, y_hi])
    lat = np.hstack([f[:, 0, test], f[:, 1, test]])
    resid = lat - a @ np.linalg.lstsq(a, lat, rcond=None)[0]
    nt = len(test)
    r_mc = np.array([np.corrcoef(resid[:, i], resid[:, nt + i])[0, 1] for i in range(nt)])
    # the model with the same (fixed) hyperparameters; the data values do not enter the
    # posterior covariance, only the design; sd = 1 keeps standardised units = model units
    idx = np.concatenate([obs_lo, obs_hi])
    lvl = np.concatenate([np.zeros(len(obs_lo), int), np.ones(len(obs_hi), int)])
    gp = _fixed_ar(x, idx, lvl, np.zeros(len(idx)), rho=rho, var=var, ell=ell, noise=s2)
    assert gp.sd == 1.0
    r = gp.correlation(0, 1, test)
    se = (1 - r**2) / np.sqrt(n_draws)
    assert np.all(np.abs(r - r_mc) < 4 * se), (r, r_mc, se)
    assert np.all(r < 0.99)  # a non-trivial check: the test points are not fully determined


def test_log_value_transform_models_the_logs_and_keeps_the_values():
    """``value_transform="log"`` on values ``exp(v)`` takes exactly the decisions the
    identity transform takes on ``v`` (the surrogate sees the same numbers, the costs do not
    depend on the values), and the result holds the untransformed values."""
    x, v, c = _library()
    best = int(np.argmax(v[1]))
    kw = dict(budget=1e9, strategy="multi_fidelity", stop_index=best, max_evaluations=12)
    plain = search.replay(jr.PRNGKey(3), x, v, c, **kw)
    logged = search.replay(jr.PRNGKey(3), x, np.exp(v), c, value_transform="log", **kw)
    assert logged.history == plain.history
    np.testing.assert_allclose(logged.values, np.exp(plain.values), rtol=1e-12)
    # on exp(v) the identity transform models another function, so it may decide otherwise;
    # the search must still reach the best candidate
    r = search.replay(
        jr.PRNGKey(3), x, np.exp(v), c, value_transform="log", **{**kw, "max_evaluations": None}
    )
    assert r.best_index == best


def test_log_value_transform_rejects_non_positive_values_and_keeps_them(tmp_path):
    x, v, c = _library()
    v = np.exp(v)
    v[0] = -1.0  # every cheap value: the first evaluation fails the log
    store = search.EvaluationStore(tmp_path / "e.db", run="r")
    with pytest.raises(ValueError, match=r"candidate \d+ at fidelity 0 returned -1.0"):
        search.replay(
            jr.PRNGKey(0),
            x,
            v,
            c,
            budget=1e9,
            strategy="multi_fidelity",
            value_transform="log",
            store=store,
        )
    # the failing evaluation is stored, and it is the only one
    assert [(e.fidelity, e.result) for e in store.evaluations()] == [(0, -1.0)]
    with pytest.raises(ValueError, match="value_transform"):
        search.replay(jr.PRNGKey(0), x, v, c, budget=10, strategy="random", value_transform="sqrt")
