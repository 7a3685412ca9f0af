"""stochthermo's physics core: SDEs, systems, estimators, MCMC and materials.

Every sampler is a non-equilibrium process whose path log-weights estimate free
energy; see ``DESIGN`` in the README.
"""

from .kernel import Kernel as Kernel
from .kernel import run as run
from .paths import PathEnsemble as PathEnsemble
