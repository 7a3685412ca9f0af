r"""The closed-form Schrödinger bridge between two Gaussians (Bunne et al. 2023).

Reference process: a scaled Brownian motion :math:`dX_t = \sigma\,dB_t` on :math:`[0, 1]`.
The Schrödinger bridge from :math:`\mathcal N(\mu_0,\Sigma_0)` to :math:`\mathcal N(\mu_1,\Sigma_1)`
is the path measure closest in KL to the reference with those two end marginals. Its
static coupling is the entropic OT plan for the cost :math:`\tfrac12\|x-y\|^2` with
regularisation :math:`\sigma^2` (equivalently cost :math:`\|x-y\|^2` with
:math:`\varepsilon = 2\sigma^2`): a joint Gaussian with cross-covariance
(Janati et al. 2020; Mallasto et al. 2021; Bunne et al. 2023, Thm. 3)

.. math:: C = \tfrac12\big(\Sigma_0^{1/2} D_\sigma \Sigma_0^{-1/2} - \sigma^2 I\big),\qquad
          D_\sigma = \big(4\,\Sigma_0^{1/2}\Sigma_1\Sigma_0^{1/2} + \sigma^4 I\big)^{1/2}.

Its characterising property, which the tests check: the joint precision's off-diagonal
block is exactly :math:`-I/\sigma^2` (the plan has the Schrödinger form
:math:`e^{-\|x-y\|^2/2\sigma^2} a(x) b(y)`).

The dynamic bridge is the mixture of Brownian bridges over that plan,
:math:`X_t = (1-t)X_0 + tX_1 + \sigma\sqrt{t(1-t)}\,Z`, so

.. math:: \mu_t = (1-t)\mu_0 + t\mu_1,\qquad
          \Sigma_t = (1-t)^2\Sigma_0 + t^2\Sigma_1 + t(1-t)(C + C^\top) + \sigma^2 t(1-t) I,

and its Markovian drift (the Markovian projection :math:`\mathbb E[(X_1-X_t)/(1-t)\mid X_t]`)
is affine, :math:`b(t,x) = \dot\mu_t + A_t(x-\mu_t)` with

.. math:: A_t = S_t\,\Sigma_t^{-1},\qquad
          S_t = t\Sigma_1 - (1-t)\Sigma_0 + (1-t)C^\top - tC - \sigma^2 t I,

which is regular on the whole of :math:`[0, 1]` (the :math:`1/(1-t)` cancels). The
marginal covariance then solves the Lyapunov equation
:math:`\dot\Sigma_t = A_t\Sigma_t + \Sigma_t A_t^\top + \sigma^2 I`.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float

from thermo._checks import check_count, check_positive
from thermo._typing import Args, PRNGKey, ScalarLike
from thermo.estimators import gauss_legendre
from thermo.sde import AbstractSDE

__all__ = [
    "GaussianBridge",
    "GaussianBridgeSDE",
    "gaussian_bridge",
    "gaussian_kl",
    "sqrtm_psd",
    "entropic_cross_covariance",
    "plug_in_floor",
]


def sqrtm_psd(m: Float[Array, "d d"]) -> Float[Array, "d d"]:
    """Symmetric square root of a symmetric positive semi-definite matrix (by ``eigh``)."""
    m = 0.5 * (m + m.T)
    w, v = jnp.linalg.eigh(m)
    return (v * jnp.sqrt(jnp.clip(w, 0.0))[None, :]) @ v.T


def entropic_cross_covariance(
    cov0: Float[Array, "d d"], cov1: Float[Array, "d d"], sigma: ScalarLike
) -> Float[Array, "d d"]:
    r"""Cross-covariance :math:`C = \mathrm{Cov}(X_0, X_1)` of the Gaussian entropic OT plan.

    :math:`C = \tfrac12(\Sigma_0^{1/2} D_\sigma \Sigma_0^{-1/2} - \sigma^2 I)`,
    :math:`D_\sigma = (4\Sigma_0^{1/2}\Sigma_1\Sigma_0^{1/2} + \sigma^4 I)^{1/2}`
    (Bunne et al. 2023, Thm. 3; Janati et al. 2020), for the reference transition
    :math:`\mathcal N(y; x, \sigma^2 I)`, i.e. cost :math:`\|x-y\|^2` with
    :math:`\varepsilon = 2\sigma^2`. ``sigma -> 0`` gives the Monge map's cross-covariance.

    Evaluated without cancellation: as :math:`\Sigma_0^{1/2}\,\sigma^2 I\,\Sigma_0^{-1/2} =
    \sigma^2 I`, :math:`C = \tfrac12\Sigma_0^{1/2}(D_\sigma - \sigma^2 I)\Sigma_0^{-1/2}`, and with
    :math:`M = 4\Sigma_0^{1/2}\Sigma_1\Sigma_0^{1/2} = U\Lambda U^\top`,
    :math:`D_\sigma - \sigma^2 I = U\,\mathrm{diag}\big(\lambda/(\sqrt{\lambda + \sigma^4} +
    \sigma^2)\big)U^\top`, which keeps full relative precision at large :math:`\sigma`
    (where :math:`C \approx \Sigma_0^{1/2} M \Sigma_0^{-1/2}/(4\sigma^2)` is tiny) instead of
    subtracting two numbers near :math:`\sigma^2`.
    """
    s = jnp.asarray(sigma, dtype=cov0.dtype) ** 2
    w, v = jnp.linalg.eigh(0.5 * (cov0 + cov0.T))
    r0 = (v * jnp.sqrt(w)[None, :]) @ v.T
    r0_inv = (v / jnp.sqrt(w)[None, :]) @ v.T
    m = 4.0 * r0 @ cov1 @ r0
    lam, u = jnp.linalg.eigh(0.5 * (m + m.T))
    lam = jnp.clip(lam, 0.0)
    d_minus_s = (u * (lam / (jnp.sqrt(lam + s**2) + s))[None, :]) @ u.T
    return 0.5 * (r0 @ d_minus_s @ r0_inv)


def gaussian_kl(
    mean_p: Float[Array, " d"],
    cov_p: Float[Array, "d d"],
    mean_q: Float[Array, " d"],
    cov_q: Float[Array, "d d"],
) -> Float[Array, ""]:
    r""":math:`\mathrm{KL}(\mathcal N(m_p,\Sigma_p)\,\|\,\mathcal N(m_q,\Sigma_q))`.

    :math:`\tfrac12[\operatorname{tr}(\Sigma_q^{-1}\Sigma_p) + (m_q-m_p)^\top\Sigma_q^{-1}(m_q-m_p)
    - d + \log\det\Sigma_q - \log\det\Sigma_p]`, via Cholesky factors.
    """
    d = mean_p.shape[0]
    lq = jnp.linalg.cholesky(cov_q)
    lp = jnp.linalg.cholesky(cov_p)
    m = jax.scipy.linalg.solve_triangular(lq, lp, lower=True)
    z = jax.scipy.linalg.solve_triangular(lq, mean_q - mean_p, lower=True)
    logdet_q = 2.0 * jnp.sum(jnp.log(jnp.diag(lq)))
    logdet_p = 2.0 * jnp.sum(jnp.log(jnp.diag(lp)))
    return 0.5 * (jnp.sum(m**2) + jnp.sum(z**2) - d + logdet_q - logdet_p)


class GaussianBridge(eqx.Module):
    r"""The Schrödinger bridge between two Gaussians under the reference :math:`\sigma\,dB_t`.

    Build it with :func:`gaussian_bridge`. Time runs on :math:`[0, 1]`.

    Attributes:
        mu0, cov0: ``(d,)``, ``(d, d)`` initial law.
        mu1, cov1: ``(d,)``, ``(d, d)`` final law.
        sigma: scalar reference diffusion coefficient.
        cross_cov: ``(d, d)`` :math:`C = \mathrm{Cov}(X_0, X_1)` of the static plan.
    """

    mu0: Float[Array, " d"]
    cov0: Float[Array, "d d"]
    mu1: Float[Array, " d"]
    cov1: Float[Array, "d d"]
    sigma: Float[Array, ""]
    cross_cov: Float[Array, "d d"]

    @property
    def dim(self) -> int:
        return self.mu0.shape[0]

    def mean(self, t: ScalarLike) -> Float[Array, " d"]:
        r""":math:`\mu_t = (1-t)\mu_0 + t\mu_1`."""
        return (1.0 - t) * self.mu0 + t * self.mu1

    def cov(self, t: ScalarLike) -> Float[Array, "d d"]:
        r""":math:`\Sigma_t = (1-t)^2\Sigma_0 + t^2\Sigma_1 + t(1-t)(C+C^\top+\sigma^2 I)`."""
        eye = jnp.eye(self.dim, dtype=self.cov0.dtype)
        c = self.cross_cov
        return (
            (1.0 - t) ** 2 * self.cov0
            + t**2 * self.cov1
            + t * (1.0 - t) * (c + c.T + self.sigma**2 * eye)
        )

    def drift_matrix(self, t: ScalarLike) -> Float[Array, "d d"]:
        r"""The drift's linear part :math:`A_t = S_t\Sigma_t^{-1}` (module docstring)."""
        eye = jnp.eye(self.dim, dtype=self.cov0.dtype)
        c = self.cross_cov
        s_t = (
            t * self.cov1
            - (1.0 - t) * self.cov0
            + (1.0 - t) * c.T
            - t * c
            - self.sigma**2 * t * eye
        )
        # A = S Σ^{-1}  <=>  Σ A^T = S^T (Σ symmetric)
        return jnp.linalg.solve(self.cov(t), s_t.T).T

    def drift(self, t: ScalarLike, x: Float[Array, " d"], args: Args = None) -> Float[Array, " d"]:
        r"""Bridge drift :math:`b(t,x) = (\mu_1-\mu_0) + A_t(x-\mu_t)`; ``x`` of shape ``(d,)``."""
        del args
        return (self.mu1 - self.mu0) + self.drift_matrix(t) @ (x - self.mean(t))

    def sde(self) -> GaussianBridgeSDE:
        """The bridge as a :class:`thermo.sde.AbstractSDE` (drift :meth:`drift`, diffusion ``sigma``)."""
        return GaussianBridgeSDE(bridge=self)

    def reference_sde(self) -> AbstractSDE:
        r"""The reference process :math:`dX = \sigma dB` as a :class:`thermo.sde.AbstractSDE`."""
        return GaussianBridgeSDE(bridge=self, reference=True)

    def joint_cov(self) -> Float[Array, "2d 2d"]:
        """Covariance of the static plan ``(X0, X1)``: ``[[cov0, C], [C^T, cov1]]``."""
        c = self.cross_cov
        return jnp.block([[self.cov0, c], [c.T, self.cov1]])

    def sample_plan(self, key: PRNGKey, n: int) -> tuple[Float[Array, "n d"], Float[Array, "n d"]]:
        """``n`` exact draws ``(x0, x1)`` from the static Schrödinger plan."""
        joint_mean = jnp.concatenate([self.mu0, self.mu1])
        chol = jnp.linalg.cholesky(self.joint_cov())
        z = jr.normal(key, (n, 2 * self.dim), dtype=self.cov0.dtype)
        xy = joint_mean[None] + z @ chol.T
        return xy[:, : self.dim], xy[:, self.dim :]

    def sample_marginal(self, key: PRNGKey, t: ScalarLike, n: int) -> Float[Array, "n d"]:
        r"""``n`` exact draws from :math:`\mathcal N(\mu_t, \Sigma_t)`."""
        chol = jnp.linalg.cholesky(self.cov(t))
        z = jr.normal(key, (n, self.dim), dtype=self.cov0.dtype)
        return self.mean(t)[None] + z @ chol.T

    def kl_to_reference(self) -> Float[Array, ""]:
        r"""KL of the bridge's path measure to the reference started from the same :math:`\mathcal N(\mu_0,\Sigma_0)`.

        Both path measures share their Brownian bridges, so the path KL equals the KL of
        the static plans (Léonard 2014, Prop. 2.3):
        :math:`\mathrm{KL}(\pi\,\|\,R_{01})` with
        :math:`R_{01} = \mathcal N(\mu_0,\Sigma_0)(dx)\,\mathcal N(y; x, \sigma^2 I)`, a joint
        Gaussian with mean :math:`(\mu_0,\mu_0)` and covariance
        :math:`[[\Sigma_0,\Sigma_0],[\Sigma_0,\Sigma_0+\sigma^2 I]]`. By Girsanov this also
        equals :math:`\mathbb E\int_0^1 |b_t(X_t)|^2/(2\sigma^2)\,dt`
        (:meth:`kl_girsanov_quadrature`).
        """
        d = self.dim
        eye = jnp.eye(d, dtype=self.cov0.dtype)
        ref_cov = jnp.block([[self.cov0, self.cov0], [self.cov0, self.cov0 + self.sigma**2 * eye]])
        ref_mean = jnp.concatenate([self.mu0, self.mu0])
        return gaussian_kl(
            jnp.concatenate([self.mu0, self.mu1]), self.joint_cov(), ref_mean, ref_cov
        )

    def kl_girsanov_quadrature(self, n_nodes: int = 64) -> Float[Array, ""]:
        r"""Girsanov's :math:`\frac{1}{2\sigma^2}\int_0^1 \big(|\dot\mu|^2 + \operatorname{tr}(A_t\Sigma_tA_t^\top)\big)dt`.

        The expected squared drift under :math:`\mathcal N(\mu_t,\Sigma_t)`, integrated by
        ``n_nodes``-point Gauss–Legendre quadrature (the integrand is smooth on [0, 1]).
        """
        nodes, weights = gauss_legendre(0.0, 1.0, check_count(n_nodes, "n_nodes"))
        ts = jnp.asarray(nodes, dtype=self.cov0.dtype)
        ws = jnp.asarray(weights, dtype=self.cov0.dtype)
        dmu = self.mu1 - self.mu0

        def integrand(t):
            a = self.drift_matrix(t)
            return jnp.sum(dmu**2) + jnp.trace(a @ self.cov(t) @ a.T)

        vals = jax.vmap(integrand)(ts)
        return jnp.sum(ws * vals) / (2.0 * self.sigma**2)


