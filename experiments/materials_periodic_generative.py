r"""Generative sampling of periodic LJ (N = 32) with a torus diffusion model, against long MCMC.

At each state point (a solid, :math:`T^*=0.75,\ \rho^*=1.1`, and a liquid,
:math:`T^*=2.0,\ \rho^*=0.8`), independent Metropolis chains
(:func:`thermo.materials.displacement_mc`, hard cut at :math:`r_c = 1.5\sigma`, the
largest that fits half of the :math:`N=32` cell) start from FCC, are equilibrated, and
record configurations every ``thin`` sweeps. The first chains train a score model on
the torus (:mod:`generative.periodic`: wrapped-Gaussian VE noising, a periodic,
translation-invariant, permutation-equivariant message-passing network on
minimum-image displacements); the last chains are held out.

Generated samples are scored against the held-out MCMC samples by

* the energy :math:`W_2` (:func:`thermo.metrics.energy_w2`) of :math:`U/N`, next to the
  MCMC half-vs-half floor (two disjoint sets of held-out chains of the same size);
* the radial distribution function :math:`g(r)` (minimum-image pairs up to
  :math:`w/2`), as :math:`\int |g_{\rm gen} - g_{\rm MCMC}|\,dr`, next to the same floor.

``python -m experiments.materials_periodic_generative [--quick]`` (both state points), or one
state point: ``python -c "from experiments.materials_periodic_generative import Config, main;
main(Config(state_points=((0.75, 1.1, 'solid'),)))"``
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from experiments._config import Count, NonNegativeInt, Positive, Seed
from experiments._report import save_figure
from experiments._runner import uncached_stage
from generative.periodic import PeriodicScoreNet, WrappedVE, sample_torus, train_torus_score
from thermo.materials import (
    lj_energy_fn,
    periodic_space,
    sample_lj_fluid,
)
from thermo.metrics import energy_w2

__all__ = ["Config", "main", "radial_distribution", "run"]

#: Sweeps per step-size adaptation round (4 rounds, discarded).
_ADAPT_STEPS = 20


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings.

    Attributes:
        seed: PRNG seed.
        state_points: ``(T*, rho*, label)``.
        n_cells: FCC cells per side (N = 4 n^3 = 32).
        r_cut: LJ cutoff (must not exceed half the cell).
        n_chains, n_heldout: MCMC chains; the last ``n_heldout`` (even) are held out.
        n_equilibrate, n_production, thin: sweeps (N trial moves each).
        width, n_rbf: network size.
        n_train_steps, batch_size, learning_rate: DSM training.
        sigma_min, sigma_max: the torus noise schedule (fractional units).
        n_generate, n_sample_steps, n_corrector, snr: the reverse sampler.
        n_bins: RDF bins.
    """

    seed: Seed = 32
    state_points: tuple[tuple[Positive, Positive, str], ...] = (
        (0.75, 1.1, "solid"),
        (2.0, 0.8, "liquid"),
    )
    n_cells: Count = 2
    r_cut: Positive = 1.5
    n_chains: Count = 8
    n_heldout: Count = 4
    n_equilibrate: NonNegativeInt = 300
    n_production: Count = 1000
    thin: Count = 10
    width: Count = 32
    n_rbf: Count = 12
    n_train_steps: Count = 500
    batch_size: Count = 16
    learning_rate: Positive = 2e-3
    sigma_min: Positive = 2e-3
    sigma_max: Positive = 0.6
    n_generate: Count = 150
    n_sample_steps: Count = 150
    n_corrector: NonNegativeInt = 0
    snr: Positive = 0.15
    n_bins: Count = 40

    def __post_init__(self):
        if self.n_heldout < 2 or self.n_heldout % 2 or self.n_heldout >= self.n_chains:
            raise ValueError("n_heldout must be even, >= 2 and smaller than n_chains")
        if self.n_production % self.thin:
            raise ValueError("n_production must be a multiple of thin")

    @classmethod
    def quick(cls) -> Config:
        """One state point, short chains, a few training and sampling steps (smoke run).

        Equilibration and production take as many sweeps as one adaptation round, with
        ``thin = 1``.
        """
        return cls(
            state_points=((2.0, 0.8, "liquid"),),
            n_chains=6,
            n_heldout=2,
            n_equilibrate=_ADAPT_STEPS,
            n_production=_ADAPT_STEPS,
            thin=1,
            width=16,
            n_rbf=8,
            n_train_steps=20,
            batch_size=8,
            n_generate=8,
            n_sample_steps=20,
            n_corrector=0,
            n_bins=20,
        )


