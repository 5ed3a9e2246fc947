"""The pipeline benchmark's task breakdown: each dask task counted under what it does."""

from __future__ import annotations

import time
from pathlib import Path

import dask
import dask.array as da
import h5py
import numpy as np

from pipeline.chunk_sink import ChunkWriter, store_chunks
from tests.bench.bench_pipeline import TaskClock, task_seconds


def test_task_seconds_sums_each_kind_and_spans_the_run() -> None:
    records = [  # keys as dask names them
        (("mthccar-infer-c12f33dd-b1dc7e8f463d96634980486c2139dc78", 0, 0), 10.0, 12.5),
        (("getitem-store-map-16662a6b0a1bba29a563a54180d64767", 0, 0), 12.5, 13.0),
        (("store-map-436131422ddb766870babfb05b02b448", 1, 0), 11.0, 11.25),
        (("where-5d85eeab627ca1a395b593718b920d97", 0, 0), 9.5, 10.0),
        ("finalize-hlgfinalizecompute-7a0b59c1e7f6a4d2b3c8e9f0a1b2c3d4", 13.0, 13.5),
    ]
    assert task_seconds(records) == {"model": 2.5, "store": 0.75, "read": 1.0, "span": 4.0}
    assert task_seconds([]) == {"model": 0.0, "store": 0.0, "read": 0.0, "span": 0.0}


def test_a_real_store_of_model_outputs_is_counted_as_model_and_store(tmp_path: Path) -> None:
    """dask's own task names for a model map and a chunk store, as the pipeline builds them (the
    model's outputs feed the store and a reduction), fall under "model" and "store": a rename in
    dask would put them under "read" and this fails."""
    path = tmp_path / "product.nc"
    with h5py.File(path, "w") as file:
        file.create_dataset("v", shape=(64, 64), chunks=(32, 32), dtype="f4", shuffle=True, compression="gzip")

    def model(block: np.ndarray) -> np.ndarray:
        time.sleep(0.05)
        return block * 2

    outputs = (da.ones((64, 64), chunks=32, dtype="f4") + 1).map_blocks(model, token="mthccar-infer-0123abcd")
    with ChunkWriter(path) as writer, TaskClock() as tasks:
        store = store_chunks([outputs], [writer.sink("v")])
        started = time.perf_counter()
        dask.compute(store, outputs.sum(), scheduler="threads")
        wall = time.perf_counter() - started
    spent = task_seconds(tasks.records)
    assert len(tasks.records) == len({key for key, _, _ in tasks.records}) >= 4 + 4  # each model and store task once
    assert spent["model"] >= 4 * 0.05
    assert spent["store"] > 0
    assert 0.05 <= spent["span"] <= wall
    with h5py.File(path) as file:
        np.testing.assert_array_equal(file["v"][...], np.full((64, 64), 4, dtype="f4"))
