"""Where this process computes dask graphs: a distributed client's cluster, or a thread pool of its own.

Decided by the client, not by dask's global scheduler setting: ``opening_files`` in another
granule's thread sets that to "synchronous" for a moment, and a graph computed meanwhile must
neither look for a cluster that is not there nor leave one that is.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dask
import dask.array as da


def cluster_client() -> Any:
    """The distributed client this process computes on, or None for dask's threads."""
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        return default_client()
    except ValueError:  # no client in this process
        return None


def compute_and_join(*collections: Any) -> tuple[Any, ...]:
    """``dask.compute`` on a thread pool of its own, joined before this returns or raises.

    When a task fails, dask raises at once while other tasks still run; joining the pool means no
    task of a failed graph runs after its caller has cleaned up.
    """
    workers = dask.config.get("num_workers", None) or os.cpu_count() or 1
    with ThreadPoolExecutor(workers) as pool:  # leaving waits for every task it started
        # threads by name: the global setting may be another granule's momentary "synchronous"
        return tuple(dask.compute(*collections, scheduler="threads", pool=pool))


def materialize(array: da.Array) -> da.Array:
    """``array`` computed now, as a dask array on the same chunks: held by the cluster's workers
    (a distributed client) or in this process's memory (threads)."""
    client = cluster_client()
    if client is not None:
        return client.persist(array)
    (values,) = compute_and_join(array)
    return da.from_array(values, chunks=array.chunks, name=False)
