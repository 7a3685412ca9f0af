"""The persistent compilation cache of the tests and the book (experiments/_jax_cache.py)."""

import os

import jax

from experiments._jax_cache import CACHE_DIR, cache_environment


def test_cache_is_on_by_default_and_can_be_turned_off():
    on = cache_environment({})
    assert on == {
        "JAX_COMPILATION_CACHE_DIR": str(CACHE_DIR),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    }
    assert cache_environment({"STOCHTHERMO_JAX_CACHE": "0"}) == {}


def test_a_directory_already_chosen_is_kept():
    env = {"JAX_COMPILATION_CACHE_DIR": "/elsewhere"}
    assert cache_environment(env)["JAX_COMPILATION_CACHE_DIR"] == "/elsewhere"


def test_this_session_uses_the_cache_unless_turned_off():
    """conftest.py applies it before jax reads its configuration."""
    if os.environ.get("STOCHTHERMO_JAX_CACHE", "1") == "0":
        assert not jax.config.jax_compilation_cache_dir
    else:
        assert jax.config.jax_compilation_cache_dir == os.environ["JAX_COMPILATION_CACHE_DIR"]
