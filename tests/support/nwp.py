"""An ERA5-style NWP file over the shared real day scene, its water-vapour column scaled.

The climatology's own fields (the column above the ground) on a 0.25 deg grid, so that only the
column's scale differs from a run without ``--nwp``: what the real-scene test and the water-vapour
sweep feed to ``--nwp``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

DAY_SCENE_DAY_OF_YEAR = 300.5  # 2019-10-27 20:00 UTC


def era5_like_file(path: Path, h2o_scale: float, day_of_year: float = DAY_SCENE_DAY_OF_YEAR) -> Path:
    """Write tcwv, tco3 and sp (ERA5 names and units) over 28-46 N, 132-108 W; returns ``path``."""
    from models.earth import altitude_m, ozone_climatology, standard_pressure_hpa, water_vapour_climatology

    lat, lon = np.arange(46.0, 27.9, -0.25), np.arange(-132.0, -107.9, 0.25)
    grid_lat, grid_lon = np.meshgrid(lat, lon, indexing="ij")
    altitude = altitude_m(grid_lat, grid_lon)  # ERA5's column is above its model orography
    fields = {
        "tcwv": 10.0 * h2o_scale * water_vapour_climatology(grid_lat, day_of_year, altitude),  # cm -> kg m-2
        "tco3": 2.1415e-5 * ozone_climatology(grid_lat, day_of_year),  # DU -> kg m-2
        "sp": 100.0 * standard_pressure_hpa(altitude),  # hPa -> Pa
    }
    xr.Dataset(
        {name: (("latitude", "longitude"), values) for name, values in fields.items()},
        coords={"latitude": lat, "longitude": lon},
    ).to_netcdf(path)
    return path
