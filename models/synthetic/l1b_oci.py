"""Synthetic PACE OCI L1B granules (``PACE_OCI.YYYYMMDDTHHMMSS.L1B.V3.nc``) for satpy's ``pace_oci_l1b_nc``.

Layout as the operational L1B: ``sensor_band_parameters`` (blue/red/SWIR wavelengths, SWIR
bandpasses, band solar irradiances), ``observation_data/rhot_{blue,red,SWIR}`` (bands, scans, pixels)
TOA reflectance and ``qual_*``, ``geolocation_data`` (latitude, longitude, height, sun and sensor
angles, watermask, quality flag), global ``time_coverage_start/end`` and
``earth_sun_distance_correction``. ``rhot`` is the BRF (already divided by cos SZA: satpy's radiance
is rhot E0 cos(SZA) / (d pi)).

The hyperspectral bands sit on the MT-HCCAR 2.5 nm grid (blue 305-600 nm, red 597.5-887.5 nm), the
SWIR bands are the nine OBPG ones including the high-gain duplicates at 1250 and 1615 nm. The real
instrument's band counts differ (119 blue, 163 red); ingest selects bands by nearest wavelength.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import h5py
import netCDF4
import numpy as np
from pyorbital.astronomy import sun_earth_distance_correction

from models.bands import Band
from models.fileio import atomic_output
from models.synthetic.chunks import write_region
from models.synthetic.polar import Scanner, SwathScene, render_swath
from models.synthetic.truth import write_truth
from models.training.simulate.optics import read_table

logger = logging.getLogger(__name__)

OCI = Scanner(altitude_km=676.5, max_scan_angle_deg=56.5, line_spacing_km=1.2, granule_minutes=5, granule_lines=1710)
BLUE_NM = 304.994 + 2.5 * np.arange(119)
RED_NM = 597.494 + 2.5 * np.arange(117)
HYPERSPECTRAL_WIDTH_NM = 5.0
SWIR_NM = np.array([939.716, 1038.317, 1250.375, 1248.550, 1378.169, 1619.626, 1618.036, 2130.593, 2258.432])
SWIR_BANDPASS_NM = np.array([45.0, 80.0, 30.0, 30.0, 15.0, 75.0, 75.0, 50.0, 75.0])
BAND_CHUNK, LINE_CHUNK = 16, 256  # bands and scans per HDF5 chunk of rhot


def _band_first(brf: np.ndarray, latitude: np.ndarray) -> np.ndarray:
    """(bands, scans, pixels) from (scans, pixels, bands) with the fill value off the Earth.

    One contiguous 2-D transpose: slicing a few bands at a time out of the pixel-major array reads
    each cache line over and over (3x slower for a full granule).
    """
    scans, pixels, bands = brf.shape
    out = np.ascontiguousarray(brf.reshape(scans * pixels, bands).T).reshape(bands, scans, pixels)
    out[:, ~np.isfinite(latitude)] = np.float32(-32767.0)
    return out


def _bands(centres_nm: np.ndarray, widths_nm: np.ndarray, prefix: str) -> list[Band]:
    return [
        Band(f"{prefix}{c:.3f}", (c - w / 2) / 1e3, c / 1e3, (c + w / 2) / 1e3)
        for c, w in zip(centres_nm, widths_nm, strict=True)
    ]


def band_groups() -> dict[str, list[Band]]:
    """The L1B's band groups (``rhot_blue``, ``rhot_red``, ``rhot_SWIR``), in file order."""
    return {
        "blue": _bands(BLUE_NM, np.full(len(BLUE_NM), HYPERSPECTRAL_WIDTH_NM), "blue_"),
        "red": _bands(RED_NM, np.full(len(RED_NM), HYPERSPECTRAL_WIDTH_NM), "red_"),
        "SWIR": _bands(SWIR_NM, SWIR_BANDPASS_NM, "swir_"),
    }


def _solar_irradiance(bands: list[Band]) -> np.ndarray:
    """Band-mean solar irradiance (W m-2 um-1) from the SPCTRAL2 extraterrestrial spectrum."""
    table = read_table("spectrl2.csv")
    wl = table["wavelength_nm"] / 1e3
    return np.array(
        [np.interp(np.linspace(b.min_um, b.max_um, 21), wl, table["solar_irradiance"]).mean() * 1e3 for b in bands]
    )


def _write_reflectance(path: Path, scene: SwathScene, groups: dict[str, list[Band]]) -> None:
    """Fill the ``rhot_*`` variables, a band of whole chunks at a time (bounded memory).

    The chunks are deflated on two threads (``chunks.write_region``): one thread took about 25 s
    for the 2 GB of a full granule.
    """
    lines = scene.latitude.shape[0]
    with h5py.File(path, "r+") as h5:
        offset = 0
        for group, bands in groups.items():
            rhot = h5[f"observation_data/rhot_{group}"]
            for row in range(0, lines, LINE_CHUNK):
                rows = slice(row, row + LINE_CHUNK)
                block = _band_first(scene.brf[rows, :, offset : offset + len(bands)], scene.latitude[rows])
                write_region(rhot, (0, row, 0), block)
            offset += len(bands)


