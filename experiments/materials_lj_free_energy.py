r"""LJ fluid excess free energy, two routes, against JZG 1993.

At each target :math:`(T^*, \rho^*)`:

1. **Density integration** from the ideal gas,
   :math:`\beta A_{\rm ex}/N = \int_0^{\rho} (Z - 1)/\rho'\, d\rho'`, on Gauss–Lobatto nodes
   in density (:func:`thermo.materials.gauss_lobatto_densities`): the node at
   :math:`\rho' = 0` takes the exact second virial coefficient of the full potential
   (:func:`thermo.materials.second_virial_coefficient`), so no simulation sits at very low
   density where the integrand's noise :math:`\beta\sigma_P/\rho'^2` explodes; the other
   nodes are NVT Metropolis MC runs (:func:`thermo.materials.sample_lj_fluid`, hard cut
   at ``r_cut`` with the analytic tail corrections of the energy and the pressure, the
   convention of the full-potential JZG fit).
2. **Widom + pressure** at the target node alone (a robust one-simulation cross-check):
   :math:`\beta A_{\rm ex}/N = \beta\mu_{\rm ex} - (Z - 1)`
   (:func:`thermo.materials.widom_excess_free_energy`), with the tail-corrected Widom
   :math:`\beta\mu_{\rm ex}` (:func:`thermo.materials.widom_chemical_potential`).

Standard errors of the pressures come from the statistical inefficiency
(:func:`thermo.materials.correlated_mean`, shared :mod:`thermo.estimators.timeseries`).
The tolerance is the 0.02 ε spread of the published LJ EOS. With the JZG pressures in
place of simulated ones, the 6-node Lobatto rule reproduces JZG to 1.5e-4 ε.

``python -m experiments materials_lj_free_energy`` (or ``python -m
experiments.materials_lj_free_energy [--quick]``).
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.random as jr
import numpy as np

from experiments._config import Count, NonNegative, NonNegativeInt, Positive, Seed
from experiments._runner import uncached_stage
from thermo.materials import (
    correlated_mean,
    density_integration,
    gauss_lobatto_densities,
    jzg_excess_free_energy,
    sample_lj_fluid,
    second_virial_coefficient,
    third_virial_coefficient,
    virial_pressure_series,
    widom_chemical_potential,
    widom_excess_free_energy,
)

__all__ = ["Config", "main", "run"]


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings.

    Attributes:
        seed: PRNG seed.
        state_points: target (T*, rho*).
        n_nodes: Gauss–Lobatto nodes in density (the node at 0 is not simulated).
        n_cells: FCC cells per side of the start (N = 4 n^3; 5 -> 500).
        r_cut: cutoff in sigma (tail-corrected).
        n_equilibrate, n_production: sweeps per node.
        thin: record pressure (and configurations at the target) every ``thin`` sweeps.
        widom_insertions: ghost insertions per recorded configuration at the target.
        virial_density: nodes at or below this density take the exact virial series
            :math:`Z = 1 + B_2\rho + B_3\rho^2` (truncation error by the ratio test)
            instead of a simulation, whose noise there is largest.
        tolerance: target |A_ex/N - JZG| in epsilon (the spread of published LJ EOS).
    """

    seed: Seed = 1993
    state_points: tuple[tuple[Positive, Positive], ...] = ((2.0, 0.5), (1.5, 0.8))
    n_nodes: Count = 6
    n_cells: Count = 5
    r_cut: Positive = 3.0
    n_equilibrate: NonNegativeInt = 500
    n_production: Count = 2500
    thin: Count = 5
    widom_insertions: Count = 500
    virial_density: NonNegative = 0.07
    tolerance: Positive = 0.02

    @classmethod
    def quick(cls) -> Config:
        """Smoke setting (N = 108, a 3-node rule, short runs)."""
        return cls(
            state_points=((2.0, 0.5),),
            n_nodes=3,
            n_cells=3,
            r_cut=2.5,
            n_equilibrate=0,
            n_production=40,
            thin=2,
            widom_insertions=50,
            virial_density=0.0,
        )


