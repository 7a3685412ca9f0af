r"""The multistate Bennett acceptance ratio (MBAR; Shirts & Chodera 2008, JCP 129, 124105).

Given reduced potentials :math:`u_k(x_n)` of all :math:`N=\sum_k N_k` samples in all
:math:`K` states (samples ordered by the state they came from), the free energies are
the minimiser of the convex objective (Shirts & Chodera 2008, App. C; Zhu & Shirts)

.. math:: F(f) = \sum_n \log \sum_k N_k e^{f_k - u_{kn}} - \sum_k N_k f_k ,

whose stationarity condition is the self-consistent MBAR equation (their eq. 11)

.. math:: f_i = -\log \sum_n \frac{e^{-u_{in}}}{\sum_k N_k e^{f_k - u_{kn}}} .

**Solvers.** Small problems (``K N <= _NUMPY_MAX_ELEMENTS``) are solved in NumPy/SciPy
in log space (:func:`_np_solve`: every term a shifted log-sum-exp, so any ``f`` is in
range; Newton steps with the exact Hessian and an Armijo test, and the self-consistent
update, eq. 11, whenever Newton's full step fails: a majorise-minimise step that never
increases :math:`F` and moves a state 1000 kT away in one step). Nothing is compiled.

Large problems use a jitted JAX solver in a *preconditioned linear space*: at a reference
point :math:`f^0` we form once (one pass of exponentials over ``u_kn``) the normalised
weight matrix :math:`Q_{kn} = e^{f^0_k - u_{kn}} / \sum_l N_l e^{f^0_l - u_{ln}}`. For
:math:`f = f^0 + x`, with :math:`d = e^{x}`,

.. math:: s_n = \sum_k N_k d_k Q_{kn},\quad
          \partial_k F = N_k\,(d_k \textstyle\sum_n Q_{kn}/s_n - 1),\quad
          W_{nk} = d_k Q_{kn}/s_n ,

so the objective and gradient cost two matrix-vector products and no exponentials, and
the Hessian :math:`H = \mathrm{diag}(N \circ \sum_n W_{n\cdot}) - N W^\top W N` is a
:math:`K\times K` Gram matrix of the single ``(K, N)`` array ``Q``. First the log-space
solver above runs on a stratified subsample (every state keeps up to ``n_subsample``
samples, reweighted by :math:`N_k / N_k^{\mathrm{sub}}`), from any start; then damped
Newton iterations on the full data use that subsample Hessian as a fixed preconditioner,
and one final exact Newton step's Gram matrix :math:`W^\top W` is reused for the
covariance. While :math:`x` stays inside a trust region (:data:`_TRUST_KT`) every term
stays in float range; leaving it only means re-preconditioning at the new point, never a
verdict on overlap, which comes from the overlap matrix at the solution alone. N is
padded to a shape bucket (:func:`_bucket`; padded samples have weight 0), so a new
sample count compiles nothing inside its bucket. Only one ``(K, N)`` array (``Q``) is
materialised on the device besides a padded host copy of the input.

**Uncertainty.** The asymptotic covariance of :math:`\log c_k = -f_k` follows Shirts &
Chodera 2008, App. D (eqs. D4-D5), computed from the eigendecomposition of
:math:`W^\top W` exactly as pymbar's default ``"svd-ew"`` method:
:math:`\Theta = V\Sigma\,[I - \Sigma V^\top \mathrm{diag}(N) V \Sigma]^{+}\,\Sigma V^\top`.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
import scipy.special
from jax import lax
from jax.scipy.special import logsumexp
from jaxtyping import Array, Float

from .._checks import check_n_k, check_u_kn

__all__ = ["MBAR", "mbar"]

#: Largest ``|f - f0|`` (kT) the linear-space solver accepts before re-preconditioning.
#: Terms then change by at most ``e^{2*30} ~ 1e26`` relative to the reference point,
#: far from float64 under/overflow (``1e±308``) and still clear of it in float32 when
#: the weights themselves are O(1).
_TRUST_KT = 30.0
#: Columns per block of the chunked Gram matrix ``Q diag(c) Q^T`` (bounds the temporary
#: to ``K * _GRAM_BLOCK`` floats whatever N is).
_GRAM_BLOCK = 8192
#: Relative eigenvalue cutoff of pymbar's pseudo-inverse in ``svd-ew`` (pymbar
#: ``MBAR._pseudoinverse`` uses ``rcond=1e-10``).
_PINV_RCOND = 1e-10
#: Overlap below which states are declared disconnected: ``1 - lambda_2`` of the overlap
#: matrix (Shirts & Chodera 2008; pymbar ``compute_overlap``). A connected chain of K
#: states with neighbour overlap ``o`` has a gap of order ``o / K^2`` (>> 1e-10 for any
#: usable K), while states with no shared sample have a gap at round-off level.
_MIN_OVERLAP_GAP = 1e-10
#: Largest ``K * N`` solved by the NumPy/SciPy path (no compilation); larger problems
#: go to the jitted JAX path. The crossover is measured by
#: ``experiments/benchmarks/bench_mbar_sweep.py``.
_NUMPY_MAX_ELEMENTS = 4_000_000
#: Largest ``K * N`` for which the NumPy path runs BLAS on one thread (see
#: :func:`_mbar_numpy`).
_SINGLE_THREAD_MAX_ELEMENTS = 1_000_000
#: Smallest padded sample count of the JAX path (see :func:`_bucket`).
_BUCKET_MIN = 256
#: Relative-gradient target of the float64 log-space solver (``|dF/df_k| / N_k``; the
#: round-off floor of a sum of N terms is ~``1e-16 sqrt(N)``).
_GTOL_F64 = 1e-12
_STALL_ITERATIONS = 3  # iterations without halving the gradient: at round-off
#: Largest relative gradient accepted as converged in float64 (lower precisions:
#: ``1000 eps``, see :func:`_tolerances`).
_GTOL_ACCEPT = 1e-6
#: Re-preconditionings allowed (each moves ``f`` by about ``_TRUST_KT``).
_MAX_REPRECONDITION = 1000


# ----------------------------------------------------------------------------------
# Linear-space kernels (un-jitted; composed by the jitted entry points below)
# ----------------------------------------------------------------------------------


def _precondition(u_kn, f0, n_k, own, valid, unsampled, use_max):
    """Weight matrix at the reference point ``f0``.

    Returns ``Q`` (K, N) with ``Q_kn = exp(f0_k - u_kn - m_n)``, ``f0`` with the unsampled
    states (static indices ``unsampled``) set self-consistently (MBAR eq. 11) so that
    their rows stay O(1), the per-sample shift ``m`` (N,) and whether ``s0 = N_k @ Q`` is
    finite and positive everywhere.
    Everything downstream depends on ``Q_kn / s_n`` only, so the per-sample shift is free:
    ``m_n`` is the sample's own state's term (``own[n]``, one gather instead of a
    reduction over states), and the exponent is formed as differences
    ``(u_own,n - u_kn) + (f0_k - f0_own)``, so that a large common offset of a column
    (``u ~ 1e4`` in float32) cancels exactly before anything is rounded. With
    ``use_max`` the shift is the max over sampled states (the fallback if the cheap shift
    overflowed). Columns with ``valid = False`` are padding (shape buckets): ``Q = 1``
    there and every sum over samples gives them weight 0.
    """
    sampled = n_k > 0
    f_masked = jnp.where(sampled, f0, -jnp.inf)
    cols = jnp.arange(u_kn.shape[1])
    u_own = u_kn[own, cols]
    if use_max:
        z = f_masked[:, None] - u_kn
        m = jnp.max(z, axis=0)
        z = z - m[None, :]
    else:
        m = f0[own] - u_own
        z = (u_own[None, :] - u_kn) + (f_masked[:, None] - f0[own][None, :])
    z = jnp.where(valid[None, :], z, 0.0)
    m = jnp.where(valid, m, 0.0)
    q = jnp.exp(z)
    s0 = n_k @ q
    if unsampled:
        uns = jnp.asarray(unsampled)
        u_unsampled = u_kn[uns]
        log_s0 = m + jnp.log(s0)
        f_self = -logsumexp(
            jnp.where(valid[None, :], -u_unsampled - log_s0[None, :], -jnp.inf), axis=1
        )
        f0 = f0.at[uns].set(f_self)
        if use_max:
            z_u = (f_self[:, None] - u_unsampled) - m[None, :]
        else:
            z_u = (u_own[None, :] - u_unsampled) + (f_self[:, None] - f0[own][None, :])
        q = q.at[uns].set(jnp.exp(jnp.where(valid[None, :], z_u, 0.0)))
    return q, f0, m, jnp.all(jnp.isfinite(s0) & (s0 > 0))


def _gram(q, col_scale):
    r"""``Q diag(col_scale) Q^T`` in column blocks: a ``(K, K)`` result from one ``(K, N)``
    array without materialising a second one."""
    n_states, n_samples = q.shape
    block = min(n_samples, _GRAM_BLOCK)
    n_blocks, rem = divmod(n_samples, block)

    def one(qb, cb):
        qs = qb * jnp.sqrt(cb)[None, :]
        return qs @ qs.T

    def body(i, acc):
        qb = lax.dynamic_slice_in_dim(q, i * block, block, axis=1)
        cb = lax.dynamic_slice_in_dim(col_scale, i * block, block)
        return acc + one(qb, cb)

    acc = jnp.zeros((n_states, n_states), q.dtype)
    acc = (
        lax.fori_loop(0, n_blocks, body, acc)
        if n_blocks > 1
        else one(q[:, :block], col_scale[:block])
    )
    if rem:
        acc = acc + one(q[:, n_blocks * block :], col_scale[n_blocks * block :])
    return acc


def _objective_and_s(q, n_k, omega, x):
    s = (n_k * jnp.exp(x)) @ q
    obj = jnp.sum(omega * jnp.log(s)) - n_k @ x
    return obj, s


def _hessian(q, n_k, omega, x, s, r):
    """Exact Hessian of the (weighted) MBAR objective at ``x`` (Shirts & Chodera eq. C9)."""
    nd = n_k * jnp.exp(x)
    g = _gram(q, omega / s**2)
    return jnp.diag(nd * r) - nd[:, None] * g * nd[None, :]


def _factor(h, n_k):
    """Regularised factorisation of a Hessian: the null direction ``1`` (F is invariant to
    a common shift of f) is lifted by a rank-one term, unsampled states get a unit diagonal.
    Returns ``(chol, ok)``; callers fall back to an eigen-pseudo-inverse when not ok."""
    sampled = n_k > 0
    scale = jnp.maximum(jnp.trace(h) / jnp.maximum(jnp.sum(sampled), 1).astype(h.dtype), 1e-300)
    v = n_k / jnp.sum(n_k)
    h_reg = h + scale * jnp.outer(v, v) / jnp.sum(v**2) + jnp.diag(jnp.where(sampled, 0.0, 1.0))
    chol = jnp.linalg.cholesky(h_reg)
    ok = jnp.all(jnp.isfinite(chol))
    return h_reg, chol, ok


def _newton_direction(h_reg, chol, ok, g):
    def by_chol(_):
        return jax.scipy.linalg.cho_solve((chol, True), g)

    def by_eigh(_):
        lam, vec = jnp.linalg.eigh(h_reg)
        cut = jnp.max(jnp.abs(lam)) * 1e3 * jnp.finfo(lam.dtype).eps
        inv = jnp.where(lam > cut, 1.0 / jnp.where(lam > cut, lam, 1.0), 0.0)
        return vec @ (inv * (vec.T @ g))

    return lax.cond(ok, by_chol, by_eigh, None)


class _LoopState(NamedTuple):
    x: Array  # (K,) f - f0
    s: Array  # (N,) s_n at x
    obj: Array  # () objective at x
    step: Array  # () max |accepted step| of the last iteration
    it: Array  # () iterations done
    status: Array  # () 0 running, 1 converged, 2 left the trust region, 3 stalled


@functools.partial(jax.jit, static_argnames=("exact", "max_iter"))
def _newton_loop(q, n_k, omega, x0, pre_chol, pre_h, pre_ok, ref, tol, *, exact, max_iter):
    """Damped Newton iterations in the preconditioned linear space.

    ``exact``: recompute the exact Hessian every iteration; otherwise use the fixed
    factorised preconditioner ``(pre_h, pre_chol, pre_ok)``. ``ref`` is the index of a
    sampled state whose ``x`` is held fixed (removes the null direction).
    """
    sampled = n_k > 0
    obj0, s0 = _objective_and_s(q, n_k, omega, x0)
    eps = jnp.finfo(q.dtype).eps

    def cond(st):
        return (st.status == 0) & (st.it < max_iter)

    def body(st):
        r = q @ (omega / st.s)
        g = n_k * (jnp.exp(st.x) * r - 1.0)
        if exact:
            h = _hessian(q, n_k, omega, st.x, st.s, r)
            h_reg, chol, ok = _factor(h, n_k)
        else:
            h_reg, chol, ok = pre_h, pre_chol, pre_ok
        delta = -_newton_direction(h_reg, chol, ok, g)
        delta = jnp.where(sampled, delta - delta[ref], 0.0)
        # Trust region: keep |x| <= _TRUST_KT so that exp(x) * Q stays in range.
        x_max = jnp.max(jnp.abs(st.x + delta))
        t0 = jnp.where(x_max > _TRUST_KT, 0.99 * _TRUST_KT / x_max, 1.0)
        left = x_max > _TRUST_KT
        slope = g @ delta  # < 0 for a descent direction
        slack = 64 * eps * (jnp.sum(omega * jnp.abs(jnp.log(st.s))) + jnp.abs(n_k @ st.x) + 1.0)

        def ls_cond(c):
            t, obj_t, _ = c
            return (obj_t > st.obj + 1e-4 * t * slope + slack) & (t > 1e-12)

        def ls_body(c):
            t, _, _ = c
            t = 0.5 * t
            obj_t, s_t = _objective_and_s(q, n_k, omega, st.x + t * delta)
            return t, obj_t, s_t

        obj_t, s_t = _objective_and_s(q, n_k, omega, st.x + t0 * delta)
        t, obj_t, s_t = lax.while_loop(ls_cond, ls_body, (t0, obj_t, s_t))
        failed = t <= 1e-12
        step = jnp.max(jnp.abs(t * delta))
        x_new = jnp.where(failed, st.x, st.x + t * delta)
        s_new = jnp.where(failed, st.s, s_t)
        obj_new = jnp.where(failed, st.obj, obj_t)
        converged = step <= tol * jnp.maximum(1.0, jnp.max(jnp.abs(x_new)))
        status = jnp.where(
            converged, 1, jnp.where(left & ~failed, 2, jnp.where(failed, 3, 0))
        ).astype(jnp.int32)
        return _LoopState(x_new, s_new, obj_new, step, st.it + 1, status)

    init = _LoopState(
        x0, s0, obj0, jnp.asarray(jnp.inf, q.dtype), jnp.asarray(0), jnp.asarray(0, jnp.int32)
    )
    return lax.while_loop(cond, body, init)


@functools.partial(jax.jit, static_argnames=("polish",))
def _finish(q, n_k, omega, x, ref, *, polish):
    """Normalise unsampled states, form ``W^T W`` at ``x``, take one exact Newton step
    with it (``polish``), and return the covariance and overlap spectrum."""
    sampled = n_k > 0
    s = (n_k * jnp.exp(x)) @ q
    r = q @ (omega / s)
    # Unsampled states: d_k = 1 / r_k makes their weight columns normalised (eq. 11).
    x = jnp.where(sampled, x, -jnp.log(r))
    d = jnp.exp(x)
    g_qq = _gram(q, omega / s**2)
    wtw = d[:, None] * g_qq * d[None, :]
    grad = n_k * (d * r - 1.0)
    if polish:
        h = jnp.diag(n_k * d * r) - (n_k * d)[:, None] * g_qq * (n_k * d)[None, :]
        h_reg, chol, ok = _factor(h, n_k)
        delta = -_newton_direction(h_reg, chol, ok, grad)
        x = x + jnp.where(sampled, delta - delta[ref], 0.0)
        s = (n_k * jnp.exp(x)) @ q
        r = q @ (omega / s)
        x = jnp.where(sampled, x, -jnp.log(r))
        grad = n_k * (jnp.exp(x) * r - 1.0)
    return x, s, grad, wtw, _theta_svd_ew(wtw, n_k), _overlap_eigenvalues(wtw, n_k)


def _theta_svd_ew(wtw, n_k):
    """Asymptotic covariance of ``log c_k = -f_k`` (Shirts & Chodera 2008, eqs. D4-D5;
    pymbar ``_computeAsymptoticCovarianceMatrix(method="svd-ew")``)."""
    s2, v = jnp.linalg.eigh(wtw)
    sigma = jnp.sqrt(jnp.maximum(s2, 0.0))
    vs = v * sigma[None, :]
    m = jnp.eye(wtw.shape[0], dtype=wtw.dtype) - vs.T @ (n_k[:, None] * vs)
    return vs @ jnp.linalg.pinv(m, rtol=_PINV_RCOND) @ vs.T


def _overlap_eigenvalues(wtw, n_k):
    """Eigenvalues (descending) of pymbar's overlap matrix ``O_kl = N_l (W^T W)_kl``,
    via its symmetric similar form ``N^{1/2} W^T W N^{1/2}``."""
    sq = jnp.sqrt(n_k)
    return jnp.linalg.eigvalsh(sq[:, None] * wtw * sq[None, :])[::-1]


_factor_jit = jax.jit(_factor)
_precondition_jit = jax.jit(_precondition, static_argnames=("unsampled", "use_max"))
_theta_svd_ew_jit = jax.jit(_theta_svd_ew)
_precondition_donate = jax.jit(
    _precondition, static_argnames=("unsampled", "use_max"), donate_argnums=0
)


def _np_error_of_differences(cov):
    d = np.diag(cov)
    return np.sqrt(np.maximum(d[:, None] + d[None, :] - 2.0 * cov, 0.0))


def _error_of_differences(cov):
    d = jnp.diag(cov)
    var = d[:, None] + d[None, :] - 2.0 * cov
    return jnp.sqrt(jnp.maximum(var, 0.0))


# ----------------------------------------------------------------------------------
# NumPy/SciPy path (nothing to compile): the same objective, gradient and Hessian in
# log space. Used whole for small problems and for the subsample phase of large ones.
# ----------------------------------------------------------------------------------


def _np_objective(u_s, f_s, log_n_s, n_s, omega):
    """``(F, e, den, log_den)`` with ``e_kn = exp(a_kn - max_k a_kn)``,
    ``a_kn = log N_k + f_k - u_kn`` (every column holds a 1: no overflow at any ``f``)."""
    a = (f_s + log_n_s)[:, None] - u_s
    mx = a.max(axis=0)
    a -= mx[None, :]
    e = np.exp(a, out=a)
    den = e.sum(axis=0)
    log_den = mx + np.log(den)
    return float(omega @ log_den - n_s @ f_s), e, den, log_den


def _np_self_consistent(u_s, log_den, omega):
    """The self-consistent update (Shirts & Chodera eq. 11) in log space:
    ``f_k = -log sum_n omega_n e^{-u_kn} / den_n``."""
    f = -scipy.special.logsumexp(-u_s - log_den[None, :], b=omega[None, :], axis=1)
    return f - f[0]


def _np_solve(u_kn, n_k, omega, f_init, *, gtol, max_iterations):
    r"""Minimise the (sample-weighted) MBAR objective over the sampled states, in float64.

    ``F(f) = sum_n omega_n log sum_k N_k e^{f_k - u_kn} - sum_k N_k f_k`` (``omega = 1``
    for the plain objective; ``N_k / N_k^sub`` on a stratified subsample, summing to N).
    Every term is a shifted log-sum-exp, so any ``f`` is in range. An iteration takes the
    Newton step (exact Hessian, Shirts & Chodera 2008 eq. C9) when its full step passes
    an Armijo test; otherwise the better of the backtracked Newton step and the
    self-consistent step (eq. 11), a majorise-minimise step that never increases ``F`` and
    moves every state at once however far it is (a 1000 kT difference from ``f = 0`` is
    one such step). So the iteration descends from any start; no step is refused.

    Returns ``(f_s, log_den, p, n_iter, gnorm)`` over the sampled states, with
    ``p_kn = N_k W_kn`` (columns sum to one) and ``gnorm = max_k |dF/df_k| / N_k``.
    """
    sampled = np.flatnonzero(n_k > 0)
    u_s = np.asarray(u_kn[sampled], dtype=np.float64)
    n_s = n_k[sampled].astype(np.float64)
    log_n_s = np.log(n_s)
    f = np.asarray(f_init, np.float64)[sampled].copy()
    f -= f[0]
    obj, e, den, log_den = _np_objective(u_s, f, log_n_s, n_s, omega)
    eps = np.finfo(np.float64).eps
    n_iter = 0
    best_gnorm, stalled = np.inf, 0
    while n_iter < max_iterations and len(n_s) > 1:
        p = e / den[None, :]
        pw = p * omega[None, :]
        occ = pw.sum(axis=1)  # N_k sum_n omega_n W_kn
        g = occ - n_s
        gnorm = float(np.max(np.abs(g) / n_s))
        if gnorm < gtol:
            break
        # The round-off floor: the gradient is a sum over N samples, so with large N and
        # small N_k its float64 error can exceed ``gtol``; Newton then only shuffles f in
        # its last digits. Once the gradient is below sqrt(eps) and three iterations in a
        # row have not halved it, f is converged to round-off.
        if gnorm < 0.5 * best_gnorm:
            best_gnorm, stalled = gnorm, 0
        else:
            stalled += 1
        if gnorm < np.sqrt(eps) and stalled >= _STALL_ITERATIONS:
            break
        n_iter += 1
        h = np.diag(occ) - pw @ p.T
        try:
            c = scipy.linalg.cho_factor(h[1:, 1:], lower=True, check_finite=False)
            d = -scipy.linalg.cho_solve(c, g[1:], check_finite=False)
            ok = bool(np.all(np.isfinite(d)))
        except np.linalg.LinAlgError:
            ok = False
        if not ok:  # singular in some direction (e.g. a state with underflowed weights)
            lam, vec = np.linalg.eigh(h[1:, 1:])
            keep = lam > np.max(np.abs(lam)) * 1e3 * eps
            d = -(vec[:, keep] @ ((vec[:, keep].T @ g[1:]) / lam[keep]))
        delta = np.concatenate([[0.0], d])
        slope = float(g @ delta)
        slack = 64 * eps * (float(omega @ np.abs(log_den)) + float(n_s @ np.abs(f)) + 1.0)
        best = None
        if slope < 0:
            trial = _np_objective(u_s, f + delta, log_n_s, n_s, omega)
            if trial[0] <= obj + 1e-4 * slope + slack:
                best = (f + delta, *trial)
        if best is None:
            f_sc = _np_self_consistent(u_s, log_den, omega)
            sc = _np_objective(u_s, f_sc, log_n_s, n_s, omega)
            if sc[0] <= obj + slack:
                best = (f_sc, *sc)
            t, t_min = 0.5, (1.0 / 16 if best is not None else 1e-10)
            while slope < 0 and t >= t_min:
                trial = _np_objective(u_s, f + t * delta, log_n_s, n_s, omega)
                if trial[0] <= obj + 1e-4 * t * slope + slack:
                    if best is None or trial[0] < best[1]:
                        best = (f + t * delta, *trial)
                    break
                t *= 0.5
        if best is None:  # no decrease at all: F is flat to round-off here
            break
        step = float(np.max(np.abs(best[0] - f)))
        f, obj, e, den, log_den = best
        if step <= 4 * eps * max(1.0, float(np.max(np.abs(f)))):
            break
    p = e / den[None, :]
    gnorm = float(np.max(np.abs((p * omega[None, :]).sum(axis=1) - n_s) / n_s))
    return f, log_den, p, n_iter, gnorm


def _np_theta_svd_ew(wtw, n_k):
    """NumPy twin of :func:`_theta_svd_ew` (pymbar ``svd-ew``, Shirts & Chodera eqs. D4-D5)."""
    s2, v = np.linalg.eigh(wtw)
    vs = v * np.sqrt(np.maximum(s2, 0.0))[None, :]
    m = np.eye(wtw.shape[0]) - vs.T @ (n_k[:, None] * vs)
    return vs @ np.linalg.pinv(m, rcond=_PINV_RCOND) @ vs.T


def _np_overlap_eigenvalues(wtw, n_k):
    """NumPy twin of :func:`_overlap_eigenvalues`."""
    sq = np.sqrt(n_k)
    return np.linalg.eigvalsh(sq[:, None] * wtw * sq[None, :])[::-1]


def _np_mbar(u_kn, n_k_np, f_init, max_iterations):
    """The whole solve and covariance in NumPy (float64).

    Returns ``(f, theta, wtw, eig, log_den, n_iter, gnorm)``."""
    omega = np.ones(u_kn.shape[1])
    f_s, log_den, _, n_iter, gnorm = _np_solve(
        u_kn, n_k_np, omega, f_init, gtol=_GTOL_F64, max_iterations=max_iterations
    )
    # W_kn = exp(f_k - u_kn - log_den_n) for every state; the unsampled states' f_k
    # normalise their own row (eq. 14).
    log_w = -np.asarray(u_kn, np.float64) - log_den[None, :]
    sampled = n_k_np > 0
    f = np.empty(n_k_np.shape[0])
    f[sampled] = f_s
    if not sampled.all():
        f[~sampled] = -scipy.special.logsumexp(log_w[~sampled], axis=1)
    log_w += f[:, None]
    w = np.exp(log_w, out=log_w)
    wtw = w @ w.T
    n_f = n_k_np.astype(np.float64)
    return (
        f,
        _np_theta_svd_ew(wtw, n_f),
        wtw,
        _np_overlap_eigenvalues(wtw, n_f),
        log_den,
        n_iter,
        gnorm,
    )


# ----------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------


class MBAR:
    r"""Result of :func:`mbar` (Shirts & Chodera 2008), with expectations, perturbed free
    energies and a 1-D PMF computed from the converged weights.

    Attributes:
        f_k: ``(K,)`` reduced free energies, ``f_0 = 0``.
        df_k: ``(K,)`` standard error of ``f_k - f_0``.
        theta: ``(K, K)`` asymptotic covariance of ``log c_k = -f_k`` (App. D); the
            covariance of ``f`` is the same matrix.
        overlap_matrix: ``(K, K)`` pymbar's overlap ``O_kl = N_l (W^T W)_kl``.
        overlap: scalar ``1 - lambda_2`` of the overlap matrix (0: disjoint states).
        n_iterations: Newton iterations done (all phases).
        log_denominator_n: ``(N,)`` ``log sum_k N_k exp(f_k - u_kn)`` at the solution.
    """

    def __init__(
        self, u_kn, n_k, f_k, theta, wtw, overlap_eigenvalues, log_denominator_n, n_iterations
    ):
        # Built from host (NumPy) results: no eager JAX operation here, so constructing
        # the result compiles nothing whatever the shapes.
        dtype = jax.dtypes.canonicalize_dtype(np.asarray(f_k).dtype)
        n = np.asarray(n_k, np.float64)
        theta = np.asarray(theta, np.float64)
        wtw = np.asarray(wtw, np.float64)
        eig = np.asarray(overlap_eigenvalues, np.float64)

        def dev(a):
            return jax.device_put(np.asarray(a).astype(dtype, copy=False))

        self._u_kn = u_kn
        self.n_k = dev(n)
        self.f_k = dev(f_k)
        self.theta = dev(theta)
        self.df_k = dev(_np_error_of_differences(theta)[0])
        self._wtw = dev(wtw)
        self.overlap_matrix = dev(wtw * n[None, :])
        self.overlap_eigenvalues = dev(eig)
        self.overlap = dev(1.0 - eig[1] if eig.shape[0] > 1 else 1.0)
        self.log_denominator_n = dev(log_denominator_n)
        self.n_iterations = n_iterations

    # -- free energies -------------------------------------------------------------
    def free_energy_differences(self):
        """``(Delta_f, dDelta_f)``, both ``(K, K)``: ``Delta_f[i, j] = f_j - f_i`` and its
        standard error ``sqrt(Theta_ii + Theta_jj - 2 Theta_ij)`` (Shirts & Chodera eq. 12)."""
        return self.f_k[None, :] - self.f_k[:, None], _error_of_differences(self.theta)

    def _augmented_theta(self, log_w_extra):
        """Theta of the augmented weight matrix ``[W, W_extra]`` (extra states have N=0),
        as pymbar ``compute_expectations_inner``; ``log_w_extra`` is ``(M, N)``."""
        w_extra = jnp.exp(log_w_extra)
        cross = _cross_gram(self._u_kn_device(), self.f_k, self.log_denominator_n, w_extra)
        wtw_k = self._wtw
        g_ee = w_extra @ w_extra.T
        top = jnp.concatenate([wtw_k, cross.T], axis=1)
        bottom = jnp.concatenate([cross, g_ee], axis=1)
        gram = jnp.concatenate([top, bottom], axis=0)
        n_aug = jnp.concatenate([self.n_k, jnp.zeros(w_extra.shape[0], self.n_k.dtype)])
        return _theta_svd_ew_jit(gram, n_aug)

    def _u_kn_device(self):
        return jnp.asarray(self._u_kn, dtype=self.f_k.dtype)

    def _log_weights(self, u_ln):
        """Normalised log weights ``(L, N)`` and free energies ``(L,)`` of states ``u_ln``."""
        a = -u_ln - self.log_denominator_n[None, :]
        f_l = -logsumexp(a, axis=1)
        return a + f_l[:, None], f_l

    def perturbed_free_energies(self, u_ln):
        r"""Free energies of new (possibly unsampled) states ``u_ln`` (Shirts & Chodera eq. 14).

        .. math:: f_l = -\log \sum_n e^{-u_l(x_n)} / \sum_k N_k e^{f_k - u_k(x_n)}

        Args:
            u_ln: ``(L, N)`` reduced potentials of every sample in the new states.

        Returns:
            ``(Delta_f, dDelta_f)``, ``(L, L)``: ``f_j - f_i`` among the new states and
            the standard error from the augmented covariance (pymbar
            ``compute_perturbed_free_energies``).
        """
        u_ln = self._check_extra(u_ln, "u_ln")
        log_w, f_l = self._log_weights(u_ln)
        theta = self._augmented_theta(log_w)
        k = self.f_k.shape[0]
        theta_l = theta[k:, k:]
        return f_l[None, :] - f_l[:, None], _error_of_differences(theta_l)

    def expectations(self, a_n, u_ln=None):
        r"""Equilibrium averages ``<A>_l`` and their standard errors (Shirts & Chodera eq. 15).

        .. math:: \langle A\rangle_l = \sum_n W_{nl} A(x_n)

        The uncertainty is the delta method on the augmented covariance, exactly as pymbar
        ``compute_expectations(output="averages")``: with ``A`` shifted positive,
        ``var <A>_l = <A>_l^2 (Theta_AA + Theta_ll - 2 Theta_Al)``.

        Args:
            a_n: ``(N,)`` observable at every sample.
            u_ln: ``(L, N)`` states to average in (default: the K sampled states).

        Returns:
            ``(mean (L,), std_err (L,))``.
        """
        a_n = jnp.asarray(a_n, dtype=self.f_k.dtype)
        n = self.log_denominator_n.shape[0]
        if a_n.shape != (n,):
            raise ValueError(f"a_n must have shape ({n},), got {a_n.shape}")
        if not bool(jnp.all(jnp.isfinite(a_n))):
            raise ValueError("a_n contains NaN or inf values")
        u_ln = self._u_kn_device() if u_ln is None else self._check_extra(u_ln, "u_ln")
        log_w_l, _ = self._log_weights(u_ln)
        # pymbar's positivity shift: A' = A - (min A - |4 eps min A|) > 0.
        a_min = jnp.min(a_n)
        shift = a_min - jnp.abs(4.0 * jnp.finfo(a_n.dtype).eps * a_min)
        log_a = jnp.log(a_n - shift)
        log_w_a = log_a[None, :] + log_w_l
        f_a = -logsumexp(log_w_a, axis=1)
        log_w_a = log_w_a + f_a[:, None]
        mean_shifted = jnp.exp(-f_a)
        theta = self._augmented_theta(jnp.concatenate([log_w_a, log_w_l], axis=0))
        k, nl = self.f_k.shape[0], u_ln.shape[0]
        ia = k + jnp.arange(nl)
        il = k + nl + jnp.arange(nl)
        var = mean_shifted**2 * (theta[ia, ia] + theta[il, il] - theta[ia, il] - theta[il, ia])
        return mean_shifted + shift, jnp.sqrt(jnp.maximum(var, 0.0))

    def pmf(self, x_n, bin_edges, u_n=None, reference_bin=None):
        r"""1-D potential of mean force from histogram bins (Shirts & Chodera 2008, Sec. V).

        Each bin :math:`i` is a perturbed state whose weight is the target's restricted
        to the bin, so

        .. math:: \mathrm{PMF}_i = -\log \frac{\sum_{n\in i} e^{-u(x_n)} /
                  \sum_k N_k e^{f_k - u_k(x_n)}}{\Delta x_i} - \mathrm{PMF}_{\mathrm{ref}}

        (a density, so that it converges to the PMF as the bins shrink), with standard
        errors of the difference to the reference bin from the augmented covariance.

        Args:
            x_n: ``(N,)`` the collective variable of every sample.
            bin_edges: ``(B+1,)`` increasing bin edges.
            u_n: ``(N,)`` reduced potential of the target state (default: state 0).
            reference_bin: bin whose PMF is zero (default: the lowest-PMF bin).

        Returns:
            ``(bin_centers (B,), pmf (B,), std_err (B,))``; empty bins get ``inf``/``nan``.
        """
        dtype = self.f_k.dtype
        x_n = jnp.asarray(x_n, dtype=dtype)
        edges = np.asarray(bin_edges, dtype=np.float64)
        n = self.log_denominator_n.shape[0]
        if x_n.shape != (n,):
            raise ValueError(f"x_n must have shape ({n},), got {x_n.shape}")
        if edges.ndim != 1 or edges.shape[0] < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError("bin_edges must be a 1-D increasing array with at least 2 edges")
        u_n = self._u_kn_device()[0] if u_n is None else self._check_extra(u_n[None, :], "u_n")[0]
        idx = jnp.searchsorted(jnp.asarray(edges, dtype), x_n, side="right") - 1
        n_bins = edges.shape[0] - 1
        in_bin = idx[None, :] == jnp.arange(n_bins, dtype=idx.dtype)[:, None]
        a = jnp.where(in_bin, -u_n[None, :] - self.log_denominator_n[None, :], -jnp.inf)
        occupied = jnp.any(in_bin, axis=1)
        f_b = -logsumexp(a, axis=1)
        log_w = jnp.where(occupied[:, None], a + jnp.where(occupied, f_b, 0.0)[:, None], -jnp.inf)
        theta = self._augmented_theta(log_w)[-n_bins:, -n_bins:]
        pmf = f_b + jnp.log(jnp.asarray(np.diff(edges), dtype))
        pmf = jnp.where(occupied, pmf, jnp.inf)
        ref = int(jnp.argmin(pmf)) if reference_bin is None else int(reference_bin)
        err = _error_of_differences(theta)[ref]
        centers = jnp.asarray(0.5 * (edges[1:] + edges[:-1]), dtype)
        return centers, pmf - pmf[ref], jnp.where(occupied, err, jnp.nan)

    def _check_extra(self, u_ln, name):
        u_ln = jnp.asarray(u_ln, dtype=self.f_k.dtype)
        n = self.log_denominator_n.shape[0]
        if u_ln.ndim == 1:
            u_ln = u_ln[None, :]
        if u_ln.ndim != 2 or u_ln.shape[1] != n:
            raise ValueError(f"{name} must have shape (L, {n}), got {u_ln.shape}")
        if not bool(jnp.all(jnp.isfinite(u_ln))):
            raise ValueError(f"{name} contains NaN or inf values")
        return u_ln


@jax.jit
def _cross_gram(u_kn, f_k, log_denominator_n, w_extra):
    """``W_extra^T W`` (M, K)."""
    w = jnp.exp(f_k[:, None] - u_kn - log_denominator_n[None, :])
    return w_extra @ w.T


def _subsample_size(n_samples: int, k_sampled: int, n_subsample: int) -> int:
    """Samples per state in the subsample phase.

    Each exact Newton iteration on the subsample builds a ``(K, K)`` Gram matrix at cost
    ``K^2 * K m``; the full-data phase needs one at cost ``K^2 N`` (for the covariance) and
    otherwise only matrix-vector products. With ~8 subsample iterations the subsample phase
    stays below the final Gram when ``8 K m <= N``, i.e. ``m <= N / (8 K)``: at large K and
    few samples per state (K = 500, N_k = 200) the subsample shrinks instead of the phase
    being skipped, which would rebuild the full Gram every iteration.
    """
    return int(min(n_subsample, max(8, n_samples // (8 * max(k_sampled, 1)))))


def _subsample_indices(n_k: np.ndarray, n_per_state: int):
    """Evenly spaced indices, up to ``n_per_state`` per state, and their weights N_k/N_k_sub."""
    starts = np.concatenate([[0], np.cumsum(n_k)[:-1]])
    idx, omega = [], []
    for start, count in zip(starts, n_k, strict=False):
        if count == 0:
            continue
        m = min(int(count), n_per_state)
        idx.append(start + np.floor(np.arange(m) * (count / m)).astype(np.int64))
        omega.append(np.full(m, count / m))
    return np.concatenate(idx), np.concatenate(omega)


def _bucket(n_samples: int) -> int:
    """Padded sample count of the JAX path: ``_BUCKET_MIN`` or more, then 8 buckets per
    octave (padding below 12.5 %), so that a new N recompiles only when it leaves its
    bucket."""
    if n_samples <= _BUCKET_MIN:
        return _BUCKET_MIN
    step = (1 << (n_samples.bit_length() - 1)) // 8
    return -(-n_samples // step) * step


def _tolerances(dtype):
    """``(newton_step_tol_exact, newton_step_tol_preconditioned, gradient_tol)`` for
    ``dtype``: float64 keeps the fixed values; lower precisions scale with ``eps``
    (the step can be resolved to ~``eps * max|f|`` and the relative gradient to
    ~``eps * log N``, so 30 eps and 1000 eps leave headroom)."""
    eps = float(np.finfo(dtype).eps)
    return max(1e-10, 30 * eps), max(1e-8, 30 * eps), max(_GTOL_ACCEPT, 1e3 * eps)


def mbar(
    u_kn: Float[Array, "K N"],
    N_k,  # noqa: N803  (pymbar's name, part of the contract)
    *,
    f_k_init=None,
    tol: float = 1e-12,
    max_iterations: int = 200,
    n_subsample: int = 64,
) -> MBAR:
    r"""Solve MBAR (Shirts & Chodera 2008, JCP 129, 124105) for the free energies of K states.

    .. math:: f_i = -\log \sum_{n=1}^{N} \frac{e^{-u_i(x_n)}}{\sum_k N_k e^{f_k - u_k(x_n)}}

    solved as the minimiser of the convex MBAR objective (see the module docstring), with
    the asymptotic covariance of App. D (pymbar's ``svd-ew``). Small problems
    (``K * N <= _NUMPY_MAX_ELEMENTS``) are solved in NumPy/SciPy (log space, nothing to
    compile); larger ones by the jitted JAX solver, with N padded to a shape bucket so
    that a new sample count recompiles nothing inside its bucket. Both start from a
    log-space solve that descends from any ``f`` (Newton with a self-consistent fallback),
    so a large free-energy difference is never mistaken for missing overlap. States
    with ``N_k = 0`` are allowed (their free energies are perturbed estimates, eq. 14);
    states with no overlap (the overlap matrix at the solution has a second eigenvalue
    of 1) are refused.

    Args:
        u_kn: ``(K, N)`` reduced potentials ``u_k(x_n)`` of all samples in all states,
            samples ordered by the state they were drawn from (as in pymbar). float64 or
            float32 (the JAX path then computes in float32: the exponents are formed as
            differences within each sample's column, so a large common offset costs no
            precision, and the tolerances scale with the precision).
            An ``np.memmap``, a ``.npy`` path or a callable yielding ``(K, B)`` column
            blocks is solved out of core by :func:`mbar_out_of_core` instead (only
            ``f_k_init`` is passed on; call it directly for its options).
        N_k: ``(K,)`` samples drawn from each state (non-negative, summing to N).
        f_k_init: optional initial guess ``(K,)``.
        tol: convergence tolerance on the largest Newton step of the JAX path (kT,
            relative to ``max|f|`` when that exceeds 1); raised to ``30 eps`` of the
            dtype.
        max_iterations: Newton iterations per phase.
        n_subsample: largest number of samples per state in the first (subsample) phase
            of the JAX path, which uses ``m = min(n_subsample, max(8, N / (8 K)))`` per
            state; the full-data phase then uses its Hessian as a preconditioner when the
            data hold more than ``4 m`` per state.

    Returns:
        An :class:`MBAR` with ``f_k``, ``df_k``, ``theta``, overlap diagnostics and methods
        ``expectations``, ``perturbed_free_energies``, ``pmf``,
        ``free_energy_differences``.

    Raises:
        ValueError: NaN/inf in ``u_kn``; wrong shapes; ``N_k`` negative or not summing to
            N; states that do not overlap (the overlap matrix has a second eigenvalue 1).
        RuntimeError: when the solver does not converge.
    """
    from ._mbar_stream import is_out_of_core_input, mbar_out_of_core

    if is_out_of_core_input(u_kn):  # memmap, .npy path or block callable: streamed
        return mbar_out_of_core(u_kn, N_k, f_k_init=f_k_init)
    u_kn = check_u_kn(u_kn)
    n_states, n_samples = u_kn.shape
    n_k_np = check_n_k(N_k, n_states, n_samples)
    in_dtype = np.dtype(u_kn.dtype)
    if not np.issubdtype(in_dtype, np.floating):
        in_dtype = np.dtype(jnp.result_type(float))
    dtype = np.dtype(jax.dtypes.canonicalize_dtype(in_dtype))
    if f_k_init is None:
        f_init = np.zeros(n_states)
    else:
        f_init = np.asarray(f_k_init, np.float64)
        if f_init.shape != (n_states,):
            raise ValueError(f"f_k_init must have shape ({n_states},), got {f_init.shape}")
        if not np.all(np.isfinite(f_init)):
            raise ValueError("f_k_init contains NaN or inf values")
    if n_states * n_samples <= _NUMPY_MAX_ELEMENTS:
        return _mbar_numpy(u_kn, n_k_np, f_init, dtype, max_iterations)
    return _mbar_jax(u_kn, n_k_np, f_init, dtype, tol, max_iterations, n_subsample)


def _check_solution(eig, wtw, n_k_np, gnorm, gtol, n_iter):
    """The overlap verdict (from the overlap matrix at the solution only), then the
    convergence check."""
    if np.sum(n_k_np > 0) > 1 and 1.0 - eig[1] < _MIN_OVERLAP_GAP:
        sampled = np.flatnonzero(n_k_np > 0)
        o = np.asarray(wtw) * n_k_np[None, :]
        _raise_disconnected(o[np.ix_(sampled, sampled)], sampled)
    if not gnorm < gtol:
        raise RuntimeError(
            f"MBAR did not converge: max relative gradient {gnorm:.3g} after {n_iter} iterations"
        )


def _mbar_numpy(u_kn, n_k_np, f_init, dtype, max_iterations):
    u = np.asarray(u_kn)
    if u.size <= _SINGLE_THREAD_MAX_ELEMENTS:
        # Small BLAS/LAPACK calls (K x K eigh, thin Gram products) are faster on one
        # thread: a second one only adds hand-off latency, which grows without bound on
        # a loaded machine. The limit is scoped to this call and restored after it.
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            out = _np_mbar(u, n_k_np, f_init, max_iterations)
    else:
        out = _np_mbar(u, n_k_np, f_init, max_iterations)
    f, theta, wtw, eig, log_den, n_iter, gnorm = out
    _check_solution(eig, wtw, n_k_np, gnorm, _GTOL_ACCEPT, n_iter)
    f = (f - f[0]).astype(dtype)
    return MBAR(u_kn, n_k_np, f, theta, wtw, eig, log_den, n_iter)


def _mbar_jax(u_kn, n_k_np, f_init, dtype, tol, max_iterations, n_subsample):
    n_states, n_samples = u_kn.shape
    tol_exact, tol_pre, gtol = _tolerances(dtype)
    tol_exact = max(min(tol_exact, math.sqrt(tol)), 30 * float(np.finfo(dtype).eps))
    n_pad = _bucket(n_samples)
    n_k = jax.device_put(n_k_np.astype(dtype))
    sampled = n_k_np > 0
    ref = int(np.flatnonzero(sampled)[0])
    k_sampled = int(np.sum(sampled))
    unsampled = tuple(int(k) for k in np.flatnonzero(~sampled))
    own = np.full(n_pad, ref)
    own[:n_samples] = np.repeat(np.arange(n_states), n_k_np)
    own_dev = jax.device_put(own)
    valid = np.zeros(n_pad, bool)
    valid[:n_samples] = True
    valid_dev = jax.device_put(valid)
    omega_dev = jax.device_put(valid.astype(dtype))
    dummy = jnp.zeros((n_states, n_states), dtype)
    n_iter = 0

    def padded():
        """A fresh (K, n_pad) host copy of u_kn in ``dtype`` (zeros in the padding)."""
        buf = np.zeros((n_states, n_pad), dtype)
        buf[:, :n_samples] = np.asarray(u_kn)
        return buf

    f = f_init.copy()
    pre = None
    if k_sampled > 1:
        # Phase 1 (NumPy, float64, log space): a stratified subsample, solved from any
        # start; its f is the full solve's starting point and its Hessian the preconditioner.
        m_sub = _subsample_size(n_samples, k_sampled, n_subsample)
        idx, omega = _subsample_indices(n_k_np, m_sub)
        u_sub = np.asarray(np.asarray(u_kn)[:, idx], np.float64)
        f_s, _, p_sub, it, _ = _np_solve(
            u_sub, n_k_np, omega, f, gtol=1e-8, max_iterations=max_iterations
        )
        n_iter += it
        f[sampled] = f_s
        if n_samples > 4 * m_sub * k_sampled:
            h = np.zeros((n_states, n_states))
            pw = p_sub * omega[None, :]
            h[np.ix_(sampled, sampled)] = np.diag(pw.sum(axis=1)) - pw @ p_sub.T
            pre = _factor_jit(jax.device_put(h.astype(dtype)), n_k)
        else:
            pre = "exact"

    # Phase 2 (JAX, on the padded full data). Leaving the trust region only means
    # re-preconditioning at the new point; each round moves f by ~_TRUST_KT and lowers F.
    for _ in range(_MAX_REPRECONDITION):
        q, f0, m_shift = _device_precondition(
            padded(), jax.device_put(f.astype(dtype)), n_k, own_dev, valid_dev, unsampled
        )
        if pre is None:
            x = jnp.zeros(n_states, dtype)
            break
        if isinstance(pre, str):
            st = _newton_loop(
                q, n_k, omega_dev, jnp.zeros(n_states, dtype), dummy, dummy, True, ref,
                tol_exact, exact=True, max_iter=max_iterations,
            )  # fmt: skip
        else:
            h_reg, chol, ok = pre
            st = _newton_loop(
                q, n_k, omega_dev, jnp.zeros(n_states, dtype), chol, h_reg, ok, ref,
                tol_pre, exact=False, max_iter=max_iterations,
            )  # fmt: skip
        n_iter += int(st.it)
        x = st.x
        if int(st.status) == 2:
            f = np.asarray(f0 + x, np.float64)
            del q
            continue
        break
    else:
        raise RuntimeError(
            f"MBAR did not converge: still moving after {_MAX_REPRECONDITION} "
            f"re-preconditionings of {_TRUST_KT:g} kT"
        )

    x, s, grad, wtw, theta, eig = _finish(q, n_k, omega_dev, x, ref, polish=pre is not None)
    del q
    eig = np.asarray(eig, np.float64)
    if dtype != np.float64:  # the K x K covariance in float64 (it subtracts near-equal terms)
        wtw64 = np.asarray(wtw, np.float64)
        theta = _np_theta_svd_ew(wtw64, n_k_np.astype(np.float64))
        eig = _np_overlap_eigenvalues(wtw64, n_k_np.astype(np.float64))
    gnorm = float(np.max(np.abs(np.asarray(grad)) / np.maximum(n_k_np, 1)))
    _check_solution(eig, wtw, n_k_np, gnorm if pre is not None else 0.0, gtol, n_iter)
    f = np.asarray(f0) + np.asarray(x)
    log_den = np.asarray(m_shift)[:n_samples] + np.log(np.asarray(s)[:n_samples])
    f = (f - f[0]).astype(dtype)
    return MBAR(u_kn, n_k_np, f, theta, wtw, eig, log_den, n_iter)


def _device_precondition(u_host, f, n_k, own, valid, unsampled):
    """``Q``, ``f0``, ``m`` on the device; the device copy of ``u_host`` is donated to Q."""
    for use_max in (False, True):
        u_dev = jax.device_put(u_host)  # a fresh copy: overwritten by Q
        q, f0, m, ok = _precondition_donate(u_dev, f, n_k, own, valid, unsampled, use_max)
        if bool(ok):
            return q, f0, m
        del q
    raise ValueError("MBAR: reduced potentials out of floating-point range at the initial guess")


def _raise_disconnected(o_sampled, state_ids):
    """Name the groups of sampled states (``state_ids``) that no sample connects."""
    from scipy.sparse.csgraph import connected_components

    n_comp, labels = connected_components(np.abs(o_sampled) > 1e-12, directed=False)
    groups = [np.asarray(state_ids)[labels == c].tolist() for c in range(n_comp)]
    raise ValueError(
        "MBAR: the states do not overlap (second eigenvalue of the overlap matrix is 1 to "
        f"within {_MIN_OVERLAP_GAP:g}); no sample connects these groups of sampled states: "
        f"{groups}. Add intermediate states or more samples."
    )
