r"""LJ FCC solid at :math:`T^* = 2.0, \rho^* = 1.28`: Frenkel–Ladd free energy vs van der Hoef.

For each system size :math:`N = 4 n^3` the coupled energy
:math:`U_\lambda = \lambda U_{\rm LJ} + (1-\lambda)(U_{\rm lat} + U_E)` (Einstein springs
with the centre of mass removed, :mod:`thermo.materials.solid`) is sampled by Metropolis
sweeps (:func:`thermo.materials.frenkel_ladd_mc`) at the Gauss–Legendre nodes in
:math:`\lambda`, all nodes vmapped in one compiled scan; :math:`\langle\partial_\lambda
U\rangle/N` and its standard error (statistical inefficiency,
:func:`thermo.materials.correlated_mean`) give the finite-:math:`N` excess free energy
(:func:`thermo.materials.frenkel_ladd_free_energy`, exact fixed-centre-of-mass Einstein
term, static lattice energy of the *full* potential). Each size gets the exact harmonic
finite-size correction :math:`a^h_\infty - a^h_N` from the FCC dynamical matrix
(:func:`thermo.materials.harmonic_finite_size_correction`); the headline is the largest
size so corrected, compared with van der Hoef's 2000 fit,
:math:`\beta A_{\rm ex}/N = 3.3764` (full potential, :math:`N\to\infty`). With three
or more sizes the uncorrected values are also extrapolated in :math:`(\ln N/N, 1/N)`
(:func:`thermo.materials.extrapolate_finite_size`, Polson et al. 2000).

The pair potential is cut at ``r_cut`` (at most half the smallest box, 2.19σ for N = 108)
for the *thermal* part only; its static part is the exact lattice sum, and the first-order
thermal smearing of the pairs beyond the cut is added analytically (-0.007 at 2.1σ).

The production at every node runs in ``n_blocks`` blocks, checkpointed one by one under
the runner, so a long run resumes at its last finished block with the same result.

``python -m experiments run materials_fcc_frenkel_ladd`` (resumable; or ``python -m
experiments.materials_fcc_frenkel_ladd [--quick]``).
"""

from __future__ import annotations

import dataclasses
import functools
import time

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from experiments._config import Count, NonNegativeInt, Positive, Real, Seed
from experiments._runner import uncached_stage
from thermo.estimators import gauss_legendre
from thermo.kernel import run as run_kernel
from thermo.materials import (
    adapt_equilibrate_produce,
    correlated_mean,
    einstein_energy,
    extrapolate_finite_size,
    fcc_lattice,
    fcc_lattice_energy,
    frenkel_ladd_free_energy,
    frenkel_ladd_mc,
    harmonic_finite_size_correction,
    lj_energy_fn,
    periodic_space,
    to_arrays,
)

__all__ = ["Config", "VAN_DER_HOEF", "main", "plain_loop", "run", "simulate_size"]

