r"""Sample-quality metrics shared by every sampler (host-side NumPy/SciPy).

All metrics compare a set of samples ``x`` (the sampler's) with a set ``y`` (the
reference) and are what the diffusion-sampler literature reports (DEM/iDEM,
Akhound-Sadegh et al. 2024; Adjoint Sampling / ASBS, Havens et al. 2025; Liu et al. 2025):

* :func:`energy_w2` — exact 1-D :math:`W_2` between the two energy distributions,
  :math:`W_2^2 = \int_0^1 (F^{-1}(u) - G^{-1}(u))^2\,du` with the empirical quantile
  functions (step functions), integrated exactly over the merged breakpoints; equal
  *and* unequal sample sizes (equal sizes reduce to sorting and pairing).
* :func:`coordinate_w2` — :math:`W_2` between the sample sets in coordinate space.
  DEM/iDEM's "x-W2"/"data W2" is the exact discrete OT (POT ``emd2``) with squared
  Euclidean cost on the raw flattened coordinates. For particle systems we first
  remove the centre of mass and align every sample to a common template by optimal
  permutation (Hungarian, :func:`scipy.optimize.linear_sum_assignment`) and proper
  rotation (Kabsch 1976), see :func:`align`; then solve the exact OT with squared
  Euclidean cost between the two equal-size aligned sets (an assignment problem,
  again ``linear_sum_assignment``) and report :math:`\sqrt{\min_\sigma \frac1n
  \sum_i |x_i - y_{\sigma(i)}|^2}`. ``alignment="pairwise"`` instead aligns every
  pair :math:`(x_i, y_j)` (the exact :math:`W_2` on the quotient by
  :math:`E(3)\times S_n`, O(nm) alignments, for small sets); ``alignment="none"``
  reproduces DEM's raw-coordinate number.
* :func:`distance_histogram_metrics` — total variation
  :math:`\tfrac12\sum_b |p_b - q_b|` between the interatomic-distance histograms
  (common bins over the pooled range, 100 bins by default) and the exact 1-D
  :math:`W_2` between the pooled pairwise distances.
* :func:`mmd` — unbiased :math:`\mathrm{MMD}^2` (Gretton et al. 2012, eq. 3) with the
  Gaussian RBF kernel :math:`k(a, b) = \exp(-|a-b|^2 / (2h^2))`, bandwidth :math:`h`
  the median pairwise distance of the pooled sample (median heuristic) unless given.
* :func:`log_z_error` — :math:`\widehat{\log Z} - \log Z`.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import numpy as np
from jaxtyping import Array, Float
from scipy.optimize import linear_sum_assignment

from ._checks import check_count, check_positive
from .systems._base import remove_com

__all__ = [
    "align",
    "coordinate_w2",
    "distance_histogram_metrics",
    "energy_w2",
    "interatomic_distances",
    "kabsch",
    "log_z_error",
    "mmd",
    "sample_metrics",
    "w2_1d",
]


def _as_1d(a, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    if a.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")
    return a


def _as_2d(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must have shape (n, dim) with n > 0, got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or inf")
    return x


def w2_1d(a: Float[Array, " n"], b: Float[Array, " m"]) -> float:
    r"""Exact 1-D Wasserstein-2 distance between two empirical distributions.

    .. math:: W_2^2 = \int_0^1 \bigl(F_a^{-1}(u) - F_b^{-1}(u)\bigr)^2 du,

    where the empirical quantile functions are constant on ``(i/n, (i+1)/n]`` and
    ``(j/m, (j+1)/m]``; the integral is summed exactly over the merged breakpoints.
    """
    a = np.sort(_as_1d(a, "a"))
    b = np.sort(_as_1d(b, "b"))
    if a.size == b.size:
        return float(np.sqrt(np.mean((a - b) ** 2)))
    u = np.union1d(np.arange(1, a.size + 1) / a.size, np.arange(1, b.size + 1) / b.size)
    u = u[u <= 1.0]
    du = np.diff(np.concatenate([[0.0], u]))
    mid = u - 0.5 * du
    ia = np.minimum((mid * a.size).astype(int), a.size - 1)
    ib = np.minimum((mid * b.size).astype(int), b.size - 1)
    return float(np.sqrt(np.sum(du * (a[ia] - b[ib]) ** 2)))


def energy_w2(energies_x: Float[Array, " n"], energies_y: Float[Array, " m"]) -> float:
    """Energy :math:`W_2`: :func:`w2_1d` of the two samples' energies (same convention)."""
    return w2_1d(energies_x, energies_y)


