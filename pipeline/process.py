"""One granule end to end, in three steps that the CLI and the flows call alike: plan, stage, publish.

* ``plan(granule, options) -> Plan``: choose and verify the model, check every file it will read,
  look for an existing product. Small and serialisable: a Prefect task returns it.
* ``stage(plan, options) -> StagedProduct``: ingest, ancillary, features and the model over every
  chunk, into a temporary file beside the product.
* ``publish(staged) -> Published``: quicklook and product under their final names.

``process_granule`` (the CLI) calls them in a row; the flows wrap each in a task (``flows.tasks``).
Both hold the granule's claim across the three. Each thing is found, loaded and checked once: the
plan carries the granule and the model's path and sha256, and an artifact is loaded once per
process (``checked_artifact``). This module never imports Prefect.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from models.artifact import Artifact, ArtifactError, read_metadata, verified_artifact
from models.registry import default_artifacts
from pipeline.ancillary import AncillaryConfig, add_ancillary
from pipeline.claims import claim
from pipeline.features import NIGHT, NIGHT_RETRIEVED, build_features, needs_window_contrast, with_window_contrast
from pipeline.granules import Granule
from pipeline.gridded import geotiff_path, grid_product, gridded_path, resolve_area, write_geotiff
from pipeline.inference import compute_context, run_inference
from pipeline.ingest import check_file, ingest
from pipeline.logcontext import granule_context
from pipeline.netcdf_lock import opening_files
from pipeline.product import (
    Published,
    StagedProduct,
    build_product,
    check_existing,
    ensure_quicklook,
    product_stem,
    publish_product,
    stage_product,
)
from pipeline.quicklook import quicklook_path
from pipeline.sensors import DEFAULT_CHUNK

logger = logging.getLogger(__name__)


@dataclass
class ProcessOptions:
    out_dir: Path
    model: Path | None = None
    device: str = "auto"
    chunk_size: int = DEFAULT_CHUNK
    overwrite: bool = False
    ancillary: AncillaryConfig = field(default_factory=AncillaryConfig)
    torch_threads: int = 1
    resources: dict[str, float] | None = None
    batch_size: int = 0
    quicklook: bool = True
    areas: tuple[str, ...] = ()  # also write the product resampled to these areas (pipeline.gridded)
    geotiff: bool = False  # and a GeoTIFF of each gridded product
    precision: str = "float32"  # or bfloat16, where the artifact's held-out check allows it (models.runner)


@dataclass
class ProcessResult:
    granule_id: str
    product: Path
    quicklook: Path | None
    skipped: bool
    model: str
    seconds: float
    stats: dict[str, Any] = field(default_factory=dict)
    gridded: tuple[Path, ...] = ()

    def summary(self) -> str:
        return self._outcome() + "".join(f"; gridded {path.name}" for path in self.gridded)

    def _outcome(self) -> str:
        if self.skipped:
            return f"{self.granule_id}: already processed ({self.product.name}), skipped"
        s = self.stats
        retrieved = int(s.get("retrieved", 0))
        if not retrieved:
            return (
                f"{self.granule_id}: 0 of {s.get('pixels', 0)} pixels retrieved (night or no valid input); "
                f"{self.product.name} written in {self.seconds:.1f} s"
            )
        cloudy = int(s["cloudy"])
        return (
            f"{self.granule_id}: {retrieved} pixels retrieved, cloud fraction {cloudy / retrieved:.3f}, "
            f"liquid {int(s['liquid']) / max(cloudy, 1):.2f} / ice {int(s['ice']) / max(cloudy, 1):.2f}, "
            f"{self.seconds:.1f} s with {self.model} -> {self.product.name}"
        )


BAND_KINDS = ("reflectance", "brightness_temperature")


def _bands_and_role(meta: dict[str, Any]) -> tuple[list[str], bool]:
    """(the bands a model reads, whether it is a night model) from an artifact's metadata, unloaded.

    A night model reads thermal bands only; it runs beside a day model, never alone.
    """
    features = meta.get("feature_spec", {}).get("features", [])
    bands = [f["source"] for f in features if f["kind"] in BAND_KINDS]
    return bands, not any(f["kind"] == "reflectance" for f in features)


def retrieval_bands(day: Artifact, night: Artifact | None) -> list[str]:
    """Every band a granule's retrieval reads: the day model's, then the night model's others."""
    return list(dict.fromkeys([*day.spec.bands, *(night.spec.bands if night else [])]))


