"""Small training files in the reference MT-HCCAR schema, with a learnable toy signal.

Reflectances follow a crude but monotone physics (brighter with COT, ice darker at 1.6 um,
surface albedo under thin cloud) so a few epochs of training visibly reduce the loss. The real
simulator lives in ``models.training.simulate``; this is only a fast, dependency-free test input.
"""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np

from models.bands import sensor_bands

SENSOR_ORDER = ("oci", "viirs", "abi")


def _toy_reflectance(
    wl_um: np.ndarray,
    cloudy: np.ndarray,
    ice: np.ndarray,
    log10_cot: np.ndarray,
    albedo_type: np.ndarray,
    mu0: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    cot = np.where(cloudy, 10.0 ** np.nan_to_num(log10_cot, nan=-2.0), 0.0)
    cloud_r = cot / (cot + 7.0)  # two-stream-like saturation
    absorbing = np.clip((wl_um - 1.2) / 1.0, 0.0, 1.0)
    cloud_r = cloud_r[None, :] * (1 - absorbing[:, None] * np.where(ice, 0.6, 0.3)[None, :])
    surface = np.select(
        [albedo_type == 17, albedo_type == 16, np.isin(albedo_type, (15, 19, 20))], [0.03, 0.35, 0.8], default=0.15
    )
    surface = surface[None, :] * np.where(
        np.isin(albedo_type, (15, 19, 20))[None, :] & (wl_um[:, None] > 1.4), 0.15, 1.0
    )
    rayleigh = 0.008 * wl_um[:, None] ** -4 * 0.05 / mu0[None, :]
    refl = rayleigh + cloud_r + (1 - cloud_r) ** 2 * surface
    return (refl * rng.normal(1.0, 0.01, refl.shape)).astype(np.float32)


def write_reference_file(
    path: Path,
    npoints: int = 4000,
    seed: int = 0,
    sensors: tuple[str, ...] = SENSOR_ORDER,
    angle_units: str = "degrees",
    omit: tuple[str, ...] = (),
) -> Path:
    """Write ``npoints`` toy samples in the reference schema (30 % clear, liquid/ice 50/50)."""
    rng = np.random.default_rng(seed)
    cloudy = rng.random(npoints) > 0.3
    ice = cloudy & (rng.random(npoints) > 0.5)
    log10_cot = np.where(cloudy, rng.uniform(-1.5, 2.5, npoints), np.nan).astype(np.float32)
    albedo_type = rng.choice(np.arange(1, 21), npoints).astype(np.int16)
    sza = rng.uniform(0, 75, npoints)
    vza = rng.uniform(0, 65, npoints)
    raa = rng.uniform(0, 180, npoints)
    mu0 = np.cos(np.deg2rad(sza))
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("npoints", npoints)
        nc.description = "toy reference-schema file for tests"
        nc.version = "test"
        for sensor in sensors:
            table = sensor_bands(sensor)
            bands = table.training_bands
            nc.createDimension(table.band_dimension, len(bands))
            coord = nc.createVariable(table.band_dimension, "f4", (table.band_dimension,))
            coord[:] = [b.central_um * 1e3 for b in bands]
            coord.units = "nm"
            wl = np.array([b.central_um for b in bands])
            var = nc.createVariable(table.reflectance_variable, "f4", (table.band_dimension, "npoints"))
            var[:] = _toy_reflectance(wl, cloudy, ice, log10_cot, albedo_type, mu0, rng)
        factor = 1.0 if angle_units == "degrees" else np.pi / 180
        scalars = {
            "h2o": (rng.uniform(0.1, 6, npoints), "f4", "cm"),
            "o3": (rng.uniform(220, 450, npoints), "f4", "DU"),
            "spress": (rng.uniform(500, 1040, npoints), "f4", "hPa"),
            "albedo_type": (albedo_type, "i2", "1"),
            "solar_zenith_angle": (sza * factor, "f4", angle_units),
            "viewing_zenith_angle": (vza * factor, "f4", angle_units),
            "relative_azimuth_angle": (raa * factor, "f4", angle_units),
            "scene_type": (np.where(cloudy, 2, 1), "i2", "1"),
            "cloud_type": (np.where(cloudy, np.where(ice, 2, 1), 0), "i2", "1"),
            "log10_cloud_optical_thickness": (log10_cot, "f4", "1"),
        }
        for name, (values, dtype, units) in scalars.items():
            if name in omit:
                continue
            var = nc.createVariable(name, dtype, ("npoints",))
            var[:] = values
            var.units = units
    return path