def kabsch(x: Float[Array, "n d"], ref: Float[Array, "n d"]) -> np.ndarray:
    r"""Proper rotation :math:`R` minimising :math:`\sum_i |R x_i - r_i|^2` (Kabsch 1976).

    Both point sets must already be centred. With :math:`H = x^\top r = U S V^\top`,
    :math:`R = V \operatorname{diag}(1, \dots, 1, \det(VU^\top)) U^\top`.

    Returns:
        ``(d, d)`` rotation; apply as ``x @ R.T``.
    """
    h = x.T @ ref
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    corr = np.eye(x.shape[1])
    corr[-1, -1] = d if d != 0 else 1.0
    return vt.T @ corr @ u.T


def _principal_rotations(x: np.ndarray, ref: np.ndarray) -> list[np.ndarray]:
    # Candidate rotations mapping x's principal axes onto ref's (all sign choices with
    # det = +1), used to start the permutation/rotation alternation.
    _, vx = np.linalg.eigh(x.T @ x)
    _, vr = np.linalg.eigh(ref.T @ ref)
    d = x.shape[1]
    out = []
    for signs in np.array(np.meshgrid(*[[1.0, -1.0]] * d)).reshape(d, -1).T:
        r = vr @ np.diag(signs) @ vx.T
        if np.linalg.det(r) > 0:
            out.append(r)
    return out


def align(
    x: Float[Array, " dim"],
    ref: Float[Array, " dim"],
    n_particles: int,
    spatial_dim: int,
    *,
    n_iterations: int = 5,
) -> tuple[np.ndarray, float]:
    r"""Align ``x`` to ``ref`` over translations, permutations and proper rotations.

    Minimises :math:`\min_{P, R} \sum_i |R x_{P(i)} - r_i|^2` approximately by
    alternating the Hungarian algorithm (Kuhn 1955) for :math:`P` at fixed :math:`R` and
    Kabsch for :math:`R` at fixed :math:`P`, started from every principal-axes
    correspondence (the sign choices with det = +1), keeping the best. Exact when ``x``
    is a rotated, permuted, translated copy of ``ref`` with distinct principal moments.

    Args:
        x, ref: flat configurations ``(n_particles * spatial_dim,)``.
        n_iterations: alternations per start.

    Returns:
        ``(aligned_x, squared_distance)``: the aligned flat configuration (centred on
        ``ref``'s centre of mass at 0) and :math:`\sum_i |R x_{P(i)} - r_i|^2`.
    """
    n_iterations = check_count(n_iterations, "n_iterations")
    px = np.asarray(x, dtype=np.float64).reshape(n_particles, spatial_dim)
    pr = np.asarray(ref, dtype=np.float64).reshape(n_particles, spatial_dim)
    px = px - px.mean(axis=0)
    pr = pr - pr.mean(axis=0)
    best, best_d2 = px, np.inf
    for rot in _principal_rotations(px, pr):
        cur = px @ rot.T
        for _ in range(n_iterations):
            cost = np.sum((cur[:, None, :] - pr[None, :, :]) ** 2, axis=-1)
            rows, cols = linear_sum_assignment(cost)
            perm = np.empty(n_particles, dtype=int)
            perm[cols] = rows  # ref particle j is matched by x particle perm[j]
            rot = kabsch(px[perm], pr)
            cur = px @ rot.T
        d2 = float(np.sum((cur[perm] - pr) ** 2))
        if d2 < best_d2:
            best, best_d2 = cur[perm], d2
    return best.reshape(-1), best_d2


def _exact_ot_w2(x: np.ndarray, y: np.ndarray) -> float:
    cost = np.sum((x[:, None, :] - y[None, :, :]) ** 2, axis=-1)
    rows, cols = linear_sum_assignment(cost)
    return float(np.sqrt(cost[rows, cols].mean()))


