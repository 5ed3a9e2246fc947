"""Synthetic VIIRS granules: NASA L1B (VNP02MOD + VNP03MOD netCDF-4) and NOAA SDR (SVMnn + GMTCO HDF5).

Both carry the M bands as the operational products do:

* L1B (``viirs_l1b`` reader): ``observation_data/Mnn`` uint16 reflectance counts with
  ``scale_factor``/``add_offset``/``valid_min``/``valid_max`` and the radiance scaling attributes,
  ``Mnn_quality_flags``; with ``thermal=True`` also M12-M16 as uint16 radiance counts with their
  ``Mnn_brightness_temperature_lut`` (one temperature per count, as NASA's files carry), rendered
  day and night by the thermal simulator; the companion VNP03MOD holds ``geolocation_data/latitude``, ``longitude``
  and the sun/sensor zenith and azimuth (int16, 0.01 deg); global ``time_coverage_start/end``,
  orbit number, platform, ``DayNightFlag``, ``startDirection``/``endDirection``.
* SDR (``viirs_sdr`` reader): one ``SVMnn_npp_d..._t..._e..._b..._c..._synth_ops.h5`` per band with
  ``All_Data/VIIRS-Mn-SDR_All/Reflectance`` (uint16) and ``ReflectanceFactors``, the
  ``Data_Products`` aggregate and granule attributes; GMTCO with ``Latitude``, ``Longitude`` and the
  angles in ``All_Data/VIIRS-MOD-GEO-TC_All``.

VIIRS reflectances in both are pi L d^2 / E0 (not divided by cos SZA): the files store BRF x mu0.
The swath is a straight great-circle track (``geometry.swath``) at 829 km with +-56.06 deg scans.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.bands import VIIRS_M_BANDS, requested_bands
from models.fileio import atomic_output
from models.synthetic.polar import DAYLIGHT_ZENITH, Scanner, SwathScene, render_swath
from models.synthetic.truth import write_truth
from models.training.simulate.thermal import THERMAL_BANDS

logger = logging.getLogger(__name__)

ROWS_PER_SCAN = 16
VIIRS = Scanner(
    altitude_km=829.0, max_scan_angle_deg=56.06, line_spacing_km=0.742, granule_minutes=6, granule_lines=3232
)
REFLECTANCE_SCALE = 2.0e-5  # counts -> reflectance factor
THERMAL_BAND_NAMES = ("M12", "M13", "M14", "M15", "M16")
HOTTEST_K = 400.0  # the warmest scene temperature a thermal band's counts can hold
BT_FILL = np.float32(-999.9)
FILL_U16 = 65535
VALID_MAX_U16 = 65527
PLATFORMS = {
    # short name in file names: (platform attribute, SDR platform code)
    "NP": ("Suomi-NPP", "npp"),
    "J1": ("JPSS-1", "j01"),
    "J2": ("JPSS-2", "j02"),
}


def _reflectance_counts(brf: np.ndarray, mu0: np.ndarray, valid: np.ndarray) -> np.ndarray:
    counts = np.rint(brf * np.maximum(mu0, 0) / REFLECTANCE_SCALE)
    counts = np.clip(counts, 0, VALID_MAX_U16).astype(np.uint16)
    counts[~valid] = FILL_U16
    return counts


def _radiance_scale(name: str) -> float:
    """W m-2 sr-1 um-1 per count of a thermal band: the band's radiance at ``HOTTEST_K`` at the top."""
    band = THERMAL_BANDS[name]
    return float(_per_micrometre(band.radiance(np.array(HOTTEST_K)), band.central_um)) / VALID_MAX_U16


def _per_micrometre(radiance: np.ndarray, central_um: float) -> np.ndarray:
    """Spectral radiance per wavenumber (mW m-2 sr-1 (cm-1)-1) as per wavelength (W m-2 sr-1 um-1)."""
    return np.asarray(radiance) * 10.0 / central_um**2


