"""CF-1.10 / ACDD-1.3 cloud products: one NetCDF-4 file per granule, written atomically.

The format is ``shared/docs/product-conventions.md``: cloud mask, mask probability, phase, phase
probability, COT (linear), COT class, retrieval quality with reason codes, the geostationary grid
mapping (ABI) or swath latitude/longitude (VIIRS, OCI), time and provenance. Files go to a temporary
name in the destination directory, are fsynced and renamed, so no half-written product is ever
visible; an existing product of the same granule is replaced only when asked.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import netCDF4
import numpy as np
import xarray as xr
from xarray.backends import NetCDF4DataStore
from xarray.backends.common import ArrayWriter

try:
    from xarray.backends.writers import dump_to_store
except ImportError:  # xarray before the writers module split from backends.api
    from xarray.backends.api import dump_to_store  # type: ignore[attr-defined,no-redef]

from models import MODEL_NAME
from models.artifact import FOUR_LEVEL_MASK_THRESHOLDS, Artifact
from models.fileio import publish, temporary_path
from pipeline import schema
from pipeline.chunk_sink import ChunkSink, ChunkWriter, encoded_blocks, store_chunks
from pipeline.compute import cluster_client, compute_and_join
from pipeline.features import GOOD, QUALITY_MEANINGS, cot_retrieved, mask_retrieved
from pipeline.gridded import gridded_products
from pipeline.inference import OUTPUTS
from pipeline.netcdf_lock import netcdf_lock
from pipeline.quicklook import quicklook_path, write_quicklook
from pipeline.sensors import PLATFORM_CODES

logger = logging.getLogger(__name__)

FILL_U1 = schema.fill_value(np.uint8)
FILL_F4 = schema.fill_value(np.float32)
COT_MAX = float(schema.variable_attributes("cloud_optical_thickness")["valid_range"][1])


class ProductExistsError(FileExistsError):
    """A different product of the same granule is already there."""


def _name_fields(attrs: dict[str, Any]) -> dict[str, Any]:
    return {
        "platform_shortname": PLATFORM_CODES.get(attrs["platform_name"], attrs["platform"]),
        "sensor": attrs["sensor"],
        "sector": attrs.get("sector") or "SWATH",
        "start_time": attrs["start_time"],
        "end_time": attrs["end_time"],
    }


def product_stem(attrs: dict[str, Any]) -> str:
    """The granule's identity in product names: platform, sensor, sector and the scan's nominal span.

    Derived from the granule's own metadata (never from user strings); two runs of one scan get the
    same stem whatever band files they were given, so they claim, find and replace the same product.
    """
    return schema.file_name("stem", **_name_fields(attrs))


def product_name(attrs: dict[str, Any], model_version: str, created: dt.datetime) -> str:
    """The product file name: the granule's stem, the creation time and the model version."""
    return schema.file_name("product", creation_time=created, model_version=model_version, **_name_fields(attrs))


def product_pattern(attrs: dict[str, Any], model_version: str) -> str:
    """Glob matching any product of the same granule and model version, whatever its creation time."""
    return schema.file_glob("product", model_version=model_version, **_name_fields(attrs))


# The product variables derived from the model's outputs, in the order ``_derived_block`` stacks them.
DERIVED = (
    "cloud_mask",
    "cloud_mask_probability",
    "cloud_mask_4level",
    "cloud_phase",
    "cloud_phase_probability",
    "cloud_optical_thickness",
    "cloud_optical_thickness_uncertainty",
    "cloud_optical_thickness_class",
)


def _most_probable(thin: np.ndarray, moderate: np.ndarray, thick: np.ndarray) -> np.ndarray:
    """The index of the largest of three probabilities, the first on a tie (as ``argmax``), element
    by element, without stacking them."""
    first_two = np.where(moderate > thin, np.uint8(1), np.uint8(0))
    return np.where(thick > np.maximum(thin, moderate), np.uint8(2), first_two)


