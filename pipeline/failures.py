"""Why a granule failed, in one sentence: bad input, corrupt data, a full, read-only or forbidden disk.

The CLI and the flows record this sentence for the granule and go on with the next one; the
traceback goes to the debug log only. Errors the pipeline raises itself (``GranuleError``,
``IngestError``, ``ArtifactError``, ...) are already sentences; errors from the libraries below it
are classified here by errno, or, for netCDF/HDF5 errors raised while dask computes, by the file
whose read or write failed (found in the traceback).
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path
from types import TracebackType

ERRNO_REASONS: dict[int, str] = {
    errno.ENOSPC: "no space is left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission is denied",
    errno.EPERM: "the operation is not permitted",
    errno.EIO: "an input/output error occurred",
    errno.ENOENT: "a file does not exist",
}
LIBRARY_ERROR_MARKERS = ("NetCDF:", "HDF error", "HDF5", "zlib", "filter returned failure")
NEARLY_FULL_BYTES = 16 * 1024**2


def _first_line(error: BaseException) -> str:
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    return (text.strip().splitlines() or [type(error).__name__])[0]


def _netcdf_file(traceback: TracebackType | None) -> tuple[str, str] | None:
    """(file, mode) of the innermost xarray netCDF access in a traceback, if any."""
    found = None
    while traceback is not None:
        owner = traceback.tb_frame.f_locals.get("self")
        store = getattr(owner, "datastore", None)
        if store is not None and hasattr(store, "_filename"):
            found = (str(store._filename), str(getattr(store, "_mode", "r")))
        traceback = traceback.tb_next
    return found


def _nearly_full(directory: Path | None) -> bool:
    if directory is None:
        return False
    try:
        return shutil.disk_usage(directory).free < NEARLY_FULL_BYTES
    except OSError:
        return False


def describe_failure(error: BaseException, granule_id: str, out_dir: Path | None = None) -> str:
    """One sentence naming the granule, what went wrong and where."""
    text = _first_line(error)
    code = error.errno if isinstance(error, OSError) else None
    where = getattr(error, "filename", None) or out_dir
    library = any(marker in text for marker in LIBRARY_ERROR_MARKERS)
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
        return f"granule {granule_id}: {ERRNO_REASONS[code]} at {where} (errno {code})"
    access = _netcdf_file(error.__traceback__) if library else None
    if access is not None and access[1] == "r":
        return f"granule {granule_id}: input file {Path(access[0]).name} has a corrupt or unreadable chunk ({text})"
    if (library or code in (errno.EACCES, errno.EPERM, errno.EIO)) and _nearly_full(out_dir):
        # HDF5 reports a full disk as an HDF error, or as EACCES when it cannot create a file
        return f"granule {granule_id}: no space is left on the device of {out_dir} ({text})"
    if code in ERRNO_REASONS and code != errno.ENOENT:
        return f"granule {granule_id}: {ERRNO_REASONS[code]} at {where} (errno {code})"
    if library:
        return f"granule {granule_id}: writing its product in {out_dir or 'the output directory'} failed ({text})"
    if granule_id in text:
        return text
    if isinstance(error, ValueError | LookupError | FileNotFoundError | FileExistsError):
        return f"granule {granule_id}: {text}"
    return f"granule {granule_id} failed: {type(error).__name__}: {text}"