def _default_candidates(sensor: str) -> list[tuple[list[str], Path]]:
    """(bands, path) of the shipped models for a sensor, most bands first; an error when there are none."""
    candidates = []
    for path in default_artifacts():
        meta = read_metadata(path)
        bands, night = _bands_and_role(meta)
        if meta["sensor"] == sensor and not night:
            candidates.append((bands, path))
    if not candidates:
        raise ArtifactError(f"no default model for {sensor} is installed; pass --model")
    return sorted(candidates, key=lambda c: -len(c[0]))


def checked_artifact(path: str | Path, expect_sensor: str | None = None) -> Artifact:
    """A verified artifact, loaded once per process while the file is unchanged (every granule of a
    run, and each of a flow's tasks, reuse it), then checked against the expected sensor."""
    artifact = verified_artifact(path)
    if expect_sensor is not None and artifact.sensor != expect_sensor:
        raise ArtifactError(f"{path} is a model for {artifact.sensor}, not for {expect_sensor}")
    return artifact


def best_bands(sensor: str, model: Path | None = None) -> list[str]:
    """The bands a complete scan offers the given model, or the sensor's richest default model."""
    if model is not None:
        return checked_artifact(model, expect_sensor=sensor).spec.bands
    return _default_candidates(sensor)[0][0]


def choose_artifact(granule: Granule, model: Path | None) -> Artifact:
    """The given artifact (checked against the granule), or the default model with the most bands it has."""
    if model is not None:
        artifact = checked_artifact(model, expect_sensor=granule.sensor)
        if artifact.spec.night:
            raise ArtifactError(
                f"{artifact.path.name} is a night (thermal-only) model; pass a day model, and keep the night "
                "model in the same folder: it is used for the pixels without sun"
            )
        missing = granule.missing(artifact.spec.bands)
        if missing:
            raise ArtifactError(
                f"model {artifact.path.name} needs {' and '.join(missing)}, which granule {granule.id} lacks"
            )
        return artifact
    candidates = _default_candidates(granule.sensor)
    for bands, path in candidates:
        if not granule.missing(bands):
            logger.info("%s: using default model %s", granule.id, path.name)
            return checked_artifact(path, expect_sensor=granule.sensor)
    needs = "; ".join(f"{p.name} needs {' and '.join(granule.missing(b))}" for b, p in candidates)
    raise ArtifactError(f"no default {granule.sensor} model fits granule {granule.id}: {needs}")


def night_partner(granule: Granule, day: Artifact) -> Artifact | None:
    """The night model that runs beside ``day``: from the same folder, same sensor, the most bands
    the granule has; None when there is none (the night pixels are then not retrieved)."""
    partners = []
    for path in sorted(day.path.parent.glob("*.pt")):
        try:
            meta = read_metadata(path)
        except ArtifactError:
            continue
        bands, night = _bands_and_role(meta)
        if meta.get("sensor") == granule.sensor and night and bands and not granule.missing(bands):
            partners.append((len(bands), path))
    if not partners:
        return None
    return checked_artifact(max(partners)[1], expect_sensor=granule.sensor)


def granule_attrs(granule: Granule, bands: list[str] | None = None) -> dict[str, Any]:
    """The granule's identity as the product sees it (``source_files``: the files the bands need)."""
    return {
        "platform": granule.platform,
        "platform_name": granule.platform_name,
        "sensor": granule.sensor,
        "sector": granule.sector or "",
        "start_time": granule.start_time,
        "end_time": granule.end_time,
        "source_files": [Path(p).name for p in (granule.used_paths(bands) if bands else granule.paths)],
    }


def granule_stem(granule: Granule) -> str:
    """The stem of the granule's product names, which its claim is taken on."""
    return product_stem(granule_attrs(granule))


