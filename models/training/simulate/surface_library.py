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
POOLS = ("green", "npv", "soil", "built", "char")
POOL_SIZES = {"green": 400, "npv": 200, "soil": 700, "built": 300, "char": 50}  # at most
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


@cache
def shipped_library() -> SurfaceLibrary:
    with np.load(LIBRARY_FILE) as data:
        return SurfaceLibrary(
            data["wavelength_um"].astype(np.float64),
            {pool: data[pool].astype(np.float64) / 10000.0 for pool in POOLS},
        )


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
    for pool in POOLS:
        members = np.flatnonzero(np.array(pools) == pool)
        chosen = np.sort(rng.choice(members, size=min(POOL_SIZES[pool], len(members)), replace=False))
        gridded = np.stack([np.interp(SHIPPED_GRID_UM, wavelengths, np.clip(spectra[i], 0, 1)) for i in chosen])
        out[pool] = np.round(gridded * 10000).astype(np.uint16)
        logger.info("%s: %d of %d spectra", pool, len(chosen), len(members))
    save_arrays(path, out)
    return path
