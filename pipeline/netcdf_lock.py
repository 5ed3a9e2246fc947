"""One lock per process for the netCDF-C and HDF5 libraries, which are not thread-safe.

xarray serialises its own chunk reads, writes and file closes behind its ``HDF5_LOCK`` and
``NETCDFC_LOCK``, but not the metadata it reads while opening a file, and satpy and this package
also call netCDF4 directly. Two granules in one process (a backfill on threads) then entered the C
library at once and the process died with a segmentation fault. So there is one re-entrant lock:
xarray's two locks are pointed at it when this module is imported (re-entrant, so xarray may take
it again inside a section that holds it), and every granule-level step that opens, reads or
writes netCDF/HDF5 files holds it too:

* building a granule's lazy graph (satpy opens every file, the DQF and ancillary files are read);
* creating a product file and writing its final attributes;
* reading products back (the existing-product check, quicklooks).

A compute itself does not hold it: its dask tasks take it around each chunk read or write through
xarray, as before, so chunk I/O is serialised per process and everything else (features, model,
compression) runs in parallel. Holding it across a threaded compute would deadlock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import dask


class _ProcessLock:
    """A re-entrant lock with the interface xarray's locks expose (``locked`` included)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._depth = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        acquired = self._lock.acquire(blocking, timeout)
        if acquired:
            self._depth += 1
        return acquired

    def release(self) -> None:
        self._depth -= 1
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def locked(self) -> bool:
        return self._depth > 0


NETCDF_LOCK = _ProcessLock()


def _share_with_xarray() -> None:
    """Point xarray's netCDF-C and HDF5 locks (and their unpickled copies) at ``NETCDF_LOCK``."""
    from xarray.backends import locks

    for shared in (locks.HDF5_LOCK, locks.NETCDFC_LOCK):
        shared.lock = NETCDF_LOCK  # type: ignore[assignment]
        locks.SerializableLock._locks[shared.token] = NETCDF_LOCK  # type: ignore[assignment]


_share_with_xarray()


@contextmanager
def netcdf_lock() -> Iterator[None]:
    """Hold the process-wide netCDF/HDF5 lock."""
    with NETCDF_LOCK:
        yield


@contextmanager
def opening_files() -> Iterator[None]:
    """Hold the lock while readers open files, with any compute they start run in this thread.

    Some satpy readers compute small arrays while they open a file (the OCI reader reads its band
    table). On dask's thread pool those reads would wait for the lock this thread holds; run in this
    thread they take it again (it is re-entrant). The scheduler setting is global, so it is changed
    only under the lock, and a compute that another thread starts meanwhile also runs in its own
    thread, which is correct, only slower.
    """
    with NETCDF_LOCK, dask.config.set(scheduler="synchronous"):
        yield
