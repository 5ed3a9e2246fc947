"""Granule -> ``xarray.Dataset`` "scene" on one grid, lazily, through satpy's readers.

The scene holds, all dask-backed with dims ``(y, x)``:

* ``reflectance_<band>``: BRF = pi L / (mu0 E0), unitless. satpy gives ABI and VIIRS reflectance in
  percent and *not* divided by cos(SZA) (pi L d^2 / E0); OCI's ``rhot`` already is a BRF.
* ``brightness_temperature_<band>``: thermal bands (ABI C07-C16, VIIRS M12-M16) in kelvin, as
  satpy calibrates them from the files' Planck constants.
* ``solar_zenith_angle``, ``sensor_zenith_angle``, ``relative_azimuth_angle`` (degrees; relative
  azimuth in the feature-spec convention, 0 = backscatter): from the geolocation files for VIIRS
  and OCI, from satpy/pyorbital for ABI;
* ``latitude``, ``longitude``;
* ``input_flags``: bit 1 no geolocation (space), bit 2 a band is fill, bit 4 a band is saturated
  or out of range (ABI ``DQF`` >= 2).

ABI bands are aggregated (mean) to the coarsest band's grid (2 km for C01-C06) with satpy's
native resampler; VIIRS M bands stay at 750 m, OCI at its native grid. Dask chunks are aligned
with the files' on-disk chunks (ABI: multiples of the 226-pixel file chunk, as Polar2Grid does).
Nothing is computed here.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from models.bands import sensor_bands
from models.spec import relative_azimuth
from pipeline.geometry_cache import fixed_geometry, solar_angles
from pipeline.granules import Granule, is_url
from pipeline.netcdf_lock import opening_files
from pipeline.sensors import (
    DEFAULT_CHUNK,
    INSTRUMENTS,
    OCI_SWIR_TOLERANCE_FRACTION,
    OCI_WAVELENGTH_TOLERANCE_NM,
    ReaderSpec,
    reader_spec,
)

logger = logging.getLogger(__name__)

# satpy's native resampler averages 0.5/1 km blocks with nanmean when the graph is computed, long
# after ingest returns: every block off the Earth's disk is all NaN by design, and a full disk would
# print dozens of "Mean of empty slice" warnings. Only that message from that module is silenced.
warnings.filterwarnings(
    "ignore", message="Mean of empty slice", category=RuntimeWarning, module="satpy.resample.native"
)

FLAG_NO_GEOLOCATION = 1
FLAG_FILL = 2
FLAG_SATURATED = 4
MU0_FLOOR = 0.01  # below this (SZA > 89.4 deg) no BRF is formed


class IngestError(ValueError):
    """A granule cannot be read into a scene."""


def check_file(path: str, reader: str) -> None:
    """Open the file's header; a clear error when it is truncated, foreign or the wrong product."""
    import h5py

    name = Path(path).name
    if is_url(path):
        if not reader_spec(reader).reads_urls:
            raise IngestError(
                f"satpy's {reader} reader reads local files only, and {name} is at a URL ({path}): copy the "
                "granule's files to a local directory and process them there"
            )
        return  # remote files are checked by satpy when opened
    try:
        with h5py.File(path, "r") as handle:
            keys = set(handle.keys())
    except FileNotFoundError:
        raise IngestError(f"file {path} does not exist") from None
    except OSError as err:
        reason = "truncated or corrupt" if Path(path).stat().st_size > 0 else "empty"
        raise IngestError(
            f"{name} is {reason}: it is not a readable netCDF-4/HDF5 file ({err.__class__.__name__})"
        ) from None
    spec = reader_spec(reader)
    if spec.required_any:
        if not keys.intersection(spec.required_content):
            raise IngestError(f"{name} is not a {reader} file: it has neither {' nor '.join(spec.required_content)}")
        return
    missing = [e for e in spec.required_content if e not in keys]
    if missing:
        raise IngestError(f"{name} is not a {reader} file: it lacks {', '.join(missing)}")


@contextmanager
def _chunking(spec: ReaderSpec, chunk_size: int) -> Any:
    """Steer satpy's resolution-based chunking so the target grid gets ``chunk_size`` chunks."""
    if spec.file_chunk:
        # satpy aligns the finest band's chunks to 4 file chunks; a 4x coarser target gets a quarter
        high_res = max(1, round(chunk_size * 4 / (4 * spec.file_chunk))) * 4 * spec.file_chunk
        with dask.config.set({"array.chunk-size": high_res**2 * 4}):
            yield
    else:
        with dask.config.set({"array.chunk-size": chunk_size**2 * 4}):
            yield


