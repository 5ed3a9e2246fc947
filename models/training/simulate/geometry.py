"""Sun and view geometry where the sensors look.

A geostationary imager sees each place at one fixed view angle and relative azimuths set by the
sun's daily and yearly path, so uniform angle draws leave its real geometry thinly covered.
``geostationary_geometry`` draws places on the Earth's disk seen from the operational GOES
positions and times over a year, and takes the angles from pyorbital's sun and observer formulas.
Polar orbiters (VIIRS, OCI) scan +-56 to +-70 degrees across track at every relative azimuth, which
the uniform draw covers.
"""

from __future__ import annotations

import numpy as np
from pyorbital.astronomy import get_alt_az
from pyorbital.orbital import get_observer_look

# sub-satellite longitudes of GOES-West (GOES-17/18) and GOES-East (GOES-16/19), degrees east
GEOSTATIONARY_LONGITUDES = (-137.2, -75.2)
GEOSTATIONARY_ALTITUDE_KM = 35786.0
YEAR_START = np.datetime64("2019-01-01T00:00:00", "s")
SECONDS_PER_YEAR = 365 * 86400


def uniform_geometry(
    n: int, rng: np.random.Generator, max_solar_zenith: float, max_view_zenith: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(solar zenith, view zenith, relative azimuth 0 = backscatter), degrees, drawn uniformly."""
    return rng.uniform(0, max_solar_zenith, n), rng.uniform(0, max_view_zenith, n), rng.uniform(0, 180, n)


def geostationary_geometry(
    n: int, rng: np.random.Generator, max_solar_zenith: float, max_view_zenith: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same angles for random daytime places and times seen from the GOES positions."""
    parts: list[np.ndarray] = []
    found = 0
    while found < n:
        m = max(4 * (n - found), 1024)
        lat = np.degrees(np.arcsin(rng.uniform(-1, 1, m)))
        lon = rng.uniform(-180, 180, m)
        satellite = rng.choice(GEOSTATIONARY_LONGITUDES, m)
        times = YEAR_START + rng.integers(0, SECONDS_PER_YEAR, m).astype("timedelta64[s]")
        altitude, solar_azimuth = get_alt_az(times, lon, lat)
        solar_zenith = 90 - np.degrees(altitude)
        view_azimuth, elevation = get_observer_look(
            satellite, np.zeros(m), np.full(m, GEOSTATIONARY_ALTITUDE_KM), times, lon, lat, np.zeros(m)
        )
        view_zenith = 90 - np.asarray(elevation)
        keep = (solar_zenith < max_solar_zenith) & (view_zenith < max_view_zenith)
        relative = np.abs((np.asarray(view_azimuth) - np.degrees(solar_azimuth) + 180) % 360 - 180)
        parts.append(np.stack([solar_zenith[keep], view_zenith[keep], relative[keep]]))
        found += int(keep.sum())
    angles = np.concatenate(parts, axis=1)[:, :n]
    return angles[0], angles[1], angles[2]
