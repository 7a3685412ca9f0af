"""Executors: run a batch of evaluations and yield each as it finishes.

* :class:`InProcessExecutor` (default): one after another in this process.
* :class:`ProcessPoolExecutor`: a ``concurrent.futures`` local process pool.
* :class:`DaskExecutor`: a ``dask.distributed`` client (a ``LocalCluster`` or a real cluster).

All three implement ``map_unordered(fn, items)`` yielding ``(item, fn(item))`` in completion
order, so the loop writes each result to the store the moment it exists.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["DaskExecutor", "InProcessExecutor", "ProcessPoolExecutor"]


class InProcessExecutor:
    """Evaluate in the calling process, in order."""

    def map_unordered(self, fn: Callable, items: Iterable) -> Iterator[tuple[Any, Any]]:
        for it in items:
            yield it, fn(it)

    def close(self) -> None:
        pass


class ProcessPoolExecutor:
    """A ``concurrent.futures.ProcessPoolExecutor`` (``fn`` and items must pickle)."""

    def __init__(self, max_workers: int | None = None):
        import multiprocessing as mp

        self._pool = cf.ProcessPoolExecutor(max_workers, mp_context=mp.get_context("spawn"))

    def map_unordered(self, fn, items):
        futs = {self._pool.submit(fn, it): it for it in items}
        for f in cf.as_completed(futs):
            yield futs[f], f.result()

    def close(self) -> None:
        self._pool.shutdown()


class DaskExecutor:
    """Submit to a ``dask.distributed.Client`` (pass one, or an address)."""

    def __init__(self, client):
        try:
            from dask.distributed import Client
        except ImportError as err:  # pragma: no cover
            raise ImportError(
                "DaskExecutor needs dask.distributed: pip install 'stochthermo[search]'"
            ) from err
        self.client = client if isinstance(client, Client) else Client(client)

    def map_unordered(self, fn, items):
        from dask.distributed import as_completed

        items = list(items)
        futs = [self.client.submit(fn, it, pure=False) for it in items]
        where = {f.key: it for f, it in zip(futs, items, strict=True)}
        for f in as_completed(futs):
            yield where[f.key], f.result()

    def close(self) -> None:
        pass
