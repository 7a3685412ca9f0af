r"""Stein identity on the published DW-4 and LJ-13 reference samples.

For :math:`p \propto e^{-\beta U}` with enough decay, integrating
:math:`\Delta e^{-\beta U}` by parts gives
:math:`\mathbb E_p[\Delta(\beta U)] = \mathbb E_p[|\nabla(\beta U)|^2]`. It checks the
energy convention (pair counting, harmonic term, beta) against samples made by
others: with the unique-pair LJ convention it fails by a factor of about 2.

The Laplacian is exact: the trace of ``jax.hessian``, no Hutchinson estimator.
The issue fixes the tolerance at 3 % of :math:`\mathbb E|\nabla\beta U|^2`. The
standard error of the mean difference (independent-sample formula; the
reference samples are thinned MCMC) is printed with ``-s``: on 3000 samples it
is about 1.4 % for DW-4 (heavy quartic tails), so there the fixed 3 % is only
about 2 standard errors, and smaller for LJ-13. The negative controls (pairs
counted the other way, i.e. a factor 2 in the pair energy) show the check's
power: they miss by far more than 3 % + 4 standard errors.

The samples are NOT part of the project (no licence): they are read from
``<repo>/../shared/data/reference/`` or ``$STOCHTHERMO_SHARED_DATA/reference/``
(``STOCHTHERMO_SHARED_DATA`` is the shared ``data`` folder), and the tests are
skipped, saying so, when the files are absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import thermo.systems as systems

N_SAMPLES = 3000  # the figure; the first 3000 rows, no random choice
RELATIVE_TOLERANCE = 0.03  # fixed by issue 2


def _reference_dir() -> Path:
    env = os.environ.get("STOCHTHERMO_SHARED_DATA")
    if env:
        return Path(env) / "reference"
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / "reference"


def _load(filename: str) -> np.ndarray:
    path = _reference_dir() / filename
    if not path.exists():
        pytest.skip(
            f"shared reference samples not found at {path} (set STOCHTHERMO_SHARED_DATA "
            "to the shared data folder); the Stein check needs them"
        )
    return np.asarray(np.load(path)[:N_SAMPLES], dtype=np.float64)


@eqx.filter_jit
def _stein_terms(system, xs):
    """Per sample: the exact Laplacian of beta U and |grad beta U|^2."""

    def reduced(x):
        return system.beta * system.energy(x)

    def terms(x):
        laplacian = jnp.trace(jax.hessian(reduced)(x))
        grad = jax.grad(reduced)(x)
        return laplacian, jnp.sum(grad * grad)

    return jax.vmap(terms)(xs)


def _stein_relative_gap(system, xs):
    laplacian, grad_sq = _stein_terms(system, jnp.asarray(xs))
    laplacian, grad_sq = np.asarray(laplacian), np.asarray(grad_sq)
    diff = laplacian - grad_sq
    scale = grad_sq.mean()
    gap = diff.mean() / scale
    std_err = diff.std(ddof=1) / np.sqrt(len(diff)) / scale
    print(
        f"\n{system.name}: E[lap bU] = {laplacian.mean():.4f}, E|grad bU|^2 = {scale:.4f}, "
        f"relative gap = {gap:+.4f} +- {std_err:.4f} (1 s.e.)"
    )
    return gap, std_err


@pytest.mark.parametrize(
    ("name", "filename"),
    [("dw4", "val_split_DW4.npy"), ("lj13", "val_split_LJ13-1000.npy")],
)
def test_stein_identity_on_reference_samples(name, filename):
    system = systems.get(name)
    xs = _load(filename)
    assert xs.shape == (N_SAMPLES, system.dim)
    gap, std_err = _stein_relative_gap(system, xs)
    assert np.isfinite(std_err)
    assert abs(gap) < RELATIVE_TOLERANCE


def _wrong_convention(name):
    if name == "dw4":  # each pair counted twice (ordered pairs)
        return systems.MultiDoubleWell(beta=2.0, name="dw4-ordered-pairs")
    # LJ-13 with each pair counted once (same restraint, beta = 1)
    return systems.LennardJonesCluster(
        13,
        epsilon=1.0,
        r_m=1.0,
        pair_factor=1.0,
        harmonic=1.0,
        beta=1.0,
        prior_scale=0.7,
        name="lj13-unique-pairs",
    )


@pytest.mark.parametrize(
    ("name", "filename"),
    [("dw4", "val_split_DW4.npy"), ("lj13", "val_split_LJ13-1000.npy")],
)
def test_stein_identity_rejects_the_other_pair_counting(name, filename):
    """Negative control: the same samples reject the other pair-counting convention."""
    gap, std_err = _stein_relative_gap(_wrong_convention(name), _load(filename))
    assert abs(gap) > RELATIVE_TOLERANCE + 4 * std_err
