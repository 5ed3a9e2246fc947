"""Lambertian-equivalent spectral surface albedo of the 20 IGBP (CERES-modified) classes.

Non-snow classes mix tabulated family spectra (``data/surface_albedo.csv``) and are scaled by a
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