def _thermal_counts(name: str, temperature: np.ndarray, valid: np.ndarray) -> np.ndarray:
    band = THERMAL_BANDS[name]
    radiance = _per_micrometre(band.radiance(np.where(valid, temperature, 250.0)), band.central_um)
    counts = np.clip(np.rint(radiance / _radiance_scale(name)), 1, VALID_MAX_U16).astype(np.uint16)
    counts[~valid] = FILL_U16
    return counts


def _brightness_temperature_lut(name: str) -> np.ndarray:
    """The temperature of every count 0-65535 (fill above ``VALID_MAX_U16`` and at 0)."""
    band = THERMAL_BANDS[name]
    counts = np.arange(FILL_U16 + 1, dtype=np.float64)
    per_wavenumber = counts * _radiance_scale(name) * band.central_um**2 / 10.0
    with np.errstate(divide="ignore"):
        lut = band.brightness_temperature(per_wavenumber).astype(np.float32)
    lut[(counts == 0) | (counts > VALID_MAX_U16)] = BT_FILL
    return lut


def _angle_counts(angle: np.ndarray) -> np.ndarray:
    return np.rint(np.asarray(angle) * 100).astype(np.int16)


def _swath_dimensions(nc: Any, lines: int, pixels: int) -> None:
    nc.createDimension("number_of_scans", lines // ROWS_PER_SCAN)
    nc.createDimension("number_of_lines", lines)
    nc.createDimension("number_of_pixels", pixels)


def _write_l1b_pair(scene: SwathScene, out: Path, short: str, orbit: int) -> list[Path]:
    import netCDF4

    platform, _ = PLATFORMS[short]
    created = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    stamp = f"A{scene.start:%Y%j.%H%M}.002.{created:%Y%j%H%M%S}"
    lines, pixels = scene.latitude.shape
    common = {
        "time_coverage_start": f"{scene.start:%Y-%m-%dT%H:%M:%S}.000Z",
        "time_coverage_end": f"{scene.end:%Y-%m-%dT%H:%M:%S}.000Z",
        "instrument": "VIIRS",
        "platform": platform,
        "DayNightFlag": "Day" if (scene.solar_zenith < DAYLIGHT_ZENITH).any() else "Night",
        "startDirection": "Ascending",
        "endDirection": "Ascending",
        "institution": "MT-HCCAR project (synthetic)",
        "title": "VIIRS M-band Reflected Solar Band and Thermal Emissive Band Data (synthetic)",
        "processing_version": "synthetic",
        "product_name": "",
        "Conventions": "CF-1.6",
    }
    paths = []
    mu0 = np.cos(np.radians(np.minimum(scene.solar_zenith, 90.0)))
    # --- VNP03MOD geolocation
    geo_name = f"V{short}03MOD.{stamp}.nc"
    with atomic_output(out / geo_name) as tmp, netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
        nc.setncatts({**common, "OrbitNumber": np.int32(orbit), "product_name": geo_name})
        _swath_dimensions(nc, lines, pixels)
        group = nc.createGroup("geolocation_data")
        for name, values, units, lo, hi in (
            ("latitude", scene.latitude, "degrees_north", -90.0, 90.0),
            ("longitude", scene.longitude, "degrees_east", -180.0, 180.0),
        ):
            var = group.createVariable(
                name, "f4", ("number_of_lines", "number_of_pixels"), zlib=True, fill_value=np.float32(-999.9)
            )
            var.setncatts(
                {
                    "units": units,
                    "valid_min": np.float32(lo),
                    "valid_max": np.float32(hi),
                    "long_name": name.capitalize(),
                }
            )
            var[:] = values
        for name, values in (
            ("solar_zenith", scene.solar_zenith),
            ("solar_azimuth", scene.solar_azimuth),
            ("sensor_zenith", scene.sensor_zenith),
            ("sensor_azimuth", scene.sensor_azimuth),
        ):
            var = group.createVariable(
                name, "i2", ("number_of_lines", "number_of_pixels"), zlib=True, fill_value=np.int16(-32768)
            )
            var.set_auto_maskandscale(False)
            signed = "azimuth" in name
            var.setncatts(
                {
                    "units": "degrees",
                    "scale_factor": np.float32(0.01),
                    "add_offset": np.float32(0.0),
                    "valid_min": np.int16(-18000 if signed else 0),
                    "valid_max": np.int16(18000),
                    "long_name": name.replace("_", " "),
                }
            )
            var[:] = _angle_counts((values + 180) % 360 - 180 if signed else values)
    paths.append(out / geo_name)
    # --- VNP02MOD radiances / reflectances
    rad_name = f"V{short}02MOD.{stamp}.nc"
    with atomic_output(out / rad_name) as tmp, netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
        nc.setncatts({**common, "orbit_number": np.int32(orbit), "product_name": rad_name})
        _swath_dimensions(nc, lines, pixels)
        group = nc.createGroup("observation_data")
        for k, band in enumerate(scene.bands):
            var = _band_counts_variable(group, band.name, lines, pixels)
            var.setncatts(
                {
                    "long_name": f"Earth View {band.name} Scaled Reflectance",
                    "scale_factor": np.float32(REFLECTANCE_SCALE),
                    "add_offset": np.float32(0.0),
                    "valid_min": np.uint16(0),
                    "valid_max": np.uint16(VALID_MAX_U16),
                    "radiance_units": "Watts/meter^2/steradian/micrometer",
                    "radiance_scale_factor": np.float32(0.01),
                    "radiance_add_offset": np.float32(0.0),
                }
            )
            var[:] = _reflectance_counts(scene.brf[..., k], mu0, np.isfinite(scene.latitude))
            _write_quality_flags(group, band.name, lines, pixels)
        for k, name in enumerate(scene.thermal_bands):
            assert scene.brightness_temperature is not None
            _write_thermal_band(group, name, scene.brightness_temperature[..., k], np.isfinite(scene.latitude))
    paths.append(out / rad_name)
    return paths


def _band_counts_variable(group: Any, name: str, lines: int, pixels: int) -> Any:
    """An empty VNP02MOD band of uint16 counts (chunked by scans, fill 65535, raw reads)."""
    var = group.createVariable(
        name,
        "u2",
        ("number_of_lines", "number_of_pixels"),
        zlib=True,
        chunksizes=(min(lines, ROWS_PER_SCAN * 4), min(pixels, 512)),
        fill_value=np.uint16(FILL_U16),
    )
    var.set_auto_maskandscale(False)
    return var


def _write_quality_flags(group: Any, name: str, lines: int, pixels: int) -> None:
    """A band's quality flags, all zero (nothing flagged)."""
    flags = group.createVariable(f"{name}_quality_flags", "u2", ("number_of_lines", "number_of_pixels"), zlib=True)
    flags.setncatts({"units": "none", "long_name": f"{name} quality flags"})
    flags[:] = np.zeros((lines, pixels), dtype=np.uint16)


def _write_thermal_band(group: Any, name: str, temperature: np.ndarray, valid: np.ndarray) -> None:
    """One emissive band of VNP02MOD: radiance counts, their temperature table and quality flags."""
    lines, pixels = temperature.shape
    var = _band_counts_variable(group, name, lines, pixels)
    var.setncatts(
        {
            "long_name": f"Earth View {name} Scaled Radiance",
            "units": "Watts/meter^2/steradian/micrometer",
            "scale_factor": np.float32(_radiance_scale(name)),
            "add_offset": np.float32(0.0),
            "valid_min": np.uint16(0),
            "valid_max": np.uint16(VALID_MAX_U16),
        }
    )
    var[:] = _thermal_counts(name, temperature, valid)
    group.createDimension(f"{name}_lut_size", FILL_U16 + 1)
    lut = group.createVariable(f"{name}_brightness_temperature_lut", "f4", (f"{name}_lut_size",), fill_value=BT_FILL)
    lut.set_auto_maskandscale(False)
    lut.setncatts(
        {
            "long_name": f"{name} brightness temperature lookup table",
            "units": "Kelvins",
            "valid_min": np.float32(0.0),
            "valid_max": np.float32(HOTTEST_K + 100.0),
        }
    )
    lut[:] = _brightness_temperature_lut(name)
    _write_quality_flags(group, name, lines, pixels)


def _write_sdr(scene: SwathScene, out: Path, short: str, orbit: int) -> list[Path]:
    import h5py

    _, code = PLATFORMS[short]
    created = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    start, end = scene.start, scene.end
    stamp = (
        f"{code}_d{start:%Y%m%d}_t{start:%H%M%S}{start.microsecond // 100000}_e{end:%H%M%S}"
        f"{end.microsecond // 100000}_b{orbit:05d}_c{created:%Y%m%d%H%M%S%f}_synth_ops.h5"
    )
    lines, pixels = scene.latitude.shape
    mu0 = np.cos(np.radians(np.minimum(scene.solar_zenith, 90.0)))

    def date_attrs(group: h5py.Group, prefix: str) -> None:
        def ascii_attr(name: str, value: str) -> None:
            group.attrs.create(name, np.array([[value.encode()]]), dtype=h5py.string_dtype("ascii", len(value)))

        ascii_attr(f"{prefix}BeginningDate", f"{start:%Y%m%d}")
        ascii_attr(f"{prefix}BeginningTime", f"{start:%H%M%S}.{start.microsecond:06d}Z")
        ascii_attr(f"{prefix}EndingDate", f"{end:%Y%m%d}")
        ascii_attr(f"{prefix}EndingTime", f"{end:%H%M%S}.{end.microsecond:06d}Z")
        group.attrs.create(f"{prefix}BeginningOrbitNumber", np.array([[orbit]], dtype=np.uint64))
        group.attrs.create(f"{prefix}EndingOrbitNumber", np.array([[orbit]], dtype=np.uint64))

    def skeleton(handle: h5py.File, dataset: str, all_group: str) -> h5py.Group:
        handle.attrs.create(
            "Platform_Short_Name",
            np.array([[short.replace("NP", "NPP").replace("J1", "J01").replace("J2", "J02").encode()]]),
        )
        handle.attrs.create("Instrument_Short_Name", np.array([[b"VIIRS"]]))
        product = handle.create_group(f"Data_Products/{dataset}")
        product.attrs.create("Instrument_Short_Name", np.array([[b"VIIRS"]]))
        aggregate = product.create_dataset(f"{dataset}_Aggr", data=np.zeros(1, dtype=np.uint32))
        date_attrs(aggregate, "Aggregate")
        aggregate.attrs.create("AggregateNumberGranules", np.array([[1]], dtype=np.uint64))
        granule = product.create_dataset(f"{dataset}_Gran_0", data=np.zeros(1, dtype=np.uint32))
        date_attrs(granule, "")
        granule.attrs.create("N_Number_Of_Scans", np.array([[lines // ROWS_PER_SCAN]], dtype=np.int32))
        granule.attrs.create("N_Reference_ID", np.array([[f"{dataset}:SYNTH:{orbit}".encode()]]))
        for name, values in (("G-Ring_Latitude", scene.latitude), ("G-Ring_Longitude", scene.longitude)):
            corners = [values[0, 0], values[0, -1], values[-1, -1], values[-1, 0]]
            granule.attrs.create(name, np.array(corners, dtype=np.float32)[:, None])
        return handle.create_group(f"All_Data/{all_group}")

    paths = []
    geo_name = f"GMTCO_{stamp}"
    with atomic_output(out / geo_name) as tmp, h5py.File(tmp, "w") as handle:
        data = skeleton(handle, "VIIRS-MOD-GEO-TC", "VIIRS-MOD-GEO-TC_All")
        data.create_dataset("Latitude", data=scene.latitude.astype(np.float32))
        data.create_dataset("Longitude", data=scene.longitude.astype(np.float32))
        data.create_dataset("Height", data=np.zeros((lines, pixels), dtype=np.float32))
        data.create_dataset("SolarZenithAngle", data=scene.solar_zenith.astype(np.float32))
        data.create_dataset("SolarAzimuthAngle", data=((scene.solar_azimuth + 180) % 360 - 180).astype(np.float32))
        data.create_dataset("SatelliteZenithAngle", data=scene.sensor_zenith.astype(np.float32))
        data.create_dataset("SatelliteAzimuthAngle", data=((scene.sensor_azimuth + 180) % 360 - 180).astype(np.float32))
        data.create_dataset("QF1_SCAN_VIIRSSDRGEO", data=np.zeros(lines // ROWS_PER_SCAN, dtype=np.uint8))
    paths.append(out / geo_name)
    for k, band in enumerate(scene.bands):
        number = int(band.name[1:])
        name = f"SVM{number:02d}_{stamp}"
        with atomic_output(out / name) as tmp, h5py.File(tmp, "w") as handle:
            data = skeleton(handle, f"VIIRS-M{number}-SDR", f"VIIRS-M{number}-SDR_All")
            data.create_dataset(
                "Reflectance", data=_reflectance_counts(scene.brf[..., k], mu0, np.isfinite(scene.latitude))
            )
            data.create_dataset("ReflectanceFactors", data=np.array([REFLECTANCE_SCALE, 0.0], dtype=np.float32))
            data.create_dataset("Radiance", data=np.zeros((lines, pixels), dtype=np.uint16))
            data.create_dataset("RadianceFactors", data=np.array([0.01, 0.0], dtype=np.float32))
            data.create_dataset("QF1_VIIRSMBANDSDR", data=np.zeros((lines, pixels), dtype=np.uint8))
        paths.append(out / name)
    return paths


FORMATS = ("l1b", "sdr")


def write_viirs_granule(
    out_dir: str | Path,
    start: dt.datetime,
    platform: str = "NP",
    file_format: str = "l1b",
    lines: int = 3232,
    pixels: int = 3200,
    bands: Sequence[str] | None = None,
    centre_lat: float = 35.0,
    centre_lon: float | None = None,
    seed: int = 0,
    orbit: int = 41234,
    block: int | None = None,
    thermal: bool = False,
) -> list[Path]:
    """Render one synthetic VIIRS M-band granule in L1B or SDR format, plus its truth file.

    ``block``: render once per block x block pixels (``polar.render_swath``; None: automatic).
    ``thermal``: also M12-M16, day and night (L1B only).
    """
    if platform not in PLATFORMS:
        raise ValueError(f"unknown VIIRS platform {platform!r}: expected one of {', '.join(PLATFORMS)}")
    if file_format not in FORMATS:
        raise ValueError(f"unknown VIIRS format {file_format!r}: expected l1b or sdr")
    if thermal and file_format != "l1b":
        raise ValueError("synthetic VIIRS thermal bands (M12-M16) are written in the L1B format only")
    if lines % ROWS_PER_SCAN:
        raise ValueError(f"VIIRS M-band granules hold whole scans of {ROWS_PER_SCAN} lines, not {lines}")
    table = {b.name: b for b in VIIRS_M_BANDS}
    names = requested_bands(bands, list(table), "VIIRS solar M bands are M01-M11")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    thermal_bands = THERMAL_BAND_NAMES if thermal else ()
    scene = render_swath(
        VIIRS, start, [table[b] for b in names], lines, pixels, centre_lat, centre_lon, seed, block, thermal_bands
    )
    writer = _write_l1b_pair if file_format == "l1b" else _write_sdr
    paths = writer(scene, out, platform, orbit)
    truth = write_truth(
        out,
        f"VIIRS-{file_format.upper()}_{platform}_{scene.start:%Y%m%dT%H%M%S}",
        scene.simulated,
        scene.state,
        {"sensor": "viirs", "platform": platform, "time_coverage_start": scene.start.isoformat() + "Z", "seed": seed},
    )
    paths.append(truth)
    logger.info("wrote VIIRS %s %s granule at %s to %s", platform, file_format, scene.start, out)
    return paths