def _derived_block(
    quality: np.ndarray,
    p_cloudy: np.ndarray,
    p_ice: np.ndarray,
    thin: np.ndarray,
    moderate: np.ndarray,
    thick: np.ndarray,
    log10_cot: np.ndarray,
    log10_cot_uncertainty: np.ndarray,
) -> np.ndarray:
    """One chunk's ``DERIVED`` variables, stacked in float32 (the codes 0-3 and 255 are exact in it).

    One task per chunk where the same values took some twenty small dask operations, so a full
    disk's graph is smaller and the rules of the product read in one place.
    """
    retrieved = mask_retrieved(quality)  # mask and phase: day or night model
    cloudy = retrieved & (p_cloudy >= 0.5)
    with_cot = cloudy & cot_retrieved(quality)  # COT: the day model only
    four_level = sum((p_cloudy >= t).astype(np.uint8) for t in FOUR_LEVEL_MASK_THRESHOLDS)
    phase = np.where(p_ice > 0.5, np.uint8(2), np.uint8(1))
    with np.errstate(over="ignore", invalid="ignore"):  # 10 ** NaN and the far tail, clipped below
        cot = np.clip(10.0**log10_cot, 0, COT_MAX)
    values = {
        "cloud_mask": np.where(retrieved, cloudy, FILL_U1),
        "cloud_mask_probability": np.where(retrieved, p_cloudy, np.nan),
        "cloud_mask_4level": np.where(retrieved, four_level, FILL_U1),
        "cloud_phase": np.where(retrieved, np.where(cloudy, phase, np.uint8(0)), FILL_U1),
        "cloud_phase_probability": np.where(cloudy, p_ice, np.nan),
        "cloud_optical_thickness": np.where(with_cot, cot, np.nan),
        "cloud_optical_thickness_uncertainty": np.where(with_cot, log10_cot_uncertainty, np.nan),
        "cloud_optical_thickness_class": np.where(with_cot, _most_probable(thin, moderate, thick), FILL_U1),
    }
    return np.stack([values[name] for name in DERIVED], dtype=np.float32)


def _values(scene: xr.Dataset, quality: xr.DataArray, outputs: xr.Dataset) -> dict[str, Any]:
    """Every 2-D product variable's values (lazy), before their dtype and attributes from the schema."""
    q = quality.data
    derived = da.map_blocks(
        _derived_block,
        q,
        *(outputs[name].data for name in OUTPUTS),  # the order of _derived_block's arguments
        new_axis=0,
        chunks=((len(DERIVED),), *q.chunks),
        dtype=np.float32,
        meta=np.empty((0, 0, 0), dtype=np.float32),
    )
    return {
        **{name: derived[i] for i, name in enumerate(DERIVED)},
        "retrieval_quality": q,
        "solar_zenith_angle": scene["solar_zenith_angle"].data,
        "sensor_zenith_angle": scene["sensor_zenith_angle"].data,
    }


def build_product(scene: xr.Dataset, quality: xr.DataArray, outputs: xr.Dataset, artifact: Artifact) -> xr.Dataset:
    """The product dataset (lazy): values computed here, names, dtypes and attributes from the schema."""
    swath = "x" not in scene.coords
    context = {
        "four_level_thresholds": ", ".join(f"{t:g}" for t in FOUR_LEVEL_MASK_THRESHOLDS),
        "interval95_factor": np.float32(artifact.interval95_factor),
        "quality_codes": list(range(len(QUALITY_MEANINGS))),
        "quality_meanings": " ".join(QUALITY_MEANINGS),
    }
    grid_mapping = {} if swath else {"grid_mapping": "goes_imager_projection"}
    values = _values(scene, quality, outputs)
    data_vars: dict[str, Any] = {
        name: (
            ("y", "x"),
            values[name].astype(schema.variable_dtype(name)),
            {**schema.variable_attributes(name, context), **grid_mapping},
        )
        for name in schema.variable_names()
    }
    start, end = scene.attrs["start_time"], scene.attrs["end_time"]
    epoch = dt.datetime(1970, 1, 1)
    seconds = [(start - epoch).total_seconds(), (end - epoch).total_seconds()]
    coords: dict[str, Any] = {
        "time": (("time",), [seconds[0]], schema.coordinate_attributes("time")),
        "latitude": (("y", "x"), scene["latitude"].data.astype(np.float32), schema.coordinate_attributes("latitude")),
        "longitude": (
            ("y", "x"),
            scene["longitude"].data.astype(np.float32),
            schema.coordinate_attributes("longitude"),
        ),
        "altitude": ((), 0.0, schema.coordinate_attributes("altitude")),
    }
    data_vars["time_bounds"] = (("time", "nv"), np.array([seconds]), schema.coordinate_attributes("time_bounds"))
    if not swath:
        mapping = _geostationary_mapping(scene)
        height = mapping["perspective_point_height"]
        for axis in ("x", "y"):
            attrs = schema.coordinate_attributes("projection_axis", {"axis": axis, "AXIS": axis.upper()})
            coords[axis] = (axis, scene[axis].values * height, attrs)
        data_vars["goes_imager_projection"] = ((), np.int32(0), mapping)
    product = xr.Dataset(data_vars, coords=coords)
    product.attrs = _global_attributes(scene, artifact)
    return product


