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

from models import MODEL_NAME
from models.artifact import FOUR_LEVEL_MASK_THRESHOLDS, Artifact
from models.fileio import publish, temporary_path
from pipeline.features import GOOD, QUALITY_MEANINGS, cot_retrieved, mask_retrieved
from pipeline.gridded import gridded_products
from pipeline.netcdf_lock import netcdf_lock
from pipeline.quicklook import quicklook_path, write_quicklook
from pipeline.sensors import PLATFORM_CODES

logger = logging.getLogger(__name__)

PRODUCT_VERSION = "1.0"
PRODUCT_PREFIX = "MTHCCAR-L2-CLD"
FILL_U1 = np.uint8(255)
FILL_F4 = np.float32(-999.0)
COT_MAX = 400.0
STANDARD_NAME_VOCABULARY = "CF Standard Name Table v85"
TIME_UNITS = "seconds since 1970-01-01 00:00:00"


class ProductExistsError(FileExistsError):
    """A different product of the same granule is already there."""


def product_stem(attrs: dict[str, Any]) -> str:
    """The granule's identity in product names: platform, sensor, sector and the scan's nominal span.

    Derived from the granule's own metadata (never from user strings); two runs of one scan get the
    same stem whatever band files they were given, so they claim, find and replace the same product.
    """
    platform = PLATFORM_CODES.get(attrs["platform_name"], attrs["platform"])
    sector = attrs.get("sector") or "SWATH"
    return (
        f"{PRODUCT_PREFIX}_{platform}_{attrs['sensor']}_{sector}_s{attrs['start_time']:%Y%m%dT%H%M%S}"
        f"_e{attrs['end_time']:%Y%m%dT%H%M%S}"
    )


def product_name(attrs: dict[str, Any], model_version: str, created: dt.datetime) -> str:
    """The product file name: the granule's stem, the creation time and the model version."""
    return f"{product_stem(attrs)}_c{created:%Y%m%dT%H%M%S}_v{model_version}.nc"


def product_pattern(attrs: dict[str, Any], model_version: str) -> str:
    """Glob matching any product of the same granule and model version, whatever its creation time."""
    return f"{product_stem(attrs)}_c*_v{model_version}.nc"


def _flag_attrs(values: list[int], meanings: str) -> dict[str, Any]:
    return {"flag_values": np.array(values, dtype=np.uint8), "flag_meanings": meanings}


