r"""The search as sampling: a Boltzmann distribution over a finite candidate set.

Candidates :math:`m \in \{0, \dots, n-1\}` are drawn from

.. math:: p_\lambda(m) = \frac{e^{\lambda\, s(m)}}{Z_\lambda}, \qquad
          Z_\lambda = \sum_{m \in \mathcal O} e^{\lambda\, s(m)},

over the open candidates :math:`\mathcal O` (a mask), with :math:`s` a score (a
surrogate's posterior mean or upper confidence bound) and :math:`\lambda` an inverse
temperature that is annealed upwards as the search proceeds.

**Delayed acceptance** (Christen & Fox 2005, *J. Comput. Graph. Stat.* 14, 795; the
multi-stage form of Cui, Fox & O'Sullivan 2011, *Water Resour. Res.* 47, W10521): a
chain with stage log-densities :math:`\ell_1, \dots, \ell_K` (cheap approximations first,
:math:`\ell_K = \log\pi` the target) and proposal :math:`q`. A proposal :math:`y` from
:math:`x` passes stage 1 with probability

.. math:: \alpha_1 = \min\Big(1, \frac{e^{\ell_1(y)} q(x \mid y)}{e^{\ell_1(x)} q(y \mid x)}\Big)

and stage :math:`k > 1` with

.. math:: \alpha_k = \min\Big(1, e^{[\ell_k(y) - \ell_{k-1}(y)] - [\ell_k(x) - \ell_{k-1}(x)]}\Big);

it is accepted if it passes every stage, and :math:`\ell_k(y)` is only evaluated for a
proposal that passed stage :math:`k-1`, so the expensive stages see only the survivors.
Each stage satisfies detailed balance with respect to the effective proposal it sees,
so the chain leaves :math:`\pi` invariant exactly, whatever the approximations (Christen &
Fox 2005, Theorem 1). Here :math:`q` is the independence proposal
:math:`q(y) \propto e^{\mathrm{proposal\_logits}(y)}` on :math:`\mathcal O` (uniform by
default).

**Annealing** :math:`\lambda` uses the project's SMC driver
(:func:`thermo.smc.sequential_monte_carlo`): adaptive tempering from the uniform
distribution on :math:`\mathcal O` (:math:`\lambda = 0`) to :math:`p_{\lambda}` with the
delayed-acceptance kernel as the invariant move (:func:`boltzmann_smc`).

The closed loop's ``"boltzmann"`` strategy (:mod:`thermo.materials.search.loop`) uses these
pieces with the fidelities as the stages; there the surrogate changes after every
evaluation, so that loop is an adaptive search, not an exact sampler.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Bool, Float, Int

from ..._typing import PRNGKey
from ...kernel import Kernel
from ...smc import SMCResult, sequential_monte_carlo

__all__ = [
    "DelayedAcceptanceInfo",
    "DelayedAcceptanceState",
    "boltzmann_probabilities",
    "boltzmann_smc",
    "delayed_acceptance",
]


class DelayedAcceptanceState(NamedTuple):
    """Chain state.

    Attributes:
        position: ``()`` int, the current candidate.
        log_densities: ``(K,)`` the stage log-densities :math:`\\ell_k` at ``position``
            when it was reached (a record; each step re-evaluates them at the current
            stages, which is free for tabulated scores and keeps the kernel exact when an
            SMC path changes the stages between sweeps).
    """

    position: Int[Array, ""]
    log_densities: Float[Array, " k"]


class DelayedAcceptanceInfo(NamedTuple):
    """Per-step information.

    Attributes:
        acceptance_rate: ``()`` the product of the stage acceptance probabilities of the
            stages evaluated (the overall acceptance probability if all were).
        is_accepted: ``()`` whether the proposal passed every stage.
        stages_reached: ``()`` int, how many stage log-densities were evaluated at the
            proposal (1: rejected by the cheapest stage; ``K``: the target was evaluated).
        n_energy_evals: ``()`` the same, as the cost of the step.
    """

    acceptance_rate: Float[Array, ""]
    is_accepted: Bool[Array, ""]
    stages_reached: Int[Array, ""]
    n_energy_evals: Float[Array, ""]


def boltzmann_probabilities(
    scores: Float[Array, " n"], lam: float | Array, mask: Bool[Array, " n"] | None = None
) -> Float[Array, " n"]:
    r""":math:`p_\lambda(m) = e^{\lambda s(m)}/Z_\lambda` on the open candidates (0 elsewhere).

    ``scores (n,)``, ``lam ()``, ``mask (n,)`` bool (default all open); returns ``(n,)``.
    """
    scores = jnp.asarray(scores)
    mask = jnp.ones(scores.shape, bool) if mask is None else jnp.asarray(mask, bool)
    logits = jnp.where(mask, jnp.asarray(lam, scores.dtype) * scores, -jnp.inf)
    return jax.nn.softmax(logits)


def delayed_acceptance(
    log_density_fns: Sequence[Callable[[Array], Array]],
    n_candidates: int,
    *,
    proposal_logits: Float[Array, " n"] | None = None,
    mask: Bool[Array, " n"] | None = None,
) -> Kernel:
    r"""Multi-stage delayed-acceptance Metropolis–Hastings on ``{0, ..., n_candidates - 1}``.

    See the module docstring for the stage probabilities (Christen & Fox 2005).

    Args:
        log_density_fns: ``[l_1, ..., l_K]``, each ``index () int -> ()``; cheap first, the
            last the target :math:`\log\pi` (up to a constant). ``K >= 1`` (``K = 1`` is plain
            independence Metropolis–Hastings).
        n_candidates: :math:`n`.
        proposal_logits: ``(n,)`` log-weights of the independence proposal (default uniform).
        mask: ``(n,)`` bool, the candidates the chain may visit (default all).

    Returns:
        :class:`thermo.kernel.Kernel`: ``init(position) -> DelayedAcceptanceState``,
        ``step(key, state) -> (DelayedAcceptanceState, DelayedAcceptanceInfo)``.

    Raises:
        ValueError: no stages, ``n_candidates < 1``, or a proposal/mask of the wrong shape.
    """
    fns = tuple(log_density_fns)
    if not fns:
        raise ValueError("delayed_acceptance needs at least one stage log-density")
    n = int(n_candidates)
    if n < 1:
        raise ValueError(f"n_candidates must be >= 1, got {n_candidates}")
    logits = jnp.zeros((n,)) if proposal_logits is None else jnp.asarray(proposal_logits)
    open_ = jnp.ones((n,), bool) if mask is None else jnp.asarray(mask, bool)
    if logits.shape != (n,) or open_.shape != (n,):
        raise ValueError(
            f"proposal_logits and mask must have shape ({n},), got {logits.shape}, {open_.shape}"
        )
    logits = jnp.where(open_, logits, -jnp.inf)
    n_stages = len(fns)

    def stage_values(i):
        return jnp.stack([jnp.asarray(f(i)).astype(logits.dtype) for f in fns])

    def init(position) -> DelayedAcceptanceState:
        position = jnp.asarray(position).astype(jnp.int32)
        return DelayedAcceptanceState(position, stage_values(position))

    def step(key: PRNGKey, state: DelayedAcceptanceState):
        key_prop, key_acc = jr.split(key)
        y = jr.categorical(key_prop, logits).astype(jnp.int32)
        ly = stage_values(y)  # traced for all stages; "evaluated" counts the survivors only
        # recomputed, not read from the state: under SMC the stages change between sweeps
        lx = stage_values(state.position)
        log_q = logits[state.position] - logits[y]  # log q(x) - log q(y)
        diff_y = jnp.concatenate([ly[:1], ly[1:] - ly[:-1]])
        diff_x = jnp.concatenate([lx[:1], lx[1:] - lx[:-1]])
        log_alpha = diff_y - diff_x
        log_alpha = log_alpha.at[0].add(log_q)
        log_alpha = jnp.where(jnp.isnan(log_alpha), -jnp.inf, jnp.minimum(log_alpha, 0.0))
        log_u = jnp.log(jr.uniform(key_acc, (n_stages,), dtype=logits.dtype))
        passed = log_u < log_alpha
        # stage k is evaluated iff stages 1..k-1 passed
        reached = jnp.concatenate([jnp.ones((1,), bool), jnp.cumprod(passed[:-1]).astype(bool)])
        accept = jnp.all(passed)
        rate = jnp.exp(jnp.sum(jnp.where(reached, log_alpha, 0.0)))
        new = DelayedAcceptanceState(
            jnp.where(accept, y, state.position), jnp.where(accept, ly, lx)
        )
        n_reached = jnp.sum(reached).astype(jnp.int32)
        info = DelayedAcceptanceInfo(rate, accept, n_reached, n_reached.astype(logits.dtype))
        return new, info

    return Kernel(init, step)


@eqx.filter_jit
def _boltzmann_smc(key, stage_scores, mask, lam, n_particles, n_moves, target_ess):
    n = stage_scores.shape[1]
    dtype = stage_scores.dtype
    key_init, key_smc = jr.split(key)
    logits0 = jnp.where(mask, jnp.zeros((n,), dtype), -jnp.inf)
    start = jr.categorical(key_init, logits0, shape=(n_particles,)).astype(jnp.int32)

    def move_fn(theta, tuning):
        del tuning
        fns = [
            lambda i, k=k: theta * lam * stage_scores[k, i] for k in range(stage_scores.shape[0])
        ]
        return delayed_acceptance(fns, n, mask=mask)

    particles = jax.vmap(move_fn(jnp.zeros((), dtype), None).init)(start)
    # phi = log(target) - log(base) = lam * s_K at the particle (scaled by theta on the path)
    return sequential_monte_carlo(
        key_smc,
        particles,
        move_fn,
        tempering_fn=lambda p: lam * stage_scores[-1, p.position],
        n_moves=n_moves,
        target_ess=target_ess,
        max_stages=200,
        position_fn=lambda p: p.position[None],
    )


def boltzmann_smc(
    key: PRNGKey,
    stage_scores: Float[Array, "k n"],
    lam: float | Array,
    *,
    mask: Bool[Array, " n"] | None = None,
    n_particles: int = 256,
    n_moves: int = 2,
    target_ess: float = 0.5,
) -> SMCResult:
    r"""Sample :math:`p_\lambda(m) \propto e^{\lambda s_K(m)}` by adaptive-tempering SMC.

    The path :math:`\gamma_\theta(m) \propto e^{\theta\lambda s_K(m)}`, :math:`\theta: 0 \to 1`
    from the uniform distribution on the open candidates, by
    :func:`thermo.smc.sequential_monte_carlo` (CESS-adaptive steps, Zhou, Johansen &
    Aston 2016; systematic resampling), with ``n_moves`` sweeps of
    :func:`delayed_acceptance` per stage whose stages are
    :math:`\theta\lambda s_1, \dots, \theta\lambda s_K` (the cheap scores screen each move).

    Args:
        key: PRNG key.
        stage_scores: ``(K, n)`` scores per stage, the last the target's (e.g. a surrogate's
            mean after the cheap tier, then after every tier).
        lam: ``()`` inverse temperature :math:`\lambda \ge 0`.
        mask: ``(n,)`` bool, open candidates (default all).
        n_particles: population size (``>= 2``).
        n_moves: delayed-acceptance sweeps per stage.
        target_ess: CESS fraction per tempering stage, in (0, 1].

    Returns:
        :class:`thermo.smc.SMCResult`: ``samples`` ``(n_particles, 1)`` candidate indices,
        ``log_weights``, ``log_z`` (an estimate of
        :math:`\log(Z_\lambda / |\mathcal O|)`), diagnostics.
    """
    s = jnp.asarray(stage_scores)
    if s.ndim != 2 or s.shape[0] < 1 or s.shape[1] < 1:
        raise ValueError(f"stage_scores must be (K >= 1, n >= 1), got shape {s.shape}")
    if not jnp.issubdtype(s.dtype, jnp.floating):
        s = s.astype(float)
    m = jnp.ones((s.shape[1],), bool) if mask is None else jnp.asarray(mask, bool)
    if m.shape != (s.shape[1],):
        raise ValueError(f"mask must have shape ({s.shape[1]},), got {m.shape}")
    if not bool(jnp.any(m)):
        raise ValueError("mask has no open candidate")
    if int(n_particles) < 2:
        raise ValueError(f"n_particles must be >= 2, got {n_particles}")
    lam_arr = jnp.asarray(lam, s.dtype)
    if not bool(jnp.isfinite(lam_arr)) or float(lam_arr) < 0:
        raise ValueError(f"lam must be finite and >= 0, got {lam}")
    s = jnp.where(m[None, :], s, jnp.zeros((), s.dtype))
    if not bool(jnp.all(jnp.isfinite(s))):
        raise ValueError("stage_scores of open candidates must be finite")
    return _boltzmann_smc(key, s, m, lam_arr, int(n_particles), int(n_moves), float(target_ess))