def _geostationary_mapping(scene: xr.Dataset) -> dict[str, Any]:
    area = scene.attrs["area"]
    params = area.crs.to_cf()
    return {
        "long_name": "GOES-R ABI fixed grid projection",
        "grid_mapping_name": "geostationary",
        "perspective_point_height": float(params["perspective_point_height"]),
        "semi_major_axis": float(params["semi_major_axis"]),
        "semi_minor_axis": float(params["semi_minor_axis"]),
        "inverse_flattening": float(params.get("inverse_flattening", 298.257222101)),
        "latitude_of_projection_origin": 0.0,
        "longitude_of_projection_origin": float(params["longitude_of_projection_origin"]),
        "sweep_angle_axis": str(params.get("sweep_angle_axis", "x")),
    }


def _global_attributes(scene: xr.Dataset, artifact: Artifact) -> dict[str, Any]:
    """The schema's constant global attributes and those of this granule, model and run."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    start, end = scene.attrs["start_time"], scene.attrs["end_time"]
    iso = "%Y-%m-%dT%H:%M:%SZ"
    instrument = scene.attrs["instrument"]
    duration = f"PT{max((end - start).total_seconds(), 0):.0f}S"
    return {
        **schema.global_attributes(),
        "title": f"MT-HCCAR cloud mask, phase and optical thickness from {scene.attrs['platform_name']} {instrument}",
        "summary": (
            "Level-2 cloud mask, cloud top phase and cloud optical thickness retrieved per pixel from "
            f"{instrument} solar-reflective bands with MT-HCCAR, a multi-task network with hierarchical "
            "classification (mask, then phase) and classification-assisted attention regression (COT)."
        ),
        "id": str(uuid.uuid4()),
        "uuid": "",
        "source": " ".join(scene.attrs["source_files"]),
        "history": f"{now.strftime(iso)} created by mthccar from {len(scene.attrs['source_files'])} input files",
        "date_created": now.strftime(iso),
        "date_modified": now.strftime(iso),
        "date_issued": now.strftime(iso),
        "date_metadata_modified": now.strftime(iso),
        "cdm_data_type": "Grid" if "x" in scene.coords else "Swath",
        "platform": scene.attrs["platform_name"],
        "instrument": instrument,
        "model_name": MODEL_NAME,
        "model_version": artifact.version,
        "model_artifact": artifact.name,
        "model_sha256": artifact.sha256,
        "model_attention": str(artifact.metadata.get("attention", "")),
        "ancillary_sources": "; ".join(f"{k}: {v}" for k, v in scene.attrs.get("ancillary", {}).items()),
        "time_coverage_start": start.strftime(iso),
        "time_coverage_end": end.strftime(iso),
        "time_coverage_duration": duration,
        "time_coverage_resolution": duration,
        "granule_id": scene.attrs["granule_id"],
    }


def _summary(product: xr.Dataset) -> dict[str, Any]:
    """Lazy reductions for the run summary and the geospatial attributes."""
    mask = product["cloud_mask"].data
    phase = product["cloud_phase"].data
    quality = product["retrieval_quality"].data
    retrieved = mask_retrieved(quality)
    stats: dict[str, Any] = {
        "pixels": np.int64(quality.size),
        "retrieved": retrieved.sum(),
        "good": (quality == GOOD).sum(),
        "cloudy": (mask == 1).sum(),
        "liquid": (phase == 1).sum(),
        "ice": (phase == 2).sum(),
        "quality_counts": da.bincount(quality.ravel(), minlength=len(QUALITY_MEANINGS)),
    }
    lat, lon = product["latitude"].data, product["longitude"].data
    stats.update(lat_min=da.nanmin(lat), lat_max=da.nanmax(lat), lon_min=da.nanmin(lon), lon_max=da.nanmax(lon))
    return stats


def existing_products(out_dir: Path, attrs: dict[str, Any], model_version: str) -> list[Path]:
    return sorted(out_dir.glob(product_pattern(attrs, model_version)))


def same_product(path: Path, sources: list[str], sha256: str) -> bool:
    """Whether an existing product was made from the same inputs with the same model."""
    try:
        with netcdf_lock(), netCDF4.Dataset(path) as nc:
            return bool(nc.getncattr("model_sha256") == sha256 and nc.getncattr("source") == " ".join(sources))
    except (OSError, AttributeError):
        return False


@dataclass
class StagedProduct:
    """A computed product under its temporary name, ready to be published (small: paths and counts)."""

    staging: Path
    final: Path
    replaces: list[Path]
    stats: dict[str, Any]

    @property
    def stem(self) -> str:
        return self.final.name.rsplit("_c", 1)[0]


@dataclass
class Published:
    product: Path
    quicklook: Path | None
    gridded: tuple[Path, ...] = ()


def check_existing(
    product_attrs: dict[str, Any], scene_attrs: dict[str, Any], out_dir: Path, overwrite: bool
) -> tuple[Path | None, list[Path]]:
    """(identical existing product, products to replace); refuses a different one without ``overwrite``."""
    version = str(product_attrs["model_version"])
    previous = existing_products(out_dir, scene_attrs, version)
    if previous and not overwrite:
        sources = list(scene_attrs["source_files"])
        if all(same_product(p, sources, product_attrs["model_sha256"]) for p in previous):
            return previous[0], []
        raise ProductExistsError(
            f"{previous[0]} is a different product of the same granule "
            "(other inputs or model); pass --overwrite to replace it"
        )
    return None, previous


def _encoding(product: xr.Dataset) -> dict[str, dict[str, Any]]:
    chunks = product["cloud_mask"].data.chunksize
    compressed = {"zlib": True, "complevel": 4, "shuffle": True}
    encoding: dict[str, dict[str, Any]] = {}
    for name, var in product.data_vars.items():
        if var.ndim == 2:
            encoding[str(name)] = {
                **compressed,
                "chunksizes": tuple(min(c, s) for c, s in zip(chunks, var.shape, strict=True)),
                "_FillValue": FILL_U1 if var.dtype == np.uint8 else FILL_F4,
            }
        else:
            encoding[str(name)] = {"_FillValue": None}
    encoding["time_bounds"] = {"_FillValue": None, "dtype": "float64"}
    for name in ("latitude", "longitude"):
        encoding[name] = {
            **compressed,
            "_FillValue": FILL_F4,
            "chunksizes": tuple(min(c, s) for c, s in zip(chunks, product[name].shape, strict=True)),
        }
    for name in ("time", "x", "y", "altitude"):
        if name in product.coords:
            encoding[name] = {"_FillValue": None, "dtype": "float64"}
    return encoding


def stage_product(
    product: xr.Dataset, scene_attrs: dict[str, Any], out_dir: str | Path, replaces: list[Path] | None = None
) -> StagedProduct:
    """Compute the product into a temporary file beside its final name (one pass over the data)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    created = dt.datetime.strptime(product.attrs["date_created"], "%Y-%m-%dT%H:%M:%SZ")
    final = out / product_name(scene_attrs, str(product.attrs["model_version"]), created)
    tmp = temporary_path(final, ".nc.tmp")
    try:
        stats = _write_chunks(product, tmp)
        stats = {
            k: (v.tolist() if isinstance(v, np.ndarray) else v.item() if hasattr(v, "item") else v)
            for k, v in stats.items()
        }
        with netcdf_lock():
            _finish_attributes(tmp, stats)
    except BaseException:  # every writer has finished or closed the file
        tmp.unlink(missing_ok=True)
        raise
    return StagedProduct(tmp, final, list(replaces or []), stats)


