"""Spatially coherent synthetic scenes: cloud, phase, optical thickness and surface fields.

Fields are Gaussian random fields with a power-law spectrum (slope -3, close to observed cloud
spectra; Cahalan & Snider 1989), generated on two fixed grids (a coarse one for the synoptic
pattern, a fine one for texture) that span the image in normalised coordinates. Any pixel block
is then sampled by bilinear interpolation, so a full-disk image is rendered block by block in
bounded memory and the same scene comes out whatever the block size.

From the fields, per pixel:

* cloud where the cover field exceeds the quantile giving the target cloud fraction; log10 COT
  grows from the cloud edge (-1.5) to the cores (up to 2.5);
* ice where the phase field is high, with higher and colder tops and larger particles;
* the surface from a land mask (``global-land-mask``) and latitude: forest, shrub, grass,
  cropland or tundra by climate zone, deserts in the subtropics, snow at high latitudes or
  high ground, sea ice in polar water; land mixes the training world's measured endmembers
  (``LAND_MIXTURES`` at each class mean, green turning to dry vegetation with a dryness field,
  endmembers chosen by a smooth field so that fields and deserts come in patches), so a synthetic
  scene is drawn from the same world the models are trained on;
* surface pressure from the terrain height, water vapour and ozone from the zonal-monthly
  climatology, each with small smooth departures (``models.earth``, shared with the pipeline).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

import numpy as np
from scipy.ndimage import map_coordinates
from scipy.special import ndtr, ndtri

from models.earth import (
    WATER_CLASS,
    altitude_m,
    land_water_class,
    ozone_climatology,
    skin_temperature_climatology,
    standard_pressure_hpa,
    water_vapour_climatology,
)
from models.training.simulate.dataset import saturated_column_cm
from models.training.simulate.simulator import AtmosphereState
from models.training.simulate.surface import LAND_MIXTURES
from models.training.simulate.surface_library import POOLS, shipped_library

COARSE, FINE = 96, 768
SPECTRAL_SLOPE = -3.0
CLOUD_FRACTION = 0.6


def gaussian_random_field(size: int, slope: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-variance periodic field with power spectrum ~ k^slope."""
    kx = np.fft.fftfreq(size)[None, :]
    ky = np.fft.fftfreq(size)[:, None]
    k = np.sqrt(kx**2 + ky**2)
    k[0, 0] = np.inf
    spectrum = (k ** (slope / 2)) * (rng.normal(size=(size, size)) + 1j * rng.normal(size=(size, size)))
    field = np.fft.ifft2(spectrum).real
    return (field - field.mean()) / field.std()


@dataclass
class SceneFields:
    """The random fields of one scene, sampled anywhere in normalised image coordinates."""

    coarse: dict[str, np.ndarray]
    fine: dict[str, np.ndarray]
    cloud_fraction: float = CLOUD_FRACTION

    @classmethod
    def generate(cls, seed: int, cloud_fraction: float = CLOUD_FRACTION) -> SceneFields:
        rng = np.random.default_rng([seed, 0x5CE7E])
        names = ("cover", "cot", "phase", "radius", "surface", "terrain")
        coarse = {name: gaussian_random_field(COARSE, SPECTRAL_SLOPE, rng) for name in names}
        fine = {name: gaussian_random_field(FINE, SPECTRAL_SLOPE + 0.5, rng) for name in ("cover", "cot")}
        return cls(coarse, fine, cloud_fraction)

    @staticmethod
    def _sample(field: np.ndarray, v: np.ndarray, u: np.ndarray) -> np.ndarray:
        size = field.shape[0]
        return map_coordinates(field, [v * (size - 1), u * (size - 1)], order=1, mode="nearest")

    def sample(self, v: np.ndarray, u: np.ndarray) -> dict[str, np.ndarray]:
        """Field values at normalised row ``v`` and column ``u`` coordinates in [0, 1]."""
        out = {name: self._sample(f, v, u) for name, f in self.coarse.items()}
        for name in ("cover", "cot"):
            out[name] = 0.8 * out[name] + 0.6 * self._sample(self.fine[name], v, u)
        return out


def surface_classes(lat: np.ndarray, lon: np.ndarray, surface_field: np.ndarray, terrain: np.ndarray) -> np.ndarray:
    """20-class IGBP surface type from land mask, latitude and random fields."""
    land = land_water_class(lat, lon) != WATER_CLASS
    alat = np.abs(np.nan_to_num(lat))
    snow_line = 58 - 6 * terrain  # snow at high latitude, or lower down on high ground
    zone_class = np.select(
        [alat < 15, alat < 35, alat < 55],
        [np.where(surface_field > 0, 2, 9), np.where(surface_field > 0, 7, 10), np.where(surface_field > 0, 12, 5)],
        default=np.where(surface_field > 0, 1, 18),
    )
    desert = (alat > 15) & (alat < 35) & (surface_field > 0.6)
    land_class = np.where(desert, 16, zone_class)
    land_class = np.where((alat > snow_line) | (terrain > 2.2), np.where(surface_field > 0.5, 19, 15), land_class)
    water_class = np.where(alat > 72, 20, 17)
    return np.where(land, land_class, water_class).astype(np.int16)


