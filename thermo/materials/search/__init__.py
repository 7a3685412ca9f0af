"""The materials search loop (issue 18): candidate spaces, fidelities, a multi-fidelity GP
surrogate, cost-aware acquisition, an SQLite evaluation store and executors.

A generator is passed in as a callable (never imported from ``generative``).
"""

from .executors import DaskExecutor as DaskExecutor
from .executors import InProcessExecutor as InProcessExecutor
from .executors import ProcessPoolExecutor as ProcessPoolExecutor
from .fidelity import CandidateSpace as CandidateSpace
from .fidelity import Fidelity as Fidelity
from .fidelity import ReplayFidelity as ReplayFidelity
from .loop import ACQUISITIONS as ACQUISITIONS
from .loop import DESIGNS as DESIGNS
from .loop import STRATEGIES as STRATEGIES
from .loop import SURROGATES as SURROGATES
from .loop import VALUE_TRANSFORMS as VALUE_TRANSFORMS
from .loop import SearchResult as SearchResult
from .loop import expected_improvement as expected_improvement
from .loop import gittins_index as gittins_index
from .loop import log_expected_improvement as log_expected_improvement
from .loop import max_diverse_design as max_diverse_design
from .loop import replay as replay
from .loop import run_loop as run_loop
from .store import Evaluation as Evaluation
from .store import EvaluationStore as EvaluationStore
from .surrogate import AutoregressiveGP as AutoregressiveGP
from .surrogate import MultiFidelityGP as MultiFidelityGP
from .surrogate import log_marginal_likelihood as log_marginal_likelihood
from .surrogate import posterior as posterior
