r"""LJ solid–liquid coexistence from a generative crystal model and the liquid's free energy.

At each temperature :math:`T^*` (full LJ potential):

* **Solid.** At a few densities around the expected melting density, the crystal's
  excess free energy from path weights: the lattice Gaussian of the harmonic crystal at
  that :math:`(T^*, \rho^*)` (:func:`generative.periodic.lattice_gaussian_from_hessian`,
  a model conditioned on the state through its Hessian, no training), refitted from a
  short AIS run and corrected by a production AIS run
  (:func:`experiments.materials_crystal_generative.path_weight_free_energy`; hard cut
  ``solid_r_cut``, the full potential's lattice sum and thermal tail added). The finite
  size is corrected by the harmonic lattice's
  :func:`thermo.materials.harmonic_finite_size_correction` (its anharmonic part is left
  out: at :math:`T^*=2`, :math:`\rho^*=1.28` the path weights at N = 108 and 256 differ
  by -0.0012 after it, ``book/chapters/08_materials.md``). A quadratic in density through
  these values is the solid's curve. The full potential comes from an exact reweighting of
  the population, so the answer must not depend on the hard cut: ``cut_check_r_cut``
  reruns one node with a second cut.
* **Liquid.** NVT Metropolis pressures (N = 256, cut ``liquid_r_cut`` with the analytic
  tail corrections; each node is melted first at ``melt_factor`` times the temperature so
  that a dense node does not start as a superheated crystal) on an isotherm window around
  the expected freezing density, :math:`(Z-1)/\rho` fitted there and integrated from an
  anchor (:func:`thermo.materials.fit_compressibility`). A supercritical isotherm is
  anchored at the window's lowest density by Gauss–Lobatto density integration from the
  ideal gas (exact :math:`B_2` at :math:`\rho = 0`, the virial series at the lowest
  nodes). Below ``isotherm_min_temperature`` that path would cross the vapour–liquid
  region, so the isotherm is anchored at its expected freezing density by integrating the
  excess energy in :math:`\beta` from the highest temperature's curve,
  :math:`\beta a_{\rm ex}(\beta_1) = \beta a_{\rm ex}(\beta_0) + \int_{\beta_0}^{\beta_1}
  u_{\rm ex}\,d\beta`. The same assembly run on the JZG equation of state in place of
  the simulations (``dry_run_anchor_error``) measures the route's own quadrature and fit
  error; ``liquid_anchor_minus_jzg`` compares the simulated anchor with JZG.
* **Coexistence.** :func:`thermo.materials.coexistence`: equal pressure and chemical
  potential, error bars by parametric draws of both fits.

References: Mastny & de Pablo 2007 (densities, their fits), and for the pressure van der
Hoef 2000's Eq. 24, his refit of the Agrawal & Kofke 1995 melting-line form
:math:`P = \beta^{-5/4} e^{-0.4759\beta^{1/2}}(16.89 - 7.2866\beta - 2.9895\beta^2)`.
A second pressure reference that rests on no solid equation of state is the JZG liquid's
pressure at Mastny & de Pablo's liquid density (:func:`mastny_de_pablo_jzg_pressure`).
The expected melting densities place the density nodes only (the answer must fall inside
the windows, or :func:`thermo.materials.coexistence` says so).

``python -m experiments run materials_coexistence`` (every node is a resumable stage;
``--quick`` for the smoke setting).
"""

from __future__ import annotations

import dataclasses
import time
from functools import partial

import jax
import jax.random as jr
import numpy as np

from experiments._config import Count, NonNegative, Positive, Real, Seed
from experiments._runner import uncached_stage
from experiments.materials_crystal_generative import path_weight_free_energy
from generative.periodic import bond_order_q6
from thermo.estimators import gauss_legendre
from thermo.materials import (
    coexistence,
    correlated_mean,
    density_integration,
    fit_compressibility,
    fit_excess_free_energy,
    gauss_lobatto_densities,
    harmonic_finite_size_correction,
    jzg_excess_energy,
    jzg_excess_free_energy,
    jzg_pressure,
    sample_lj_fluid,
    second_virial_coefficient,
    third_virial_coefficient,
    virial_pressure_series,
)

