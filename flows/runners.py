"""Where the dask work of a flow runs, chosen per run (``RunSettings.where``).

Prefect orchestrates with its default thread-pool task runner: tasks are small (find, check,
publish) or hand one granule's dask graph to a dask scheduler. The heavy lifting is dask's, not
Prefect's: a ``DaskTaskRunner`` would put whole Prefect tasks on dask workers, and a task that then
computes a dask graph of its own must ``secede`` from its worker and reconnect as a client; keeping
one dask client per flow run is simpler and lets the same graph run on threads, a local cluster, a
remote scheduler or local GPUs unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from flows.parameters import DeviceName, RunSettings, Where
from pipeline.runtime import Runtime, dask_runtime, worker_malloc_defaults

logger = logging.getLogger(__name__)


@contextmanager
def dask_for(settings: RunSettings) -> Iterator[Runtime]:
    """The dask runtime a run asked for; torn down when the run ends."""
    device = settings.device.value
    if settings.where == Where.threads:
        with dask_runtime(device=device) as runtime:
            yield runtime
    elif settings.where == Where.local_cluster:
        with dask_runtime(workers=settings.workers, device=device) as runtime:
            yield runtime
    elif settings.where == Where.scheduler:
        with dask_runtime(scheduler=settings.scheduler_address, device=device) as runtime:
            yield runtime
    else:
        with _cuda_cluster(settings) as runtime:
            yield runtime


@contextmanager
def _cuda_cluster(settings: RunSettings) -> Iterator[Runtime]:
    """One worker per local GPU (dask-cuda), each advertising ``GPU=1`` for the inference tasks."""
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError:
        raise ValueError("where=cuda_cluster needs dask-cuda: pip install 'mthccar[cuda]'") from None
    from distributed import Client

    with worker_malloc_defaults():
        cluster = LocalCUDACluster(resources={"GPU": 1}, dashboard_address=None)
    client = Client(cluster)
    try:
        resources = None if settings.device == DeviceName.cpu else {"GPU": 1.0}
        yield Runtime(client, 1, resources, f"local CUDA cluster ({len(cluster.workers)} GPUs)")
    finally:
        client.close()
        cluster.close()
