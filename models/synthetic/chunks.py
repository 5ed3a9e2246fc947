"""Filling large deflated HDF5 variables with chunks compressed on several threads.

HDF5 (and netCDF-C above it) runs its filters on one thread. A synthetic OCI granule holds about
2 GB of float32 reflectance, and deflating it one chunk after another was the largest part of
writing one. Here each chunk is encoded as HDF5's own filters would (``models.chunk_codec``) on a
thread pool, and the finished bytes are stored with ``write_direct_chunk``, so the file is the same
as one written through the library: any HDF5 or netCDF reader opens it.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import h5py
import numpy as np

from models.chunk_codec import ChunkEncoding


def _chunk_starts(shape: tuple[int, ...], chunks: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
    return itertools.product(*(range(0, n, c) for n, c in zip(shape, chunks, strict=True)))


def write_region(variable: h5py.Dataset, start: tuple[int, ...], data: np.ndarray, workers: int | None = None) -> None:
    """Store ``data`` at ``start`` of ``variable``, compressing its chunks on ``workers`` threads.

    The region must begin on chunk boundaries and hold whole chunks, except where it reaches the end
    of the variable (edge chunks are padded with the fill value, as HDF5 pads them).
    """
    encoding = ChunkEncoding.of(variable)
    chunks = encoding.chunks
    data = np.asarray(data, dtype=encoding.dtype)
    for axis, (first, size, chunk, extent) in enumerate(zip(start, data.shape, chunks, variable.shape, strict=True)):
        if first % chunk or (size % chunk and first + size != extent) or first + size > extent:
            raise ValueError(f"{variable.name}: region {start} + {data.shape} is not whole chunks on axis {axis}")

    def compressed(offset: tuple[int, ...]) -> bytes:
        return encoding.encode(data[tuple(slice(o, o + c) for o, c in zip(offset, chunks, strict=True))])

    offsets = list(_chunk_starts(data.shape, chunks))
    with ThreadPoolExecutor(workers or min(2, os.cpu_count() or 1)) as pool:
        for offset, payload in zip(offsets, pool.map(compressed, offsets), strict=True):
            variable.id.write_direct_chunk(tuple(s + o for s, o in zip(start, offset, strict=True)), payload)
