"""Simulated training data in the reference MT-HCCAR schema.

Sampling priors (rt-simulator-notes section 7, widened towards the real world):

* geometry: half the samples at random daytime places and times seen from GOES-West and GOES-East
  (``geometry.geostationary_geometry``), half uniform: solar zenith U(0, 80) deg, viewing zenith
  U(0, 70) deg, relative azimuth U(0, 180) deg (0 = backscatter);
* surface: IGBP class drawn as 30 % water, 45 % land classes 1-14 and 18, 10 % barren, 15 %
  snow/ice (classes 15, 19, 20). Land is a mixture of measured spectra (``surface_library``) with
  Dirichlet cover fractions around each class mean (concentration 2.5, wide: real open land sat
  in the bright-blue tail of the concentration-4 draws; barren land is on average 54 % soil and
  sand, 30 % playa and salt crust, 16 % sparse vegetation), 4 % of vegetated pixels
  burned (char cover U(0.2, 0.9)), brightness U(0.8, 1.2); a Ross-Thick/Li-Sparse BRDF with
  weights U(0.1, 0.8) (volumetric) and U(0.02, 0.25) (geometric) relative to the isotropic one
  (the range of MODIS MCD43 retrievals over vegetation and soil, Jiao et al. 2014, Remote Sens.
  Environ. 153, 193). Water has Cox-Munk sun glint with a Weibull wind speed (shape 2, mean 7 m/s).
  Snow: brightness U(0.9, 1.0), grain log-U(50, 1000) um;
* aerosol (labelled clear): background AOD(0.55) log-normal with median 0.08 (0.04 over snow),
  maritime or continental over water, continental over land, dust or continental over barren
  land; heavy events, AOD log-U(0.2, 2.0), smoke or dust (dust over barren land), in 10 % of the
  samples off snow with physics 2.4 (mean AOD over land 0.18, MODIS's 0.19) and 30 % before. With
  physics 2.3, in clear skies half the smoke and dust and a fifth of the continental aerosol is
  lofted into a 150 hPa layer topped at U(250, 650) hPa, above most of the water vapour (CALIOP
  layer heights, Winker et al. 2013), and every sample has stratospheric sulfate, AOD(0.55)
  log-U(0.003, 0.03) (quiet years to moderate eruptions, Kremser et al. 2016): what the 1.38 um
  band sees of a clear sky;
* surface pressure U(500, 1040) hPa (water: U(980, 1040)); h2o U(0.1, 6) cm (snow: U(0.1, 1.5));
  o3 U(220, 450) DU;
* 50 % clear, 50 % cloudy (balanced; the reference used 30/70); phase 50/50; log10 COT at
  0.55 um in [-1.5, 2.5] as the reference, drawn 80 % from N(0.7, 0.6) (most real clouds have COT
  2-20) and 20 % uniformly (the reference drew all uniformly); effective radius log-U(4, 25) um
  liquid and log-U(10, 60) um ice; cloud top 600-950 hPa liquid and 150-450 hPa ice (physics 2.4:
  440-950 and 150-680 hPa, the middle troposphere's clouds too, each spread over what its phase
  and the ground allow), thickness U(30, 200) hPa, kept above the surface; with physics 2.5 a
  quarter of the cloudy pixels are broken, the cloud covering U(0.5, 1) of the pixel (reflectance
  and radiance mixed with the clear sky's, the independent pixel approximation);
* temperatures (thermal bands): skin temperature U(271.5, 304) K over water, U(262, 335) K over
  land by day and U(235, 310) K at night, U(215, 273) K over snow; skin minus near-surface air
  temperature U(-1, 2) K over water, U(-2, 12) K over land by day, U(-8, 2) K at night; tropopause
  U(195, 225) K; column water vapour capped by the saturated column of the air temperature
  (0.7 exp(0.07 (T_air - 273.15)) cm, a fit to the Reitan 1963 dew-point relation), at night over
  land and snow of the air above a surface inversion of U(0, 15) K (the cooled ground under a moist
  column, which the ancillary climatologies give at inference); cloud tops kept
  where the phase can exist (liquid no colder than 238 K, ice no warmer than 268 K); soil quartz
  share U(0, 0.5) (U(0.2, 1) on barren land: quartz sands are deserts). The model's skin-temperature
  input is the truth plus Gaussian error of 1-12 K (NWP to climatology, which can miss a given day
  by 10 K);
* night samples (``night=True``): solar zenith U(95, 170) deg, no sunlight in any band; the
  model's water-vapour input (``h2o_input``) is the truth times a log-normal error of 0.1-0.7 (1
  sigma of its logarithm): at night the zonal climatology's column over cooled land can be several
  times the air's capacity, and a night model that trusted it called such clear land cloudy;
* measurement noise: 1 % (1 sigma) multiplicative and 0.0005 additive; 0.15 K in the thermal bands.

Angles are stored in degrees; reflectances as BRF (unitless), band-first like the reference.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np

from models.bands import Band, SensorBands, sensor_bands
from models.context import WINDOW_BAND
from models.fileio import atomic_output
from models.spec import RELATIVE_AZIMUTH_CONVENTION
from models.training.simulate.aerosol import AEROSOL_TYPES, TYPE_INDEX
from models.training.simulate.context import draw_window_contrast
from models.training.simulate.geometry import geostationary_geometry, uniform_geometry
from models.training.simulate.simulator import (
    ELEVATED_AEROSOL_DEPTH_HPA,
    SIMULATOR_VERSION,
    AtmosphereState,
    Simulator,
    check_physics,
    has_broken_clouds,
    has_climatological_aerosol,
    has_co2_band,
    has_mid_level_clouds,
    has_window_contrast,
    sees_above_the_water,
)
from models.training.simulate.surface import LAND_MIXTURES
from models.training.simulate.surface_library import POOLS, shipped_library
from models.training.simulate.thermal import CO2_BANDS, ThermalSimulator, add_bt_noise

logger = logging.getLogger(__name__)

LAND_CLASSES = (*range(1, 15), 18)
SNOW_CLASSES = (15, 19, 20)
WATER, BARREN = 17, 16
NOISE_RELATIVE = 0.01
NOISE_ABSOLUTE = 0.0005
CHUNK_SAMPLES = 8192
MAX_SOLAR_ZENITH, MAX_VIEW_ZENITH = 80.0, 70.0
GEOSTATIONARY_SHARE = 0.5
MIXTURE_CONCENTRATION = 2.5
BURNED_SHARE = 0.04
EVENT_SHARE = 0.3
# physics 2.4: heavy events in 10 % of samples, so that the prior's mean AOD(0.55) over land, about
# 0.18, is the satellite climatology's (MODIS Collection 5 over land: 0.19, Remer et al. 2008,
# J. Geophys. Res. 113, D14S07); 30 % made it 0.31 and AOD > 1 three times as common as observed
CLIMATOLOGICAL_EVENT_SHARE = 0.1
# smoke and dust are lofted above the boundary layer about half the time, continental haze less,
# sea salt stays low (CALIOP layer heights: Winker et al. 2013, Atmos. Chem. Phys. 13, 3345); the
# layer's top between about 3.5 and 10 km
LOFTED_AEROSOL_SHARE = {"smoke": 0.5, "dust": 0.5, "continental": 0.2, "maritime": 0.0}
LOFTED_AEROSOL_TOP_HPA = (250.0, 650.0)
# stratospheric AOD(0.55), log-uniform: volcanically quiet years ~0.005, moderate eruptions (Raikoke
# 2019, Sarychev 2009) 0.01-0.03 over a hemisphere for months (Kremser et al. 2016)
STRATOSPHERIC_AOD = (0.003, 0.03)
LOG10_COT_RANGE = (-1.5, 2.5)  # at 0.55 um, as the reference's training data
# log10 COT: a log-normal body (most clouds have COT 2-20, as in MODIS and ISCCP optical-thickness
# histograms, e.g. King et al. 2013, IEEE TGRS 51, 3826) plus a uniform share over the whole range
LOG10_COT_BODY = (0.7, 0.6)  # mean, standard deviation
LOG10_COT_UNIFORM_SHARE = 0.2
CLEAR_FRACTION = 0.5  # balanced classes; the reference used 0.3
# cloud-top pressure ranges before the phase's temperature bounds and the ground cut them: liquid
# low clouds, ice high clouds; none at 450-600 hPa, where mid-level clouds (ISCCP's 440-680 hPa,
# Rossow and Schiffer 1999: altocumulus and altostratus) are in the real world
LIQUID_TOP_HPA = (600.0, 950.0)
ICE_TOP_HPA = (150.0, 450.0)
# physics 2.4: liquid (often supercooled) and ice tops across the middle troposphere, as ISCCP's
# altocumulus and altostratus; the temperature bounds below still decide which phase can be there
MID_LEVEL_LIQUID_TOP_HPA = (440.0, 950.0)
MID_LEVEL_ICE_TOP_HPA = (150.0, 680.0)
# physics 2.5: broken clouds. A pixel of side L inside a cloud of size D straddles its edge with
# probability about 4 L / D; clouds of 10-30 km and more hold most of the cloud cover (Wood and Field
# 2011, J. Climate 24, 4800), so at L = 1-2 km a third or so of the pixels a cloud touches are partly
# covered, with a cover spread evenly between 0 and 1 along a straight edge. Those at least half
# covered are cloudy by the majority rule: about a quarter of the cloudy pixels, cover U(0.5, 1).
# The ones less than half covered are left out of the world (clear-conservative masks call them
# cloudy, the majority rule clear), and a broken pixel's COT label is its cloud's own.
BROKEN_CLOUD_SHARE = 0.25
BROKEN_CLOUD_COVER = (0.5, 1.0)
NIGHT_INVERSION_K = 15.0  # at most, over land and snow at night (clear calm nights: 5-15 K and more)


def sample_geometry(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    geo = round(n * GEOSTATIONARY_SHARE)
    a = geostationary_geometry(geo, rng, MAX_SOLAR_ZENITH, MAX_VIEW_ZENITH)
    b = uniform_geometry(n - geo, rng, MAX_SOLAR_ZENITH, MAX_VIEW_ZENITH)
    order = rng.permutation(n)
    return tuple(np.concatenate([x, y])[order] for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def sample_land_mixture(surface: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(fractions (N, 6), members (N, 6)): Dirichlet cover around each class mean, some burned."""
    n = len(surface)
    means = np.zeros((n, len(POOLS)))
    for surface_class, mean in LAND_MIXTURES.items():
        means[surface == surface_class] = mean
    shapes = np.where(means > 0, MIXTURE_CONCENTRATION * means, 0.0)
    draws = np.where(shapes > 0, rng.gamma(np.maximum(shapes, 1e-3)), 0.0)
    total = draws.sum(axis=1, keepdims=True)
    fractions = np.divide(draws, total, out=np.zeros_like(draws), where=total > 0)
    vegetated = means[:, 0] >= 0.1
    burned = vegetated & (rng.random(n) < BURNED_SHARE)
    char = np.where(burned, rng.uniform(0.2, 0.9, n), 0.0)
    fractions = fractions * (1 - char)[:, None]
    fractions[:, POOLS.index("char")] += char
    sizes = shipped_library().sizes()
    members = np.stack([rng.integers(0, sizes[pool], n) for pool in POOLS], axis=1)
    return fractions, members