def _native_chunks(chunk_size: int) -> tuple[int, int]:
    """Chunks of a swath on its own grid: whole 16-line scans (VIIRS M bands) by ``chunk_size`` columns."""
    return max(16, chunk_size // 16 * 16), chunk_size


def _file_chunks(spec: ReaderSpec, paths: Sequence[str]) -> tuple[int, int] | None:
    """On-disk (rows, columns) chunk of the bands in a local file of the granule, if chunked."""
    import netCDF4

    dims = spec.xarray_chunk_dims
    for path in paths:
        if is_url(path):
            continue
        with netCDF4.Dataset(path) as handle:
            group = handle.groups.get(spec.band_group) if spec.band_group else handle
            for variable in group.variables.values() if group is not None else ():
                if variable.dimensions == dims:
                    chunking = variable.chunking()
                    return None if chunking == "contiguous" else (int(chunking[0]), int(chunking[1]))
    return None


def _reader_chunks(spec: ReaderSpec, paths: Sequence[str], chunk_size: int) -> tuple[int, int] | None:
    """Chunks for readers that take xarray's from reader_kwargs: near ``chunk_size``, whole scans,
    and whole file chunks (a file chunk split between two dask chunks would be decompressed twice)."""
    if spec.xarray_chunk_dims is None:
        return None
    rows, cols = _native_chunks(chunk_size)
    stored = _file_chunks(spec, paths)
    if stored is None:
        return rows, cols
    row_unit = math.lcm(16, stored[0])
    return max(1, round(rows / row_unit)) * row_unit, max(1, round(cols / stored[1])) * stored[1]


def _reader_kwargs(spec: ReaderSpec, chunks: tuple[int, int] | None) -> dict[str, Any]:
    """The reader's own chunks, where it takes them: read chunk by chunk, not band by band."""
    if spec.xarray_chunk_dims is None or chunks is None:
        return {}
    return {"reader_kwargs": {"xarray_kwargs": {"chunks": dict(zip(spec.xarray_chunk_dims, chunks, strict=True))}}}


def _oci_names(scene: Any, bands: Sequence[str]) -> dict[str, str]:
    """satpy dataset name for each project OCI band, by nearest central wavelength."""
    table = sensor_bands("oci")
    candidates = [
        (str(i["name"]), float(i["wavelength"].central) * 1e3)
        for i in scene.available_dataset_ids()
        if i.get("calibration") and i["calibration"].name == "reflectance" and str(i["name"]).startswith("chan_")
    ]
    if not candidates:
        raise IngestError("the OCI granule offers no reflectance bands")
    names = np.array([c[0] for c in candidates])
    centres = np.array([c[1] for c in candidates])
    out = {}
    for band in bands:
        spec_band = table.band(band)
        centre = spec_band.central_um * 1e3
        width = (spec_band.max_um - spec_band.min_um) * 1e3
        tolerance = max(OCI_WAVELENGTH_TOLERANCE_NM, OCI_SWIR_TOLERANCE_FRACTION * width if centre > 900 else 0)
        nearest = int(np.argmin(np.abs(centres - centre)))
        if abs(centres[nearest] - centre) > tolerance:
            raise IngestError(
                f"the OCI granule has no band within {tolerance:.1f} nm of {centre:.1f} nm ({band}); "
                f"nearest is {centres[nearest]:.1f} nm"
            )
        out[band] = str(names[nearest])
    return out


def _opened(path: str) -> Any:
    """A local path as is; a remote (fsspec) URL as an open file object."""
    if not is_url(path):
        return path
    import fsspec

    return fsspec.open(path, "rb").open()


def _satpy_files(paths: Sequence[str]) -> list[Any]:
    """Local paths, and fsspec URLs wrapped as satpy ``FSFile`` objects (readers that support fsspec)."""
    if not any(is_url(p) for p in paths):
        return list(paths)
    import fsspec
    from satpy.readers.core.remote import FSFile

    return [FSFile(fsspec.open(p, "rb")) if is_url(p) else p for p in paths]


def _quiet_satpy() -> Any:
    catcher = warnings.catch_warnings()
    catcher.__enter__()
    for message in (
        "invalid value encountered",
        "divide by zero",
        "All-NaN slice",
        "Mean of empty slice",
        "overflow encountered",
        # reader chunks follow the bands' file chunks; xarray says so of every other variable of the
        # group (quality flags, geolocation) whose file chunks differ
        "The specified chunks separate the stored chunks",
    ):
        warnings.filterwarnings("ignore", message=message)
    warnings.filterwarnings("ignore", category=UserWarning, module="pyproj")
    warnings.filterwarnings("ignore", category=FutureWarning, module="satpy")
    return catcher


def _abi_dqf_flags(granule: Granule, bands: Sequence[str], target_shape: tuple[int, int], chunks: Any) -> Any:
    """FLAG_SATURATED where any band's DQF >= 2 (out of range / no value), at the target grid.

    Each DQF is read in blocks that cover whole target chunks (the target chunks scaled by the band's
    resolution factor), so one task reads all the file chunks under a target chunk and reduces them
    there; read in the files' own 226 x 226 chunks, a Meso scan's eleven DQFs were 219 reads and a
    third of the time it took to read the scan.
    """
    flags = None
    spec = granule.spec
    target_chunks = da.core.normalize_chunks(chunks, target_shape)
    for band in bands:
        file_type = spec.band_keys[band] if spec.band_keys else band
        path = next(f.path for f in granule.files if f.file_type == file_type)
        # left open, as satpy leaves the band files: the blocks are read when the graph runs. xarray's
        # file cache could reopen a closed local file then, but not a remote (fsspec) file object.
        # cache=False: each block is read when a task asks for it, the whole DQF is never kept
        dqf_var = xr.open_dataset(_opened(path), mask_and_scale=False, decode_times=False, cache=False)["DQF"]
        factor = dqf_var.shape[0] // target_shape[0]
        scaled = (tuple(c * factor for c in axis) for axis in target_chunks)
        blocks = dict(zip(dqf_var.dims, scaled, strict=True))
        dqf = dqf_var.chunk(blocks).data.astype(np.uint8)  # _Unsigned int8: fill -1 reads as 255
        bad = (dqf >= 2) & (dqf != 255)
        if factor > 1:
            bad = da.coarsen(np.any, bad, {0: factor, 1: factor}, trim_excess=True)
        bad = bad.rechunk(target_chunks)
        flags = bad if flags is None else flags | bad
    return da.where(flags, FLAG_SATURATED, 0).astype(np.uint8)


def _angles_from_satpy(reference: xr.DataArray) -> tuple[Any, Any, Any]:
    from satpy.modifiers.angles import get_angles

    sat_az, sat_zen, sun_az, sun_zen = get_angles(reference)
    return sun_zen.data, sat_zen.data, relative_azimuth(sat_az.data, sun_az.data)


def _angles_from_files(scene: Any) -> tuple[Any, Any, Any]:
    scene.load(["solar_zenith_angle", "solar_azimuth_angle", "satellite_zenith_angle", "satellite_azimuth_angle"])
    return (
        scene["solar_zenith_angle"].data,
        scene["satellite_zenith_angle"].data,
        relative_azimuth(scene["satellite_azimuth_angle"].data, scene["solar_azimuth_angle"].data),
    )


def ingest(granule: Granule, bands: Sequence[str], chunk_size: int = DEFAULT_CHUNK) -> xr.Dataset:
    """The lazy scene of ``granule`` for the given project band names.

    The files are opened under the process-wide netCDF lock (``pipeline.netcdf_lock``), whoever calls.
    """
    with opening_files():
        return _ingest(granule, bands, chunk_size)


def _ingest(granule: Granule, bands: Sequence[str], chunk_size: int) -> xr.Dataset:
    from satpy import Scene

    spec = granule.spec
    granule.require(bands)
    paths = granule.used_paths(bands)
    for path in paths:
        check_file(path, spec.reader)
    catcher = _quiet_satpy()
    try:
        with _chunking(spec, chunk_size):
            try:
                reader_chunks = _reader_chunks(spec, paths, chunk_size)
                scene = Scene(reader=spec.reader, filenames=_satpy_files(paths), **_reader_kwargs(spec, reader_chunks))
            except (OSError, ValueError, KeyError) as err:
                raise IngestError(f"satpy's {spec.reader} reader cannot open granule {granule.id}: {err}") from None
            satpy_names = _oci_names(scene, bands) if spec.band_by_wavelength else {b: b for b in bands}
            available = set(scene.available_dataset_names())
            absent = [b for b, name in satpy_names.items() if name not in available]
            if absent:
                raise IngestError(f"granule {granule.id} has no readable {', '.join(absent)}")
            table = sensor_bands(granule.sensor)
            thermal = {b for b in bands if table.is_thermal(b)}
            try:
                for calibration, group in (("reflectance", set(bands) - thermal), ("brightness_temperature", thermal)):
                    if group:
                        scene.load([satpy_names[b] for b in bands if b in group], calibration=calibration)
            except (OSError, KeyError, ValueError) as err:
                raise IngestError(f"cannot read the bands of granule {granule.id}: {err}") from None
            if spec.target_resolution == "coarsest":
                scene = scene.resample(scene.coarsest_area(), resampler="native")
            # by name from one pass over the scene: each ``scene[name]`` searches every dataset the
            # reader offers, 6 ms a band on OCI's 223 (1.4 s a granule)
            loaded = {str(array.attrs["name"]): array for array in scene}
            reference = loaded[satpy_names[bands[0]]]
            area = reference.attrs["area"]
            shape = reference.shape
            chunks = reference.data.chunks
            if spec.target_resolution == "native":
                chunks = reader_chunks or _native_chunks(chunk_size)
            fixed = fixed_geometry(reference, reference.data.chunks) if spec.grid == "geostationary" else None
            lons: Any
            lats: Any
            if fixed is not None:  # computed once per grid, memory-mapped; only the sun moves
                lons, lats = fixed["longitude"], fixed["latitude"]
                sun_zen, sun_az = solar_angles(lons, lats, reference.attrs["start_time"])
                sat_zen, rel_az = fixed["sensor_zenith"], relative_azimuth(fixed["sensor_azimuth"], sun_az)
            else:
                if spec.angles == "satpy":
                    sun_zen, sat_zen, rel_az = _angles_from_satpy(reference)
                else:
                    sun_zen, sat_zen, rel_az = _angles_from_files(scene)
                lons, lats = area.get_lonlats(chunks=chunks) if hasattr(area, "get_lonlats") else (None, None)
    finally:
        catcher.__exit__(None, None, None)

    def grid(array: Any) -> Any:
        return da.asarray(array).rechunk(chunks)

    lats, lons = grid(lats), grid(lons)
    lats = da.where(da.fabs(lats) <= 90, lats, np.nan)
    lons = da.where(da.fabs(lons) <= 360, lons, np.nan)
    sun_zen, sat_zen, rel_az = grid(sun_zen), grid(sat_zen), grid(rel_az)
    mu0 = da.cos(da.deg2rad(sun_zen))
    data_vars: dict[str, Any] = {}
    thermal_missing = solar_missing = da.zeros(shape, chunks=chunks, dtype=bool)
    for band, name in satpy_names.items():
        if band in thermal:
            values = grid(loaded[name].data).astype(np.float32)
            attrs = {"units": "K", "long_name": f"{band} brightness temperature"}
            data_vars[f"brightness_temperature_{band}"] = (("y", "x"), values, attrs)
            thermal_missing = thermal_missing | da.isnan(values)
            continue
        values = grid(loaded[name].data).astype(np.float32) / np.float32(100.0)
        if spec.reflectance == "brf_times_mu0":
            values = da.where(mu0 > MU0_FLOOR, values / da.maximum(mu0, MU0_FLOOR), np.nan).astype(np.float32)
        data_vars[f"reflectance_{band}"] = (("y", "x"), values, {"units": "1", "long_name": f"{band} BRF"})
        solar_missing = solar_missing | da.isnan(values)
    # without sun a solar band has no reflectance, which is not a fill (the night model reads none)
    fill = thermal_missing | (solar_missing & ~(mu0 <= MU0_FLOOR))
    no_geo = da.isnan(lats) | da.isnan(lons)
    flags = da.where(no_geo, FLAG_NO_GEOLOCATION, 0) | da.where(fill & ~no_geo, FLAG_FILL, 0)
    if spec.quality_flags == "abi_dqf":
        flags = flags | _abi_dqf_flags(granule, bands, shape, chunks)
    data_vars.update(
        {
            "solar_zenith_angle": (("y", "x"), sun_zen.astype(np.float32), {"units": "degree"}),
            "sensor_zenith_angle": (("y", "x"), sat_zen.astype(np.float32), {"units": "degree"}),
            "relative_azimuth_angle": (("y", "x"), rel_az.astype(np.float32), {"units": "degree"}),
            "latitude": (("y", "x"), lats.astype(np.float32), {"units": "degrees_north"}),
            "longitude": (("y", "x"), lons.astype(np.float32), {"units": "degrees_east"}),
            "input_flags": (
                ("y", "x"),
                flags.astype(np.uint8),
                {"flag_masks": [1, 2, 4], "flag_meanings": "no_geolocation fill saturated"},
            ),
        }
    )
    coords: dict[str, Any] = {}
    if spec.grid == "geostationary":
        x, y = area.get_proj_vectors()
        height = float(reference.attrs["orbital_parameters"]["projection_altitude"])
        coords = {"x": ("x", (x / height).astype(np.float64)), "y": ("y", (y / height).astype(np.float64))}
    ds = xr.Dataset(data_vars, coords=coords)
    ds.attrs.update(
        {
            "sensor": granule.sensor,
            "instrument": INSTRUMENTS[granule.sensor],
            "reader": spec.reader,
            "platform": granule.platform,
            "platform_name": granule.platform_name,
            "sector": granule.sector or "",
            "granule_id": granule.id,
            # the granule's own span (earliest start, latest end of its files) names the product
            "start_time": granule.start_time,
            "end_time": granule.end_time,
            "source_files": [Path(p).name for p in paths],
            "bands": list(bands),
            "area": area,
        }
    )
    logger.debug("ingested %s: %s pixels, chunks %s", granule.id, shape, chunks)
    return ds
