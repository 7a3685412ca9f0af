r"""Multi-fidelity Gaussian processes over a finite candidate library, in JAX.

Two models, with one interface (``fit``, ``predict``, ``cross_cov``, ``noise_var``):
:class:`AutoregressiveGP`, Kennedy & O'Hagan's (2000) autoregressive co-kriging
:math:`f_l = \rho_{l-1} f_{l-1} + \delta_l` with its own GP per level (the multi-fidelity
search's default), and :class:`MultiFidelityGP`, below.

:class:`MultiFidelityGP` kernel (intrinsic coregionalisation / "fidelity as input" product kernel, Kennedy &
O'Hagan 2000; Álvarez, Rosasco & Lawrence 2012):

.. math:: k\big((x,l),(x',l')\big) = B_{ll'}\,\exp\!\Big(-\tfrac12\sum_j (x_j-x'_j)^2/\ell_j^2\Big),
          \qquad B = LL^\top,

with :math:`L` lower triangular (positive diagonal), one ARD length scale per feature and a
Gaussian noise variance :math:`\sigma_l^2` per fidelity. Hyperparameters maximise the log
marginal likelihood (Rasmussen & Williams 2006, eq. 2.30) with optax Adam. Targets are
standardised with the observed mean and spread; features with the library's.

Observations are padded to a bucket of fixed size and masked (padded rows get a unit
diagonal and zero target, so they add nothing to the likelihood) so that one compiled
program serves many loop iterations.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = [
    "AR_PRIOR",
    "ARParams",
    "AutoregressiveGP",
    "GPParams",
    "MultiFidelityGP",
    "ar_log_marginal_likelihood",
    "ar_posterior_cov",
    "init_ar_params",
    "init_params",
    "log_marginal_likelihood",
    "posterior",
]

_JITTER = 1e-6


class GPParams(NamedTuple):
    """Unconstrained hyperparameters: ``log_ell (d,)``, ``chol_raw (L, L)``, ``log_noise (L,)``."""

    log_ell: jax.Array
    chol_raw: jax.Array
    log_noise: jax.Array


def init_params(d: int, n_fidelities: int, *, correlation: float = 0.9) -> GPParams:
    """Unit length scales, unit variances, inter-fidelity correlation ``correlation``."""
    c = np.full((n_fidelities, n_fidelities), correlation) + (1 - correlation) * np.eye(
        n_fidelities
    )
    chol = np.linalg.cholesky(c)
    raw = np.tril(chol, -1) + np.diag(np.log(np.expm1(np.diag(chol))))
    return GPParams(
        jnp.zeros(d) + np.log(np.sqrt(d)), jnp.asarray(raw), jnp.full(n_fidelities, np.log(1e-2))
    )


def _coreg(p: GPParams) -> jax.Array:
    lo = jnp.tril(p.chol_raw, -1) + jnp.diag(jax.nn.softplus(jnp.diag(p.chol_raw)) + 1e-3)
    return lo @ lo.T


def _noise(p: GPParams) -> jax.Array:
    return jnp.exp(jnp.clip(p.log_noise, np.log(1e-6), np.log(10.0)))


def _kernel(p: GPParams, xa, la, xb, lb):
    ell = jnp.exp(jnp.clip(p.log_ell, -3.0, 5.0))
    d2 = jnp.sum(((xa[:, None, :] - xb[None, :, :]) / ell[None, None, :]) ** 2, axis=-1)
    b = _coreg(p)
    return b[la[:, None], lb[None, :]] * jnp.exp(-0.5 * d2)


def _gram(p, x, lvl, mask):
    k = _kernel(p, x, lvl, x, lvl) + jnp.diag(_noise(p)[lvl] + _JITTER)
    mm = mask[:, None] * mask[None, :]
    return k * mm + jnp.diag(1.0 - mask)


def log_marginal_likelihood(p: GPParams, x, lvl, y, mask) -> jax.Array:
    r""":math:`\log p(y) = -\tfrac12 y^\top K^{-1}y - \tfrac12\log|K| - \tfrac n2\log 2\pi`
    over the unmasked rows (``x (n, d)``, ``lvl (n,)`` int, ``y (n,)``, ``mask (n,)``)."""
    k = _gram(p, x, lvl, mask)
    chol = jnp.linalg.cholesky(k)
    a = jax.scipy.linalg.cho_solve((chol, True), y * mask)
    return (
        -0.5 * jnp.dot(y * mask, a)
        - jnp.sum(jnp.log(jnp.diag(chol)))
        - 0.5 * jnp.sum(mask) * jnp.log(2 * jnp.pi)
    )


def _prior(p: GPParams) -> jax.Array:
    # weak log-normal priors keep hyperparameters away from degenerate optima
    return (
        -0.5 * jnp.sum((p.log_ell - 1.0) ** 2) / 2.0**2
        - 0.5 * jnp.sum((p.log_noise - np.log(1e-2)) ** 2) / 3.0**2
    )


_OPT = optax.adam(0.05)


@functools.partial(jax.jit, static_argnums=(0, 1, 7))
def _adam(lml_fn, prior_fn, p, x, lvl, y, mask, n_steps):
    """``n_steps`` Adam steps on ``-(lml_fn(p, x, lvl, y, mask) + prior_fn(p))``."""

    def loss(q):
        return -(lml_fn(q, x, lvl, y, mask) + prior_fn(q))

    def step(carry, _):
        q, s = carry
        g = jax.grad(loss)(q)
        # optax 0.2.8 (adam's bias correction) computes float ** int32 step count
        with jax.numpy_dtype_promotion("standard"):
            upd, s2 = _OPT.update(g, s, q)
        return (optax.apply_updates(q, upd), s2), None

    (p, _), _ = jax.lax.scan(step, (p, _OPT.init(p)), None, length=n_steps)
    return p


def _fit(p: GPParams, x, lvl, y, mask, n_steps):
    return _adam(log_marginal_likelihood, _prior, p, x, lvl, y, mask, n_steps)


@jax.jit
def posterior(p: GPParams, x, lvl, y, mask, xs, ls):
    r"""Posterior mean and variance of the latent :math:`f(x_*, l_*)` (R&W eqs. 2.25-2.26).

    Shapes: ``xs (m, d)``, ``ls (m,)``; returns ``(mean (m,), var (m,))`` in standardised units.
    """
    k = _gram(p, x, lvl, mask)
    chol = jnp.linalg.cholesky(k)
    ks = _kernel(p, x, lvl, xs, ls) * mask[:, None]
    a = jax.scipy.linalg.cho_solve((chol, True), y * mask)
    v = jax.scipy.linalg.solve_triangular(chol, ks, lower=True)
    mean = ks.T @ a
    prior_var = _coreg(p)[ls, ls]
    var = jnp.maximum(prior_var - jnp.sum(v**2, axis=0), 1e-12)
    return mean, var


@jax.jit
def cross_posterior(p: GPParams, x, lvl, y, mask, xs, la, lb):
    """Posterior covariance of :math:`f(x_*, l_a)` and :math:`f(x_*, l_b)` at each ``xs`` row."""
    k = _gram(p, x, lvl, mask)
    chol = jnp.linalg.cholesky(k)
    ka = _kernel(p, x, lvl, xs, la) * mask[:, None]
    kb = _kernel(p, x, lvl, xs, lb) * mask[:, None]
    va = jax.scipy.linalg.solve_triangular(chol, ka, lower=True)
    vb = jax.scipy.linalg.solve_triangular(chol, kb, lower=True)
    return _coreg(p)[la, lb] - jnp.sum(va * vb, axis=0)


def _bucket(n: int, size: int = 32) -> int:
    return max(size, -(-n // size) * size)


class MultiFidelityGP:
    """Fit/predict wrapper holding standardisation, padding and warm-started hyperparameters.

    Args:
        features: ``(n, d)`` candidate library (standardised here by its own mean/std).
        n_fidelities: number of fidelities, ordered cheap to expensive.
        n_steps: Adam steps for the first fit; ``n_warm`` for later (warm-started) fits.
    """

    _fit_fn = staticmethod(_fit)

    def __init__(self, features, n_fidelities: int, *, n_steps: int = 200, n_warm: int = 30):
        f = np.asarray(features, dtype=float)
        if f.ndim != 2:
            raise ValueError(f"features must be (n, d), got shape {f.shape}")
        if n_fidelities < 1:
            raise ValueError(f"n_fidelities must be >= 1, got {n_fidelities}")
        sd = f.std(0)
        self.x = jnp.asarray((f - f.mean(0)) / np.where(sd > 0, sd, 1.0))
        self.n_fidelities = n_fidelities
        self.params = init_params(f.shape[1], n_fidelities)
        self.n_steps, self.n_warm = n_steps, n_warm
        self._fitted = False
        self._data = None

    def fit(self, idx, lvl, y) -> MultiFidelityGP:
        """Fit to observations ``y`` of candidates ``idx`` at fidelities ``lvl``."""
        idx, lvl, y = (np.asarray(a) for a in (idx, lvl, y))
        n = len(y)
        if n == 0:
            raise ValueError("fit needs at least one observation")
        if not (idx.shape == lvl.shape == y.shape):
            raise ValueError(f"idx, lvl, y shapes differ: {idx.shape}, {lvl.shape}, {y.shape}")
        if lvl.min() < 0 or lvl.max() >= self.n_fidelities:
            raise ValueError(f"fidelity indices must be in [0, {self.n_fidelities})")
        self.mu = float(y.mean())
        self.sd = float(y.std()) if n > 1 and y.std() > 0 else 1.0
        m = _bucket(n)
        pad = m - n
        xi = np.concatenate([idx, np.zeros(pad, int)])
        data = (
            self.x[xi],
            jnp.asarray(np.concatenate([lvl, np.zeros(pad, int)])),
            jnp.asarray(np.concatenate([(y - self.mu) / self.sd, np.zeros(pad)])),
            jnp.asarray(np.concatenate([np.ones(n), np.zeros(pad)])),
        )
        steps = self.n_warm if self._fitted else self.n_steps
        self.params = type(self)._fit_fn(self.params, *data, steps)
        self._fitted = True
        self._data = data
        return self

    def predict(self, level: int, idx=None):
        """Posterior mean and standard deviation (original units) at fidelity ``level``."""
        xs = self.x if idx is None else self.x[np.asarray(idx)]
        ls = jnp.full(xs.shape[0], level, dtype=int)
        mean, var = posterior(self.params, *self._data, xs, ls)
        return np.asarray(mean) * self.sd + self.mu, np.sqrt(np.asarray(var)) * self.sd

    def cross_cov(self, la: int, lb: int, idx=None):
        """Posterior covariance of the two fidelities at the same candidate (original units)."""
        xs = self.x if idx is None else self.x[np.asarray(idx)]
        n = xs.shape[0]
        c = cross_posterior(
            self.params,
            *self._data,
            xs,
            jnp.full(n, la, dtype=int),
            jnp.full(n, lb, dtype=int),
        )
        return np.asarray(c) * self.sd**2

    def noise_var(self):
        """Per-fidelity noise variances in original units."""
        return np.asarray(_noise(self.params)) * self.sd**2


# --------------------------------------------------------------------------------------
# Kennedy-O'Hagan autoregressive co-kriging
# --------------------------------------------------------------------------------------


class ARParams(NamedTuple):
    r"""Unconstrained hyperparameters of :class:`AutoregressiveGP` for ``L`` fidelities.

    ``log_ell (L, d)`` ARD length scales of :math:`f_0, \delta_1, \ldots, \delta_{L-1}`;
    ``log_var (L,)`` their variances; ``rho (L-1,)`` the scale factors; ``beta (L,)`` the
    constant means of :math:`f_0, \delta_1, \ldots`; ``log_noise (L,)`` per-fidelity noise.
    """

    log_ell: jax.Array
    log_var: jax.Array
    rho: jax.Array
    beta: jax.Array
    log_noise: jax.Array


# A-priori hyper-priors of the autoregressive model (standardised units; not fitted to any
# search's answer): length scales as the coregionalised GP (log ell ~ N(1, 2^2)); the signal
# f_0 has unit prior variance (log var_0 ~ N(0, 1)); each discrepancy is a priori a tenth of
# the signal's variance (log var_l ~ N(log 0.1, 1.5^2)), Kennedy & O'Hagan's premise that the
# cheaper code explains most of the variation; rho ~ N(1, 1) (the cheap code on the same
# scale); noise log-normal around 1e-2 with sd 3 as the coregionalised GP; beta ~ N(0, 2^2).
AR_PRIOR = {
    "log_ell": (1.0, 2.0),
    "log_var_0": (0.0, 1.0),
    "log_var_delta": (float(np.log(0.1)), 1.5),
    "rho": (1.0, 1.0),
    "log_noise": (float(np.log(1e-2)), 3.0),
    "beta": (0.0, 2.0),
}


def init_ar_params(d: int, n_fidelities: int) -> ARParams:
    """Prior-mean start: length scales ``sqrt(d)``, unit signal and 0.1 discrepancy variance,
    ``rho = 1``, zero means, noise ``1e-2``."""
    lv = np.full(n_fidelities, np.log(0.1))
    lv[0] = 0.0
    return ARParams(
        jnp.full((n_fidelities, d), np.log(np.sqrt(d))),
        jnp.asarray(lv),
        jnp.ones(n_fidelities - 1),
        jnp.zeros(n_fidelities),
        jnp.full(n_fidelities, np.log(1e-2)),
    )


def _ar_coef(p: ARParams) -> jax.Array:
    r""":math:`C_{aj} = \prod_{k=j}^{a-1}\rho_k` for :math:`j \le a`, else 0, so that
    :math:`f_a = \sum_j C_{aj}\,\delta_j` (with :math:`\delta_0 = f_0`); ``(L, L)``."""
    n_l = p.log_var.shape[0]
    # cumulative log-free product: C[a, j] = prod rho[j:a]
    rho = jnp.concatenate([p.rho, jnp.ones(1)])
    rows = []
    for a in range(n_l):
        row = []
        for j in range(n_l):
            row.append(jnp.prod(rho[j:a]) if j <= a else jnp.zeros(()))
        rows.append(jnp.stack(row))
    return jnp.stack(rows)


def _ar_kernel(p: ARParams, xa, la, xb, lb):
    r""":math:`\mathrm{cov}[f_a(x), f_b(x')] = \sum_j C_{aj}C_{bj}\,\sigma_j^2
    \exp(-\tfrac12\sum_i (x_i-x'_i)^2/\ell_{ji}^2)`."""
    ell = jnp.exp(jnp.clip(p.log_ell, -3.0, 5.0))  # (L, d)
    var = jnp.exp(jnp.clip(p.log_var, -12.0, 5.0))
    d2 = jnp.sum(
        ((xa[None, :, None, :] - xb[None, None, :, :]) / ell[:, None, None, :]) ** 2, axis=-1
    )  # (L, na, nb)
    c = _ar_coef(p)
    w = c[la][:, None, :] * c[lb][None, :, :]  # (na, nb, L)
    return jnp.einsum("abj,jab->ab", w * var[None, None, :], jnp.exp(-0.5 * d2))


def _ar_mean(p: ARParams, lvl) -> jax.Array:
    return (_ar_coef(p) @ p.beta)[lvl]


def _ar_gram(p, x, lvl, mask):
    k = _ar_kernel(p, x, lvl, x, lvl) + jnp.diag(_noise(p)[lvl] + _JITTER)
    mm = mask[:, None] * mask[None, :]
    return k * mm + jnp.diag(1.0 - mask)


def ar_log_marginal_likelihood(p: ARParams, x, lvl, y, mask) -> jax.Array:
    r"""Joint log marginal likelihood of all fidelities under the autoregressive model,
    :math:`\log\mathcal N(y;\,m,\,K + \mathrm{diag}\,\sigma^2_{l_i})` over the unmasked rows
    (shapes as :func:`log_marginal_likelihood`)."""
    k = _ar_gram(p, x, lvl, mask)
    chol = jnp.linalg.cholesky(k)
    r = (y - _ar_mean(p, lvl)) * mask
    a = jax.scipy.linalg.cho_solve((chol, True), r)
    return (
        -0.5 * jnp.dot(r, a)
        - jnp.sum(jnp.log(jnp.diag(chol)))
        - 0.5 * jnp.sum(mask) * jnp.log(2 * jnp.pi)
    )


def _ar_prior(p: ARParams) -> jax.Array:
    def nlp(v, mu_sd):
        mu, sd = mu_sd
        return -0.5 * jnp.sum((v - mu) ** 2) / sd**2

    return (
        nlp(p.log_ell, AR_PRIOR["log_ell"])
        + nlp(p.log_var[0], AR_PRIOR["log_var_0"])
        + nlp(p.log_var[1:], AR_PRIOR["log_var_delta"])
        + nlp(p.rho, AR_PRIOR["rho"])
        + nlp(p.log_noise, AR_PRIOR["log_noise"])
        + nlp(p.beta, AR_PRIOR["beta"])
    )


def _ar_fit(p: ARParams, x, lvl, y, mask, n_steps):
    return _adam(ar_log_marginal_likelihood, _ar_prior, p, x, lvl, y, mask, n_steps)


@jax.jit
def ar_posterior_cov(p: ARParams, x, lvl, y, mask, xs, la, lb):
    r"""Posterior means of :math:`f(x_*, l_a)`, :math:`f(x_*, l_b)` and their covariance at
    each ``xs`` row (R&W eqs. 2.25-2.26 with the autoregressive kernel); ``(m,)`` each, in
    standardised units. ``la == lb`` gives the variance."""
    k = _ar_gram(p, x, lvl, mask)
    chol = jnp.linalg.cholesky(k)
    a = jax.scipy.linalg.cho_solve((chol, True), (y - _ar_mean(p, lvl)) * mask)
    ka = _ar_kernel(p, x, lvl, xs, la) * mask[:, None]
    kb = _ar_kernel(p, x, lvl, xs, lb) * mask[:, None]
    va = jax.scipy.linalg.solve_triangular(chol, ka, lower=True)
    vb = jax.scipy.linalg.solve_triangular(chol, kb, lower=True)
    c = _ar_coef(p)
    var = jnp.exp(jnp.clip(p.log_var, -12.0, 5.0))
    prior = jnp.sum(c[la] * c[lb] * var[None, :], axis=1)
    return (
        _ar_mean(p, la) + ka.T @ a,
        _ar_mean(p, lb) + kb.T @ a,
        prior - jnp.sum(va * vb, axis=0),
    )


class AutoregressiveGP(MultiFidelityGP):
    r"""Kennedy-O'Hagan autoregressive co-kriging over a finite candidate library.

    Model (Kennedy & O'Hagan, Biometrika 87, 1 (2000), eq. 2; Le Gratiet, 2013):

    .. math:: f_0 = \delta_0,\qquad f_l(x) = \rho_{l-1}\,f_{l-1}(x) + \delta_l(x),

    with independent GPs :math:`\delta_l \sim \mathcal{GP}(\beta_l, \sigma_l^2 k_l)`, each
    with its own ARD squared-exponential kernel :math:`k_l`, and Gaussian noise per
    fidelity. Hence :math:`\mathrm{cov}[f_a(x), f_b(x')] = \sum_j C_{aj}C_{bj}\sigma_j^2
    k_j(x,x')` with :math:`C_{aj} = \prod_{k=j}^{a-1}\rho_k`. All hyperparameters
    (length scales, variances, :math:`\rho`, means, noises) maximise the joint log marginal
    likelihood plus the a-priori log hyper-priors :data:`AR_PRIOR` (optax Adam). Targets
    are standardised with the mean and spread of all observations, features with the
    library's. Same interface as :class:`MultiFidelityGP` (``fit``, ``predict``,
    ``cross_cov``, ``noise_var``), plus ``correlation`` and ``rho``.

    Args:
        features: ``(n, d)`` candidate library.
        n_fidelities: number of fidelities, ordered cheap to expensive.
        n_steps: Adam steps for the first fit; ``n_warm`` for later (warm-started) fits.
    """

    _fit_fn = staticmethod(_ar_fit)

    def __init__(self, features, n_fidelities: int, *, n_steps: int = 300, n_warm: int = 50):
        super().__init__(features, n_fidelities, n_steps=n_steps, n_warm=n_warm)
        self.params = init_ar_params(self.x.shape[1], n_fidelities)

    def _post(self, la: int, lb: int, idx):
        xs = self.x if idx is None else self.x[np.asarray(idx)]
        n = xs.shape[0]
        return ar_posterior_cov(
            self.params,
            *self._data,
            xs,
            jnp.full(n, la, dtype=int),
            jnp.full(n, lb, dtype=int),
        )

    def predict(self, level: int, idx=None):
        """Posterior mean and standard deviation (original units) at fidelity ``level``."""
        mean, _, var = self._post(level, level, idx)
        var = np.maximum(np.asarray(var), 1e-12)
        return np.asarray(mean) * self.sd + self.mu, np.sqrt(var) * self.sd

    def cross_cov(self, la: int, lb: int, idx=None):
        """Posterior covariance of the two fidelities at the same candidate (original units)."""
        return np.asarray(self._post(la, lb, idx)[2]) * self.sd**2

    def correlation(self, la: int, lb: int, idx=None):
        r"""Posterior correlation :math:`\mathrm{corr}[f_{l_a}(x), f_{l_b}(x)\mid y]`."""
        _, _, va = self._post(la, la, idx)
        _, _, vb = self._post(lb, lb, idx)
        c = self._post(la, lb, idx)[2]
        return np.asarray(c) / np.sqrt(np.maximum(np.asarray(va) * np.asarray(vb), 1e-300))

    def rho(self):
        """Fitted scale factors ``(L-1,)`` (standardised and original units agree: one scale)."""
        return np.asarray(self.params.rho)
