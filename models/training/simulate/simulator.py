"""Top-of-atmosphere BRF of any band set for per-sample atmosphere, cloud, surface and geometry.

``Simulator(bands).reflectance(state)`` is the one entry point; the training-data writer and the
synthetic-granule renderer both call it. Each sample is three layers over a Lambertian surface
(``rt.toa_brf``): above the cloud, the cloud, below the cloud, split at the cloud-top and
cloud-base pressures. Rayleigh and mixed gases are shared by pressure fraction, water vapour as
(p / p_surface)^4 (specific humidity ~ p^3), ozone sits above the cloud. Clear samples put the
whole atmosphere into one block, where the single-stack solution is most accurate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace

import numpy as np

from models.bands import Band
from models.training.simulate.aerosol import aerosol_optics, mix_particles
from models.training.simulate.correction import shipped_correction
from models.training.simulate.optics import CloudOptics, GasTables, rayleigh_optical_depth
from models.training.simulate.rt import Layer, toa_brf
from models.training.simulate.surface import (
    MIXED_CLASSES,
    WATER_CLASS,
    cox_munk_glint,
    mixture_albedo,
    ross_li_shape,
    surface_albedo,
)

logger = logging.getLogger(__name__)

# The physics training files and synthetic scenes are made with: the shipped models' world. 2.2: night
# water vapour above surface inversions, and as an erroneous input. 2.3: the 1.38 um water band from
# LOWTRAN7 (``water_band``), lofted and stratospheric aerosol. 2.4: 2.3 with mid-level clouds (liquid
# tops up to 440 hPa, ice tops down to 680 hPa, spread over what the phase and the ground allow) and
# heavy aerosol as often as observed. 2.5 (the ABI day infrared models' world since model version
# 2.6.0): 2.4 with broken clouds, a quarter of the cloudy pixels only partly covered. 2.6: 2.5 with
# each thermal sensor's window contrast (``models.context``, drawn by ``simulate.context``); every
# earlier draw of a seed is kept. 2.7: 2.6 with ABI's 13.3 um CO2 band C16 (``thermal.CO2_C16``), its
# noise drawn apart so that every other number of a seed is 2.6's. Earlier versions stay selectable
# to reproduce earlier files.
SIMULATOR_VERSION = "2.7"
PHYSICS_VERSIONS = ("2.2", "2.3", "2.4", "2.5", "2.6", "2.7")
ELEVATED_AEROSOL_DEPTH_HPA = 150.0
# background stratospheric sulfate (e.g. Kremser et al. 2016, Rev. Geophys. 54, 278): small
# particles, Angstrom exponent ~1.2, asymmetry ~0.65, no absorption
STRATOSPHERIC_ANGSTROM = 1.2
STRATOSPHERIC_ASYMMETRY = 0.65
ELEMENTS_PER_CHUNK = 150_000  # samples x bands per vectorised step: bounds memory, keeps numpy busy


@dataclass
class AtmosphereState:
    """Per-sample inputs, each a 1-D array of the same length (angles in degrees)."""

    solar_zenith: np.ndarray
    viewing_zenith: np.ndarray
    relative_azimuth: np.ndarray  # 0 = backscatter, 180 = forward scatter
    surface_pressure: np.ndarray  # hPa
    h2o: np.ndarray  # cm of precipitable water
    o3: np.ndarray  # Dobson units
    surface_class: np.ndarray  # 1-20 IGBP
    surface_brightness: np.ndarray  # multiplies the class spectrum
    snow_grain: np.ndarray  # optical grain size, um (snow classes only)
    surface_dryness: np.ndarray  # 0 green to 1 dry (open vegetated classes only)
    cloudy: np.ndarray  # bool
    ice: np.ndarray  # bool (cloudy only)
    log10_cot: np.ndarray  # at 0.55 um (cloudy only)
    effective_radius: np.ndarray  # um
    cloud_top_pressure: np.ndarray  # hPa
    cloud_base_pressure: np.ndarray  # hPa
    # the training world's surface and aerosol; None keeps the legacy family spectra, a Lambertian
    # surface and an aerosol-free sky (the synthetic demonstration scenes)
    land_fractions: np.ndarray | None = None  # (N, 6) cover of green, npv, soil, built, char, crust
    land_members: np.ndarray | None = None  # (N, 6) endmember index within each pool
    brdf_volumetric: np.ndarray | None = None  # Ross-Thick weight / isotropic weight (land)
    brdf_geometric: np.ndarray | None = None  # Li-Sparse weight / isotropic weight (land)
    wind_speed: np.ndarray | None = None  # m/s, sun glint on water
    aerosol_aod: np.ndarray | None = None  # at 0.55 um
    aerosol_type: np.ndarray | None = None  # index into aerosol.AEROSOL_TYPES
    # top (hPa) of a lofted aerosol layer ELEVATED_AEROSOL_DEPTH_HPA deep, above most of the water
    # vapour, of clear skies; NaN or None: the aerosol is mixed through the column with the water
    aerosol_layer_top: np.ndarray | None = None
    stratospheric_aod: np.ndarray | None = None  # at 0.55 um: sulfate above everything (clear or cloudy)
    # the thermal infrared (``thermal.ThermalSimulator``)
    skin_temperature: np.ndarray | None = None  # K
    air_temperature_offset: np.ndarray | None = None  # skin minus near-surface air temperature, K
    tropopause_temperature: np.ndarray | None = None  # K
    soil_quartz: np.ndarray | None = None  # 0 clay/loam to 1 quartz sand: soil emissivity at 8.5 um
    # share of the pixel the cloud covers (cloudy samples; 1 overcast); None: every cloud is overcast
    cloud_cover: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.solar_zenith)

    def albedo(self, wavelengths_um: np.ndarray) -> np.ndarray:
        """(N, B) surface albedo (diffuse illumination) of every sample at the band wavelengths."""
        albedo = surface_albedo(
            self.surface_class,
            wavelengths_um,
            np.cos(np.deg2rad(self.solar_zenith))[:, None],
            self.surface_brightness[:, None],
            self.snow_grain[:, None],
            self.surface_dryness[:, None],
        )
        if self.land_fractions is None or self.land_members is None:
            return albedo
        mixed = mixture_albedo(self.surface_class, wavelengths_um, self.land_fractions, self.land_members)
        is_mixed = np.isin(self.surface_class, MIXED_CLASSES)[:, None]
        return np.where(is_mixed, np.clip(mixed * self.surface_brightness[:, None], 0.0, 0.98), albedo)

    def direct_excess(self, albedo: np.ndarray) -> np.ndarray | None:
        """(N, B) what the surface adds to its albedo for the direct sun-to-sensor beam.

        Sun glint on water and the Ross-Li BRDF shape on land; None for a Lambertian world.
        """
        excess = np.zeros_like(albedo)
        geometry = (self.solar_zenith, self.viewing_zenith, self.relative_azimuth)
        if self.wind_speed is not None:
            glint = cox_munk_glint(*geometry, self.wind_speed)[:, None]
            excess += np.where((self.surface_class == WATER_CLASS)[:, None], glint, 0.0)
        if self.brdf_volumetric is not None and self.brdf_geometric is not None:
            shape = ross_li_shape(*geometry, self.brdf_volumetric, self.brdf_geometric)[:, None]
            land = np.isin(self.surface_class, MIXED_CLASSES)[:, None]
            excess += np.where(land, np.minimum(albedo * shape, 0.98) - albedo, 0.0)
        return excess if (self.wind_speed is not None or self.brdf_volumetric is not None) else None

    def take(self, index: slice | np.ndarray) -> AtmosphereState:
        parts = {f.name: getattr(self, f.name) for f in fields(self)}
        return AtmosphereState(**{k: None if v is None else v[index] for k, v in parts.items()})  # type: ignore[arg-type]

    @staticmethod
    def concatenate(states: Sequence[AtmosphereState]) -> AtmosphereState:
        def joined(name: str) -> np.ndarray | None:
            parts = [getattr(s, name) for s in states]
            return None if any(p is None for p in parts) else np.concatenate(parts)

        return AtmosphereState(**{f.name: joined(f.name) for f in fields(states[0])})  # type: ignore[arg-type]


def mix_cloud_cover(state: AtmosphereState, signal: Callable[[AtmosphereState], np.ndarray]) -> np.ndarray:
    """(N, B) ``signal`` of each sample; where the cloud covers only part of the pixel, the cover-weighted
    mean of the overcast and the clear-sky signal.

    The independent pixel approximation: reflectance and radiance add linearly over the pixel's
    parts, each part computed as if it were horizontally infinite. ``signal`` sees overcast or
    clear states only (``cloud_cover`` None).
    """
    whole = replace(state, cloud_cover=None)
    out = signal(whole)
    if state.cloud_cover is None:
        return out
    partial = np.flatnonzero(state.cloudy & (state.cloud_cover < 1.0))
    if partial.size:
        part = whole.take(partial)
        clear_sky = signal(replace(part, cloudy=np.zeros(partial.size, dtype=bool)))
        cover = state.cloud_cover[partial, None]
        out[partial] = cover * out[partial] + (1 - cover) * clear_sky
    return out


def check_physics(physics: str) -> None:
    if physics not in PHYSICS_VERSIONS:
        raise ValueError(f"unknown simulator physics {physics!r}: one of {', '.join(PHYSICS_VERSIONS)}")


def _at_least(physics: str, version: str) -> bool:
    check_physics(physics)
    return PHYSICS_VERSIONS.index(physics) >= PHYSICS_VERSIONS.index(version)


def sees_above_the_water(physics: str) -> bool:
    """Whether ``physics`` has the LOWTRAN7 1.38 um band and the aerosol above the water vapour (2.3 on)."""
    return _at_least(physics, "2.3")


def has_mid_level_clouds(physics: str) -> bool:
    """Whether ``physics`` draws cloud tops across the middle troposphere, 440-680 hPa (2.4 on)."""
    return _at_least(physics, "2.4")


def has_climatological_aerosol(physics: str) -> bool:
    """Whether ``physics`` draws heavy smoke and dust as often as observed, 10 % of samples (2.4 on)."""
    return _at_least(physics, "2.4")


def has_broken_clouds(physics: str) -> bool:
    """Whether ``physics`` draws clouds that cover only part of a pixel (2.5 on)."""
    return _at_least(physics, "2.5")


def has_co2_band(physics: str) -> bool:
    """Whether ``physics`` simulates ABI's 13.3 um CO2 band C16 (2.7 on)."""
    return _at_least(physics, "2.7")


