r"""The pretrained-sampler contract: ``generative.samplers.pretrained(name).sample(key, n)``.

Loads the committed DW-4 checkpoint (no training), draws a small corrected population
and checks the result's fields, shapes, the cost formula
:math:`n(1 + K(1 + M))` and that a seeded call is reproducible; an unknown name fails
with a message listing the valid ones. (Accuracy is measured by
``experiments/fk_samplers.py``; the correction's exactness by ``test_samplers_fk.py``.)
"""

import jax.random as jr
import numpy as np
import pytest

from generative.samplers import PRETRAINED, pretrained


def test_dw4_contract():
    model = pretrained("dw4")
    config = PRETRAINED["dw4"]
    assert model.provenance["config"]["n_steps"] == config.n_steps
    out = model.sample(jr.PRNGKey(0), 32)
    assert out.samples.shape == (32, 8)
    assert np.all(np.isfinite(np.asarray(out.samples)))
    assert np.isfinite(float(out.log_z)) and float(out.log_z_std) >= 0
    assert out.n_energy_evals == 32 * (1 + config.n_steps * (1 + config.n_moves))
    again = model.sample(jr.PRNGKey(0), 32)
    np.testing.assert_array_equal(np.asarray(out.samples), np.asarray(again.samples))


def test_all_checkpoints_load():
    for name in ("dw4", "lj13", "lj55"):
        model = pretrained(name)
        assert model.provenance["name"] == name


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="dw4.*lj13.*lj55"):
        pretrained("lj38")
    with pytest.raises(ValueError, match="'linear', 'power' or 'adaptive'"):
        pretrained("dw4").sample(jr.PRNGKey(0), 8, lambdas="geometric")
    assert {c.lambdas for c in PRETRAINED.values()} <= {"linear", "power", "adaptive"}
