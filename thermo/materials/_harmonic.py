r"""Harmonic (phonon) free energy of a crystal and the anharmonic correction by TI.

**Harmonic tier.** Around a minimum :math:`x_0` of :math:`U` (flattened positions,
:math:`d = 3N`), :math:`U(x) \approx U_h(x) = U_0 + \tfrac12 \delta x^\top H \delta x`,
:math:`\delta x = x - x_0`, with the Hessian :math:`H = \nabla^2 U(x_0)` from
``jax.hessian``. A periodic crystal is invariant under rigid translations, so
:math:`H` has three zero eigenvalues (the centre-of-mass modes). With the centre of
mass fixed (as in Frenkel & Ladd 1984; Frenkel & Smit, *Understanding Molecular
Simulation*, 2nd ed., sec. 10.2.2) the classical configurational free energy of the
harmonic crystal is a product of Gaussian integrals over the remaining normal modes,

.. math::

    F_h = U_0 + \frac{k_B T}{2} \sum_{i:\,\lambda_i \ne 0}
          \log\frac{\lambda_i}{2\pi k_B T},

(masses and :math:`\hbar` do not enter the configurational part; the kinetic part is
the same for every structure with the same atoms and is left out). A negative
eigenvalue means a mechanically unstable structure; :math:`F_h` is then ``inf``.

**Anharmonic tier.** Thermodynamic integration (Kirkwood 1935) along
:math:`U_\lambda = U_h + \lambda (U - U_h)`, :math:`\lambda \in [0, 1]`:

.. math::

    F = F_h + \int_0^1 \langle U - U_h \rangle_\lambda\, d\lambda
      \approx F_h + \sum_k w_k \langle U - U_h \rangle_{\lambda_k},

on Gauss–Legendre nodes :math:`\lambda_k` with weights :math:`w_k` on :math:`[0,1]`
(Abramowitz & Stegun 25.4.29). Each :math:`\langle\cdot\rangle_{\lambda_k}` is sampled
exactly (no step-size bias) by HMC (:func:`thermo.mcmc.hmc`) with the centre-of-mass
components of momenta and gradients projected out, so the centre of mass stays where
it starts: the same constrained ensemble as :math:`F_h`. The step size and number of
leapfrog steps come from the harmonic spectrum itself: :math:`\epsilon = c/\omega_{\max}`
and :math:`L \epsilon \approx \tfrac{\pi}{2}/\omega_{\min}` with
:math:`\omega^2 = \beta\lambda` (capped). The standard error of each node's mean is the
spread of the independent chains' means (:math:`s/\sqrt{C}` over :math:`C` chains, each
chain's mean one independent estimate), propagated through the quadrature weights.

Exact checks (tests): a harmonic ring / simple-cubic spring crystal against its
closed-form spectrum; :math:`U = U_h` gives a zero correction; an anharmonic
oscillator against quadrature.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float

from .._checks import check_count, check_positive
from ..estimators._ti import gauss_legendre
from ..kernel import run as run_kernel
from ..mcmc import hmc
from ..systems import remove_com

__all__ = [
    "AnharmonicResult",
    "HarmonicResult",
    "anharmonic_free_energy",
    "harmonic_free_energy",
    "hessian",
]


class HarmonicResult(NamedTuple):
    """Output of :func:`harmonic_free_energy`.

    Attributes:
        free_energy: ``()`` :math:`F_h` (``inf`` if unstable).
        energy: ``()`` :math:`U_0 = U(x_0)`.
        eigenvalues: ``(d,)`` Hessian eigenvalues, ascending.
        n_negative: ``()`` number of negative eigenvalues beyond the zero modes
            (below ``-tol * max|lambda|``); ``> 0`` means unstable.
        hessian: ``(d, d)`` the Hessian :math:`H`.
    """

    free_energy: Float[Array, ""]
    energy: Float[Array, ""]
    eigenvalues: Float[Array, " d"]
    n_negative: Array
    hessian: Float[Array, "d d"]


def hessian(
    energy_fn: Callable[[Float[Array, "n 3"]], Float[Array, ""]],
    positions: Float[Array, "n 3"],
) -> Float[Array, "d d"]:
    r""":math:`H_{ab} = \partial^2 U/\partial x_a \partial x_b` of the flattened positions (``jax.hessian``).

    Args:
        energy_fn: ``U(R)`` with ``R`` of shape ``(n, 3)`` (or any shape; it is flattened).
        positions: the expansion point.

    Returns:
        ``(d, d)`` symmetric matrix, ``d = positions.size``.
    """
    x0 = jnp.asarray(positions)
    shape = x0.shape

    def flat(x):
        return energy_fn(x.reshape(shape))

    h = jax.hessian(flat)(x0.reshape(-1))
    return 0.5 * (h + h.T)


def harmonic_free_energy(
    energy_fn: Callable[[Float[Array, "n 3"]], Float[Array, ""]],
    positions: Float[Array, "n 3"],
    *,
    temperature: float | Array,
    n_zero_modes: int = 3,
    tol: float = 1e-7,
) -> HarmonicResult:
    r"""Classical harmonic free energy :math:`F_h` at a minimum (module docstring).

    The ``n_zero_modes`` eigenvalues of smallest magnitude are dropped (3 for a
    periodic crystal, 0 for a system pinned in space). Jittable.

    Args:
        energy_fn: ``U(R)``.
        positions: a local minimum :math:`x_0` (relax first).
        temperature: :math:`k_B T`.
        n_zero_modes: rigid-body modes to drop (static).
        tol: relative threshold for calling an eigenvalue negative.

    Returns:
        :class:`HarmonicResult`.
    """
    check_positive(temperature, "temperature")  # skipped when traced
    n_zero_modes = check_count(n_zero_modes, "n_zero_modes", minimum=0)
    check_positive(tol, "tol", allow_zero=True)
    x0 = jnp.asarray(positions)
    h = hessian(energy_fn, x0)
    lam = jnp.linalg.eigvalsh(h)
    order = jnp.argsort(jnp.abs(lam))
    kept = jnp.sort(lam[order[n_zero_modes:]])
    scale = jnp.max(jnp.abs(lam))
    n_neg = jnp.sum(kept < -tol * scale)
    safe = jnp.where(kept > 0, kept, 1.0)
    f = energy_fn(x0) + 0.5 * temperature * jnp.sum(jnp.log(safe / (2.0 * jnp.pi * temperature)))
    f = jnp.where(jnp.all(kept > 0), f, jnp.inf)
    return HarmonicResult(f, energy_fn(x0), jnp.sort(lam), n_neg, h)


class AnharmonicResult(NamedTuple):
    """Output of :func:`anharmonic_free_energy`.

    Attributes:
        free_energy: :math:`F = F_h + \\Delta F`.
        delta_f: the anharmonic correction :math:`\\Delta F`.
        std_err: its standard error (statistical only).
        harmonic: :math:`F_h`.
        nodes, mean_dudl, sem_dudl: ``(n_nodes,)`` the TI integrand per node.
        acceptance_rate: mean HMC acceptance.
        n_energy_evals: gradient evaluations spent.
    """

    free_energy: float
    delta_f: float
    std_err: float
    harmonic: float
    nodes: np.ndarray
    mean_dudl: np.ndarray
    sem_dudl: np.ndarray
    acceptance_rate: float
    n_energy_evals: int


def _hmc_settings(lam_kept, beta, step_fraction, max_leapfrog):
    omega = np.sqrt(beta * np.asarray(lam_kept))
    step = step_fraction / omega.max()
    n_lf = int(np.clip(np.ceil(0.5 * np.pi / omega.min() / step), 1, max_leapfrog))
    return float(step), n_lf


@eqx.filter_jit
def _ti_samples(
    keys,
    nodes,
    energy_fn,
    params,
    x0,
    h,
    u0,
    beta,
    step_size,
    project,
    n_chains,
    n_burn,
    n_steps,
    n_lf,
):
    # One compile per (energy_fn, shapes, static settings); params, x0, h, beta traced.
    shape = x0.shape
    x0f = x0.reshape(-1)
    d = x0f.size

    def u_full(x):
        r = x.reshape(shape)
        return energy_fn(r) if params is None else energy_fn(r, params)

    def u_h(x):
        dx = x - x0f
        return u0 + 0.5 * dx @ (h @ dx)

    def dudl(x):
        return u_full(x) - u_h(x)

    def one_node(key, lam):
        def logdensity(x):
            return -beta * (u_h(x) + lam * dudl(x))

        project_fn = functools.partial(remove_com, n_particles=d // 3, spatial_dim=3)
        kern = hmc(logdensity, step_size, n_lf, project_fn=project_fn if project else None)
        states = jax.vmap(kern.init)(jnp.broadcast_to(x0f, (n_chains, d)))

        def chain(k, s):
            k_burn, k_run = jr.split(k)
            s, _ = run_kernel(k_burn, kern, s, n_burn, observable_fn=None)
            obs = lambda s, i: (dudl(s.position), i.acceptance_rate)  # noqa: E731
            return run_kernel(k_run, kern, s, n_steps, observable_fn=obs)[1]

        return jax.vmap(chain)(jr.split(key, n_chains), states)

    return jax.vmap(one_node)(keys, nodes)


def anharmonic_free_energy(
    key,
    energy_fn: Callable[..., Float[Array, ""]],
    positions: Float[Array, "n 3"],
    *,
    temperature: float,
    params=None,
    n_nodes: int = 5,
    n_chains: int = 8,
    n_burn: int = 100,
    n_steps: int = 400,
    n_zero_modes: int = 3,
    step_fraction: float = 0.5,
    n_leapfrog: int | None = None,
    max_leapfrog: int = 12,
    harmonic: HarmonicResult | None = None,
) -> AnharmonicResult:
    r"""Full free energy :math:`F = F_h + \int_0^1\langle U - U_h\rangle_\lambda d\lambda` (module docstring).

    Host entry point. All nodes and chains run in one vmapped scan, compiled once per
    ``energy_fn`` (by identity), shapes and static settings: pass the parameters that
    vary between calls through ``params`` (``energy_fn(R, params)``) and a fixed
    ``n_leapfrog`` to reuse the compiled sampler across structures of equal size.

    Args:
        key: PRNG key.
        energy_fn: ``U(R)`` (or ``U(R, params)`` when ``params`` is given);
            ``R`` of shape ``(n, 3)``.
        positions: a local minimum :math:`x_0` (the harmonic expansion point).
        temperature: :math:`k_B T`.
        params: optional pytree of arrays passed to ``energy_fn``.
        n_nodes: Gauss–Legendre nodes on :math:`[0, 1]`.
        n_chains, n_burn, n_steps: HMC chains per node, discarded and recorded steps.
        n_zero_modes: 3 (centre of mass fixed; ``positions`` must be ``(n, 3)``) or 0.
        step_fraction: :math:`\epsilon\,\omega_{\max}`.
        n_leapfrog: leapfrog steps per trajectory (default from the spectrum, capped
            at ``max_leapfrog``).
        harmonic: a precomputed :func:`harmonic_free_energy` (else computed here).

    Returns:
        :class:`AnharmonicResult`; ``ValueError`` if the structure is unstable or the
        samples are not finite.
    """
    check_positive(temperature, "temperature")
    n_nodes = check_count(n_nodes, "n_nodes")
    n_chains = check_count(n_chains, "n_chains")
    n_burn = check_count(n_burn, "n_burn", minimum=0)
    n_steps = check_count(n_steps, "n_steps")
    check_positive(step_fraction, "step_fraction")
    if n_leapfrog is not None:
        n_leapfrog = check_count(n_leapfrog, "n_leapfrog")
    max_leapfrog = check_count(max_leapfrog, "max_leapfrog")
    if n_zero_modes not in (0, 3):
        raise ValueError(f"n_zero_modes must be 0 or 3, got {n_zero_modes}")
    x0 = jnp.asarray(positions)
    shape = x0.shape
    if n_zero_modes == 3 and (x0.ndim != 2 or shape[-1] != 3):
        raise ValueError(f"positions must have shape (n, 3) with n_zero_modes=3, got {shape}")
    if n_chains < 2:
        raise ValueError(f"need at least 2 independent chains for the error, got {n_chains}")

    def bound(r):
        return energy_fn(r) if params is None else energy_fn(r, params)

    if harmonic is None:
        harmonic = harmonic_free_energy(
            bound, x0, temperature=temperature, n_zero_modes=n_zero_modes
        )
    if not np.isfinite(float(harmonic.free_energy)):
        raise ValueError("the structure is not a stable minimum (negative Hessian eigenvalues)")
    beta = 1.0 / temperature
    lam = np.asarray(harmonic.eigenvalues)
    kept = np.sort(lam[np.argsort(np.abs(lam))][n_zero_modes:])
    step, n_lf = _hmc_settings(kept, beta, step_fraction, max_leapfrog)
    if n_leapfrog is not None:
        n_lf = int(n_leapfrog)
    nodes, weights = gauss_legendre(0.0, 1.0, n_nodes)
    dtype = x0.dtype
    du, acc = _ti_samples(
        jr.split(key, n_nodes),
        jnp.asarray(nodes, dtype),
        energy_fn,
        params,
        x0,
        jnp.asarray(harmonic.hessian, dtype),
        jnp.asarray(harmonic.energy, dtype),
        jnp.asarray(beta, dtype),
        jnp.asarray(step, dtype),
        n_zero_modes == 3,
        int(n_chains),
        int(n_burn),
        int(n_steps),
        n_lf,
    )
    du = np.asarray(du)  # (n_nodes, n_chains, n_steps)
    if not np.all(np.isfinite(du)):
        raise ValueError("non-finite U - U_h in the TI samples (structure melted or exploded?)")
    chain_means = du.mean(axis=-1)  # (n_nodes, n_chains): independent estimates
    means = chain_means.mean(axis=-1)
    sems = chain_means.std(axis=-1, ddof=1) / np.sqrt(n_chains)
    delta = float(weights @ means)
    err = float(np.sqrt(np.sum(weights**2 * sems**2)))
    evals = n_nodes * n_chains * (n_burn + n_steps) * n_lf
    f_h = float(harmonic.free_energy)
    return AnharmonicResult(
        free_energy=f_h + delta,
        delta_f=delta,
        std_err=err,
        harmonic=f_h,
        nodes=nodes,
        mean_dudl=means,
        sem_dudl=sems,
        acceptance_rate=float(np.mean(acc)),
        n_energy_evals=int(evals),
    )