def has_window_contrast(physics: str) -> bool:
    """Whether ``physics`` writes each thermal sensor's window contrast for the models to read (2.6 on)."""
    return _at_least(physics, "2.6")


class Simulator:
    """The fast RT model bound to one band set (gas and cloud tables prepared once)."""

    def __init__(self, bands: Sequence[Band], correction: bool = True, physics: str = SIMULATOR_VERSION) -> None:
        self.bands = tuple(bands)
        self.wavelengths = np.array([b.central_um for b in self.bands])
        self.gases = GasTables(self.bands, cirrus_band_lowtran7=sees_above_the_water(physics))
        self.clouds = CloudOptics(self.wavelengths)
        self.correction = shipped_correction() if correction else None

    def reflectance(self, state: AtmosphereState, albedo: np.ndarray | None = None) -> np.ndarray:
        """TOA BRF (N, B) float32; ``albedo`` (N, B) replaces the surface's (thermal bands: 1 - emissivity,
        of overcast or clear states: partial cloud cover is the caller's to mix)."""
        if state.cloud_cover is not None:
            if albedo is not None:
                raise ValueError("an albedo override needs overcast or clear states; mix broken clouds after")
            return mix_cloud_cover(state, self.reflectance)
        n, b = len(state), len(self.bands)
        out = np.empty((n, b), dtype=np.float32)
        step = max(64, ELEMENTS_PER_CHUNK // max(b, 1))
        for start in range(0, n, step):
            part = state.take(slice(start, start + step))
            override = None if albedo is None else albedo[start : start + step]
            out[start : start + step] = self._chunk(part, override)
        if not np.all(np.isfinite(out)):
            raise FloatingPointError("the simulator produced non-finite reflectances")
        return out

    def _cloud_optics(self, state: AtmosphereState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        radius = state.effective_radius[:, None]
        ratio_l, ssa_l, g_l = self.clouds.properties("liquid", np.clip(radius, 3, 30))
        ratio_i, ssa_i, g_i = self.clouds.properties("ice", np.clip(radius, 5, 80))
        ice = state.ice[:, None]
        tau = np.where(state.cloudy[:, None], 10.0 ** state.log10_cot[:, None] * np.where(ice, ratio_i, ratio_l), 0.0)
        return tau, np.where(ice, ssa_i, ssa_l), np.where(ice, g_i, g_l)

    def _chunk(self, state: AtmosphereState, albedo_override: np.ndarray | None = None) -> np.ndarray:
        mu0 = np.cos(np.deg2rad(state.solar_zenith))[:, None]
        mu = np.cos(np.deg2rad(state.viewing_zenith))[:, None]
        cos_phi = -np.cos(np.deg2rad(state.relative_azimuth))[:, None]
        airmass = 1 / mu0 + 1 / mu
        ps = state.surface_pressure[:, None]
        cloudy = state.cloudy[:, None]
        # a clear sky's lofted aerosol takes the cloud's place in the three layers (smoke and dust
        # above the moist boundary layer are what the 1.38 um band sees of clear skies)
        lofted = np.zeros_like(cloudy)
        layer_top: np.ndarray | float = 0.0
        if state.aerosol_layer_top is not None:
            lofted = ~cloudy & np.isfinite(state.aerosol_layer_top)[:, None]
            layer_top = np.nan_to_num(state.aerosol_layer_top, nan=0.0)[:, None]
        p_top = np.where(
            cloudy,
            np.minimum(state.cloud_top_pressure[:, None], ps - 20),
            np.where(lofted, np.minimum(layer_top, ps - ELEVATED_AEROSOL_DEPTH_HPA - 10), 0.0),
        )
        p_base = np.where(
            cloudy,
            np.clip(state.cloud_base_pressure[:, None], p_top + 5, ps - 10),
            np.where(lofted, p_top + ELEVATED_AEROSOL_DEPTH_HPA, ps),
        )
        fraction_above, fraction_base = p_top / ps, p_base / ps
        fractions = (fraction_above, fraction_base - fraction_above, 1 - fraction_base)
        rayleigh = rayleigh_optical_depth(self.wavelengths[None, :], ps)
        w = state.h2o[:, None]
        h2o = (w * fraction_above**4, w * (fraction_base**4 - fraction_above**4), w * (1 - fraction_base**4))
        o3 = state.o3[:, None] / 1000.0  # atm-cm
        layered = cloudy | lofted  # ozone is stratospheric: above a cloud or a lofted aerosol layer
        o3_split = (np.where(layered, o3, 0.0), np.where(layered, 0.0, o3), np.zeros_like(o3))
        absorption = [
            self.gases.optical_depth("h2o", h2o[k], airmass)
            + self.gases.optical_depth("o3", o3_split[k], airmass)
            + self.gases.optical_depth("mixed", ps * fractions[k] / 1013.0, airmass)
            for k in range(3)
        ]
        tau_c, ssa_c, g_c = self._cloud_optics(state)
        empty = np.zeros_like(tau_c)
        # aerosol sits below the cloud, or in the one block of a clear sky (mixed with all its
        # water, or lofted in its own layer)
        tau_a, ssa_a, g_a = empty, empty + 1.0, empty + 0.85
        if state.aerosol_aod is not None and state.aerosol_type is not None:
            tau_a, ssa_a, g_a = aerosol_optics(state.aerosol_aod, state.aerosol_type, self.wavelengths)
        clear = ~cloudy
        mid_tau, mid_ssa, mid_g = mix_particles(tau_c, ssa_c, g_c, np.where(clear, tau_a, 0.0), ssa_a, g_a)
        tau_s = empty
        if state.stratospheric_aod is not None:  # non-absorbing sulfate, Angstrom exponent 1.2
            tau_s = state.stratospheric_aod[:, None] * (self.wavelengths[None, :] / 0.55) ** -STRATOSPHERIC_ANGSTROM
        above = Layer(tau_s, empty + 1.0, empty + STRATOSPHERIC_ASYMMETRY, fractions[0] * rayleigh, absorption[0])
        cloud = Layer(mid_tau, mid_ssa, mid_g, fractions[1] * rayleigh, absorption[1])
        below = Layer(np.where(clear, 0.0, tau_a), ssa_a, g_a, fractions[2] * rayleigh, absorption[2])
        albedo = state.albedo(self.wavelengths) if albedo_override is None else albedo_override
        excess = state.direct_excess(albedo)
        return toa_brf(mu0, mu, cos_phi, above, cloud, below, albedo, self.correction, excess).astype(np.float32)


class QuickLookRenderer:
    """A closed-form stand-in for ``Simulator`` for benchmark granules only (not physics, not training).

    Cloud reflectance grows as tau / (tau + 7) and drops in the absorbing bands (more for ice),
    over the class spectrum of the surface; about 100 times faster than the RT model, so a
    full-disk scan can be written in a minute to measure the pipeline rather than the simulator.
    """

    def __init__(self, bands: Sequence[Band]) -> None:
        self.bands = tuple(bands)
        self.wavelengths = np.array([b.central_um for b in self.bands])

    def reflectance(self, state: AtmosphereState) -> np.ndarray:
        mu0 = np.cos(np.deg2rad(state.solar_zenith))[:, None]
        tau = np.where(state.cloudy, 10.0 ** np.nan_to_num(state.log10_cot, nan=-9.0), 0.0)[:, None]
        absorbing = np.clip((self.wavelengths - 1.2) / 1.0, 0.0, 1.0)[None, :]
        cloud = tau / (tau + 7.0) * (1 - absorbing * np.where(state.ice, 0.6, 0.3)[:, None])
        surface = state.albedo(self.wavelengths)
        rayleigh = 0.008 * self.wavelengths[None, :] ** -4 * 0.05 / mu0
        return (rayleigh + cloud + (1 - cloud) ** 2 * surface).astype(np.float32)