def write_oci_granule(
    out_dir: str | Path,
    start: dt.datetime,
    lines: int = 1710,
    pixels: int = 1272,
    centre_lat: float = 20.0,
    centre_lon: float | None = None,
    seed: int = 0,
    block: int | None = None,
) -> list[Path]:
    """Render one synthetic OCI L1B granule (all blue, red and SWIR bands) plus its truth file.

    ``block``: render once per block x block pixels (``polar.render_swath``; None: automatic).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    groups = band_groups()
    all_bands = [b for bands in groups.values() for b in bands]
    scene = render_swath(OCI, start, all_bands, lines, pixels, centre_lat, centre_lon, seed, block)
    name = f"PACE_OCI.{scene.start:%Y%m%dT%H%M%S}.L1B.V3.nc"
    with atomic_output(out / name) as tmp:
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
            nc.setncatts(
                {
                    "title": "PACE OCI Level-1B Data (synthetic)",
                    "instrument": "OCI",
                    "platform": "PACE",
                    "processing_level": "L1B",
                    "institution": "MT-HCCAR project (synthetic)",
                    "time_coverage_start": f"{scene.start:%Y-%m-%dT%H:%M:%S.%f}"[:-3] + "Z",
                    "time_coverage_end": f"{scene.end:%Y-%m-%dT%H:%M:%S.%f}"[:-3] + "Z",
                    "earth_sun_distance_correction": np.float32(sun_earth_distance_correction(scene.start) ** -2),
                    "day_night_flag": "Day" if scene.simulated.any() else "Night",
                }
            )
            nc.createDimension("scans", lines)
            nc.createDimension("pixels", pixels)
            params = nc.createGroup("sensor_band_parameters")
            observation = nc.createGroup("observation_data")
            offset = 0
            for group, bands in groups.items():
                dim = f"{group.lower()}_bands" if group != "SWIR" else "SWIR_bands"
                nc.createDimension(dim, len(bands))
                wl = params.createVariable(f"{group}_wavelength", "f4", (dim,))
                wl.units = "nm"
                wl[:] = [b.central_um * 1e3 for b in bands]
                irr = params.createVariable(f"{group}_solar_irradiance", "f4", (dim,))
                irr.units = "W m^-2 um^-1"
                irr[:] = _solar_irradiance(bands)
                if group == "SWIR":
                    bandpass = params.createVariable("SWIR_bandpass", "f4", (dim,))
                    bandpass.units = "nm"
                    bandpass[:] = SWIR_BANDPASS_NM
                rhot = observation.createVariable(
                    f"rhot_{group}",
                    "f4",
                    (dim, "scans", "pixels"),
                    zlib=True,
                    complevel=1,
                    fill_value=np.float32(-32767.0),
                    chunksizes=(min(len(bands), BAND_CHUNK), min(lines, LINE_CHUNK), min(pixels, 256)),
                )
                rhot.setncatts(
                    {
                        "long_name": f"Top of Atmosphere {group} Band Reflectance",
                        "units": "1",
                        "valid_min": np.float32(0.0),
                        "valid_max": np.float32(1.3),
                    }
                )
                qual = observation.createVariable(f"qual_{group}", "u1", (dim, "scans", "pixels"), zlib=True)
                qual[:] = np.zeros((len(bands), lines, pixels), dtype=np.uint8)
                offset += len(bands)
            geo = nc.createGroup("geolocation_data")
            for var_name, values, units in (
                ("latitude", scene.latitude, "degrees_north"),
                ("longitude", scene.longitude, "degrees_east"),
                ("solar_zenith", scene.solar_zenith, "degrees"),
                ("solar_azimuth", (scene.solar_azimuth + 180) % 360 - 180, "degrees"),
                ("sensor_zenith", scene.sensor_zenith, "degrees"),
                ("sensor_azimuth", (scene.sensor_azimuth + 180) % 360 - 180, "degrees"),
                ("height", np.zeros(scene.latitude.shape), "meters"),
            ):
                var = geo.createVariable(var_name, "f4", ("scans", "pixels"), zlib=True, fill_value=np.float32(-32767))
                var.units = units
                var.coordinates = "latitude longitude"  # as the operational file: lat/lon become coordinates
                var[:] = values
            for var_name in ("watermask", "quality_flag"):
                var = geo.createVariable(var_name, "u1", ("scans", "pixels"), zlib=True)
                var[:] = np.zeros(scene.latitude.shape, dtype=np.uint8)
        _write_reflectance(tmp, scene, groups)
    truth_path = write_truth(
        out,
        f"OCI_PACE_{scene.start:%Y%m%dT%H%M%S}",
        scene.simulated,
        scene.state,
        {"sensor": "oci", "platform": "PACE", "time_coverage_start": scene.start.isoformat() + "Z", "seed": seed},
    )
    logger.info("wrote OCI granule at %s to %s", scene.start, out)
    return [out / name, truth_path]
