"""The Earth as the simulator and the pipeline both see it: climatology, terrain, land and water.

The simulator draws synthetic scenes with these and the pipeline uses them as its offline
ancillary defaults, so a synthetic scene is self-consistent with what the pipeline will assume
(the network is sensitive to a surface pressure that disagrees with the Rayleigh signal).

* **h2o** (cm) and **o3** (DU): a smooth zonal-monthly climatology. Water vapour peaks in the
  tropics (~4.5 cm) with the ITCZ following the sun and summer maxima at mid-latitudes; ozone is
  ~260 DU in the tropics, rises towards the poles with its spring maximum (~400+ DU in the north
  in March-April), and has the austral spring ozone hole. The shapes follow the zonal means of
  ERA-Interim total column water vapour and SBUV/TOMS total ozone; the numbers are approximate
  (within ~20 %). The water vapour is the column above the ground: the sea-level column times
  exp(-altitude / 2 km).
* **surface pressure** (hPa): the US Standard Atmosphere 1976 over the altitude map that ships
  with pvlib (1/12 degree, Mapzen/Tilezen terrain tiles, 28 m steps).
* **land / water**: ``global-land-mask`` (1/120 degree). Importing that package unpacks a 933 MB
  boolean array into every process; instead its file is streamed once into a bit-packed copy
  (117 MB) in the user cache (``MTHCCAR_CACHE_DIR``, else ``$XDG_CACHE_HOME/mthccar`` or
  ``~/.cache/mthccar``) and memory-mapped, so a process holds only the pages its pixels touch.
  Lookups are index for index the package's own ``globe.is_land``.
* **land cover**: the MODIS MCD12C1 2019 IGBP map at 0.05 degree (``data/``; Friedl &
  Sulla-Menashe 2015), read once with Pillow (26 MB in memory); its water/land edge is replaced by
  the finer land mask above, and land that the coarse map calls water takes the default land class.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import zipfile
from functools import cache
from pathlib import Path

import numpy as np

from models.fileio import atomic_output

logger = logging.getLogger(__name__)

DEFAULT_LAND_CLASS = 12  # IGBP croplands: the model's "land" group
WATER_CLASS = 17
LAND_COVER_MAP = Path(__file__).parent / "data" / "MCD12C1.A2019001.006.igbp.tif"
LAND_COVER_STEP_DEG = 0.05


def _season(day_of_year: float, peak_day: float) -> float:
    return float(np.cos(2 * np.pi * (day_of_year - peak_day) / 365.25))


# Water vapour thins with height on an e-folding scale of about 2 km in the lower troposphere (the
# water-vapour scale height: the US Standard Atmosphere's humidity profile, Anderson et al. 1986,
# AFGL-TR-86-0110, gives 2.1-2.3 km over its lowest 3 km), so the column above ground at altitude z
# is the sea-level column times exp(-z / 2 km).
WATER_VAPOUR_SCALE_HEIGHT_M = 2000.0


def water_vapour_climatology(lat: np.ndarray, day_of_year: float, altitude: np.ndarray | float = 0.0) -> np.ndarray:
    """Zonal-monthly column water vapour above the ground at ``altitude`` (m), cm.

    The zonal column is a sea-level one; over high terrain most of it lies below the ground (at
    1.8 km, 60 %), and an input that ignored that would give a model twice the column it sees
    through.
    """
    above_ground = np.exp(-np.maximum(np.asarray(altitude, dtype=np.float64), 0.0) / WATER_VAPOUR_SCALE_HEIGHT_M)
    return np.clip(_sea_level_water_vapour(lat, day_of_year) * above_ground, 0.05, 6.0)


def _sea_level_water_vapour(lat: np.ndarray, day_of_year: float) -> np.ndarray:
    """Zonal-monthly column water vapour over sea-level ground, cm."""
    itcz = 6.0 * _season(day_of_year, 200)  # the ITCZ sits north of the equator in July-August
    tropics = 4.3 * np.exp(-(((lat - itcz) / 30.0) ** 2))
    summer = _season(day_of_year, 200) * np.sign(lat)  # +1 in local summer
    midlatitude = (1.0 + 0.45 * summer) * 1.3 * np.exp(-(((np.abs(lat) - 42.0) / 18.0) ** 2))
    return np.clip(0.25 + tropics + midlatitude * (np.abs(lat) > 20), 0.1, 6.0)


def skin_temperature_climatology(
    lat: np.ndarray,
    lon: np.ndarray,
    day_of_year: float,
    utc_hour: float,
    land: np.ndarray,
    altitude: np.ndarray | None = None,
) -> np.ndarray:
    """Surface skin temperature (K) by latitude, season, local solar time, land/ocean and altitude
    (``altitude`` in m where the caller has it already, else looked up).

    A smooth stand-in for the zonal-monthly ERA5 skin temperature: 303 K at the equator falling as
    45 sin^2(lat) towards the poles; a seasonal swing of 14 |sin lat|^0.8 K over land (4 |sin lat| K
    over the ocean) peaking in mid-July in the north; over land a diurnal cycle of 15 K amplitude
    peaking at 13 h local solar time and 6.5 K/km colder with altitude; the ocean never below
    freezing sea water (271.4 K). Typical errors against a real day are 5-10 K: the thermal models
    are trained with input errors of 1-12 K, and an NWP ``skt`` (``--nwp``) replaces it.
    """
    phi = np.deg2rad(np.clip(lat, -90, 90))
    base = 303.0 - 45.0 * np.sin(phi) ** 2
    swing = np.where(land, 14.0 * np.abs(np.sin(phi)) ** 0.8, 4.0 * np.abs(np.sin(phi)))
    season = swing * np.sign(lat) * np.sin(2 * np.pi * (day_of_year - 105.0) / 365.25)
    local_hour = (utc_hour + np.nan_to_num(lon) / 15.0) % 24
    diurnal = np.where(land, 15.0 * np.cos(2 * np.pi * (local_hour - 13.0) / 24.0), 0.5)
    height = np.where(land, 0.0065 * (altitude_m(lat, lon) if altitude is None else altitude), 0.0)
    skin = base + season + diurnal - height
    return np.where(land, skin, np.maximum(skin, 271.4))


def ozone_climatology(lat: np.ndarray, day_of_year: float) -> np.ndarray:
    """Zonal-monthly total column ozone, DU."""
    north = np.clip(lat, 0, None) / 90.0
    south = np.clip(-lat, 0, None) / 90.0
    spring_north = 0.5 * (1 + _season(day_of_year, 95))  # March-April maximum
    spring_south = 0.5 * (1 + _season(day_of_year, 280))  # September-October
    o3 = 262.0 + north * (60.0 + 120.0 * spring_north) + south * (60.0 + 60.0 * spring_south)
    hole = (lat < -62) * spring_south**2 * 200.0 * np.clip((-lat - 62) / 15.0, 0, 1)
    return np.clip(o3 - hole, 150.0, 480.0)


@cache
def _altitude_grid() -> np.ndarray:
    import h5py
    import pvlib

    path = Path(pvlib.__file__).parent / "data" / "Altitude.h5"
    with h5py.File(path, "r") as handle:
        return np.asarray(handle["Altitude"][:])


def altitude_m(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Terrain height (m, >= 0) from pvlib's 1/12-degree map (255 = no data -> 0)."""
    grid = _altitude_grid()
    rows, cols = grid.shape
    ok = np.isfinite(lat) & np.isfinite(lon)
    i = np.clip(((90 - np.where(ok, lat, 0)) / 180 * rows).astype(np.int64), 0, rows - 1)
    j = np.clip((((np.where(ok, lon, 0) + 180) % 360) / 360 * cols).astype(np.int64), 0, cols - 1)
    code = grid[i, j].astype(np.float64)
    # the map holds bathymetry-like negatives over water; surface pressure wants the surface
    return np.where((code == 255) | ~ok, 0.0, np.maximum(code * 28.0 - 450.0, 0.0))


