r"""The thermodynamic view of a diffusion model, as functions.

**Entropy production of the forward process.** The VP process
:math:`dx = -\tfrac12\beta x\,dt + \sqrt\beta\,dW` is an Ornstein–Uhlenbeck process with
stationary law :math:`\pi = \mathcal N(0, I)`. Its marginals relax to :math:`\pi` and the
relative entropy decays at the rate of the relative Fisher information (the de Bruijn
identity for OU, e.g. Bakry, Gentil & Ledoux 2014, Sec. 5.7),

.. math:: -\frac{d}{dt}\mathrm{KL}(p_t\,\|\,\pi) = \frac{\beta(t)}{2}\,
          \mathbb E_{p_t}\big\|\nabla\log p_t(x) + x\big\|^2 =: \dot S(t) \ge 0,

which is the (non-adiabatic) entropy production rate of the relaxation (Esposito & Van
den Broeck 2010). Integrated over :math:`[0, T]`:
:math:`\mathrm{KL}(p_0\|\pi) - \mathrm{KL}(p_T\|\pi) = \int_0^T \dot S(t)\,dt`.

**The ELBO as minus a mean work.** Run the forward process from a data point :math:`x`
(its exact transition kernels :math:`F_k`) and score each path against the model's
reverse chain (ancestral kernels :math:`B_k` built from the score, started from the prior
:math:`\pi_T`). The path log-weight

.. math:: \log w = \log\pi_T(x_N) + \sum_k \big[\log B_k(x_k\mid x_{k+1}) - \log F_k(x_{k+1}\mid x_k)\big]
          =: -W

satisfies :math:`\mathbb E_F[e^{-W}] = p_\theta(x)` exactly, where :math:`p_\theta` is the
density of the discretised reverse chain (Sohl-Dickstein et al. 2015, eq. 8, the same
identity as Jarzynski's 1997 equality, Crooks 1999). Hence
:math:`\log\frac1n\sum_i e^{\log w_i}` (:func:`thermo.estimators.estimate_log_z`) is a
consistent importance-sampled estimate of :math:`\log p_\theta(x)`, the weight itself is
unbiased, and by Jensen :math:`\mathrm{ELBO} = \mathbb E[\log w] = -\mathbb E[W] \le \log
p_\theta(x)`: the ELBO is minus the mean work and the gap
:math:`\mathbb E[W] - (-\log p_\theta(x)) = \mathrm{KL}(F\,\|\,B)` is the dissipated work, i.e.
the entropy produced along the paths.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, TypedDict, Unpack

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float

from thermo._checks import check_count
from thermo._typing import Args, PRNGKey, ScalarLike
from thermo.estimators import Estimate, estimate_log_z, gauss_legendre
from thermo.paths import PathEnsemble

from .processes import VP, AbstractDiffusionProcess, gaussian_log_prob

__all__ = [
    "relaxation_entropy_production_rate",
    "relaxation_entropy_production",
    "monte_carlo_marginal",
    "ancestral_reverse_kernel",
    "AncestralStep",
    "ancestral_log_probs",
    "ancestral_step",
    "reverse_chain",
    "path_log_weights",
    "importance_log_likelihood",
    "PathWeightOptions",
    "elbo",
    "ELBO",
]

ScoreFn = Callable[[ScalarLike, Float[Array, " d"], Args], Float[Array, " d"]]
NodesFn = Callable[[ScalarLike], tuple[Float[Array, "m d"], Float[Array, " m"]]]


def _require_vp(process: AbstractDiffusionProcess) -> None:
    if not isinstance(process, VP) or process.particles is not None:
        raise ValueError(
            "the entropy-production identity is implemented for the VP process "
            "(stationary law N(0, I)) on flat data; got " + type(process).__name__
        )


def relaxation_entropy_production_rate(
    process: VP,
    score_fn: ScoreFn,
    t: ScalarLike,
    x: Float[Array, "m d"],
    weights: Float[Array, " m"] | None = None,
    args: Args = None,
) -> Float[Array, ""]:
    r""":math:`\dot S(t) = \tfrac{\beta(t)}2\sum_i w_i\|\nabla\log p_t(x_i) + x_i\|^2` for VP.

    ``x`` are points of :math:`p_t` with quadrature/MC weights ``w`` (normalised here;
    uniform when omitted): samples for Monte Carlo, or nodes of a deterministic quadrature.
    """
    _require_vp(process)
    if x.ndim != 2:
        raise ValueError(f"x must have shape (m, d), got {x.shape}")
    w = jnp.full(x.shape[0], 1.0 / x.shape[0]) if weights is None else weights / jnp.sum(weights)
    s = jax.vmap(lambda xi: score_fn(t, xi, args))(x)
    return 0.5 * process.schedule.beta(t) * jnp.sum(w * jnp.sum((s + x) ** 2, axis=-1))


def relaxation_entropy_production(
    process: VP,
    score_fn: ScoreFn,
    marginal_nodes_fn: NodesFn,
    *,
    t0: ScalarLike = 0.0,
    t1: ScalarLike | None = None,
    n_time: int = 64,
    args: Args = None,
) -> Float[Array, ""]:
    r""":math:`\int_{t_0}^{t_1}\dot S(t)\,dt` by Gauss–Legendre quadrature in time.

    With the exact score this equals :math:`\mathrm{KL}(p_{t_0}\|\pi) - \mathrm{KL}(p_{t_1}\|\pi)`
    (module doc). ``marginal_nodes_fn(t) -> (x (m, d), w (m,))`` supplies points of
    :math:`p_t` (JAX-traceable in ``t``): :func:`monte_carlo_marginal` for samples, or a
    deterministic quadrature. ``n_time`` Gauss–Legendre nodes integrate polynomials of
    degree :math:`2n-1` exactly.
    """
    _require_vp(process)
    t1 = process.t1 if t1 is None else t1
    ts, weights = gauss_legendre(t0, t1, check_count(n_time, "n_time"))
    ts = jnp.asarray(ts)

    def rate(t):
        x, w = marginal_nodes_fn(t)
        return relaxation_entropy_production_rate(process, score_fn, t, x, w, args)

    rates = jax.lax.map(rate, ts)
    return jnp.sum(jnp.asarray(weights) * rates)


def monte_carlo_marginal(
    key: PRNGKey, process: AbstractDiffusionProcess, x0: Float[Array, "m d"]
) -> NodesFn:
    r"""Nodes ``t -> (a(t)x_0 + \sigma(t)\varepsilon, 1/m)``: samples of :math:`p_t` from data samples.

    The same noise :math:`\varepsilon` is used at every :math:`t` (common random numbers),
    so the time integrand is smooth.
    """
    eps = process.noise(key, x0.shape).astype(x0.dtype)
    w = jnp.full(x0.shape[0], 1.0 / x0.shape[0], dtype=x0.dtype)

    def nodes(t):
        a, std = process.marginal_coefficients(t)
        return a * x0 + std * eps, w

    return nodes


def ancestral_reverse_kernel(
    process: AbstractDiffusionProcess,
    score_fn: ScoreFn,
    s: ScalarLike,
    t: ScalarLike,
    x_t: Float[Array, " d"],
    args: Args = None,
) -> tuple[Float[Array, " d"], Float[Array, ""]]:
    r"""Mean and std of the model's reverse step :math:`B(x_s\mid x_t)`, :math:`s < t`.

    With the forward step :math:`x_t = a\,x_s + \sigma\varepsilon` (:math:`a, \sigma` =
    ``process.transition_coefficients(s, t)``),

    .. math:: B(x_s\mid x_t) = \mathcal N\big((x_t + \sigma^2 s_\theta(t, x_t))/a,\; \sigma^2 I\big),

    DDPM's ancestral step with :math:`\sigma_t^2 = \beta_t` (Ho et al. 2020, Alg. 2) for
    VP, and the SMLD ancestral step (Song et al. 2021, eq. 47) for VE; it is the
    Tweedie-corrected inverse of the forward step and tends to the reverse SDE as
    :math:`t - s\to 0`.
    """
    a, std = process.transition_coefficients(s, t)
    return (x_t + std**2 * score_fn(t, x_t, args)) / a, std


class AncestralStep(NamedTuple):
    r"""One step of the ancestral chain between times ``s < t`` with its two log-densities.

    Attributes:
        x: ``(d,)`` the point drawn by the step (:math:`x_s` for a reverse step,
            :math:`x_t` for a forward one).
        log_forward: :math:`\log F(x_t\mid x_s)`, the forward (noising) kernel.
        log_backward: :math:`\log B(x_s\mid x_t)`, the model's ancestral kernel.
    """

    x: Float[Array, " d"]
    log_forward: Float[Array, ""]
    log_backward: Float[Array, ""]


def ancestral_log_probs(
    process: AbstractDiffusionProcess,
    s: ScalarLike,
    t: ScalarLike,
    x_s: Float[Array, " d"],
    x_t: Float[Array, " d"],
    mean_b: Float[Array, " d"],
    std_b: Float[Array, ""],
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    r"""``(log F(x_t | x_s), log B(x_s | x_t))`` for the pair of kernels of one step.

    :math:`F = \mathcal N(a x_s, \sigma^2 I)` from ``process.transition`` and
    :math:`B = \mathcal N(\mu_B, \sigma_B^2 I)` with ``(mean_b, std_b)`` from
    :func:`ancestral_reverse_kernel`. For particle processes both are Lebesgue densities on
    the CoM-free subspace (:func:`path_log_weights`): the backward residual is projected,
    so a score with a CoM component is ignored.
    """
    free = process.n_free_dims(x_t.shape[-1])
    mean_f, std_f = process.transition(s, t, x_s)
    log_f = gaussian_log_prob(x_t, mean_f, variance=std_f**2, n_dims=free)
    residual = process.project(x_s - mean_b)
    log_b = gaussian_log_prob(residual, 0.0, variance=std_b**2, n_dims=free)
    return log_f, log_b


def ancestral_step(
    key: PRNGKey,
    process: AbstractDiffusionProcess,
    score_fn: ScoreFn,
    s: ScalarLike,
    t: ScalarLike,
    x: Float[Array, " d"],
    args: Args = None,
    *,
    direction: str = "reverse",
) -> AncestralStep:
    r"""One step of the ancestral chain between ``s < t`` with both kernel log-densities.

    ``direction="reverse"``: ``x`` is :math:`x_t`; draw :math:`x_s = \mu_B + \sigma_B\,
    \varepsilon` from the model's ancestral kernel :math:`B(\cdot\mid x_t)` of
    :func:`ancestral_reverse_kernel` (Ho et al. 2020, Alg. 2; Song et al. 2021, eq. 47).
    ``direction="forward"``: ``x`` is :math:`x_s`; draw :math:`x_t` from the exact forward
    kernel :math:`F(\cdot\mid x_s)` (forward paths scored against the model, as in
    :func:`path_log_weights`). :math:`\varepsilon` = ``process.noise(key, x.shape)``
    (CoM-free for particles). Either way the step returns :func:`ancestral_log_probs` of the
    pair, the increments :math:`\pm(\log F - \log B)` of a path's log Radon–Nikodym
    weight (Crooks 1999).
    """
    noise = process.noise(key, x.shape).astype(x.dtype)
    if direction == "reverse":
        x_t = x
        mean_b, std_b = ancestral_reverse_kernel(process, score_fn, s, t, x_t, args)
        x_s = new = mean_b + std_b * noise
    elif direction == "forward":
        x_s = x
        mean_f, std_f = process.transition(s, t, x_s)
        x_t = new = mean_f + std_f * noise
        mean_b, std_b = ancestral_reverse_kernel(process, score_fn, s, t, x_t, args)
    else:
        raise ValueError(f"direction must be 'reverse' or 'forward', got {direction!r}")
    return AncestralStep(new, *ancestral_log_probs(process, s, t, x_s, x_t, mean_b, std_b))


def reverse_chain(
    key: PRNGKey,
    process: AbstractDiffusionProcess,
    score_fn: ScoreFn,
    x_n: Float[Array, " d"],
    times: Float[Array, " n_plus_1"],
    args: Args = None,
) -> tuple[Float[Array, " d"], Float[Array, ""]]:
    r"""The model's ancestral reverse chain from ``x_n`` at ``times[-1]`` down to ``times[0]``.

    One ``lax.scan`` of :func:`ancestral_step` (step :math:`k` uses ``fold_in(key, k)``),
    returning :math:`x_0` and the reverse path's log-weight against "prior, then forward
    kernels" without the target term:

    .. math:: \log w = -\log\pi_T(x_N) + \sum_{k<N}\big[\log F_k(x_{k+1}\mid x_k)
              - \log B_k(x_k\mid x_{k+1})\big].

    Adding :math:`\log\gamma(x_0)` (e.g. :math:`-\beta U(x_0)`) gives the diffusion-sampler
    weight with :math:`\mathbb E[w] = Z` for any score (Vargas et al. 2023; Crooks 1999).
    """
    return _ancestral_scan(
        key, process, score_fn, x_n, -process.prior_log_prob(x_n), times, args, "reverse"
    )


def _ancestral_scan(key, process, score_fn, x, log_w, times, args, direction):
    r"""One ``lax.scan`` of :func:`ancestral_step` over the ascending grid ``times``.

    ``direction="reverse"`` runs from ``times[-1]`` down to ``times[0]`` adding
    :math:`\log F_k - \log B_k` to ``log_w`` (:func:`reverse_chain`); ``"forward"`` runs up
    adding :math:`\log B_k - \log F_k` (:func:`path_log_weights`). Step :math:`k` (the
    interval ``times[k], times[k+1]``) uses ``fold_in(key, k)``. Returns the end point and
    the accumulated log-weight.
    """
    ks = jnp.arange(times.shape[0] - 1)
    lower, upper = times[:-1], times[1:]
    if direction == "reverse":
        ks, lower, upper = ks[::-1], lower[::-1], upper[::-1]

    def step(carry, inputs):
        x_k, log_w = carry
        k, s, t = inputs
        out = ancestral_step(
            jr.fold_in(key, k), process, score_fn, s, t, x_k, args, direction=direction
        )
        if direction == "reverse":
            return (out.x, log_w + out.log_forward - out.log_backward), None
        return (out.x, log_w + out.log_backward - out.log_forward), None

    (x, log_w), _ = jax.lax.scan(step, (x, log_w), (ks, lower, upper))
    return x, log_w


def path_log_weights(
    key: PRNGKey,
    process: AbstractDiffusionProcess,
    score_fn: ScoreFn,
    x: Float[Array, " d"],
    n_paths: int,
    *,
    n_steps: int = 100,
    t_min: float = 0.0,
    args: Args = None,
) -> PathEnsemble:
    r"""Forward paths from ``x`` and their log-weights against the model's reverse chain.

    On the uniform grid :math:`t_k = t_{\min} + k(T - t_{\min})/N`, the forward paths use
    the exact transition kernels :math:`F_k = p_{t_k t_{k+1}}` of the process and the model
    is the :math:`N`-step reverse chain started from the prior :math:`\pi_T` with the kernels
    :math:`B_k` of :func:`ancestral_reverse_kernel` (Sohl-Dickstein et al. 2015, Sec. 2;
    Ho et al. 2020):

    .. math:: \log w = \log\pi_T(x_N) + \sum_{k<N}\big[\log B_k(x_k\mid x_{k+1}) - \log F_k(x_{k+1}\mid x_k)\big].

    Then :math:`\mathbb E[e^{\log w}] = p_\theta(x)` exactly, the density at ``x`` of that
    reverse chain (module doc). ``-log_weights`` are the works :math:`W`.

    **Particle processes** (``process.particles`` set): the forward kernels
    :math:`\mathcal N(a x, \sigma^2 P)` live on the centre-of-mass-free subspace
    (:math:`P` the CoM projector), where their covariance is singular in full coordinates.
    Every kernel density is then taken with respect to Lebesgue measure on that
    :math:`(n-1)D`-dimensional subspace, i.e. in orthonormal subspace coordinates, which
    is the pseudo-inverse density :math:`-\tfrac12|P r|^2/\sigma^2 - (n-1)D\log\sigma
    - \tfrac{(n-1)D}2\log 2\pi` (Hoogeboom et al. 2022, Sec. 3); ``x`` is projected onto the
    subspace first, the forward noise is projected, and the backward residual is projected
    (a score with a CoM component, which the subspace chain never sees, is ignored). The
    weight then estimates the model's density on the subspace, as
    :func:`generative.likelihood.log_likelihood` does.

    Returns:
        :class:`thermo.paths.PathEnsemble` with ``samples`` the path ends :math:`x_N`
        ``(n_paths, d)``, ``log_weights`` ``(n_paths,)`` and ``n_energy_evals`` the number
        of score evaluations.
    """
    x = jnp.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"x must be one point of shape (d,), got {x.shape}")
    if not bool(jnp.all(jnp.isfinite(x))):
        raise ValueError("x contains NaN or inf")
    x = process.project(x)
    n_paths = check_count(n_paths, "n_paths")
    n_steps = check_count(n_steps, "n_steps")
    t0, t1 = float(t_min), float(process.t1)
    if not 0.0 <= t0 < t1:
        raise ValueError(f"need 0 <= t_min < T = {t1}, got {t_min}")
    x_n, log_w = _simulate_paths(
        key, process, score_fn, x, int(n_paths), int(n_steps), t0, t1, args
    )
    return PathEnsemble(x_n, log_w, int(n_paths) * int(n_steps))


@eqx.filter_jit
def _simulate_paths(key, process, score_fn, x, n_paths, n_steps, t0, t1, args):
    times = jnp.linspace(t0, t1, n_steps + 1, dtype=x.dtype)

    def one_path(key):
        zero = jnp.zeros((), x.dtype)
        x_n, log_w = _ancestral_scan(key, process, score_fn, x, zero, times, args, "forward")
        return x_n, log_w + process.prior_log_prob(x_n)

    return jax.vmap(one_path)(jr.split(key, n_paths))


class PathWeightOptions(TypedDict, total=False):
    r"""The keyword options of :func:`path_log_weights`, which
    :func:`importance_log_likelihood` passes on (defaults there).

    Attributes:
        n_steps: steps :math:`N` of the chain. Default 100.
        t_min: start :math:`t_{\min}` of the time grid. Default 0.
        args: passed to the score.
    """

    n_steps: int
    t_min: float
    args: Args


def importance_log_likelihood(
    key: PRNGKey,
    process: AbstractDiffusionProcess,
    score_fn: ScoreFn,
    x: Float[Array, " d"],
    n_paths: int,
    **options: Unpack[PathWeightOptions],
) -> Estimate:
    r"""Importance-sampled :math:`\log p_\theta(x) \approx \log\tfrac1n\sum_i e^{\log w_i}`.

    The path weights of :func:`path_log_weights` (same arguments, ``options`` as
    :class:`PathWeightOptions`) through the shared estimator
    :func:`thermo.estimators.estimate_log_z` (value, delta-method standard error, ESS).
    """
    return estimate_log_z(path_log_weights(key, process, score_fn, x, n_paths, **options))


class ELBO(NamedTuple):
    """The evidence lower bound as minus a mean work.

    Attributes:
        value: :math:`\\mathbb E[\\log w] = -\\mathbb E[W]`.
        std_err: its Monte Carlo standard error :math:`\\mathrm{sd}(\\log w)/\\sqrt n`.
        mean_work: :math:`\\mathbb E[W] = -` ``value``.
    """

    value: Float[Array, ""]
    std_err: Float[Array, ""]
    mean_work: Float[Array, ""]


def elbo(log_weights: Float[Array, " n"]) -> ELBO:
    r"""ELBO :math:`=\frac1n\sum_i\log w_i = -\overline W` with its standard error.

    Its gap to :func:`thermo.estimators.estimate_log_z` of the same weights estimates the
    dissipated work :math:`\mathbb E[W] - \Delta F = \mathrm{KL}(F\|B)` (module doc).
    """
    lw = jnp.asarray(log_weights)
    if lw.ndim != 1 or lw.shape[0] < 2:
        raise ValueError(f"log_weights must be a 1-D array of length >= 2, got shape {lw.shape}")
    if not bool(jnp.all(jnp.isfinite(lw))):
        raise ValueError("log_weights contains NaN or inf")
    value = jnp.mean(lw)
    se = jnp.std(lw, ddof=1) / jnp.sqrt(lw.shape[0])
    return ELBO(value, se, -value)
