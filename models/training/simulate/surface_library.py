"""Measured land-surface spectra: the endmember pools the simulator mixes land pixels from.

Source: the ``earthlib`` spectral library 1.1.0 (C. Anderson, MIT licence;
https://github.com/earth-chris/earthlib), 7,261 spectra at 0.40-2.45 um in 10 nm steps, compiled
from the ICRAF-ISRIC world soil library, PROSAIL canopy simulations, the Santa Barbara urban
library and other published field and laboratory collections. ``build_surface_library`` (run
once, offline, with the ``surfaces`` extra) draws a fixed, seeded subset of each pool into
``data/surface_library.npz``, which ships:

* ``green``: canopies (earthlib LEVEL_3 ``canopy``);
* ``npv``: non-photosynthetic vegetation: litter, bark, wood, dry grass (LEVEL_2 ``npv``);
* ``soil``: soils, sands, dirt and gravel (LEVEL_2 ``bare``);
* ``built``: roofs, roads, concrete, paint (LEVEL_2 ``urban``/``built``);
* ``char``: burned surfaces (LEVEL_2 ``burn``/``burned``).

One pool is not measured: ``crust``, the salt and clay crusts of playas, pans and salars (the
Great Basin, the Altiplano, the Kalahari and Australian pans, the chotts of the Sahara), which
earthlib does not hold and which cover much of the world's barren land. Its spectra are drawn from
a parametric form of what field campaigns report: reflectance above 0.3 and spectrally flat except
for lower blue and a shortwave-infrared absorption (Railroad Valley playa, CEOS LANDNET site
description; Thome 2001, Remote Sens. Environ. 78, 27), chlorides featureless and sulfates and
clays absorbing near 2.2 um (Henley 1990, Mojave saline playas), and a gentle shortwave-infrared
darkening by moisture from a shallow water table (Lobell & Asner 2002, Soil Sci. Soc. Am. J. 66,
722). ``crust_spectra`` draws them from a fixed seed, so the pool is the same everywhere.

The library's water-vapour gaps (1.36-1.45 and 1.80-1.95 um) are filled by linear interpolation
across them; below 0.40 um (OCI's ultraviolet bands) each spectrum is held at its 0.40 um value.
"""

from __future__ import annotations

import csv
import importlib.util
import logging
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from models.training.simulate.optics import DATA

logger = logging.getLogger(__name__)

LIBRARY_FILE = DATA / "surface_library.npz"
POOLS = ("green", "npv", "soil", "built", "char", "crust")
MEASURED_POOLS = POOLS[:-1]
POOL_SIZES = {"green": 400, "npv": 200, "soil": 700, "built": 300, "char": 50}  # at most
CRUST_SPECTRA = 200
CRUST_SEED = 20261201
SHIPPED_GRID_UM = np.round(np.arange(0.40, 2.4501, 0.01), 3)
LIBRARY_SEED = 20261130


@dataclass(frozen=True)
class SurfaceLibrary:
    """Endmember spectra per pool, each (n_pool, len(wavelength_um))."""

    wavelength_um: np.ndarray
    spectra: dict[str, np.ndarray]

    def at(self, wavelengths_um: np.ndarray) -> dict[str, np.ndarray]:
        """Each pool sampled at the band wavelengths (clamped at the library's ends)."""
        wl = np.asarray(wavelengths_um, dtype=np.float64)
        return {
            pool: np.stack([np.interp(wl, self.wavelength_um, row) for row in rows]).astype(np.float64)
            for pool, rows in self.spectra.items()
        }

    def sizes(self) -> dict[str, int]:
        return {pool: len(rows) for pool, rows in self.spectra.items()}


def crust_spectra(wavelength_um: np.ndarray, n: int = CRUST_SPECTRA, seed: int = CRUST_SEED) -> np.ndarray:
    """(n, w) playa and salt-crust spectra: a flat level, lower blue, 2.2 um absorption, moist SWIR."""
    rng = np.random.default_rng(seed)
    wl = np.asarray(wavelength_um, dtype=np.float64)[None, :]
    level = rng.uniform(0.25, 0.65, (n, 1))
    blue_drop = rng.uniform(0.05, 0.40, (n, 1)) * np.clip((0.60 - wl) / 0.20, 0.0, 1.0)
    moisture = rng.uniform(0.0, 0.30, (n, 1)) * np.clip((wl - 1.0) / 1.45, 0.0, 1.0)
    absorption = rng.uniform(0.0, 0.25, (n, 1)) * np.exp(-0.5 * ((wl - 2.2) / 0.08) ** 2)
    return np.clip(level * (1 - blue_drop) * (1 - moisture) * (1 - absorption), 0.0, 0.95)


@cache
def shipped_library() -> SurfaceLibrary:
    with np.load(LIBRARY_FILE) as data:
        wavelength_um = data["wavelength_um"].astype(np.float64)
        spectra = {pool: data[pool].astype(np.float64) / 10000.0 for pool in MEASURED_POOLS}
    spectra["crust"] = crust_spectra(wavelength_um)
    return SurfaceLibrary(wavelength_um, spectra)


def _earthlib_data() -> Path:
    spec = importlib.util.find_spec("earthlib")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("building the surface library needs earthlib: pip install -e '.[surfaces]'")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _pool_of(level_2: str, level_3: str) -> str | None:
    if level_3 == "canopy":
        return "green"
    return {"npv": "npv", "bare": "soil", "built": "built", "urban": "built", "burn": "char", "burned": "char"}.get(
        level_2
    )


def read_earthlib(data: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(wavelengths, spectra (n, w), pool name or '' per spectrum) of the raw earthlib library."""
    header = (data / "spectra.sli.hdr").read_text()
    match = re.search(r"wavelength\s*=\s*\{([^}]*)\}", header)
    if match is None:
        raise ValueError(f"{data / 'spectra.sli.hdr'} has no wavelength list")
    wavelengths = np.array([float(v) for v in match.group(1).split(",")])
    spectra = np.fromfile(data / "spectra.sli", dtype="<f4").reshape(-1, len(wavelengths))
    with (data / "spectra.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    if len(rows) != len(spectra):
        raise ValueError(f"earthlib metadata has {len(rows)} rows for {len(spectra)} spectra")
    pools = [_pool_of(r["LEVEL_2"], r["LEVEL_3"]) or "" for r in rows]
    return wavelengths, spectra, pools


def build_surface_library(path: Path = LIBRARY_FILE) -> Path:
    """Draw the shipped pools from earthlib (gap-filled onto a regular 10 nm grid)."""
    from models.training.simulate.build_tables import save_arrays

    wavelengths, spectra, pools = read_earthlib(_earthlib_data())
    rng = np.random.default_rng(LIBRARY_SEED)
    out: dict[str, np.ndarray] = {"wavelength_um": SHIPPED_GRID_UM.astype(np.float32)}
    for pool in MEASURED_POOLS:
        members = np.flatnonzero(np.array(pools) == pool)
        chosen = np.sort(rng.choice(members, size=min(POOL_SIZES[pool], len(members)), replace=False))
        gridded = np.stack([np.interp(SHIPPED_GRID_UM, wavelengths, np.clip(spectra[i], 0, 1)) for i in chosen])
        out[pool] = np.round(gridded * 10000).astype(np.uint16)
        logger.info("%s: %d of %d spectra", pool, len(chosen), len(members))
    save_arrays(path, out)
    return path