__all__ = [
    "Config",
    "agrawal_kofke_pressure",
    "main",
    "mastny_de_pablo_densities",
    "mastny_de_pablo_jzg_pressure",
    "run",
]


def mastny_de_pablo_densities(temperature: float) -> tuple[float, float]:
    """Mastny & de Pablo 2007 fits of the (solid, liquid) coexistence densities."""
    b = 1.0 / temperature
    s = np.polyval([-0.095229, 0.428351, -0.708590, 0.514632, -0.041510, 0.908629], b)
    liq = np.polyval([-0.15284, 0.68012, -1.16270, 0.91784, -0.27120, 0.90735], b)
    return float(b**-0.25 * s), float(b**-0.25 * liq)


def agrawal_kofke_pressure(temperature: float) -> float:
    """Melting pressure, the Agrawal & Kofke 1995 form with van der Hoef 2000's constants."""
    b = 1.0 / temperature
    return float(b**-1.25 * np.exp(-0.4759 * np.sqrt(b)) * (16.89 - 7.2866 * b - 2.9895 * b * b))


def mastny_de_pablo_jzg_pressure(temperature: float) -> float:
    """The pressure of the JZG liquid at Mastny & de Pablo's coexistence liquid density.

    A second pressure reference, independent of any solid equation of state: Mastny & de
    Pablo's densities are for the full potential and :math:`N\to\\infty`, and JZG is the
    liquid's equation of state the liquid side is checked against.
    """
    return float(jzg_pressure(temperature, mastny_de_pablo_densities(temperature)[1]))


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings.

    Attributes:
        seed: PRNG seed.
        temperatures: the isotherms (the highest must be supercritical).
        solid_offsets: solid density nodes, offsets from the expected melting density (at
            and above it: below, the N = 108 crystal is so anharmonic that the AIS weights
            are heavy-tailed, Pareto k > 1 at 1,200 stages).
        solid_extrapolation: the solid's curve is searched this far below its lowest node.
        solid_n_cells, solid_r_cut: the crystal (N = 4 n^3) and its hard cut.
        n_chains, n_stages: the production AIS run per solid node.
        n_chains_fit, n_stages_fit: the AIS run that refits the model.
        cut_check_r_cut: a second hard cut (0 to skip): at the highest temperature the
            middle solid node is rerun with it, and its full-potential value (the exact
            reweighting) must agree with the main cut's within their standard errors.
        liquid_n_cells, liquid_r_cut: the liquid (N = 4 n^3) and its cut.
        liquid_offsets: the liquid's isotherm nodes, offsets from the expected freezing
            density (increasing); the first is the anchor of a supercritical isotherm.
        liquid_degree: degree of the (Z - 1)/rho polynomial through them.
        lobatto_nodes: Gauss–Lobatto nodes of the density integration from the ideal gas to
            the anchor (node 0 takes the exact B2; the top node is the first isotherm node).
        virial_density: Lobatto nodes at or below it take the virial series
            Z = 1 + B2 rho + B3 rho^2 (its truncation error as the standard error).
        isotherm_min_temperature: below it the isotherm would cross the vapour–liquid
            region, so the liquid is anchored at its expected freezing density by a
            temperature integration from the highest temperature's curve.
        beta_nodes: Gauss–Legendre nodes in beta of that temperature integration.
        melt_factor, melt_sweeps: the melting run before each liquid node.
        n_equilibrate, n_production, thin: sweeps per liquid node.
    """

    seed: Seed = 1995
    temperatures: tuple[Positive, ...] = (2.0, 1.5, 1.0)
    solid_offsets: tuple[Real, ...] = (0.0, 0.05, 0.1)
    solid_extrapolation: NonNegative = 0.02
    solid_n_cells: Count = 3
    solid_r_cut: Positive = 2.1
    n_chains: Count = 512
    n_stages: Count = 1000
    n_chains_fit: Count = 256
    n_stages_fit: Count = 50
    cut_check_r_cut: NonNegative = 1.9
    liquid_n_cells: Count = 4
    liquid_r_cut: Positive = 3.0
    liquid_offsets: tuple[Real, ...] = (-0.1, -0.05, 0.0, 0.05)
    liquid_degree: Count = 2
    lobatto_nodes: Count = 6
    virial_density: NonNegative = 0.12
    isotherm_min_temperature: Positive = 1.4
    beta_nodes: Count = 4
    melt_factor: Positive = 2.5
    melt_sweeps: Count = 300
    n_equilibrate: Count = 500
    n_production: Count = 3000
    thin: Count = 5

    def __post_init__(self):
        if max(self.temperatures) < self.isotherm_min_temperature:
            raise ValueError(
                f"the highest temperature {max(self.temperatures)} must be at least "
                f"isotherm_min_temperature={self.isotherm_min_temperature} (supercritical)"
            )
        if len(self.solid_offsets) < 3:
            raise ValueError("solid_offsets needs at least 3 densities for the quadratic")

    @classmethod
    def quick(cls) -> Config:
        """Smoke setting: N = 32 solid, N = 108 liquid, tiny runs."""
        return cls(
            temperatures=(2.0, 1.0),
            solid_n_cells=2,
            solid_r_cut=1.45,
            cut_check_r_cut=1.3,
            n_chains=16,
            n_stages=10,
            n_chains_fit=16,
            n_stages_fit=5,
            liquid_n_cells=3,
            liquid_r_cut=2.1,
            lobatto_nodes=4,
            beta_nodes=2,
            melt_sweeps=20,
            n_equilibrate=20,
            n_production=40,
            thin=2,
        )


def solid_node(key, config: Config, t: float, rho: float) -> dict:
    r"""Path-weight free energy of the crystal at one density, full potential, N -> inf.

    The cut crystal's :math:`\ln Q` from the AIS weights; the full potential by reweighting
    the same population (:func:`experiments.materials_crystal_generative.
    full_potential_reweighting`), in place of the static lattice sum and the first-order
    thermal tail, which miss a neighbour shell sitting at the cut (the fourth shell
    crosses :math:`r_c = 2.1` at :math:`\rho^* = 1.222`); the harmonic finite-size
    correction on top.
    """
    k_fit, k_prod = jr.split(key)
    pw = path_weight_free_energy(
        k_fit,
        k_prod,
        t,
        rho,
        config.solid_n_cells,
        config.solid_r_cut,
        config.n_chains,
        config.n_stages,
        n_chains_fit=config.n_chains_fit,
        n_stages_fit=config.n_stages_fit,
    )
    gen, res, full = pw["gen"], pw["res"], pw["full_potential"]
    value, reweight, shortcut = full["value"], full["reweighting"], full["lattice_and_thermal_tail"]
    fs = float(harmonic_finite_size_correction(rho, t, config.solid_n_cells))
    print(
        f"  solid T={t:g} rho={rho:.4f}: full-potential reweighting {reweight:+.5f} vs lattice "
        f"sum + thermal tail {shortcut:+.5f}; beta A_ex/N (N -> inf) {value + fs:.5f}",
        flush=True,
    )
    return {
        "density": rho,
        "value_lattice_tail": gen["value"],
        "value": value,
        "std_err": full["std_err"],
        "full_potential_reweighting": reweight,
        "lattice_and_thermal_tail": shortcut,
        "finite_size_correction": fs,
        "value_infinite": value + fs,
        "ess_fraction": float(res.ess) / config.n_chains,
        "pareto_k": float(res.pareto_k),
        "pareto_k_full": full["pareto_k"],
        "energy_evals": pw["evals"] + full["energy_evals"],
        "wall_s": pw["wall_s"],
        "cpu_s": pw["cpu_s"],
    }


def _cut_check(main_row: dict, alt_row: dict, config: Config) -> dict:
    """The same solid node at two cuts: the exact reweighting against the lattice sum."""
    se = float(np.hypot(main_row["std_err"], alt_row["std_err"]))
    diff = alt_row["value_infinite"] - main_row["value_infinite"]
    lat = alt_row["value_lattice_tail"] - main_row["value_lattice_tail"]
    print(
        f"  cut check rho={main_row['density']:.4f}: r_c {config.cut_check_r_cut:g} minus "
        f"{config.solid_r_cut:g}: reweighted {diff:+.5f} (combined SE {se:.5f}); lattice sum "
        f"+ thermal tail {lat:+.5f}",
        flush=True,
    )
    return {
        "density": main_row["density"],
        "r_cut": config.cut_check_r_cut,
        "value_infinite": alt_row["value_infinite"],
        "reweighted_difference": diff,
        "combined_std_err": se,
        "lattice_tail_difference": lat,
        "node": alt_row,
    }


def liquid_node(key, config: Config, t: float, rho: float) -> dict:
    """NVT MC at one density after melting: Z, U/N and the final configuration's Q6."""
    k_melt, k_run = jr.split(key)
    common = {"density": rho, "n_cells": config.liquid_n_cells, "r_cut": config.liquid_r_cut}
    t0, c0 = time.perf_counter(), time.process_time()
    hot = sample_lj_fluid(
        k_melt,
        temperature=config.melt_factor * t,
        n_adapt=2,
        adapt_sweeps=20,
        n_equilibrate=config.melt_sweeps,
        n_production=1,
        **common,
    )
    res = sample_lj_fluid(
        k_run,
        temperature=t,
        n_adapt=3,
        adapt_sweeps=40,
        n_equilibrate=config.n_equilibrate,
        n_production=config.n_production,
        thin=config.thin,
        initial_positions=hot.positions[0],
        **common,
    )
    p, p_se, g = correlated_mean(res.pressure)
    u, u_se, _ = correlated_mean(res.energy_per_particle)
    a_nn = (4.0 / rho) ** (1.0 / 3.0) / np.sqrt(2.0)
    q6 = float(bond_order_q6(res.positions[0], res.box, 0.5 * a_nn * (1 + np.sqrt(2.0)))[0])
    row = {
        "density": rho,
        "pressure": p,
        "pressure_std_err": p_se,
        "z": p / (rho * t),
        "z_std_err": p_se / (rho * t),
        "energy_per_particle": u,
        "energy_std_err": u_se,
        "inefficiency": g,
        "q6_final": q6,
        "acceptance": res.acceptance_rate,
        "wall_s": time.perf_counter() - t0,
        "cpu_s": time.process_time() - c0,
    }
    print(
        f"  liquid T={t:g} rho={rho:.4f}: P = {p:.4f} +- {p_se:.4f}, U/N = {u:.4f}, "
        f"Q6 {q6:.3f} ({row['wall_s']:.0f} s)",
        flush=True,
    )
    return row


