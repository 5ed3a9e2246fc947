"""Per-pixel ancillary inputs: column water vapour, ozone, surface pressure and surface class.

Offline defaults (nothing is downloaded; see ``models.earth``, which the simulator's synthetic
scenes share):

* **h2o** (cm) and **o3** (DU): a smooth zonal-monthly climatology (h2o: the column above the
  terrain);
* **surface pressure** (hPa): the US Standard Atmosphere over pvlib's terrain-height map;
* **skin temperature** (K, thermal-band models): a latitude / season / local-time / land-ocean
  climatology (``models.earth.skin_temperature_climatology``), or the NWP file's ``skt``;
* **surface class** (20-class IGBP): the MODIS MCD12C1 2019 land-cover map that ships with the
  models (0.05 degree), with water from ``global-land-mask`` (1 km); permanent snow and ice and
  barren land come from the map, seasonal snow and sea ice need a land-cover input.

Real sources, chosen in ``AncillaryConfig``: an NWP file (netCDF, or GRIB through cfgrib) on a
regular latitude/longitude grid for h2o/o3/pressure, and an IGBP land-cover raster. Both are
sampled at the pixels' latitude/longitude (nearest grid cell, located with pyresample's area
definition), lazily, chunk by chunk.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from models.earth import (
    WATER_CLASS,
    altitude_m,
    igbp_class,
    land_water_class,
    ozone_climatology,
    skin_temperature_climatology,
    standard_pressure_hpa,
    water_vapour_climatology,
)

logger = logging.getLogger(__name__)


class AncillaryError(ValueError):
    """An ancillary input file is missing, unreadable or does not cover the granule."""


# ---- gridded sources --------------------------------------------------------------------------------
@dataclass(frozen=True)
class GridSource:
    """One variable on a regular latitude/longitude grid, with a unit conversion to ours."""

    path: str
    variable: str
    factor: float = 1.0
    offset: float = 0.0

    def open(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(latitudes, longitudes, values) of the first time step."""
        engine = "cfgrib" if self.path.endswith((".grib", ".grib2", ".grb", ".grb2")) else None
        try:
            with xr.open_dataset(self.path, engine=engine) as ds:
                if self.variable not in ds:
                    raise AncillaryError(
                        f"{Path(self.path).name} has no variable {self.variable!r} "
                        f"(it has {', '.join(str(v) for v in list(ds.data_vars)[:8])})"
                    )
                var = ds[self.variable]
                lat_name = next((n for n in ("latitude", "lat") if n in var.coords), None)
                lon_name = next((n for n in ("longitude", "lon") if n in var.coords), None)
                if lat_name is None or lon_name is None:
                    raise AncillaryError(f"{Path(self.path).name}: {self.variable} is not on a latitude/longitude grid")
                while var.ndim > 2:
                    var = var.isel({var.dims[0]: 0})
                var = var.transpose(lat_name, lon_name)
                return (
                    np.asarray(var[lat_name], dtype=np.float64),
                    np.asarray(var[lon_name], dtype=np.float64),
                    np.asarray(var.values, dtype=np.float64) * self.factor + self.offset,
                )
        except (OSError, ValueError) as err:
            if isinstance(err, AncillaryError):
                raise
            raise AncillaryError(f"ancillary file {self.path} cannot be read ({err})") from None


def _has_variable(path: str, variable: str) -> bool:
    """Whether an NWP file has ``variable`` (the skin temperature is optional in it)."""
    try:
        engine = "cfgrib" if path.endswith((".grib", ".grib2", ".grb", ".grb2")) else None
        with xr.open_dataset(path, engine=engine) as ds:
            return variable in ds
    except (OSError, ValueError):
        return False  # GridSource.open reports an unreadable file with its own sentence


def _grid_lookup(
    lat: np.ndarray, lon: np.ndarray, lats: np.ndarray, lons: np.ndarray, values: np.ndarray
) -> np.ndarray:
    """Nearest grid value at (lat, lon), through pyresample's area definition of the grid."""
    from pyresample.geometry import AreaDefinition

    dlat, dlon = abs(lats[1] - lats[0]), abs(lons[1] - lons[0])
    flip = lats[0] < lats[-1]
    table = values[::-1] if flip else values
    north = max(lats[0], lats[-1]) + dlat / 2
    lon0 = lons[0] - dlon / 2
    wrap = lons.max() > 180
    area = AreaDefinition(
        "ancillary",
        "ancillary grid",
        "latlon",
        "EPSG:4326",
        len(lons),
        len(lats),
        (lon0, north - dlat * len(lats), lon0 + dlon * len(lons), north),
    )
    ok = np.isfinite(lat) & np.isfinite(lon)
    query_lon = np.where(ok, lon, 0.0)
    if wrap:
        query_lon = query_lon % 360
    cols, rows = area.get_array_indices_from_lonlat(query_lon, np.where(ok, lat, 0.0))
    rows = np.clip(np.ma.filled(rows, -1), -1, len(lats) - 1)
    cols = np.clip(np.ma.filled(cols, -1), -1, len(lons) - 1)
    inside = ok & (rows >= 0) & (cols >= 0)
    return np.where(inside, table[np.maximum(rows, 0), np.maximum(cols, 0)], np.nan)


