"""Diffusion models and diffusion samplers, built on thermo's SDEs.

* :mod:`generative.processes` — VP, VE, sub-VP forward processes (thermo SDEs with
  closed-form kernels); :mod:`generative.schedules` — linear and cosine schedules.
* :mod:`generative.exact` — Gaussian-mixture data with exact marginals and scores.
* :mod:`generative.networks` — MLP, EGNN, flax adapters; :mod:`generative.score` —
  noise-prediction score models.
* :mod:`generative.training` — denoising score matching (optax), checkpoint/resume.
* :mod:`generative.sampling` — reverse SDE (Euler–Maruyama, diffrax), predictor–corrector,
  probability-flow ODE.
* :mod:`generative.likelihood` — exact log-likelihood by the probability-flow ODE.
* :mod:`generative.thermodynamics` — entropy production, path log-weights, ELBO as
  minus a mean work, importance-weighted log-likelihood.
"""

from . import periodic as periodic  # torus diffusion for periodic particles
from . import samplers as samplers  # PIS, DDS, CMCD, iDEM
from .exact import GaussianMixture as GaussianMixture
from .exact import exact_score_fn as exact_score_fn
from .exact import marginal_mixture as marginal_mixture
from .likelihood import log_likelihood as log_likelihood
from .processes import VE as VE
from .processes import VP as VP
from .processes import AbstractDiffusionProcess as AbstractDiffusionProcess
from .processes import SubVP as SubVP
from .sampling import predictor_corrector as predictor_corrector
from .sampling import sample_predictor_corrector as sample_predictor_corrector
from .sampling import sample_probability_flow as sample_probability_flow
from .sampling import sample_reverse_euler_maruyama as sample_reverse_euler_maruyama
from .sampling import sample_reverse_sde as sample_reverse_sde
from .schedules import CosineSchedule as CosineSchedule
from .schedules import LinearSchedule as LinearSchedule
from .score import ScoreModel as ScoreModel
from .thermodynamics import elbo as elbo
from .thermodynamics import importance_log_likelihood as importance_log_likelihood
from .thermodynamics import path_log_weights as path_log_weights
from .thermodynamics import relaxation_entropy_production as relaxation_entropy_production
from .training import dsm_loss as dsm_loss
from .training import ema_model as ema_model
from .training import train_score_model as train_score_model
from .training import with_ema as with_ema
