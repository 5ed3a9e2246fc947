"""Spectral surface albedo of the 20 IGBP (CERES-modified) classes, and the land BRDF shape.

**Training world (measured spectra).** A land pixel is a linear mixture of measured endmembers
(``surface_library``: green canopy, non-photosynthetic vegetation, soil, built, char) with cover
fractions drawn per pixel around a class mean (``LAND_MIXTURES``): a grassland can be anything from
green sward to dry grass over bright soil. Wetlands add open water.

**Family spectra (synthetic scenes, legacy).** Without mixture fractions, non-snow classes mix
tabulated family spectra (``data/surface_albedo.csv``) and are scaled by a
per-pixel brightness factor. In the open vegetated classes (shrublands, savannas, grasslands,
croplands) the green-vegetation share browns towards bare soil with a per-pixel ``dryness``: a dry
season turns a Californian grassland into something close to the desert spectrum.

Snow and ice use the asymptotic formula of Kokhanovsky & Zege (2004,
Appl. Opt. 43, 1589): spherical albedo r_s = exp(-3.62 sqrt(alpha d)), alpha = 4 pi k_ice / lambda
with the Warren (1984) ice index, and plane albedo r_s ** (3/7 (1 + 2 mu0)). That reproduces
snow's signature: bright in the visible, dark at 1.6 and 2.1 um, a local peak at 2.25 um.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from models.training.simulate.optics import read_table

# class -> weights of the tabulated family spectra; snow classes are handled by the formula
CLASS_MIX: dict[int, dict[str, float]] = {
    1: {"forest": 1.0},  # evergreen needleleaf forest
    2: {"forest": 1.0},  # evergreen broadleaf forest
    3: {"forest": 1.0},  # deciduous needleleaf forest
    4: {"forest": 1.0},  # deciduous broadleaf forest
    5: {"forest": 1.0},  # mixed forest
    6: {"vegetation": 0.7, "desert": 0.3},  # closed shrublands
    7: {"vegetation": 0.4, "desert": 0.6},  # open shrublands
    8: {"forest": 0.6, "vegetation": 0.4},  # woody savannas
    9: {"vegetation": 0.8, "desert": 0.2},  # savannas
    10: {"vegetation": 1.0},  # grasslands
    11: {"vegetation": 0.7, "water": 0.3},  # permanent wetlands
    12: {"vegetation": 1.0},  # croplands
    13: {"urban": 1.0},  # urban
    14: {"vegetation": 0.9, "forest": 0.1},  # cropland / natural mosaic
    16: {"desert": 1.0},  # barren / desert
    17: {"water": 1.0},  # water
    18: {"tundra": 1.0},  # tundra
}
SNOW_CLASSES = (15, 19, 20)  # snow/ice, fresh snow, sea ice
DRYING_CLASSES = (6, 7, 9, 10, 12, 14)  # whose green vegetation dries towards soil
SEA_ICE_DARKENING = 0.8  # sea ice: snow-like shape, visible 0.6-0.85 (rt-simulator-notes section 6)
WATER_CLASS, WETLAND_CLASS = 17, 11
WETLAND_WATER_SHARE = 0.3

# class -> mean cover fraction of (green, npv, soil, built, char, crust); the per-pixel fractions are
# Dirichlet draws around it (``models.training.simulate.dataset``). Forests are mostly canopy with
# litter; open shrublands, savannas and grasslands are mixtures where dry vegetation and soil often
# dominate (Guerschman et al. 2009, Remote Sens. Environ. 113, 928, fractional cover of Australian
# savannas; Okin 2007 for arid shrublands); barren land is soil, sand and the salt and clay crusts
# of playas and pans, with a little sparse vegetation.
LAND_MIXTURES: dict[int, tuple[float, float, float, float, float, float]] = {
    1: (0.80, 0.12, 0.08, 0.0, 0.0, 0.0),
    2: (0.85, 0.10, 0.05, 0.0, 0.0, 0.0),
    3: (0.75, 0.15, 0.10, 0.0, 0.0, 0.0),
    4: (0.75, 0.15, 0.10, 0.0, 0.0, 0.0),
    5: (0.78, 0.13, 0.09, 0.0, 0.0, 0.0),
    6: (0.45, 0.25, 0.30, 0.0, 0.0, 0.0),
    7: (0.15, 0.30, 0.50, 0.0, 0.0, 0.05),
    8: (0.55, 0.25, 0.20, 0.0, 0.0, 0.0),
    9: (0.35, 0.35, 0.30, 0.0, 0.0, 0.0),
    10: (0.35, 0.40, 0.25, 0.0, 0.0, 0.0),
    11: (0.70, 0.20, 0.10, 0.0, 0.0, 0.0),
    12: (0.45, 0.20, 0.35, 0.0, 0.0, 0.0),
    13: (0.20, 0.05, 0.15, 0.60, 0.0, 0.0),
    14: (0.50, 0.25, 0.25, 0.0, 0.0, 0.0),
    16: (0.04, 0.12, 0.54, 0.0, 0.0, 0.30),
    18: (0.35, 0.35, 0.30, 0.0, 0.0, 0.0),
}
MIXED_CLASSES = tuple(LAND_MIXTURES)

WATER_INDEX = 1.334  # real refractive index of sea water in the visible and near-IR (Hale & Querry 1973)

# Ross-Thick / Li-Sparse-Reciprocal kernel integrals over the hemisphere (white-sky albedo of each
# kernel; Lucht et al. 2000, IEEE TGRS 38, 977, table 1)
ROSS_THICK_WHITE_SKY = 0.189184
LI_SPARSE_WHITE_SKY = -1.377622


@cache
def _families() -> dict[str, np.ndarray]:
    return read_table("surface_albedo.csv")


@cache
def _ice_absorption() -> tuple[np.ndarray, np.ndarray]:
    table = read_table("refractive_index_ice.csv")
    return table["wavelength_um"], table["k"]


def family_spectra(wavelengths_um: np.ndarray) -> np.ndarray:
    """(20, B) albedo of each class at the band wavelengths (zeros for the snow classes)."""
    table = _families()
    out = np.zeros((20, len(wavelengths_um)))
    for surface_class, mix in CLASS_MIX.items():
        out[surface_class - 1] = sum(
            w * np.interp(wavelengths_um, table["wavelength_um"], table[family]) for family, w in mix.items()
        )
    return out


def snow_albedo(wavelengths_um: np.ndarray, grain_um: np.ndarray, mu0: np.ndarray) -> np.ndarray:
    """Plane albedo of clean snow of optical grain size ``grain_um`` at solar cosine ``mu0``."""
    wl_table, k_table = _ice_absorption()
    k = np.exp(np.interp(np.log(wavelengths_um), np.log(wl_table), np.log(k_table)))
    alpha = 4 * np.pi * k / (wavelengths_um * 1e-6)  # 1/m
    spherical = np.exp(-3.62 * np.sqrt(alpha * grain_um * 1e-6))
    return spherical ** (3.0 / 7.0 * (1 + 2 * mu0))


@cache
def _drying_shift(wavelengths: tuple[float, ...]) -> np.ndarray:
    """(20, B): how each class spectrum moves when its green vegetation is fully dry."""
    table = _families()
    wl = np.asarray(wavelengths)
    soil_minus_green = np.interp(wl, table["wavelength_um"], table["desert"]) - np.interp(
        wl, table["wavelength_um"], table["vegetation"]
    )
    shift = np.zeros((20, len(wl)))
    for surface_class in DRYING_CLASSES:
        shift[surface_class - 1] = CLASS_MIX[surface_class].get("vegetation", 0.0) * soil_minus_green
    return shift


def surface_albedo(
    surface_class: np.ndarray,
    wavelengths_um: np.ndarray,
    mu0: np.ndarray,
    brightness: np.ndarray,
    grain_um: np.ndarray,
    dryness: np.ndarray | None = None,
) -> np.ndarray:
    """(N, B) albedo: family spectra x brightness, or snow of the given grain size x brightness.

    ``surface_class`` (N,), ``mu0``, ``brightness``, ``grain_um`` and ``dryness`` (0 green to 1 dry)
    (N, 1).
    """
    classes = np.asarray(surface_class).astype(np.int64)
    if classes.min() < 1 or classes.max() > 20:
        raise ValueError("surface classes must be 1-20 (IGBP)")
    wl = np.asarray(wavelengths_um, dtype=np.float64)
    spectra = family_spectra(wl)[classes - 1]
    if dryness is not None:
        spectra = spectra + _drying_shift(tuple(wl.tolist()))[classes - 1] * np.clip(dryness, 0.0, 1.0)
    base = spectra * brightness
    snow = snow_albedo(np.asarray(wavelengths_um)[None, :], grain_um, mu0) * brightness
    snow = np.where((classes == 20)[:, None], snow * SEA_ICE_DARKENING, snow)
    albedo = np.where(np.isin(classes, SNOW_CLASSES)[:, None], snow, base)
    return np.clip(albedo, 0.0, 0.98)


@cache
def _pools_at(wavelengths: tuple[float, ...]) -> dict[str, np.ndarray]:
    from models.training.simulate.surface_library import shipped_library

    return shipped_library().at(np.asarray(wavelengths))


def mixture_albedo(
    surface_class: np.ndarray, wavelengths_um: np.ndarray, fractions: np.ndarray, members: np.ndarray
) -> np.ndarray:
    """(N, B) albedo of land pixels mixed from measured endmembers.

    ``fractions`` (N, 6) cover of green, npv, soil, built, char, crust (summing to 1) and ``members``
    (N, 6) the index of each pixel's endmember within its pool; wetlands add open water.
    """
    from models.training.simulate.surface_library import POOLS

    pools = _pools_at(tuple(np.asarray(wavelengths_um, dtype=np.float64).tolist()))
    albedo = np.zeros((len(fractions), len(wavelengths_um)))
    for k, pool in enumerate(POOLS):
        spectra = pools[pool]
        albedo += fractions[:, k : k + 1] * spectra[members[:, k] % len(spectra)]
    water = family_spectra(np.asarray(wavelengths_um, dtype=np.float64))[WATER_CLASS - 1]
    wetland = (np.asarray(surface_class) == WETLAND_CLASS)[:, None]
    return np.where(wetland, (1 - WETLAND_WATER_SHARE) * albedo + WETLAND_WATER_SHARE * water, albedo)


def ross_li_kernels(
    solar_zenith: np.ndarray, viewing_zenith: np.ndarray, relative_azimuth: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Ross-Thick and Li-Sparse-R kernels (MODIS BRDF: Wanner et al. 1995, JGR 100, 21077; h/b 2, b/r 1).

    Relative azimuth 0 is backscatter, where the hot spot is.
    """
    ts, tv = np.deg2rad(solar_zenith), np.deg2rad(viewing_zenith)
    phi = np.deg2rad(relative_azimuth)
    cos_xi = np.clip(np.cos(ts) * np.cos(tv) + np.sin(ts) * np.sin(tv) * np.cos(phi), -1.0, 1.0)
    xi = np.arccos(cos_xi)
    k_vol = ((np.pi / 2 - xi) * cos_xi + np.sin(xi)) / (np.cos(ts) + np.cos(tv)) - np.pi / 4
    sec_s, sec_v = 1 / np.cos(ts), 1 / np.cos(tv)
    tan_s, tan_v = np.tan(ts), np.tan(tv)
    d = np.sqrt(np.maximum(tan_s**2 + tan_v**2 - 2 * tan_s * tan_v * np.cos(phi), 0.0))
    cos_t = np.clip(2.0 * np.sqrt(d**2 + (tan_s * tan_v * np.sin(phi)) ** 2) / (sec_s + sec_v), -1.0, 1.0)
    t = np.arccos(cos_t)
    overlap = (t - np.sin(t) * cos_t) * (sec_s + sec_v) / np.pi
    k_geo = overlap - sec_s - sec_v + 0.5 * (1 + cos_xi) * sec_s * sec_v
    return k_vol, k_geo