def _create(product: xr.Dataset, tmp: Path) -> ArrayWriter:
    """The staging file as xarray's netCDF4 backend creates it (attributes, encodings, the in-memory
    variables), and its lazy variables, CF-encoded (NaN become the fill value) but not written."""
    with netcdf_lock():
        store = NetCDF4DataStore.open(tmp, mode="w", format="NETCDF4")
        lazy = ArrayWriter()
        try:
            dump_to_store(product, store, lazy, encoding=_encoding(product))
        finally:
            store.close()
    return lazy


def _write_chunks(product: xr.Dataset, tmp: Path) -> dict[str, Any]:
    """Write the staging file, every chunk deflated by the task that computes it
    (``pipeline.chunk_sink``); returns the computed summary.

    On threads the tasks store their chunks themselves. A distributed client's workers return the
    encoded bytes, which this process stores as they arrive: the workers never open the product
    (nor need its directory), and a failed write leaves no task touching the file.
    """
    lazy = _create(product, tmp)
    with ChunkWriter(tmp) as writer:
        sinks = [writer.sink(target.variable_name) for target in lazy.targets]
        client = cluster_client()
        if client is None:
            _, stats = compute_and_join(store_chunks(lazy.sources, sinks), _summary(product))
        else:
            stats = _store_from_workers(client, lazy.sources, sinks, _summary(product))
    return dict(stats)


