"""Synthetic GOES ABI L1b radiance files (one per band), in the operational netCDF layout.

Each band file carries what the operational ones do and satpy's ``abi_l1b`` reader reads: ``Rad``
as 10-12 bit unsigned counts with the real per-band scale/offset, ``DQF``, the fixed-grid ``x``/``y``
scan angles (int16, scaled), ``goes_imager_projection``, ``t``/``time_bounds``, ``band_id``,
``band_wavelength``, ``esun``, ``kappa0``, ``earth_sun_distance_anomaly_in_AU``, the nominal
sub-satellite point, ``yaw_flip_flag`` and the usual global attributes, under operational file names
(``OR_ABI-L1b-RadM1-M6C01_G17_s..._e..._c....nc``). The scene is rendered at 2 km and replicated to
the 1 km and 0.5 km bands, so the truth (written beside, on the 2 km grid) holds for every band.

Calibration: satpy's reflectance is Rad x pi d^2 / esun, i.e. BRF x cos(SZA); so Rad = BRF mu0
esun / (pi d^2). Band constants (scale, offset, bit depth, esun) are those of GOES-17 L1b files.
Thermal bands (``thermal=True``: C07, C11, C13-C16) carry the GOES-17 files' Planck constants and
radiance scaling; their brightness temperatures come from the thermal simulator (or a closed form
for ``quick`` benchmark scans) over a skin-temperature climatology, day and night.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import netCDF4
import numpy as np
from pyorbital.astronomy import sun_earth_distance_correction

from models.bands import ABI_BANDS, ABI_THERMAL_BANDS, Band, requested_bands
from models.fileio import publish, temporary_path
from models.spec import relative_azimuth
from models.synthetic.geometry import GeostationaryGrid, geostationary_sensor_angles, sun_angles
from models.synthetic.polar import auto_block, block_centres, simulate_in_parts
from models.synthetic.scenes import SceneFields, scene_state, with_temperatures
from models.synthetic.truth import TruthWriter
from models.training.simulate.simulator import AtmosphereState, QuickLookRenderer
from models.training.simulate.thermal import THERMAL_BANDS, ThermalSimulator, temperature_at

logger = logging.getLogger(__name__)

STEP_2KM = 5.6e-5  # rad
NIGHT_SOLAR_ZENITH = 87.0  # no simulation beyond: the reflectance is ~0
ON_DISK_CHUNK = 226
# relative 1-sigma radiance texture of 0.5 and 1 km pixels within their 2 km pixel: brings the synthetic
# C01-C03 and C05 files to about the size of real ones (the shared Meso-1 scan: C01 0.99 MB, C03 1.13 MB)
SUBPIXEL_TEXTURE = 0.02


@dataclass(frozen=True)
class AbiBand:
    band: Band
    number: int
    refinement: int  # pixels per 2 km pixel along each axis: 1 (2 km), 2 (1 km), 4 (0.5 km)
    scale: float
    offset: float
    bits: int
    esun: float


ABI_BAND_CONSTANTS = {
    b.name: AbiBand(b, int(b.name[1:]), *row)
    for b, row in zip(
        ABI_BANDS,
        [
            (2, 0.8121064, -25.936647, 10, 2041.6865),
            (4, 0.15859237, -20.289911, 12, 1628.0801),
            (2, 0.37691253, -12.037643, 10, 955.5531),
            (1, 0.07073108, -4.5223684, 11, 361.51877),
            (2, 0.09580004, -3.0596137, 10, 242.64404),
            (1, 0.030088475, -0.9609507, 10, 77.00672),
        ],
        strict=True,
    )
}


@dataclass(frozen=True)
class AbiThermalBand:
    band: Band
    number: int
    scale: float
    offset: float
    bits: int


# Rad scale, offset and bit depth of the GOES-17 L1b files (mW m-2 sr-1 (cm-1)-1); the Planck
# constants are the thermal simulator's, read from the same files
ABI_THERMAL_CONSTANTS = {
    b.name: AbiThermalBand(b, int(b.name[1:]), *row)
    for b, row in zip(
        ABI_THERMAL_BANDS,
        [
            (0.001564351, -0.0376, 14),
            (0.03335779, -1.3022, 12),
            (0.04572892, -1.6443, 12),
            (0.049492206, -1.7187, 12),
            (0.05277411, -1.7558, 12),
            (0.17605852, -5.2392, 10),
        ],
        strict=True,
    )
}


@dataclass(frozen=True)
class Sector:
    code: str  # in file names: M1, M2, C, F
    scene_id: str
    shape_2km: tuple[int, int]
    x0: float  # first column centre at 2 km, rad
    y0: float  # first row centre at 2 km, rad
    duration_s: float


SECTORS = {
    # Meso-1 over California as in the real 2019-10-27 granules; GOES-West CONUS (PACUS); full disk
    "M1": Sector("M1", "Mesoscale", (500, 500), 0.03864 - 0.013972, 0.10136 + 0.013972, 5.7),
    "M2": Sector("M2", "Mesoscale", (500, 500), -0.02 - 0.013972, 0.08 + 0.013972, 5.7),
    "C": Sector("C", "CONUS", (1500, 2500), -0.069972, 0.128212, 150.0),
    "F": Sector("F", "Full Disk", (5424, 5424), -0.151844, 0.151844, 600.0),
}
PLATFORMS = {
    # platform id: (orbital slot, longitude of projection origin, nominal sub-satellite longitude)
    "G16": ("GOES-East", -75.0, -75.2),
    "G17": ("GOES-West", -137.0, -137.2),
    "G18": ("GOES-West", -137.0, -137.0),
    "G19": ("GOES-East", -75.0, -75.2),
}


def _stamp(time: dt.datetime) -> str:
    return f"{time:%Y%j%H%M%S}{time.microsecond // 100000}"


def abi_file_name(
    sector: Sector,
    band: AbiBand | AbiThermalBand,
    platform: str,
    start: dt.datetime,
    end: dt.datetime,
    created: dt.datetime,
) -> str:
    return (
        f"OR_ABI-L1b-Rad{sector.code}-M6C{band.number:02d}_{platform}_s{_stamp(start)}_e{_stamp(end)}"
        f"_c{_stamp(created)}.nc"
    )


class _BandFile:
    """One band file being written under a temporary name."""

    def __init__(
        self,
        directory: Path,
        name: str,
        abi: AbiBand | AbiThermalBand,
        grid: GeostationaryGrid,
        sector: Sector,
        platform: str,
        start: dt.datetime,
        end: dt.datetime,
        esd: float,
    ) -> None:
        self.final = directory / name
        self.tmp = temporary_path(self.final)
        self.abi = abi
        self.esd = esd
        self.max_count = 2**abi.bits - 2
        self.stats = {"valid": 0, "missing": 0, "saturated": 0, "sum": 0.0, "sum2": 0.0, "min": np.inf, "max": -np.inf}
        nc = self.nc = netCDF4.Dataset(self.tmp, "w", format="NETCDF4")
        rows, cols = grid.shape
        nc.createDimension("y", rows)
        nc.createDimension("x", cols)
        nc.createDimension("number_of_time_bounds", 2)
        nc.createDimension("band", 1)
        nc.createDimension("number_of_image_bounds", 2)
        chunk = (min(ON_DISK_CHUNK, rows), min(ON_DISK_CHUNK, cols))
        slot, lon0, sub_lon = PLATFORMS[platform]
        self.refinement = abi.refinement if isinstance(abi, AbiBand) else 1
        self.thermal = THERMAL_BANDS.get(abi.band.name) if isinstance(abi, AbiThermalBand) else None
        resolution = {1: "2km", 2: "1km", 4: "0.5km"}[self.refinement]
        nc.setncatts(
            {
                "naming_authority": "gov.nesdis.noaa",
                "Conventions": "CF-1.7",
                "standard_name_vocabulary": "CF Standard Name Table (v35, 20 July 2016)",
                "institution": "MT-HCCAR project synthetic data (format of DOC/NOAA/NESDIS ABI L1b)",
                "project": "GOES",
                "production_site": "SYNTH",
                "production_environment": "DE",
                "spatial_resolution": f"{resolution} at nadir",
                "Metadata_Conventions": "Unidata Dataset Discovery v1.0",
                "orbital_slot": slot,
                "platform_ID": platform,
                "instrument_type": "GOES R Series Advanced Baseline Imager",
                "scene_id": sector.scene_id,
                "instrument_ID": "FM2",
                "title": "ABI L1b Radiances",
                "summary": "Synthetic single reflective band ABI L1b radiances rendered by the MT-HCCAR simulator.",
                "keywords": "SPECTRAL/ENGINEERING > VISIBLE WAVELENGTHS > VISIBLE RADIANCE",
                "license": "Synthetic data, no restrictions",
                "processing_level": "L1b",
                "cdm_data_type": "Image",
                "dataset_name": name,
                "production_data_source": "Synthetic",
                "timeline_id": "ABI Mode 6",
                "date_created": f"{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%S.%f}"[:-5] + "Z",
                "time_coverage_start": f"{start:%Y-%m-%dT%H:%M:%S.%f}"[:-5] + "Z",
                "time_coverage_end": f"{end:%Y-%m-%dT%H:%M:%S.%f}"[:-5] + "Z",
                "id": str(uuid.uuid4()),
            }
        )
        rad = nc.createVariable(
            "Rad", "i2", ("y", "x"), zlib=True, complevel=1, chunksizes=chunk, fill_value=np.int16(2**abi.bits - 1)
        )
        rad.set_auto_maskandscale(False)
        rad.setncatts(
            {
                "long_name": "ABI L1b Radiances",
                "standard_name": "toa_outgoing_radiance_per_unit_wavelength",
                "_Unsigned": "true",
                "sensor_band_bit_depth": np.int8(abi.bits),
                "valid_range": np.array([0, self.max_count], dtype=np.int16),
                "scale_factor": np.float32(abi.scale),
                "add_offset": np.float32(abi.offset),
                "units": "mW m-2 sr-1 (cm-1)-1" if self.thermal else "W m-2 sr-1 um-1",
                "resolution": f"y: {grid.step:.6f} rad x: {grid.step:.6f} rad",
                "coordinates": "band_id band_wavelength t y x",
                "grid_mapping": "goes_imager_projection",
                "cell_methods": "t: point area: point",
                "ancillary_variables": "DQF",
            }
        )
        dqf = nc.createVariable(
            "DQF", "i1", ("y", "x"), zlib=True, complevel=1, chunksizes=chunk, fill_value=np.int8(-1)
        )
        dqf.set_auto_maskandscale(False)
        dqf.setncatts(
            {
                "long_name": "ABI L1b Radiances data quality flags",
                "standard_name": "status_flag",
                "_Unsigned": "true",
                "valid_range": np.array([0, 4], dtype=np.int8),
                "units": "1",
                "grid_mapping": "goes_imager_projection",
                "flag_values": np.array([0, 1, 2, 3, 4], dtype=np.int8),
                "flag_meanings": "good_pixel_qf conditionally_usable_pixel_qf out_of_range_pixel_qf no_value_pixel_qf "
                "focal_plane_temperature_threshold_exceeded_qf",
            }
        )
        epoch = dt.datetime(2000, 1, 1, 12)
        t = nc.createVariable("t", "f8")
        t.setncatts(
            {
                "long_name": "J2000 epoch mid-point between the start and end image scan in seconds",
                "standard_name": "time",
                "units": "seconds since 2000-01-01 12:00:00",
                "axis": "T",
                "bounds": "time_bounds",
            }
        )
        bounds = [(start - epoch).total_seconds(), (end - epoch).total_seconds()]
        t[...] = sum(bounds) / 2
        tb = nc.createVariable("time_bounds", "f8", ("number_of_time_bounds",))
        tb[:] = bounds
        for axis, values in (("y", grid.y()), ("x", grid.x())):
            scale = -grid.step if axis == "y" else grid.step
            var = nc.createVariable(axis, "i2", (axis,))
            var.set_auto_maskandscale(False)
            var.setncatts(
                {
                    "scale_factor": np.float32(scale),
                    "add_offset": np.float32(values[0]),
                    "units": "rad",
                    "axis": axis.upper(),
                    "long_name": f"GOES fixed grid projection {axis}-coordinate",
                    "standard_name": f"projection_{axis}_coordinate",
                }
            )
            var[:] = np.arange(len(values), dtype=np.int16)
        proj = nc.createVariable("goes_imager_projection", "i4")
        proj.setncatts(
            {
                "long_name": "GOES-R ABI fixed grid projection",
                "grid_mapping_name": "geostationary",
                "perspective_point_height": grid.perspective_point_height,
                "semi_major_axis": grid.semi_major_axis,
                "semi_minor_axis": grid.semi_minor_axis,
                "inverse_flattening": 298.2572221,
                "latitude_of_projection_origin": 0.0,
                "longitude_of_projection_origin": lon0,
                "sweep_angle_axis": "x",
            }
        )
        for name_, value, units in (
            ("x_image", (grid.x()[0] + grid.x()[-1]) / 2, "rad"),
            ("y_image", (grid.y()[0] + grid.y()[-1]) / 2, "rad"),
        ):
            var = nc.createVariable(name_, "f4")
            var.units = units
            var[...] = value
        for name_, value, units in (
            ("nominal_satellite_subpoint_lat", 0.0, "degrees_north"),
            ("nominal_satellite_subpoint_lon", sub_lon, "degrees_east"),
            ("nominal_satellite_height", 35786.023, "km"),
        ):
            var = nc.createVariable(name_, "f4", fill_value=np.float32(-999.0))
            var.units = units
            var[...] = value
        yaw = nc.createVariable("yaw_flip_flag", "i1", fill_value=np.int8(-1))
        yaw.setncatts(
            {
                "_Unsigned": "true",
                "units": "1",
                "flag_values": np.array([0, 1], dtype=np.int8),
                "flag_meanings": "false true",
            }
        )
        yaw[...] = 0
        band_id = nc.createVariable("band_id", "i1", ("band",))
        band_id.setncatts({"long_name": "ABI band number", "standard_name": "sensor_band_identifier", "units": "1"})
        band_id[:] = abi.number
        wavelength = nc.createVariable("band_wavelength", "f4", ("band",))
        wavelength.setncatts(
            {
                "long_name": "ABI band central wavelength",
                "units": "um",
                "standard_name": "sensor_band_central_radiation_wavelength",
            }
        )
        wavelength[:] = abi.band.central_um
        esun = abi.esun if isinstance(abi, AbiBand) else -999.0
        for name_, value, units in (
            ("esun", esun, "W m-2 um-1"),
            ("kappa0", np.pi * esd**2 / esun if esun > 0 else -999.0, "(W m-2 um-1)-1"),
            ("earth_sun_distance_anomaly_in_AU", esd, "ua"),
        ):
            var = nc.createVariable(name_, "f4", fill_value=np.float32(-999.0))
            var.units = units
            var[...] = value
        planck = (
            (self.thermal.fk1, self.thermal.fk2, self.thermal.bc1, self.thermal.bc2) if self.thermal else (-999.0,) * 4
        )
        for name_, value in zip(("planck_fk1", "planck_fk2", "planck_bc1", "planck_bc2"), planck, strict=True):
            var = nc.createVariable(name_, "f4", fill_value=np.float32(-999.0))
            var[...] = value

    def write(self, rows: slice, brf: np.ndarray, mu0: np.ndarray, valid: np.ndarray) -> None:
        """Write 2 km rows ``rows`` of BRF (replicated to the band's resolution)."""
        assert isinstance(self.abi, AbiBand)
        self._write_radiance(rows, brf * np.maximum(mu0, 0) * self.abi.esun / (np.pi * self.esd**2), valid)

    def write_brightness_temperature(self, rows: slice, temperature: np.ndarray, valid: np.ndarray) -> None:
        """Write 2 km rows ``rows`` of a thermal band from brightness temperatures (K)."""
        assert self.thermal is not None
        self._write_radiance(rows, self.thermal.radiance(np.where(valid, temperature, 250.0)), valid)

    def _write_radiance(self, rows: slice, radiance: np.ndarray, valid: np.ndarray) -> None:
        f = self.refinement
        counts = np.rint((radiance - self.abi.offset) / self.abi.scale)
        saturated = valid & (counts > self.max_count)
        counts = np.clip(counts, 0, self.max_count).astype(np.int16)
        counts[~valid] = 2**self.abi.bits - 1
        dqf = np.where(valid, np.where(saturated, 2, 0), -1).astype(np.int8)
        if f > 1:
            counts = np.repeat(np.repeat(counts, f, axis=0), f, axis=1)
            dqf = np.repeat(np.repeat(dqf, f, axis=0), f, axis=1)
            # texture below 2 km, zero-mean on each 2 km pixel's block: real 0.5 and 1 km files carry it,
            # and without it they compress several times better than real ones
            texture = np.random.default_rng([self.abi.number, rows.start]).normal(0.0, SUBPIXEL_TEXTURE, counts.shape)
            blocks = texture.reshape(counts.shape[0] // f, f, counts.shape[1] // f, f)
            texture = (blocks - blocks.mean(axis=(1, 3), keepdims=True)).reshape(counts.shape)
            textured = np.clip(np.rint(counts * (1.0 + texture)), 0, self.max_count).astype(np.int16)
            counts = np.where(dqf == 0, textured, counts)  # fill and saturated pixels stay as they are
        self.nc["Rad"][rows.start * f : rows.stop * f, :] = counts
        self.nc["DQF"][rows.start * f : rows.stop * f, :] = dqf
        good = radiance[valid]
        if good.size:
            self.stats["valid"] += int(valid.sum()) * f * f
            self.stats["sum"] += float(good.sum()) * f * f
            self.stats["sum2"] += float((good**2).sum()) * f * f
            self.stats["min"] = min(self.stats["min"], float(good.min()))
            self.stats["max"] = max(self.stats["max"], float(good.max()))
        self.stats["missing"] += int((~valid).sum()) * f * f
        self.stats["saturated"] += int(saturated.sum()) * f * f

    def finish(self) -> Path:
        nc, s = self.nc, self.stats
        n = max(s["valid"], 1)
        mean = s["sum"] / n
        for name, value, dtype in (
            ("valid_pixel_count", s["valid"], "i4"),
            ("missing_pixel_count", s["missing"], "i4"),
            ("saturated_pixel_count", s["saturated"], "i4"),
            ("undersaturated_pixel_count", 0, "i4"),
            ("min_radiance_value_of_valid_pixels", s["min"] if s["valid"] else -999.0, "f4"),
            ("max_radiance_value_of_valid_pixels", s["max"] if s["valid"] else -999.0, "f4"),
            ("mean_radiance_value_of_valid_pixels", mean, "f4"),
            ("std_dev_radiance_value_of_valid_pixels", max(s["sum2"] / n - mean**2, 0.0) ** 0.5, "f4"),
        ):
            var = nc.createVariable(name, dtype, fill_value=np.int32(-1) if dtype == "i4" else np.float32(-999.0))
            var[...] = value
        nc.close()
        return publish(self.tmp, self.final)

    def abort(self) -> None:
        if self.nc.isopen():
            self.nc.close()
        self.tmp.unlink(missing_ok=True)


def quick_brightness_temperature(state: AtmosphereState, names: Sequence[str]) -> np.ndarray:
    """A closed-form stand-in for the thermal simulator (benchmark scans only): the cloud's emissivity
    1 - exp(-COT / 2) mixes the skin and cloud-top Planck radiances."""
    bands = [THERMAL_BANDS[n] for n in names]
    skin = np.asarray(state.skin_temperature)
    air = skin - np.asarray(state.air_temperature_offset)
    tropopause = np.full(len(state), 210.0) if state.tropopause_temperature is None else state.tropopause_temperature
    top = temperature_at(state.cloud_top_pressure, state.surface_pressure, air, tropopause)
    cot = np.where(state.cloudy, 10.0 ** np.nan_to_num(state.log10_cot, nan=-9.0), 0.0)
    emissivity = (1 - np.exp(-cot / 2))[:, None]
    out = np.empty((len(state), len(bands)))
    for k, band in enumerate(bands):
        radiance = (1 - emissivity[:, 0]) * band.radiance(skin - 1.5) + emissivity[:, 0] * band.radiance(top)
        out[:, k] = band.brightness_temperature(radiance)
    return out


@dataclass(frozen=True)
class _RowBlock:
    """Positions and angles of one block of rows, and each pixel's render-block centre (flat index)."""

    v: np.ndarray
    u: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    sza: np.ndarray
    saz: np.ndarray
    vza: np.ndarray
    vaz: np.ndarray
    centre: np.ndarray

    def states(
        self, where: np.ndarray, fields: SceneFields, start: dt.datetime
    ) -> tuple[AtmosphereState, np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """Scene state at the block centres of the pixels ``where`` (row-major), each such pixel's
        index into it, and the centres' (row, column) indices. With blocks of one pixel, the pixels'
        own states in their own order."""
        rendered = np.unique(self.centre[where])
        r, c = np.divmod(rendered, self.lat.shape[1])
        coarse = scene_state(
            fields,
            self.v[r, c],
            self.u[r, c],
            self.lat[r, c],
            self.lon[r, c],
            self.sza[r, c],
            self.vza[r, c],
            relative_azimuth(self.vaz[r, c], self.saz[r, c]),
            start.timetuple().tm_yday,
        )
        return coarse, np.searchsorted(rendered, self.centre[where]), (r, c)


def write_abi_scene(
    out_dir: str | Path,
    start: dt.datetime,
    sector: str = "M1",
    platform: str = "G17",
    bands: Sequence[str] | None = None,
    seed: int = 0,
    block_rows: int = ON_DISK_CHUNK,
    cloud_fraction: float = 0.6,
    quick: bool = False,
    thermal: bool = False,
    block: int | None = None,
) -> list[Path]:
    """Render one ABI scan of synthetic scene into band files plus a truth file; returns their paths.

    ``quick`` swaps the RT models for closed forms (benchmark granules: format and size real,
    radiances only plausible); ``thermal`` adds the C07, C11, C13-C16 files, day and night.
    ``block`` > 1 renders the radiative transfer once per ``block`` x ``block`` pixels of the 2 km
    grid, as ``polar.render_swath`` does (truth and radiances share each block's state); None picks
    the smallest block that keeps the simulations within ``RENDERED_SAMPLE_BANDS``: 1 for a Meso
    scan, 3 for CONUS, 8 for a full disk (``quick``: 1).
    """
    if sector not in SECTORS:
        raise ValueError(f"unknown ABI sector {sector!r}: expected one of {', '.join(SECTORS)}")
    if platform not in PLATFORMS:
        raise ValueError(f"unknown GOES platform {platform!r}: expected one of {', '.join(PLATFORMS)}")
    names = requested_bands(bands, list(ABI_BAND_CONSTANTS), "ABI solar bands are C01-C06")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sec = SECTORS[sector]
    start = start.replace(tzinfo=None)
    end = start + dt.timedelta(seconds=sec.duration_s)
    created = end + dt.timedelta(seconds=5)
    _, lon0, sub_lon = PLATFORMS[platform]
    grid = GeostationaryGrid(lon0, sec.x0, sec.y0, STEP_2KM, sec.shape_2km)
    esd = float(sun_earth_distance_correction(start))
    abi_bands = [ABI_BAND_CONSTANTS[b] for b in names]
    bands_ = [a.band for a in abi_bands]
    quick_renderer = QuickLookRenderer(bands_) if quick else None
    thermal_bands = [ABI_THERMAL_CONSTANTS[b.name] for b in ABI_THERMAL_BANDS] if thermal else []
    files: list[AbiBand | AbiThermalBand] = [*abi_bands, *thermal_bands]
    thermal_model = ThermalSimulator([t.band for t in thermal_bands]) if thermal and not quick else None
    fields = SceneFields.generate(seed, cloud_fraction)
    rng = np.random.default_rng([seed, 0xAB1])
    writers = [
        _BandFile(
            out,
            abi_file_name(sec, a, platform, start, end, created),
            a,
            grid.refined(a.refinement if isinstance(a, AbiBand) else 1),
            sec,
            platform,
            start,
            end,
            esd,
        )
        for a in files
    ]
    granule_id = f"ABI-{sec.code}_{platform}_s{_stamp(start)}"
    truth = TruthWriter(
        out,
        granule_id,
        grid.shape,
        {
            "sensor": "abi",
            "platform": platform,
            "sector": sec.code,
            "time_coverage_start": start.isoformat() + "Z",
            "seed": seed,
        },
    )
    rows_total, cols = grid.shape
    block = block or (1 if quick else auto_block(rows_total * cols, len(files)))  # closed forms are cheap
    try:
        for first in range(0, rows_total, block_rows):
            rows = slice(first, min(first + block_rows, rows_total))
            lon, lat = grid.lonlat(rows)
            on_disk = np.isfinite(lat)
            sza = np.full(lat.shape, 180.0)  # off the disk: never day
            saz, vza, vaz = (np.zeros(lat.shape) for _ in range(3))
            if on_disk.any():
                sza[on_disk], saz[on_disk] = sun_angles(start, lon[on_disk], lat[on_disk])
                vza[on_disk], vaz[on_disk] = geostationary_sensor_angles(start, lon[on_disk], lat[on_disk], sub_lon)
            centre = block_centres(rows.stop - rows.start, cols, block)  # each pixel's block centre
            v = (np.arange(rows.start, rows.stop) / max(rows_total - 1, 1))[:, None] * np.ones((1, cols))
            u = np.ones((rows.stop - rows.start, 1)) * (np.arange(cols) / max(cols - 1, 1))[None, :]
            geometry = _RowBlock(v, u, lat, lon, sza, saz, vza, vaz, centre)
            day = on_disk & (sza < NIGHT_SOLAR_ZENITH) & (vza < 85)
            day &= day.ravel()[centre]
            brf = np.zeros((*lat.shape, len(abi_bands)), dtype=np.float32)
            coarse, of_pixel, _ = geometry.states(day, fields, start)
            state = coarse.take(of_pixel) if block > 1 else coarse
            if len(state):
                rendered_brf = (
                    quick_renderer.reflectance(coarse) if quick_renderer else simulate_in_parts(bands_, coarse)
                )
                clean = rendered_brf[of_pixel]
                brf[day] = clean * rng.normal(1.0, 0.005, clean.shape).astype(np.float32)
            mu0 = np.cos(np.radians(np.minimum(sza, 90.0)))
            for k, writer in enumerate(writers[: len(abi_bands)]):
                writer.write(rows, brf[..., k], mu0, on_disk)
            if thermal_bands:
                seen = on_disk & (vza < 85)
                seen &= seen.ravel()[centre]
                coarse_seen, of_seen, at = geometry.states(seen, fields, start)
                hot = with_temperatures(coarse_seen, lat[at], lon[at], start)
                bt = np.full((*lat.shape, len(thermal_bands)), 250.0)
                if len(hot):
                    rendered_bt = (
                        thermal_model.brightness_temperature(hot)
                        if thermal_model is not None
                        else quick_brightness_temperature(hot, [t.band.name for t in thermal_bands])
                    )
                    bt[seen] = rendered_bt[of_seen] + rng.normal(0.0, 0.1, (len(of_seen), len(thermal_bands)))
                for k, writer in enumerate(writers[len(abi_bands) :]):
                    writer.write_brightness_temperature(rows, bt[..., k], seen)
            truth.write(rows, day, state)
            logger.debug("rendered rows %d-%d of %d", rows.start, rows.stop, rows_total)
        paths = [w.finish() for w in writers]
        paths.append(truth.finish())
    except BaseException:
        for w in writers:
            w.abort()
        truth.abort()
        raise
    logger.info("wrote ABI %s %s scene at %s to %s", platform, sector, start, out)
    return paths