def build_product(scene: xr.Dataset, quality: xr.DataArray, outputs: xr.Dataset, artifact: Artifact) -> xr.Dataset:
    """The product dataset (lazy) from the scene, quality codes and model outputs."""
    swath = "x" not in scene.coords
    q = quality.data
    retrieved = mask_retrieved(q)  # mask and phase: day or night model
    with_cot = cot_retrieved(q)  # COT: the day model only
    p_cloudy = outputs["cloud_mask_probability"].data
    cloudy = retrieved & (p_cloudy >= 0.5)
    p_ice = outputs["cloud_phase_probability"].data
    cot_class = da.argmax(
        da.stack([outputs[f"cot_probability_{k}"].data for k in ("thin", "moderate", "thick")], axis=-1), axis=-1
    )
    cot = da.clip(10.0 ** outputs["log10_cot"].data, 0, COT_MAX)
    four_level = sum((p_cloudy >= t).astype(np.uint8) for t in FOUR_LEVEL_MASK_THRESHOLDS)
    common: dict[str, Any] = {"coordinates": "latitude longitude altitude"}
    if not swath:
        common["grid_mapping"] = "goes_imager_projection"

    def field_(values: Any, attrs: dict[str, Any]) -> tuple[tuple[str, str], Any, dict[str, Any]]:
        return ("y", "x"), values, {**attrs, **common}

    data_vars: dict[str, Any] = {
        "cloud_mask": field_(
            da.where(retrieved, cloudy.astype(np.uint8), FILL_U1).astype(np.uint8),
            {
                "long_name": "cloud mask",
                "standard_name": "cloud_binary_mask",
                "units": "1",
                "coverage_content_type": "thematicClassification",
                **_flag_attrs([0, 1], "clear cloudy"),
                "ancillary_variables": "cloud_mask_probability retrieval_quality",
            },
        ),
        "cloud_mask_probability": field_(
            da.where(retrieved, p_cloudy, np.nan).astype(np.float32),
            {
                "long_name": "probability that the pixel is cloudy (C_Mask head)",
                "standard_name": "cloud_area_fraction",
                "units": "1",
                "valid_range": np.array([0.0, 1.0], dtype=np.float32),
                "coverage_content_type": "modelResult",
                "comment": "P(cloudy) from the network, read as the expected cloud area fraction of the pixel",
            },
        ),
        "cloud_mask_4level": field_(
            da.where(retrieved, four_level, FILL_U1).astype(np.uint8),
            {
                "long_name": "four-level cloud mask from the calibrated cloud probability",
                "units": "1",
                "coverage_content_type": "thematicClassification",
                **_flag_attrs([0, 1, 2, 3], "clear probably_clear probably_cloudy cloudy"),
                "comment": "cloud_mask_probability split at "
                + ", ".join(f"{t:g}" for t in FOUR_LEVEL_MASK_THRESHOLDS)
                + ", as NOAA's enterprise cloud mask splits its cloud probability into the four levels of "
                "the ABI Clear Sky Mask (ACM); cloud_mask is cloudy exactly where this is probably_cloudy or "
                "cloudy",
                "ancillary_variables": "cloud_mask_probability retrieval_quality",
            },
        ),
        "cloud_phase": field_(
            da.where(retrieved, da.where(cloudy, da.where(p_ice > 0.5, 2, 1), 0), FILL_U1).astype(np.uint8),
            {
                "long_name": "cloud top thermodynamic phase",
                "standard_name": "thermodynamic_phase_of_cloud_water_particles_at_cloud_top",
                "units": "1",
                "coverage_content_type": "thematicClassification",
                **_flag_attrs([0, 1, 2], "clear_sky liquid ice"),
                "ancillary_variables": "cloud_phase_probability retrieval_quality",
            },
        ),
        "cloud_phase_probability": field_(
            da.where(cloudy, p_ice, np.nan).astype(np.float32),
            {
                "long_name": "probability of ice given cloudy (C_Phase head)",
                "standard_name": "ice_cloud_area_fraction",
                "units": "1",
                "valid_range": np.array([0.0, 1.0], dtype=np.float32),
                "coverage_content_type": "modelResult",
                "comment": "P(ice | cloudy): the ice share of the pixel's cloud; the standard name is the closest CF "
                "has (the pixel's ice cloud area fraction is cloud_area_fraction x this)",
            },
        ),
        "cloud_optical_thickness": field_(
            da.where(cloudy & with_cot, cot, np.nan).astype(np.float32),
            {
                "long_name": "cloud optical thickness at 0.55 um",
                "standard_name": "atmosphere_optical_thickness_due_to_cloud",
                "units": "1",
                "valid_range": np.array([0.0, COT_MAX], dtype=np.float32),
                "coverage_content_type": "modelResult",
                "ancillary_variables": "cloud_optical_thickness_uncertainty cloud_optical_thickness_class "
                "retrieval_quality",
            },
        ),
        "cloud_optical_thickness_uncertainty": field_(
            da.where(cloudy & with_cot, outputs["log10_cot_uncertainty"].data, np.nan).astype(np.float32),
            {
                "long_name": "standard error (1 sigma) of log10 of cloud optical thickness",
                "standard_name": "atmosphere_optical_thickness_due_to_cloud standard_error",
                "units": "1",
                "coverage_content_type": "qualityInformation",
                "comment": "1-sigma uncertainty of log10(cloud_optical_thickness) from the network's uncertainty "
                "head, calibrated on held-out simulations: the true COT lies within a factor 10**sigma of "
                "cloud_optical_thickness for about 68 % of pixels and within a factor "
                f"10**({artifact.interval95_factor:.2f} sigma) for about 95 % (errors are heavier-tailed than "
                "Gaussian); NaN where the model carries no uncertainty. CF has no name for the standard error of a "
                "logarithm: the standard_error modifier of the COT's name is the closest",
                "interval_95_half_width_in_sigma": np.float32(artifact.interval95_factor),
            },
        ),
        "cloud_optical_thickness_class": field_(
            da.where(cloudy & with_cot, cot_class, FILL_U1).astype(np.uint8),
            {
                "long_name": "coarse cloud optical thickness class (C_Aux head): thin < 1, moderate 1-10, thick >= 10",
                "units": "1",
                **_flag_attrs([0, 1, 2], "thin moderate thick"),
                "coverage_content_type": "thematicClassification",
            },
        ),
        "retrieval_quality": field_(
            q.astype(np.uint8),
            {
                "long_name": "retrieval quality and reason for no retrieval",
                "standard_name": "status_flag",
                "units": "1",
                "coverage_content_type": "qualityInformation",
                **_flag_attrs(list(range(len(QUALITY_MEANINGS))), " ".join(QUALITY_MEANINGS)),
                "comment": "degraded: solar zenith 70-80 deg or sensor zenith > 65 deg; night: solar zenith >= 80 deg; "
                "no valid input: off disk, fill, saturated or out of range; night_mask_and_phase_only: the "
                "thermal-only night model gave mask and phase, COT is not retrieved at night",
            },
        ),
        "solar_zenith_angle": field_(
            scene["solar_zenith_angle"].data.astype(np.float32),
            {
                "long_name": "solar zenith angle",
                "standard_name": "solar_zenith_angle",
                "units": "degree",
                "coverage_content_type": "auxiliaryInformation",
            },
        ),
        "sensor_zenith_angle": field_(
            scene["sensor_zenith_angle"].data.astype(np.float32),
            {
                "long_name": "sensor zenith angle",
                "standard_name": "sensor_zenith_angle",
                "units": "degree",
                "coverage_content_type": "auxiliaryInformation",
            },
        ),
    }
    start, end = scene.attrs["start_time"], scene.attrs["end_time"]
    epoch = dt.datetime(1970, 1, 1)
    seconds = [(start - epoch).total_seconds(), (end - epoch).total_seconds()]
    coords: dict[str, Any] = {
        "time": (
            ("time",),
            [seconds[0]],
            {
                "standard_name": "time",
                "long_name": "time",
                "units": TIME_UNITS,
                "axis": "T",
                "bounds": "time_bounds",
                "calendar": "standard",
                "comment": "granule start time; time_bounds holds start and end",
            },
        ),
        "latitude": (
            ("y", "x"),
            scene["latitude"].data.astype(np.float32),
            {
                "standard_name": "latitude",
                "long_name": "latitude",
                "units": "degrees_north",
                "coverage_content_type": "coordinate",
            },
        ),
        "longitude": (
            ("y", "x"),
            scene["longitude"].data.astype(np.float32),
            {
                "standard_name": "longitude",
                "long_name": "longitude",
                "units": "degrees_east",
                "coverage_content_type": "coordinate",
            },
        ),
    }
    coords["altitude"] = (
        (),
        0.0,
        {
            "standard_name": "altitude",
            "long_name": "altitude of the geolocation",
            "units": "m",
            "positive": "up",
            "axis": "Z",
            "coverage_content_type": "coordinate",
            "comment": "pixels are geolocated on the Earth's surface; the retrieved quantities describe the "
            "column above",
        },
    )
    data_vars["time_bounds"] = (("time", "nv"), np.array([seconds]), {"units": TIME_UNITS, "calendar": "standard"})
    if not swath:
        mapping = _geostationary_mapping(scene)
        height = mapping["perspective_point_height"]
        for axis in ("x", "y"):
            coords[axis] = (
                axis,
                scene[axis].values * height,
                {
                    "standard_name": f"projection_{axis}_coordinate",
                    "units": "m",
                    "axis": axis.upper(),
                    "long_name": f"GOES fixed grid projection {axis}-coordinate",
                    "comment": "scan angle of the ABI L1b fixed grid (rad) times perspective_point_height",
                    "coverage_content_type": "coordinate",
                },
            )
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
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    start, end = scene.attrs["start_time"], scene.attrs["end_time"]
    iso = "%Y-%m-%dT%H:%M:%SZ"
    instrument = scene.attrs["instrument"]
    return {
        "Conventions": "CF-1.10, ACDD-1.3",
        "title": f"MT-HCCAR cloud mask, phase and optical thickness from {scene.attrs['platform_name']} {instrument}",
        "summary": (
            "Level-2 cloud mask, cloud top phase and cloud optical thickness retrieved per pixel from "
            f"{instrument} solar-reflective bands with MT-HCCAR, a multi-task network with hierarchical "
            "classification (mask, then phase) and classification-assisted attention regression (COT)."
        ),
        "keywords": (
            "EARTH SCIENCE > ATMOSPHERE > CLOUDS > CLOUD MICROPHYSICS > CLOUD OPTICAL DEPTH/THICKNESS, "
            "EARTH SCIENCE > ATMOSPHERE > CLOUDS > CLOUD MICROPHYSICS > CLOUD LIQUID WATER/ICE"
        ),
        "keywords_vocabulary": "GCMD Science Keywords",
        "id": str(uuid.uuid4()),
        "uuid": "",
        "naming_authority": "mthccar.pipeline",
        "institution": "MT-HCCAR operational cloud retrieval pipeline",
        "project": "MT-HCCAR cloud retrieval",
        "program": "satellite cloud retrievals",
        "source": " ".join(scene.attrs["source_files"]),
        "history": f"{now.strftime(iso)} created by mthccar from {len(scene.attrs['source_files'])} input files",
        "comment": "Retrievals only in daylight (solar zenith < 80 deg); see retrieval_quality.",
        "references": "Li et al., MT-HCCAR, ECML-PKDD 2024, doi:10.1007/978-3-031-70381-2_1",
        "acknowledgement": "MT-HCCAR network design by Li, Sayer, Carroll, Huang and Wang (UMBC, NASA GSFC).",
        "license": "Freely available; cite the MT-HCCAR reference.",
        "standard_name_vocabulary": STANDARD_NAME_VOCABULARY,
        "date_created": now.strftime(iso),
        "date_modified": now.strftime(iso),
        "date_issued": now.strftime(iso),
        "date_metadata_modified": now.strftime(iso),
        "creator_name": "MT-HCCAR pipeline",
        "creator_type": "institution",
        "creator_email": "mthccar@example.org",
        "creator_url": "https://example.org/mthccar",
        "creator_institution": "MT-HCCAR operational cloud retrieval pipeline",
        "publisher_name": "MT-HCCAR pipeline",
        "publisher_type": "institution",
        "publisher_email": "mthccar@example.org",
        "publisher_url": "https://example.org/mthccar",
        "publisher_institution": "MT-HCCAR operational cloud retrieval pipeline",
        "contributor_name": "MT-HCCAR pipeline",
        "contributor_role": "processor",
        "product_version": PRODUCT_VERSION,
        "processing_level": "L2",
        "cdm_data_type": "Grid" if "x" in scene.coords else "Swath",
        "platform": scene.attrs["platform_name"],
        "platform_vocabulary": "WMO OSCAR satellite names",
        "instrument": instrument,
        "instrument_vocabulary": "WMO OSCAR instrument names",
        "model_name": MODEL_NAME,
        "model_version": artifact.version,
        "model_artifact": artifact.name,
        "model_sha256": artifact.sha256,
        "model_attention": str(artifact.metadata.get("attention", "")),
        "ancillary_sources": "; ".join(f"{k}: {v}" for k, v in scene.attrs.get("ancillary", {}).items()),
        "time_coverage_start": start.strftime(iso),
        "time_coverage_end": end.strftime(iso),
        "time_coverage_duration": f"PT{max((end - start).total_seconds(), 0):.0f}S",
        "time_coverage_resolution": f"PT{max((end - start).total_seconds(), 0):.0f}S",
        "granule_id": scene.attrs["granule_id"],
        "metadata_link": "https://example.org/mthccar/product-conventions",
        # geolocated on the surface: see the scalar altitude coordinate
        "geospatial_vertical_min": 0.0,
        "geospatial_vertical_max": 0.0,
        "geospatial_vertical_units": "m",
        "geospatial_vertical_positive": "up",
        "geospatial_vertical_resolution": "point",
        "geospatial_bounds_vertical_crs": "EPSG:5829",
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
        with netcdf_lock():
            delayed = product.to_netcdf(
                tmp, engine="netcdf4", format="NETCDF4", encoding=_encoding(product), compute=False
            )
        _, stats = dask.compute(delayed, _summary(product))  # chunk I/O takes the lock in each task
        stats = {
            k: (v.tolist() if isinstance(v, np.ndarray) else v.item() if hasattr(v, "item") else v)
            for k, v in stats.items()
        }
        with netcdf_lock():
            _finish_attributes(tmp, stats)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return StagedProduct(tmp, final, list(replaces or []), stats)


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
