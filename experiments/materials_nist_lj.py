r"""LJ fluid NVT Monte Carlo against the NIST Standard Reference Simulation data.

N = 500 particles, hard cut at :math:`r_c = 3\sigma`, analytic tail corrections for
energy and pressure (NIST SRS "LJ fluid, MC, rc = 3", the convention of
:mod:`thermo.materials.lj`). Each state point starts from an FCC lattice
(5×5×5 conventional cells), adapts the maximal displacement to ~40 % acceptance,
equilibrates and then records :math:`U/N` and the virial pressure :math:`P^*`
every sweep. Standard errors come from the statistical inefficiency of each chain's
series (:func:`thermo.materials.correlated_mean`, the shared
:mod:`thermo.estimators.timeseries`), combined over the vmapped independent chains. The check is
:math:`|x - x_{\rm NIST}| < 3\sqrt{\sigma^2 + \sigma_{\rm NIST}^2}`.

``python -c "from experiments.materials_nist_lj import main; main()"``
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.random as jr
import numpy as np

from experiments._config import Count, NonNegativeInt, Positive, Seed
from experiments._runner import uncached_stage
from thermo.materials import (
    correlated_mean,
    jzg_excess_energy,
    jzg_pressure,
    sample_lj_fluid,
)

__all__ = ["Config", "NIST_REFERENCE", "main", "run", "simulate_state_point"]

# NIST SRS (https://www.nist.gov/mml/csd/chemical-informatics-group/lj-pure-fluid-mc),
# via the project's shared materials README: (T*, rho*) -> (U/N, err, P*, err);
# None where NIST quotes no uncertainty.
NIST_REFERENCE = {
    (0.85, 0.776): (-5.5121, 4.6e-4, 6.7714e-3, None),
    (0.85, 0.86): (-6.0305, 2.4e-3, 1.2660, 1.4e-2),
    (0.90, 0.82): (-5.7456, None, 0.82386, None),
}


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings.

    Attributes:
        seed: PRNG seed.
        n_cells: FCC cells per side (N = 4 n^3 = 500).
        r_cut: cutoff in sigma.
        n_chains: independent vmapped chains per state point.
        n_adapt: adaptation rounds of ``adapt_sweeps`` sweeps each.
        n_equilibrate: equilibration sweeps after adaptation.
        n_production: production sweeps (recorded every sweep).
        state_points: which (T*, rho*) of :data:`NIST_REFERENCE`.
    """

    seed: Seed = 1953
    n_cells: Count = 5
    r_cut: Positive = 3.0
    n_chains: Count = 1
    n_adapt: NonNegativeInt = 5
    adapt_sweeps: Count = 40
    n_equilibrate: NonNegativeInt = 1000
    n_production: Count = 5000
    state_points: tuple[tuple[Positive, Positive], ...] = tuple(NIST_REFERENCE)

    @classmethod
    def quick(cls) -> Config:
        """Seconds-long smoke setting (N = 108)."""
        return cls(
            n_cells=3,
            r_cut=2.5,
            n_chains=1,
            n_adapt=0,
            n_equilibrate=0,
            n_production=20,
            state_points=((0.9, 0.82),),
        )


def simulate_state_point(key, config: Config, temperature: float, density: float) -> dict:
    """Adapt, equilibrate and sample one state point; returns means and block std errs."""
    t0 = time.perf_counter()
    # the Config fields named like sample_lj_fluid's arguments are passed through
    shared = ("n_cells", "r_cut", "n_chains", "n_adapt", "adapt_sweeps")
    res = sample_lj_fluid(
        key,
        temperature=temperature,
        density=density,
        **{f: getattr(config, f) for f in (*shared, "n_equilibrate", "n_production")},
        initial_step_size=0.1,
    )
    wall = time.perf_counter() - t0
    n, step_size = res.positions.shape[1], res.step_size
    u, p = res.energy_per_particle, res.pressure  # (n_production, n_chains)
    u_mean, u_err, u_g = correlated_mean(u)
    p_mean, p_err, p_g = correlated_mean(p)
    return {
        "n_particles": n,
        "step_size": float(step_size),
        "energy_per_particle": {"value": u_mean, "std_err": u_err},
        "pressure": {"value": p_mean, "std_err": p_err},
        "statistical_inefficiency": {"energy": u_g, "pressure": p_g},
        "wall_s": wall,
        "sweeps_per_s": config.n_chains * (config.n_production + config.n_equilibrate) / wall,
    }


def _check(value, err, ref, ref_err):
    comb = float(np.hypot(err, ref_err or 0.0))
    z = (value - ref) / comb
    return float(z), bool(abs(z) < 3.0)


def main(config: Config | None = None, stage=uncached_stage) -> dict:
    """Run every state point; print a table; return JSON-able metrics.

    Each state point is one ``stage(name, fn)`` call (``RunContext.stage`` under the
    runner, so a resumed run skips the finished ones); its key is ``fold_in(key, i)``
    with ``i`` its place in :attr:`Config.state_points`.
    """
    config = config or Config()
    jax.config.update("jax_enable_x64", True)  # experiment entry point, not library code
    key = jr.key(config.seed)
    out = {}
    print(f"{'T*':>5} {'rho*':>6} {'U/N':>22} {'NIST':>9} {'z':>6} {'P*':>22} {'NIST':>9} {'z':>6}")
    for i, (t, rho) in enumerate(config.state_points):
        args = (jr.fold_in(key, i), config, t, rho)
        res = stage(f"T={t:g}_rho={rho:g}", lambda a=args: simulate_state_point(*a))
        u_ref, u_ref_err, p_ref, p_ref_err = NIST_REFERENCE[(t, rho)]
        u, p = res["energy_per_particle"], res["pressure"]
        zu, oku = _check(u["value"], u["std_err"], u_ref, u_ref_err)
        zp, okp = _check(p["value"], p["std_err"], p_ref, p_ref_err)
        res.update(
            nist_energy=u_ref,
            nist_pressure=p_ref,
            z_energy=zu,
            z_pressure=zp,
            energy_within_3_sigma=oku,
            pressure_within_3_sigma=okp,
            jzg_energy=float(jzg_excess_energy(t, rho)),
            jzg_pressure=float(jzg_pressure(t, rho)),
        )
        out[f"T={t:g},rho={rho:g}"] = res
        print(
            f"{t:5.2f} {rho:6.3f} {u['value']:10.4f} +- {u['std_err']:.4f} {u_ref:9.4f} {zu:+6.2f} "
            f"{p['value']:10.4f} +- {p['std_err']:.4f} {p_ref:9.4f} {zp:+6.2f}  ({res['wall_s']:.0f} s)",
            flush=True,
        )
    return out


def run(config: Config, ctx=None) -> dict:
    """Runner entry point: each state point is a ``ctx.stage``."""
    return main(config, uncached_stage if ctx is None else ctx.stage)


if __name__ == "__main__":
    import sys

    main(Config.quick() if "--quick" in sys.argv else None)