def _curve_value(curve, rho):
    """beta a_ex(rho) of a fitted curve and its standard error."""
    g = rho ** np.arange(curve.coefficients.size)
    return float(curve.excess_free_energy(rho)), float(np.sqrt(g @ curve.covariance @ g))


def liquid_plan(config: Config) -> dict:
    """Per temperature the liquid's simulated densities (isotherm, Lobatto, beta path)."""
    temps = sorted(config.temperatures, reverse=True)
    hot = temps[0]
    sub = [t for t in temps if t < config.isotherm_min_temperature]
    plan = {}
    for t in temps:
        rho_l = mastny_de_pablo_densities(t)[1]
        iso = rho_l + np.asarray(config.liquid_offsets, np.float64)
        row = {"isotherm": iso, "lobatto": None, "beta": None}
        if t >= config.isotherm_min_temperature:
            nodes, weights = gauss_lobatto_densities(float(iso[0]), config.lobatto_nodes)
            row["lobatto"] = (nodes, weights)
            if t == hot:  # the beta paths of the subcritical isotherms start on this curve
                extra = [mastny_de_pablo_densities(x)[1] for x in sub]
                row["isotherm"] = np.unique(np.concatenate([iso, extra]))
        else:
            bn, bw = gauss_legendre(1.0 / hot, 1.0 / t, config.beta_nodes)
            row["beta"] = (rho_l, bn, bw)
        plan[t] = row
    return plan