def radial_distribution(frac: np.ndarray, box: np.ndarray, r_max: float, n_bins: int):
    r"""Radial distribution function :math:`g(r)` of periodic configurations.

    :math:`g(r_k) = \frac{V}{N(N-1)/2}\,\frac{\langle n_k \rangle}{4\pi r_k^2 \Delta r}`
    with :math:`n_k` the number of minimum-image pairs in bin :math:`k` (valid for
    :math:`r_{\max} \le w_{\min}/2`).

    Args:
        frac: ``(m, n, 3)`` fractional coordinates.
        box: ``(3, 3)`` cell (columns = lattice vectors).
        r_max, n_bins: histogram range ``[0, r_max]`` and bins.

    Returns:
        ``(centres (n_bins,), g (n_bins,))``.
    """
    frac = np.asarray(frac)
    m, n, _ = frac.shape
    d = frac[:, :, None, :] - frac[:, None, :, :]
    d -= np.round(d)
    r = np.linalg.norm(d @ box.T, axis=-1)
    iu = np.triu_indices(n, 1)
    counts, edges = np.histogram(r[:, iu[0], iu[1]].ravel(), bins=n_bins, range=(0.0, r_max))
    centres = 0.5 * (edges[1:] + edges[:-1])
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    volume = abs(np.linalg.det(box))
    g = counts / m / (n * (n - 1) / 2) * volume / shell
    return centres, g


def _mcmc(key, config: Config, temperature: float, density: float):
    # adapt (4 rounds of _ADAPT_STEPS sweeps, discarded), equilibrate, produce
    res = sample_lj_fluid(
        key,
        temperature=temperature,
        density=density,
        n_cells=config.n_cells,
        r_cut=config.r_cut,
        n_chains=config.n_chains,
        n_adapt=4,
        adapt_sweeps=_ADAPT_STEPS,
        n_equilibrate=config.n_equilibrate,
        n_production=config.n_production,
        thin=config.thin,
        record_configurations=True,
    )
    box = res.box
    traj = np.swapaxes(res.configurations, 0, 1)  # (chains, records, n, 3)
    frac = traj @ np.linalg.inv(box).T
    return frac - np.floor(frac), box, res.acceptance_rate, res.step_size


