r"""Integrators for :class:`~thermo.sde.AbstractSDE`: diffrax solves and fixed-step kernels.

Two families, which must (and, in the tests, do) agree on the same problem:

* **diffrax** (:func:`solve`, :func:`solve_ode`): ``diffeqsolve`` with a
  ``VirtualBrownianTree``, any diffrax SDE solver, adaptive steps if wanted; and the
  probability-flow ODE with Tsit5/Dopri5 and a PID controller. Use these where
  adaptivity, reversibility or dense output matter.
* **fixed-step** :class:`~thermo.kernel.Kernel` s for long runs, driven by
  :func:`thermo.kernel.run` (one ``lax.scan``):

  - :func:`euler_maruyama` for any SDE (time carried in the state), optionally
    accumulating the exact discrete-time log RN weight against a reverse SDE;
  - :func:`overdamped_langevin`, :math:`dx = -\nabla U\,dt + \sqrt{2/\beta}\,dW`;
  - :func:`baoab`, underdamped Langevin by BAOAB (Leimkuhler & Matthews 2013).

  The Langevin kernels take an energy ``U(x)`` or a :class:`~thermo.protocols.Protocol`
  ``U(x, lambda(t))`` and accumulate the work, heat and exact log RN weight of every path
  (see :mod:`thermo.protocols`).

States are flat vectors ``x`` of shape ``(d,)``; populations are ``jax.vmap`` -ed
(:func:`run_population` does that around :func:`thermo.kernel.run`).

One module per integrator: ``_diffrax`` (:func:`solve`, :func:`solve_ode`),
``_euler_maruyama``, ``_langevin`` (overdamped), ``_baoab``, ``_population``; the
boundary checks they share live in ``_common``.
"""

from ._baoab import BAOABInfo as BAOABInfo
from ._baoab import BAOABState as BAOABState
from ._baoab import baoab as baoab
from ._baoab import maxwell_boltzmann as maxwell_boltzmann
from ._diffrax import diffusion_operator as diffusion_operator
from ._diffrax import solve as solve
from ._diffrax import solve_ode as solve_ode
from ._euler_maruyama import EulerMaruyamaInfo as EulerMaruyamaInfo
from ._euler_maruyama import EulerMaruyamaState as EulerMaruyamaState
from ._euler_maruyama import euler_maruyama as euler_maruyama
from ._euler_maruyama import euler_maruyama_log_prob as euler_maruyama_log_prob
from ._langevin import LangevinInfo as LangevinInfo
from ._langevin import LangevinState as LangevinState
from ._langevin import overdamped_langevin as overdamped_langevin
from ._population import run_population as run_population

__all__ = [
    "solve",
    "solve_ode",
    "diffusion_operator",
    "euler_maruyama_log_prob",
    "EulerMaruyamaState",
    "EulerMaruyamaInfo",
    "euler_maruyama",
    "LangevinState",
    "LangevinInfo",
    "overdamped_langevin",
    "BAOABState",
    "BAOABInfo",
    "baoab",
    "maxwell_boltzmann",
    "run_population",
]
