"""The materials search loop: candidates, fidelities, a multi-fidelity surrogate, acquisitions.

Lives in :mod:`thermo.materials` because its fidelities are the module's own evaluators
(geometry, Henry coefficients, GCMC) and it must not depend on :mod:`generative`: a
generator is passed in as a callable. :func:`replay` benchmarks the planners on stored
multi-fidelity results (each evaluation returns the stored value, charged its stored cost).
"""

from ._gp import GPParams as GPParams
from ._gp import fit_params as fit_params
from ._gp import init_params as init_params
from ._gp import log_marginal_likelihood as log_marginal_likelihood
from ._gp import posterior as posterior
from ._replay import STRATEGIES as STRATEGIES
from ._replay import SearchResult as SearchResult
from ._replay import random_search_expected_cost as random_search_expected_cost
from ._replay import replay as replay