class GaussianBridgeSDE(AbstractSDE):
    r"""A :class:`GaussianBridge` as an SDE :math:`dX = b(t,X)dt + \sigma dB` (or the reference, ``b = 0``)."""

    bridge: GaussianBridge
    reference: bool = eqx.field(static=True, default=False)

    def drift(self, t, x, args):
        if self.reference:
            return jnp.zeros_like(x)
        return self.bridge.drift(t, x, args)

    def diffusion(self, t, x, args):
        return self.bridge.sigma


def _check_cov(name: str, cov: Array, d: int) -> None:
    if cov.shape != (d, d):
        raise ValueError(f"{name} must have shape ({d}, {d}), got {cov.shape}")
    if not bool(jnp.all(jnp.isfinite(cov))):
        raise ValueError(f"{name} has non-finite entries")
    if not bool(jnp.allclose(cov, cov.T, rtol=1e-6, atol=1e-10)):
        raise ValueError(f"{name} must be symmetric")
    if float(jnp.min(jnp.linalg.eigvalsh(cov))) <= 0.0:
        raise ValueError(f"{name} must be positive definite")


def gaussian_bridge(
    mu0: Float[Array, " d"],
    cov0: Float[Array, "d d"],
    mu1: Float[Array, " d"],
    cov1: Float[Array, "d d"],
    sigma: ScalarLike,
) -> GaussianBridge:
    r"""The closed-form Schrödinger bridge :math:`\mathcal N(\mu_0,\Sigma_0)\to\mathcal N(\mu_1,\Sigma_1)`.

    Reference :math:`dX_t = \sigma\,dB_t` on :math:`t\in[0,1]` (Bunne et al. 2023, "The
    Schrödinger Bridge between Gaussian Measures has a Closed Form", AISTATS). Equivalent
    static problem: entropic OT with cost :math:`\|x-y\|^2` and :math:`\varepsilon=2\sigma^2`.

    Args:
        mu0, mu1: ``(d,)`` means.
        cov0, cov1: ``(d, d)`` symmetric positive-definite covariances.
        sigma: positive, finite reference diffusion coefficient.

    Returns:
        A :class:`GaussianBridge` with ``cross_cov``, ``mean(t)``, ``cov(t)``, ``drift(t, x)``,
        ``sde()``, ``sample_plan(key, n)``, ``kl_to_reference()``.

    Example:
        >>> import jax.numpy as jnp
        >>> b = gaussian_bridge(jnp.zeros(1), jnp.eye(1), jnp.zeros(1), jnp.eye(1), 1.0)
        >>> round(float(b.cross_cov[0, 0]), 6)  # (sqrt(5) - 1) / 2
        0.618034
    """
    mu0 = jnp.asarray(mu0)
    mu1 = jnp.asarray(mu1)
    cov0 = jnp.asarray(cov0, dtype=mu0.dtype)
    cov1 = jnp.asarray(cov1, dtype=mu0.dtype)
    if mu0.ndim != 1 or mu0.shape[0] == 0:
        raise ValueError(f"mu0 must be a non-empty vector, got shape {mu0.shape}")
    d = mu0.shape[0]
    if mu1.shape != (d,):
        raise ValueError(f"mu1 must have shape ({d},), got {mu1.shape}")
    if not (bool(jnp.all(jnp.isfinite(mu0))) and bool(jnp.all(jnp.isfinite(mu1)))):
        raise ValueError("means must be finite")
    _check_cov("cov0", cov0, d)
    _check_cov("cov1", cov1, d)
    sigma = jnp.asarray(sigma, dtype=mu0.dtype)
    if sigma.shape != ():
        raise ValueError(f"sigma must be a scalar, got shape {sigma.shape}")
    check_positive(sigma, "sigma")
    c = entropic_cross_covariance(cov0, cov1, sigma)
    return GaussianBridge(mu0=mu0, cov0=cov0, mu1=mu1, cov1=cov1, sigma=sigma, cross_cov=c)