def _state_point(key, config: Config, temperature: float, density: float, label: str) -> dict:
    t0 = time.perf_counter()
    k_mc, k_net, k_train, k_gen = jr.split(key, 4)
    frac, box, acc, step = _mcmc(k_mc, config, temperature, density)
    t_mc = time.perf_counter() - t0
    print(f"{label}: MCMC done in {t_mc:.1f} s (acceptance {acc:.2f})", flush=True)
    n_train = config.n_chains - config.n_heldout
    half = config.n_heldout // 2
    train_u = frac[:n_train].reshape(-1, *frac.shape[2:])
    ref_a = frac[n_train : n_train + half].reshape(-1, *frac.shape[2:])
    ref_b = frac[n_train + half :].reshape(-1, *frac.shape[2:])
    n_particles = frac.shape[2]

    proc = WrappedVE(sigma_min=config.sigma_min, sigma_max=config.sigma_max)
    # one compiled initialiser instead of a compile per eager random op (seconds)
    net = eqx.filter_jit(
        lambda k: PeriodicScoreNet(box, k, width=config.width, n_rbf=config.n_rbf)
    )(k_net)
    t1 = time.perf_counter()
    res = train_torus_score(
        k_train,
        net,
        jnp.asarray(train_u),
        proc,
        n_steps=config.n_train_steps,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        n_chunks=10 if config.n_train_steps % 10 == 0 else 1,
    )
    t_train = time.perf_counter() - t1
    print(f"{label}: trained in {t_train:.1f} s, final loss {res.losses[-1]:.4f}", flush=True)
    t2 = time.perf_counter()
    gen = sample_torus(
        k_gen,
        res.net,
        proc,
        n_samples=min(config.n_generate, ref_b.shape[0]),
        n_particles=n_particles,
        n_steps=config.n_sample_steps,
        n_corrector=config.n_corrector,
        snr=config.snr,
    )
    gen = np.asarray(jax.block_until_ready(gen))
    t_gen = time.perf_counter() - t2

    disp, _ = periodic_space(box)
    energy = jax.jit(jax.vmap(lj_energy_fn(disp, r_cut=config.r_cut)))

    def e_per_particle(u):
        return np.asarray(energy(jnp.asarray(u @ box.T))) / n_particles

    e_a, e_b, e_gen = e_per_particle(ref_a), e_per_particle(ref_b), e_per_particle(gen)
    w2_gen = energy_w2(e_gen, e_a)
    w2_floor = energy_w2(e_b[: len(e_gen)], e_a)
    r_max = 0.5 / np.linalg.norm(np.linalg.inv(box), axis=1).max()
    r, g_a = radial_distribution(ref_a, box, r_max, config.n_bins)
    _, g_b = radial_distribution(ref_b[: len(gen)], box, r_max, config.n_bins)
    _, g_gen = radial_distribution(gen, box, r_max, config.n_bins)
    dr = r[1] - r[0]
    out = {
        "temperature": temperature,
        "density": density,
        "n_particles": n_particles,
        "mc_acceptance": acc,
        "mc_step_size": step,
        "n_train_samples": int(train_u.shape[0]),
        "n_heldout_each_half": int(ref_a.shape[0]),
        "n_generated": int(gen.shape[0]),
        "energy_mcmc": [float(e_a.mean()), float(e_a.std(ddof=1) / np.sqrt(e_a.size))],
        "energy_generated_mean": float(np.mean(e_gen)),
        "energy_generated_median": float(np.median(e_gen)),
        "energy_w2_generated": w2_gen,
        "energy_w2_floor": w2_floor,
        "rdf_l1_generated": float(np.sum(np.abs(g_gen - g_a)) * dr),
        "rdf_l1_floor": float(np.sum(np.abs(g_b - g_a)) * dr),
        "final_loss": float(np.mean(res.losses[-max(1, len(res.losses) // 10) :])),
        "wall_s": {"mcmc": t_mc, "train": t_train, "sample": t_gen},
        "_plot": {
            "e_a": e_a,
            "e_gen": e_gen,
            "r": r,
            "g_a": g_a,
            "g_gen": g_gen,
            "losses": res.losses,
        },
    }
    print(
        f"{label} T*={temperature} rho*={density}: U/N MCMC {e_a.mean():.4f}, generated mean "
        f"{np.mean(e_gen):.4f} median {np.median(e_gen):.4f}; energy W2 {w2_gen:.4f} "
        f"(floor {w2_floor:.4f}); RDF L1 {out['rdf_l1_generated']:.4f} "
        f"(floor {out['rdf_l1_floor']:.4f}); wall {out['wall_s']}",
        flush=True,
    )
    return out


def _figure(rows: dict, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 3, figsize=(14, 3.6 * len(rows)), squeeze=False)
    for ax_row, (label, row) in zip(axes, rows.items(), strict=True):
        # the stage results are JSON: lists, with None where a value was not finite
        p = {k: np.asarray(v, dtype=float) for k, v in row["_plot"].items()}
        lo, hi = np.quantile(p["e_a"], [0.001, 0.999])
        span = hi - lo
        bins = np.linspace(lo - 0.5 * span, hi + 0.5 * span, 50)
        ax_row[0].hist(p["e_a"], bins=bins, density=True, alpha=0.5, label="MCMC (held out)")
        ax_row[0].hist(
            np.clip(p["e_gen"], bins[0], bins[-1]),
            bins=bins,
            density=True,
            alpha=0.5,
            label="diffusion (clipped)",
        )
        ax_row[0].set_xlabel("U/N")
        ax_row[0].set_title(
            f"{label}: W2 {row['energy_w2_generated']:.3f} (floor {row['energy_w2_floor']:.3f})"
        )
        ax_row[0].legend(fontsize=7)
        ax_row[1].plot(p["r"], p["g_a"], label="MCMC")
        ax_row[1].plot(p["r"], p["g_gen"], "--", label="diffusion")
        ax_row[1].set_xlabel("r / sigma")
        ax_row[1].set_ylabel("g(r)")
        ax_row[1].set_title(
            f"RDF L1 {row['rdf_l1_generated']:.3f} (floor {row['rdf_l1_floor']:.3f})"
        )
        ax_row[1].legend(fontsize=7)
        ax_row[2].plot(p["losses"], lw=0.5)
        ax_row[2].set_yscale("log")
        ax_row[2].set_xlabel("training step")
        ax_row[2].set_ylabel("DSM loss")
    save_figure(fig, path, dpi=110)


def run(config: Config, ctx) -> dict:
    """Runner entry point: every state point (MCMC, training, generation and the arrays
    its figure row needs) is a ``ctx.stage``; a resumed run skips the finished ones."""
    return main(config, ctx.run_dir, stage=ctx.stage)


def main(
    config: Config | None = None, out_dir: str | pathlib.Path | None = None, stage=uncached_stage
) -> dict:
    """Run every state point; print the table; save the figure and metrics.

    Each state point is one ``stage(name, fn)`` call with the key ``fold_in(key, i)``,
    ``i`` its place in :attr:`Config.state_points`.
    """
    config = config or Config()
    jax.config.update("jax_enable_x64", True)  # experiment entry point (energies, W2)
    key = jr.key(config.seed)
    rows = {}
    for i, (t, rho, label) in enumerate(config.state_points):
        args = (jr.fold_in(key, i), config, t, rho, label)
        rows[label] = stage(f"state_point_{label}", lambda a=args: _state_point(*a))
    out = pathlib.Path(out_dir or "results/materials_periodic_generative")
    out.mkdir(parents=True, exist_ok=True)
    _figure(rows, out / "periodic_generative.png")
    for row in rows.values():
        del row["_plot"]
    (out / "metrics.json").write_text(json.dumps(rows, indent=2))
    return {"state_points": rows, "figure": str(out / "periodic_generative.png")}


if __name__ == "__main__":
    import sys

    main(Config.quick() if "--quick" in sys.argv else None)