def ross_li_shape(
    solar_zenith: np.ndarray,
    viewing_zenith: np.ndarray,
    relative_azimuth: np.ndarray,
    volumetric: np.ndarray,
    geometric: np.ndarray,
) -> np.ndarray:
    """Directional reflectance over white-sky albedo of a Ross-Thick/Li-Sparse-R surface.

    ``volumetric`` and ``geometric`` are the kernel weights relative to the isotropic one.
    """
    k_vol, k_geo = ross_li_kernels(solar_zenith, viewing_zenith, relative_azimuth)
    white_sky = 1 + volumetric * ROSS_THICK_WHITE_SKY + geometric * LI_SPARSE_WHITE_SKY
    return np.clip((1 + volumetric * k_vol + geometric * k_geo) / white_sky, 0.2, 3.0)


def glint_angle(solar_zenith: np.ndarray, viewing_zenith: np.ndarray, relative_azimuth: np.ndarray) -> np.ndarray:
    """Angle (degrees) between the view and the specular direction (0 at the centre of the glint)."""
    ts, tv = np.deg2rad(solar_zenith), np.deg2rad(viewing_zenith)
    cos_g = np.cos(ts) * np.cos(tv) - np.sin(ts) * np.sin(tv) * np.cos(np.deg2rad(relative_azimuth))
    return np.degrees(np.arccos(np.clip(cos_g, -1.0, 1.0)))


