r"""Pretrained, Feynman–Kac-corrected samplers for DW-4, LJ-13 and LJ-55.

``pretrained(name)`` loads a small committed checkpoint (a DDS control network, trained
with the KL loss by :func:`train_checkpoint` through :func:`thermo.fit.fit` with
checkpoint/resume) and returns a :class:`PretrainedSampler`; its ``sample(key, n)`` runs
:func:`~generative.samplers.feynman_kac` with ``n`` particles and returns equally
weighted draws, :math:`\log\hat Z` and its standard error, and the energy evaluations
that call spent. The network is modest: on these systems most of the accuracy comes
from the correction (resampling and MALA moves along a fine interpolation
:math:`\gamma_k = q^{1-\lambda_k}\tilde\pi^{\lambda_k}`), which makes the answer exact
in the large-:math:`n` limit whatever the network. The checkpoints' provenance
(config, seed, git commit, training energy evaluations, CPU time) sits beside them in
``checkpoints/<name>.json``; ``experiments/fk_samplers.py`` regenerates them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, Float

import thermo.systems as systems
from thermo._typing import PRNGKey
from thermo.fit import fit
from thermo.paths import PathEnsemble

from ._common import _train_loss, as_target
from ._dds import DDS
from ._fk import feynman_kac
from ._presets import make_sampler

__all__ = [
    "CHECKPOINT_DIR",
    "PRETRAINED",
    "PretrainedConfig",
    "PretrainedSampler",
    "PretrainedSample",
    "pretrained",
    "train_checkpoint",
]

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"


@dataclasses.dataclass(frozen=True)
class PretrainedConfig:
    """Everything that defines one checkpoint and its corrected sampler.

    Attributes:
        system: :mod:`thermo.systems` name.
        n_steps: DDS steps :math:`K` (= SMC stages).
        duration: DDS time :math:`T`; small, so that the reference step per stage
            :math:`\\sigma\\sqrt{2T/K}` stays below the targets' length scales: its
            noise does not leave :math:`\\gamma_k` invariant, and adds about
            :math:`\\lambda_k^2|\\nabla\\log\\pi|^2\\sigma^2\\,2T/K` to the variance of
            each stage's log-weights.
        width, depth: the control MLP.
        train_iters, batch_size, learning_rate: KL training (Adam, clip 1).
        seed: key of the network's initial weights and of training.
        n_moves: MALA sweeps per stage at sampling time (with ``lambdas``, a sampling
            setting only: the checkpoint's JSON keeps the config it was trained with).
        lambdas: the correction's schedule at sampling time: ``"linear"``
            (:math:`\\lambda_k = k/K`), ``"power"`` (:math:`(k/K)^4`) or ``"adaptive"`` (fixed by a pilot run,
            :func:`~generative.samplers.feynman_kac`).
    """

    system: str
    n_steps: int
    duration: float
    width: int
    depth: int
    train_iters: int
    batch_size: int
    learning_rate: float
    seed: int
    n_moves: int
    lambdas: str = "linear"


PRETRAINED: dict[str, PretrainedConfig] = {
    "dw4": PretrainedConfig("dw4", 64, 0.01, 32, 2, 100, 16, 1e-3, 0, 10),
    "lj13": PretrainedConfig("lj13", 200, 0.01, 32, 2, 50, 8, 1e-3, 0, 11, "adaptive"),
    # LJ-55: the reference's noise is not gamma_k-invariant, and each stage adds about
    # lambda^2 |grad log pi|^2 sigma^2 2T/K to the log-weights' variance (18 at T = 0.01,
    # K = 100: every late stage's ESS collapsed); T = 1e-4 makes it 0.18. The power
    # schedule keeps the first stages' weights from collapsing (linear: ESS 1 at stage 1).
    "lj55": PretrainedConfig("lj55", 100, 1e-4, 32, 2, 10, 4, 1e-3, 0, 160, "power"),
}


def _check_name(name: str) -> PretrainedConfig:
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained sampler {name!r}; valid names: {sorted(PRETRAINED)}")
    return PRETRAINED[name]


def _skeleton(config: PretrainedConfig) -> DDS:
    """The untrained DDS of ``config`` (the structure the checkpoint's leaves fill)."""
    system = systems.get(config.system)
    target = as_target(system)
    base = make_sampler(
        jr.PRNGKey(config.seed),
        target,
        "dds",
        n_steps=config.n_steps,
        width=config.width,
        depth=config.depth,
        dds_duration=config.duration,
    )
    return _chain(base.control, config, target.scale, base.output_scale)


def _chain(control, config: PretrainedConfig, sigma: float, output_scale: float) -> DDS:
    """The DDS of ``config`` around ``control`` (also: a checkpoint's network on more stages)."""
    return DDS(
        control,
        n_steps=config.n_steps,
        sigma=sigma,
        duration=config.duration,
        output_scale=output_scale,
        # the drift's displacement per step is capped at the reference's own step
        max_displacement=sigma * math.sqrt(2.0 * config.duration / config.n_steps),
    )


def _optimizer(config: PretrainedConfig) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adam(config.learning_rate))


def train_checkpoint(
    name: str, out_dir: str | Path = CHECKPOINT_DIR, *, resume_path: str | Path | None = None
) -> dict:
    """Train ``name``'s network from its config and write ``<name>.eqx`` and ``<name>.json``.

    Resumes from ``resume_path`` (a :func:`thermo.fit.fit` checkpoint, default
    ``<out_dir>/<name>.fit``) when it exists, so an interrupted run continues where it
    stopped and ends bit-identical to an uninterrupted one.

    Returns:
        The provenance dict written to ``<name>.json``.
    """
    from experiments._provenance import git_info  # experiments: not a library dependency

    config = _check_name(name)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    resume_path = out_dir / f"{name}.fit" if resume_path is None else Path(resume_path)
    sampler = _skeleton(config)
    target = as_target(systems.get(config.system))
    t0 = time.process_time()
    result = fit(
        jr.PRNGKey(config.seed + 1),
        sampler,
        _train_loss,
        _optimizer(config),
        config.train_iters,
        args=(target, config.batch_size, "kl"),
        has_aux=True,
        step_keys_scheme="split",
        steps_per_call=10,
        checkpoint_path=resume_path,
        desc=f"train {name}",
    )
    cpu = time.process_time() - t0
    eqx.tree_serialise_leaves(out_dir / f"{name}.eqx", result.model)
    evals = int(config.train_iters) * config.batch_size * (config.n_steps + 1)
    provenance = {
        "name": name,
        "config": dataclasses.asdict(config),
        "git": git_info(),
        "train_energy_evals": evals,
        "train_cpu_seconds_this_process": cpu,
        "final_loss": float(result.losses[-1]),
        "loss": "kl",
    }
    (out_dir / f"{name}.json").write_text(json.dumps(provenance, indent=2) + "\n")
    return provenance


class PretrainedSample(NamedTuple):
    """What :meth:`PretrainedSampler.sample` returns.

    Attributes:
        samples: ``(n, dim)`` equally weighted draws for the target.
        log_z: :math:`\\log\\hat Z` (in the system's energy convention, :math:`\\beta = 1`).
        log_z_std: its standard error.
        n_energy_evals: energy-and-gradient evaluations this call spent.
        pareto_k: the largest PSIS tail index met.
        ensemble: the weighted final SMC population (:class:`thermo.paths.PathEnsemble`)
            before the final resampling; ``log_z`` is its SMC estimate
            (:func:`thermo.estimators.estimate_log_z` through :func:`thermo.smc.sequential_monte_carlo`).
    """

    samples: Float[Array, "n dim"]
    log_z: Float[Array, ""]
    log_z_std: Float[Array, ""]
    n_energy_evals: int
    pareto_k: Float[Array, ""]
    ensemble: PathEnsemble


class PretrainedSampler(eqx.Module):
    """A checkpointed DDS with its Feynman–Kac correction (:func:`pretrained`)."""

    name: str = eqx.field(static=True)
    config: PretrainedConfig = eqx.field(static=True)
    sampler: DDS
    provenance: dict = eqx.field(static=True)

    def sample(
        self,
        key: PRNGKey,
        n: int,
        *,
        lambdas: str | None = None,
        n_moves: int | None = None,
        resampling: str = "multinomial",
    ) -> PretrainedSample:
        """``n`` corrected draws (``n`` SMC particles, ``n >= 2``).

        ``lambdas`` (``"linear"``: :math:`k/K`, ``"power"``: :math:`(k/K)^4`, or
        ``"adaptive"``) and ``n_moves``
        (default: the config's) and ``resampling`` go to
        :func:`~generative.samplers.feynman_kac`.
        """
        system = systems.get(self.config.system)
        n_moves = self.config.n_moves if n_moves is None else n_moves
        lambdas = self.config.lambdas if lambdas is None else lambdas
        r = feynman_kac(
            key, self.sampler, system, n, n_moves=n_moves, lambdas=lambdas, resampling=resampling
        )
        return PretrainedSample(
            r.samples, r.log_z, r.log_z_std, int(r.n_energy_evals), r.pareto_k, r.smc.ensemble
        )


def pretrained(name: str, checkpoint_dir: str | Path = CHECKPOINT_DIR) -> PretrainedSampler:
    """Load the committed checkpoint ``name`` (``"dw4"``, ``"lj13"`` or ``"lj55"``).

    Raises:
        ValueError: an unknown name (the message lists the valid ones).
        FileNotFoundError: a missing checkpoint file.
    """
    config = _check_name(name)
    path = Path(checkpoint_dir) / f"{name}.eqx"
    if not path.exists():
        raise FileNotFoundError(
            f"checkpoint {path} is missing; regenerate it with "
            f"`python -m experiments.fk_samplers train {name}`"
        )
    # Checkpoints are stored in float32; read them into a float32 skeleton whatever the
    # x64 flag, then cast to the default float dtype.
    like = jax.tree.map(
        lambda a: a.astype(jnp.float32) if eqx.is_inexact_array(a) else a, _skeleton(config)
    )
    sampler = eqx.tree_deserialise_leaves(path, like)
    dtype = jnp.result_type(float)
    sampler = jax.tree.map(lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, sampler)
    meta = Path(checkpoint_dir) / f"{name}.json"
    provenance = json.loads(meta.read_text()) if meta.exists() else {}
    return PretrainedSampler(name, config, sampler, provenance)
