"""Synthetic swaths of polar-orbiting cross-track scanners (VIIRS, OCI): geometry and rendering."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import repeat

import numpy as np

from models.bands import Band
from models.spec import relative_azimuth
from models.synthetic.geometry import sun_angles, swath
from models.synthetic.scenes import SceneFields, scene_state, with_temperatures
from models.training.simulate.dataset import default_workers, simulate_bands
from models.training.simulate.simulator import AtmosphereState
from models.training.simulate.thermal import ThermalSimulator

# simulated (sample x band) values per synthetic swath granule at most, by default: 40-50 s on two
# cores (VIIRS: 6 x 6 pixel blocks of a full granule, OCI with its 223 bands: 13 x 13)
RENDERED_SAMPLE_BANDS = 3_000_000
# (sample x band) values simulated at once: bounds the simulator's temporaries to a few hundred MB
SIMULATED_AT_ONCE = 2_000_000
# per-pixel measurement noise (1 sigma, multiplicative), drawn in float32: a full OCI granule draws
# about 480 M values, 2-3x faster than float64 draws cast down
NOISE_RELATIVE = 0.005
DAYLIGHT_ZENITH = 87.0  # solar bands are rendered below this solar zenith angle


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
    simulated: np.ndarray  # pixels rendered: daylight, or every pixel with thermal bands
    state: AtmosphereState  # of the simulated pixels, row-major
    brf: np.ndarray  # (lines, pixels, bands), BRF (divided by mu0)
    bands: tuple[Band, ...]
    # (lines, pixels, thermal bands) brightness temperatures (K) of every pixel, day and night
    brightness_temperature: np.ndarray | None = None
    thermal_bands: tuple[str, ...] = ()


def auto_block(pixels: int, bands: int) -> int:
    """The smallest block edge that simulates at most ``RENDERED_SAMPLE_BANDS`` values."""
    return max(1, math.ceil(math.sqrt(pixels * bands / RENDERED_SAMPLE_BANDS)))


def simulate_in_parts(bands: Sequence[Band], state: AtmosphereState, workers: int | None = None) -> np.ndarray:
    """Clean BRF (samples, bands) of ``state`` (``simulate_bands``), a bounded number of samples at a time.

    Parts run on ``workers`` processes (default: as the training-data simulation) when there is more
    than one; the result does not depend on the number of workers.
    """
    bands = tuple(bands)
    step = max(1, SIMULATED_AT_ONCE // len(bands))
    parts = [state.take(slice(i, i + step)) for i in range(0, len(state), step)]
    workers = min(workers or default_workers(), len(parts))
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            done = list(pool.map(simulate_bands, repeat(bands), parts))
    else:
        done = [simulate_bands(bands, part) for part in parts]
    return np.concatenate(done) if done else np.zeros((0, len(bands)), dtype=np.float32)


def block_centres(lines: int, pixels: int, block: int) -> np.ndarray:
    """(lines, pixels): the flat index of each pixel's block centre on a ``block`` x ``block`` tiling."""
    rows = np.minimum(np.arange(lines) // block * block + block // 2, lines - 1)
    cols = np.minimum(np.arange(pixels) // block * block + block // 2, pixels - 1)
    return np.asarray(rows[:, None] * pixels + cols[None, :])


def render_swath(
    scanner: Scanner,
    start: dt.datetime,
    bands: Sequence[Band],
    lines: int,
    pixels: int,
    centre_lat: float,
    centre_lon: float | None,
    seed: int,
    block: int | None = None,
    thermal_bands: Sequence[str] = (),
) -> SwathScene:
    """Geometry + simulation of a polar-orbiter swath (any cross-track scanner).

    ``thermal_bands`` are rendered day and night from the same scene (``scenes.with_temperatures``
    for the surface, the thermal simulator, 0.1 K noise).

    ``block`` > 1 renders the radiative transfer once per ``block`` x ``block`` pixels, at the block's
    centre pixel (its geometry and scene state), and gives that result to every pixel of the block:
    block^2 times fewer simulations. The truth file then holds each pixel's block state, so truth and
    radiances stay consistent; only the geolocation and angle files keep per-pixel values. ``None``
    picks the smallest block that keeps the simulations within ``RENDERED_SAMPLE_BANDS``.
    """
    block = block or auto_block(lines * pixels, len(bands))
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
    centre = block_centres(lines, pixels, block)  # flat index of each pixel's block centre
    day = (sza < DAYLIGHT_ZENITH) & (sza.ravel()[centre] < DAYLIGHT_ZENITH)
    fields = SceneFields.generate(seed)

    def state_at(flat: np.ndarray) -> AtmosphereState:
        """The scene's state at the pixels of row-major flat indices ``flat``."""
        rows, cols = np.divmod(flat, pixels)
        return scene_state(
            fields,
            rows / max(lines - 1, 1),
            cols / max(pixels - 1, 1),
            geo.latitude[rows, cols],
            geo.longitude[rows, cols],
            sza[rows, cols],
            geo.sensor_zenith[rows, cols],
            relative_azimuth(geo.sensor_azimuth[rows, cols], saz[rows, cols]),
            start.timetuple().tm_yday,
        )

    rendered = np.unique(centre[day])  # block centres to simulate, row-major
    coarse = state_at(rendered)
    of_pixel = np.searchsorted(rendered, centre[day])  # each daylight pixel's rendered block centre
    brf = np.zeros((lines, pixels, len(bands)), dtype=np.float32)
    if len(rendered):
        clean = simulate_in_parts(bands, coarse)
        noise = np.random.default_rng([seed, 0x7115])
        flat, day_index = brf.reshape(-1, len(bands)), np.flatnonzero(day)
        step = max(1, SIMULATED_AT_ONCE // len(bands))
        for i in range(0, len(day_index), step):  # the same noise stream as one draw, less memory
            part = slice(i, i + step)
            factor = noise.standard_normal((len(day_index[part]), len(bands)), dtype=np.float32)
            factor *= NOISE_RELATIVE
            factor += 1.0
            factor *= clean[of_pixel[part]]
            flat[day_index[part]] = factor
    bt = None
    if thermal_bands:
        every = np.unique(centre)  # every pixel's block centre, day or night
        seen = state_at(every)
        lat, lon = geo.latitude.ravel()[every], geo.longitude.ravel()[every]
        hot = with_temperatures(seen, lat, lon, start + duration / 2)
        of_every = np.searchsorted(every, centre.ravel())
        bt = brightness_temperatures_in_parts(tuple(thermal_bands), hot).astype(np.float32)[of_every]
        bt += np.random.default_rng([seed, 0x7B7]).normal(0.0, 0.1, bt.shape).astype(np.float32)
        bt = bt.reshape(lines, pixels, len(thermal_bands))
        # every pixel is rendered (in its thermal bands), so the truth describes every pixel
        simulated, state = np.ones_like(day), seen.take(of_every) if block > 1 else seen
    else:
        simulated, state = day, coarse.take(of_pixel) if block > 1 else coarse
    return SwathScene(
        start,
        start + duration,
        geo.latitude,
        geo.longitude,
        sza,
        saz,
        geo.sensor_zenith,
        geo.sensor_azimuth,
        simulated,
        state,
        brf,
        tuple(bands),
        bt,
        tuple(thermal_bands),
    )


def brightness_temperatures_in_parts(bands: tuple[str, ...], state: AtmosphereState) -> np.ndarray:
    """(N, B) brightness temperatures of the thermal simulator, in parts of bounded memory."""
    simulator = ThermalSimulator(bands)
    step = max(1, SIMULATED_AT_ONCE // (8 * len(bands)))  # its gas model keeps 8 sublayers per block
    parts = [simulator.brightness_temperature(state.take(slice(i, i + step))) for i in range(0, len(state), step)]
    return np.concatenate(parts) if parts else np.zeros((0, len(bands)))
