"""A staging product's chunked variables filled by dask tasks that compress their own chunks.

Through netCDF-C, every chunk of a product is shuffled and deflated inside the HDF5 library's
global lock, one after another: on a VIIRS granule that was 3 s of single-threaded zlib, the
largest cost of writing the product. Here each store task encodes its block
(``models.chunk_codec.ChunkEncoding``, GIL released) in parallel with the others, and only the finished bytes go
through the lock (``write_direct_chunk``). The file itself is created by xarray's netCDF4 backend
first, attributes and small variables included, so it is the same product as before.

On dask's threaded scheduler the store tasks share one open ``h5py.File`` of this process
(``store_chunks``); a cluster's workers only encode (``encoded_blocks``) and this process stores the
bytes they return (``ChunkSink.write``).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import dask
import dask.array as da
import h5py
import numpy as np
from dask.delayed import Delayed

from models.chunk_codec import ChunkEncoding

_ERRNO = re.compile(r"errno = (\d+)")


@contextmanager
def _as_os_error(path: str) -> Iterator[None]:
    """HDF5's failed system calls (a full disk) as the ``OSError`` they were, naming the file.

    h5py raises them as a ``RuntimeError`` or an errno-less ``OSError`` whose message carries the
    errno, ``... errno = 28, error message = 'No space left on device' ...``.
    """
    try:
        yield
    except (RuntimeError, OSError) as err:
        found = _ERRNO.search(str(err))
        if found is None or (isinstance(err, OSError) and err.errno is not None):
            raise
        code = int(found.group(1))
        raise OSError(code, os.strerror(code), path) from err


class ChunkSink:
    """A target for ``dask.array.store``: one variable of an open file, written a whole chunk at a time."""

    def __init__(self, variable: h5py.Dataset, lock: threading.Lock) -> None:
        self._variable = variable
        self._path = variable.file.filename
        self._lock = lock
        self.name = variable.name
        self.encoding = ChunkEncoding.of(variable)
        self.chunks = self.encoding.chunks

    def __setitem__(self, region: tuple[slice, ...], block: np.ndarray) -> None:
        offset = tuple(int(s.start or 0) for s in region)
        if any(o % c for o, c in zip(offset, self.chunks, strict=True)):
            raise ValueError(f"{self.name}: a block at {offset} does not start on a chunk of {self.chunks}")
        self.write(offset, self.encoding.encode(block))  # compressed outside the lock

    def write(self, offset: tuple[int, ...], payload: bytes) -> None:
        """Store one encoded chunk, under the file's lock."""
        with self._lock, _as_os_error(self._path):
            self._variable.id.write_direct_chunk(offset, payload)


class ChunkWriter:
    """The staging file opened for chunk writes; ``sink(name)`` gives each variable's store target."""

    def __init__(self, path: Path) -> None:
        self._path = str(path)
        with _as_os_error(self._path):
            self._file = h5py.File(path, "r+")
        self._lock = threading.Lock()

    def sink(self, name: str) -> ChunkSink:
        return ChunkSink(self._file[name], self._lock)

    def close(self) -> None:
        with self._lock, _as_os_error(self._path):
            self._file.close()

    def __enter__(self) -> ChunkWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def aligned(source: da.Array, chunks: tuple[int, ...]) -> da.Array:
    """``source`` in blocks that are whole file chunks (only the last block of an axis may be short)."""
    regular = all(
        all(size == chunk for size in sizes[:-1]) and sizes[-1] <= chunk
        for sizes, chunk in zip(source.chunks, chunks, strict=True)
    )
    return source if regular else source.rechunk(chunks)


def store_chunks(sources: list[da.Array], sinks: list[ChunkSink]) -> Any:
    """The lazy store of each source into its sink (compute it to write)."""
    targets: list[Any] = list(sinks)  # dask types its targets as arrays; it only calls __setitem__
    return da.store(
        [aligned(source, sink.chunks) for source, sink in zip(sources, sinks, strict=True)],
        targets,
        lock=False,  # each sink takes the file's lock for the write alone, not for the compression
        compute=False,
    )


def encoded_blocks(source: da.Array, sink: ChunkSink) -> list[tuple[tuple[int, ...], Delayed]]:
    """(chunk offset, lazy encoded bytes) of each block of ``source``, for workers in other processes
    to compress and this process to store (``ChunkSink.write``). The graph keeps its keys, so a
    computation that also asks for other reductions of the same arrays shares their tasks."""
    blocks = aligned(source, sink.chunks)
    starts = [np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int) for sizes in blocks.chunks]
    encode = dask.delayed(sink.encoding.encode, pure=False)  # a key of its own per chunk, even for equal inputs
    return [
        (tuple(int(starts[axis][i]) for axis, i in enumerate(index)), encode(block))
        for index, block in np.ndenumerate(blocks.to_delayed(optimize_graph=False))
    ]
