r"""Learned diffusion samplers for unnormalised densities, with free energies from their work.

Every sampler is a controlled non-equilibrium process (a :class:`thermo.kernel.Kernel`
run by the one ``lax.scan`` driver) whose paths carry exact discrete-time log
Radon–Nikodym weights; it returns a :class:`thermo.paths.PathEnsemble` and its
:math:`\log Z` comes from :func:`thermo.estimators.estimate_log_z` (Jarzynski's equality).

* :class:`PIS` — Path Integral Sampler, controlled Schrödinger–Föllmer process
  (Zhang & Chen 2022).
* :class:`DDS` — Denoising Diffusion Sampler, controlled OU process with an exponential
  integrator (Vargas, Grathwohl & Doucet 2023).
* :class:`CMCD` — Controlled Monte Carlo Diffusion, controlled annealed Langevin trained
  with the log-variance loss (Vargas et al. 2024); ``CMCD(None)`` is annealed Langevin AIS.
* :func:`feynman_kac` — SMC (Feynman–Kac) correction along a DDS/PIS chain: exact
  incremental weights, resampling, MALA moves; exact whatever the network.
* :func:`pretrained` — ``pretrained("dw4" | "lj13" | "lj55").sample(key, n)``: committed
  checkpoints with the correction.
* :func:`train_sampler` (optax; ``"kl"`` or ``"log_variance"`` loss), :func:`sample_paths`,
  :func:`simulate`, :class:`Control` (score-informed MLP), :func:`as_target`.
"""

from ._cmcd import CMCD as CMCD
from ._common import AbstractSampler as AbstractSampler
from ._common import Control as Control
from ._common import SamplerState as SamplerState
from ._common import SamplerTrainResult as SamplerTrainResult
from ._common import Target as Target
from ._common import as_target as as_target
from ._common import clip_displacement as clip_displacement
from ._common import gaussian_log_prob as gaussian_log_prob
from ._common import kl_loss as kl_loss
from ._common import log_variance_loss as log_variance_loss
from ._common import sample_paths as sample_paths
from ._common import simulate as simulate
from ._common import train_sampler as train_sampler
from ._crooks import CrooksCrossing as CrooksCrossing
from ._crooks import SwitchingWorks as SwitchingWorks
from ._crooks import crooks_crossing as crooks_crossing
from ._crooks import trap_switching_works as trap_switching_works
from ._dds import DDS as DDS
from ._fk import FKResult as FKResult
from ._fk import feynman_kac as feynman_kac
from ._particle import IDEMResult as IDEMResult
from ._particle import IDEMSettings as IDEMSettings
from ._particle import IDEMState as IDEMState
from ._particle import MCScore as MCScore
from ._particle import idem_loss as idem_loss
from ._particle import idem_outer_step as idem_outer_step
from ._particle import init_idem as init_idem
from ._particle import mc_score as mc_score
from ._particle import mc_score_estimate as mc_score_estimate
from ._particle import n_train_energy_evals as n_train_energy_evals
from ._particle import probability_flow_log_weights as probability_flow_log_weights
from ._particle import reverse_path_log_weights as reverse_path_log_weights
from ._particle import run_idem as run_idem
from ._particle import sample_idem as sample_idem
from ._particle import train_idem as train_idem
from ._pis import PIS as PIS
from ._presets import DEFAULT_LOSS as DEFAULT_LOSS
from ._presets import FitResult as FitResult
from ._presets import fit_and_sample as fit_and_sample
from ._presets import make_and_train as make_and_train
from ._presets import make_sampler as make_sampler
from ._pretrained import PRETRAINED as PRETRAINED
from ._pretrained import PretrainedSampler as PretrainedSampler
from ._pretrained import pretrained as pretrained
from ._pretrained import train_checkpoint as train_checkpoint
