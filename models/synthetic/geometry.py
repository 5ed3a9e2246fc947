"""Viewing geometry of synthetic granules: where each pixel is, and its sun and sensor angles.

* ABI: the GOES fixed grid (scan angles x, y in radians) mapped to latitude/longitude with the
  geostationary projection (pyproj); sensor angles from the satellite position (pyorbital).
* Polar orbiters (VIIRS, OCI): a cross-track scanner on a straight great-circle ground track over
  a spherical Earth (radius 6371 km). The ground point of scan angle theta lies at Earth-central
  angle alpha = asin((R + h) / R sin theta) - theta from nadir, and is seen at zenith theta +
  alpha; the sensor azimuth is the bearing from the pixel back towards the sub-satellite point.
* Sun angles: pyorbital's solar position.

Relative azimuth follows the feature-spec convention (``models.spec.relative_azimuth``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from pyorbital import astronomy

EARTH_RADIUS_KM = 6371.0


@dataclass(frozen=True)
class GeostationaryGrid:
    """A rectangular piece of the GOES fixed grid at one resolution."""

    longitude_of_projection_origin: float
    x0: float  # scan angle of the first column centre, rad
    y0: float  # scan angle of the first row centre, rad (rows run north to south)
    step: float  # rad per pixel
    shape: tuple[int, int]  # (rows, columns)
    perspective_point_height: float = 35786023.0
    semi_major_axis: float = 6378137.0
    semi_minor_axis: float = 6356752.31414

    def x(self) -> np.ndarray:
        return self.x0 + self.step * np.arange(self.shape[1])

    def y(self) -> np.ndarray:
        return self.y0 - self.step * np.arange(self.shape[0])

    def refined(self, factor: int) -> GeostationaryGrid:
        """The same extent at ``factor`` times finer resolution."""
        step = self.step / factor
        return GeostationaryGrid(
            self.longitude_of_projection_origin,
            self.x0 - self.step / 2 + step / 2,
            self.y0 + self.step / 2 - step / 2,
            step,
            (self.shape[0] * factor, self.shape[1] * factor),
            self.perspective_point_height,
            self.semi_major_axis,
            self.semi_minor_axis,
        )

    def lonlat(self, rows: slice) -> tuple[np.ndarray, np.ndarray]:
        """Longitude and latitude (deg) of a band of rows; NaN off the Earth's disk."""
        from pyproj import Proj

        proj = Proj(
            proj="geos",
            h=self.perspective_point_height,
            lon_0=self.longitude_of_projection_origin,
            a=self.semi_major_axis,
            b=self.semi_minor_axis,
            sweep="x",
        )
        x, y = np.meshgrid(self.x() * self.perspective_point_height, self.y()[rows] * self.perspective_point_height)
        lon, lat = proj(x, y, inverse=True, errcheck=False)
        lon, lat = np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
        off_disk = ~np.isfinite(lon) | (np.abs(lon) > 360) | ~np.isfinite(lat)
        lon[off_disk] = np.nan
        lat[off_disk] = np.nan
        return lon, lat


def sun_angles(time: dt.datetime, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solar zenith and azimuth (deg, azimuth clockwise from north)."""
    when = time.replace(tzinfo=None)
    return astronomy.sun_zenith_angle(when, lon, lat), astronomy.sun_azimuth_angle(when, lon, lat) % 360


def geostationary_sensor_angles(
    time: dt.datetime, lon: np.ndarray, lat: np.ndarray, satellite_lon: float, height_km: float = 35786.023
) -> tuple[np.ndarray, np.ndarray]:
    """Sensor zenith and azimuth (deg) seen from each pixel towards a geostationary satellite."""
    from pyorbital.orbital import get_observer_look

    azimuth, elevation = get_observer_look(
        np.full(lon.shape, satellite_lon),
        np.zeros(lon.shape),
        np.full(lon.shape, height_km),
        time.replace(tzinfo=None),
        lon,
        lat,
        np.zeros(lon.shape),
    )
    return 90.0 - elevation, azimuth % 360


def _destination(
    lat: np.ndarray, lon: np.ndarray, bearing: np.ndarray, angle: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Point at central angle ``angle`` (rad) from (lat, lon) (deg) along ``bearing`` (deg)."""
    phi1, lam1, theta = np.radians(lat), np.radians(lon), np.radians(bearing)
    phi2 = np.arcsin(np.sin(phi1) * np.cos(angle) + np.cos(phi1) * np.sin(angle) * np.cos(theta))
    lam2 = lam1 + np.arctan2(np.sin(theta) * np.sin(angle) * np.cos(phi1), np.cos(angle) - np.sin(phi1) * np.sin(phi2))
    return np.degrees(phi2), (np.degrees(lam2) + 540) % 360 - 180


def _bearing(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    phi1, phi2 = np.radians(lat1), np.radians(lat2)
    dlam = np.radians(lon2 - lon1)
    y = np.sin(dlam) * np.cos(phi2)
    x = np.cos(phi1) * np.sin(phi2) - np.sin(phi1) * np.cos(phi2) * np.cos(dlam)
    return np.degrees(np.arctan2(y, x)) % 360


@dataclass(frozen=True)
class SwathGeometry:
    """A cross-track scanner's swath: ground positions and sensor angles of every pixel."""

    latitude: np.ndarray
    longitude: np.ndarray
    sensor_zenith: np.ndarray
    sensor_azimuth: np.ndarray


def swath(
    centre_lat: float,
    centre_lon: float,
    heading_deg: float,
    lines: int,
    pixels: int,
    line_spacing_km: float,
    max_scan_angle_deg: float,
    altitude_km: float,
) -> SwathGeometry:
    """Geometry of a ``lines`` x ``pixels`` swath centred on (lat, lon), flying along ``heading``."""
    along = (np.arange(lines) - (lines - 1) / 2) * line_spacing_km / EARTH_RADIUS_KM
    nadir_lat, nadir_lon = _destination(
        np.full(lines, centre_lat), np.full(lines, centre_lon), np.full(lines, heading_deg), along
    )
    # heading of the track at each nadir point (great circle), then cross-track to the right
    track = (
        _bearing(nadir_lat[:-1], nadir_lon[:-1], nadir_lat[1:], nadir_lon[1:]) if lines > 1 else np.array([heading_deg])
    )
    track = np.append(track, track[-1])
    scan = np.radians(np.linspace(-max_scan_angle_deg, max_scan_angle_deg, pixels))
    ratio = (EARTH_RADIUS_KM + altitude_km) / EARTH_RADIUS_KM
    central = np.arcsin(np.clip(ratio * np.sin(np.abs(scan)), -1, 1)) - np.abs(scan)
    side = np.where(scan >= 0, 90.0, -90.0)
    lat, lon = _destination(nadir_lat[:, None], nadir_lon[:, None], track[:, None] + side[None, :], central[None, :])
    zenith = np.degrees(np.abs(scan) + central)[None, :] * np.ones((lines, 1))
    azimuth = _bearing(lat, lon, nadir_lat[:, None] * np.ones((1, pixels)), nadir_lon[:, None] * np.ones((1, pixels)))
    azimuth = np.where(zenith < 1e-6, 0.0, azimuth)
    return SwathGeometry(lat, lon, zenith, azimuth)
