"""Typed flow parameters: what the Prefect UI renders as forms, validated before any work starts.

Every bad value gets one sentence naming the field and the value. The server also checks a
deployment run's parameters against these models' JSON schema when the run is created
(``enforce_parameter_schema``), so a wrong type never even makes a flow run.
"""

from __future__ import annotations

import datetime as dt
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.access import AccessPolicy, require_trusted
from pipeline.granules import is_url
from pipeline.sensors import DEFAULT_CHUNK, DeviceName, Precision, SensorName

__all__ = [
    "ArchiveLayout",
    "BackfillRequest",
    "DeviceName",
    "OperationalRequest",
    "ProcessRequest",
    "RunSettings",
    "SensorName",
    "Where",
]

DEFAULT_OUT = "products"
# Set by `mthccar serve` (or a worker's environment) so that served deployments default to them.
ENV_OUT_DIR = "MTHCCAR_OUT_DIR"
ENV_SCHEDULER = "MTHCCAR_DASK_SCHEDULER"
ENV_WORKERS = "MTHCCAR_DASK_WORKERS"


def default_out_dir() -> str:
    """``$MTHCCAR_OUT_DIR`` (an absolute path set by ``serve``), else ``products``."""
    return os.environ.get(ENV_OUT_DIR) or DEFAULT_OUT


def default_where() -> Where:
    """A remote scheduler or a local cluster when the environment names one, else threads."""
    if os.environ.get(ENV_SCHEDULER):
        return Where.scheduler
    return Where.local_cluster if os.environ.get(ENV_WORKERS) else Where.threads


class Where(StrEnum):
    """Where the dask computation runs (see ``flows.runners``)."""

    threads = "threads"
    local_cluster = "local_cluster"
    scheduler = "scheduler"
    cuda_cluster = "cuda_cluster"


class ArchiveLayout(StrEnum):
    goes = "goes"  # NOAA's GOES archive: {product}/YYYY/DDD/HH/ (e.g. ABI-L1b-RadF/2019/300/20/)
    daily = "daily"  # YYYY/DDD/
    flat = "flat"  # every file in one directory


def _existing(value: str, what: str) -> str:
    """An input that exists, under the configured input roots (checked first: nothing outside them
    is even looked at)."""
    if not value.strip():
        raise ValueError(f"{what} is empty")
    AccessPolicy.from_env().check_input(value, what)
    if not is_url(value) and not Path(value.removeprefix("file://")).exists():
        raise ValueError(f"{what} {value!r} does not exist")
    return value


def _writable_file(value: str | None, what: str) -> str | None:
    if value:
        AccessPolicy.from_env().check_output(value, what)
    return value or None


def _usable_out_dir(value: str) -> str:
    if not value.strip():
        raise ValueError("out_dir is empty")
    AccessPolicy.from_env().check_output(value)
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise ValueError(f"out_dir {value!r} is a file, not a directory")
    return value


OutDir = Annotated[str, AfterValidator(_usable_out_dir), Field(description="Where products and quicklooks go")]


