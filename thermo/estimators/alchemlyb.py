r"""alchemlyb-compatible estimators: ``MBAR``, ``BAR`` and ``TI`` on alchemlyb's DataFrames.

Drop-in replacements for :mod:`alchemlyb.estimators` (alchemlyb 2.5; Wu et al. 2024,
JOSS 9, 6934): the same constructor arguments, ``fit(u_nk)`` / ``fit(dHdl)``, and the
same fitted attributes (``delta_f_``, ``d_delta_f_``, ``states_``, ``overlap_matrix``,
``theta_``, ``delta_h_``, ``d_delta_h_``, ``delta_sT_``, ``d_delta_sT_``, ``dhdl``), so
that in an alchemlyb pipeline

.. code-block:: python

    from thermo.estimators.alchemlyb import MBAR   # was: from alchemlyb.estimators import MBAR

is the whole change. The numbers come from this project's estimators
(:func:`thermo.estimators.mbar`, :func:`thermo.estimators.bar`,
:func:`thermo.estimators.ti`), not from pymbar. Inputs are alchemlyb's frames:

* ``u_nk``: rows indexed by a MultiIndex ``(time, lambda_1, ..., lambda_L)`` giving the
  state each sample was drawn from, one column per state (a float, or a tuple of the L
  lambdas), entries the reduced potential :math:`u_k(x_n)` in kT;
* ``dHdl``: the same row index, one column per lambda component,
  :math:`\partial u/\partial\lambda_j` in kT.

The frames' ``attrs`` (``temperature``, ``energy_unit``) are copied onto every output
frame, so :func:`alchemlyb.postprocessors.units.to_kcalmol` and friends work on them.

The computation runs in float64 (inside ``jax.enable_x64(True)``, restored on return),
as pymbar does, whatever the global JAX setting; this module needs pandas (imported
here only: ``import thermo.estimators`` does not import it).
"""

from __future__ import annotations

import inspect
from typing import Any

import jax
import jax.random as jr
import numpy as np

from ._mbar import mbar as _mbar_solve
from ._ti import ti as _ti
from ._two_state import bar as _bar

try:
    import pandas as pd
except ImportError as err:  # pragma: no cover - exercised only without pandas
    raise ImportError(
        "thermo.estimators.alchemlyb needs pandas (it works on alchemlyb's DataFrames); "
        "install it with `pip install pandas` or the project's dev extra "
        "(`pip install 'stochthermo[dev]'`, which also brings alchemlyb and alchemtest)."
    ) from err

__all__ = ["BAR", "MBAR", "TI", "NotFittedError"]


class NotFittedError(ValueError, AttributeError):
    """Raised when a fitted-only quantity is read before ``fit`` (as scikit-learn's)."""


# ----------------------------------------------------------------------------------
# Shared pieces
# ----------------------------------------------------------------------------------


