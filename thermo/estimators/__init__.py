"""Free-energy estimators in reduced units (kT)."""

from ._path import Estimate as Estimate
from ._path import FreeEnergy as FreeEnergy
from ._path import estimate_log_z as estimate_log_z
from ._path import jarzynski as jarzynski
