r"""Free energy of the Lennard-Jones FCC solid: Frenkel–Ladd Einstein-crystal integration.

**Path** (Frenkel & Ladd 1984; Frenkel & Smit, *Understanding Molecular Simulation*,
2nd ed., sec. 10.2). With lattice sites :math:`r_i^0`, displacements
:math:`d_i = r_i - r_i^0`, their mean :math:`\bar d` and the centre-of-mass-free Einstein
energy

.. math:: U_E = \Lambda_E \sum_i |d_i - \bar d|^2
              = \Lambda_E\Big(\sum_i |d_i|^2 - N |\bar d|^2\Big),

the coupled energy is :math:`U_\lambda = \lambda U_{\rm LJ} + (1-\lambda)(U_{\rm lat} + U_E)`,
:math:`U_{\rm lat}` the static lattice energy of the same (hard-cut) pair sum. Since
:math:`U_\lambda` is translation invariant, sampling it without a constraint gives the
fixed-centre-of-mass averages exactly, and

.. math:: \beta A_{\rm CM}(1) = \beta A_{\rm CM}(0)
          + \beta\int_0^1 \langle U_{\rm LJ} - U_{\rm lat} - U_E\rangle_\lambda\, d\lambda,

evaluated by Gauss–Legendre quadrature in :math:`\lambda`.

**Einstein crystal with fixed centre of mass** (Polson, Trizac, Pronk & Frenkel 2000,
J. Chem. Phys. 112, 5339; Vega & Noya 2007, J. Chem. Phys. 127, 154113). With
:math:`\delta(\bar d)` the constraint, the configurational integral is Gaussian:

.. math:: Q_{E,\rm CM} = \int d^{3N}d\; \delta(\bar d)\, e^{-\beta\Lambda_E\sum_i|d_i|^2}
          = \Big(\frac{\pi}{\beta\Lambda_E}\Big)^{3(N-1)/2} N^{3/2}

(the mean of :math:`N` Gaussians of variance :math:`1/(2\beta\Lambda_E)` has density
:math:`(N\beta\Lambda_E/\pi)^{3/2}` at 0); :func:`einstein_log_partition_com`.

**Assembly.** The crystal's partition function counts each of the :math:`N!` labellings of
the sites once and integrates the free translation over :math:`V`, so
:math:`Z_N = V Q_{\rm CM}/\Lambda^{3N}`; subtracting the exact finite-:math:`N` ideal gas
:math:`\beta A_{\rm id} = -\ln(V^N/(N!\Lambda^{3N}))` gives the *finite-N* excess free energy

.. math:: \frac{\beta A_{\rm ex}}{N} = \frac{(N-1)\ln V - \ln N!}{N}
          + \frac{\beta U^{\rm full}_{\rm lat}}{N} - \frac{\ln Q_{E,\rm CM}}{N}
          + \frac{\beta}{N}\int_0^1 \langle\partial_\lambda U\rangle_\lambda d\lambda
          + \beta\,\delta a_{\rm tail},

where the static lattice energy of the *full* potential replaces the hard-cut one
(:func:`fcc_lattice_energy`, exact lattice sums), and :math:`\delta a_{\rm tail}` is the
(first-order) thermal smearing of the pairs beyond :math:`r_c`,
:math:`\tfrac12\rho\int_{r_c}^\infty 4\pi r^2 \tfrac{2\,{\rm MSD}}{6}\nabla^2 u\,dr
= -16\pi\rho\,{\rm MSD}\,\varepsilon\sigma^6 r_c^{-5}` (the :math:`r^{-6}` part; MSD the mean
square displacement from the sites): :math:`\beta\delta a_{\rm tail} = -0.0074` for the
LJ solid at :math:`T^*=2, \rho^*=1.28` with :math:`r_c = 2.1\sigma`.

**Finite size.** The finite-:math:`N` result carries :math:`\ln N/N` terms (the free
translation, :math:`\ln N!`, the :math:`N^{3/2}` of the constraint, and the long-wavelength
phonons missing from the :math:`N`-point Brillouin-zone grid) and a :math:`1/N` remainder
(Polson et al. 2000). :func:`fcc_harmonic_free_energy` evaluates the *harmonic* crystal's
excess free energy exactly both for the periodic :math:`N`-particle cell and for
:math:`N\to\infty`, from the dynamical matrix of the FCC lattice (Born & Huang 1954;
Ashcroft & Mermin ch. 22),

.. math:: D(k) = \sum_{R\ne0}\Big[\big(u'' - \tfrac{u'}{r}\big)\hat R\hat R^{\sf T}
          + \tfrac{u'}{r} I\Big](1 - \cos k\cdot R),\qquad
          \frac{\beta A^{h}_{\rm CM}}{N} = -\frac{3\ln N}{2N}
          - \frac{1}{2N}\sum_{k\ne0,s}\ln\frac{2\pi}{\beta\kappa_s(k)},

on the :math:`N` wave vectors the periodic cell allows (Γ excluded) or averaged over the
zone; the difference :math:`\delta_N = a^h_\infty - a^h_N` is the harmonic finite-size
correction added to the Frenkel–Ladd value (:func:`harmonic_finite_size_correction`).
:func:`extrapolate_finite_size` fits :math:`a + b\ln N/N + c/N` (or :math:`a + c/N`) to
several sizes as a cross-check.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float
from scipy.special import gammaln

from .._checks import check_count, check_positive, check_real
from ..kernel import Kernel
from .lj import lj_pair
from .mc import metropolis_sweep, pair_energy_change, total_pair_energy

__all__ = [
    "FCC_A6",
    "FCC_A12",
    "FLInfo",
    "FLState",
    "FrenkelLadd",
    "einstein_energy",
    "einstein_log_partition_com",
    "extrapolate_finite_size",
    "fcc_lattice_energy",
    "frenkel_ladd_free_energy",
    "frenkel_ladd_mc",
    "fcc_harmonic_free_energy",
    "harmonic_finite_size_correction",
]

#: FCC lattice sums :math:`A_n = \sum_{j\ne0} (a/r_j)^n` in units of the nearest-neighbour
#: distance :math:`a` (Lennard-Jones & Ingham 1925; Kittel, *Introduction to Solid State
#: Physics*, ch. 3: 12.13188 and 14.45392). Checked in the tests against a direct sum.
FCC_A12 = 12.131880196
FCC_A6 = 14.453920885


def fcc_lattice_energy(density, sigma: float = 1.0, epsilon: float = 1.0):
    r"""Static lattice energy per particle of the full LJ potential on an FCC lattice.

    :math:`U_{\rm lat}/N = 2\varepsilon[A_{12}(\sigma/a)^{12} - A_6(\sigma/a)^6]`, with
    :math:`a = 2^{-1/2}(4/\rho)^{1/3}` the nearest-neighbour distance.
    """
    a = (4.0 / jnp.asarray(density)) ** (1.0 / 3.0) / jnp.sqrt(2.0)
    s6 = (sigma / a) ** 6
    return 2.0 * epsilon * (FCC_A12 * s6 * s6 - FCC_A6 * s6)


def einstein_log_partition_com(n_particles: int, temperature: float, spring: float) -> float:
    r""":math:`\ln Q_{E,\rm CM} = \tfrac{3(N-1)}{2}\ln\frac{\pi}{\beta\Lambda_E} + \tfrac32\ln N`.

    The configurational integral of :math:`N` particles bound to their sites by
    :math:`\Lambda_E |d_i|^2` with the mean displacement held at zero (module docstring).
    """
    check_count(n_particles, "n_particles", minimum=2)
    check_positive(temperature, "temperature")
    check_positive(spring, "spring")
    return 1.5 * (n_particles - 1) * np.log(np.pi * temperature / spring) + 1.5 * np.log(
        n_particles
    )


class FLState(NamedTuple):
    """State of :func:`frenkel_ladd_mc`.

    Attributes:
        positions: ``(n, 3)`` unwrapped positions.
        u_pair: ``()`` hard-cut pair energy :math:`U_{\\rm LJ}`.
        sum_d: ``(3,)`` :math:`\\sum_i d_i`.
        sum_d2: ``()`` :math:`\\sum_i |d_i|^2`.
    """

    positions: Float[Array, "n 3"]
    u_pair: Float[Array, ""]
    sum_d: Float[Array, " 3"]
    sum_d2: Float[Array, ""]


class FLInfo(NamedTuple):
    """Per-sweep diagnostics: ``acceptance_rate`` ``()``."""

    acceptance_rate: Float[Array, ""]


def frenkel_ladd_mc(
    displacement_fn: Callable[..., Array],
    lattice: Float[Array, "n 3"],
    *,
    temperature: float,
    spring: float,
    lam,
    step_size,
    pair_fn: Callable[[Array], Array] | None = None,
    sigma: float = 1.0,
    epsilon: float = 1.0,
    r_cut: float = 2.5,
) -> Kernel:
    r"""Metropolis sweeps of :math:`U_\lambda = \lambda U_{\rm LJ} + (1-\lambda)(U_{\rm lat}+U_E)`.

    Single-particle trial moves :math:`d_i \to d_i + \delta`,
    :math:`\delta\sim\mathcal U[-\Delta,\Delta]^3`, accepted with
    :math:`\min(1, e^{-\beta\Delta U_\lambda})`; :math:`\Delta U_{\rm LJ}` is an :math:`O(N)`
    minimum-image sum and :math:`\Delta U_E = \Lambda_E[\Delta\sum|d|^2 - (|D+\delta|^2 -
    |D|^2)/N]` is :math:`O(1)` (module docstring). Positions stay unwrapped (jax-md's
    periodic ``displacement_fn`` wraps pair differences), so :math:`d_i = r_i - r_i^0`.

    Args:
        displacement_fn: periodic displacement of the cell (:func:`.cells.periodic_space`).
        lattice: ``(n, 3)`` sites :math:`r_i^0`.
        temperature: :math:`k_BT`.
        spring: :math:`\Lambda_E` (energy / length²).
        lam: :math:`\lambda\in[0,1]` (may be traced, e.g. vmapped over nodes).
        step_size: :math:`\Delta` (may be traced).
        pair_fn: pair energy of a distance (default hard-cut LJ at ``r_cut``).

    Returns:
        ``Kernel``: ``init(positions) -> FLState``; ``step(key, state) -> (FLState,
        FLInfo)`` (one sweep of :math:`N` moves).
    """
    check_positive(temperature, "temperature")
    check_positive(spring, "spring")
    check_real(lam, "lam", low=0.0, high=1.0)  # skipped when traced
    check_positive(step_size, "step_size")
    check_positive(r_cut, "r_cut")
    beta = 1.0 / temperature
    sites = jnp.asarray(lattice)
    if sites.ndim != 2 or sites.shape[1] != 3:
        raise ValueError(f"lattice must have shape (n, 3), got {sites.shape}")
    n = sites.shape[0]
    if pair_fn is None:

        def pair_fn(r):
            return lj_pair(r, sigma, epsilon, r_cut)

    def init(positions: Float[Array, "n 3"]) -> FLState:
        positions = jnp.asarray(positions)
        if positions.shape != sites.shape:
            raise ValueError(f"positions must have shape {sites.shape}, got {positions.shape}")
        d = positions - sites
        u_pair = total_pair_energy(displacement_fn, pair_fn, positions)
        return FLState(positions, u_pair, jnp.sum(d, 0), jnp.sum(d * d))

    def delta_energy_fn(pos, aux, i, old, new, delta):
        u_pair, sum_d, sum_d2 = aux
        du_pair = pair_energy_change(displacement_fn, pair_fn, pos, i, old, new)
        d_old = old - sites[i]
        d_new = d_old + delta
        dsum_d2 = jnp.sum(d_new * d_new) - jnp.sum(d_old * d_old)
        new_sum_d = sum_d + delta
        du_e = spring * (dsum_d2 - (jnp.sum(new_sum_d**2) - jnp.sum(sum_d**2)) / n)
        du = lam * du_pair + (1.0 - lam) * du_e
        return du, (u_pair + du_pair, new_sum_d, sum_d2 + dsum_d2)

    def step(key, state: FLState) -> tuple[FLState, FLInfo]:
        pos, aux, acc = metropolis_sweep(
            key,
            state.positions,
            tuple(state[1:]),
            delta_energy_fn,
            beta=beta,
            step_size=step_size,
            n_moves=n,
        )
        return FLState(pos, *aux), FLInfo(acceptance_rate=acc)

    return Kernel(init=init, step=step)


def einstein_energy(state: FLState, spring: float) -> Float[Array, ""]:
    r""":math:`U_E = \Lambda_E(\sum|d_i|^2 - |\sum d_i|^2/N)` of an :class:`FLState`."""
    n = state.positions.shape[0]
    return spring * (state.sum_d2 - jnp.sum(state.sum_d**2) / n)


class FrenkelLadd(NamedTuple):
    """Result of :func:`frenkel_ladd_free_energy` (finite N, reduced units).

    Attributes:
        beta_free_energy: :math:`\\beta A_{\\rm ex}/N` of the N-particle periodic crystal.
        std_err: its standard error (from the quadrature nodes' errors).
        terms: the separate contributions (JSON-able dict).
    """

    beta_free_energy: float
    std_err: float
    terms: dict


def translation_term(n_particles: int, density: float) -> float:
    r"""The free translation of a crystal with its centre of mass fixed, with the ideal gas:
    :math:`[(N-1)\ln V - \ln N!]/N` with :math:`V = N/\rho` (Polson et al. 2000, eq. 16)."""
    n = int(n_particles)
    return float(((n - 1) * np.log(n / density) - gammaln(n + 1.0)) / n)


def thermal_tail_term(
    density: float,
    temperature: float,
    msd: float,
    r_cut: float | None,
    sigma: float = 1.0,
    epsilon: float = 1.0,
) -> float:
    r"""First-order thermal smearing of the pairs beyond the cut,
    :math:`\beta\,\delta a = -16\pi\beta\rho\,{\rm MSD}\,\varepsilon\sigma^6 r_c^{-5}`
    (0 when ``msd`` is 0); needs ``r_cut``."""
    if not msd:
        return 0.0
    if r_cut is None:
        raise ValueError("the thermal tail term needs r_cut")
    return float(-16.0 * np.pi * density * msd * epsilon * sigma**6 / r_cut**5 / temperature)


def frenkel_ladd_free_energy(
    n_particles: int,
    density: float,
    temperature: float,
    spring: float,
    lam_weights: Float[Array, " k"],
    du_dlam: Float[Array, " k"],
    du_dlam_std_err: Float[Array, " k"],
    *,
    lattice_energy_full: float,
    msd: float = 0.0,
    r_cut: float | None = None,
    sigma: float = 1.0,
    epsilon: float = 1.0,
) -> FrenkelLadd:
    r"""Assemble the finite-N excess free energy (module docstring, "Assembly").

    Args:
        n_particles, density, temperature: :math:`N, \rho^*, T^*`.
        spring: :math:`\Lambda_E`.
        lam_weights: quadrature weights on :math:`[0, 1]`, ``(k,)``.
        du_dlam: :math:`\langle U_{\rm LJ} - U_{\rm lat} - U_E\rangle_\lambda / N` at the
            nodes (hard-cut energies, lattice energy of the same cut), ``(k,)``.
        du_dlam_std_err: their independent standard errors, ``(k,)``.
        lattice_energy_full: :math:`U^{\rm full}_{\rm lat}/N` (:func:`fcc_lattice_energy`).
        msd: mean square displacement per particle at :math:`\lambda = 1`, for the
            thermal tail term (0 to omit); needs ``r_cut``.

    Returns:
        :class:`FrenkelLadd`.
    """
    w = np.asarray(lam_weights, np.float64)
    f = np.asarray(du_dlam, np.float64)
    s = np.asarray(du_dlam_std_err, np.float64)
    if not (w.shape == f.shape == s.shape) or w.ndim != 1 or w.size == 0:
        raise ValueError("weights, integrand and std errs must be equal-length 1-D arrays")
    if not np.all(np.isfinite(np.concatenate([w, f, s]))):
        raise ValueError("non-finite quadrature input")
    n = int(n_particles)
    beta = 1.0 / temperature
    translation = translation_term(n, density)
    einstein = -einstein_log_partition_com(n, temperature, spring) / n
    lattice = beta * float(lattice_energy_full)
    coupling = beta * float(np.sum(w * f))
    tail = thermal_tail_term(density, temperature, msd, r_cut, sigma, epsilon)
    total = translation + einstein + lattice + coupling + tail
    se = beta * float(np.sqrt(np.sum((w * s) ** 2)))
    terms = {
        "translation_and_ideal_gas": translation,
        "einstein_com": einstein,
        "lattice": lattice,
        "coupling_integral": coupling,
        "thermal_tail": tail,
    }
    return FrenkelLadd(float(total), se, terms)


def extrapolate_finite_size(
    n_particles, values, std_errs, *, log_coefficient: float | None = None
) -> tuple[float, float, np.ndarray]:
    r"""Weighted least-squares extrapolation of :math:`\beta A_{\rm ex}/N` to :math:`N\to\infty`.

    Model :math:`y_N = a + b\,\ln N/N + c/N` (Polson et al. 2000); with
    ``log_coefficient`` given, :math:`b` is fixed and only :math:`a, c` are fitted.

    Returns:
        ``(a, std_err_a, coefficients)``.
    """
    n = np.asarray(n_particles, np.float64)
    y = np.asarray(values, np.float64)
    s = np.asarray(std_errs, np.float64)
    if log_coefficient is not None:
        y = y - log_coefficient * np.log(n) / n
        x = np.stack([np.ones_like(n), 1.0 / n], 1)
    else:
        x = np.stack([np.ones_like(n), np.log(n) / n, 1.0 / n], 1)
    if n.size < x.shape[1]:
        raise ValueError(f"need at least {x.shape[1]} sizes, got {n.size}")
    wx = x / s[:, None]
    cov = np.linalg.inv(wx.T @ wx)
    coef = cov @ (wx.T @ (y / s))
    return float(coef[0]), float(np.sqrt(cov[0, 0])), coef


def _fcc_vectors(density: float, r_max: float) -> np.ndarray:
    """FCC lattice vectors with ``0 < |R| < r_max``, shape ``(m, 3)``."""
    a_c = (4.0 / density) ** (1.0 / 3.0)
    m = int(np.ceil(r_max / a_c)) + 1
    g = np.arange(-m, m + 1)
    cells = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    pts = (cells[:, None, :] + basis[None]).reshape(-1, 3) * a_c
    r = np.linalg.norm(pts, axis=1)
    return pts[(r > 1e-9) & (r < r_max)]


def _fcc_force_constant_eigs(density, kpts, r_max, sigma, epsilon):
    """Eigenvalues ``(k, 3)`` of the dynamical matrix D(k) (module docstring)."""
    vec = _fcc_vectors(density, r_max)
    r = np.linalg.norm(vec, axis=1)
    s6 = (sigma / r) ** 6
    du = 4.0 * epsilon * (-12.0 * s6 * s6 + 6.0 * s6) / r
    d2u = 4.0 * epsilon * (156.0 * s6 * s6 - 42.0 * s6) / r**2
    rr = vec / r[:, None]
    phi = (d2u - du / r)[:, None, None] * rr[:, :, None] * rr[:, None, :] + (du / r)[
        :, None, None
    ] * np.eye(3)
    out = []
    for chunk in np.array_split(kpts, max(1, len(kpts) // 4096)):
        c = 1.0 - np.cos(chunk @ vec.T)  # (k, m)
        out.append(np.linalg.eigvalsh(np.einsum("km,mab->kab", c, phi)))
    return np.concatenate(out)


def fcc_harmonic_free_energy(
    density: float,
    temperature: float,
    n_cells: int | None = None,
    *,
    r_max: float = 6.0,
    n_zone: int = 12,
    sigma: float = 1.0,
    epsilon: float = 1.0,
) -> float:
    r"""Excess free energy :math:`\beta A^h_{\rm ex}/N` of the harmonic LJ FCC crystal.

    Finite ``n_cells`` (:math:`N = 4n^3`, periodic cubic cell): the same assembly as
    :func:`frenkel_ladd_free_energy` with the exact harmonic fixed-COM configurational
    integral :math:`N^{3/2}\prod_{k\ne0,s}(2\pi/\beta\kappa_s(k))^{1/2}` over the :math:`N`
    allowed wave vectors. ``n_cells=None``: the :math:`N\to\infty` limit,
    :math:`1 - \ln\rho + \beta U_{\rm lat}/N - \tfrac32\langle\ln(2\pi/\beta\kappa)\rangle_{\rm BZ}`,
    the zone average on the shifted ``n_zone`` grid. Pairs up to ``r_max`` (the static lattice
    energy is always the full :func:`fcc_lattice_energy`).

    The allowed wave vectors of the cell of side :math:`n a_c` are
    :math:`k = 2\pi m/(n a_c)`; the grid :math:`m\in[0, 2n)^3` covers two Brillouin zones
    (the reciprocal lattice is BCC with conventional side :math:`4\pi/a_c`), so every
    :math:`k` appears twice and Γ-equivalent points (all-even or all-odd :math:`m/n`) are
    dropped.
    """
    check_positive(density, "density")
    check_positive(temperature, "temperature")
    check_positive(r_max, "r_max")
    n_grid = check_count(n_zone, "n_zone") if n_cells is None else check_count(n_cells, "n_cells")
    a_c = (4.0 / density) ** (1.0 / 3.0)
    g = np.arange(2 * n_grid)
    m = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3).astype(np.float64)
    if n_cells is None:
        m = m + 0.5  # shifted (Monkhorst-Pack) grid: avoids Γ, converges fast
    else:
        mi = m.astype(np.int64)
        gamma = np.all(mi % n_grid == 0, axis=1) & (
            np.all((mi // n_grid) % 2 == 0, axis=1) | np.all((mi // n_grid) % 2 == 1, axis=1)
        )
        m = m[~gamma]
    kpts = 2.0 * np.pi * m / (n_grid * a_c)
    kappa = _fcc_force_constant_eigs(density, kpts, r_max, sigma, epsilon)
    if np.any(kappa <= 0):
        raise ValueError("the FCC lattice is mechanically unstable at this density")
    beta = 1.0 / temperature
    log_terms = np.log(2.0 * np.pi / (beta * kappa))  # (k, 3)
    lattice = beta * float(fcc_lattice_energy(density, sigma, epsilon))
    if n_cells is None:
        return float(1.0 - np.log(density) + lattice - 1.5 * log_terms.mean())
    n = 4 * n_grid**3
    volume = n / density
    translation = ((n - 1) * np.log(volume) - gammaln(n + 1.0)) / n
    harmonic = -1.5 * np.log(n) / n - 0.5 * (0.5 * log_terms.sum()) / n
    return float(translation + lattice + harmonic)


def harmonic_finite_size_correction(density: float, temperature: float, n_cells: int, **kw):
    r""":math:`\delta_N = \beta A^h_{\rm ex}/N\,(N\to\infty) - \beta A^h_{\rm ex}/N\,(N)`.

    Add it to a finite-:math:`N` Frenkel–Ladd result (same cell) to estimate the
    :math:`N\to\infty` value; the anharmonic part's size dependence is left out.
    """
    return fcc_harmonic_free_energy(density, temperature, None, **kw) - fcc_harmonic_free_energy(
        density, temperature, n_cells, **kw
    )
