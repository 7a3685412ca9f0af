"""stochthermo's physics core: SDEs, systems, estimators, MCMC and materials.

Every sampler is a non-equilibrium process whose path log-weights estimate free
energy: samplers return a :class:`PathEnsemble`, and
:func:`thermo.estimators.estimate_log_z` turns its log-weights into ``log Z``.

Subpackages that pull in heavy optional stacks (``thermo.materials``: jax-md and
ASE) are imported explicitly by the user.
"""

from . import cpu as cpu
from . import estimators as estimators
from . import integrate as integrate
from . import protocols as protocols
from . import sde as sde
from . import smc as smc
from . import systems as systems
from .kernel import Kernel as Kernel
from .kernel import run as run
from .paths import PathEnsemble as PathEnsemble
from .protocols import Protocol as Protocol
from .sde import SDE as SDE
from .sde import AbstractSDE as AbstractSDE
