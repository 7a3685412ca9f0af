r"""Fixed-step Euler–Maruyama kernel and its exact Gaussian transition log-density."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, Int

from .._typing import Args, PRNGKey, ScalarLike
from ..kernel import Kernel
from ..sde import AbstractSDE, ReverseSDE, brownian_shape, diffusion_matvec
from ._common import _check_diffusion_shape, _check_position, _positive


def euler_maruyama_log_prob(
    sde: AbstractSDE,
    t: ScalarLike,
    dt: ScalarLike,
    x: Float[Array, " d"],
    x_next: Float[Array, " d"],
    args: Args = None,
) -> Float[Array, ""]:
    r"""Log-density of one Euler–Maruyama transition :math:`x \to x'` of ``sde`` at time ``t``:

    .. math:: \log \mathcal N\big(x';\; x + f(t,x)\,dt,\; G G^\top(t,x)\,dt\big).

    Scalar and diagonal :math:`G` give a product of 1-D Gaussians; a full ``(d, m)``
    :math:`G` with :math:`\Sigma = GG^\top dt` positive definite is factorised by Cholesky.
    This is the discrete-time kernel density used for exact log RN weights between forward
    and backward Euler path measures (Crooks 1999; Vargas et al. 2023).

    **Rank-deficient** :math:`\Sigma` (e.g. a diffusion projected on the centre-of-mass-free
    subspace, :math:`G = gP`): the transition then has a density only on the affine
    subspace :math:`x + f\,dt + \operatorname{range}\Sigma`, and the density returned is the
    one with respect to Lebesgue measure on that subspace, through the pseudo-inverse,

    .. math:: -\tfrac12 r^\top\Sigma^+ r - \tfrac12\sum_{\lambda_i > \tau}\log\lambda_i
              - \tfrac{k}{2}\log 2\pi,\qquad k = \#\{\lambda_i > \tau\},

    with :math:`\lambda_i` the eigenvalues of :math:`\Sigma` (``eigh``) and the rank
    tolerance :math:`\tau = d\,\epsilon\,\lambda_{\max}` of ``numpy.linalg.matrix_rank``
    (:math:`\epsilon` the dtype's machine epsilon). This is the log-density in orthonormal
    coordinates of the subspace, so forward and backward kernels living on the same
    subspace give the right log Radon–Nikodym weight. The residual's component outside the
    subspace is ignored (it is zero for paths of the SDE itself). The pseudo-inverse is
    used when the Cholesky factor is not finite or has a squared diagonal ratio below
    :math:`d\epsilon` (both are computed then; inside ``vmap`` both branches run).
    """
    g = sde.diffusion(t, x, args)
    r = x_next - x - sde.drift(t, x, args) * dt
    d = x.shape[0]
    if g.ndim == 2:
        cov = g @ g.T * dt
        return _gaussian_log_prob_psd(r, cov)
    var = jnp.broadcast_to(g**2 * dt, (d,))
    return -0.5 * jnp.sum(r**2 / var + jnp.log(2 * jnp.pi * var))


def _gaussian_log_prob_psd(r: Array, cov: Array) -> Array:
    """``log N(r; 0, cov)`` for a PSD ``cov``: Cholesky, or the pseudo-inverse if singular."""
    d = r.shape[0]
    eps = jnp.finfo(cov.dtype).eps
    chol = jnp.linalg.cholesky(cov)
    diag2 = jnp.diag(chol) ** 2
    singular = ~jnp.all(jnp.isfinite(chol)) | (jnp.min(diag2) <= d * eps * jnp.max(diag2))

    def full_rank(_):
        z = jax.scipy.linalg.solve_triangular(chol, r, lower=True)
        log_det = 2.0 * jnp.sum(jnp.log(jnp.diag(chol)))
        return -0.5 * jnp.sum(z**2) - 0.5 * log_det - 0.5 * d * jnp.log(2 * jnp.pi)

    def pseudo_inverse(_):
        lam, vec = jnp.linalg.eigh(cov)
        keep = lam > d * eps * jnp.max(lam)
        safe = jnp.where(keep, lam, 1.0)
        z2 = jnp.where(keep, (vec.T @ r) ** 2 / safe, 0.0)
        rank = jnp.sum(keep)
        rank_term = (0.5 * rank.astype(jnp.result_type(float)) * jnp.log(2 * jnp.pi)).astype(
            cov.dtype
        )
        return -0.5 * jnp.sum(z2) - 0.5 * jnp.sum(jnp.log(safe)) - rank_term

    return jax.lax.cond(singular, pseudo_inverse, full_rank, None)


class EulerMaruyamaState(NamedTuple):
    """State of :func:`euler_maruyama` (one path; vmap for a population).

    Attributes:
        position: ``(d,)`` current state :math:`x_k`.
        time: ``()`` current time :math:`t_k = t_0 + k\\,dt` (recomputed from ``step``, so
            it does not drift in float32).
        step: ``()`` integer step counter :math:`k`.
        log_weight: ``()`` accumulated :math:`\\sum\\log B - \\log F` against the reverse SDE
            (zero when none is given).
    """

    position: Float[Array, " d"]
    time: Float[Array, ""]
    step: Int[Array, ""]
    log_weight: Float[Array, ""]


class EulerMaruyamaInfo(NamedTuple):
    """Per-step information of :func:`euler_maruyama`.

    Attributes:
        log_weight_increment: ``()`` this step's :math:`\\log B - \\log F` (zero without a
            reverse SDE).
    """

    log_weight_increment: Float[Array, ""]


def euler_maruyama(
    sde: AbstractSDE,
    dt: ScalarLike,
    *,
    t0: ScalarLike = 0.0,
    args: Args = None,
    reverse_sde: AbstractSDE | None = None,
    time_sum: ScalarLike | None = None,
) -> Kernel:
    r"""Euler–Maruyama (Maruyama 1955; Kloeden & Platen 1992) for any SDE, as a Kernel.

    .. math:: x_{k+1} = x_k + f(t_k, x_k)\,dt + G(t_k, x_k)\,\sqrt{dt}\,\xi_k,
              \qquad \xi_k\sim\mathcal N(0, I),\quad t_k = t_0 + k\,dt.

    Strong order 1/2, weak order 1. Scalar, diagonal and full diffusions are handled by
    :func:`thermo.sde.diffusion_matvec`; the noise has the Brownian shape of :math:`G`.

    With ``reverse_sde`` (an SDE in the forward-running reversed clock
    :math:`s = \mathtt{time\_sum} - t`, as :meth:`AbstractSDE.reverse` builds it) the state
    accumulates the discrete-time log Radon–Nikodym weight of the backward Euler path
    measure against the forward one,

    .. math:: \log w \mathrel{+}= \log \mathcal N\big(x_k; x_{k+1} + b(s_{k+1}, x_{k+1})dt,
              \bar G\bar G^\top dt\big) - \log \mathcal N\big(x_{k+1}; x_k + f(t_k,x_k)dt,
              GG^\top dt\big),\quad s_{k+1} = \mathtt{time\_sum} - t_{k+1},

    (the sum in discrete-time diffusion samplers; add the boundary terms
    :math:`\log p_{\rm target}(x_N) - \log p_{\rm start}(x_0)` yourself).

    Args:
        sde: any :class:`~thermo.sde.AbstractSDE`.
        dt: step size (positive).
        t0: time of step zero.
        args: passed to drift and diffusion.
        reverse_sde: optional backward SDE for the log weight.
        time_sum: :math:`t_0 + t_1` of the reversed clock; defaults to
            ``reverse_sde.t0 + reverse_sde.t1`` for a :class:`~thermo.sde.ReverseSDE`.

    Returns:
        ``Kernel(init(position) -> EulerMaruyamaState, step(key, state))``.
    """
    _positive(dt, "dt")
    if reverse_sde is not None and time_sum is None:
        if not isinstance(reverse_sde, ReverseSDE):
            raise ValueError("time_sum is required when reverse_sde is not a ReverseSDE")
        time_sum = reverse_sde.t0 + reverse_sde.t1

    def init(position: Float[Array, " d"]) -> EulerMaruyamaState:
        x = _check_position(position, "position")
        g_struct = jax.eval_shape(lambda: sde.diffusion(t0, x, args))
        _check_diffusion_shape(g_struct.shape, x.shape[0])
        zero = jnp.zeros((), x.dtype)
        return EulerMaruyamaState(x, zero + t0, jnp.zeros((), jnp.int32), zero)

    def step(key: PRNGKey, state: EulerMaruyamaState):
        x, t = state.position, state.time
        g = sde.diffusion(t, x, args)
        noise = jr.normal(key, brownian_shape(g, x), x.dtype)
        x_next = x + sde.drift(t, x, args) * dt + diffusion_matvec(g, noise) * jnp.sqrt(dt)
        k_next = state.step + 1
        t_next = (t0 + k_next.astype(jnp.result_type(dt)) * dt).astype(x.dtype)
        if reverse_sde is None:
            inc = jnp.zeros((), x.dtype)
        else:
            log_f = euler_maruyama_log_prob(sde, t, dt, x, x_next, args)
            log_b = euler_maruyama_log_prob(reverse_sde, time_sum - t_next, dt, x_next, x, args)
            inc = log_b - log_f
        new = EulerMaruyamaState(x_next, t_next, k_next, state.log_weight + inc)
        return new, EulerMaruyamaInfo(inc)

    return Kernel(init, step)
