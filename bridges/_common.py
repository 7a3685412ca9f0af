r"""Shared pieces of the learned bridge solvers: drift networks as SDEs, path simulation
through :mod:`thermo.integrate`, a regression fitting loop, and coupling statistics.

The fitting loop is an optax/Adam regression :math:`\min_\theta \mathbb E\,|v_\theta(t,x)
- \text{target}|^2` run by the shared training loop :func:`thermo.fit.fit_steps` (one
``lax.scan``) with the shared EMA :func:`thermo.fit.with_ema`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, NamedTuple, TypedDict

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, Float

from generative.networks.mlp import MLP
from thermo._checks import check_count, check_positive, check_real
from thermo._typing import Args, PRNGKey, ScalarLike
from thermo.fit import ema_params, fit_steps, with_ema
from thermo.integrate import euler_maruyama, run_population
from thermo.sde import AbstractSDE

__all__ = [
    "AffineDrift",
    "BridgeResult",
    "BridgeFitOptions",
    "BridgeIteration",
    "NetworkSDE",
    "TrainSettings",
    "coupling_stats",
    "fit_bridge",
    "fit_regression",
    "make_drift_network",
    "paired_coupling_errors",
    "relative_error",
    "simulate",
]


class NetworkSDE(AbstractSDE):
    r""":math:`dX_s = v(\tau(s), X_s)\,ds + \sigma\,dB_s` for a network ``v(t, x)``.

    With ``reverse_time=True`` the network is a *backward* drift in the forward time
    :math:`t`, simulated in the forward-running clock :math:`s = 1 - t`
    (:math:`\tau(s) = 1 - s`), so that a path from :math:`p_1` at :math:`s=0` ends near
    :math:`p_0` at :math:`s = 1`.
    """

    network: Callable[[ScalarLike, Float[Array, " d"]], Float[Array, " d"]]
    sigma: Float[Array, ""]
    reverse_time: bool = eqx.field(static=True, default=False)

    def drift(self, t, x, args):
        tau = 1.0 - t if self.reverse_time else t
        return self.network(tau, x)

    def diffusion(self, t, x, args):
        return self.sigma


def simulate(
    key: PRNGKey,
    sde: AbstractSDE,
    x0: Float[Array, "n d"],
    n_steps: int,
    *,
    record: bool = False,
    args: Args = None,
) -> tuple[Float[Array, "n d"], Any]:
    r"""Euler–Maruyama on :math:`[0, 1]` with ``n_steps`` steps, through :func:`thermo.integrate.euler_maruyama`.

    Returns ``(x1 (n, d), paths)``; ``paths`` is ``(n, n_steps + 1, d)`` (including
    ``x0``) when ``record`` is set, else ``None``.
    """
    dt = 1.0 / n_steps
    kernel = euler_maruyama(sde, dt, t0=0.0, args=args)
    states = jax.vmap(kernel.init)(x0)
    obs = (lambda s, i: s.position) if record else None
    final, trace = run_population(key, kernel, states, n_steps, observable_fn=obs)
    if record:
        trace = jnp.concatenate([x0[:, None, :], trace], axis=1)
    return final.position, trace


def _legendre_basis(t: ScalarLike, n_basis: int) -> Float[Array, " n_basis"]:
    r"""Shifted Legendre polynomials :math:`P_k(2t-1)`, :math:`k < n`, by Bonnet's recurrence.

    :math:`(k+1)P_{k+1}(u) = (2k+1)\,u\,P_k(u) - k\,P_{k-1}(u)`: an orthogonal basis on
    :math:`[0,1]` whose coefficients stay well conditioned under Adam.
    """
    u = 2.0 * jnp.asarray(t) - 1.0
    vals = [jnp.ones_like(u), u]
    for k in range(1, n_basis - 1):
        vals.append(((2 * k + 1) * u * vals[k] - k * vals[k - 1]) / (k + 1))
    return jnp.stack(vals[:n_basis])


class AffineDrift(eqx.Module):
    r"""A drift that is affine in :math:`x` plus an optional MLP residual.

    .. math:: v(t, x) = a(t) + B(t)\,x + r_\theta(t, x),\qquad
              a(t) = \sum_{k<K} P_k(2t-1)\,a_k,\quad B(t) = \sum_{k<K} P_k(2t-1)\,B_k,

    with shifted Legendre polynomials :math:`P_k` (:func:`_legendre_basis`). The Markovian
    drift of every Gaussian path measure met by IPF and IMF between Gaussian marginals
    is affine in :math:`x`, :math:`b(t,x) = \dot\mu_t + A_t(x-\mu_t)` with :math:`A_t` a
    smooth rational function of :math:`t` (:meth:`bridges.gaussian.GaussianBridge.drift_matrix`),
    so the affine head contains the reference solution up to the degree-:math:`(K-1)`
    polynomial approximation of :math:`t\mapsto A_t` (checked in the tests: below
    :math:`10^{-5}` for :math:`K = 8` on the test tasks). The residual is a
    :class:`generative.networks.mlp.MLP` whose output layer starts at zero, so training
    starts from the affine model and the MLP only has to learn the non-Gaussian part.

    The affine coefficients are stored divided by ``head_scale``: Adam moves every
    parameter by about its step size per step, so the :math:`O(1)` coefficients of
    :math:`a, B` then move ``head_scale`` times faster than the :math:`O(0.1)` hidden
    weights of the residual (a diagonal preconditioner; without it a 1e-3 step size
    needs thousands of steps just to reach :math:`|B|\sim 1`).

    Args:
        dim: data dimension ``d``.
        key: PRNG key (residual weights).
        n_basis: number ``K`` of time basis functions.
        width, depth: residual MLP size; ``depth = 0`` drops the residual (purely affine).
        head_scale: parameter scale of the affine head (see above).
    """

    a: Float[Array, "K d"]
    b: Float[Array, "K d d"]
    residual: MLP | None
    n_basis: int = eqx.field(static=True)
    head_scale: float = eqx.field(static=True)

    def __init__(
        self,
        dim: int,
        key: PRNGKey,
        *,
        n_basis: int = 8,
        width: int = 128,
        depth: int = 2,
        head_scale: float = 10.0,
    ):
        if dim < 1 or n_basis < 1 or not head_scale > 0:
            raise ValueError(
                f"need dim >= 1, n_basis >= 1, head_scale > 0; got {dim}, {n_basis}, {head_scale}"
            )
        self.n_basis = int(n_basis)
        self.head_scale = float(head_scale)
        self.a = jnp.zeros((n_basis, dim))
        self.b = jnp.zeros((n_basis, dim, dim))
        if depth > 0:
            net = MLP(dim, key, width=width, depth=depth)
            last = net.mlp.layers[-1]
            net = eqx.tree_at(
                lambda m: (m.mlp.layers[-1].weight, m.mlp.layers[-1].bias),
                net,
                (jnp.zeros_like(last.weight), jnp.zeros_like(last.bias)),
            )
            self.residual = net
        else:
            self.residual = None

    def __call__(self, t: ScalarLike, x: Float[Array, " d"]) -> Float[Array, " d"]:
        phi = _legendre_basis(t, self.n_basis).astype(x.dtype) * self.head_scale
        out = phi @ self.a + jnp.einsum("k,kij,j->i", phi, self.b, x)
        if self.residual is not None:
            out = out + self.residual(t, x)
        return out


def make_drift_network(
    key: PRNGKey, kind: str, dim: int, *, width: int, depth: int, n_basis: int = 8
) -> eqx.Module:
    """``"affine_mlp"``: :class:`AffineDrift`; ``"affine"``: without residual; ``"mlp"``: a plain :class:`MLP`."""
    if kind == "affine_mlp":
        return AffineDrift(dim, key, n_basis=n_basis, width=width, depth=depth)
    if kind == "affine":
        return AffineDrift(dim, key, n_basis=n_basis, depth=0)
    if kind == "mlp":
        return MLP(dim, key, width=width, depth=depth)
    raise ValueError(f"unknown drift network {kind!r}; use 'affine_mlp', 'affine' or 'mlp'")


class BridgeFitOptions(TypedDict, total=False):
    r"""The keyword options that :func:`bridges.ipf` and :func:`bridges.dsbm` share
    (defaults and checks in :func:`fit_bridge`).

    Attributes:
        n_iterations: outer iterations (each fits both drifts once). Default 4.
        n_train_steps: Adam steps per fit. Default 2000.
        batch_size: minibatch size. Default 256.
        width, depth: MLP (residual) size; ``depth = 0`` drops the residual. Default 128, 2.
        learning_rate: peak Adam step size (cosine decay to ``final_lr_fraction`` of it,
            :class:`TrainSettings`). Default 3e-3.
        network: ``"affine_mlp"``, ``"affine"`` or ``"mlp"`` (:func:`make_drift_network`).
            Default ``"affine_mlp"``.
        ema_decay: decay of the parameter EMA returned by each fit (0: last iterate).
            Default 0.99.
        final_lr_fraction: end of the cosine step-size schedule, relative. Default 0.01.
        n_sim_steps: Euler–Maruyama steps :math:`N` of the simulated paths (and, for IPF,
            of the fitted chains). Default: the method's (:class:`BridgeIteration`), 20 for
            IPF and 50 for DSBM.
        progress: a tqdm bar over the iterations with the two half-fits' recent losses.
            Default off.
    """

    n_iterations: int
    n_train_steps: int
    batch_size: int
    width: int
    depth: int
    learning_rate: float
    network: str
    ema_decay: float
    final_lr_fraction: float
    n_sim_steps: int
    progress: bool


class TrainSettings(NamedTuple):
    r"""Optimiser settings of :func:`fit_regression`.

    Attributes:
        learning_rate: peak Adam step size.
        final_lr_fraction: the step size decays by a cosine schedule (Loshchilov & Hutter
            2017) from ``learning_rate`` to ``final_lr_fraction * learning_rate``: the
            late small steps average the minibatch noise out of the fit.
        ema_decay: the returned parameters are the exponential moving average
            :math:`\bar\theta \leftarrow \rho\bar\theta + (1-\rho)\theta` (Polyak-style
            averaging, as DSBM's code does); ``0`` returns the last iterate.
    """

    learning_rate: float = 3e-3
    final_lr_fraction: float = 0.01
    ema_decay: float = 0.99


class BridgeFitSetup(NamedTuple):
    """The checked inputs of one bridge fit and its two fresh networks (:func:`fit_bridge`)."""

    x0: Array
    x1: Array
    sigma: Array
    forward: eqx.Module
    backward: eqx.Module
    settings: TrainSettings
    n_iterations: int
    n_train_steps: int
    batch_size: int
    n_sim_steps: int


class BridgeIteration(NamedTuple):
    """An alternating-fit method for :func:`fit_bridge` (IPF, DSBM).

    Attributes:
        init_fn: ``init_fn(setup) -> state``, the state before the first iteration.
        iteration_fn: ``iteration_fn(setup, keys, state) -> (state, (losses_a, losses_b))``,
            one iteration from four keys; the loss curves of its two half-fits.
        networks_fn: ``networks_fn(state) -> (forward, backward)``, the fitted drifts.
        result_type: the :class:`BridgeResult` subclass the method returns.
        n_sim_steps: the default number of Euler steps of its paths.
        desc: the progress bar's name.
        labels: the two half-fits' names on the progress bar.
    """

    init_fn: Callable[[BridgeFitSetup], Any]
    iteration_fn: Callable[[BridgeFitSetup, list, Any], tuple[Any, tuple[Array, Array]]]
    networks_fn: Callable[[Any], tuple[eqx.Module, eqx.Module]]
    result_type: type
    n_sim_steps: int
    desc: str
    labels: tuple[str, str]


class BridgeResult(NamedTuple):
    """What :func:`fit_bridge` returns (as the method's subclass, :class:`bridges.IPFResult`
    or :class:`bridges.DSBMResult`, which say how each network is read).

    Attributes:
        forward: network ``f(t, x)``, the forward drift on ``[0, 1]``.
        backward: network ``b(t, x)``, the backward drift, in the forward time ``t``.
        sigma: reference diffusion coefficient.
        n_sim_steps: number ``N`` of Euler steps of the simulated (and, for IPF, fitted) paths.
        losses: ``(n_iterations, 2, n_train_steps)`` the two half-fits' losses, in the
            order of the method's iteration.
        n_iterations: iterations done (each one forward + one backward fit).
        wall_time: seconds spent, compilation included.
    """

    forward: eqx.Module
    backward: eqx.Module
    sigma: Float[Array, ""]
    n_sim_steps: int
    losses: Float[Array, "n_iterations 2 n_train_steps"]
    n_iterations: int
    wall_time: float

    def forward_sde(self) -> NetworkSDE:
        """The learned forward bridge ``dX = f(t, X) dt + sigma dB`` as a thermo SDE."""
        return NetworkSDE(self.forward, self.sigma)

    def backward_sde(self) -> NetworkSDE:
        """The learned backward bridge in the clock ``s = 1 - t`` (from ``p1`` to ``p0``)."""
        return NetworkSDE(self.backward, self.sigma, reverse_time=True)

    def path_ensemble(self, key: PRNGKey, x: Float[Array, "n d"], *, backward: bool = False):
        r""":func:`bridges.path_ensemble` of :meth:`forward_sde` from ``x`` (samples of ``p0``),
        or of :meth:`backward_sde` from samples of ``p1``, on ``n_sim_steps`` steps:
        the paths as a :class:`thermo.paths.PathEnsemble` with their Girsanov weights
        against the reference :math:`\sigma dB` (a :class:`bridges.BridgePaths`)."""
        from .paths import path_ensemble

        sde = self.backward_sde() if backward else self.forward_sde()
        return path_ensemble(key, sde, x, self.n_sim_steps)


def fit_bridge(
    key: PRNGKey,
    x0: Any,
    x1: Any,
    sigma: Any,
    *,
    method: BridgeIteration,
    n_sim_steps: int | None = None,
    progress: bool = False,
    n_iterations: int = 4,
    n_train_steps: int = 2000,
    batch_size: int = 256,
    width: int = 128,
    depth: int = 2,
    learning_rate: float = 3e-3,
    network: str = "affine_mlp",
    ema_decay: float = 0.99,
    final_lr_fraction: float = 0.01,
) -> BridgeResult:
    r"""The one alternating-fit driver of :func:`bridges.ipf` and :func:`bridges.dsbm`.

    Checks the marginals (:func:`check_marginal_samples`) and the settings
    (:class:`BridgeFitOptions`; ``n_sim_steps`` defaults to ``method.n_sim_steps``) at
    the boundary, casts ``sigma`` to the samples' dtype and
    builds the forward and backward drift networks (:func:`make_drift_network`) from two
    keys split off ``key``. Then it runs ``n_iterations`` alternating pairs of half-fits
    of ``method`` (:class:`BridgeIteration`): iteration :math:`i` splits the running key
    into five (the carried key and four for the iteration) and calls
    ``method.iteration_fn(setup, keys, state)`` from ``state = method.init_fn(setup)``.
    With ``progress`` a tqdm bar over iterations (``method.desc``) shows the mean of each
    half-fit's last 100 losses, named ``method.labels``. Returns a
    ``method.result_type`` (:class:`BridgeResult`) holding ``method.networks_fn`` of the
    final state.
    """
    start = time.perf_counter()
    x0, x1 = check_marginal_samples(x0, x1, n_iterations)
    check_positive(sigma, "sigma")
    check_positive(learning_rate, "learning_rate")
    check_real(ema_decay, "ema_decay", low=0.0, high=1.0, high_open=True)
    check_real(final_lr_fraction, "final_lr_fraction", low=0.0, high=1.0)
    n_iterations = check_count(n_iterations, "n_iterations")
    width = check_count(width, "width")
    depth = check_count(depth, "depth", minimum=0)
    d = x0.shape[1]
    k_f, k_b, key = jr.split(key, 3)
    setup = BridgeFitSetup(
        x0=x0,
        x1=x1,
        sigma=jnp.asarray(sigma, dtype=x0.dtype),
        forward=make_drift_network(k_f, network, d, width=width, depth=depth),
        backward=make_drift_network(k_b, network, d, width=width, depth=depth),
        settings=TrainSettings(learning_rate, final_lr_fraction, ema_decay),
        n_iterations=n_iterations,
        n_train_steps=check_count(n_train_steps, "n_train_steps"),
        batch_size=check_count(batch_size, "batch_size"),
        n_sim_steps=check_count(
            method.n_sim_steps if n_sim_steps is None else n_sim_steps, "n_sim_steps"
        ),
    )
    from tqdm.auto import tqdm

    state, all_losses, labels = method.init_fn(setup), [], method.labels
    with tqdm(total=n_iterations, desc=method.desc, unit="iteration", disable=not progress) as bar:
        for _ in range(n_iterations):
            key, *keys = jr.split(key, 5)
            state, (loss_a, loss_b) = method.iteration_fn(setup, keys, state)
            all_losses.append(jnp.stack([loss_a, loss_b]))
            bar.update(1)
            if progress:
                bar.set_postfix(
                    {
                        labels[0]: f"{float(loss_a[-100:].mean()):.4g}",
                        labels[1]: f"{float(loss_b[-100:].mean()):.4g}",
                    }
                )
    forward, backward = method.networks_fn(state)
    return method.result_type(
        forward=forward,
        backward=backward,
        sigma=setup.sigma,
        n_sim_steps=setup.n_sim_steps,
        losses=jnp.stack(all_losses),
        n_iterations=setup.n_iterations,
        wall_time=time.perf_counter() - start,
    )


def fit_regression(
    key: PRNGKey,
    network: eqx.Module,
    batch_fn: Callable[[PRNGKey], tuple[Array, ...]],
    n_steps: int,
    settings: TrainSettings | None = None,
) -> tuple[eqx.Module, Float[Array, " n_steps"]]:
    r"""Fit ``network(t, x)`` to regression targets by Adam: :math:`\min\,\mathbb E\,w(t)|v(t,x)-y|^2`.

    ``batch_fn(key)`` draws one minibatch ``(t (b,), x (b, d), y (b, d))`` or
    ``(t, x, y, w (b,))`` with per-sample weights :math:`w` (default 1). A positive
    weight does not move the minimiser of a model that contains the conditional mean
    :math:`\mathbb E[y\mid t,x]`; it only sets how much each time's noise counts. The loop is
    a single ``lax.scan`` over ``n_steps`` with a cosine step-size decay and an EMA of the
    parameters (:class:`TrainSettings`); call it under ``jit``. Returns the (averaged)
    network and the per-step losses.
    """
    settings = TrainSettings() if settings is None else settings
    optimiser = _regression_optimizer(
        settings.learning_rate, max(int(n_steps), 1), settings.final_lr_fraction, settings.ema_decay
    )
    opt_state = optimiser.init(eqx.filter(network, eqx.is_inexact_array))
    network, opt_state, losses, _ = fit_steps(
        network, opt_state, jr.split(key, n_steps), _regression_loss, optimiser, batch_fn
    )
    return ema_params(network, opt_state), losses


@functools.lru_cache(maxsize=32)
def _regression_optimizer(learning_rate, n_steps, final_lr_fraction, ema_decay):
    """Adam on a cosine-decayed step size, with a plain (no warm-up) EMA of the weights."""
    schedule = optax.cosine_decay_schedule(learning_rate, n_steps, alpha=final_lr_fraction)
    return with_ema(optax.adam(schedule), ema_decay, warmup=False)


def _regression_loss(network, key, batch_fn):
    r"""One minibatch's :math:`\mathrm{mean}_b\, w_b\,|v(t_b, x_b) - y_b|^2`."""
    batch = batch_fn(key)
    t, x, y = batch[:3]
    w = batch[3] if len(batch) > 3 else jnp.ones_like(t)
    pred = jax.vmap(network)(t, x)
    return jnp.mean(w * jnp.sum((pred - y) ** 2, axis=-1))


def check_marginal_samples(x0, x1, n_iterations) -> tuple[Array, Array]:
    """Validate the two marginals' samples ``(n, d)``, ``(m, d)`` and the iteration count."""
    x0 = jnp.asarray(x0)
    x1 = jnp.asarray(x1)
    if x0.ndim != 2 or x1.ndim != 2 or x0.shape[1] != x1.shape[1]:
        raise ValueError(f"x0, x1 must be (n, d) with equal d, got {x0.shape}, {x1.shape}")
    if isinstance(n_iterations, bool) or not float(n_iterations).is_integer() or n_iterations < 1:
        raise ValueError(f"n_iterations must be an integer >= 1, got {n_iterations!r}")
    return x0, x1


def coupling_stats(
    x0: Float[Array, "n d"], x1: Float[Array, "n d"]
) -> tuple[Float[Array, "d d"], Float[Array, "d d"]]:
    r"""Sample cross-covariance :math:`\widehat{\mathrm{Cov}}(X_0, X_1)` and :math:`\widehat{\mathrm{Cov}}(X_1)` (``n - 1`` normalised)."""
    n = x0.shape[0]
    x0c = x0 - x0.mean(0)[None]
    x1c = x1 - x1.mean(0)[None]
    return x0c.T @ x1c / (n - 1), x1c.T @ x1c / (n - 1)


def relative_error(estimate: Float[Array, "d d"], truth: Float[Array, "d d"]) -> Float[Array, ""]:
    r"""Relative Frobenius error :math:`\|\hat M - M\|_F / \|M\|_F`."""
    return jnp.linalg.norm(estimate - truth) / jnp.linalg.norm(truth)


def paired_coupling_errors(
    key: PRNGKey,
    sde: AbstractSDE,
    reference_sde: AbstractSDE,
    x0: Float[Array, "n d"],
    n_steps: int,
    cross_cov: Float[Array, "d d"],
    cov1: Float[Array, "d d"],
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    r"""Relative errors of a learned bridge's :math:`C` and :math:`\Sigma_1`, evaluation noise cancelled.

    Both SDEs run from the same ``x0`` with the same Brownian increments (common random
    numbers, same key and Euler grid), so the difference of their sample moments
    :math:`\hat C_\theta - \hat C_\star` estimates :math:`C_\theta - C_\star` without the
    :math:`O(\sqrt{d/n})` sampling noise of each term (the noise is shared and cancels to
    first order). ``reference_sde`` is the exact bridge
    (:meth:`bridges.gaussian.GaussianBridge.sde`); its Euler bias on the grid cancels too.
    Returns :math:`\|\hat C_\theta-\hat C_\star\|_F/\|C\|_F` and the same for :math:`\Sigma_1`.
    """
    y, _ = simulate(key, sde, x0, n_steps)
    y_ref, _ = simulate(key, reference_sde, x0, n_steps)
    c, s1 = coupling_stats(x0, y)
    c_ref, s1_ref = coupling_stats(x0, y_ref)
    return (
        jnp.linalg.norm(c - c_ref) / jnp.linalg.norm(cross_cov),
        jnp.linalg.norm(s1 - s1_ref) / jnp.linalg.norm(cov1),
    )