def sample_aerosol(
    surface: np.ndarray, rng: np.random.Generator, event_share: float = EVENT_SHARE
) -> tuple[np.ndarray, np.ndarray]:
    """(AOD at 0.55 um, type index) per sample; heavy smoke or dust in ``event_share`` of them."""
    n = len(surface)
    water, barren, snow = surface == WATER, surface == BARREN, np.isin(surface, SNOW_CLASSES)
    event = ~snow & (rng.random(n) < event_share)
    median = np.where(snow, 0.04, 0.08)
    background = np.clip(median * np.exp(rng.normal(0.0, 0.8, n)), 0.01, 0.8)
    heavy = np.exp(rng.uniform(np.log(0.2), np.log(2.0), n))
    aod = np.where(event, heavy, background)
    u = rng.random(n)
    idx = TYPE_INDEX
    background_type = np.select(
        [water & (u < 0.7), barren & (u < 0.5)], [idx["maritime"], idx["dust"]], default=idx["continental"]
    )
    event_type = np.where(u < np.where(barren, 0.85, 0.4), idx["dust"], idx["smoke"])
    kind = np.where(event, event_type, background_type).astype(np.int16)
    assert kind.max() < len(AEROSOL_TYPES)
    return aod, kind


def sample_log10_cot(n: int, rng: np.random.Generator) -> np.ndarray:
    body = rng.normal(*LOG10_COT_BODY, n)
    uniform = rng.uniform(*LOG10_COT_RANGE, n)
    return np.clip(np.where(rng.random(n) < LOG10_COT_UNIFORM_SHARE, uniform, body), *LOG10_COT_RANGE)


