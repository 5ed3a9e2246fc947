"""Graphs computed ahead of the product: on this process's threads or on a distributed cluster."""

from __future__ import annotations

import dask.array as da
import numpy as np

from pipeline.compute import cluster_client, materialize


def test_materialize_keeps_values_and_chunks_on_threads_and_on_a_cluster() -> None:
    from distributed import Client, LocalCluster, wait

    lazy = da.arange(600, chunks=70).reshape(20, 30).rechunk((7, 11)) * 2.0
    expected = lazy.compute()
    assert cluster_client() is None
    here = materialize(lazy)
    assert here.chunks == lazy.chunks
    assert len(dict(here.__dask_graph__())) == here.npartitions  # computed: one stored block per chunk
    np.testing.assert_array_equal(here.compute(), expected)
    local = {"n_workers": 1, "threads_per_worker": 2, "processes": False}  # in-process: no sockets
    with LocalCluster(**local, dashboard_address=None) as cluster, Client(cluster) as client:
        assert cluster_client() is client
        held = materialize(lazy)
        assert held.chunks == lazy.chunks
        assert len(dict(held.__dask_graph__())) == held.npartitions  # one future per chunk
        wait(held)
        holders = client.who_has(held)
        assert len(holders) == held.npartitions
        assert all(holders.values())  # every block is held by the cluster's worker
        np.testing.assert_array_equal(held.compute(), expected)
    assert cluster_client() is None