def _store_from_workers(
    client: Any, sources: list[da.Array], sinks: list[ChunkSink], summary: dict[str, Any]
) -> dict[str, Any]:
    from distributed import as_completed

    jobs = [
        (sink, offset, payload)
        for source, sink in zip(sources, sinks, strict=True)
        for offset, payload in encoded_blocks(source, sink)
    ]
    futures = client.compute([payload for _, _, payload in jobs] + [dask.delayed(dict)(**summary)])
    where = {future.key: (sink, offset) for future, (sink, offset, _) in zip(futures[:-1], jobs, strict=True)}
    try:
        for future, payload in as_completed(futures[:-1], with_results=True):
            sink, offset = where[future.key]
            sink.write(offset, payload)
        return dict(futures[-1].result())
    finally:
        client.cancel(futures)


def publish_product(staged: StagedProduct, quicklook: bool = True) -> Published:
    """Publish a staged product with its quicklook, then remove what it replaces.

    The quicklook is drawn from the staged file and published first, so a product is never visible
    without its quicklook; a run killed in between leaves a quicklook without product, which the
    next publication of the granule removes (as it removes the quicklooks of replaced products).
    """
    if not staged.staging.exists():
        raise FileNotFoundError(f"staged product {staged.staging} is gone; process the granule again")
    drawn = None
    try:
        drawn = write_quicklook(staged.staging, quicklook_path(staged.final)) if quicklook else None
        publish(staged.staging, staged.final)
    except BaseException:  # nothing half-published: neither the staging file nor a lone quicklook
        staged.staging.unlink(missing_ok=True)
        if drawn is not None and not staged.final.exists():
            drawn.unlink(missing_ok=True)
        raise
    for old in staged.replaces:
        if old != staged.final:
            old.unlink(missing_ok=True)
            quicklook_path(old).unlink(missing_ok=True)
            for gridded in gridded_products(old):
                gridded.unlink(missing_ok=True)
    remove_orphan_quicklooks(staged.final.parent, staged.stem)
    logger.info("wrote %s", staged.final)
    return Published(staged.final, drawn)


def remove_orphan_quicklooks(out_dir: Path, stem: str) -> None:
    """Quicklooks of a granule whose product is gone (replaced, or never published)."""
    for picture in out_dir.glob(f"{stem}_c*_quicklook.png"):
        if not picture.with_name(picture.name.removesuffix("_quicklook.png") + ".nc").exists():
            picture.unlink(missing_ok=True)


def ensure_quicklook(product: Path) -> Path:
    """The product's quicklook, drawn again if a killed run left the product without it."""
    existing = quicklook_path(product)
    return existing if existing.exists() else write_quicklook(product)


def _finish_attributes(path: Path, stats: dict[str, Any]) -> None:
    """Geospatial bounds and retrieval counts, known only once the data are computed."""
    with netCDF4.Dataset(path, "a") as nc:
        if stats.get("lat_min") is not None and np.isfinite(stats["lat_min"]):
            lat_min, lat_max = float(stats["lat_min"]), float(stats["lat_max"])
            lon_min, lon_max = float(stats["lon_min"]), float(stats["lon_max"])
            nc.setncatts(
                {
                    "geospatial_lat_min": lat_min,
                    "geospatial_lat_max": lat_max,
                    "geospatial_lat_units": "degrees_north",
                    "geospatial_lon_min": lon_min,
                    "geospatial_lon_max": lon_max,
                    "geospatial_lon_units": "degrees_east",
                    "geospatial_bounds": f"POLYGON(({lat_min:.4f} {lon_min:.4f}, {lat_min:.4f} {lon_max:.4f}, "
                    f"{lat_max:.4f} {lon_max:.4f}, {lat_max:.4f} {lon_min:.4f}, "
                    f"{lat_min:.4f} {lon_min:.4f}))",
                    "geospatial_bounds_crs": "EPSG:4326",
                    "geospatial_lat_resolution": "native instrument resolution",
                    "geospatial_lon_resolution": "native instrument resolution",
                }
            )
        retrieved = int(stats["retrieved"])
        nc.setncatts(
            {
                "retrieved_pixels": retrieved,
                "cloud_fraction": float(stats["cloudy"]) / retrieved if retrieved else -1.0,
                "liquid_fraction_of_cloudy": float(stats["liquid"]) / max(int(stats["cloudy"]), 1),
            }
        )
