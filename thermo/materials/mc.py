r"""The materials Monte Carlo toolkit: one single-particle Metropolis sweep, one
adapt → equilibrate → produce driver.

**Sweep** (:func:`metropolis_sweep`; Metropolis et al. 1953; Frenkel & Smit,
*Understanding Molecular Simulation*, 2nd ed., Alg. 1–2). One sweep is ``n_moves``
single-particle trial moves; each picks a particle :math:`i` uniformly, displaces it by
:math:`\delta \sim \mathcal U[-\Delta, \Delta]^3` (optionally wrapped into the cell by a
``shift_fn``) and accepts with probability :math:`\min(1, e^{-\beta \Delta U})`. The
proposal is symmetric, so this is a valid Metropolis–Hastings kernel for
:math:`\pi \propto e^{-\beta U}` for every fixed :math:`\Delta`. The energy change of
the move comes from a caller's ``delta_energy_fn``, which may also update auxiliary
running sums (the pair energy, the Einstein-crystal sums of :mod:`.solid`);
:func:`pair_energy_change` is the :math:`O(N)` minimum-image pair sum

.. math:: \Delta U = \sum_{j \ne i} \big[u(|r_i' - r_j|) - u(|r_i - r_j|)\big]

that :func:`thermo.materials.displacement_mc` and :func:`thermo.materials.frenkel_ladd_mc`
share. Everything here is pure and un-jitted (it runs under ``jit`` and ``vmap``).

**Driver** (:func:`adapt_equilibrate_produce`). ``n_adapt`` rounds of sweeps tune the
maximal displacement toward a target acceptance :math:`\alpha^*` by a Robbins–Monro
stochastic approximation on :math:`\log\Delta` (Robbins & Monro 1951; Andrieu & Thoms
2008, *Stat. Comput.* 18:343, sec. 4–5):

.. math:: \log\Delta_{r+1} = \log\Delta_r + \gamma_r(\bar a_r - \alpha^*),\qquad
    \gamma_r = \frac{\gamma_0}{(r+1)^{\kappa}},\quad \tfrac12 < \kappa \le 1,

with :math:`\bar a_r` the mean acceptance of round :math:`r`. The gains satisfy
:math:`\sum_r\gamma_r = \infty`, :math:`\sum_r\gamma_r^2 < \infty`, so the iterate
converges to the root of :math:`a(\Delta) = \alpha^*` (the acceptance decreases
monotonically with :math:`\Delta`). The default :math:`\gamma_0 = 1/(\alpha^*(1-\alpha^*))` is
the Newton step for an acceptance that is logistic with unit slope in :math:`\log\Delta`;
:math:`\kappa = 2/3`. The adaptation rounds are discarded; :math:`\Delta` is then frozen
for the equilibration and production sweeps, so production is a fixed, valid MH kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float

from .._checks import check_count, check_real
from .._typing import PRNGKey

__all__ = [
    "AdaptedRun",
    "adapt_equilibrate_produce",
    "metropolis_sweep",
    "pair_energy_change",
    "particle_pair_energy",
    "robbins_monro_log_step",
    "total_pair_energy",
]


def particle_pair_energy(
    displacement_fn: Callable[..., Array],
    pair_fn: Callable[[Array], Array],
    positions: Float[Array, "n 3"],
    i,
    r_i: Float[Array, " 3"],
) -> Float[Array, ""]:
    r""":math:`\sum_{j\ne i} u(|r_i - r_j|)` with particle :math:`i` placed at ``r_i``.

    Args:
        displacement_fn: periodic (minimum-image) displacement, e.g. from
            :func:`thermo.materials.periodic_space`.
        pair_fn: pair energy of a distance.
        positions: ``(n, 3)`` positions (row ``i`` is ignored).
        i: index of the particle (may be traced).
        r_i: ``(3,)`` trial position of particle ``i``.
    """
    dr = jax.vmap(lambda rj: displacement_fn(r_i, rj))(positions)
    u = pair_fn(jnp.sqrt(jnp.sum(dr * dr, axis=-1)))
    return jnp.sum(jnp.where(jnp.arange(positions.shape[0]) == i, 0.0, u))


def total_pair_energy(
    displacement_fn: Callable[..., Array],
    pair_fn: Callable[[Array], Array],
    positions: Float[Array, "n 3"],
) -> Float[Array, ""]:
    r""":math:`U = \tfrac12\sum_i\sum_{j\ne i} u(|r_i - r_j|)` (``O(N^2)``, from scratch)."""
    e_i = jax.vmap(
        lambda i: particle_pair_energy(displacement_fn, pair_fn, positions, i, positions[i])
    )(jnp.arange(positions.shape[0]))
    return 0.5 * jnp.sum(e_i)


def pair_energy_change(
    displacement_fn: Callable[..., Array],
    pair_fn: Callable[[Array], Array],
    positions: Float[Array, "n 3"],
    i,
    old: Float[Array, " 3"],
    new: Float[Array, " 3"],
) -> Float[Array, ""]:
    r""":math:`\Delta U` of moving particle :math:`i` from ``old`` to ``new`` (module docstring)."""
    e = jax.vmap(lambda r: particle_pair_energy(displacement_fn, pair_fn, positions, i, r))(
        jnp.stack([new, old])
    )
    return e[0] - e[1]


def metropolis_sweep(
    key: PRNGKey,
    positions: Float[Array, "n 3"],
    aux: Any,
    delta_energy_fn: Callable[..., tuple[Array, Any]],
    *,
    beta,
    step_size,
    n_moves: int,
    shift_fn: Callable[[Array, Array], Array] | None = None,
) -> tuple[Float[Array, "n 3"], Any, Float[Array, ""]]:
    r"""``n_moves`` single-particle Metropolis trial moves (module docstring).

    Args:
        key: PRNG key; each move splits its key into (particle, displacement, acceptance).
        positions: ``(n, 3)``.
        aux: pytree of running quantities kept in step with the positions (e.g. the total
            energy); replaced by the proposal's value on acceptance.
        delta_energy_fn: ``delta_energy_fn(positions, aux, i, old, new, delta) -> (dU,
            aux_new)``: the energy change of the move and the auxiliary values if it is
            accepted.
        beta: :math:`1/k_BT` (may be traced).
        step_size: :math:`\Delta`, maximal displacement per Cartesian component (may be
            traced).
        n_moves: trial moves (static).
        shift_fn: ``shift_fn(r, delta)`` (e.g. periodic wrap); default ``r + delta``.

    Returns:
        ``(positions, aux, acceptance_rate)``, the last of shape ``()``.
    """
    n = positions.shape[0]

    def move(carry, key):
        pos, aux, n_acc = carry
        k_i, k_d, k_u = jr.split(key, 3)
        i = jr.randint(k_i, (), 0, n)
        old = pos[i]
        delta = jr.uniform(k_d, (3,), minval=-step_size, maxval=step_size, dtype=pos.dtype)
        new = old + delta if shift_fn is None else shift_fn(old, delta)
        d_u, aux_new = delta_energy_fn(pos, aux, i, old, new, delta)
        accept = jnp.log(jr.uniform(k_u, (), dtype=pos.dtype)) < -beta * d_u
        pos = pos.at[i].set(jnp.where(accept, new, old))
        aux = jax.tree.map(lambda a, b: jnp.where(accept, a, b), aux_new, aux)
        return (pos, aux, n_acc + accept.astype(jnp.int32)), None

    carry = (positions, aux, jnp.zeros((), jnp.int32))
    (pos, aux, n_acc), _ = jax.lax.scan(move, carry, jr.split(key, n_moves))
    return pos, aux, n_acc / n_moves


def robbins_monro_log_step(
    step_size, acceptance, r: int, *, target_acceptance: float = 0.4, gain=None, decay=2.0 / 3.0
):
    r"""One Robbins–Monro update of :math:`\log\Delta` (module docstring).

    Args:
        step_size: current :math:`\Delta_r` (any shape; one per independent setting).
        acceptance: mean acceptance :math:`\bar a_r` of round ``r``, same shape.
        r: round index (``0, 1, ...``).
        target_acceptance: :math:`\alpha^*`.
        gain: :math:`\gamma_0` (default :math:`1/(\alpha^*(1-\alpha^*))`).
        decay: :math:`\kappa\in(1/2, 1]`.

    Returns:
        :math:`\Delta_{r+1} = \Delta_r\exp(\gamma_r(\bar a_r - \alpha^*))`.
    """
    a = target_acceptance
    g0 = 1.0 / (a * (1.0 - a)) if gain is None else gain
    return step_size * jnp.exp(g0 / (r + 1.0) ** decay * (acceptance - a))


class AdaptedRun(NamedTuple):
    """Result of :func:`adapt_equilibrate_produce`.

    Attributes:
        states: final states (after production).
        trace: what ``sweeps_fn`` returned for the production stage.
        step_size: the frozen :math:`\\Delta` used for equilibration and production.
        acceptance_history: ``(n_adapt, *step_size.shape)`` mean acceptance per round.
    """

    states: Any
    trace: Any
    step_size: Array
    acceptance_history: np.ndarray


def adapt_equilibrate_produce(
    key: PRNGKey,
    sweeps_fn: Callable[[PRNGKey, Any, Array, str], tuple[Any, Any]],
    states: Any,
    step_size,
    *,
    n_adapt: int,
    equilibrate: bool = True,
    target_acceptance: float = 0.4,
    gain: float | None = None,
    decay: float = 2.0 / 3.0,
) -> AdaptedRun:
    r"""Adapt the step size, freeze it, equilibrate, produce (module docstring).

    Args:
        key: PRNG key; round :math:`r` uses ``fold_in(k_adapt, r)`` and
            ``k_adapt, k_equilibrate, k_produce = split(key, 3)``.
        sweeps_fn: ``sweeps_fn(key, states, step_size, stage) -> (states, out)`` with
            ``stage`` one of ``"adapt"``, ``"equilibrate"``, ``"produce"`` (a static string:
            jit it with ``stage`` static). For ``"adapt"`` ``out`` is the per-sweep
            acceptance with leading axes ``step_size.shape`` (averaged over the rest); for
            ``"equilibrate"`` it is ignored; for ``"produce"`` it is returned as ``trace``.
        states: initial (batched) states.
        step_size: initial :math:`\Delta_0`, a scalar or one per independent setting
            (e.g. per :math:`\lambda` node); kept an array so rounds do not recompile.
        n_adapt: adaptation rounds (``>= 0``; discarded).
        equilibrate: run the equilibration stage (skip it for zero equilibration sweeps).
        target_acceptance, gain, decay: :func:`robbins_monro_log_step`.

    Returns:
        :class:`AdaptedRun`.
    """
    n_adapt = check_count(n_adapt, "n_adapt", minimum=0)
    check_real(
        target_acceptance, "target_acceptance", low=0.0, high=1.0, low_open=True, high_open=True
    )
    check_real(decay, "decay", low=0.5, high=1.0, low_open=True)
    h = jnp.asarray(step_size)
    if not bool(jnp.all(h > 0)):
        raise ValueError(f"step_size must be positive, got {step_size}")
    k_adapt, k_eq, k_prod = jr.split(key, 3)
    history = []
    for r in range(n_adapt):
        states, acc = sweeps_fn(jr.fold_in(k_adapt, r), states, h, "adapt")
        mean_acc = jnp.mean(jnp.reshape(acc, (*h.shape, -1)), axis=-1)
        history.append(np.asarray(mean_acc))
        h = robbins_monro_log_step(
            h, mean_acc, r, target_acceptance=target_acceptance, gain=gain, decay=decay
        )
    if equilibrate:
        states, _ = sweeps_fn(k_eq, states, h, "equilibrate")
    states, trace = sweeps_fn(k_prod, states, h, "produce")
    hist = np.stack(history) if history else np.zeros((0, *h.shape))
    return AdaptedRun(states=states, trace=trace, step_size=h, acceptance_history=hist)
