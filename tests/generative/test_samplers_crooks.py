r"""Crooks' fluctuation theorem on a small case (Crooks 1999).

A 1-D harmonic trap is stiffened :math:`k: 1 \to 4` (forward) and softened
:math:`4 \to 1` (reverse) in :math:`\tau = 0.5` by overdamped Langevin dynamics from exact
equilibrium. The forward reduced-work density and the mirrored reverse one must cross at
:math:`\Delta f = \tfrac12\log 4`; the crossing (``thermo.estimators.crooks``) is checked
within 4 bootstrap standard errors, and so is BAR (within 4 of its own errors). The
unadjusted kernel's bias, about :math:`k\,dt/4 = 0.002` at ``dt = 2e-3``, is far below
either error.
"""

import math

import jax.random as jr
import numpy as np
import pytest

from generative.samplers import crooks_crossing, trap_switching_works


def test_forward_and_reverse_work_densities_cross_at_delta_f():
    works = trap_switching_works(jr.PRNGKey(2024), n_paths=1000, duration=0.5, dt=2e-3)
    assert works.delta_f == pytest.approx(0.5 * math.log(4.0))
    res = crooks_crossing(jr.PRNGKey(7), works.forward, works.reverse, n_bootstrap=50)
    crossing, se = float(res.crossing), float(res.std_err)
    bar, bar_se = float(res.bar[0]), float(res.bar[1])
    mean_f, mean_r = float(np.mean(works.forward)), float(np.mean(works.reverse))
    print(
        f"Crooks: crossing {crossing:.4f} ± {se:.4f}, BAR {bar:.4f} ± {bar_se:.4f}, exact "
        f"{works.delta_f:.4f}; <w_F> {mean_f:.3f} >= Δf >= -<w_R> {-mean_r:.3f}"
    )
    assert np.isfinite(crossing) and se > 0
    assert abs(crossing - works.delta_f) < 4 * se
    assert abs(bar - works.delta_f) < 4 * bar_se
    # Second law on both sides: the densities are genuinely apart, so the crossing is
    # informative (mean dissipation at least 4 standard errors above zero).
    se_f = float(np.std(works.forward)) / math.sqrt(works.forward.shape[0])
    se_r = float(np.std(works.reverse)) / math.sqrt(works.reverse.shape[0])
    assert mean_f - works.delta_f > 4 * se_f
    assert mean_r + works.delta_f > 4 * se_r


def test_crooks_crossing_rejects_bad_works():
    with pytest.raises(ValueError, match="NaN or inf"):
        crooks_crossing(jr.PRNGKey(0), np.array([0.1, np.nan, 0.3]), np.array([0.2, 0.1]))
