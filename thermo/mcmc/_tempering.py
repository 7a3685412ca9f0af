r"""Replica exchange / parallel tempering (Swendsen & Wang 1986; Geyer 1991; Earl & Deem 2005).

Replicas :math:`r = 0..R-1` sample :math:`\pi_r(x) \propto e^{-\beta_r U(x)}` on a ladder
:math:`\beta_0 > \beta_1 > \dots > \beta_{R-1}` (replica 0 is the target). Each step
moves every replica with an HMC (or MALA) kernel at its own :math:`\beta_r` (vmapped over
replicas), then attempts swaps between neighbours :math:`(r, r+1)`: even pairs on even
steps, odd pairs on odd steps (deterministic even/odd scheme, Lingenheil et al. 2009).
A swap is accepted with probability

.. math:: \min\bigl(1, \exp[(\beta_r - \beta_{r+1})(U(x_r) - U(x_{r+1}))]\bigr).

Energies and forces are stored once per replica (they do not depend on :math:`\beta`),
so swaps cost no extra energy evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Bool, Float, Int

from .._checks import check_count, check_positive
from .._typing import PRNGKey
from ..kernel import Kernel
from ._hmc import HMCState, hmc
from ._mala import MALAState, mala

__all__ = [
    "ReplicaExchangeInfo",
    "ReplicaExchangeState",
    "adapt_replica_step_sizes",
    "geometric_ladder",
    "replica_exchange",
]


class ReplicaExchangeState(NamedTuple):
    """State of all replicas.

    Attributes:
        positions: ``(n_replicas, dim)``; row ``r`` is at inverse temperature ``betas[r]``.
        energies: ``(n_replicas,)`` :math:`U(x_r)`.
        energy_grads: ``(n_replicas, dim)`` :math:`\\nabla U(x_r)`.
        walker_index: ``(n_replicas,)`` which walker currently sits at each rung (for
            round-trip diagnostics).
        step: ``()`` step counter; its parity picks even or odd swap pairs.
    """

    positions: Float[Array, "n_replicas dim"]
    energies: Float[Array, " n_replicas"]
    energy_grads: Float[Array, "n_replicas dim"]
    walker_index: Int[Array, " n_replicas"]
    step: Int[Array, ""]


class ReplicaExchangeInfo(NamedTuple):
    """Per-step information.

    Attributes:
        acceptance_rate: ``(n_replicas,)`` within-replica move acceptance.
        swap_acceptance_rate: ``(n_replicas - 1,)`` swap acceptance probability of each
            neighbour pair (0 where the pair was not attempted this step).
        swap_attempted: ``(n_replicas - 1,)`` which pairs were attempted.
        n_energy_evals: ``()`` energy-and-gradient evaluations spent over all replicas.
    """

    acceptance_rate: Float[Array, " n_replicas"]
    swap_acceptance_rate: Float[Array, " n_replicas_minus_1"]
    swap_attempted: Bool[Array, " n_replicas_minus_1"]
    n_energy_evals: Float[Array, ""]


def geometric_ladder(beta_max: float, beta_min: float, n_replicas: int) -> Float[Array, " n"]:
    r"""Geometric inverse-temperature ladder :math:`\beta_r = \beta_{\max}(\beta_{\min}/\beta_{\max})^{r/(R-1)}`.

    Geometric spacing gives roughly uniform swap rates when the heat capacity is
    constant (Kofke 2002). Returns ``(n_replicas,)``, decreasing, ``[0] == beta_max``.
    """
    n_replicas = check_count(n_replicas, "n_replicas")
    check_positive(beta_max, "beta_max")
    check_positive(beta_min, "beta_min")
    if n_replicas == 1:
        return jnp.asarray([beta_max])
    return beta_max * (beta_min / beta_max) ** (jnp.arange(n_replicas) / (n_replicas - 1))


def replica_exchange(
    energy_fn: Callable[[Array], Array],
    betas: Float[Array, " n_replicas"],
    step_sizes: Float[Array, " n_replicas"] | float,
    *,
    n_integration_steps: int = 10,
    move: str = "hmc",
    project_fn: Callable[[Array], Array] | None = None,
) -> Kernel:
    r"""Parallel-tempering kernel over a :math:`\beta` ladder.

    Args:
        energy_fn: ``(dim,) -> ()`` potential :math:`U`; replica ``r`` targets
            :math:`e^{-\beta_r U}`.
        betas: ``(n_replicas,)`` positive, replica 0 = target.
        step_sizes: per-replica step sizes (scalar broadcasts); leapfrog :math:`\epsilon`
            for ``move="hmc"``, the MALA :math:`\epsilon` for ``move="mala"``.
        n_integration_steps: leapfrog steps per HMC move (ignored for MALA).
        move: ``"hmc"`` or ``"mala"``.
        project_fn: optional COM projector (see :func:`thermo.mcmc.hmc`).

    Returns:
        :class:`thermo.kernel.Kernel`: ``init(positions (n_replicas, dim))`` and
        ``step(key, state) -> (ReplicaExchangeState, ReplicaExchangeInfo)``.
    """
    betas = jnp.asarray(betas)
    if betas.ndim != 1:
        raise ValueError(f"betas must be 1-D, got shape {betas.shape}")
    check_positive(betas, "betas")
    check_positive(step_sizes, "step_sizes")
    n_integration_steps = check_count(n_integration_steps, "n_integration_steps")
    n_replicas = betas.shape[0]
    step_sizes = jnp.broadcast_to(jnp.asarray(step_sizes, dtype=betas.dtype), (n_replicas,))
    if move not in ("hmc", "mala"):
        raise ValueError(f"move must be 'hmc' or 'mala', got {move!r}")
    energy_and_grad = jax.value_and_grad(energy_fn)
    cost = float(n_integration_steps) if move == "hmc" else 1.0

    def init(positions: Float[Array, "n_replicas dim"]) -> ReplicaExchangeState:
        positions = jnp.asarray(positions)
        if positions.ndim != 2 or positions.shape[0] != n_replicas:
            raise ValueError(
                f"positions must have shape ({n_replicas}, dim), got {positions.shape}"
            )
        energies, grads = jax.vmap(energy_and_grad)(positions)
        return ReplicaExchangeState(
            positions, energies, grads, jnp.arange(n_replicas), jnp.zeros((), jnp.int32)
        )

    def move_one(key, x, energy, grad, beta, step_size):
        def logdensity_fn(y):
            return -beta * energy_fn(y)

        if move == "hmc":
            kernel = hmc(logdensity_fn, step_size, n_integration_steps, project_fn=project_fn)
            state = HMCState(x, -beta * energy, -beta * grad)
        else:
            kernel = mala(logdensity_fn, step_size, project_fn=project_fn)
            state = MALAState(x, -beta * energy, -beta * grad)
        new, info = kernel.step(key, state)
        return (
            new.position,
            -new.logdensity / beta,
            -new.logdensity_grad / beta,
            info.acceptance_rate,
        )

    def step(key: PRNGKey, state: ReplicaExchangeState):
        key_move, key_swap = jr.split(key)
        x, e, g, acc = jax.vmap(move_one)(
            jr.split(key_move, n_replicas),
            state.positions,
            state.energies,
            state.energy_grads,
            betas,
            step_sizes,
        )
        # Even/odd neighbour swaps.
        pair = jnp.arange(n_replicas - 1, dtype=state.step.dtype)
        attempted = (pair % 2) == (state.step % 2)
        log_ratio = (betas[:-1] - betas[1:]) * (e[:-1] - e[1:])
        swap_prob = jnp.where(attempted, jnp.minimum(1.0, jnp.exp(log_ratio)), 0.0)
        u = jr.uniform(key_swap, (n_replicas - 1,), dtype=e.dtype)
        accepted = (attempted & (u < swap_prob)).astype(jnp.int32)
        perm = (
            jnp.arange(n_replicas, dtype=accepted.dtype)
            + jnp.pad(accepted, (0, 1))
            - jnp.pad(accepted, (1, 0))
        )
        new_state = ReplicaExchangeState(
            x[perm], e[perm], g[perm], state.walker_index[perm], state.step + 1
        )
        info = ReplicaExchangeInfo(
            acc, swap_prob, attempted, jnp.asarray(cost * n_replicas, jnp.float32)
        )
        return new_state, info

    return Kernel(init, step)


def adapt_replica_step_sizes(
    key: PRNGKey,
    energy_fn: Callable[[Array], Array],
    betas: Float[Array, " n_replicas"],
    positions: Float[Array, "n_runs n_replicas dim"],
    n_steps: int,
    *,
    initial_step_size: float,
    target_acceptance: float = 0.75,
    n_integration_steps: int = 10,
    move: str = "hmc",
    project_fn: Callable[[Array], Array] | None = None,
) -> tuple[ReplicaExchangeState, Float[Array, " n_replicas"]]:
    r"""Warm up independent replica-exchange runs, tuning one step size per rung.

    Dual averaging (Hoffman & Gelman 2014; :func:`thermo.mcmc.dual_averaging`) runs
    elementwise over rungs, fed each rung's acceptance averaged over the ``n_runs``
    independent PT runs. Not jitted (wrap in ``jax.jit``).

    Args:
        key: PRNG key.
        energy_fn: ``(dim,) -> ()``.
        betas: ``(n_replicas,)`` ladder.
        positions: ``(n_runs, n_replicas, dim)`` starting points.
        n_steps: warm-up steps (static).
        initial_step_size: :math:`\epsilon_0` for every rung.
        target_acceptance: within-rung acceptance target (0.75 ~ between the HMC optimum
            0.65 of Beskos et al. 2013 and Stan's 0.8).
        n_integration_steps, move, project_fn: as in :func:`replica_exchange`.

    Returns:
        ``(states, step_sizes)``: batched states ``(n_runs, ...)`` and the averaged
        per-rung step sizes ``(n_replicas,)``.
    """
    from ._adaptation import dual_averaging

    betas = jnp.asarray(betas)
    n_steps = check_count(n_steps, "n_steps")
    check_positive(initial_step_size, "initial_step_size")
    n_runs = positions.shape[0]
    da_init, da_update = dual_averaging(target_acceptance)
    da0 = da_init(jnp.full(betas.shape, initial_step_size, dtype=positions.dtype))
    states = jax.vmap(replica_exchange(energy_fn, betas, initial_step_size).init)(positions)

    def body(carry, key):
        states, da = carry
        kernel = replica_exchange(
            energy_fn,
            betas,
            jnp.exp(da.log_step_size),
            n_integration_steps=n_integration_steps,
            move=move,
            project_fn=project_fn,
        )
        states, info = jax.vmap(kernel.step)(jr.split(key, n_runs), states)
        return (states, da_update(da, jnp.mean(info.acceptance_rate, axis=0))), None

    (states, da), _ = jax.lax.scan(body, (states, da0), jr.split(key, n_steps))
    return states, jnp.exp(da.log_step_size_avg)
