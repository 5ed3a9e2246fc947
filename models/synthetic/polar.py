"""Synthetic swaths of polar-orbiting cross-track scanners (VIIRS, OCI): geometry and rendering."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.bands import Band
from models.spec import relative_azimuth
from models.synthetic.geometry import sun_angles, swath
from models.synthetic.scenes import SceneFields, scene_state
from models.training.simulate.simulator import AtmosphereState, Simulator


@dataclass(frozen=True)
class Scanner:
    """A polar-orbiting cross-track scanner as data: orbit and scan, and its nominal granule."""

    altitude_km: float
    max_scan_angle_deg: float
    line_spacing_km: float
    granule_minutes: float
    granule_lines: int
    heading_deg: float = -12.0  # ascending, sun-synchronous: a little west of north at mid-latitudes

    def duration(self, lines: int) -> dt.timedelta:
        return dt.timedelta(minutes=self.granule_minutes) * lines / self.granule_lines


@dataclass
class SwathScene:
    """Geometry, truth state and rendered BRF of one synthetic swath granule."""

    start: dt.datetime
    end: dt.datetime
    latitude: np.ndarray
    longitude: np.ndarray
    solar_zenith: np.ndarray
    solar_azimuth: np.ndarray
    sensor_zenith: np.ndarray
    sensor_azimuth: np.ndarray
    simulated: np.ndarray  # pixels rendered (daylight)
    state: AtmosphereState  # of the simulated pixels, row-major
    brf: np.ndarray  # (lines, pixels, bands), BRF (divided by mu0)
    bands: tuple[Band, ...]


def render_swath(
    scanner: Scanner,
    start: dt.datetime,
    bands: Sequence[Band],
    lines: int,
    pixels: int,
    centre_lat: float,
    centre_lon: float | None,
    seed: int,
) -> SwathScene:
    """Geometry + simulation of a polar-orbiter swath (any cross-track scanner)."""
    start = start.replace(tzinfo=None)
    duration = scanner.duration(lines)
    if centre_lon is None:  # a 13:30 local-time overpass
        hours = start.hour + start.minute / 60 + duration.total_seconds() / 7200
        centre_lon = ((13.5 - hours) * 15 + 540) % 360 - 180
    geo = swath(
        centre_lat,
        centre_lon,
        scanner.heading_deg,
        lines,
        pixels,
        scanner.line_spacing_km,
        scanner.max_scan_angle_deg,
        scanner.altitude_km,
    )
    sza, saz = sun_angles(start + duration / 2, geo.longitude, geo.latitude)
    day = sza < 87.0
    v = (np.arange(lines) / max(lines - 1, 1))[:, None] * np.ones((1, pixels))
    u = np.ones((lines, 1)) * (np.arange(pixels) / max(pixels - 1, 1))[None, :]
    state = scene_state(
        SceneFields.generate(seed),
        v[day],
        u[day],
        geo.latitude[day],
        geo.longitude[day],
        sza[day],
        geo.sensor_zenith[day],
        relative_azimuth(geo.sensor_azimuth[day], saz[day]),
        start.timetuple().tm_yday,
    )
    brf = np.zeros((lines, pixels, len(bands)), dtype=np.float32)
    if len(state):
        clean = Simulator(bands).reflectance(state)
        brf[day] = clean * np.random.default_rng([seed, 0x7115]).normal(1.0, 0.005, clean.shape).astype(np.float32)
    return SwathScene(
        start,
        start + duration,
        geo.latitude,
        geo.longitude,
        sza,
        saz,
        geo.sensor_zenith,
        geo.sensor_azimuth,
        day,
        state,
        brf,
        tuple(bands),
    )
