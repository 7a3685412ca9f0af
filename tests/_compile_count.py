"""Count XLA backend compilations (tests of "no recompilation on a repeated call")."""

from __future__ import annotations

import contextlib

from jax import monitoring

_EVENT = "/jax/core/compile/backend_compile_duration"
_count = [0]


def _listener(name, duration, **kwargs):
    if name == _EVENT:
        _count[0] += 1


monitoring.register_event_duration_secs_listener(_listener)


class _Counter:
    n = 0


@contextlib.contextmanager
def count_compiles():
    """``with count_compiles() as c: ...``; afterwards ``c.n`` is the number of backend
    compilations that ran inside the block (every ``jit``, in any library)."""
    c = _Counter()
    start = _count[0]
    try:
        yield c
    finally:
        c.n = _count[0] - start
