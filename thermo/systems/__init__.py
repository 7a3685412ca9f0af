r"""The systems registry: Boltzmann targets by name.

.. code-block:: python

    import thermo.systems as systems
    system = systems.get("lj13")        # DEM/EFM convention, beta = 1
    u = system.energy(x)                # (dim,) -> ()
    logp = jax.vmap(system.log_prob)(xs)  # -beta * U, unnormalised

Every system has ``energy``, ``log_prob``, ``score``, ``force``, ``beta``, ``dim``,
``log_z`` (exact :math:`\log\int e^{-\beta U(x)}dx` or ``None``), ``sample(key, n)``
(exact samples, or ``NotImplementedError``), ``initial_positions(key, n)``,
``prior_scale``, ``n_particles`` and ``spatial_dim`` (``None`` for toy systems).

Registered names (``log_z`` is exact where given; "exact samples" means ``sample``
works, otherwise it raises ``NotImplementedError``):

- ``gaussian-<d>``: :math:`\mathcal N(0, I_d)` for any d >= 1; closed-form log Z; exact samples.
- ``gmm40``: FAB's 40-mode 2-D mixture with reproducibly seeded means; log Z = 0; exact samples.
- ``mw5``: :math:`U = \sum_i (x_i^2 - 4)^2`, d = 5; log Z by quadrature; exact samples.
- ``mw32``: FAB's many-well, d = 32; log Z = 164.6957 (quadrature); exact samples.
- ``funnel``: Neal's funnel, d = 10, :math:`\sigma = 3`; log Z = 0; exact samples.
- ``dw4``: DW-4, 4 particles in 2-D, :math:`\beta = 1`; log Z unknown.
- ``lj13``, ``lj55``: Lennard-Jones, DEM/EFM convention (ordered pairs, centroid
  restraint), :math:`\beta = 1`; log Z unknown.
- ``lj13-standard``, ``lj55-standard``: :math:`\sum_{i<j} 4\varepsilon[(\sigma/r)^{12} -
  (\sigma/r)^6]`, :math:`\varepsilon = \sigma = 1`, :math:`k_BT = \varepsilon/2`; log Z unknown.

The project's own reference samples for the particle systems live next to this
registry (``reference_samples``, added by the MCMC work).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ._base import ParticleSystem as ParticleSystem
from ._base import System as System
from ._base import pairwise_distances as pairwise_distances
from ._base import pairwise_squared_distances as pairwise_squared_distances
from ._base import remove_com as remove_com
from ._particles import LennardJonesCluster as LennardJonesCluster
from ._particles import MultiDoubleWell as MultiDoubleWell
from ._particles import dw4 as dw4
from ._particles import lennard_jones_dem as lennard_jones_dem
from ._particles import lennard_jones_standard as lennard_jones_standard
from ._particles import lj_pair_energy as lj_pair_energy
from ._reference import reference_samples as reference_samples
from ._structures import Relaxed as Relaxed
from ._structures import icosahedron_vertices as icosahedron_vertices
from ._structures import mackay_icosahedron as mackay_icosahedron
from ._structures import relax as relax
from ._toy import Funnel as Funnel
from ._toy import Gaussian as Gaussian
from ._toy import GaussianMixture as GaussianMixture
from ._toy import ManyWell as ManyWell
from ._toy import fab_many_well as fab_many_well
from ._toy import gmm40 as gmm40
from ._toy import symmetric_many_well as symmetric_many_well

_REGISTRY: dict[str, Callable[[], System]] = {}
# Systems are immutable, so each is built once (the many-wells do quadrature at
# construction) and shared.
_CACHE: dict[str, System] = {}
_PATTERNS: list[tuple[str, re.Pattern, Callable[[re.Match], System]]] = []


def register(name: str, factory: Callable[[], System], *, overwrite: bool = False) -> None:
    """Register ``factory`` (no arguments, returns a :class:`System`) under ``name``.

    Raises:
        ValueError: if ``name`` is taken and ``overwrite`` is False.
    """
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"system {name!r} is already registered")
    _REGISTRY[name] = factory
    _CACHE.pop(name, None)


def _register_pattern(label: str, pattern: str, factory: Callable[[re.Match], System]) -> None:
    _PATTERNS.append((label, re.compile(pattern), factory))


def names() -> list[str]:
    """The registered names; parametrised families appear as patterns (``gaussian-<d>``)."""
    return sorted(_REGISTRY) + [label for label, _, _ in _PATTERNS]


def is_registered(name: str) -> bool:
    """Whether :func:`get` knows ``name`` (a registered name or a match of a pattern such as
    ``gaussian-<d>``), without building the system."""
    if name in _REGISTRY:
        return True
    return any(pattern.fullmatch(name) for _, pattern, _ in _PATTERNS)


def get(name: str) -> System:
    """The system registered under ``name`` (see the module docstring for the table).

    Systems are immutable; each is built on first request and then shared.

    Raises:
        KeyError: for an unknown name, listing the known ones.
    """
    if name in _CACHE:
        return _CACHE[name]
    if name in _REGISTRY:
        _CACHE[name] = _REGISTRY[name]()
        return _CACHE[name]
    for _, pattern, factory in _PATTERNS:
        match = pattern.fullmatch(name)
        if match:
            _CACHE[name] = factory(match)
            return _CACHE[name]
    raise KeyError(f"unknown system {name!r}; known: {', '.join(names())}")


register("gmm40", gmm40)
register("mw5", lambda: symmetric_many_well(5))
register("mw32", lambda: fab_many_well(32))
register("funnel", lambda: Funnel(10, 3.0))
register("dw4", dw4)
register("lj13", lambda: lennard_jones_dem(13))
register("lj55", lambda: lennard_jones_dem(55))
register("lj13-standard", lambda: lennard_jones_standard(13))
register("lj55-standard", lambda: lennard_jones_standard(55))
_register_pattern("gaussian-<d>", r"gaussian-([1-9][0-9]*)", lambda m: Gaussian(int(m.group(1))))

__all__ = [
    "Funnel",
    "Gaussian",
    "GaussianMixture",
    "LennardJonesCluster",
    "ManyWell",
    "MultiDoubleWell",
    "ParticleSystem",
    "Relaxed",
    "System",
    "dw4",
    "fab_many_well",
    "get",
    "gmm40",
    "icosahedron_vertices",
    "is_registered",
    "lennard_jones_dem",
    "lennard_jones_standard",
    "lj_pair_energy",
    "mackay_icosahedron",
    "names",
    "pairwise_distances",
    "pairwise_squared_distances",
    "register",
    "relax",
    "remove_com",
    "symmetric_many_well",
]
