"""Free-energy estimators in reduced units (kT).

Two-state: :func:`exp`, :func:`exp_reverse`, :func:`exp_gauss`, :func:`bar`,
:func:`crooks`; paths: :func:`jarzynski`, :func:`jarzynski_cumulant`,
:func:`estimate_log_z`; multistate: :func:`mbar` (out of core: :func:`mbar_out_of_core`); :func:`ti`; :func:`bootstrap`;
correlated data: :mod:`thermo.estimators.timeseries`; alchemlyb's ``MBAR``/``BAR``/``TI``
interface on its DataFrames: :mod:`thermo.estimators.alchemlyb` (needs pandas; not
imported here).
"""

from . import timeseries as timeseries
from ._bootstrap import BootstrapResult as BootstrapResult
from ._bootstrap import bootstrap as bootstrap
from ._mbar import MBAR as MBAR
from ._mbar import mbar as mbar
from ._mbar_stream import mbar_out_of_core as mbar_out_of_core
from ._path import Estimate as Estimate
from ._path import FreeEnergy as FreeEnergy
from ._path import estimate_log_z as estimate_log_z
from ._path import jarzynski as jarzynski
from ._path import pareto_k as pareto_k
from ._ti import gauss_legendre as gauss_legendre
from ._ti import ti as ti
from ._ti import ti_weights as ti_weights
from ._two_state import CrooksResult as CrooksResult
from ._two_state import bar as bar
from ._two_state import crooks as crooks
from ._two_state import exp as exp
from ._two_state import exp_gauss as exp_gauss
from ._two_state import exp_reverse as exp_reverse
from ._two_state import jarzynski_cumulant as jarzynski_cumulant
from .timeseries import detect_equilibration as detect_equilibration
from .timeseries import statistical_inefficiency as statistical_inefficiency
from .timeseries import subsample_correlated_data as subsample_correlated_data
