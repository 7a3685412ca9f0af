"""The shared training driver :mod:`thermo.fit`: exact optimum, chunk-invariance, resume after a
real kill (bit-identical), EMA, no recompilation on a repeated call, bad input."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

from tests._compile_count import count_compiles
from thermo.fit import ema_params, fit, fit_steps, with_ema

_TARGET = jnp.array([1.0, -2.0, 0.5])
_OPT = optax.adam(0.05)


def _noisy_quadratic(params, key, args):
    # E_noise |w - (target + noise)|^2 has its minimum at w = target; the noise makes the
    # result depend on every step's key
    scale = args
    noise = scale * jr.normal(key, _TARGET.shape)
    return jnp.sum((params["w"] - _TARGET - noise) ** 2)


def _init():
    return {"w": jnp.zeros(3)}


def test_fit_reaches_the_optimum_of_a_quadratic():
    res = fit(jr.key(0), _init(), _noisy_quadratic, _OPT, 400, args=0.0, steps_per_call=100)
    np.testing.assert_allclose(res.model["w"], _TARGET, atol=1e-6)
    assert res.losses.shape == (400,) and res.start_step == 0


@pytest.mark.parametrize("scheme", ["fold_in", "split"])
def test_result_does_not_depend_on_chunking(scheme):
    def run_fit(steps_per_call):
        return fit(
            jr.key(1),
            _init(),
            _noisy_quadratic,
            _OPT,
            60,
            args=0.3,
            steps_per_call=steps_per_call,
            step_keys_scheme=scheme,
        )

    a, b = run_fit(60), run_fit(7)
    np.testing.assert_array_equal(a.model["w"], b.model["w"])
    np.testing.assert_array_equal(a.losses, b.losses)


def test_fit_steps_is_the_same_loop_under_jit():
    keys = jr.split(jr.key(2), 50)
    model, _, losses, _ = jax.jit(lambda m, s: fit_steps(m, s, keys, _noisy_quadratic, _OPT, 0.3))(
        _init(), _OPT.init(_init())
    )
    res = fit(
        jr.key(2),
        _init(),
        _noisy_quadratic,
        _OPT,
        50,
        args=0.3,
        step_keys_scheme="split",
        steps_per_call=50,
    )
    np.testing.assert_array_equal(model["w"], res.model["w"])
    np.testing.assert_array_equal(losses, res.losses)


def test_ema_matches_its_recursion():
    decay = 0.9
    opt = with_ema(optax.sgd(0.1), decay, warmup=False)
    res = fit(jr.key(3), _init(), _noisy_quadratic, opt, 20, args=0.3, steps_per_call=1)
    # replay: the EMA recursion over the iterates of the same optimiser
    w = jnp.zeros(3)
    ema = w
    keys = jax.vmap(lambda k: jr.fold_in(jr.key(3), k))(jnp.arange(20))
    for k in keys:
        g = jax.grad(lambda p, k=k: _noisy_quadratic({"w": p}, k, 0.3))(w)
        w = w - 0.1 * g
        ema = decay * ema + (1 - decay) * w
    np.testing.assert_allclose(res.model["w"], w, rtol=1e-12)
    np.testing.assert_allclose(ema_params(res.model, res.opt_state)["w"], ema, rtol=1e-12)


def test_repeated_call_does_not_recompile():
    fit(jr.key(4), _init(), _noisy_quadratic, _OPT, 30, args=0.3, steps_per_call=10)
    with count_compiles() as c:
        fit(jr.key(5), {"w": jnp.ones(3)}, _noisy_quadratic, _OPT, 30, args=0.3, steps_per_call=10)
    assert c.n == 0


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="n_steps"):
        fit(jr.key(0), _init(), _noisy_quadratic, _OPT, 2.7, args=0.0)
    with pytest.raises(ValueError, match="steps_per_call"):
        fit(jr.key(0), _init(), _noisy_quadratic, _OPT, 5, args=0.0, steps_per_call=0)
    with pytest.raises(ValueError, match="step_keys"):
        fit(jr.key(0), _init(), _noisy_quadratic, _OPT, 5, args=0.0, step_keys_scheme="nope")
    with pytest.raises(ValueError, match="inexact"):
        fit(jr.key(0), {"n": jnp.arange(3)}, _noisy_quadratic, _OPT, 5, args=0.0)
    with pytest.raises(FloatingPointError, match="non-finite at step 0"):
        fit(jr.key(0), _init(), lambda p, k, a: jnp.sum(p["w"]) / 0.0 * 0.0, _OPT, 3)


_SCRIPT = textwrap.dedent(
    """
    import sys
    import jax
    jax.config.update("jax_enable_x64", True)
    import numpy as np
    from tests.thermo.test_fit import run_with_checkpoint

    res = run_with_checkpoint(sys.argv[1], float(sys.argv[3]))
    np.savez(sys.argv[2], w=res.model["w"], ema=res.opt_state.ema["w"], start=res.start_step)
    """
)


def _slow_loss(params, key, args):
    # _noisy_quadratic with a host callback that sleeps `delay` seconds per step
    scale, delay = args
    jax.debug.callback(lambda: time.sleep(delay))
    return _noisy_quadratic(params, key, scale)


def run_with_checkpoint(path, delay):
    """200 EMA-Adam steps with a checkpoint every 20 (also run by the killed subprocess)."""
    opt = _EMA_OPT
    return fit(
        jr.key(7),
        _init(),
        _slow_loss,
        opt,
        200,
        args=(0.3, delay),
        steps_per_call=20,
        checkpoint_path=path,
    )


_EMA_OPT = with_ema(optax.adam(0.05), 0.9)


def test_killed_run_resumes_bit_identical(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(_SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.getcwd(), JAX_PLATFORMS="cpu")
    ckpt = tmp_path / "ckpt.eqx"
    # a slow run (10 ms per step), killed with SIGKILL once it has written a checkpoint
    proc = subprocess.Popen(
        [sys.executable, str(script), str(ckpt), str(tmp_path / "a.npz"), "0.01"], env=env
    )
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists(), "the run ended or failed before its first checkpoint"
    assert not (tmp_path / "a.npz").exists(), "the run finished before it was killed"
    # resume in-process (no sleep: the delay is a static Python float, the arithmetic is
    # the same) and compare with an uninterrupted run
    resumed = run_with_checkpoint(ckpt, 0.0)
    straight = run_with_checkpoint(tmp_path / "fresh.eqx", 0.0)
    assert resumed.start_step > 0 and straight.start_step == 0
    np.testing.assert_array_equal(resumed.model["w"], straight.model["w"])
    np.testing.assert_array_equal(resumed.opt_state.ema["w"], straight.opt_state.ema["w"])
