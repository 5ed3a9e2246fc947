"""Optical inputs of the simulator: Rayleigh, gas band transmittances, cloud single scattering.

Sources (each table in ``data/`` says where its numbers come from):

* Rayleigh optical depth: Bodhaine et al. (1999, J. Atmos. Oceanic Technol. 16, 1854), eq. 30,
  scaled by surface pressure / 1013.25 hPa;
* gases: the SPCTRAL2 band model of Bird & Riordan (1986), eqs. 2-8 (H2O), 2-9 (O3) and 2-11
  (mixed gases), averaged over each top-hat band weighted by the solar spectrum, tabulated per
  band against absorber amount x airmass; in simulator physics 2.3 water at 1.34-1.42 um (the
  cirrus bands) from a fit to LOWTRAN7 instead (``water_band``);
* clouds: liquid from Mie theory (gamma size distribution, v_eff = 0.1) with the Hale & Querry /
  Palmer & Williams / Downing & Williams water index; ice with Mie-sphere single-scattering albedo
  (Warren 1984 index) and roughened-crystal asymmetry (0.75 in non-absorbing bands, cf. Yang et
  al. 2013), see ``build_tables.py``. Cloud optical thickness is referenced to 0.55 um.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np

from models.bands import Band
from models.training.simulate import water_band

DATA = Path(__file__).parent / "data"
REFERENCE_WAVELENGTH_UM = 0.55
EDGE_UM = 0.05  # cloud optics are held constant this far beyond the tabulated wavelengths
PHASES = ("liquid", "ice")


def read_table(name: str) -> dict[str, np.ndarray]:
    """A comma-separated table from ``data/`` (``#`` lines are comments) as named columns."""
    lines = [line for line in (DATA / name).read_text().splitlines() if line and not line.startswith("#")]
    header = lines[0].split(",")
    values = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
    return {column: values[:, i] for i, column in enumerate(header)}


def rayleigh_optical_depth(wavelength_um: np.ndarray, pressure_hpa: np.ndarray | float = 1013.25) -> np.ndarray:
    """Rayleigh optical depth (Bodhaine et al. 1999, eq. 30) at a surface pressure."""
    l2 = np.asarray(wavelength_um, dtype=np.float64) ** 2
    tau = 0.0021520 * (1.0455996 - 341.29061 / l2 - 0.90230850 * l2) / (1.0 + 0.0027059889 / l2 - 85.968563 * l2)
    return tau * (np.asarray(pressure_hpa) / 1013.25)


# ---- gases -------------------------------------------------------------------------------------------
@cache
def _spectrl2() -> dict[str, np.ndarray]:
    table = read_table("spectrl2.csv")
    table["wavelength_um"] = table["wavelength_nm"] / 1e3
    return table


def _interp_log(wavelength_um: np.ndarray, coefficient: np.ndarray) -> np.ndarray:
    """Absorption coefficient interpolated in log space (zero where the table is zero)."""
    table = _spectrl2()
    positive = np.interp(wavelength_um, table["wavelength_um"], (coefficient > 0).astype(float)) > 0
    log_coeff = np.log(np.maximum(coefficient, 1e-7))
    return np.where(positive, np.exp(np.interp(wavelength_um, table["wavelength_um"], log_coeff)), 0.0)


def _h2o_transmittance(wavelength_um: np.ndarray, path_cm: np.ndarray) -> np.ndarray:
    a = _interp_log(wavelength_um, _spectrl2()["water_vapor_absorption"])[:, None] * path_cm[None, :]
    return np.exp(-0.2385 * a / (1 + 20.07 * a) ** 0.45)


def _h2o_transmittance_lowtran7_cirrus(wavelength_um: np.ndarray, path_cm: np.ndarray) -> np.ndarray:
    """SPCTRAL2, but LOWTRAN7 in the 1.38 um band, which SPCTRAL2's coarse table lets through far too much."""
    out = _h2o_transmittance(wavelength_um, path_cm)
    inside = water_band.in_range(wavelength_um)
    if np.any(inside):
        out[inside] = water_band.transmittance(wavelength_um[inside], path_cm)
    return out


def _o3_transmittance(wavelength_um: np.ndarray, path_atm_cm: np.ndarray) -> np.ndarray:
    a = _interp_log(wavelength_um, _spectrl2()["ozone_absorption"])[:, None] * path_atm_cm[None, :]
    return np.exp(-a)


def _mixed_transmittance(wavelength_um: np.ndarray, path: np.ndarray) -> np.ndarray:
    a = _interp_log(wavelength_um, _spectrl2()["mixed_absorption"])[:, None] * path[None, :]
    return np.exp(-1.41 * a / (1 + 118.3 * a) ** 0.45)


GASES = {
    # name: (transmittance function, log10 of the smallest and largest path on the table)
    "h2o": (_h2o_transmittance, -5.0, 2.5),  # cm of precipitable water x airmass
    "o3": (_o3_transmittance, -4.0, 1.0),  # atm-cm x airmass
    "mixed": (_mixed_transmittance, -4.0, 1.5),  # (layer pressure thickness / 1013 hPa) x airmass
}
GAS_TABLE_SIZE = 96
BAND_SUBSAMPLES = 41


class GasTables:
    """Band-averaged transmittance of each gas against path (amount x airmass), per band."""

    def __init__(self, bands: Sequence[Band], cirrus_band_lowtran7: bool = False) -> None:
        self.bands = tuple(bands)
        table = _spectrl2()
        self.tables: dict[str, np.ndarray] = {}
        gases = (
            {**GASES, "h2o": (_h2o_transmittance_lowtran7_cirrus, *GASES["h2o"][1:])} if cirrus_band_lowtran7 else GASES
        )
        for gas, (function, lo, hi) in gases.items():
            paths = np.logspace(lo, hi, GAS_TABLE_SIZE)
            rows = []
            for band in self.bands:
                wl = np.linspace(band.min_um, band.max_um, BAND_SUBSAMPLES)
                weight = np.interp(wl, table["wavelength_um"], table["solar_irradiance"])
                rows.append(weight @ function(wl, paths) / weight.sum())
            self.tables[gas] = np.maximum(np.array(rows), 1e-30)

    def transmittance(self, gas: str, path: np.ndarray) -> np.ndarray:
        """Band transmittance (..., B) for paths broadcastable to (..., B)."""
        _, lo, hi = GASES[gas]
        table = self.tables[gas]
        path = np.broadcast_to(path, (*np.shape(path)[:-1], len(self.bands)))
        position = (np.log10(np.maximum(path, 10.0**lo)) - lo) / (hi - lo) * (GAS_TABLE_SIZE - 1)
        position = np.clip(position, 0, GAS_TABLE_SIZE - 1 - 1e-9)
        index = position.astype(np.int64)
        frac = position - index
        band = np.arange(len(self.bands))
        low = table[band, index]
        high = table[band, index + 1]
        out = low * (1 - frac) + high * frac
        return np.where(path <= 0, 1.0, out)

    def optical_depth(self, gas: str, amount: np.ndarray, airmass: np.ndarray) -> np.ndarray:
        """Equivalent absorption optical depth, -ln T(amount x airmass) / airmass."""
        return -np.log(self.transmittance(gas, amount * airmass)) / airmass


# ---- clouds ----------------------------------------------------------------------------------------
@cache
def _cloud_table() -> dict[str, np.ndarray]:
    with np.load(DATA / "cloud_optics.npz") as data:
        return {key: data[key].astype(np.float64) for key in data.files}


class CloudOptics:
    """Cloud extinction ratio, single-scattering albedo and asymmetry at a band set."""

    def __init__(self, wavelengths_um: Sequence[float] | np.ndarray) -> None:
        table = _cloud_table()
        self.wavelengths = np.asarray(wavelengths_um, dtype=np.float64)
        grid = table["wavelength_um"]
        # optics are nearly flat just outside the table (near-UV, 2.4 um): hold the edge values there
        if self.wavelengths.min() < grid[0] - EDGE_UM or self.wavelengths.max() > grid[-1] + EDGE_UM:
            raise ValueError(
                f"cloud optics cover {grid[0]:.2f}-{grid[-1]:.2f} um (+-{EDGE_UM} um), not "
                f"{self.wavelengths.min():.3f}-{self.wavelengths.max():.3f} um"
            )
        self.radius: dict[str, np.ndarray] = {}
        self.qext_ratio: dict[str, np.ndarray] = {}
        self.log_coalbedo: dict[str, np.ndarray] = {}
        self.asymmetry: dict[str, np.ndarray] = {}
        for phase in PHASES:
            radius = table[f"{phase}_effective_radius_um"]
            qext = table[f"{phase}_qext"]
            qref = np.array([np.interp(REFERENCE_WAVELENGTH_UM, grid, qext[:, j]) for j in range(len(radius))])
            self.radius[phase] = np.log(radius)
            self.qext_ratio[phase] = self._at_bands(qext / qref[None, :])
            self.log_coalbedo[phase] = self._at_bands(np.log(np.maximum(1 - table[f"{phase}_ssa"], 1e-12)))
            self.asymmetry[phase] = self._at_bands(table[f"{phase}_g"])

    def _at_bands(self, values: np.ndarray) -> np.ndarray:
        grid = _cloud_table()["wavelength_um"]
        return np.stack([np.interp(self.wavelengths, grid, values[:, j]) for j in range(values.shape[1])], axis=1)

    def properties(self, phase: str, effective_radius_um: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(tau ratio to 0.55 um, ssa, g), each (N, B), for per-sample radii (N, 1)."""
        log_r = np.log(np.asarray(effective_radius_um, dtype=np.float64))
        grid = self.radius[phase]
        position = np.clip((np.interp(log_r, grid, np.arange(len(grid)))), 0, len(grid) - 1 - 1e-9)
        index = position.astype(np.int64)
        frac = position - index

        def pick(table: np.ndarray) -> np.ndarray:  # table (B, R) -> (N, B)
            lo = table[:, index[..., 0]].T
            hi = table[:, index[..., 0] + 1].T
            return lo * (1 - frac) + hi * frac

        return pick(self.qext_ratio[phase]), 1 - np.exp(pick(self.log_coalbedo[phase])), pick(self.asymmetry[phase])