@dataclass(frozen=True)
class AncillaryConfig:
    """Where ancillary inputs come from; ``None`` means the offline default."""

    h2o: GridSource | None = None  # to cm
    o3: GridSource | None = None  # to DU
    surface_pressure: GridSource | None = None  # to hPa
    land_cover: GridSource | None = None  # IGBP 1-20
    skin_temperature: GridSource | None = None  # to K
    notes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_nwp(cls, path: str, land_cover: str | None = None, names: dict[str, str] | None = None) -> AncillaryConfig:
        """An ERA5-style file: tcwv (kg m-2), tco3 (kg m-2), sp (Pa); GRIB/GFS names via ``names``."""
        names = {"h2o": "tcwv", "o3": "tco3", "surface_pressure": "sp", "skin_temperature": "skt", **(names or {})}
        return cls(
            h2o=GridSource(path, names["h2o"], 0.1),  # kg m-2 = mm -> cm
            o3=GridSource(path, names["o3"], 1 / 2.1415e-5),  # kg m-2 -> DU
            surface_pressure=GridSource(path, names["surface_pressure"], 0.01),  # Pa -> hPa
            land_cover=GridSource(land_cover, "land_cover") if land_cover else None,
            skin_temperature=GridSource(path, names["skin_temperature"])
            if _has_variable(path, names["skin_temperature"])
            else None,
        )

    @classmethod
    def from_files(cls, nwp: str | None = None, land_cover: str | None = None) -> AncillaryConfig:
        """The defaults, replaced by an NWP file and/or an IGBP land-cover raster where given."""
        if nwp:
            return cls.from_nwp(nwp, land_cover)
        return cls(land_cover=GridSource(land_cover, "land_cover") if land_cover else None)

    def describe(self) -> dict[str, str]:
        def name(source: GridSource | None, default: str) -> str:
            return f"{Path(source.path).name}:{source.variable}" if source else default

        return {
            "h2o": name(self.h2o, "zonal-monthly climatology above the pvlib altitude map"),
            "o3": name(self.o3, "zonal-monthly climatology"),
            "surface_pressure": name(self.surface_pressure, "US Standard Atmosphere over pvlib altitude map"),
            "surface_class": name(self.land_cover, "MODIS MCD12C1 2019 IGBP map, global-land-mask water"),
            "skin_temperature": name(self.skin_temperature, "latitude/season/local-time climatology"),
        }


def _blockwise(function: Any, lat: da.Array, lon: da.Array, dtype: Any, *args: Any) -> da.Array:
    return da.map_blocks(
        lambda a, b: function(a, b, *args).astype(dtype), lat, lon, dtype=dtype, meta=np.array((), dtype=dtype)
    )


def add_ancillary(scene: xr.Dataset, config: AncillaryConfig | None = None) -> xr.Dataset:
    """The scene plus ``h2o``, ``o3``, ``spress``, ``skt``, ``albedo_type`` and ``surface_altitude``, lazily."""
    config = config or AncillaryConfig()
    lat, lon = scene["latitude"].data, scene["longitude"].data
    start = scene.attrs["start_time"]
    doy = (start.timetuple().tm_yday if isinstance(start, dt.datetime) else 180) + 0.5

    # the terrain height of each chunk, looked up once for every default that needs it (h2o, surface
    # pressure, skin temperature) and for the window contrast (``surface_altitude``); dask computes it
    # only where one of them is used
    altitude = _blockwise(altitude_m, lat, lon, np.float64)

    def from_source(source: GridSource | None, default: Any, dtype: Any = np.float32) -> da.Array:
        """The source's field on the scene, or ``default(lat, lon, altitude)`` per chunk without one."""
        if source is None:
            return da.map_blocks(
                lambda a, b, z: default(a, b, z).astype(dtype),
                lat,
                lon,
                altitude,
                dtype=dtype,
                meta=np.array((), dtype=dtype),
            )
        grid_lat, grid_lon, values = source.open()
        return _blockwise(_grid_lookup, lat, lon, dtype, grid_lat, grid_lon, values)

    utc_hour = start.hour + start.minute / 60 if isinstance(start, dt.datetime) else 12.0

    def skin_default(a: np.ndarray, b: np.ndarray, z: np.ndarray) -> np.ndarray:
        return skin_temperature_climatology(a, b, doy, utc_hour, land_water_class(a, b) != WATER_CLASS, z)

    h2o = from_source(config.h2o, lambda a, b, z: water_vapour_climatology(a, doy, z))
    skt = from_source(config.skin_temperature, skin_default)
    o3 = from_source(config.o3, lambda a, b, z: ozone_climatology(a, doy))
    spress = from_source(config.surface_pressure, lambda a, b, z: standard_pressure_hpa(z))
    if config.land_cover is None:
        surface = _blockwise(igbp_class, lat, lon, np.int16)
    else:
        surface = from_source(config.land_cover, None, np.float32)
        surface = da.where(da.isnan(surface), -1, surface).astype(np.int16)
    out = scene.assign(
        h2o=(("y", "x"), h2o, {"units": "cm", "source": config.describe()["h2o"]}),
        o3=(("y", "x"), o3, {"units": "DU", "source": config.describe()["o3"]}),
        spress=(("y", "x"), spress, {"units": "hPa", "source": config.describe()["surface_pressure"]}),
        skt=(("y", "x"), skt, {"units": "K", "source": config.describe()["skin_temperature"]}),
        albedo_type=(
            ("y", "x"),
            surface,
            {"units": "1", "long_name": "IGBP surface class 1-20", "source": config.describe()["surface_class"]},
        ),
        # the window contrast compares land with land at about its own height (``models.context``)
        surface_altitude=(("y", "x"), altitude, {"units": "m", "source": "pvlib 1/12-degree terrain map"}),
    )
    out.attrs["ancillary"] = config.describe()
    return out
