"""Backfill: reprocess an archive over a time range, with bounded concurrency, resumably.

The archive layout is data (``LAYOUTS``): NOAA's GOES archive keeps one directory per hour,
``{product}/YYYY/DDD/HH/``; ``daily`` keeps ``YYYY/DDD/``; ``flat`` keeps everything in one place.
Only the directories of the range are listed, and only scans starting inside it are processed.
Granules fan out on a thread pool of ``max_concurrency`` workers (each task also carries the
``mthccar-backfill`` tag, for a server-side concurrency limit shared by every backfill run). A run
that is interrupted resumes on its next start: finished products are skipped (same inputs and
model) and products are written atomically, so nothing is duplicated or half-written. The final
report (JSON and markdown artifact) lists processed, skipped and failed granules with reasons.

To keep backfill from starving the schedule, its deployment has its own work queue of lower
priority and a deployment concurrency limit (``flows/deployments.py``, ``prefect.yaml``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from flows.logs import route_project_logs
from flows.parameters import ArchiveLayout, BackfillRequest
from flows.process import STATUSES, options_for, process_granule_task, report_markdown
from flows.runners import dask_for
from flows.tasks import granule_ref
from models.fileio import atomic_output, remove_stale_temporaries
from pipeline.granules import GranuleError, find_granules

logger = logging.getLogger(__name__)

LAYOUTS: dict[ArchiveLayout, tuple[str, dt.timedelta]] = {
    # directory template below the archive root, and the time step between directories
    ArchiveLayout.goes: ("{product}/{time:%Y}/{time:%j}/{time:%H}", dt.timedelta(hours=1)),
    ArchiveLayout.daily: ("{time:%Y}/{time:%j}", dt.timedelta(days=1)),
    ArchiveLayout.flat: ("", dt.timedelta(days=100000)),
}
REPORT_PREFIX = "mthccar-backfill-report"
GRANULE_LIMIT = "mthccar-backfill-granules"  # Prefect global concurrency limit, one slot per granule
DEFAULT_GRANULE_LIMIT = 4
MAX_THREADS = 64  # the upper bound of max_concurrency; each run keeps at most max_concurrency in flight


def archive_directories(request: BackfillRequest) -> list[str]:
    """The archive directories that can hold scans of the time range, oldest first."""
    template, step = LAYOUTS[request.layout]
    if not template:
        return [request.archive]
    if step >= dt.timedelta(days=1):
        cursor = request.start.replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        cursor = request.start.replace(minute=0, second=0, microsecond=0)
    out = []
    while cursor <= request.end:
        out.append(f"{request.archive.rstrip('/')}/{template.format(product=request.product, time=cursor)}")
        cursor += step
    return out


def enumerate_granules(request: BackfillRequest) -> list[dict[str, Any]]:
    """Every granule of the requested sensors starting within [start, end]."""
    import fsspec

    refs: list[dict[str, Any]] = []
    for directory in archive_directories(request):
        fs, _, paths = fsspec.get_fs_token_paths(directory)
        if not fs.exists(paths[0]):
            continue
        for sensor in request.sensors:
            try:
                granules = find_granules([directory], sensor.value)
            except GranuleError:
                continue
            refs.extend(granule_ref(g) for g in granules if request.start <= g.start_time <= request.end)
    unique = {r["id"]: r for r in refs}
    return sorted(unique.values(), key=lambda r: r["start_time"])


def ensure_granule_limit(default: int) -> None:
    """Create the global concurrency limit on backfill granules if the server has none yet.

    Operators see and change it in the UI (Concurrency); it bounds the granules in flight across
    every backfill run together, while ``max_concurrency`` bounds one run.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(GRANULE_LIMIT)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=GRANULE_LIMIT, limit=default))
                logger.info("created the global concurrency limit %s at %d granules", GRANULE_LIMIT, default)
            except ObjectAlreadyExists:  # another run created it meanwhile
                pass


def report_path_for(request: BackfillRequest) -> Path:
    """The run's own report file: concurrent backfills into one folder never overwrite each other's."""
    if request.report_file:
        return Path(request.report_file)
    from prefect.runtime import flow_run

    run = str(flow_run.id or "")[:8] or f"pid{os.getpid()}"
    name = f"{REPORT_PREFIX}_{request.start:%Y%m%dT%H%M%S}_{request.end:%Y%m%dT%H%M%S}_{run}.json"
    return Path(request.out_dir) / name


@flow(
    name="mthccar-backfill",
    validate_parameters=True,
    task_runner=ThreadPoolTaskRunner(max_workers=MAX_THREADS),  # type: ignore[arg-type]
    persist_result=True,
)
def backfill(request: BackfillRequest) -> dict[str, Any]:
    """Process every granule of an archive time range; resumable; returns the report."""
    route_project_logs()
    if Path(request.out_dir).is_dir():  # a killed earlier run may have left staging files
        remove_stale_temporaries(Path(request.out_dir))
    refs = enumerate_granules(request)
    logger.info("backfill of %s from %s to %s: %d granules", request.archive, request.start, request.end, len(refs))
    ensure_granule_limit(DEFAULT_GRANULE_LIMIT)
    with dask_for(request.settings) as runtime:
        options = options_for(request.out_dir, request.settings, runtime, force=False)
        granule_task = process_granule_task.with_options(tags=["mthccar", "mthccar-backfill"])
        outcomes: list[dict[str, Any]] = []
        pending: list[dict[str, Any]] = list(refs)
        in_flight: list[Any] = []
        while pending or in_flight:  # a sliding window of at most max_concurrency granules
            while pending and len(in_flight) < request.max_concurrency:
                in_flight.append(granule_task.submit(pending.pop(0), options, limit=GRANULE_LIMIT))
            finished = next(as_completed(in_flight))
            in_flight.remove(finished)
            outcomes.append(finished.result())
    report: dict[str, Any] = {
        "archive": request.archive,
        "start": request.start.isoformat(),
        "end": request.end.isoformat(),
        **{status: [o for o in outcomes if o["status"] == status] for status in STATUSES},
    }
    report_path = report_path_for(request)
    with atomic_output(report_path) as tmp:
        tmp.write_text(json.dumps(report, indent=1, default=str))
    create_markdown_artifact(
        report_markdown(
            f"MT-HCCAR backfill {request.start:%Y-%m-%d %H:%M} to {request.end:%Y-%m-%d %H:%M}",
            outcomes,
            f"Report: `{report_path}`",
        ),
        key="mthccar-backfill-report",
        description=f"backfill of {request.archive}",
    )
    return {**{k: len(v) for k, v in report.items() if isinstance(v, list)}, "report": str(report_path)}