def fresnel_reflectance(cos_incidence: np.ndarray, index: float = WATER_INDEX) -> np.ndarray:
    """Unpolarised Fresnel reflectance of an air-water interface."""
    ci = np.clip(cos_incidence, 1e-6, 1.0)
    ct = np.sqrt(np.maximum(1 - (1 - ci**2) / index**2, 0.0))
    r_s = (ci - index * ct) / (ci + index * ct)
    r_p = (index * ci - ct) / (index * ci + ct)
    return 0.5 * (r_s**2 + r_p**2)


def cox_munk_glint(
    solar_zenith: np.ndarray, viewing_zenith: np.ndarray, relative_azimuth: np.ndarray, wind_speed: np.ndarray
) -> np.ndarray:
    """Sun-glint reflectance factor of a wind-roughened sea (Cox & Munk 1954, JOSA 44, 838).

    Isotropic slope distribution of variance 0.003 + 0.00512 W (W in m/s at 12.5 m); the facet
    that reflects the sun into the sensor has tilt beta and incidence omega:
    BRF = pi R(omega) p(beta) / (4 mu0 mu cos^4 beta), with p the Gaussian slope density.
    """
    mu0, mu = np.cos(np.deg2rad(solar_zenith)), np.cos(np.deg2rad(viewing_zenith))
    ts, tv = np.deg2rad(solar_zenith), np.deg2rad(viewing_zenith)
    cos_2w = np.clip(mu0 * mu + np.sin(ts) * np.sin(tv) * np.cos(np.deg2rad(relative_azimuth)), -1.0, 1.0)
    cos_w = np.sqrt((1 + cos_2w) / 2)
    cos_beta = np.clip((mu0 + mu) / np.maximum(2 * cos_w, 1e-9), 1e-6, 1.0)
    variance = 0.003 + 0.00512 * np.maximum(wind_speed, 0.0)
    tan2_beta = (1 - cos_beta**2) / cos_beta**2
    density = np.exp(-tan2_beta / variance) / (np.pi * variance)
    return np.pi * fresnel_reflectance(cos_w) * density / (4 * mu0 * mu * cos_beta**4)