def granule_feature_sets(
    granule: Granule, artifact: Artifact, options: ProcessOptions, night: Artifact | None = None
) -> tuple[xr.Dataset, xr.Dataset, xr.Dataset | None]:
    """The lazy scene, the day model's features and the night model's (None without one).

    What a product reads before any model runs: the benchmark's read-only measurement computes the
    same. Nothing is computed but the window contrast, when a model reads it
    (``with_window_contrast`` says why). Opening the files reads their metadata through netCDF-C, so
    the graph is built under the process-wide netCDF lock, and the contrast is computed outside it.
    """
    bands = retrieval_bands(artifact, night)
    with opening_files():
        scene = ingest(granule, bands, options.chunk_size)
        scene = add_ancillary(scene, options.ancillary)
    if needs_window_contrast(artifact.spec, night.spec if night else None):
        scene = with_window_contrast(scene, granule.sensor)
    with opening_files():
        features = build_features(scene, artifact.spec, artifact.trained_on_glint)
        night_features = build_features(scene, night.spec) if night is not None else None
    return scene, features, night_features


def night_pixels(day_quality: Any, night_quality: Any) -> Any:
    """Where the night model's answer replaces the day model's: no sun, and the night model's inputs
    are valid (numpy, dask or xarray)."""
    return (day_quality == NIGHT) & (night_quality == NIGHT_RETRIEVED)


def build_granule_product(
    granule: Granule, artifact: Artifact, options: ProcessOptions, night: Artifact | None = None
) -> tuple[Any, dict[str, Any]]:
    """The lazy product dataset of a granule and the scene's attributes.

    Nothing is computed but the window contrast (``granule_feature_sets``). With a ``night`` model,
    the pixels without sun (``NIGHT``) get its mask and phase (quality ``NIGHT_RETRIEVED``).
    """
    scene, features, night_features = granule_feature_sets(granule, artifact, options, night)
    with opening_files():
        run = (options.device, options.batch_size, options.torch_threads, options.resources, options.precision)
        outputs = run_inference(features, artifact, *run)
        quality = features["retrieval_quality"]
        if night is not None and night_features is not None:
            night_outputs = run_inference(night_features, night, *run)
            use_night = night_pixels(quality, night_features["retrieval_quality"])
            quality = quality.where(~use_night, NIGHT_RETRIEVED).astype(np.uint8)
            outputs = outputs.where(~use_night, night_outputs)
        product = build_product(scene, quality, outputs, artifact)
        if night is not None:
            product.attrs.update(
                {
                    "night_model_artifact": night.name,
                    "night_model_version": night.version,
                    "night_model_sha256": night.sha256,
                }
            )
        product.attrs["model_precision"] = options.precision
        return product, dict(scene.attrs)


@dataclass(frozen=True)
class Plan:
    """What will be done for a granule, decided before any pixel is read."""

    granule: Granule
    stem: str
    out_dir: Path
    model: Path
    model_name: str
    model_sha256: str
    bands: tuple[str, ...]
    night_model: Path | None = None  # runs beside the model on the pixels without sun
    night_model_sha256: str = ""
    existing: Path | None = None  # an identical product is already there: nothing to do
    replaces: tuple[Path, ...] = ()  # products of the granule that this run replaces (overwrite)


def plan(granule: Granule, options: ProcessOptions) -> Plan:
    """Choose the model, check the files it reads, and find an existing product of the granule."""
    artifact = choose_artifact(granule, options.model)
    night = night_partner(granule, artifact)
    bands = retrieval_bands(artifact, night)
    granule.require(bands)
    for path in granule.used_paths(bands):
        check_file(path, granule.reader)
    model = {"model_version": artifact.version, "model_sha256": artifact.sha256}
    existing, replaces = check_existing(model, granule_attrs(granule, bands), options.out_dir, options.overwrite)
    if existing is not None and options.quicklook:
        ensure_quicklook(existing)  # a run killed after publishing the product may have left it without
    return Plan(
        granule=granule,
        stem=granule_stem(granule),
        out_dir=options.out_dir,
        model=artifact.path,
        model_name=artifact.name,
        model_sha256=artifact.sha256,
        bands=tuple(bands),
        night_model=night.path if night else None,
        night_model_sha256=night.sha256 if night else "",
        existing=existing,
        replaces=tuple(replaces),
    )