def standard_pressure_hpa(altitude: np.ndarray) -> np.ndarray:
    """US Standard Atmosphere 1976 pressure (troposphere) at an altitude in metres."""
    return 1013.25 * (1 - 2.25577e-5 * np.maximum(altitude, -450.0)) ** 5.25588


def cache_dir() -> Path:
    """Where derived data files are kept between runs."""
    if os.environ.get("MTHCCAR_CACHE_DIR"):
        return Path(os.environ["MTHCCAR_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mthccar"


def _land_mask_file() -> Path:
    """The package's data file, found without importing the package (its import unpacks the mask)."""
    spec = importlib.util.find_spec("global_land_mask")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the global-land-mask package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "globe_combined_mask_compressed.npz"


def _stream_packed_mask(source: Path, out: np.ndarray | None, rows_per_read: int = 1200) -> np.ndarray:
    """Bit-pack the package's (21600, 43200) ocean mask row block by row block (never all unpacked)."""
    with zipfile.ZipFile(source) as archive, archive.open("mask.npy") as stream:
        major, _minor = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(stream)
        if fortran_order or dtype != np.bool_ or len(shape) != 2:
            raise ValueError(f"{source} does not hold the expected C-ordered 2-d boolean land mask")
        rows, cols = shape
        packed = out if out is not None else np.empty((rows, (cols + 7) // 8), dtype=np.uint8)
        for start in range(0, rows, rows_per_read):
            n = min(rows_per_read, rows - start)
            block = np.frombuffer(stream.read(n * cols), dtype=np.bool_).reshape(n, cols)
            packed[start : start + n] = np.packbits(block, axis=1)
        return packed


def _build_packed_mask(source: Path, target: Path, shape: tuple[int, int]) -> None:
    """Write the packed mask to ``target`` atomically (concurrent builders each publish a whole file)."""
    with atomic_output(target, ".npy.tmp") as partial:
        out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=shape)
        _stream_packed_mask(source, out)
        out.flush()
        del out
    logger.info("cached the packed land mask in %s", target)


def _open_packed_mask(target: Path, shape: tuple[int, int]) -> np.ndarray:
    bits = np.load(target, mmap_mode="r")
    if bits.shape != shape or bits.dtype != np.uint8:
        raise ValueError(f"{target} holds {bits.dtype} {bits.shape}, not uint8 {shape}")
    return bits


@cache
def _ocean_bits() -> tuple[np.ndarray, tuple[float, ...]]:
    """The packed ocean mask (memory-mapped from the cache when it can be) and its axes.

    Axes as ``globe`` uses them: first latitude, latitude step, latitude range, first longitude,
    longitude step, longitude range.
    """
    source = _land_mask_file()
    with np.load(source) as npz:
        lat, lon = npz["lat"], npz["lon"]
    axes = (
        float(lat[0]),
        float(lat[1] - lat[0]),
        float(lat.min()),
        float(lat.max()),
        float(lon[0]),
        float(lon[1] - lon[0]),
        float(lon.min()),
        float(lon.max()),
    )
    shape = (len(lat), (len(lon) + 7) // 8)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]  # a 2.5 MB file: a new package, a new cache
    target = cache_dir() / f"ocean_mask_packed_{digest}.npy"
    try:
        if target.exists():
            try:
                return _open_packed_mask(target, shape), axes
            except (OSError, ValueError) as exc:
                logger.warning("rebuilding the land mask cache: %s", exc)
        _build_packed_mask(source, target, shape)
        return _open_packed_mask(target, shape), axes
    except (OSError, ValueError) as exc:
        logger.warning("land mask cache unusable (%s); holding a packed copy in memory", exc)
        return _stream_packed_mask(source, None), axes


def prepare_cache() -> Path:
    """Build the derived data files now (container images do this at build time)."""
    _ocean_bits()
    return cache_dir()


def is_ocean(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """``global_land_mask.globe.is_ocean`` for finite lat/lon in degrees (lon in [-180, 180))."""
    bits, (lat0, dlat, lat_min, lat_max, lon0, dlon, lon_min, lon_max) = _ocean_bits()
    i = ((np.clip(lat, lat_min, lat_max) - lat0) / dlat).astype(np.int64)
    j = ((np.clip(lon, lon_min, lon_max) - lon0) / dlon).astype(np.int64)
    return ((bits[i, j >> 3] >> (7 - (j & 7)).astype(np.uint8)) & 1).astype(bool)


def land_water_class(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Default IGBP class per pixel: croplands on land, water elsewhere (and where lat/lon are not finite)."""
    ok = np.isfinite(lat) & np.isfinite(lon)
    land = np.zeros(lat.shape, dtype=bool)
    land[ok] = ~is_ocean(np.clip(lat[ok], -90, 90), (lon[ok] + 180) % 360 - 180)
    return np.where(land, DEFAULT_LAND_CLASS, WATER_CLASS).astype(np.int16)


@cache
def _land_cover_map() -> np.ndarray:
    """The MCD12C1 IGBP classes (3600, 7200), row 0 at 90 N, column 0 at 180 W."""
    from PIL import Image

    with Image.open(LAND_COVER_MAP) as image:
        classes = np.asarray(image, dtype=np.uint8)
    if classes.shape != (3600, 7200):
        raise ValueError(f"{LAND_COVER_MAP.name} is {classes.shape}, not the 0.05 degree global grid")
    return classes


def igbp_class(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """IGBP class per pixel (CERES numbering: 1-16 as IGBP, 17 water) from the shipped MODIS map.

    Water and land come from the 1 km land mask; land pixels take the map's class, or the default
    land class where the 0.05 degree map has water (coasts, small islands).
    """
    base = land_water_class(lat, lon)
    ok = np.isfinite(lat) & np.isfinite(lon)
    rows = np.clip(((90 - np.where(ok, lat, 0)) / LAND_COVER_STEP_DEG).astype(np.int64), 0, 3599)
    cols = np.clip((((np.where(ok, lon, 0) + 180) % 360) / LAND_COVER_STEP_DEG).astype(np.int64), 0, 7199)
    mapped = _land_cover_map()[rows, cols].astype(np.int16)
    land = base != WATER_CLASS
    return np.where(land & (mapped > 0) & (mapped <= 16), mapped, base).astype(np.int16)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    print(prepare_cache())
