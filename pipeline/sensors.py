"""The supported imagers as data: satpy reader, band files, geolocation, reflectance convention.

Adding a sensor, a reader or a band subset is a change to these tables, not new control flow.
``band_keys`` says where a band lives among a granule's files: the satpy file type (ABI: one
file per band) or the dataset group (VIIRS SDR: one file per band); ``None`` means every band is in
the granule's main file (VIIRS L1B, OCI). ``geolocation`` lists alternatives of which one must be
present.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from models.bands import SensorName

__all__ = ["DEFAULT_CHUNK", "READERS", "DeviceName", "ReaderSpec", "SensorName"]

ReflectanceConvention = Literal["brf_times_mu0", "brf"]


# Pixels per side of a dask chunk on the target grid, the one default of the CLI, the flows and the
# library: ABI 2 km: 3 x 226 (the file chunk), 8 chunks per 5424-pixel full-disk row. Measured on a
# full disk with the thermal day model and the night model beside it (tests/bench): 2.77 GB peak
# and 190k pixels/s on 2 CPU cores, against 3.76 GB and 174k pixels/s with 1356-pixel chunks. GPU
# workers want larger chunks: pass --chunk-size 1356 or more where memory allows.
DEFAULT_CHUNK = 678


class DeviceName(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Precision(StrEnum):
    """Arithmetic of the network (``models.runner.PRECISIONS``); bfloat16 only where its check allows."""

    float32 = "float32"
    bfloat16 = "bfloat16"


@dataclass(frozen=True)
class ReaderSpec:
    reader: str
    sensor: str
    description: str
    group_keys: tuple[str, ...]  # file-name fields that identify one scan (after the start time)
    band_keys: dict[str, str] | None  # project band -> file type / dataset group, or None (one file)
    main_files: tuple[str, ...]  # file types (or groups) that must be present, beyond the bands
    geolocation: tuple[str, ...] = ()  # any one of these companions is needed
    reflectance: ReflectanceConvention = "brf_times_mu0"
    angles: Literal["satpy", "datasets"] = "datasets"
    band_by_wavelength: bool = False  # OCI: pick file bands by nearest central wavelength
    target_resolution: Literal["coarsest", "native"] = "native"
    platform_key: str = "platform_shortname"
    sector_key: str | None = None
    nominal_duration_s: float = 0.0  # granule length, for file names that carry no end time
    # Scan slot by "sector/scan mode" or "sector": a scan's end is its start plus this, whatever
    # band files are present (ABI bands of one scan end at different seconds).
    slot_durations_s: dict[str, float] | None = None
    scan_mode_key: str | None = None
    # what each file must contain, checked before satpy opens it (one clear error per file); with
    # required_any, one of the entries suffices (VIIRS L1B: observation or geolocation file)
    required_content: tuple[str, ...] = ()
    required_any: bool = False
    file_chunk: int | None = None  # on-disk chunk of the finest band: dask chunks are multiples of it
    # (rows, columns) dimension names of readers that take xarray's chunks from reader_kwargs: without
    # them satpy reads each band as one 4096-pixel chunk (its import-time default), band by band
    xarray_chunk_dims: tuple[str, str] | None = None
    # readers with every band in one file (band_keys None): the group of the main file whose
    # variables are the bands, so a granule knows which it has (VIIRS L1B carries M12-M16 or not)
    band_group: str | None = None
    quality_flags: Literal["abi_dqf"] | None = None  # per-band data-quality flags read into input_flags
    grid: Literal["geostationary", "swath"] = "swath"
    # whether satpy's reader opens fsspec URLs (as FSFile); viirs_l1b hands netCDF4 a local path only
    reads_urls: bool = True


# ABI timeline slots (GOES-R PUG vol. 3): mode 6 full disk 10 min, mode 3 15 min, mode 4 5 min;
# CONUS/PACUS 5 min; each mesoscale sector 1 min.
ABI_SLOTS_S = {"F": 600.0, "F/M3": 900.0, "F/M4": 300.0, "C": 300.0, "M1": 60.0, "M2": 60.0}


ABI_BAND_FILES = {f"C{n:02d}": f"c{n:02d}" for n in range(1, 17)}  # solar C01-C06, thermal C07-C16
VIIRS_M = [f"M{n:02d}" for n in range(1, 17)]  # solar M01-M11, thermal M12-M16

READERS: dict[str, ReaderSpec] = {
    "abi_l1b": ReaderSpec(
        reader="abi_l1b",
        sensor="abi",
        description="GOES-R ABI L1b radiances (one file per band)",
        group_keys=("platform_shortname", "scene_abbr"),
        band_keys=ABI_BAND_FILES,
        main_files=(),
        reflectance="brf_times_mu0",
        angles="satpy",
        target_resolution="coarsest",
        sector_key="scene_abbr",
        slot_durations_s=ABI_SLOTS_S,
        scan_mode_key="scan_mode",
        required_content=("Rad", "goes_imager_projection", "x", "y"),
        file_chunk=226,
        quality_flags="abi_dqf",
        grid="geostationary",
    ),
    "viirs_l1b": ReaderSpec(
        reader="viirs_l1b",
        sensor="viirs",
        description="NASA VIIRS L1B (VNP02MOD/VJ102MOD + VNP03MOD/VJ103MOD)",
        group_keys=("platform_shortname",),
        band_keys=None,
        main_files=("vl1bm",),
        geolocation=("vgeom",),
        nominal_duration_s=360.0,
        required_content=("observation_data", "geolocation_data"),
        required_any=True,
        band_group="observation_data",
        xarray_chunk_dims=("number_of_lines", "number_of_pixels"),
        reads_urls=False,
    ),
    "viirs_sdr": ReaderSpec(
        reader="viirs_sdr",
        sensor="viirs",
        description="NOAA VIIRS SDR (SVMnn + GMTCO/GMODO HDF5)",
        group_keys=("platform_shortname",),
        band_keys={b: f"SVM{b[1:]}" for b in VIIRS_M},
        main_files=(),
        geolocation=("GMTCO", "GMODO"),
        required_content=("All_Data", "Data_Products"),
    ),
    "pace_oci_l1b_nc": ReaderSpec(
        reader="pace_oci_l1b_nc",
        sensor="oci",
        description="PACE OCI L1B (netCDF-4)",
        group_keys=(),
        band_keys=None,
        main_files=("oci_l1b",),
        reflectance="brf",
        band_by_wavelength=True,
        platform_key="",
        nominal_duration_s=300.0,
        required_content=("observation_data", "geolocation_data", "sensor_band_parameters"),
    ),
}

SENSOR_READERS: dict[str, tuple[str, ...]] = {
    "abi": ("abi_l1b",),
    "viirs": ("viirs_l1b", "viirs_sdr"),
    "oci": ("pace_oci_l1b_nc",),
}

# ABI file names carry G16-G19; VIIRS NP/J1/J2 (L1B) or npp/j01/j02 (SDR); OCI is on PACE
PLATFORM_NAMES = {
    "G16": "GOES-16",
    "G17": "GOES-17",
    "G18": "GOES-18",
    "G19": "GOES-19",
    "NP": "Suomi-NPP",
    "npp": "Suomi-NPP",
    "J1": "NOAA-20",
    "j01": "NOAA-20",
    "J2": "NOAA-21",
    "j02": "NOAA-21",
    "PACE": "PACE",
}
PLATFORM_CODES = {
    "GOES-16": "G16",
    "GOES-17": "G17",
    "GOES-18": "G18",
    "GOES-19": "G19",
    "Suomi-NPP": "NPP",
    "NOAA-20": "N20",
    "NOAA-21": "N21",
    "PACE": "PACE",
}
INSTRUMENTS = {"abi": "ABI", "viirs": "VIIRS", "oci": "OCI"}

OCI_WAVELENGTH_TOLERANCE_NM = 1.3  # half the 2.5 nm hyperspectral step
OCI_SWIR_TOLERANCE_FRACTION = 0.2  # of the bandpass


def reader_spec(reader: str) -> ReaderSpec:
    try:
        return READERS[reader]
    except KeyError:
        raise ValueError(f"unknown reader {reader!r}: supported are {', '.join(READERS)}") from None


def readers_for(sensor: str) -> tuple[str, ...]:
    try:
        return SENSOR_READERS[sensor]
    except KeyError:
        raise ValueError(f"unknown sensor {sensor!r}: expected one of {', '.join(SENSOR_READERS)}") from None