def simulate_node(key, config: Config, t: float, rho: float, rho_k: float, target: bool) -> dict:
    """One density node: pressure (and, at the target, Widom mu_ex) from NVT MC."""
    n_part = 4 * config.n_cells**3
    res = sample_lj_fluid(
        key,
        temperature=t,
        density=float(rho_k),
        n_cells=config.n_cells,
        r_cut=config.r_cut,
        n_adapt=3 if config.n_equilibrate else 0,
        adapt_sweeps=40 if config.n_equilibrate else 5,
        n_equilibrate=config.n_equilibrate,
        n_production=config.n_production,
        thin=config.thin,
        record_configurations=target,
    )
    m, e, g = correlated_mean(res.pressure)
    row = {"density": float(rho_k), "pressure": m, "pressure_std_err": e, "g": g}
    print(f"  T={t} rho={rho_k:.4f}: P = {m:.4f} +- {e:.4f} (g = {g:.1f})", flush=True)
    if target:
        conf = res.configurations.reshape(-1, n_part, 3)
        mu = widom_chemical_potential(
            jr.fold_in(key, 1000),
            conf,
            res.box,
            temperature=t,
            n_insertions=config.widom_insertions,
            r_cut=config.r_cut,
        )
        # Consecutive configurations are correlated: inflate the error by the
        # statistical inefficiency of the per-configuration pressure series.
        mu_err = float(mu.std_err) * np.sqrt(g)
        a_w, a_w_err = widom_excess_free_energy(t, rho, float(mu.value), mu_err, m, e)
        row["widom"] = {
            "beta_mu_ex": {"value": float(mu.value), "std_err": mu_err},
            "free_energy": {"value": a_w, "std_err": a_w_err},
        }
    return row


def assemble(config: Config, t: float, rho: float, rows: list[dict]) -> dict:
    """Density integration (B2 at the zero node) and the Widom row, against JZG."""
    nodes, weights = gauss_lobatto_densities(rho, config.n_nodes)
    b2 = float(second_virial_coefficient(t))
    b3 = float(third_virial_coefficient(t)) if nodes[1] <= config.virial_density else 0.0
    p, pe = [0.0], [0.0]
    for rho_k, r in zip(nodes[1:], rows, strict=True):
        if rho_k <= config.virial_density:
            pv, ev = virial_pressure_series(t, rho_k, b2, b3)
            r["virial"] = {"pressure": float(pv), "truncation_error": float(ev)}
            p.append(float(pv))
            pe.append(float(ev))
        else:
            p.append(r["pressure"])
            pe.append(r["pressure_std_err"])
    p, pe = np.array(p), np.array(pe)
    di = density_integration(t, nodes, weights, p, pe, second_virial=b2)
    ref = float(jzg_excess_free_energy(t, rho))
    diff = di.free_energy - ref
    widom_row = rows[-1]["widom"]
    diff_w = widom_row["free_energy"]["value"] - ref
    print(
        f"T*={t} rho*={rho} N={4 * config.n_cells**3}: A_ex/N = {di.free_energy:.4f} +- "
        f"{di.std_err:.4f} (density TI), {widom_row['free_energy']['value']:.4f} +- "
        f"{widom_row['free_energy']['std_err']:.4f} (Widom - (Z-1)T); JZG {ref:.6f}; "
        f"diff {diff:+.4f} / {diff_w:+.4f}",
        flush=True,
    )
    return {
        "free_energy": {"value": di.free_energy, "std_err": di.std_err},
        "beta_free_energy": di.beta_free_energy,
        "jzg": ref,
        "difference": diff,
        "within_tolerance": bool(abs(diff) < config.tolerance),
        "widom": widom_row | {"difference": diff_w},
        "widom_within_tolerance": bool(abs(diff_w) < config.tolerance),
        "second_virial": b2,
        "third_virial": b3,
        "nodes": nodes.tolist(),
        "weights": weights.tolist(),
        "node_runs": rows,
        "n_particles": 4 * config.n_cells**3,
    }


def node_key(config: Config, i: int, j: int):
    """The PRNG key of state point ``i``, density node ``j`` (so nodes can run separately)."""
    return jr.fold_in(jr.fold_in(jr.key(config.seed), i), j)


def main(config: Config | None = None, stage=uncached_stage) -> dict:
    """Run all state points; print a table; return JSON-able metrics.

    Every simulated density node is one ``stage(name, fn)`` call (``RunContext.stage``
    under the runner, so a resumed run skips the finished nodes); its key
    (:func:`node_key`) depends only on the state point and node index.
    """
    config = config or Config()
    jax.config.update("jax_enable_x64", True)  # experiment entry point
    out = {}
    for i, (t, rho) in enumerate(config.state_points):
        nodes, _ = gauss_lobatto_densities(rho, config.n_nodes)
        t0 = time.perf_counter()
        rows = []
        for j in range(1, len(nodes)):
            if nodes[j] <= config.virial_density and j < len(nodes) - 1:
                rows.append({"density": float(nodes[j])})
                continue
            args = (node_key(config, i, j), config, t, rho, nodes[j], j == len(nodes) - 1)
            rows.append(stage(f"T={t:g}_rho={rho:g}_node{j}", lambda a=args: simulate_node(*a)))
        res = assemble(config, t, rho, rows)
        out[f"T={t:g},rho={rho:g}"] = res | {"wall_s": time.perf_counter() - t0}
    return out


def run(config: Config, ctx=None) -> dict:
    """Runner entry point: each density node is a ``ctx.stage``."""
    return main(config, uncached_stage if ctx is None else ctx.stage)


if __name__ == "__main__":
    import sys

    main(Config.quick() if "--quick" in sys.argv else None)