class RunSettings(BaseModel):
    """How to run: model, device, chunking, where the dask work goes."""

    model_config = ConfigDict(extra="forbid")

    model: Annotated[str | None, Field(description="Model artifact path; empty: the shipped model for the sensor")] = (
        None
    )
    device: Annotated[DeviceName, Field(description="auto picks CUDA when a worker has one")] = DeviceName.auto
    chunk_size: Annotated[int, Field(ge=64, le=16384, description="Pixels per chunk side")] = DEFAULT_CHUNK
    precision: Annotated[
        Precision, Field(description="float32, or bfloat16 where the model's held-out check allows it")
    ] = Precision.float32
    where: Annotated[Where, Field(description="threads, a local cluster, a remote scheduler, or local GPUs")] = Field(
        default_factory=default_where
    )
    workers: Annotated[int, Field(ge=1, le=256, description="Workers of a local cluster")] = Field(
        default_factory=lambda: int(os.environ.get(ENV_WORKERS) or 2)
    )
    scheduler_address: Annotated[str | None, Field(description="tcp://host:8786 when where=scheduler")] = Field(
        default_factory=lambda: os.environ.get(ENV_SCHEDULER) or None
    )
    nwp: Annotated[str | None, Field(description="NWP file (ERA5 tcwv, tco3, sp) instead of the climatology")] = None
    land_cover: Annotated[str | None, Field(description="IGBP land-cover raster (variable land_cover)")] = None
    areas: Annotated[
        list[str],
        Field(
            description="Also write each product on these grids: shipped areas (conus, europe, global_0p1) or "
            "pyresample area files (FILE or FILE:NAME)"
        ),
    ] = Field(default_factory=list)
    geotiff: Annotated[bool, Field(description="Also a GeoTIFF (mask, phase, COT) of each gridded product")] = False

    @field_validator("model")
    @classmethod
    def _model_exists(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        AccessPolicy.from_env().check_model(value)
        if not Path(value).is_file():
            raise ValueError(f"model artifact {value!r} does not exist")
        require_trusted(Path(value))  # runs load only shipped or registered models
        return value

    @field_validator("areas")
    @classmethod
    def _areas_resolve(cls, value: list[str]) -> list[str]:
        from pipeline.gridded import resolve_area

        for spec in value:
            resolve_area(spec)  # AreaError (a ValueError) names the area
        return value

    @field_validator("nwp", "land_cover")
    @classmethod
    def _ancillary_exists(cls, value: str | None) -> str | None:
        return _existing(value, "ancillary file") if value else None

    @model_validator(mode="after")
    def _scheduler_needs_address(self) -> RunSettings:
        if self.where == Where.scheduler and not self.scheduler_address:
            raise ValueError("where=scheduler needs a scheduler_address such as tcp://host:8786")
        if self.scheduler_address and not self.scheduler_address.startswith(("tcp://", "tls://", "ws://", "wss://")):
            raise ValueError(f"scheduler_address {self.scheduler_address!r} is not a tcp:// or tls:// address")
        return self


class ProcessRequest(BaseModel):
    """One granule (or a few) on demand."""

    model_config = ConfigDict(extra="forbid")

    inputs: Annotated[list[str], Field(min_length=1, description="Granule files, directories or fsspec URLs")]
    out_dir: OutDir = Field(default_factory=default_out_dir)
    sensor: Annotated[SensorName | None, Field(description="Only granules of this sensor")] = None
    force: Annotated[bool, Field(description="Reprocess even if the same product exists")] = False
    settings: RunSettings = Field(default_factory=RunSettings)

    @field_validator("inputs")
    @classmethod
    def _inputs_exist(cls, values: list[str]) -> list[str]:
        return [_existing(v, "input") for v in values]


class OperationalRequest(BaseModel):
    """A scan of an incoming location for new complete granules."""

    model_config = ConfigDict(extra="forbid")

    incoming: Annotated[str, Field(description="Directory or fsspec URL where granules arrive")]
    out_dir: OutDir = Field(default_factory=default_out_dir)
    sensor: SensorName | None = None
    settle_minutes: Annotated[float, Field(ge=0, le=1440, description="Wait this long for a scan's last files")] = 5.0
    give_up_minutes: Annotated[float, Field(ge=0, le=10080, description="Then record an incomplete scan")] = 120.0
    max_granules: Annotated[int, Field(ge=1, le=10000, description="Granules per scan of the location")] = 50
    state_file: Annotated[str | None, Field(description="Progress record (default: in out_dir)")] = None
    settings: RunSettings = Field(default_factory=RunSettings)

    @field_validator("state_file")
    @classmethod
    def _state_file_allowed(cls, value: str | None) -> str | None:
        return _writable_file(value, "state_file")

    @field_validator("incoming")
    @classmethod
    def _incoming_exists(cls, value: str) -> str:
        return _existing(value, "incoming location")


class BackfillRequest(BaseModel):
    """Reprocess an archive over a time range."""

    model_config = ConfigDict(extra="forbid")

    archive: Annotated[str, Field(description="Archive root: directory or fsspec URL")]
    start: Annotated[dt.datetime, Field(description="First scan time (UTC)")]
    end: Annotated[dt.datetime, Field(description="Last scan time (UTC)")]
    sensors: Annotated[list[SensorName], Field(min_length=1)] = [SensorName.abi]
    layout: ArchiveLayout = ArchiveLayout.goes
    product: Annotated[str, Field(description="First level of the GOES layout, e.g. ABI-L1b-RadF")] = "ABI-L1b-RadF"
    out_dir: OutDir = Field(default_factory=default_out_dir)
    max_concurrency: Annotated[int, Field(ge=1, le=64, description="Granules processed at once")] = 2
    report_file: Annotated[str | None, Field(description="JSON report (default: in out_dir)")] = None
    settings: RunSettings = Field(default_factory=RunSettings)

    @field_validator("report_file")
    @classmethod
    def _report_file_allowed(cls, value: str | None) -> str | None:
        return _writable_file(value, "report_file")

    @field_validator("archive")
    @classmethod
    def _archive_exists(cls, value: str) -> str:
        return _existing(value, "archive")

    @model_validator(mode="after")
    def _time_range(self) -> BackfillRequest:
        start, end = self.start.replace(tzinfo=None), self.end.replace(tzinfo=None)
        if end < start:
            raise ValueError(f"end {self.end.isoformat()} is before start {self.start.isoformat()}")
        if end - start > dt.timedelta(days=366):
            raise ValueError("a backfill spans at most 366 days; split longer ranges")
        self.start, self.end = start, end
        return self
