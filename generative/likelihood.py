r"""Exact log-likelihoods through the probability-flow ODE (instantaneous change of variables).

The probability-flow ODE :math:`\dot x = v(t, x) = f(t)x - \tfrac12 g(t)^2 s(t,x)` (Song et
al. 2021, eq. 13) transports :math:`p_{t_0}` to :math:`p_T`. Along a trajectory the log
density obeys the instantaneous change of variables (Chen et al. 2018, "Neural ODEs",
Thm. 1),

.. math:: \log p_{t_0}(x(t_0)) = \log p_T(x(T)) + \int_{t_0}^{T} \nabla\!\cdot v(t, x(t))\,dt,

so one solve of the augmented ODE :math:`\tfrac{d}{dt}[x, \ell] = [v, \nabla\cdot v]` from
:math:`t_0` to :math:`T` gives the model's exact log-likelihood (Song et al. 2021, App. D.2).
The divergence is the exact trace of the Jacobian (``d`` forward-mode products, right for
small ``d``) or Hutchinson's (1989) estimator
:math:`\nabla\cdot v \approx \tfrac1m\sum_j \varepsilon_j^\top J\varepsilon_j` with the probes
held fixed along the solve (Grathwohl et al. 2019, FFJORD), which makes :math:`\log p` an
unbiased estimate. For particle processes everything is on the CoM-free subspace:
the trace is :math:`\operatorname{tr}(PJP)` and the probes are projected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float

from thermo import integrate
from thermo._checks import check_count, check_positive, is_traced
from thermo._typing import Args, PRNGKey, ScalarLike

from .processes import AbstractDiffusionProcess

__all__ = ["LogLikelihood", "log_likelihood"]

ScoreFn = Callable[[ScalarLike, Float[Array, " d"], Args], Float[Array, " d"]]


class LogLikelihood(NamedTuple):
    """Output of :func:`log_likelihood` (leading batch axis if ``x`` was batched).

    Attributes:
        log_prob: :math:`\\log p_{t_0}(x)` in nats.
        prior_log_prob: :math:`\\log p_T(x(T))`.
        delta_log_prob: :math:`\\int \\nabla\\cdot v\\,dt`.
        latent: :math:`x(T)`, the probability-flow encoding of ``x``.
    """

    log_prob: Float[Array, "*batch"]
    prior_log_prob: Float[Array, "*batch"]
    delta_log_prob: Float[Array, "*batch"]
    latent: Float[Array, "*batch d"]


def log_likelihood(
    key: PRNGKey | None,
    process: AbstractDiffusionProcess,
    score_fn: ScoreFn,
    x: Float[Array, "*batch d"],
    *,
    t_min: float = 0.0,
    trace: Literal["auto", "exact", "hutchinson"] = "auto",
    exact_trace_max_dim: int = 16,
    n_probes: int = 1,
    probe: Literal["rademacher", "gaussian"] = "rademacher",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    solver: dfx.AbstractSolver | None = None,
    prior_logdensity_fn: Callable[[Float[Array, " d"]], Float[Array, ""]] | None = None,
    max_steps: int = 16**4,
    args: Args = None,
) -> LogLikelihood:
    r"""Log-likelihood :math:`\log p_{t_{\min}}(x)` of the probability-flow model (see module doc).

    Args:
        key: PRNG key for Hutchinson probes (``None`` is allowed with the exact trace).
        process: the forward process (gives :math:`f`, :math:`g` and the prior).
        score_fn: ``(t, x, args) -> (d,)``.
        x: ``(d,)`` or ``(n, d)`` points (CoM-free for particle processes).
        t_min: start time :math:`t_0` of the flow (0 with an exact score; :math:`10^{-5}` to
            :math:`10^{-3}` with a learned one, Song et al. App. D.2).
        trace: ``"exact"``, ``"hutchinson"`` or ``"auto"`` (exact when the free dimension
            is at most ``exact_trace_max_dim``).
        n_probes: Hutchinson probes per point (averaged; variance falls as ``1/n_probes``).
        probe: Rademacher (lower variance, Hutchinson 1989) or Gaussian probes.
        rtol, atol: tolerances of the adaptive Tsit5 solve (:func:`thermo.integrate.solve_ode`).
        solver: a diffrax ODE solver (default Tsit5).
        prior_logdensity_fn: log-density at :math:`T`; default ``process.prior_log_prob``
            (pass the exact :math:`\log p_T` to remove the prior-mismatch error in tests).
        max_steps: diffrax step budget.
        args: passed to the score.

    Returns:
        :class:`LogLikelihood`; divide ``log_prob`` by ``process.n_free_dims(d)`` for nats
        per dimension.

    Raises:
        ValueError: on an empty batch, non-finite ``x`` (under ``jit``: an
            ``eqx.error_if`` runtime error), ``t_min`` outside ``[0, T)``, non-positive
            tolerances or counts. Works under ``jax.jit`` with ``x`` traced; ``t_min``
            and the settings must be concrete.
    """
    x = jnp.asarray(x)
    if x.ndim not in (1, 2) or x.shape[-1] == 0:
        raise ValueError(f"x must have shape (d,) or (n, d), got {x.shape}")
    batched = x.ndim == 2
    xs = x if batched else x[None]
    n, d = xs.shape
    if n == 0:
        raise ValueError(f"x is an empty batch, shape {x.shape}; pass at least one point")
    if is_traced(xs):  # under jit/vmap: a runtime check (one reduction before the solves)
        xs = eqx.error_if(xs, ~jnp.all(jnp.isfinite(xs)), "x contains NaN or inf")
    elif not bool(jnp.all(jnp.isfinite(xs))):
        raise ValueError("x contains NaN or inf")
    if is_traced((t_min, process.t1)):
        raise TypeError("t_min and process.t1 must be concrete numbers (not traced)")
    t0, t1 = float(t_min), float(process.t1)
    if not 0.0 <= t0 < t1:
        raise ValueError(f"need 0 <= t_min < T = {t1}, got {t_min}")
    check_positive(rtol, "rtol")
    check_positive(atol, "atol")
    max_steps = check_count(max_steps, "max_steps")
    exact_trace_max_dim = check_count(exact_trace_max_dim, "exact_trace_max_dim", minimum=0)
    free = process.n_free_dims(d)
    if trace == "auto":
        trace = "exact" if free <= exact_trace_max_dim else "hutchinson"
    if trace not in ("exact", "hutchinson"):
        raise ValueError(f"trace must be 'auto', 'exact' or 'hutchinson', got {trace!r}")
    if trace == "hutchinson" and key is None:
        raise ValueError("Hutchinson's estimator needs a PRNG key")
    if trace == "hutchinson":
        n_probes = check_count(n_probes, "n_probes")
    prior_fn = process.prior_log_prob if prior_logdensity_fn is None else prior_logdensity_fn
    field = process.probability_flow(score_fn).vector_field
    proj = process.projection_matrix() if process.particles is not None else None

    if trace == "exact":

        def divergence(t, y, probes):
            jac = jax.jacfwd(lambda z: field(t, z, args))(y)
            if proj is None:
                return jnp.trace(jac)
            return jnp.sum(jac * proj.T)  # tr(J P) = tr(P J P) for a projector P

        probes = jnp.zeros((n, 1, d), xs.dtype)
    else:

        def divergence(t, y, probes):
            def quad(e):
                _, jv = jax.jvp(lambda z: field(t, z, args), (y,), (e,))
                return e @ jv

            return jnp.mean(jax.vmap(quad)(probes))

        shape = (n, int(n_probes), d)
        if probe == "rademacher":
            probes = jr.rademacher(key, shape, dtype=xs.dtype)
        elif probe == "gaussian":
            probes = jr.normal(key, shape, dtype=xs.dtype)
        else:
            raise ValueError(f"probe must be 'rademacher' or 'gaussian', got {probe!r}")
        probes = process.project(probes)

    def augmented(t, y, probes):
        z = y[:d]
        return jnp.concatenate([field(t, z, args), divergence(t, z, probes)[None]])

    def one(x0, probes):
        y0 = jnp.concatenate([x0, jnp.zeros((1,), x0.dtype)])
        sol = integrate.solve_ode(
            augmented,
            y0,
            t0,
            t1,
            args=probes,
            solver=solver,
            rtol=rtol,
            atol=atol,
            max_steps=max_steps,
        )
        y1 = sol.ys[-1]
        latent, delta = y1[:d], y1[d]
        prior = prior_fn(latent)
        return LogLikelihood(prior + delta, prior, delta, latent)

    out = jax.vmap(one)(xs, probes)
    if not batched:
        out = jax.tree_util.tree_map(lambda a: a[0], out)
    return out
