"""Schrödinger bridges on the shared SDE core.

* :func:`gaussian_bridge`: the closed-form Gaussian bridge (Bunne et al. 2023), the
  reference solution every other solver is checked against;
* :func:`entropic_plan` / :func:`sinkhorn_bridge`: static entropic OT between samples with
  ott-jax (cost ``|x-y|^2``, ``epsilon = 2 sigma^2``) and the plug-in Sinkhorn bridge
  (Pooladian & Niles-Weed 2024);
* :func:`ipf`: IPF / Diffusion Schrödinger Bridge (De Bortoli et al. 2021);
* :class:`AffineDrift`: the drift network of both (affine in ``x`` plus an MLP residual);
* :func:`plug_in_floor` / :func:`paired_coupling_errors`: how a learned Gaussian bridge is
  scored (the closed form estimated from the same data; common-random-number errors);
* :func:`dsbm`: iterative Markovian fitting / bridge matching (Shi et al. 2023);
* :mod:`bridges.benchmark`: the Gaussian-mixture benchmark with a known plan (Gushchin et
  al. 2023), cBW2-UVP, and the LightSB solver (Korotin et al. 2024);
* :mod:`bridges.thermodynamics`: KL to the reference and work along a bridge;
* :func:`path_ensemble`: a bridge's simulated paths as a :class:`thermo.paths.PathEnsemble`
  with their Girsanov weights against the reference (:mod:`bridges.paths`).
"""

from ._common import AffineDrift as AffineDrift
from ._common import paired_coupling_errors as paired_coupling_errors
from .benchmark import LightSB as LightSB
from .benchmark import cbw2_uvp as cbw2_uvp
from .benchmark import fit_lightsb as fit_lightsb
from .benchmark import make_benchmark as make_benchmark
from .dsbm import DSBMResult as DSBMResult
from .dsbm import dsbm as dsbm
from .gaussian import GaussianBridge as GaussianBridge
from .gaussian import gaussian_bridge as gaussian_bridge
from .gaussian import plug_in_floor as plug_in_floor
from .ipf import IPFResult as IPFResult
from .ipf import ipf as ipf
from .paths import BridgePaths as BridgePaths
from .paths import path_ensemble as path_ensemble
from .sinkhorn import EntropicPlan as EntropicPlan
from .sinkhorn import SinkhornBridge as SinkhornBridge
from .sinkhorn import entropic_plan as entropic_plan
from .sinkhorn import epsilon_from_sigma as epsilon_from_sigma
from .sinkhorn import sinkhorn_bridge as sinkhorn_bridge
from .thermodynamics import bridge_work as bridge_work
from .thermodynamics import girsanov_kl as girsanov_kl

__all__ = [
    "AffineDrift",
    "BridgePaths",
    "path_ensemble",
    "LightSB",
    "cbw2_uvp",
    "fit_lightsb",
    "make_benchmark",
    "bridge_work",
    "girsanov_kl",
    "DSBMResult",
    "EntropicPlan",
    "GaussianBridge",
    "IPFResult",
    "SinkhornBridge",
    "dsbm",
    "entropic_plan",
    "epsilon_from_sigma",
    "gaussian_bridge",
    "ipf",
    "paired_coupling_errors",
    "plug_in_floor",
    "sinkhorn_bridge",
]