def liquid_curve(config: Config, t: float, plan_t: dict, iso_rows, lobatto_rows, beta_rows, hot):
    """The liquid's curve from its node results (simulated, or JZG for the dry run)."""
    iso = plan_t["isotherm"]
    if plan_t["lobatto"] is not None:
        nodes, weights = plan_t["lobatto"]
        b2 = float(second_virial_coefficient(t))
        b3 = float(third_virial_coefficient(t))
        p, pe = [0.0], [0.0]
        for rho_k, r in zip(nodes[1:-1], lobatto_rows, strict=True):
            if rho_k <= config.virial_density:
                pv, ev = virial_pressure_series(t, rho_k, b2, b3)
                p.append(float(pv))
                pe.append(float(ev))
            else:
                p.append(r["pressure"])
                pe.append(r["pressure_std_err"])
        top = iso_rows[int(np.argmin(np.abs(iso - nodes[-1])))]
        p.append(top["pressure"])
        pe.append(top["pressure_std_err"])
        di = density_integration(t, nodes, weights, np.array(p), np.array(pe), second_virial=b2)
        anchor = (float(nodes[-1]), di.beta_free_energy, di.std_err / t)
    else:
        rho_b, _, bw = plan_t["beta"]
        u = np.array([r["energy_per_particle"] for r in beta_rows])
        u_se = np.array([r["energy_std_err"] for r in beta_rows])
        a0, a0_se = _curve_value(hot, rho_b)
        se = float(np.hypot(a0_se, np.sqrt(np.sum((bw * u_se) ** 2))))
        anchor = (float(rho_b), a0 + float(np.sum(bw * u)), se)
    return fit_compressibility(
        [r["density"] for r in iso_rows],
        [r["z"] for r in iso_rows],
        [r["z_std_err"] for r in iso_rows],
        degree=config.liquid_degree,
        anchor=anchor,
    ), anchor