class _Estimator:
    """scikit-learn's estimator protocol (``get_params``/``set_params``/``repr``) and
    alchemlyb's read-only fitted views (``alchemlyb.estimators.base._EstimatorMixOut``)."""

    _delta_f_ = None
    _d_delta_f_ = None
    _states_ = None
    _delta_h_ = None
    _d_delta_h_ = None
    _delta_sT_ = None  # noqa: N815  (alchemlyb's name)
    _d_delta_sT_ = None  # noqa: N815

    @classmethod
    def _param_names(cls):
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor arguments as a dict (scikit-learn ``BaseEstimator.get_params``)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        """Set constructor arguments (scikit-learn ``BaseEstimator.set_params``)."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}")
            setattr(self, name, value)
        return self

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    @property
    def delta_f_(self):
        """``(K, K)`` DataFrame: reduced free energy ``f_j - f_i`` (row i, column j)."""
        return self._delta_f_

    @property
    def d_delta_f_(self):
        """``(K, K)`` DataFrame: its standard error (one standard deviation)."""
        return self._d_delta_f_

    @property
    def states_(self):
        """The lambda states (labels of ``delta_f_``)."""
        return self._states_

    @property
    def delta_h_(self):
        """``(K, K)`` DataFrame: reduced enthalpy (mean reduced potential) ``u_j - u_i``."""
        return self._delta_h_

    @property
    def d_delta_h_(self):
        """Standard error of :attr:`delta_h_`."""
        return self._d_delta_h_

    @property
    def delta_sT_(self):  # noqa: N802  (alchemlyb's name)
        """``(K, K)`` DataFrame: reduced entropy ``s_j - s_i`` (``T S / kT``), ``= delta_h_ -
        delta_f_``."""
        return self._delta_sT_

    @property
    def d_delta_sT_(self):  # noqa: N802
        """Standard error of :attr:`delta_sT_`."""
        return self._d_delta_sT_


def _frame(values, labels, attrs):
    df = pd.DataFrame(np.asarray(values, dtype=np.float64), index=labels, columns=labels)
    df.attrs = dict(attrs)
    return df


def _check_frame(df, name):
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(df).__name__}")
    if df.index.nlevels < 2:
        raise ValueError(
            f"{name} must be indexed by (time, lambda, ...) as alchemlyb's parsers produce it; "
            f"got an index with {df.index.nlevels} level(s) {list(df.index.names)}"
        )
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {df.shape})")


def _row_states(df):
    """The lambda state of every row: a scalar for one lambda level, else a tuple."""
    levels = [df.index.get_level_values(i) for i in range(1, df.index.nlevels)]
    if len(levels) == 1:
        return list(levels[0])
    return list(zip(*levels, strict=True))


def _u_kn_from_u_nk(u_nk, name="u_nk"):
    """``(u_kn (K, N), N_k (K,), states)`` with the samples ordered by the column of the
    state they were drawn from (as :func:`thermo.estimators.mbar` expects)."""
    _check_frame(u_nk, name)
    states = u_nk.columns.values.tolist()
    position = {s: k for k, s in enumerate(states)}
    if len(position) != len(states):
        raise ValueError(f"{name} has duplicate state columns: {states}")
    rows = _row_states(u_nk)
    try:
        own = np.fromiter((position[s] for s in rows), dtype=np.int64, count=len(rows))
    except KeyError as err:
        raise ValueError(
            f"Indexed lambda state, {err.args[0]}, is not represented in {name} columns: {states}"
        ) from None
    order = np.argsort(own, kind="stable")
    u = u_nk.to_numpy(dtype=np.float64)[order].T
    if not np.all(np.isfinite(u)):
        bad = [states[k] for k in np.flatnonzero(~np.all(np.isfinite(u), axis=1))]
        raise ValueError(f"{name} contains NaN or inf reduced potentials in columns {bad}")
    n_k = np.bincount(own, minlength=len(states))
    return np.ascontiguousarray(u), n_k, states


def _error_of_differences(cov):
    """``sqrt(C_ii + C_jj - 2 C_ij)`` (pymbar ``_ErrorOfDifferences``; tiny negative
    round-off clipped to 0)."""
    d = np.diag(cov)
    return np.sqrt(np.maximum(d[:, None] + d[None, :] - 2.0 * cov, 0.0))


def _bar_chain(u, n_k):
    """Our :func:`thermo.estimators.bar` on every adjacent pair of sampled columns.

    Returns ``(pairs, delta_f, std_err)`` for each ``k`` with ``N_k, N_{k+1} > 0``:
    ``w_F = u_{k+1} - u_k`` on the samples of state k, ``w_R = u_k - u_{k+1}`` on those
    of state k+1 (alchemlyb ``BAR.fit``).
    """
    starts = np.concatenate([[0], np.cumsum(n_k)])
    pairs, df, ddf = [], [], []
    for k in range(len(n_k) - 1):
        if n_k[k] == 0 or n_k[k + 1] == 0:
            continue
        a = u[:, starts[k] : starts[k + 1]]
        b = u[:, starts[k + 1] : starts[k + 2]]
        res = _bar(a[k + 1] - a[k], b[k] - b[k + 1])
        pairs.append(k)
        df.append(float(res.delta_f))
        ddf.append(float(res.std_err))
    return pairs, np.asarray(df), np.asarray(ddf)


def _resolve_key(random_state):
    if random_state is None or isinstance(random_state, int | np.integer):
        return jr.key(0 if random_state is None else int(random_state))
    return random_state


# ----------------------------------------------------------------------------------
# MBAR
# ----------------------------------------------------------------------------------


class MBAR(_Estimator):
    r"""Multistate Bennett acceptance ratio (Shirts & Chodera 2008, JCP 129, 124105) with
    alchemlyb's interface (``alchemlyb.estimators.MBAR``), solved by
    :func:`thermo.estimators.mbar`:

    .. math:: f_i = -\log \sum_{n} \frac{e^{-u_i(x_n)}}{\sum_k N_k e^{f_k - u_k(x_n)}} ,

    with the asymptotic covariance :math:`\Theta` of App. D (pymbar's ``svd-ew``).

    Args:
        maximum_iterations: Newton iterations per solver phase (``max_iterations``).
        relative_tolerance: convergence tolerance, passed to :func:`~thermo.estimators.mbar`
            as ``tol``.
        initial_f_k: ``"BAR"`` (default, as alchemlyb: the cumulative BAR estimates of
            adjacent states from :func:`thermo.estimators.bar`), ``None`` (zeros) or a
            ``(K,)`` array of reduced free energies.
        method: accepted for compatibility with alchemlyb/pymbar's ``solver_protocol``
            (``"robust"``, ``"default"``, or a SciPy method name) and recorded; the
            solver is always the project's damped Newton (the MBAR objective is convex,
            so every protocol has the same solution).
        n_bootstraps: 0 for the analytic error; ``B >= 2`` for bootstrap errors: each state's
            samples resampled with replacement, MBAR re-solved ``B`` times, and the error
            the standard deviation (``ddof=0``, as pymbar) of the B estimates (Efron 1979).
        verbose: accepted for compatibility; unused.
        random_state: seed (int) or JAX key of the bootstrap resampling (not in alchemlyb,
            which draws from NumPy's global state); ``None`` means seed 0.

    Attributes (after :meth:`fit`):
        delta_f_, d_delta_f_: ``(K, K)`` DataFrames, ``f_j - f_i`` and its standard error.
        theta_: ``(K, K)`` DataFrame, the covariance of :math:`\log c_k = -f_k`.
        delta_h_, d_delta_h_, delta_sT_, d_delta_sT_: the enthalpy/entropy decomposition
            (only with ``fit(..., compute_entropy_enthalpy=True)``).
        states_: the K state labels (the columns of ``u_nk``).
        overlap_matrix: ``(K, K)`` NumPy overlap matrix ``O_kl = N_l (W^T W)_kl``.
        result_: the :class:`thermo.estimators.MBAR` result (expectations, PMFs, ...).
    """

    def __init__(
        self,
        maximum_iterations: int = 10000,
        relative_tolerance: float = 1.0e-7,
        initial_f_k: Any = "BAR",
        method: str = "robust",
        n_bootstraps: int = 0,
        verbose: bool = False,
        random_state: Any = None,
    ) -> None:
        if isinstance(initial_f_k, str) and initial_f_k != "BAR":
            raise ValueError(
                f"Only `BAR` is supported as string input to `initial_f_k`. Got ({initial_f_k})."
            )
        self.maximum_iterations = maximum_iterations
        self.relative_tolerance = relative_tolerance
        self.initial_f_k = initial_f_k
        self.method = method
        self.n_bootstraps = n_bootstraps
        self.verbose = verbose
        self.random_state = random_state
        self.result_ = None
        self.theta_ = None

    def _check_params(self):
        it = self.maximum_iterations
        if isinstance(it, bool) or not isinstance(it, int | np.integer) or it < 1:
            raise ValueError(f"maximum_iterations must be a positive integer, got {it!r}")
        tol = self.relative_tolerance
        if not (isinstance(tol, int | float | np.floating) and np.isfinite(tol) and tol > 0):
            raise ValueError(f"relative_tolerance must be a finite number > 0, got {tol!r}")
        b = self.n_bootstraps
        if isinstance(b, bool) or not isinstance(b, int | np.integer) or b < 0 or b == 1:
            raise ValueError(f"n_bootstraps must be 0 (analytic errors) or >= 2, got {b!r}")
        if not isinstance(self.method, str):
            raise TypeError(f"method must be a string, got {type(self.method).__name__}")

    def _initial_f(self, u, n_k, states):
        k = len(states)
        if self.initial_f_k is None:
            return np.zeros(k)
        if isinstance(self.initial_f_k, str):
            if self.initial_f_k != "BAR":
                raise ValueError(
                    "Only `BAR` is supported as string input to `initial_f_k`. "
                    f"Got ({self.initial_f_k})."
                )
            # Cumulative BAR along adjacent sampled pairs; a state no pair reaches keeps
            # the last value (the guess only speeds the solve: the objective is convex).
            pairs, df, _ = _bar_chain(u, n_k)
            steps = np.zeros(k)
            steps[np.asarray(pairs, dtype=np.int64) + 1] = df
            return np.cumsum(steps)
        f = np.asarray(self.initial_f_k, dtype=np.float64).reshape(-1)
        if f.shape != (k,) or not np.all(np.isfinite(f)):
            raise ValueError(f"initial_f_k must be {k} finite numbers (one per state), got {f}")
        return f

    def _solve(self, u, n_k, f_init):
        return _mbar_solve(
            u,
            n_k,
            f_k_init=f_init,
            tol=float(self.relative_tolerance),
            max_iterations=int(self.maximum_iterations),
        )

    def fit(self, u_nk, compute_entropy_enthalpy: bool = False) -> MBAR:
        r"""Solve MBAR on ``u_nk``.

        Args:
            u_nk: alchemlyb's ``u_nk`` DataFrame (``(N, K)``: N samples, K states).
            compute_entropy_enthalpy: also compute the decomposition
                :math:`\Delta f = \Delta u - \Delta s` with :math:`u_i = \langle u_i
                \rangle_i` (Shirts & Chodera 2008, Sec. V; pymbar
                ``compute_entropy_and_enthalpy``), see :meth:`_entropy_enthalpy`.

        Returns:
            ``self``.
        """
        self._check_params()
        u, n_k, states = _u_kn_from_u_nk(u_nk)
        attrs = u_nk.attrs
        with jax.enable_x64(True):
            f_init = self._initial_f(u, n_k, states)
            res = self._solve(u, n_k, f_init)
            f = np.asarray(res.f_k, dtype=np.float64)
            theta = np.asarray(res.theta, dtype=np.float64)
            out = {"Delta_f": f[None, :] - f[:, None], "dDelta_f": _error_of_differences(theta)}
            if compute_entropy_enthalpy:
                out.update(self._entropy_enthalpy(u, n_k, f))
            if self.n_bootstraps:
                out.update(self._bootstrap(u, n_k, f, compute_entropy_enthalpy))
        self.result_ = res
        self._states_ = states
        self.theta_ = _frame(theta, states, attrs)
        self._delta_f_ = _frame(out["Delta_f"], states, attrs)
        self._d_delta_f_ = _frame(out["dDelta_f"], states, attrs)
        if compute_entropy_enthalpy:
            self._delta_h_ = _frame(out["Delta_u"], states, attrs)
            self._d_delta_h_ = _frame(out["dDelta_u"], states, attrs)
            self._delta_sT_ = _frame(out["Delta_s"], states, attrs)
            self._d_delta_sT_ = _frame(out["dDelta_s"], states, attrs)
        else:
            self._delta_h_ = self._d_delta_h_ = self._delta_sT_ = self._d_delta_sT_ = None
        return self

    @staticmethod
    def _augmented(u, n_k):
        r"""The augmented problem of pymbar ``compute_expectations_inner`` for
        :math:`A_i = u_i` in state i: rows ``[u; u; u - log A']`` with ``N = [N_k, 0, 0]``,
        where :math:`A'_i = u_i - (\min_n u_i - |4\epsilon \min_n u_i|) > 0` (pymbar's
        positivity shift). The unsampled copies and the A-weighted states are perturbed
        states of MBAR (eq. 14), so one :func:`~thermo.estimators.mbar` solve returns their
        free energies and the joint covariance :math:`\Theta` (App. D)."""
        u_min = u.min(axis=1)
        shift = u_min - np.abs(4.0 * np.finfo(np.float64).eps * u_min)
        a = u - shift[:, None]
        u_aug = np.concatenate([u, u, u - np.log(a)], axis=0)
        n_aug = np.concatenate([n_k, np.zeros_like(n_k), np.zeros_like(n_k)])
        return u_aug, n_aug, shift

    def _decompose(self, res_aug, k, shift):
        f_all = np.asarray(res_aug.f_k, dtype=np.float64)
        f_state, f_obs = f_all[k : 2 * k], f_all[2 * k :]
        a_mean = np.exp(f_state - f_obs)  # <A'>_i = sum_n A'_n W_ni
        u_mean = a_mean + shift
        return f_state, a_mean, u_mean

    def _entropy_enthalpy(self, u, n_k, f):
        r"""Free energy, enthalpy and entropy differences and their asymptotic errors.

        .. math:: \Delta u_{ij} = \langle u_j\rangle_j - \langle u_i\rangle_i ,\qquad
                  \Delta s_{ij} = \Delta u_{ij} - \Delta f_{ij}

        (reduced units; Shirts & Chodera 2008, Sec. V). The errors are the delta method
        on the augmented covariance, exactly as pymbar ``compute_entropy_and_enthalpy``:
        with :math:`\Theta` over ``[log c of A'-states; log c of states]`` scaled by
        :math:`\langle A'\rangle` on the A-rows,
        ``cov(u) = Θ_AA + Θ_ff - Θ_Af - Θ_fA`` (scaled),
        ``cov(s) = cov(u) + cov(f) + <A'> (Θ_Af - Θ_ff) + (...)^T``.
        """
        k = len(n_k)
        u_aug, n_aug, shift = self._augmented(u, n_k)
        res = self._solve(u_aug, n_aug, np.concatenate([f, f, np.zeros(k)]))
        f_state, a_mean, u_mean = self._decompose(res, k, shift)
        th = np.asarray(res.theta, dtype=np.float64)
        obs, st = slice(2 * k, 3 * k), slice(k, 2 * k)
        t_oo, t_ss, t_os = th[obs, obs], th[st, st], th[obs, st]
        scale = a_mean
        cov_f = t_ss
        cov_u = scale[:, None] * (t_oo + t_ss - t_os - t_os.T) * scale[None, :]
        cross = scale[:, None] * (t_os - t_ss)  # pymbar's Theta[0:K, 2K:3K] - Theta[K:2K, 2K:3K]
        cov_s = cov_u + cov_f + cross + cross.T
        s = u_mean - f_state
        return {
            "Delta_f": f_state[None, :] - f_state[:, None],
            "dDelta_f": _error_of_differences(cov_f),
            "Delta_u": u_mean[None, :] - u_mean[:, None],
            "dDelta_u": _error_of_differences(cov_u),
            "Delta_s": s[None, :] - s[:, None],
            "dDelta_s": _error_of_differences(cov_s),
        }

    def _bootstrap(self, u, n_k, f, entropy):
        """Bootstrap errors: each state's block resampled with replacement, MBAR re-solved
        from ``f`` (pymbar ``MBAR(n_bootstraps=...)``); std over resamples, ``ddof=0``."""
        own = np.repeat(np.arange(len(n_k)), n_k)
        starts = np.concatenate([[0], np.cumsum(n_k)[:-1]])[own]
        counts = n_k[own]
        key = _resolve_key(self.random_state)
        k = len(n_k)
        if entropy:
            u_aug, n_aug, shift = self._augmented(u, n_k)
        fs, us = [], []
        for b_key in jr.split(key, self.n_bootstraps):
            # sample n of state k -> a uniform draw among state k's N_k samples
            idx = starts + np.asarray(jr.randint(b_key, (own.shape[0],), 0, counts))
            if entropy:
                res = self._solve(u_aug[:, idx], n_aug, np.concatenate([f, f, np.zeros(k)]))
                f_b, _, u_b = self._decompose(res, k, shift)
                us.append(u_b)
            else:
                f_b = np.asarray(self._solve(u[:, idx], n_k, f).f_k, dtype=np.float64)
            fs.append(f_b)

        def spread(x):
            x = np.asarray(x)
            return np.std(x[:, None, :] - x[:, :, None], axis=0)

        out = {"dDelta_f": spread(fs)}
        if entropy:
            out["dDelta_u"] = spread(us)
            out["dDelta_s"] = spread(np.asarray(us) - np.asarray(fs))
        return out

    @property
    def overlap_matrix(self) -> np.ndarray:
        r"""``(K, K)`` overlap matrix :math:`O_{kl} = N_l \sum_n W_{nk} W_{nl}`, the
        probability that a sample of state k is observed in state l (pymbar
        ``compute_overlap()["matrix"]``)."""
        if self.result_ is None:
            raise NotFittedError("MBAR.overlap_matrix: call fit(u_nk) first")
        return np.asarray(self.result_.overlap_matrix, dtype=np.float64)


# ----------------------------------------------------------------------------------
# BAR
# ----------------------------------------------------------------------------------

_BAR_METHODS = ("false-position", "self-consistent-iteration", "bisection")


class BAR(_Estimator):
    r"""Bennett acceptance ratio (Bennett 1976, J. Comput. Phys. 22, 245) between adjacent
    states, with alchemlyb's interface (``alchemlyb.estimators.BAR``), solved by
    :func:`thermo.estimators.bar`:

    .. math:: \sum_{i\in k} \frac{1}{1+e^{M + w^F_i - \Delta f}}
            = \sum_{j\in k+1} \frac{1}{1+e^{-M + w^R_j + \Delta f}} ,\quad
            w^F = u_{k+1} - u_k,\ w^R = u_k - u_{k+1},\ M = \log\frac{N_k}{N_{k+1}} .

    ``delta_f_[i, j]`` is the sum of the adjacent steps from i to j; ``d_delta_f_`` holds
    the asymptotic error (Bennett's eq. 10a) for adjacent states only and NaN elsewhere,
    as alchemlyb (the steps share samples, so their errors are correlated).

    Args:
        maximum_iterations, relative_tolerance: accepted for compatibility; the project's
            bracketed Newton solves the BAR equation to machine precision.
        method: pymbar's solver name (``"false-position"``, ``"self-consistent-iteration"``
            or ``"bisection"``), accepted for compatibility: every solver has the same root.
        verbose: accepted for compatibility; unused.
    """

    def __init__(
        self,
        maximum_iterations: int = 10000,
        relative_tolerance: float = 1.0e-7,
        method: str = "false-position",
        verbose: bool = False,
    ) -> None:
        self.maximum_iterations = maximum_iterations
        self.relative_tolerance = relative_tolerance
        self.method = method
        self.verbose = verbose

    def fit(self, u_nk) -> BAR:
        """BAR between every pair of adjacent sampled states of ``u_nk``.

        Args:
            u_nk: alchemlyb's ``u_nk`` DataFrame.

        Returns:
            ``self``.
        """
        if self.method not in _BAR_METHODS:
            raise ValueError(f"method must be one of {_BAR_METHODS}, got {self.method!r}")
        u, n_k, columns = _u_kn_from_u_nk(u_nk)
        sampled = [columns[k] for k in np.flatnonzero(n_k > 0)]
        with jax.enable_x64(True):
            pairs, deltas, d_deltas = _bar_chain(u, n_k)
        if len(pairs) == 0 and len(sampled) > 1:
            raise ValueError(
                "u_nk does not contain energies computed between any adjacent states.\n"
                "To compute the free energy with BAR, ensure that values in u_nk exist"
                f" for the columns:\n{sampled}."
            )
        if len(pairs) + 1 != len(sampled):
            raise ValueError(
                "BAR needs the sampled states to form one chain of adjacent columns; the "
                f"sampled states {sampled} are not all adjacent in the columns {columns}"
            )
        m = len(sampled)
        cum = np.concatenate([[0.0], np.cumsum(deltas)])
        delta = cum[None, :] - cum[:, None]
        err = np.full((m, m), np.nan)
        np.fill_diagonal(err, 0.0)
        idx = np.arange(m - 1)
        err[idx, idx + 1] = err[idx + 1, idx] = d_deltas
        self._states_ = columns
        self._delta_f_ = _frame(delta, sampled, u_nk.attrs)
        self._d_delta_f_ = _frame(err, sampled, u_nk.attrs)
        return self


# ----------------------------------------------------------------------------------
# TI
# ----------------------------------------------------------------------------------


class TI(_Estimator):
    r"""Thermodynamic integration (Kirkwood 1935) with the trapezoid rule along the
    lambda path, with alchemlyb's interface (``alchemlyb.estimators.TI``):

    .. math:: \Delta f_{ab} = \sum_{j}\sum_{k=a}^{b-1} \frac{\lambda_{j,k+1}-\lambda_{j,k}}{2}
              \big(\langle \partial_{\lambda_j} u\rangle_k
                   + \langle \partial_{\lambda_j} u\rangle_{k+1}\big)

    over the states sorted by their lambdas (one path through the L components). Each
    segment of each component is one :func:`thermo.estimators.ti` (trapezoid) estimate
    with its error; the segments of a range are summed, with the covariance of two
    segments that share a window,
    :math:`\tfrac{\Delta\lambda_{k-1}}{2}\tfrac{\Delta\lambda_k}{2}\,\mathrm{sem}_k^2`,
    so that :math:`\sigma^2_{ab} = \sum_j\sum_k c_{jk}^2\,\mathrm{sem}_{jk}^2` with the
    trapezoid weights :math:`c` of the range (windows independent; components treated
    as independent, as alchemlyb). ``sem`` is the standard error of each window's mean
    (``ddof = 1``, no correlation correction: decorrelate first).

    Args:
        verbose: accepted for compatibility; unused.

    Attributes (after :meth:`fit`):
        delta_f_, d_delta_f_: ``(K, K)`` DataFrames over the sorted states.
        states_: the K sorted states.
        dhdl: ``(K, L)`` DataFrame of the window means.
    """

    def __init__(self, verbose: bool = False) -> None:
        self.verbose = verbose
        self.dhdl = None

    def fit(self, dHdl) -> TI:  # noqa: N803  (alchemlyb's name)
        """Integrate ``dHdl`` over lambda.

        Args:
            dHdl: alchemlyb's ``dHdl`` DataFrame (one column per lambda component, in the
                order of the index's lambda levels).

        Returns:
            ``self``.
        """
        _check_frame(dHdl, "dHdl")
        n_levels = dHdl.index.nlevels - 1
        if dHdl.shape[1] != n_levels:
            raise ValueError(
                f"dHdl must have one column per lambda level: {dHdl.shape[1]} columns "
                f"{list(dHdl.columns)} for {n_levels} levels {list(dHdl.index.names[1:])}"
            )
        values = dHdl.to_numpy(dtype=np.float64)
        if np.any(np.isinf(values)):
            raise ValueError("dHdl contains inf values")
        levels = list(dHdl.index.names[1:])
        dHdl = dHdl.sort_index(level=levels)  # noqa: N806  (window order as alchemlyb)
        groups = dHdl.groupby(level=levels, sort=True)
        means = groups.mean()  # NaN entries are missing values (skipped, as pandas/alchemlyb)
        sem = groups.sem()  # ddof = 1
        if len(means) < 2:
            raise ValueError(f"TI needs at least 2 lambda states, got {len(means)}")
        lam = means.index.to_frame(index=False).to_numpy(dtype=np.float64)
        y, s = means.to_numpy(dtype=np.float64), sem.to_numpy(dtype=np.float64)
        moving = np.diff(lam, axis=0) != 0
        used = np.zeros_like(y, dtype=bool)
        used[:-1] |= moving
        used[1:] |= moving
        bad = used & ~(np.isfinite(y) & np.isfinite(s))
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise ValueError(
                f"dHdl column {dHdl.columns[j]!r} needs >= 2 finite samples at lambda state "
                f"{means.index[i]!r} (its lambda changes there), got "
                f"{int(groups.count().iloc[i, j])}"
            )
        with jax.enable_x64(True):
            delta, err = self._trapezoid_matrix(lam, y, s)
        states = means.index.values
        self._states_ = states.tolist()
        self._delta_f_ = _frame(delta, states, dHdl.attrs)
        self._d_delta_f_ = _frame(err, states, dHdl.attrs)
        self.dhdl = means
        self.dhdl.attrs = dict(dHdl.attrs)
        return self

    @staticmethod
    def _trapezoid_matrix(lam, y, s):
        """``(Delta_f, dDelta_f)`` ``(K, K)`` from segment estimates of :func:`ti`."""
        k, n_comp = lam.shape
        seg = np.zeros((k - 1, n_comp))
        seg_var = np.zeros((k - 1, n_comp))
        dl = np.diff(lam, axis=0)
        for i in range(k - 1):
            for j in range(n_comp):
                if dl[i, j] == 0.0:
                    continue
                sl = slice(i, i + 2) if dl[i, j] > 0 else slice(i + 1, i - 1 if i else None, -1)
                r = _ti(lam[sl, j], y[sl, j], s[sl, j])
                sign = 1.0 if dl[i, j] > 0 else -1.0
                seg[i, j] = sign * float(r.delta_f)
                seg_var[i, j] = float(r.std_err) ** 2
        # Covariance of segments i-1 and i through their shared window i.
        s_inner = np.where(np.isfinite(s[1:-1]), s[1:-1], 0.0)  # unused where dl = 0
        shared = 0.5 * dl[:-1] * 0.5 * dl[1:] * s_inner**2  # (K-2, L)
        cum = np.concatenate([[0.0], np.cumsum(seg.sum(axis=1))])
        cum_var = np.concatenate([[0.0], np.cumsum(seg_var.sum(axis=1))])
        cum_shared = np.concatenate([[0.0], np.cumsum(shared.sum(axis=1))])
        delta = cum[None, :] - cum[:, None]
        var = np.zeros((k, k))
        for a in range(k):
            for b in range(a + 1, k):
                # segments a..b-1; shared windows a+1..b-1 (index w-1 in ``shared``)
                var[a, b] = cum_var[b] - cum_var[a] + 2.0 * (cum_shared[b - 1] - cum_shared[a])
        var = var + var.T
        return delta, np.sqrt(np.maximum(var, 0.0))

    def separate_dhdl(self) -> list:
        """The window means of each perturbed lambda component as its own Series, indexed
        by that component's lambda only (alchemlyb ``TI.separate_dhdl``; for plotting)."""
        if self.dhdl is None:
            raise NotFittedError("TI.separate_dhdl: call fit(dHdl) first")
        names = list(self.dhdl.index.names)
        if len(names) == 1:
            series = self.dhdl[self.dhdl.columns[0]].copy()
            series.attrs = dict(self.dhdl.attrs)
            return [series]
        lam = self.dhdl.index.to_frame(index=False).to_numpy(dtype=np.float64)
        moves = np.diff(lam, axis=0) != 0  # (K-1, L): component j changes on segment i
        out = []
        for j, name in enumerate(names):
            if not moves[:, j].any():
                continue
            touched = np.zeros(lam.shape[0], dtype=bool)
            touched[:-1] |= moves[:, j]
            touched[1:] |= moves[:, j]
            series = self.dhdl.iloc[touched, j]
            series = series.reset_index([n for n in names if n != name], drop=True)
            series.attrs = dict(self.dhdl.attrs)
            out.append(series)
        return out