def coordinate_w2(
    x: Float[Array, "n dim"],
    y: Float[Array, "m dim"],
    *,
    n_particles: int | None = None,
    spatial_dim: int | None = None,
    alignment: str = "template",
    max_samples: int | None = 1000,
    template: Float[Array, " dim"] | None = None,
) -> float:
    r"""Coordinate :math:`W_2` between two sample sets, optionally after alignment.

    Exact discrete OT with squared Euclidean cost between two *equal-size* sets (both
    truncated to ``min(n, m, max_samples)`` leading samples), solved as an assignment
    problem: :math:`W_2 = \sqrt{\min_\sigma \frac1k\sum_i |x_i - y_{\sigma(i)}|^2}`.

    Args:
        x, y: ``(n, dim)``, ``(m, dim)``.
        n_particles, spatial_dim: for particle systems; ``None`` means plain vectors.
        alignment: ``"template"`` (align every sample to ``template``, default the first
            sample of ``y``, by :func:`align`), ``"pairwise"`` (the cost of each pair is
            its aligned squared distance; the exact quotient-space W2, small sets only),
            or ``"none"`` (raw coordinates, DEM's "x-W2").
        max_samples: cap on the set size (the assignment is O(k^3)).
        template: optional template configuration.

    Returns:
        :math:`W_2` (same units as the coordinates).
    """
    x = _as_2d(x, "x")
    y = _as_2d(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"dimension mismatch: {x.shape} vs {y.shape}")
    k = min(x.shape[0], y.shape[0], max_samples or x.shape[0])
    x, y = x[:k], y[:k]
    if n_particles is None or alignment == "none":
        return _exact_ot_w2(x, y)
    n, d = int(n_particles), int(spatial_dim)
    if alignment == "template":
        ref = y[0] if template is None else np.asarray(template, dtype=np.float64)
        xa = np.stack([align(xi, ref, n, d)[0] for xi in x])
        ya = np.stack([align(yi, ref, n, d)[0] for yi in y])
        return _exact_ot_w2(xa, ya)
    if alignment == "pairwise":
        cost = np.array([[align(xi, yj, n, d, n_iterations=3)[1] for yj in y] for xi in x])
        rows, cols = linear_sum_assignment(cost)
        return float(np.sqrt(cost[rows, cols].mean()))
    raise ValueError(f"alignment must be 'template', 'pairwise' or 'none', got {alignment!r}")


def interatomic_distances(
    x: Float[Array, "n dim"], n_particles: int, spatial_dim: int
) -> np.ndarray:
    """All unique-pair distances of every sample, flattened to ``(n * n_pairs,)``."""
    x = _as_2d(x, "x").reshape(-1, n_particles, spatial_dim)
    i, j = np.triu_indices(n_particles, 1)
    return np.linalg.norm(x[:, i] - x[:, j], axis=-1).reshape(-1)


def distance_histogram_metrics(
    x: Float[Array, "n dim"],
    y: Float[Array, "m dim"],
    n_particles: int,
    spatial_dim: int,
    *,
    bins: int = 100,
    range_: tuple[float, float] | None = None,
) -> dict[str, float]:
    r"""TV and :math:`W_2` between the interatomic-distance distributions.

    TV :math:`= \tfrac12\sum_b |p_b - q_b|` of the normalised histograms on ``bins``
    common bins over ``range_`` (default: the pooled min/max); :math:`W_2` is the exact
    :func:`w2_1d` between all pooled pairwise distances of each set.

    Returns:
        ``{"tv": ..., "w2": ...}``.
    """
    dx = interatomic_distances(x, n_particles, spatial_dim)
    dy = interatomic_distances(y, n_particles, spatial_dim)
    if range_ is None:
        range_ = (min(dx.min(), dy.min()), max(dx.max(), dy.max()))
    bins = check_count(bins, "bins")
    hx, _ = np.histogram(dx, bins=bins, range=range_)
    hy, _ = np.histogram(dy, bins=bins, range=range_)
    tv = 0.5 * np.abs(hx / hx.sum() - hy / hy.sum()).sum()
    return {"tv": float(tv), "w2": w2_1d(dx, dy)}


