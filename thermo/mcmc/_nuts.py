r"""No-U-Turn sampler (Hoffman & Gelman 2014), driven through numpyro, not reimplemented.

numpyro's :class:`numpyro.infer.NUTS` is given the reduced energy ``energy_fn`` (here
:math:`\beta U(x) = -\log\pi(x)` up to a constant, numpyro's ``potential_fn``) and run with ``chain_method=
"vectorized"`` so that chains are vmapped as in the rest of :mod:`thermo.mcmc`.
Warm-up uses numpyro's window adaptation (dual averaging of the step size and, if
``dense_mass``/``adapt_mass_matrix``, the mass matrix).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import check_count, check_real
from .._typing import PRNGKey
from ..paths import PathEnsemble

__all__ = ["NUTSResult", "nuts"]


class NUTSResult(NamedTuple):
    """Output of :func:`nuts`.

    Attributes:
        samples: ``(n_chains, n_samples, dim)``.
        acceptance_rate: ``(n_chains, n_samples)`` mean tree acceptance probability.
        n_energy_evals: ``()`` gradient evaluations in the sampling phase (leapfrog steps),
            summed over chains (the warm-up phase is not collected by numpyro's ``run``).
        step_size: ``(n_chains,)`` or ``()`` adapted step size.
        diverging: ``(n_chains, n_samples)`` divergence flags.
    """

    samples: Float[Array, "n_chains n_samples dim"]
    acceptance_rate: Float[Array, "n_chains n_samples"]
    n_energy_evals: Array
    step_size: Array
    diverging: Array

    @property
    def ensemble(self) -> PathEnsemble:
        """The chains' last states as a :class:`thermo.paths.PathEnsemble`.

        An equilibrium chain does no work, so every log-weight is zero: the ensemble
        estimates :math:`\\log Z_\text{target} - \\log Z_\text{target} = 0` and carries
        the cost of the run, which is what lets NUTS sit beside the annealing samplers in
        :func:`thermo.estimators.estimate_log_z`-based tables at equal budget.
        """
        last = self.samples[:, -1]
        return PathEnsemble(
            samples=last,
            log_weights=jnp.zeros(last.shape[0], last.dtype),
            n_energy_evals=self.n_energy_evals,
        )


def nuts(
    key: PRNGKey,
    energy_fn: Callable[[Array], Array],
    initial_positions: Float[Array, "n_chains dim"],
    *,
    n_warmup: int,
    n_samples: int,
    target_acceptance: float = 0.8,
    max_tree_depth: int = 10,
    adapt_mass_matrix: bool = True,
    progress: bool = False,
) -> NUTSResult:
    r"""Run numpyro NUTS on ``energy_fn`` with vmapped chains.

    Args:
        key: PRNG key.
        energy_fn: ``(dim,) -> ()`` reduced potential energy :math:`\beta U(x)` (negative log
            target).
        initial_positions: ``(n_chains, dim)``.
        n_warmup: warm-up iterations (numpyro window adaptation).
        n_samples: kept iterations per chain.
        target_acceptance: dual-averaging target (0.8, Stan/numpyro default).
        max_tree_depth: maximum tree depth (10, Hoffman & Gelman default).
        adapt_mass_matrix: adapt a diagonal mass matrix during warm-up.
        progress: numpyro's progress bar.

    Returns:
        :class:`NUTSResult`.
    """
    from numpyro.infer import MCMC, NUTS

    n_warmup = check_count(n_warmup, "n_warmup", minimum=0)
    n_samples = check_count(n_samples, "n_samples")
    check_real(
        target_acceptance, "target_acceptance", low=0.0, high=1.0, low_open=True, high_open=True
    )
    initial_positions = jnp.asarray(initial_positions)
    if initial_positions.ndim != 2:
        raise ValueError(
            f"initial_positions must have shape (n_chains, dim), got {initial_positions.shape}"
        )
    n_chains = initial_positions.shape[0]
    if not callable(energy_fn):
        raise TypeError(f"energy_fn must be callable, got {type(energy_fn).__name__}")
    kernel = NUTS(
        potential_fn=energy_fn,
        target_accept_prob=target_acceptance,
        max_tree_depth=max_tree_depth,
        adapt_mass_matrix=adapt_mass_matrix,
    )
    mcmc = MCMC(
        kernel,
        num_warmup=int(n_warmup),
        num_samples=int(n_samples),
        num_chains=n_chains,
        chain_method="vectorized",
        progress_bar=progress,
    )
    init = initial_positions if n_chains > 1 else initial_positions[0]
    # One compiled loop for warm-up + sampling (numpyro's ``run``); only the sampling
    # phase is collected. numpyro 0.22 mixes int64 and float64 inside its adaptation
    # (an implicit promotion that strict mode rejects): it runs under standard promotion.
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        mcmc.run(
            key,
            init_params=init,
            extra_fields=("num_steps", "accept_prob", "diverging", "adapt_state.step_size"),
        )
    fields = mcmc.get_extra_fields(group_by_chain=True)
    samples = mcmc.get_samples(group_by_chain=True)
    samples = jnp.reshape(samples, (n_chains, int(n_samples), -1))
    return NUTSResult(
        samples=samples,
        acceptance_rate=fields["accept_prob"],
        n_energy_evals=jnp.sum(fields["num_steps"]),
        step_size=fields["adapt_state.step_size"][..., -1],
        diverging=fields["diverging"],
    )