def _within(
    draw: np.ndarray, drawn_from: tuple[float, float], low: np.ndarray | float, high: np.ndarray | float
) -> np.ndarray:
    """``draw`` (uniform over ``drawn_from``) moved to the same place in [low, min(high, drawn_from[1])];
    unchanged where that interval is empty, so the callers' bounds decide as before."""
    high = np.minimum(high, drawn_from[1])
    low = np.broadcast_to(low, draw.shape)
    share = (draw - drawn_from[0]) / (drawn_from[1] - drawn_from[0])
    return np.where(high > low, low + share * (high - low), draw)


def saturated_column_cm(air_temperature: np.ndarray) -> np.ndarray:
    """Column water vapour (cm) of a saturated atmosphere over air at ``air_temperature`` (K)."""
    return 0.7 * np.exp(0.07 * (air_temperature - 273.15))


def _pressure_at_temperature(temperature: float, air: np.ndarray, surface: np.ndarray) -> np.ndarray:
    """Pressure (hPa) where the lapse-rate profile reaches ``temperature`` (surface if never)."""
    from models.training.simulate.thermal import LAPSE_EXPONENT

    return surface * np.clip(temperature / air, 0.0, 1.0) ** (1 / LAPSE_EXPONENT)


def sample_temperatures(
    surface: np.ndarray, night: bool, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(skin, skin - air, tropopause, soil quartz) per sample."""
    n = len(surface)
    water, snow = surface == WATER, np.isin(surface, SNOW_CLASSES)
    land_range = (235.0, 310.0) if night else (262.0, 335.0)
    land_offset = (-8.0, 2.0) if night else (-2.0, 12.0)
    skin = np.select(
        [water, snow], [rng.uniform(271.5, 304.0, n), rng.uniform(215.0, 273.0, n)], default=rng.uniform(*land_range, n)
    )
    offset = np.select(
        [water, snow], [rng.uniform(-1.0, 2.0, n), rng.uniform(-5.0, 3.0, n)], default=rng.uniform(*land_offset, n)
    )
    quartz = np.where(surface == BARREN, rng.uniform(0.2, 1.0, n), rng.uniform(0.0, 0.5, n))
    return skin, offset, rng.uniform(195.0, 225.0, n), quartz


def sample_state(
    n: int,
    rng: np.random.Generator,
    clear_fraction: float = CLEAR_FRACTION,
    night: bool = False,
    physics: str = SIMULATOR_VERSION,
) -> AtmosphereState:
    """``n`` independent samples from the priors above."""
    group = rng.choice(4, size=n, p=[0.30, 0.45, 0.10, 0.15])  # water, land, barren, snow
    surface = np.select(
        [group == 0, group == 1, group == 2],
        [WATER, rng.choice(LAND_CLASSES, size=n), BARREN],
        default=rng.choice(SNOW_CLASSES, size=n),
    ).astype(np.int16)
    snow = group == 3
    cloudy = rng.random(n) >= clear_fraction
    ice = cloudy & (rng.random(n) < 0.5)
    pressure = np.where(group == 0, rng.uniform(980, 1040, n), rng.uniform(500, 1040, n))
    skin, air_offset, tropopause, quartz = sample_temperatures(surface, night, rng)
    air = skin - air_offset
    # the phase must be possible at the cloud top: liquid no colder than 238 K, ice no warmer than 268 K
    ice = np.where(cloudy & (air < 250.0), True, ice)
    mid_level = has_mid_level_clouds(physics)
    ice_tops = MID_LEVEL_ICE_TOP_HPA if mid_level else ICE_TOP_HPA
    liquid_tops = MID_LEVEL_LIQUID_TOP_HPA if mid_level else LIQUID_TOP_HPA
    ice_draw, liquid_draw = rng.uniform(*ice_tops, n), rng.uniform(*liquid_tops, n)
    warmest_ice, coldest_liquid = (_pressure_at_temperature(t, air, pressure) for t in (268.0, 238.0))
    if mid_level:  # spread over what the phase and the ground allow, rather than piling at its edges
        ice_draw = _within(ice_draw, ice_tops, ice_tops[0], np.minimum(warmest_ice, pressure - 40))
        liquid_draw = _within(liquid_draw, liquid_tops, np.maximum(coldest_liquid, liquid_tops[0]), pressure - 40)
    top = np.where(ice, np.minimum(ice_draw, warmest_ice), np.maximum(liquid_draw, coldest_liquid))
    top = np.minimum(top, pressure - 40)
    radius = np.where(
        ice, np.exp(rng.uniform(np.log(10), np.log(60), n)), np.exp(rng.uniform(np.log(4), np.log(25), n))
    )
    solar_zenith, viewing_zenith, relative_azimuth = sample_geometry(n, rng)
    if night:
        solar_zenith = rng.uniform(95.0, 170.0, n)
    # the column's water vapour is bounded by the air above a night-time surface inversion, which
    # can be much warmer than the radiatively cooled ground (a 2 cm column over 260 K land)
    column_air = air + (np.where(group == 0, 0.0, rng.uniform(0.0, NIGHT_INVERSION_K, n)) if night else 0.0)
    h2o = np.where(snow, rng.uniform(0.1, 1.5, n), rng.uniform(0.1, 6.0, n))
    h2o = np.clip(np.minimum(h2o, saturated_column_cm(column_air) * rng.uniform(0.3, 1.0, n)), 0.05, 7.0)
    fractions, members = sample_land_mixture(surface, rng)
    aod, aerosol_type = sample_aerosol(
        surface, rng, CLIMATOLOGICAL_EVENT_SHARE if has_climatological_aerosol(physics) else EVENT_SHARE
    )
    state = AtmosphereState(
        solar_zenith=solar_zenith,
        viewing_zenith=viewing_zenith,
        relative_azimuth=relative_azimuth,
        surface_pressure=pressure,
        h2o=h2o,
        o3=rng.uniform(220, 450, n),
        surface_class=surface,
        surface_brightness=np.where(snow, rng.uniform(0.9, 1.0, n), rng.uniform(0.8, 1.2, n)),
        snow_grain=np.exp(rng.uniform(np.log(50), np.log(1000), n)),
        surface_dryness=rng.uniform(0.0, 1.0, n),
        cloudy=cloudy,
        ice=ice,
        log10_cot=np.where(cloudy, sample_log10_cot(n, rng), np.nan),
        effective_radius=np.where(cloudy, radius, 10.0),
        cloud_top_pressure=top,
        cloud_base_pressure=np.minimum(top + rng.uniform(30, 200, n), pressure - 10),
        land_fractions=fractions,
        land_members=members,
        brdf_volumetric=rng.uniform(0.1, 0.8, n),
        brdf_geometric=rng.uniform(0.02, 0.25, n),
        wind_speed=np.clip(7.9 * rng.weibull(2.0, n), 0.5, 20.0),
        aerosol_aod=aod,
        aerosol_type=aerosol_type,
        skin_temperature=skin,
        air_temperature_offset=air_offset,
        tropopause_temperature=tropopause,
        soil_quartz=quartz,
    )
    if not sees_above_the_water(physics):
        return state
    # drawn last, so that every earlier draw of a seed stays what it was
    state = replace(
        state,
        aerosol_layer_top=sample_aerosol_layer(aerosol_type, pressure, rng),
        stratospheric_aod=np.exp(rng.uniform(np.log(STRATOSPHERIC_AOD[0]), np.log(STRATOSPHERIC_AOD[1]), n)),
    )
    if not has_broken_clouds(physics):
        return state
    broken = cloudy & (rng.random(n) < BROKEN_CLOUD_SHARE)
    return replace(state, cloud_cover=np.where(broken, rng.uniform(*BROKEN_CLOUD_COVER, n), 1.0))


def sample_aerosol_layer(
    aerosol_type: np.ndarray, surface_pressure: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Top pressure (hPa) of a lofted aerosol layer, NaN where the aerosol stays mixed with the water."""
    n = len(aerosol_type)
    share = np.zeros(n)
    for name, lofted in LOFTED_AEROSOL_SHARE.items():
        share = np.where(aerosol_type == TYPE_INDEX[name], lofted, share)
    top = rng.uniform(*LOFTED_AEROSOL_TOP_HPA, n)
    room = top + ELEVATED_AEROSOL_DEPTH_HPA < surface_pressure - 50.0  # above the boundary layer
    return np.where((rng.random(n) < share) & room, top, np.nan)


def add_noise(reflectance: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noisy = reflectance * rng.normal(1.0, NOISE_RELATIVE, reflectance.shape) + rng.normal(
        0.0, NOISE_ABSOLUTE, reflectance.shape
    )
    return np.maximum(noisy, 0.0).astype(np.float32)


@cache
def _simulator(bands: tuple[Band, ...], correction: bool, physics: str = SIMULATOR_VERSION) -> Simulator:
    return Simulator(bands, correction, physics)


@cache
def _thermal(bands: tuple[Band, ...]) -> ThermalSimulator:
    return ThermalSimulator(bands)


ChunkJob = tuple[tuple[Band, ...], tuple[Band, ...], bool, AtmosphereState, int, int, bool, str]


def _simulate_chunk(args: ChunkJob) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(noisy BRF (N, solar bands), noisy BT (N, thermal bands), window contrast (N, window bands))
    of one chunk; the last has no columns before physics 2.6."""
    solar, thermal, correction, state, seed, index, night, physics = args
    rng = np.random.default_rng([seed, index, 0x4E01])
    if night:  # no sunlight: the reflectance variables hold zeros
        reflectance = np.zeros((len(state), len(solar)), dtype=np.float32)
    else:
        reflectance = add_noise(_simulator(solar, correction, physics).reflectance(state), rng)
    temperature = np.zeros((len(state), 0), dtype=np.float32)
    if thermal:
        temperature = _noisy_brightness_temperature(thermal, state, rng, [seed, index, 0xC016])
    windows = _window_bands(thermal) if has_window_contrast(physics) else ()
    contrast = np.zeros((len(state), len(windows)), dtype=np.float32)
    if windows:
        # its own generator, so that 2.6 keeps every number 2.5 drew for the same seed
        context_rng = np.random.default_rng([seed, index, 0xC0E7])
        clear = replace(state, cloudy=np.zeros(len(state), dtype=bool), cloud_cover=None)
        clear_bt = add_bt_noise(_thermal(windows).brightness_temperature(clear), context_rng)
        cover = _or_nan(state.cloud_cover, len(state), fill=1.0)
        for k, band in enumerate(windows):
            own = temperature[:, thermal.index(band)].astype(np.float64)
            contrast[:, k] = draw_window_contrast(
                own, clear_bt[:, k].astype(np.float64), state.cloudy, cover, state.surface_class, context_rng
            )
    return reflectance, temperature, contrast


def _noisy_brightness_temperature(
    thermal: tuple[Band, ...], state: AtmosphereState, rng: np.random.Generator, co2_seed: list[int]
) -> np.ndarray:
    """(N, thermal bands) noisy BT; the CO2 bands' noise from a generator of their own, so that
    adding them (physics 2.7) kept every number the other bands drew for the same seed."""
    bt = _thermal(thermal).brightness_temperature(state)
    co2 = np.array([b.name in CO2_BANDS for b in thermal])
    out = np.empty(bt.shape, dtype=np.float32)
    out[:, ~co2] = add_bt_noise(bt[:, ~co2], rng)
    if co2.any():
        out[:, co2] = add_bt_noise(bt[:, co2], np.random.default_rng(co2_seed))
    return out


def physics_bands(table: SensorBands, physics: str) -> SensorBands:
    """The sensor's bands as simulator ``physics`` has them (no CO2 band before 2.7)."""
    if has_co2_band(physics):
        return table
    return replace(table, thermal_bands=tuple(b for b in table.thermal_bands if b.name not in CO2_BANDS))


def _window_bands(thermal: tuple[Band, ...]) -> tuple[Band, ...]:
    """The window band of each sensor among ``thermal``, in their order."""
    return tuple(b for b in thermal if b.name in WINDOW_BAND.values())


def default_workers() -> int:
    """Processes a simulation uses unless told: up to two (the development machine's cores)."""
    return min(2, os.cpu_count() or 1)


def _sensor_list(sensor: str) -> list[str]:
    """``all``: every sensor; ``thermal``: the sensors with thermal bands (night files)."""
    return {"all": ["oci", "viirs", "abi"], "thermal": ["viirs", "abi"]}.get(sensor, [sensor])


def simulate_dataset(
    path: str | Path,
    sensor: str,
    samples: int,
    seed: int = 0,
    correction: bool = True,
    workers: int | None = None,
    night: bool = False,
    physics: str = SIMULATOR_VERSION,
) -> Path:
    """Write ``samples`` simulated points for one sensor (or ``all``) in the reference schema.

    Sensors with thermal bands also get ``{sensor}_brightness_temperatures``; ``night`` draws
    night-time samples (no sunlight: reflectances are zero).
    """
    path = Path(path)
    if samples < 1:
        raise ValueError(f"--samples must be positive, not {samples}")
    sensors = _sensor_list(sensor)
    check_physics(physics)
    tables = [physics_bands(sensor_bands(s), physics) for s in sensors]
    solar = tuple(b for t in tables for b in t.training_bands)
    thermal = tuple(b for t in tables for b in t.thermal_bands)
    rng = np.random.default_rng(seed)
    state = sample_state(samples, rng, night=night, physics=physics)
    workers = workers or default_workers()
    chunks: list[ChunkJob] = [
        (solar, thermal, correction, state.take(slice(s, s + CHUNK_SAMPLES)), seed, i, night, physics)
        for i, s in enumerate(range(0, samples, CHUNK_SAMPLES))
    ]
    with atomic_output(path) as tmp, netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
        variables, thermal_variables = _create_schema(nc, tables, samples, sensor, seed, correction)
        nc.setncattr("simulator_version", physics)
        nc.setncattr("simulator_night", int(night))
        _write_state(nc, state, np.random.default_rng([seed, 0x5C7]), h2o_input_error=night)
        offsets = np.cumsum([0] + [len(t.training_bands) for t in tables])
        thermal_offsets = np.cumsum([0] + [len(t.thermal_bands) for t in tables])
        contrast_variables = _create_window_contrast(nc, tables) if has_window_contrast(physics) else []
        start = 0
        with ProcessPoolExecutor(workers) as pool:
            for reflectance, temperature, contrast in pool.map(_simulate_chunk, chunks):
                stop = start + len(reflectance)
                for k, var in enumerate(contrast_variables):
                    var[start:stop] = contrast[:, k]
                for k, var in enumerate(variables):
                    var[:, start:stop] = reflectance[:, offsets[k] : offsets[k + 1]].T
                for k, var in enumerate(thermal_variables):
                    if var is not None:
                        var[:, start:stop] = temperature[:, thermal_offsets[k] : thermal_offsets[k + 1]].T
                start = stop
                logger.debug("simulated %d / %d samples", stop, samples)
    logger.info("wrote %d simulated samples (%s) to %s", samples, ", ".join(sensors), path)
    return path


def _create_schema(
    nc: netCDF4.Dataset, tables: Sequence[SensorBands], samples: int, sensor: str, seed: int, correction: bool
) -> tuple[list[Any], list[Any]]:
    nc.createDimension("npoints", samples)
    nc.setncatts(
        {
            "title": "MT-HCCAR training data simulated with the project's fast radiative-transfer model",
            "description": "Radiative transfer-based labelled training data: TOA bidirectional reflectance factor "
            "(BRF = pi L / (mu0 E0)) of clear and single-layer liquid/ice cloud scenes",
            "version": f"Created {datetime.now(UTC):%Y%m%d}",
            "simulator_version": SIMULATOR_VERSION,
            "simulator_seed": seed,
            "simulator_sensor": sensor,
            "ms_correction": "DISORT-derived table" if correction else "none (analytic)",
            "angle_units": "degrees",
            "relative_azimuth_convention": RELATIVE_AZIMUTH_CONVENTION,
            "cot_reference_wavelength_um": 0.55,
            "file_format": "NetCDF4",
        }
    )
    variables = [
        _band_variable(
            nc,
            table.band_dimension,
            table.training_bands,
            samples,
            (f"{table.sensor}_band_name", table.reflectance_variable),
            ("nm", 1e3, f"{table.sensor} band central wavelength"),
            ("1", f"{table.sensor} TOA bidirectional reflectance factor"),
        )
        for table in tables
    ]
    thermal_variables = [
        _band_variable(
            nc,
            table.thermal_dimension,
            table.thermal_bands,
            samples,
            (f"{table.sensor}_thermal_band_name", table.brightness_temperature_variable),
            ("um", 1.0, f"{table.sensor} thermal band central wavelength"),
            ("K", f"{table.sensor} TOA brightness temperature"),
        )
        if table.thermal_bands
        else None
        for table in tables
    ]
    return variables, thermal_variables


def _create_window_contrast(nc: netCDF4.Dataset, tables: Sequence[SensorBands]) -> list[Any]:
    """One ``{sensor}_window_contrast`` per sensor with thermal bands, in ``_window_bands`` order."""
    out = []
    for table in tables:
        if not table.thermal_bands:
            continue
        var = nc.createVariable(table.window_contrast_variable, "f4", ("npoints",), zlib=True, complevel=1)
        var.units = "K"
        var.long_name = (
            f"{table.sensor} {WINDOW_BAND[table.sensor]} brightness temperature minus the warmest nearby "
            "(models.context), drawn from the sample's clear-sky and observed temperatures"
        )
        out.append(var)
    return out


def _band_variable(
    nc: netCDF4.Dataset,
    dim: str,
    bands: Sequence[Band],
    samples: int,
    names: tuple[str, str],
    coordinate: tuple[str, float, str],
    data: tuple[str, str],
) -> Any:
    """A (band, npoints) variable with its wavelength coordinate and band-name list."""
    name_variable, data_variable = names
    coord_units, coord_factor, coord_name = coordinate
    nc.createDimension(dim, len(bands))
    coord = nc.createVariable(dim, "f4", (dim,))
    coord[:] = [b.central_um * coord_factor for b in bands]
    coord.units = coord_units
    coord.long_name = coord_name
    band_names = nc.createVariable(name_variable, str, (dim,))
    for i, band in enumerate(bands):
        band_names[i] = band.name
    var = nc.createVariable(
        data_variable, "f4", (dim, "npoints"), zlib=True, complevel=1, chunksizes=(len(bands), min(samples, 16384))
    )
    var.units, var.long_name = data
    return var


SCALARS = {
    # name: (dtype, units, long name)
    "solar_zenith_angle": ("f4", "degrees", "solar zenith angle"),
    "viewing_zenith_angle": ("f4", "degrees", "sensor zenith angle"),
    "relative_azimuth_angle": ("f4", "degrees", "relative azimuth angle, 0 = backscatter"),
    "albedo_type": ("i2", "1", "IGBP surface class 1-20 (CERES-modified)"),
    "scene_type": ("i2", "1", "1 cloud free, 2 single cloud layer"),
    "cloud_type": ("i2", "1", "1 liquid, 2 ice, 0 none"),
    "log10_cloud_optical_thickness": ("f4", "1", "log10 cloud optical thickness at 0.55 um, NaN when clear"),
    "spress": ("f4", "hPa", "surface pressure"),
    "h2o": ("f4", "cm", "column water vapour"),
    "o3": ("f4", "DU", "column ozone"),
    "cloud_effective_radius": ("f4", "um", "cloud effective radius"),
    "cloud_top_pressure": ("f4", "hPa", "cloud top pressure"),
    "aerosol_optical_depth": ("f4", "1", "aerosol optical depth at 0.55 um"),
    "aerosol_type": ("i2", "1", "aerosol type: " + ", ".join(f"{i} {t.name}" for i, t in enumerate(AEROSOL_TYPES))),
    "aerosol_layer_top_pressure": ("f4", "hPa", "top of a lofted aerosol layer (NaN: mixed with the water vapour)"),
    "stratospheric_aerosol_optical_depth": ("f4", "1", "stratospheric sulfate AOD at 0.55 um (NaN: none, physics 2.2)"),
    "wind_speed": ("f4", "m s-1", "wind speed for sun glint (water only)"),
    "skin_temperature": ("f4", "K", "surface skin temperature (truth)"),
    "skt": ("f4", "K", "surface skin temperature as a model input: truth plus climatology-to-NWP error"),
    "cloud_cover": ("f4", "1", "share of the pixel the cloud covers (1 overcast; NaN when clear)"),
}
SKT_ERROR_K = (1.0, 12.0)  # the 1-sigma error of the skin temperature input, drawn per sample
# the 1-sigma error of ln(water vapour input), drawn per sample: an NWP column to the zonal
# climatology, which misses the dry air over high or cold ground by a factor of 2-4
H2O_LOG_ERROR = (0.1, 0.7)


def _or_nan(values: np.ndarray | None, n: int, fill: float = np.nan) -> np.ndarray:
    return np.full(n, fill) if values is None else values


def _write_state(
    nc: netCDF4.Dataset, state: AtmosphereState, rng: np.random.Generator, h2o_input_error: bool = False
) -> None:
    """The state's scalars; ``h2o_input_error`` adds ``h2o_input``, the water vapour a model sees."""
    n = len(state)
    skin = _or_nan(state.skin_temperature, n)
    skt_input = skin + rng.normal(0.0, 1.0, n) * rng.uniform(*SKT_ERROR_K, n)
    values = {
        "solar_zenith_angle": state.solar_zenith,
        "viewing_zenith_angle": state.viewing_zenith,
        "relative_azimuth_angle": state.relative_azimuth,
        "albedo_type": state.surface_class,
        "scene_type": np.where(state.cloudy, 2, 1),
        "cloud_type": np.where(state.cloudy, np.where(state.ice, 2, 1), 0),
        "log10_cloud_optical_thickness": state.log10_cot,
        "spress": state.surface_pressure,
        "h2o": state.h2o,
        "o3": state.o3,
        "cloud_effective_radius": np.where(state.cloudy, state.effective_radius, np.nan),
        "cloud_top_pressure": np.where(state.cloudy, state.cloud_top_pressure, np.nan),
        "aerosol_optical_depth": _or_nan(state.aerosol_aod, len(state)),
        "aerosol_type": _or_nan(state.aerosol_type, len(state), fill=-1),
        "aerosol_layer_top_pressure": _or_nan(state.aerosol_layer_top, len(state)),
        "stratospheric_aerosol_optical_depth": _or_nan(state.stratospheric_aod, len(state)),
        "wind_speed": _or_nan(state.wind_speed, len(state)),
        "skin_temperature": skin,
        "skt": skt_input,
        "cloud_cover": np.where(state.cloudy, _or_nan(state.cloud_cover, n, fill=1.0), np.nan),
    }
    scalars = dict(SCALARS)
    if h2o_input_error:
        log_error = rng.normal(0.0, 1.0, n) * rng.uniform(*H2O_LOG_ERROR, n)
        values["h2o_input"] = np.clip(state.h2o * np.exp(log_error), 0.05, 7.0)
        scalars["h2o_input"] = ("f4", "cm", "column water vapour as a model input: truth with climatology-to-NWP error")
    for name, (dtype, units, long_name) in scalars.items():
        var = nc.createVariable(name, dtype, ("npoints",), zlib=True, complevel=1)
        var[:] = values[name]
        var.units = units
        var.long_name = long_name


def simulate_bands(
    bands: Sequence[Band], state: AtmosphereState, correction: bool = True, physics: str = SIMULATOR_VERSION
) -> np.ndarray:
    """Noise-free BRF (N, B) of arbitrary bands (granule rendering, tests)."""
    return _simulator(tuple(bands), correction, physics).reflectance(state)
