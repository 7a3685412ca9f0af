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

Registered names:

===================================  =============================================  ==========
name                                 what                                           log Z
===================================  =============================================  ==========
``gaussian-<d>``                     :math:`\mathcal N(0, I_d)`, any d >= 1          exact
``gmm40``                            FAB's 40-mode 2-D mixture (own seeded means)   0
``mw5``                              :math:`\sum_i (x_i^2-4)^2`, d = 5               quadrature
``mw32``                             FAB's many-well, d = 32                         164.6957
``funnel``                           Neal's funnel, d = 10, sigma = 3               0
``dw4``                              DW-4, 4 particles in 2-D                        None
``lj13``, ``lj55``                   LJ, DEM/EFM convention, beta = 1                None
``lj13-standard``, ``lj55-standard``  LJ, 4eps[(s/r)^12-(s/r)^6], kT = eps/2         None
===================================  =============================================  ==========
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
_PATTERNS: list[tuple[str, re.Pattern, Callable[[re.Match], System]]] = []


def register(name: str, factory: Callable[[], System], *, overwrite: bool = False) -> None:
    """Register ``factory`` (no arguments, returns a :class:`System`) under ``name``.

    Raises:
        ValueError: if ``name`` is taken and ``overwrite`` is False.
    """
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"system {name!r} is already registered")
    _REGISTRY[name] = factory


def _register_pattern(label: str, pattern: str, factory: Callable[[re.Match], System]) -> None:
    _PATTERNS.append((label, re.compile(pattern), factory))


def names() -> list[str]:
    """The registered names; parametrised families appear as patterns (``gaussian-<d>``)."""
    return sorted(_REGISTRY) + [label for label, _, _ in _PATTERNS]


def get(name: str) -> System:
    """Build the system registered under ``name`` (see the module docstring for the table).

    Raises:
        KeyError: for an unknown name, listing the known ones.
    """
    if name in _REGISTRY:
        return _REGISTRY[name]()
    for _, pattern, factory in _PATTERNS:
        match = pattern.fullmatch(name)
        if match:
            return factory(match)
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
