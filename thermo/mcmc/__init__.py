"""MCMC baselines: RWM, MALA, HMC (+ dual averaging), NUTS (numpyro), replica exchange, AIS/SMC.

Every kernel follows :class:`thermo.kernel.Kernel` (``init``/``step`` with NamedTuple
``State``/``Info``) and is driven by :func:`thermo.kernel.run`, vmapped over chains.
"""

from . import diagnostics as diagnostics
from . import sharding as sharding
from ._adaptation import adapt_step_size as adapt_step_size
from ._adaptation import dual_averaging as dual_averaging
from ._hmc import HMCInfo as HMCInfo
from ._hmc import HMCState as HMCState
from ._hmc import hmc as hmc
from ._hmc import leapfrog as leapfrog
from ._langevin import UnderdampedLangevinInfo as UnderdampedLangevinInfo
from ._langevin import underdamped_langevin as underdamped_langevin
from ._mala import MALAInfo as MALAInfo
from ._mala import MALAState as MALAState
from ._mala import mala as mala
from ._nuts import NUTSResult as NUTSResult
from ._nuts import nuts as nuts
from ._rwm import RWMInfo as RWMInfo
from ._rwm import RWMState as RWMState
from ._rwm import rwm as rwm
from ._smc import PARETO_K_THRESHOLD as PARETO_K_THRESHOLD
from ._smc import SMCResult as SMCResult
from ._smc import ais as ais
from ._smc import anneal as anneal
from ._smc import pareto_k as pareto_k
from ._smc import smc as smc
from ._smc import systematic_resampling as systematic_resampling
from ._tempering import ReplicaExchangeInfo as ReplicaExchangeInfo
from ._tempering import ReplicaExchangeState as ReplicaExchangeState
from ._tempering import adapt_replica_step_sizes as adapt_replica_step_sizes
from ._tempering import geometric_ladder as geometric_ladder
from ._tempering import replica_exchange as replica_exchange