def jzg_row(t: float, rho: float, se: float = 1e-3) -> dict:
    """A node row from the JZG fit in place of a simulation (the method's dry run)."""
    p = float(jzg_pressure(t, rho))
    return {
        "density": rho,
        "pressure": p,
        "pressure_std_err": se * rho * t,
        "z": p / (rho * t),
        "z_std_err": se,
        "energy_per_particle": float(jzg_excess_energy(t, rho)),
        "energy_std_err": se,
    }


def main(config: Config | None = None, stage=uncached_stage) -> dict:
    """Every solid and liquid node is one ``stage``; assemble the coexistence per T."""
    config = config or Config()
    jax.config.update("jax_enable_x64", True)  # experiment entry point
    root = jr.key(config.seed)
    temps = sorted(config.temperatures, reverse=True)
    plan = liquid_plan(config)
    curves, dry_curves, out = {}, {}, {}
    for i, t in enumerate(temps):
        ki = jr.fold_in(root, i)
        rho_s, rho_l = mastny_de_pablo_densities(t)
        solid = [
            stage(
                f"solid_T={t:g}_{j}",
                partial(solid_node, jr.fold_in(jr.fold_in(ki, 0), j), config, t, rho_s + d),
            )
            for j, d in enumerate(config.solid_offsets)
        ]
        s_curve = fit_excess_free_energy(
            [r["density"] for r in solid],
            [r["value_infinite"] for r in solid],
            [r["std_err"] for r in solid],
            degree=2,
        )
        pl = plan[t]
        cut_check = None
        if i == 0 and config.cut_check_r_cut > 0:
            j = len(solid) // 2
            other = dataclasses.replace(config, solid_r_cut=config.cut_check_r_cut)
            alt = stage(
                f"solid_cut_check_T={t:g}",
                partial(
                    solid_node, jr.fold_in(jr.fold_in(ki, 4), j), other, t, solid[j]["density"]
                ),
            )
            cut_check = _cut_check(solid[j], alt, config)

        def node(tag, j, t_node, rho, kk=ki, t=t):
            key = jr.fold_in(jr.fold_in(kk, tag), j)
            name = {1: "iso", 2: "beta", 3: "lobatto"}[tag]
            return stage(
                f"liquid_{name}_T={t:g}_{j}", partial(liquid_node, key, config, t_node, rho)
            )

        iso_rows = [node(1, j, t, float(r)) for j, r in enumerate(pl["isotherm"])]
        lob_rows, beta_rows, lob_d, beta_t = [], [], [], []
        if pl["lobatto"] is not None:
            lob_d = [float(r) for r in pl["lobatto"][0][1:-1]]
            lob_rows = [
                node(3, j, t, r) if r > config.virial_density else {"density": r}
                for j, r in enumerate(lob_d)
            ]
        else:
            beta_t = [1.0 / b for b in pl["beta"][1]]
            beta_rows = [node(2, j, tb, pl["beta"][0]) for j, tb in enumerate(beta_t)]
        hot = curves[temps[0]][1] if curves else None
        l_curve, anchor = liquid_curve(config, t, pl, iso_rows, lob_rows, beta_rows, hot)
        # the same assembly on the JZG fit: the route's own quadrature and fit error
        dry_hot = dry_curves[temps[0]] if dry_curves else None
        dry, dry_anchor = liquid_curve(
            config,
            t,
            pl,
            [jzg_row(t, float(r)) for r in pl["isotherm"]],
            [jzg_row(t, r) for r in lob_d],
            [jzg_row(tb, pl["beta"][0]) for tb in beta_t],
            dry_hot,
        )
        dry_curves[t] = dry
        curves[t] = (s_curve, l_curve)
        p_ref = agrawal_kofke_pressure(t)
        p_mdp = mastny_de_pablo_jzg_pressure(t)
        window_l = (float(pl["isotherm"][0]), float(pl["isotherm"][-1]))
        # JZG's own beta a_ex at the anchor: the dry run's error there
        dry_err = dry_anchor[1] - float(jzg_excess_free_energy(t, dry_anchor[0])) / t
        sim_vs_jzg = anchor[1] - float(jzg_excess_free_energy(t, anchor[0])) / t
        row = {
            "temperature": t,
            "mastny_de_pablo": {"solid": rho_s, "liquid": rho_l},
            "agrawal_kofke_vdh_pressure": p_ref,
            "mastny_de_pablo_jzg_pressure": p_mdp,
            "liquid_anchor": anchor,
            "liquid_anchor_minus_jzg": sim_vs_jzg,
            "dry_run_anchor_error": dry_err,
            "liquid_fit_chi2_dof": l_curve.chi2_dof,
            "solid_fit_values": [r["value_infinite"] for r in solid],
            "solid_nodes": solid,
            **({"cut_check": cut_check} if cut_check is not None else {}),
            "liquid_nodes": iso_rows,
            "lobatto_nodes": lob_rows,
            "beta_nodes": beta_rows,
            "solid_energy_evals": sum(r["energy_evals"] for r in solid),
            "liquid_runs": len([r for r in iso_rows + lob_rows + beta_rows if "z" in r]),
            "liquid_sweeps_per_run": config.melt_sweeps
            + config.n_equilibrate
            + config.n_production
            + 160,
            "cpu_s": sum(r.get("cpu_s", 0.0) for r in solid + iso_rows + lob_rows + beta_rows),
            "max_liquid_q6": max(
                r["q6_final"] for r in iso_rows + lob_rows + beta_rows if "z" in r
            ),
        }
        print(
            f"T*={t:g}: liquid anchor beta a_ex({anchor[0]:.4f}) = {anchor[1]:.4f} +- "
            f"{anchor[2]:.4f} (minus JZG {sim_vs_jzg:+.4f}; dry run {dry_err:+.5f})",
            flush=True,
        )
        try:
            window_s = (
                s_curve.density_range[0] - config.solid_extrapolation,
                s_curve.density_range[1],
            )
            co = coexistence(t, s_curve, l_curve, windows=(window_s, window_l))
        except ValueError as err:  # keep every node's result; say why there is no point
            print(f"T*={t:g}: {err}", flush=True)
            out[f"T={t:g}"] = row | {"error": str(err)}
            continue
        row |= {
            "pressure": co.pressure,
            "pressure_std_err": co.pressure_std_err,
            "density_solid": co.densities[0],
            "density_solid_std_err": co.densities_std_err[0],
            "density_liquid": co.densities[1],
            "density_liquid_std_err": co.densities_std_err[1],
            "pressure_rel_error": co.pressure / p_ref - 1.0,
            "pressure_rel_error_mdp_jzg": co.pressure / p_mdp - 1.0,
            "density_solid_error": co.densities[0] - rho_s,
            "density_liquid_error": co.densities[1] - rho_l,
            "n_draws_failed": co.n_draws_failed,
        }
        print(
            f"T*={t:g}: P = {co.pressure:.3f} +- {co.pressure_std_err:.3f} (Agrawal-Kofke/vdH "
            f"{p_ref:.3f}, {100 * row['pressure_rel_error']:+.1f} %; JZG at the MdP liquid "
            f"density {p_mdp:.3f}, {100 * row['pressure_rel_error_mdp_jzg']:+.1f} %), rho_s = "
            f"{co.densities[0]:.4f} +- {co.densities_std_err[0]:.4f} (MdP {rho_s:.4f}), rho_l = "
            f"{co.densities[1]:.4f} +- {co.densities_std_err[1]:.4f} (MdP {rho_l:.4f})",
            flush=True,
        )
        out[f"T={t:g}"] = row
    return {"by_temperature": out, "curves": curves}