def mmd(
    x: Float[Array, "n dim"], y: Float[Array, "m dim"], *, bandwidth: float | None = None
) -> float:
    r"""Unbiased squared MMD with a Gaussian RBF kernel (Gretton et al. 2012, eq. 3).

    .. math:: \mathrm{MMD}_u^2 = \tfrac{1}{n(n-1)}\sum_{i\ne i'}k(x_i,x_{i'})
              + \tfrac{1}{m(m-1)}\sum_{j\ne j'}k(y_j,y_{j'})
              - \tfrac{2}{nm}\sum_{i,j}k(x_i,y_j),

    with :math:`k(a,b) = \exp(-|a-b|^2/(2h^2))` and :math:`h` the median pairwise
    distance of the pooled sample unless ``bandwidth`` is given. May be slightly
    negative (it is unbiased).
    """
    x = _as_2d(x, "x")
    y = _as_2d(y, "y")
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise ValueError("mmd needs at least 2 samples in each set")

    def sq(a, b):
        return np.maximum(np.sum(a * a, 1)[:, None] + np.sum(b * b, 1)[None, :] - 2 * a @ b.T, 0.0)

    dxx, dyy, dxy = sq(x, x), sq(y, y), sq(x, y)
    if bandwidth is not None:
        check_positive(bandwidth, "bandwidth")
    if bandwidth is None:
        pooled = np.concatenate([dxx[np.triu_indices_from(dxx, 1)], dxy.ravel()])
        bandwidth = float(np.sqrt(np.median(pooled)))
    g = 1.0 / (2.0 * bandwidth**2)
    n, m = x.shape[0], y.shape[0]
    kxx = (np.exp(-g * dxx).sum() - n) / (n * (n - 1))
    kyy = (np.exp(-g * dyy).sum() - m) / (m * (m - 1))
    kxy = np.exp(-g * dxy).mean()
    return float(kxx + kyy - 2 * kxy)


def log_z_error(estimate: float, exact: float | None) -> float | None:
    r""":math:`\widehat{\log Z} - \log Z` (``None`` when the exact value is unknown)."""
    if exact is None:
        return None
    return float(estimate) - float(exact)


def sample_metrics(
    system: Any,
    samples: Float[Array, "n dim"],
    reference: Float[Array, "m dim"],
    *,
    log_z: float | None = None,
    max_samples: int = 1000,
    coordinate: bool = True,
) -> dict[str, float | None]:
    """Every shared metric of ``samples`` against ``reference`` for ``system``.

    Returns a JSON-able dict: ``energy_w2``, ``mmd`` (RBF, median heuristic, on the
    COM-free coordinates of at most ``max_samples`` samples), ``coordinate_w2``
    (aligned for particle systems), ``distance_tv``/``distance_w2`` (particle systems),
    ``log_z_error`` (where ``system.log_z`` and ``log_z`` are known).
    """
    samples = _as_2d(samples, "samples")
    reference = _as_2d(reference, "reference")
    out: dict[str, float | None] = {
        "energy_w2": energy_w2(
            np.asarray(_energies(system, samples)), np.asarray(_energies(system, reference))
        )
    }
    n_p, s_d = getattr(system, "n_particles", None), getattr(system, "spatial_dim", None)
    xs, ys = samples[:max_samples], reference[:max_samples]
    if n_p is not None:
        # NumPy in, NumPy out: float64 whatever JAX's precision
        xs, ys = remove_com(xs, n_p, s_d), remove_com(ys, n_p, s_d)
        out.update(
            {
                f"distance_{k}": v
                for k, v in distance_histogram_metrics(samples, reference, n_p, s_d).items()
            }
        )
    out["mmd"] = mmd(xs, ys)
    if coordinate:
        out["coordinate_w2"] = coordinate_w2(
            xs, ys, n_particles=n_p, spatial_dim=s_d, max_samples=max_samples
        )
    out["log_z_error"] = log_z_error(log_z, system.log_z) if log_z is not None else None
    return out


@eqx.filter_jit
def _energies(system: Any, x: Float[Array, "n dim"]) -> Float[Array, " n"]:
    """``system.energy`` over a batch, compiled once per system and shape."""
    return jax.vmap(system.energy)(x)