def land_mixture(surface: np.ndarray, dryness: np.ndarray, patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fractions, members) of each pixel: its class's mean cover, part of the green cover dried by
    ``dryness`` in [0, 1], and endmembers picked by ``patches`` (a smooth standard-normal field)."""
    fractions = np.zeros((len(surface), len(POOLS)))
    for surface_class, mean in LAND_MIXTURES.items():
        fractions[surface == surface_class] = mean
    dried = 0.6 * np.clip(dryness, 0.0, 1.0) * fractions[:, POOLS.index("green")]
    fractions[:, POOLS.index("green")] -= dried
    fractions[:, POOLS.index("npv")] += dried
    u = np.clip(ndtr(patches), 0.0, 1.0 - 1e-9)
    sizes = shipped_library().sizes()
    members = np.stack([(u * sizes[pool]).astype(np.int64) for pool in POOLS], axis=1)
    return fractions, members


def scene_state(
    fields: SceneFields,
    v: np.ndarray,
    u: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    solar_zenith: np.ndarray,
    sensor_zenith: np.ndarray,
    relative_azimuth: np.ndarray,
    day_of_year: float,
) -> AtmosphereState:
    """The per-pixel simulator state (flattened) at image coordinates (v, u) and their geometry.

    Surface pressure, water vapour and ozone are the pipeline's own defaults (``models.earth``)
    with small weather-like departures, so the scene agrees with what the pipeline will assume.
    """
    f = {name: value.ravel() for name, value in fields.sample(v.ravel(), u.ravel()).items()}
    lat, lon = lat.ravel(), lon.ravel()
    threshold = ndtri(1 - fields.cloud_fraction)
    depth = f["cover"] - threshold
    cloudy = depth > 0
    log10_cot = np.clip(-1.5 + 4.2 * (1 - np.exp(-1.6 * np.maximum(depth, 0))) + 0.25 * f["cot"], -1.5, 2.5)
    ice = cloudy & (f["phase"] > 0.25)
    radius = np.where(ice, 30 + 10 * np.tanh(f["radius"]), 11 + 4 * np.tanh(f["radius"]))
    top = np.where(ice, 300 - 80 * np.tanh(f["phase"] - 0.25), 820 - 60 * np.tanh(f["radius"]))
    surface = surface_classes(lat, lon, f["surface"], f["terrain"])
    weather = np.tanh(f["surface"] - f["terrain"])  # a smooth field in [-1, 1]
    altitude = altitude_m(lat, lon)
    pressure = standard_pressure_hpa(altitude) + 5.0 * weather
    top = np.minimum(top, pressure - 60)
    latitude = np.nan_to_num(lat)
    # drier towards the subtropics and where the surface field is low
    dryness = np.clip(0.5 + 0.35 * np.tanh(-f["surface"]) + 0.3 * (np.abs(latitude) > 25), 0.0, 1.0)
    fractions, members = land_mixture(surface, dryness, f["terrain"] + 0.5 * f["surface"])
    return AtmosphereState(
        solar_zenith=solar_zenith.ravel(),
        viewing_zenith=sensor_zenith.ravel(),
        relative_azimuth=relative_azimuth.ravel(),
        surface_pressure=pressure,
        h2o=np.clip(water_vapour_climatology(latitude, day_of_year, altitude) * (1 + 0.15 * weather), 0.05, 6.0),
        o3=ozone_climatology(latitude, day_of_year) * (1 + 0.03 * weather),
        surface_class=surface,
        surface_brightness=np.clip(1.0 + 0.12 * f["terrain"], 0.75, 1.25),
        snow_grain=np.exp(np.log(200) + 0.6 * f["surface"]),
        surface_dryness=dryness,
        cloudy=cloudy,
        ice=ice,
        log10_cot=np.where(cloudy, log10_cot, np.nan),
        effective_radius=radius,
        cloud_top_pressure=top,
        cloud_base_pressure=top + np.where(ice, 150.0, 100.0),
        land_fractions=fractions,
        land_members=members,
    )


def with_temperatures(state: AtmosphereState, lat: np.ndarray, lon: np.ndarray, time: dt.datetime) -> AtmosphereState:
    """``state`` with what the thermal simulator needs: the skin-temperature climatology at the
    scene's places and local time (warmer on low ground), near-surface air 2 K cooler than sunlit
    land and 3 K warmer than land at night, and a standard profile. The column's water vapour is
    kept below what its air can hold (``saturated_column_cm``, as in the training world): the zonal
    climatology's 2 cm over a 260 K night-time desert would be a supersaturated column."""
    land = state.surface_class != WATER_CLASS
    skin = skin_temperature_climatology(
        lat, lon, time.timetuple().tm_yday, time.hour + time.minute / 60, land
    ) + 2.0 * np.tanh(np.nan_to_num(state.surface_pressure - 1000.0) / 50.0)
    offset = np.where(land, np.where(state.solar_zenith < 90.0, 2.0, -3.0), 0.5)
    return replace(
        state,
        skin_temperature=skin,
        air_temperature_offset=offset,
        tropopause_temperature=np.full(len(state), 210.0),
        h2o=np.minimum(state.h2o, saturated_column_cm(skin - offset)),
    )
