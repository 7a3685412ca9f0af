r"""HMC throughput on LJ-55: energy-and-gradient evaluations per second, ours vs blackjax.

Same target, same run: LJ-55 in the DEM/EFM convention (``thermo.systems.get("lj55")``,
:math:`\log\pi = -\beta U`), started from the Mackay icosahedron plus small noise, HMC
with the same step size (0.005) and trajectory length (10 leapfrog steps), identity
mass matrix, float32. Ours: :func:`thermo.mcmc.hmc` driven by :func:`thermo.kernel.run`
(a ``lax.scan``); peer: ``blackjax.hmc`` (1.7.1) in a ``lax.scan``. Both vmapped over
``n_chains`` chains (1 and 1,024) and jitted at the entry point. Each HMC step costs
``n_integration_steps`` gradient evaluations for both (the gradient at the start of a
trajectory is cached in the state), so evaluations/s =
``n_chains * n_steps * n_integration_steps / seconds``. Compile time is reported
separately. Ours and blackjax are timed alternately, round by round, so that load
changes hit both alike; the ratio (ours/blackjax speed) is the median over rounds of the
per-round ratio, with its quartiles, from wall-clock time and from process CPU time
(``time.process_time``, all threads; far less sensitive to other jobs on the cores).
blackjax is a benchmark-only dependency.

Findings:

- Session 2: the earlier 0.4x at one chain was not in the leapfrog arithmetic but in
  XLA's loop-invariant code motion. The LJ energy built its pair-index table with
  ``jnp.triu_indices`` on every call; XLA hoisted it out of blackjax's leapfrog loop,
  whose inverse mass is a ``(dim,)`` constant array, but not out of ours, where it was
  the scalar 1.0. :func:`thermo.mcmc.hmc` now materialises the inverse mass as a
  ``(dim,)`` constant, and ``thermo.systems`` builds pair indices with NumPy (a
  compile-time constant for every caller).
- Session 3: ``thermo.kernel.run`` split every step's key once more than blackjax's
  driver (and ran an inner scan of length 1); at one chain that was about 5 % of an
  LJ-55 HMC step. With ``thin=1`` it now steps on the record's key directly. The
  kernels themselves compile to the same arithmetic, so the expected ratio is 1: the
  measured medians scatter about it by a few per cent between runs on this shared
  2-core machine.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from experiments.benchmarks._timing import time_interleaved

__all__ = ["main"]

STEP_SIZE = 0.005
N_INTEGRATION_STEPS = 10


def _setup(n_chains: int):
    import thermo.systems as systems

    system = systems.get("lj55")
    base = jnp.asarray(systems.mackay_icosahedron(2), dtype=jnp.float32).reshape(-1)
    x0 = base + 0.02 * jr.normal(jr.key(0), (n_chains, system.dim), dtype=jnp.float32)
    return system.log_prob, x0


def _ours(logdensity_fn, n_steps):
    from thermo.kernel import run
    from thermo.mcmc import hmc

    kernel = hmc(logdensity_fn, STEP_SIZE, N_INTEGRATION_STEPS)

    @jax.jit
    def go(key, x0):
        def chain(key, x):
            state, acc = run(
                key, kernel, kernel.init(x), n_steps, observable_fn=lambda s, i: i.acceptance_rate
            )
            return state.position, jnp.mean(acc)

        return jax.vmap(chain)(jr.split(key, x0.shape[0]), x0)

    return go


def _blackjax(logdensity_fn, n_steps, dim):
    import blackjax

    algo = blackjax.hmc(
        logdensity_fn,
        step_size=STEP_SIZE,
        inverse_mass_matrix=jnp.ones(dim, dtype=jnp.float32),
        num_integration_steps=N_INTEGRATION_STEPS,
    )

    @jax.jit
    def go(key, x0):
        def chain(key, x):
            def body(state, k):
                state, info = algo.step(k, state)
                return state, info.acceptance_rate

            state, acc = jax.lax.scan(body, algo.init(x), jr.split(key, n_steps))
            return state.position, jnp.mean(acc)

        return jax.vmap(chain)(jr.split(key, x0.shape[0]), x0)

    return go


def _ratio_summary(theirs: np.ndarray, ours: np.ndarray) -> dict:
    """Per-round speed ratio ours/theirs (= their time / our time): median and quartiles."""
    r = theirs / ours
    q25, q50, q75 = np.percentile(r, [25, 50, 75])
    return {"median": float(q50), "q25": float(q25), "q75": float(q75)}


def main(quick: bool = False) -> dict:
    """Run the benchmark, print a table and return a JSON-able dict."""
    # n_chains: (n_steps, n_repeats); about 0.3 s and 4 s per call here.
    settings = {1: (200, 5), 1024: (2, 3)} if quick else {1: (500, 21), 1024: (5, 11)}
    results = {
        "system": "lj55 (DEM/EFM convention)",
        "step_size": STEP_SIZE,
        "n_integration_steps": N_INTEGRATION_STEPS,
        "dtype": "float32",
        "device": str(jax.devices()[0]),
        "rows": [],
    }
    for n_chains, (n_steps, n_repeats) in settings.items():
        logdensity_fn, x0 = _setup(n_chains)
        dim = x0.shape[1]
        evals = n_chains * n_steps * N_INTEGRATION_STEPS
        row = {
            "n_chains": n_chains,
            "n_steps": n_steps,
            "n_repeats": n_repeats,
            "energy_grad_evals": evals,
        }
        args = (jr.key(1), x0)
        timed = time_interleaved(
            {
                "ours": (_ours(logdensity_fn, n_steps), args),
                "blackjax": (_blackjax(logdensity_fn, n_steps, dim), args),
            },
            n_repeats=n_repeats,
        )
        for label, (compile_s, wall, cpu, (_, acc)) in timed.items():
            row[label] = {
                "compile_s": compile_s,
                "run_s": float(np.median(wall)),
                "cpu_s": float(np.median(cpu)),
                "evals_per_s": evals / float(np.median(wall)),
                "mean_acceptance": float(jnp.mean(acc)),
            }
        row["ratio_wall"] = _ratio_summary(timed["blackjax"].wall_s, timed["ours"].wall_s)
        row["ratio_cpu"] = _ratio_summary(timed["blackjax"].cpu_s, timed["ours"].cpu_s)
        row["ratio_ours_over_blackjax"] = row["ratio_wall"]["median"]
        results["rows"].append(row)
    print(
        f"HMC throughput on LJ-55 (eps={STEP_SIZE}, L={N_INTEGRATION_STEPS}, float32), "
        "ratio = ours/blackjax speed, median [quartiles] over interleaved rounds"
    )
    print(
        f"{'chains':>7} {'ours evals/s':>13} {'bj evals/s':>11} {'ratio (wall)':>22} "
        f"{'ratio (CPU time)':>22} {'compile ours/bj (s)':>20}"
    )
    for r in results["rows"]:
        w, c = r["ratio_wall"], r["ratio_cpu"]
        print(
            f"{r['n_chains']:>7} {r['ours']['evals_per_s']:>13.4g} "
            f"{r['blackjax']['evals_per_s']:>11.4g} "
            f"{w['median']:>8.3f} [{w['q25']:.3f}, {w['q75']:.3f}] "
            f"{c['median']:>8.3f} [{c['q25']:.3f}, {c['q75']:.3f}] "
            f"{r['ours']['compile_s']:>9.2f}/{r['blackjax']['compile_s']:.2f}"
        )
    return results


if __name__ == "__main__":
    main()