@eqx.filter_jit
def _floor_draws(keys, br, n):
    """Relative errors (plug-in C, plug-in Σ1, eval C, eval Σ1) for each key; ``n`` static."""
    from ._common import coupling_stats, relative_error

    def one(k):
        ka, kb, kc = jr.split(k, 3)
        a = br.sample_marginal(ka, 0.0, n)
        b = br.sample_marginal(kb, 1.0, n)
        cov_b = jnp.cov(b.T)
        c_hat = entropic_cross_covariance(jnp.cov(a.T), cov_b, br.sigma)
        c_ev, s_ev = coupling_stats(*br.sample_plan(kc, n))
        return jnp.stack(
            [
                relative_error(c_hat, br.cross_cov),
                relative_error(cov_b, br.cov1),
                relative_error(c_ev, br.cross_cov),
                relative_error(s_ev, br.cov1),
            ]
        )

    return jax.lax.map(one, keys)


def plug_in_floor(key: PRNGKey, br: GaussianBridge, n: int, repeats: int) -> dict[str, float]:
    r"""The errors of the closed form computed from ``n`` samples per marginal: the plug-in floor.

    Draw ``n`` samples of each marginal, estimate their means and covariances, and take
    :func:`bridges.gaussian_bridge` of the estimates: the closed-form Schrödinger bridge
    *estimator* from the same data a learned solver sees. Its relative errors of
    :math:`C` and :math:`\Sigma_1` (mean and standard deviation over ``repeats`` data
    sets) are the floor a learned solver trained on ``n`` samples should be compared
    with. Also returned: the *evaluation* floor, the errors of the sample moments of
    ``n`` exact plan pairs.
    """
    n = check_count(n, "n", minimum=2)
    repeats = check_count(repeats, "repeats")
    keys = jr.split(key, repeats)
    vals = np.asarray(_floor_draws(keys, br, n))
    names = ["plug_in_cross_cov", "plug_in_cov1", "eval_cross_cov", "eval_cov1"]
    out = {}
    for i, name in enumerate(names):
        out[name] = float(vals[:, i].mean())
        out[name + "_sd"] = float(vals[:, i].std(ddof=1)) if repeats > 1 else 0.0
    out["n"] = n
    out["repeats"] = repeats
    return out
