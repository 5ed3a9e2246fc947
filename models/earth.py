"""The Earth as the simulator and the pipeline both see it: climatology, terrain, land and water.

The simulator draws synthetic scenes with these and the pipeline uses them as its offline
ancillary defaults, so a synthetic scene is self-consistent with what the pipeline will assume
(the network is sensitive to a surface pressure that disagrees with the Rayleigh signal).

* **h2o** (cm) and **o3** (DU): a smooth zonal-monthly climatology. Water vapour peaks in the
  tropics (~4.5 cm) with the ITCZ following the sun and summer maxima at mid-latitudes; ozone is
  ~260 DU in the tropics, rises towards the poles with its spring maximum (~400+ DU in the north
  in March-April), and has the austral spring ozone hole. The shapes follow the zonal means of
  ERA-Interim total column water vapour and SBUV/TOMS total ozone; the numbers are approximate
  (within ~20 %).
* **surface pressure** (hPa): the US Standard Atmosphere 1976 over the altitude map that ships
  with pvlib (1/12 degree, Mapzen/Tilezen terrain tiles, 28 m steps).
* **land / water**: ``global-land-mask`` (1 km).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

DEFAULT_LAND_CLASS = 12  # IGBP croplands: the model's "land" group
WATER_CLASS = 17


def _season(day_of_year: float, peak_day: float) -> float:
    return float(np.cos(2 * np.pi * (day_of_year - peak_day) / 365.25))


def water_vapour_climatology(lat: np.ndarray, day_of_year: float) -> np.ndarray:
    """Zonal-monthly column water vapour, cm."""
    itcz = 6.0 * _season(day_of_year, 200)  # the ITCZ sits north of the equator in July-August
    tropics = 4.3 * np.exp(-(((lat - itcz) / 30.0) ** 2))
    summer = _season(day_of_year, 200) * np.sign(lat)  # +1 in local summer
    midlatitude = (1.0 + 0.45 * summer) * 1.3 * np.exp(-(((np.abs(lat) - 42.0) / 18.0) ** 2))
    return np.clip(0.25 + tropics + midlatitude * (np.abs(lat) > 20), 0.1, 6.0)


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


def land_water_class(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    from global_land_mask import globe

    ok = np.isfinite(lat) & np.isfinite(lon)
    land = np.zeros(lat.shape, dtype=bool)
    land[ok] = globe.is_land(np.clip(lat[ok], -90, 90), (lon[ok] + 180) % 360 - 180)
    return np.where(land, DEFAULT_LAND_CLASS, WATER_CLASS).astype(np.int16)