#: van der Hoef 2000 (J. Chem. Phys. 113, 8142) fit, via the shared materials README:
#: beta A_ex / N of the full-potential FCC LJ solid, N -> infinity.
VAN_DER_HOEF = {(2.0, 1.28): 3.3764, (1.0, 0.962): -2.1430}


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings.

    Attributes:
        seed: PRNG seed.
        temperature, density: the state point (a key of :data:`VAN_DER_HOEF`).
        sizes: FCC cells per side, one run each (N = 4 n^3: 3 -> 108, 4 -> 256, 5 -> 500).
        r_cut: cutoff of the sampled pair energy (same for all sizes).
        spring: Einstein spring :math:`\\Lambda_E` in ε/σ²; 400 is close to the LJ solid's
            effective :math:`3k_BT/(2\\,{\\rm MSD}) \\approx 320` (MSD 0.0094σ² at λ = 1), so
            the integrand stays within [-1, 1.7] and Gauss–Legendre converges (with
            1000 and 6 nodes the integrand runs to -5.3 near λ = 1 and the N = 256
            result is 0.013 higher).
        n_lambda: Gauss–Legendre nodes on [0, 1].
        n_adapt, adapt_sweeps: step-size adaptation rounds (discarded).
        n_equilibrate, n_production, thin: sweeps per node; record every ``thin``.
        n_blocks: production blocks of ``n_production`` sweeps each, the chains continued
            from block to block (one checkpoint per block under the runner, so a long run
            resumes where it stopped); the standard error comes from the statistical
            inefficiency of the whole concatenated series, and the spread of the per-block
            free energies is reported next to it as a check.
        log_coefficient: fix the ln N / N coefficient of the extrapolation (None: fit it;
            it needs three sizes).
        tolerance: |extrapolated - van der Hoef| target.
    """

    seed: Seed = 1984
    temperature: Positive = 2.0
    density: Positive = 1.28
    sizes: tuple[Count, ...] = (3, 4)
    r_cut: Positive = 2.1
    spring: Positive = 400.0
    n_lambda: Count = 8
    n_adapt: NonNegativeInt = 3
    adapt_sweeps: Count = 20
    n_equilibrate: NonNegativeInt = 60
    n_production: Count = 400
    thin: Count = 2
    n_blocks: Count = 1
    log_coefficient: Real | None = None
    tolerance: Positive = 0.02

    @classmethod
    def quick(cls) -> Config:
        """Smoke setting: N = 32, three nodes, a few sweeps."""
        return cls(
            sizes=(2,),
            r_cut=1.45,
            n_lambda=3,
            n_adapt=0,
            adapt_sweeps=4,
            n_equilibrate=0,
            n_production=16,
        )


def plain_loop(key, body_fn, state, n_iters, *, name, every=1, desc=None):
    """:meth:`RunContext.loop` without checkpoints (same keys), for a plain ``main()``."""
    del name, every, desc
    for i in range(int(n_iters)):
        state = body_fn(jr.fold_in(key, i), state, i)
    return state


def simulate_size(key, config: Config, n_cells: int, loop=plain_loop, name: str = "") -> dict:
    """All λ nodes of one size; returns the finite-N free energy and its pieces.

    The production runs in ``config.n_blocks`` blocks through ``loop`` (the runner's
    :meth:`RunContext.loop`, checkpointed per block under ``name``; iteration 0 adapts,
    equilibrates and produces the first block, iteration ``b`` produces block ``b`` with
    ``fold_in(key, b)``), so an interrupted run resumes at its last finished block with
    the same result.
    """
    t = config.temperature
    pos, box, _ = to_arrays(fcc_lattice(n_cells, config.density))
    n = pos.shape[0]
    disp, _ = periodic_space(box)
    sites = jnp.asarray(pos)
    u_lat_cut = float(lj_energy_fn(disp, r_cut=config.r_cut)(sites))
    lams, weights = gauss_legendre(0.0, 1.0, config.n_lambda)

    def kernel(lam, h):
        return frenkel_ladd_mc(
            disp,
            sites,
            temperature=t,
            spring=config.spring,
            lam=lam,
            step_size=h,
            r_cut=config.r_cut,
        )

    def observe(s, i):
        u_e = einstein_energy(s, config.spring)
        msd = (s.sum_d2 - jnp.sum(s.sum_d**2) / n) / n
        return {"du": (s.u_pair - u_lat_cut - u_e) / n, "msd": msd, "acc": i.acceptance_rate}

    n_steps = {"adapt": config.adapt_sweeps, "equilibrate": config.n_equilibrate}
    n_steps["produce"] = config.n_production
    observables = {"adapt": lambda s, i: i.acceptance_rate, "equilibrate": None, "produce": observe}

    @functools.partial(jax.jit, static_argnums=3)
    def sweeps_fn(key, states, h, stage):
        def one(key, state, lam, h):
            thin = config.thin if stage == "produce" else 1
            kern = kernel(lam, h)
            return run_kernel(
                key, kern, state, n_steps[stage], thin=thin, observable_fn=observables[stage]
            )

        return jax.vmap(one)(jr.split(key, config.n_lambda), states, lam_j, h)

    lam_j = jnp.asarray(lams)
    states = jax.vmap(lambda lam: kernel(lam, 0.05).init(sites))(lam_j)
    n_rec = config.n_production // config.thin
    shape = (config.n_lambda, config.n_blocks, n_rec)
    buf = {k: jnp.zeros(shape, dtype=jnp.asarray(u_lat_cut).dtype) for k in ("du", "msd", "acc")}
    h0 = jnp.full(config.n_lambda, 0.05)

    def block(key_b, carry, b):
        states, h, buf, clock = carry
        t_b, c_b = time.perf_counter(), time.process_time()
        if b == 0:
            run = adapt_equilibrate_produce(
                key_b,
                sweeps_fn,
                states,
                h,
                n_adapt=config.n_adapt,
                equilibrate=config.n_equilibrate > 0,
            )
            states, trace, h = run.states, run.trace, run.step_size
        else:
            states, trace = sweeps_fn(key_b, states, h, "produce")
        buf = {k: v.at[:, b].set(jnp.asarray(trace[k], v.dtype)) for k, v in buf.items()}
        jax.block_until_ready(buf)
        spent = np.array([time.perf_counter() - t_b, time.process_time() - c_b])
        return states, h, buf, clock + spent

    # the clock (wall, CPU seconds of the finished blocks) travels in the checkpointed
    # state, so a resumed run reports the cost of all its blocks, not of its last session
    _, h, buf, clock = loop(
        key,
        block,
        (states, h0, buf, np.zeros(2)),
        config.n_blocks,
        name=f"frenkel_ladd_{name or n_cells}",
        desc=f"Frenkel-Ladd N={n} blocks",
    )
    du = np.asarray(buf["du"]).reshape(config.n_lambda, -1)  # (n_lambda, n_records)
    means, errs, gs = zip(*(correlated_mean(du[k]) for k in range(config.n_lambda)), strict=True)
    msd = float(np.mean(np.asarray(buf["msd"])[-1]))

    def assemble(m, e):
        return frenkel_ladd_free_energy(
            n,
            config.density,
            t,
            config.spring,
            weights,
            np.asarray(m),
            np.asarray(e),
            lattice_energy_full=float(fcc_lattice_energy(config.density)),
            msd=msd,
            r_cut=config.r_cut,
        )

    fl = assemble(means, errs)
    out = {}
    if config.n_blocks >= 4:
        # check of the error bar: the spread of the per-block free energies
        per_block = np.asarray(buf["du"]).mean(axis=2)  # (n_lambda, n_blocks)
        a_b = [
            assemble(per_block[:, b], np.zeros(config.n_lambda)).beta_free_energy
            for b in range(config.n_blocks)
        ]
        out["block_std_err"] = float(np.std(a_b, ddof=1) / np.sqrt(config.n_blocks))
    delta = harmonic_finite_size_correction(config.density, t, n_cells)
    return {
        "n_particles": n,
        "beta_free_energy": {"value": fl.beta_free_energy, "std_err": fl.std_err} | out,
        "harmonic_finite_size_correction": delta,
        "corrected": {"value": fl.beta_free_energy + delta, "std_err": fl.std_err},
        "terms": fl.terms,
        "lambdas": lams.tolist(),
        "du_dlam_per_particle": list(means),
        "du_dlam_std_errs": list(errs),
        "statistical_inefficiencies": list(gs),
        "step_sizes": np.asarray(h).tolist(),
        "acceptance": np.asarray(jnp.mean(buf["acc"], axis=(1, 2))).tolist(),
        "msd_lambda_max": msd,
        "n_sweeps_per_node": config.n_blocks * config.n_production,
        "wall_s": float(clock[0]),
        "cpu_s": float(clock[1]),
    }


def main(config: Config | None = None, stage=uncached_stage, loop=plain_loop) -> dict:
    """Run every size, extrapolate, compare with van der Hoef; return JSON-able metrics.

    Each system size is one ``stage(name, fn)`` call (``RunContext.stage`` under the
    runner, so a resumed run skips the finished sizes); its key is
    ``fold_in(key, n_cells)``.
    """
    config = config or Config()
    jax.config.update("jax_enable_x64", True)  # experiment entry point
    key = jr.key(config.seed)
    rows = {}
    for n_cells in config.sizes:
        args = (jr.fold_in(key, n_cells), config, n_cells)
        res = stage(f"n_cells={n_cells}", lambda a=args: simulate_size(*a, loop=loop))
        rows[f"N={res['n_particles']}"] = res
        v = res["beta_free_energy"]
        print(
            f"N={res['n_particles']:4d}: beta A_ex/N = {v['value']:.4f} +- {v['std_err']:.4f}, "
            f"+ harmonic finite-size correction {res['harmonic_finite_size_correction']:+.4f} "
            f"= {res['corrected']['value']:.4f} ({res['wall_s']:.0f} s)",
            flush=True,
        )
    ref = VAN_DER_HOEF.get((config.temperature, config.density))
    out = {"sizes": rows, "van_der_hoef": ref}
    largest = rows[f"N={4 * max(config.sizes) ** 3}"]
    out["headline"] = largest["corrected"] | {"n_particles": largest["n_particles"]}
    if ref is not None:
        out["headline_difference"] = largest["corrected"]["value"] - ref
        out["headline_within_tolerance"] = bool(abs(out["headline_difference"]) < config.tolerance)
    ns = [r["n_particles"] for r in rows.values()]
    vals = [r["beta_free_energy"]["value"] for r in rows.values()]
    errs = [max(r["beta_free_energy"]["std_err"], 1e-12) for r in rows.values()]
    n_fit = 2 if config.log_coefficient is not None else 3
    if len(ns) >= n_fit:
        a, a_err, coef = extrapolate_finite_size(
            ns, vals, errs, log_coefficient=config.log_coefficient
        )
        out["extrapolated"] = {"value": a, "std_err": a_err, "coefficients": coef.tolist()}
        if ref is not None:
            out["difference"] = a - ref
            out["within_tolerance"] = bool(abs(a - ref) < config.tolerance)
        print(f"N -> inf: {a:.4f} +- {a_err:.4f}  (van der Hoef {ref})", flush=True)
    return out


def run(config: Config, ctx=None) -> dict:
    """Runner entry point: each system size is a ``ctx.stage``."""
    if ctx is None:
        return main(config)
    return main(config, ctx.stage, ctx.loop)


if __name__ == "__main__":
    import sys

    main(Config.quick() if "--quick" in sys.argv else None)