def stage(plan: Plan, options: ProcessOptions) -> StagedProduct:
    """Compute the planned product into its staging file."""
    artifact = checked_artifact(plan.model, expect_sensor=plan.granule.sensor)
    if artifact.sha256 != plan.model_sha256:
        raise ValueError(f"model {plan.model} changed since the granule {plan.granule.id} was planned")
    night = None
    if plan.night_model is not None:
        night = checked_artifact(plan.night_model, expect_sensor=plan.granule.sensor)
        if night.sha256 != plan.night_model_sha256:
            raise ValueError(f"model {plan.night_model} changed since the granule {plan.granule.id} was planned")
    product, attrs = build_granule_product(plan.granule, artifact, options, night)
    with compute_context(options.resources):
        return stage_product(product, attrs, plan.out_dir, list(plan.replaces))


def publish(
    staged: StagedProduct, quicklook: bool = True, areas: tuple[str, ...] = (), geotiff: bool = False
) -> Published:
    """Publish the quicklook and the product, remove what they replace, then grid it onto ``areas``."""
    published = publish_product(staged, quicklook)
    return replace(published, gridded=ensure_gridded(published.product, areas, geotiff))


def ensure_gridded(product: Path, areas: tuple[str, ...], geotiff: bool = False) -> tuple[Path, ...]:
    """The product on each area's grid (and its GeoTIFF), written when missing: a product skipped as
    already made gets the gridded files a new ``--area`` asks for."""
    paths = []
    for spec in areas:
        area = resolve_area(spec)
        target = gridded_path(product, area.area_id)
        paths.append(target if target.exists() else grid_product(product, area))
        if geotiff:
            tif = geotiff_path(product, area.area_id)
            paths.append(tif if tif.exists() else write_geotiff(target, area))
    return tuple(paths)


def process_granule(granule: Granule, options: ProcessOptions) -> ProcessResult:
    """Retrieve cloud mask, phase and COT for one granule and write its product (and quicklook).

    plan, stage and publish under the granule's claim, so concurrent runs over one output directory
    neither duplicate nor delete each other's products (``GranuleBusyError`` when another run holds it).
    """
    started = time.perf_counter()
    with granule_context(granule.id), claim(options.out_dir, granule_stem(granule), granule.id):
        planned = plan(granule, options)
        if planned.existing is not None:
            quicklook = quicklook_path(planned.existing) if options.quicklook else None
            gridded = ensure_gridded(planned.existing, options.areas, options.geotiff)
            seconds = time.perf_counter() - started
            return ProcessResult(
                granule.id, planned.existing, quicklook, True, planned.model_name, seconds, gridded=gridded
            )
        staged = stage(planned, options)
        published = publish(staged, options.quicklook, options.areas, options.geotiff)
    return ProcessResult(
        granule.id,
        published.product,
        published.quicklook,
        False,
        planned.model_name,
        time.perf_counter() - started,
        staged.stats,
        published.gridded,
    )


def granule_features(
    inputs: list[str] | list[Path],
    model: Path | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    ancillary: AncillaryConfig | None = None,
) -> tuple[Any, Artifact]:
    """The lazy features and quality codes of the one granule in ``inputs``, and the model they fit
    (the window contrast, when the model reads it, is computed here).

    The one call a user needs from a directory of L1b files (and optionally an artifact) to the
    ``(y, x, feature)`` dask array and the per-pixel retrieval quality (reason codes).
    """
    from pipeline.granules import single_granule

    granule = single_granule(inputs)
    artifact = choose_artifact(granule, model)
    with opening_files():
        scene = add_ancillary(ingest(granule, artifact.spec.bands, chunk_size), ancillary)
    if needs_window_contrast(artifact.spec):
        scene = with_window_contrast(scene, granule.sensor)
    return build_features(scene, artifact.spec, artifact.trained_on_glint), artifact
