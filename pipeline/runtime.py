"""Where dask runs the work: local threads, a local cluster of processes, or a remote scheduler.

* local threads (default): one process, dask's threaded scheduler;
* ``workers=N``: a ``distributed.LocalCluster`` of N single-threaded worker processes on loopback;
* ``scheduler="tcp://host:8786"``: an existing cluster (how users outgrow one machine); GPU workers
  started with ``--resources GPU=1`` receive the inference tasks when the device is not ``cpu``.

The runtime also says how many torch threads each inference task may use, so that dask workers
and torch do not oversubscribe the cores.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    client: Any | None  # distributed.Client, or None for the threaded scheduler
    torch_threads: int
    resources: dict[str, float] | None
    description: str


def _gpu_workers(client: Any) -> int:
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    return sum(1 for w in workers.values() if w.get("resources", {}).get("GPU", 0) > 0)


# distributed starts its worker processes with MALLOC_TRIM_THRESHOLD_=65536, to hand freed memory
# back to the system at once. Setting it also stops glibc from raising its mmap threshold, so every
# model batch's activations are mapped and unmapped again: one VIIRS chunk took 0.78-0.81 s in a
# worker against 0.44-0.46 s in this process, and 0.44-0.48 s in a worker without the variable.
# (Docker images ship the same setting in docker/dask.yaml for `dask worker`.)
WORKER_MALLOC_DEFAULTS = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


def worker_malloc_defaults() -> Any:
    """Config under which nannies start their workers with glibc's own malloc thresholds."""
    import dask

    return dask.config.set(WORKER_MALLOC_DEFAULTS)


@contextmanager
def dask_runtime(scheduler: str | None = None, workers: int | None = None, device: str = "auto") -> Iterator[Runtime]:
    """Set up (and tear down) the dask runtime for one run."""
    cores = os.cpu_count() or 1
    if scheduler and workers:
        raise ValueError("give either --scheduler or --workers, not both")
    if not scheduler and not workers:
        yield Runtime(None, 1, None, f"local threads ({cores})")
        return
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as err:
            raise ValueError(f"cannot reach the dask scheduler at {scheduler} ({err})") from None
        try:
            gpus = _gpu_workers(client)
            resources = {"GPU": 1.0} if gpus and device != "cpu" else None
            if device == "cuda" and not gpus:
                raise ValueError(f"device cuda was requested but no worker of {scheduler} advertises a GPU resource")
            n = len(client.scheduler_info(n_workers=-1).get("workers", {}))
            yield Runtime(client, 1, resources, f"scheduler {scheduler} ({n} workers, {gpus} with GPU)")
        finally:
            client.close()
        return
    assert workers is not None
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, not {workers}")
    with worker_malloc_defaults():
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.WARNING,
        )
    client = Client(cluster)
    try:
        yield Runtime(client, max(1, cores // workers), None, f"local cluster ({workers} worker processes)")
    finally:
        client.close()
        cluster.close()
