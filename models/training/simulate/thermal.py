"""Thermal-infrared brightness temperatures for the same state as the solar simulator.

``ThermalSimulator(bands).brightness_temperature(state)`` gives BT (K) of ABI C07, C11, C13-C16 and
VIIRS M12-M16 for a plane-parallel atmosphere over an emitting surface, with an optional cloud:

* **Planck**: each band's radiance in mW m-2 sr-1 (cm-1)-1 with the band-corrected constants the
  ABI L1b files carry (``planck_fk1``, ``planck_fk2``, ``planck_bc1``, ``planck_bc2``, read from the
  GOES-17 files in ``shared/granules``); VIIRS monochromatic at the band's central wavenumber.
* **Temperature profile**: near-surface air temperature = skin - offset, a 6.5 K/km lapse rate in
  pressure coordinates, T(p) = T_air (p / p_s)^(R Gamma / g), capped below by a tropopause
  temperature (isothermal above).
* **Gases**: a fitted band model, nadir optical depth a0 + a1 W + a2 W^2 for column water vapour W
  (cm): a0 for the mixed gases and ozone (in proportion to pressure), a1 for water-vapour lines
  (distributed as specific humidity, (p / p_s)^4 cumulative), a2 for the self-continuum
  (pressure- and vapour-squared, (p / p_s)^7), and for ABI C16 in the CO2 band's wing a CO2 term in
  absolute pressure squared (``CO2_C16``). The coefficients are chosen to give the window
  transmittances of standard atmospheres and are checked against the published split-window SST
  relation (McClain et al. 1985) in the tests. Emission is summed over 8 sublayers per block.
* **Surface**: emissivity per band of each endmember (``EMISSIVITY``; beyond 12.3 um, at C16, held
  at its 12.3 um value), mixed with the solar
  simulator's cover fractions; reflected downwelling sky radiance (diffusivity 1.66).
* **Cloud**: the same Mie optics as the solar bands (refractive indices to 14 um), delta-Eddington
  reflectance r and transmittance t of the cloud layer (with its gas), emissivity 1 - r - t by
  Kirchhoff's law, at the temperature one absorption optical depth below cloud top (the top for
  thick clouds, mid-cloud for thin ones).
* **3.7-4.05 um by day**: the solar reflection is added, the solar simulator's BRF of the band over
  a surface of albedo 1 - emissivity times a 5778 K blackbody sun (mu0 E0 BRF / pi).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

from models.bands import Band
from models.training.simulate.optics import CloudOptics
from models.training.simulate.rt import Layer, eddington
from models.training.simulate.simulator import AtmosphereState, Simulator, mix_cloud_cover

C1 = 1.191042e-5  # mW m-2 sr-1 (cm-1)-4, 2 h c^2
C2 = 1.4387752  # cm K, h c / k
SUN_TEMPERATURE = 5778.0  # K
SUN_SOLID_ANGLE_FACTOR = (6.957e5 / 1.496e8) ** 2  # (solar radius / 1 AU)^2
LAPSE_EXPONENT = 287.05 * 0.0065 / 9.80665  # R Gamma / g for 6.5 K/km
DIFFUSIVITY = 1.66
SUBLAYERS = 8
NOISE_K = 0.15  # noise-equivalent temperature difference, 1 sigma
STANDARD_PRESSURE_HPA = 1013.25


@dataclass(frozen=True)
class ThermalBand:
    """Planck constants (L1b convention) and the gas band model of one thermal band."""

    name: str
    central_um: float
    fk1: float
    fk2: float
    bc1: float
    bc2: float
    gas: tuple[float, float, float]  # nadir optical depth a0 + a1 W + a2 W^2
    co2: float = 0.0  # nadir optical depth of a 1013.25 hPa column in a CO2 band's wing (``CO2_C16``)

    def radiance(self, temperature: np.ndarray) -> np.ndarray:
        t = np.maximum(self.bc1 + self.bc2 * np.asarray(temperature, dtype=np.float64), 1.0)
        return self.fk1 / np.expm1(self.fk2 / t)

    def brightness_temperature(self, radiance: np.ndarray) -> np.ndarray:
        r = np.maximum(np.asarray(radiance, dtype=np.float64), 1e-12)
        return (self.fk2 / np.log1p(self.fk1 / r) - self.bc1) / self.bc2

    def solar_irradiance(self) -> float:
        """Band solar irradiance (mW m-2 (cm-1)-1) of a 5778 K blackbody sun at 1 AU."""
        nu = 1e4 / self.central_um
        return float(np.pi * C1 * nu**3 / np.expm1(C2 * nu / SUN_TEMPERATURE) * SUN_SOLID_ANGLE_FACTOR)


def _monochromatic(name: str, central_um: float, gas: tuple[float, float, float]) -> ThermalBand:
    nu = 1e4 / central_um
    return ThermalBand(name, central_um, C1 * nu**3, C2 * nu, 0.0, 1.0, gas)


# ABI C16 (13.3 um) lies in the wing of the 15 um CO2 band: a nadir CO2 optical depth of 1.0 for a
# 1013 hPa column, growing as p^2 (``gas_optical_depth``), puts its weighting function's peak near
# the surface, as published for the 13.3 um imager band (CIRA's GOES channel tutorial), and gives
# clear-sky C13 - C16 differences near GOES-17's: in the shared day and night scenes the real
# medians at C13 270-290 K are 16.0-18.9 K, simulated 16.3-18.2 K (0.5: 9-10 K, 1.5: 22-25 K). Hot
# clear land (C13 > 290 K) differs more in the real scenes (22-26 K) than simulated (17-19 K): the
# lapse-rate profile has no deep, superadiabatic daytime boundary layer. Thick clouds at C13
# 220-250 K: real 3.0-9.0 K, simulated 2.2-5.1 K. Water vapour: the 12.3 um band's, a little more
# (the continuum grows towards 13 um).
CO2_C16 = 1.0
# ABI: constants of the GOES-17 L1b files; VIIRS: monochromatic at the band centre
THERMAL_BANDS: dict[str, ThermalBand] = {
    b.name: b
    for b in (
        ThermalBand("C07", 3.89, 203135.0, 3703.5, 0.44554, 0.99938, (0.07, 0.03, 0.0)),
        ThermalBand("C11", 8.44, 19712.5, 1701.89, 0.19396, 0.99946, (0.05, 0.065, 0.013)),
        ThermalBand("C13", 10.33, 10835.6, 1394.12, 0.07786, 0.99974, (0.03, 0.045, 0.010)),
        ThermalBand("C14", 11.19, 8495.35, 1285.52, 0.21781, 0.99922, (0.03, 0.055, 0.013)),
        ThermalBand("C15", 12.27, 6439.94, 1172.14, 0.22019, 0.99914, (0.045, 0.075, 0.016)),
        ThermalBand("C16", 13.27, 5063.58, 1081.86, 0.06224, 0.99974, (0.0, 0.09, 0.02), co2=CO2_C16),
        _monochromatic("M12", 3.70, (0.09, 0.05, 0.0)),
        _monochromatic("M13", 4.05, (0.18, 0.03, 0.0)),
        _monochromatic("M14", 8.55, (0.05, 0.065, 0.013)),
        _monochromatic("M15", 10.763, (0.03, 0.05, 0.0115)),
        _monochromatic("M16", 12.013, (0.04, 0.07, 0.015)),
    )
}
CO2_BANDS = frozenset(name for name, band in THERMAL_BANDS.items() if band.co2 > 0)

# Surface emissivity of each endmember at these wavelengths (um), interpolated to the band centre.
# Rounded from laboratory and field spectra: Salisbury & D'Aria (1992, Remote Sens. Environ. 42, 83;
# 1994, 47, 345) for soils, sands, vegetation and water at 3-5 and 8-14 um; Snyder et al. (1998, Int. J.
# Remote Sens. 19, 2753) for the land classes of the MODIS emissivity algorithm; Masuda et al. (1988,
# Remote Sens. Environ. 24, 313) for sea water near nadir; Dozier & Warren (1982, Water Resour. Res.
# 18, 1424) for snow. Quartz-rich sand has the reststrahlen dip at 8-9.5 um.
EMISSIVITY_WAVELENGTHS_UM = np.array([3.7, 4.05, 8.5, 10.35, 11.2, 12.3])
EMISSIVITY: dict[str, tuple[float, ...]] = {
    "water": (0.975, 0.975, 0.984, 0.991, 0.990, 0.985),
    "green": (0.960, 0.960, 0.975, 0.985, 0.985, 0.985),
    "npv": (0.900, 0.900, 0.930, 0.955, 0.960, 0.960),
    "clay_soil": (0.900, 0.900, 0.920, 0.965, 0.970, 0.975),
    "quartz_sand": (0.780, 0.800, 0.720, 0.920, 0.950, 0.965),
    "built": (0.900, 0.900, 0.920, 0.950, 0.955, 0.960),
    "char": (0.950, 0.950, 0.960, 0.970, 0.975, 0.975),
    # playa clay and salt crusts: clay-like with a weaker 8.5 um dip than quartz sand (ASTER GED
    # over Great Basin playas, Hulley & Hook 2011, Remote Sens. Environ. 115, 3351; approximate)
    "crust": (0.880, 0.880, 0.930, 0.960, 0.965, 0.970),
    "snow": (0.975, 0.970, 0.985, 0.990, 0.990, 0.975),
}
# the family spectra of the legacy (synthetic scene) surfaces, as endmember mixtures
CLASS_EMISSIVITY: dict[int, dict[str, float]] = {
    **{c: {"green": 1.0} for c in (1, 2, 3, 4, 5, 8, 11, 12, 14)},
    **{c: {"green": 0.5, "npv": 0.3, "clay_soil": 0.2} for c in (6, 9, 10)},
    7: {"npv": 0.4, "clay_soil": 0.3, "quartz_sand": 0.3},
    13: {"built": 1.0},
    16: {"clay_soil": 0.4, "quartz_sand": 0.6},
    17: {"water": 1.0},
    18: {"green": 0.5, "npv": 0.5},
    **{c: {"snow": 1.0} for c in (15, 19, 20)},
}
POOL_EMISSIVITY = ("green", "npv", None, "built", "char", "crust")  # soil (None) mixes clay and quartz sand


def _emissivity_at(name: str, wavelengths_um: np.ndarray) -> np.ndarray:
    return np.interp(wavelengths_um, EMISSIVITY_WAVELENGTHS_UM, np.asarray(EMISSIVITY[name]))


def surface_emissivity(
    surface_class: np.ndarray,
    wavelengths_um: np.ndarray,
    land_fractions: np.ndarray | None,
    soil_quartz: np.ndarray | None,
) -> np.ndarray:
    """(N, B) emissivity: cover-fraction mixtures on land where fractions are given, class tables elsewhere."""
    classes = np.asarray(surface_class, dtype=np.int64)
    wl = np.asarray(wavelengths_um, dtype=np.float64)
    table = np.zeros((21, len(wl)))
    for surface, mix in CLASS_EMISSIVITY.items():
        table[surface] = sum(w * _emissivity_at(name, wl) for name, w in mix.items())
    out = table[classes]
    if land_fractions is None:
        return out
    quartz = np.zeros(len(classes)) if soil_quartz is None else np.asarray(soil_quartz)
    soil = (1 - quartz)[:, None] * _emissivity_at("clay_soil", wl) + quartz[:, None] * _emissivity_at("quartz_sand", wl)
    mixed = sum(
        land_fractions[:, k : k + 1] * (soil if name is None else _emissivity_at(name, wl))
        for k, name in enumerate(POOL_EMISSIVITY)
    )
    is_mixed = land_fractions.sum(axis=1) > 0.5
    return np.where(is_mixed[:, None], mixed, out)


def temperature_at(
    pressure: np.ndarray, surface_pressure: np.ndarray, air_temperature: np.ndarray, tropopause: np.ndarray
) -> np.ndarray:
    """Temperature (K) of the lapse-rate profile at ``pressure`` (hPa)."""
    ratio = np.clip(pressure / surface_pressure, 1e-4, 1.0)
    return np.maximum(air_temperature * ratio**LAPSE_EXPONENT, tropopause)


@dataclass
class GasBlock:
    """A cloud-free slab between two pressures: its transmittances and its own emission."""

    transmittance: np.ndarray  # along the view, (N, B)
    transmittance_diffuse: np.ndarray  # diffusivity approximation, (N, B)
    upward: np.ndarray  # emitted radiance leaving the top towards the sensor, (N, B)
    downward: np.ndarray  # emitted diffuse radiance leaving the bottom, (N, B)


def gas_optical_depth(
    band_gas: np.ndarray, w: np.ndarray, p_upper: np.ndarray, p_lower: np.ndarray, ps: np.ndarray
) -> np.ndarray:
    """Nadir gas optical depth (N, B) of the slab between two pressures (band_gas: (B, 4), the
    band model's a0, a1, a2 and CO2 coefficients)."""
    x0, x1 = np.clip(p_upper / ps, 0, 1), np.clip(p_lower / ps, 0, 1)
    # CO2 is mixed and its lines pressure-broadened, so its optical depth grows as p^2 in absolute
    # pressure: a column over high ground holds less of it
    y0, y1 = np.minimum(p_upper, ps) / STANDARD_PRESSURE_HPA, np.minimum(p_lower, ps) / STANDARD_PRESSURE_HPA
    return (
        band_gas[None, :, 0] * (x1 - x0)
        + band_gas[None, :, 1] * w * (x1**4 - x0**4)
        + band_gas[None, :, 2] * w**2 * (x1**7 - x0**7)
        + band_gas[None, :, 3] * (y1**2 - y0**2)
    )


def gas_block(
    bands: Sequence[ThermalBand],
    band_gas: np.ndarray,
    p_upper: np.ndarray,
    p_lower: np.ndarray,
    state_columns: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    mu: np.ndarray,
) -> GasBlock:
    """Emission and transmission of the gas between ``p_upper`` and ``p_lower`` (each (N, 1))."""
    ps, w, t_air, t_trop = state_columns
    n = len(ps)
    trans = np.ones((n, len(bands)))
    trans_d = np.ones((n, len(bands)))
    up = np.zeros((n, len(bands)))
    layers = []
    for j in range(SUBLAYERS):
        top = p_upper + (p_lower - p_upper) * j / SUBLAYERS
        bottom = p_upper + (p_lower - p_upper) * (j + 1) / SUBLAYERS
        tau = gas_optical_depth(band_gas, w, top, bottom, ps)
        temperature = temperature_at(0.5 * (top + bottom), ps, t_air, t_trop)
        planck = np.stack([b.radiance(temperature[:, 0]) for b in bands], axis=1)
        layers.append((tau, planck))
    for tau, planck in layers:  # top to bottom: what each sublayer emits upwards, seen through those above
        up += trans * planck * (1 - np.exp(-tau / mu))
        trans = trans * np.exp(-tau / mu)
    down = np.zeros((n, len(bands)))
    for tau, planck in layers:  # downwards: the sublayers above attenuate what each emits
        down = down * np.exp(-DIFFUSIVITY * tau) + planck * (1 - np.exp(-DIFFUSIVITY * tau))
        trans_d = trans_d * np.exp(-DIFFUSIVITY * tau)
    return GasBlock(trans, trans_d, up, down)


class ThermalSimulator:
    """Brightness temperatures (K) of thermal bands for ``AtmosphereState`` samples."""

    def __init__(self, bands: Sequence[Band | str]) -> None:
        names = [b if isinstance(b, str) else b.name for b in bands]
        unknown = [n for n in names if n not in THERMAL_BANDS]
        if unknown:
            raise ValueError(f"no thermal model for band(s) {', '.join(unknown)}")
        self.bands = tuple(THERMAL_BANDS[n] for n in names)
        self.wavelengths = np.array([b.central_um for b in self.bands])
        self.gas = np.array([(*b.gas, b.co2) for b in self.bands])
        self.clouds = CloudOptics(self.wavelengths)
        self.solar_index = [i for i, b in enumerate(self.bands) if b.central_um < 5.0]
        # the bands whose cloud absorption sets the emitting level: not the CO2 band, so that adding it
        # changed no other band; C16 simulated alone sets its own
        windows = np.array([b.name not in CO2_BANDS for b in self.bands])
        self.level_bands = windows if windows.any() else ~windows

    def brightness_temperature(self, state: AtmosphereState) -> np.ndarray:
        """BT (N, B) float64 (noise-free)."""
        return np.stack([self.bands[k].brightness_temperature(r) for k, r in enumerate(self.radiance(state).T)], axis=1)

    def radiance(self, state: AtmosphereState) -> np.ndarray:
        """(N, B) TOA radiance; a partly covered pixel mixes its overcast and clear-sky radiance."""
        return mix_cloud_cover(state, self._overcast_radiance)

    def _overcast_radiance(self, state: AtmosphereState) -> np.ndarray:
        skin, offset, tropopause = state.skin_temperature, state.air_temperature_offset, state.tropopause_temperature
        if skin is None or offset is None or tropopause is None:
            raise ValueError("the thermal simulator needs skin, air-offset and tropopause temperatures")
        mu = np.cos(np.deg2rad(state.viewing_zenith))[:, None]
        ps = state.surface_pressure[:, None]
        columns = (
            ps,
            state.h2o[:, None],
            (skin - offset)[:, None],
            tropopause[:, None],
        )
        cloudy = state.cloudy[:, None]
        p_top = np.where(cloudy, np.minimum(state.cloud_top_pressure[:, None], ps - 20), ps)
        p_base = np.where(cloudy, np.clip(state.cloud_base_pressure[:, None], p_top + 5, ps - 10), ps)
        zero = np.zeros_like(ps)
        above = gas_block(self.bands, self.gas, zero, p_top, columns, mu)
        below = gas_block(self.bands, self.gas, p_base, ps, columns, mu)

        # the cloud layer, its gas included as absorption
        tau_c, ssa_c, g_c, t_cloud = self._cloud(state, p_top, p_base, ps, columns)
        gas_in_cloud = gas_optical_depth(self.gas, columns[1], p_top, p_base, ps)
        layer = Layer(tau_c, ssa_c, g_c, np.zeros_like(tau_c), gas_in_cloud)
        r_c, t_c, _ = eddington(layer.tau_scaled, layer.ssa_scaled, layer.g_scaled, mu)
        r_d, t_d, _ = eddington(layer.tau_scaled, layer.ssa_scaled, layer.g_scaled, 1 / DIFFUSIVITY)
        planck_cloud = np.stack([b.radiance(t_cloud) for b in self.bands], axis=1)

        emissivity = surface_emissivity(state.surface_class, self.wavelengths, state.land_fractions, state.soil_quartz)
        planck_surface = np.stack([b.radiance(skin) for b in self.bands], axis=1)
        sky_at_cloud_top = above.downward
        # downwelling under the cloud: its own emission and the sky it lets through (the surface's
        # radiance reflected back down by the cloud base is left out: second order)
        sky_at_base = (1 - r_d - t_d) * planck_cloud + t_d * sky_at_cloud_top
        sky_at_surface = below.downward + below.transmittance_diffuse * sky_at_base
        leaving_surface = emissivity * planck_surface + (1 - emissivity) * sky_at_surface
        at_base = below.upward + below.transmittance * leaving_surface
        at_top = t_c * at_base + (1 - r_c - t_c) * planck_cloud + r_c * sky_at_cloud_top
        radiance = above.upward + above.transmittance * at_top
        return radiance + self._solar(state, emissivity)

    def _cloud(
        self,
        state: AtmosphereState,
        p_top: np.ndarray,
        p_base: np.ndarray,
        ps: np.ndarray,
        columns: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        radius = state.effective_radius[:, None]
        ratio_l, ssa_l, g_l = self.clouds.properties("liquid", np.clip(radius, 3, 30))
        ratio_i, ssa_i, g_i = self.clouds.properties("ice", np.clip(radius, 5, 80))
        ice = state.ice[:, None]
        cot = np.where(state.cloudy, 10.0 ** np.nan_to_num(state.log10_cot, nan=-9.0), 0.0)[:, None]
        tau = cot * np.where(ice, ratio_i, ratio_l)
        ssa = np.where(ice, ssa_i, ssa_l)
        g = np.where(ice, g_i, g_l)
        # emitting level: one absorption optical depth below the top (in the most absorbing of
        # ``level_bands``), at most mid-cloud
        absorption = np.max((tau * (1 - ssa))[:, self.level_bands], axis=1, keepdims=True)
        depth = np.minimum(0.5, 1.0 / np.maximum(absorption, 1e-6))
        level = p_top + (p_base - p_top) * depth
        t_cloud = temperature_at(level, ps, columns[2], columns[3])[:, 0]
        return tau, ssa, g, t_cloud

    def _solar(self, state: AtmosphereState, emissivity: np.ndarray) -> np.ndarray:
        """Reflected sunlight in the 3.7-4.05 um bands (zero at night)."""
        out = np.zeros((len(state), len(self.bands)))
        day = state.solar_zenith < 89.0
        if not self.solar_index or not day.any():
            return out
        solar_bands = tuple(_solar_band(self.bands[i].name) for i in self.solar_index)
        sunlit = state.take(np.flatnonzero(day))
        albedo = 1 - emissivity[day][:, self.solar_index]
        brf = _solar_simulator(solar_bands).reflectance(sunlit, albedo)
        mu0 = np.cos(np.deg2rad(sunlit.solar_zenith))[:, None]
        irradiance = np.array([self.bands[i].solar_irradiance() for i in self.solar_index])
        out[np.ix_(np.flatnonzero(day), np.asarray(self.solar_index))] = mu0 * irradiance[None, :] * brf / np.pi
        return out


def _solar_band(name: str) -> Band:
    from models.bands import SENSORS

    for table in SENSORS.values():
        for band in table.thermal_bands:
            if band.name == name:
                return band
    raise KeyError(name)


@cache
def _solar_simulator(bands: tuple[Band, ...]) -> Simulator:
    return Simulator(bands)


def add_bt_noise(brightness_temperature: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return (brightness_temperature + rng.normal(0.0, NOISE_K, brightness_temperature.shape)).astype(np.float32)