def _figure(res: dict):
    """Left: beta mu against P for both phases per T; right: the melting line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4))
    for i, (t, (s_curve, l_curve)) in enumerate(res["curves"].items()):
        rs = np.linspace(*s_curve.density_range, 200)
        lo, hi = l_curve.density_range
        rl = np.linspace(max(lo, 0.8 * hi), hi, 200)
        p_s, p_l = t * s_curve.beta_pressure(rs), t * l_curve.beta_pressure(rl)
        mu_l = np.interp(p_s, p_l, l_curve.beta_chemical_potential(rl), left=np.nan, right=np.nan)
        ax.plot(p_s, s_curve.beta_chemical_potential(rs) - mu_l, c=f"C{i}", label=f"T* = {t:g}")
        ax.axvline(agrawal_kofke_pressure(t), c=f"C{i}", ls=":", lw=1)
        ax.axvline(mastny_de_pablo_jzg_pressure(t), c=f"C{i}", ls="--", lw=1)
    ax.axhline(0.0, c="k", lw=0.8)
    ax.set_xlabel("P*  (dotted: Agrawal-Kofke/van der Hoef; dashed: JZG at MdP density)")
    ax.set_ylabel(r"$\beta(\mu_{\rm solid} - \mu_{\rm liquid})$")
    ax.legend(fontsize=8)
    tt = np.linspace(0.8, 2.2, 50)
    md = np.array([mastny_de_pablo_densities(x) for x in tt])
    bx.plot(md[:, 0], tt, "k-", lw=1, label="Mastny & de Pablo solid")
    bx.plot(md[:, 1], tt, "k--", lw=1, label="Mastny & de Pablo liquid")
    for row in res["by_temperature"].values():
        if "pressure" in row:
            t = row["temperature"]
            bx.errorbar(row["density_solid"], t, xerr=row["density_solid_std_err"], fmt="o", c="C0")
            bx.errorbar(
                row["density_liquid"], t, xerr=row["density_liquid_std_err"], fmt="s", c="C1"
            )
    bx.set_xlabel(r"$\rho^*$")
    bx.set_ylabel("T*")
    bx.legend(fontsize=7)
    fig.tight_layout()
    return fig


def run(config: Config, ctx=None) -> dict:
    """Runner entry point: each node is a ``ctx.stage``; writes ``coexistence.png``."""
    res = main(config, uncached_stage if ctx is None else ctx.stage)
    if ctx is not None:
        ctx.save_figure(_figure(res), "coexistence")
    return res["by_temperature"]


if __name__ == "__main__":
    import sys

    main(Config.quick() if "--quick" in sys.argv else None)
