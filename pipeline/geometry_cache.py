"""The fixed geometry of a geostationary grid, computed once and memory-mapped for every later scan.

A geostationary sector's latitude, longitude and sensor zenith/azimuth never change between scans,
yet computing them costs a large share of a scan's reading time and, in float64, about 290 MB per
1356-pixel chunk. They are written once per grid as float32 ``.npy`` files under a directory named
by a hash of the grid (projection, shape, extent), built in a private temporary directory and
renamed into place, so concurrent granules never see a half-built cache (the first rename wins;
the others drop their copy). Later scans map them read-only (``np.load(mmap_mode="r")``) into
dask chunks. Solar angles still come from each scan's time.

Sensor angles are computed from the satellite's actual position as the scan's metadata gives it
(satpy's default), rounded to 0.01 deg and 1 km; the position is part of the key, so a drifting
satellite gets a new cache instead of stale angles, and angles stay within 0.01 deg of satpy's. The cache
lives in ``$MTHCCAR_GEOMETRY_CACHE`` (``off`` disables it), by default ``geometry/`` in the project's
cache directory (``MTHCCAR_CACHE_DIR``, else ``~/.cache/mthccar``, beside the land/water mask);
an unwritable cache directory is logged and the geometry computed in memory as before.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from models.earth import cache_dir

logger = logging.getLogger(__name__)

CACHE_ENV = "MTHCCAR_GEOMETRY_CACHE"
FIELDS = ("latitude", "longitude", "sensor_zenith", "sensor_azimuth")
CACHE_VERSION = 1


def cache_root() -> Path | None:
    """Where grids are cached; None when caching is off."""
    configured = os.environ.get(CACHE_ENV, "")
    if configured.lower() == "off":
        return None
    return Path(configured) if configured else cache_dir() / "geometry"


Position = tuple[float, float, float]  # satellite longitude, latitude (deg), altitude (m)


def satellite_position(reference: Any) -> Position:
    """The satellite's actual position of a scan (satpy's choice), rounded so that scans share a cache."""
    from satpy.utils import get_satpos

    lon, lat, alt = get_satpos(reference, preference="actual")
    return round(float(lon), 2), round(float(lat), 2), round(float(alt), -3)


def grid_key(area: Any, position: Position) -> str:
    """A name for a grid from its projection, shape, extent and the satellite position."""
    text = "|".join(
        [
            str(CACHE_VERSION),
            area.crs.to_wkt(),
            "x".join(str(n) for n in area.shape),
            ",".join(f"{v:.3f}" for v in area.area_extent),
            ",".join(f"{v:.2f}" for v in position),
        ]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _compute_block(lons: np.ndarray, lats: np.ndarray, position: Position) -> np.ndarray:
    import datetime as dt

    from pyorbital.orbital import get_observer_look

    sat_lon, sat_lat, sat_alt = position
    with np.errstate(invalid="ignore"):
        # a geostationary satellite's look angles do not depend on the time
        azimuth, elevation = get_observer_look(
            sat_lon, sat_lat, sat_alt / 1000.0, dt.datetime(2000, 1, 1), lons, lats, 0
        )
    return np.stack([lats, lons, 90.0 - elevation, azimuth]).astype(np.float32)


def _build(area: Any, position: Position, target: Path, rows: int = 512) -> None:
    """Write the grid's fields to ``target`` (a new directory), row block by row block."""
    height, width = area.shape
    target.mkdir(parents=True)
    arrays = {
        name: np.lib.format.open_memmap(target / f"{name}.npy", mode="w+", dtype=np.float32, shape=(height, width))
        for name in FIELDS
    }
    for start in range(0, height, rows):
        stop = min(start + rows, height)
        lons, lats = area.get_lonlats(data_slice=(slice(start, stop), slice(None)))
        lons = np.where(np.abs(lons) <= 360, lons, np.nan)
        lats = np.where(np.abs(lats) <= 90, lats, np.nan)
        block = _compute_block(lons, lats, position)
        for k, name in enumerate(FIELDS):
            arrays[name][start:stop] = block[k]
    for array in arrays.values():
        array.flush()
    del arrays


def _cached_dir(area: Any, position: Position, root: Path) -> Path | None:
    """The grid's cache directory, built now if missing; None if the cache cannot be written."""
    final = root / grid_key(area, position)
    if all((final / f"{name}.npy").exists() for name in FIELDS):
        return final
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=root))
    except OSError as err:
        logger.warning("the geometry cache %s is not writable (%s); computing the geometry in memory", root, err)
        return None
    try:
        _build(area, position, staging / "grid")
        try:
            os.rename(staging / "grid", final)
            logger.info("cached the geometry of a %dx%d grid in %s", *area.shape, final)
        except OSError:  # another granule published the same grid first
            pass
    except OSError as err:
        logger.warning("could not build the geometry cache in %s (%s); computing it in memory", root, err)
        return None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


class MappedField:
    """One cached field, read by slices from its memory-mapped file; pickles as its path (dask
    workers map the file themselves instead of receiving the array)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        header = np.load(path, mmap_mode="r")
        self.shape, self.dtype, self.ndim = header.shape, header.dtype, header.ndim

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.array(np.load(self.path, mmap_mode="r")[key])


def fixed_geometry(reference: Any, chunks: tuple[Any, Any]) -> dict[str, da.Array] | None:
    """Latitude, longitude, sensor zenith and azimuth of a geostationary scan's grid (``reference``:
    a band of the scan) as dask arrays on ``chunks``, memory-mapped from the cache; None when
    caching is off or impossible."""
    root = cache_root()
    if root is None:
        return None
    area = reference.attrs["area"]
    directory = _cached_dir(area, satellite_position(reference), root)
    if directory is None:
        return None
    return {
        name: da.from_array(MappedField(directory / f"{name}.npy"), chunks=chunks, name=False, lock=False)
        for name in FIELDS
    }


def solar_angles(lons: da.Array, lats: da.Array, time: Any) -> tuple[da.Array, da.Array]:
    """(solar zenith, solar azimuth in [0, 360)) in degrees for one scan time, chunk by chunk."""
    from pyorbital.astronomy import cos_zen, get_alt_az

    def zenith(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return np.rad2deg(np.arccos(cos_zen(time, lon.astype(np.float64), lat.astype(np.float64))))

    def azimuth(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return np.rad2deg(get_alt_az(time, lon.astype(np.float64), lat.astype(np.float64))[1]) % 360.0

    meta = np.array((), dtype=np.float64)
    return (
        da.map_blocks(zenith, lons, lats, dtype=np.float64, meta=meta),
        da.map_blocks(azimuth, lons, lats, dtype=np.float64, meta=meta),
    )
