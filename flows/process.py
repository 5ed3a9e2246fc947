"""The ``process_granule`` flow: find -> check -> infer -> write for each granule, with a run report.

Idempotent: a granule whose product exists for the same inputs and model sha256 is skipped
(``force`` reprocesses). A granule that fails for a reason retrying cannot fix (bad file, missing
band, wrong model) is recorded with that reason; the other granules still run, and the flow run
ends Failed if any granule failed.
"""

from __future__ import annotations

import base64
import io
import logging
import time
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency

from flows.logs import route_project_logs
from flows.parameters import ProcessRequest, RunSettings
from flows.runners import dask_for
from flows.tasks import find_task, plan_task, publish_task, stage_task
from pipeline.ancillary import AncillaryConfig
from pipeline.claims import GranuleBusyError, claim
from pipeline.failures import describe_failure
from pipeline.logcontext import granule_context
from pipeline.process import ProcessOptions, ensure_gridded
from pipeline.quicklook import quicklook_path
from pipeline.runtime import Runtime

logger = logging.getLogger(__name__)


class GranuleFailuresError(RuntimeError):
    """Some granules of a run failed; each has its reason in the run report."""


def options_for(out_dir: str, settings: RunSettings, runtime: Runtime, force: bool) -> ProcessOptions:
    return ProcessOptions(
        ancillary=AncillaryConfig.from_files(settings.nwp, settings.land_cover),
        out_dir=Path(out_dir),
        model=Path(settings.model) if settings.model else None,
        device=settings.device.value,
        chunk_size=settings.chunk_size,
        overwrite=force,
        torch_threads=runtime.torch_threads,
        resources=runtime.resources,
        areas=tuple(settings.areas),
        geotiff=settings.geotiff,
        precision=settings.precision.value,
    )


def run_granule(ref: dict[str, Any], options: ProcessOptions, quicklook: bool = True) -> dict[str, Any]:
    """One granule through the tasks, under its claim; returns its outcome (never raises for a granule's
    own failure: the reason is one sentence and the batch goes on)."""
    started = time.perf_counter()
    outcome: dict[str, Any] = {"granule": ref["id"], "start_time": ref["start_time"]}
    try:
        with granule_context(ref["id"]), claim(options.out_dir, ref["stem"], ref["id"]):
            planned = plan_task(ref, options)
            outcome["model"] = planned.model_name
            if planned.existing is not None:
                return {
                    **outcome,
                    "status": "skipped",
                    "product": str(planned.existing),
                    "quicklook": str(quicklook_path(planned.existing)) if quicklook else None,
                    "gridded": [str(p) for p in ensure_gridded(planned.existing, options.areas, options.geotiff)],
                    "reason": "same inputs and model already processed",
                    "seconds": time.perf_counter() - started,
                }
            staged = stage_task(planned, options)
            published = publish_task(staged, quicklook, options.areas, options.geotiff)
        retrieved = int(staged.stats.get("retrieved", 0))
        return {
            **outcome,
            "status": "processed",
            "product": str(published.product),
            "quicklook": str(published.quicklook) if published.quicklook else None,
            "gridded": [str(p) for p in published.gridded],
            "retrieved": retrieved,
            "cloud_fraction": (int(staged.stats["cloudy"]) / retrieved) if retrieved else None,
            "seconds": time.perf_counter() - started,
        }
    except GranuleBusyError as busy:
        logger.info("%s", busy)
        return {**outcome, "status": "busy", "reason": str(busy), "seconds": time.perf_counter() - started}
    except Exception as error:  # each granule's failure is reported, the run goes on
        reason = describe_failure(error, ref["id"], options.out_dir)
        logger.error("%s", reason)
        logger.debug("traceback of the failure of %s", ref["id"], exc_info=error)
        return {**outcome, "status": "failed", "reason": reason, "seconds": time.perf_counter() - started}


@task(
    name="process granule",
    task_run_name="process {ref[id]}",
    tags=["mthccar", "mthccar-granule"],
    cache_policy=NO_CACHE,
)
def process_granule_task(
    ref: dict[str, Any], options: ProcessOptions, quicklook: bool = True, limit: str | None = None
) -> dict[str, Any]:
    """One granule as a task, so batch flows can fan out; ``limit`` names a Prefect global concurrency
    limit that holds one slot while the granule runs (operators change it in the UI)."""
    if limit is None:
        return run_granule(ref, options, quicklook)
    with concurrency(limit, occupy=1):
        return run_granule(ref, options, quicklook)


STATUSES = ("processed", "skipped", "busy", "failed")


def _thumbnail(picture: str | None, width: int = 480) -> str:
    """A small inline copy of a quicklook for the run report (the UI cannot read the worker's disk)."""
    if not picture or not Path(picture).exists():
        return ""
    from PIL import Image

    with Image.open(picture) as image:
        image.thumbnail((width, width))
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="PNG", optimize=True)
    return f"![quicklook](data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()})"


def report_markdown(title: str, outcomes: list[dict[str, Any]], extra: str = "", thumbnails: int = 8) -> str:
    """The run report: counts, one row per granule, then full paths and quicklooks of the products."""
    counts = {s: sum(o["status"] == s for o in outcomes) for s in STATUSES}
    lines = [
        f"# {title}",
        "",
        ", ".join(f"{n} {status}" for status, n in counts.items()) + ".",
        extra,
        "",
        "| granule | status | cloud fraction | seconds | reason |",
        "|---|---|---|---|---|",
    ]
    for o in outcomes:
        fraction = f"{o['cloud_fraction']:.3f}" if o.get("cloud_fraction") is not None else ""
        reason = o.get("reason", "") if o["status"] != "processed" else ""
        lines.append(f"| {o['granule']} | {o['status']} | {fraction} | {o.get('seconds', 0):.1f} | {reason} |")
    products = [o for o in outcomes if o.get("product")]
    if products:
        lines += ["", "## Products", ""]
    for i, o in enumerate(products):
        lines += [f"### {o['granule']}", "", f"- product: `{o['product']}`"]
        if o.get("quicklook"):
            lines.append(f"- quicklook: `{o['quicklook']}`")
        lines += [f"- gridded: `{path}`" for path in o.get("gridded", [])]
        if i < thumbnails:
            lines += ["", _thumbnail(o.get("quicklook"))]
        lines.append("")
    return "\n".join(lines) + "\n"


@flow(name="mthccar-process-granule", validate_parameters=True, persist_result=True)
def process_granule(request: ProcessRequest) -> list[dict[str, Any]]:
    """Process the granules of the given files on demand; a markdown report per run."""
    route_project_logs()
    refs = find_task(request.inputs, request.sensor.value if request.sensor else None)
    with dask_for(request.settings) as runtime:
        logger.info("processing %d granule(s) on %s", len(refs), runtime.description)
        options = options_for(request.out_dir, request.settings, runtime, request.force)
        outcomes = [run_granule(ref, options) for ref in refs]
    create_markdown_artifact(
        report_markdown("MT-HCCAR run", outcomes),
        key="mthccar-process-report",
        description="granules, products and quicklooks of this run",
    )
    failed = [o for o in outcomes if o["status"] == "failed"]
    if failed:
        raise GranuleFailuresError("; ".join(f"{o['granule']}: {o['reason']}" for o in failed))
    return outcomes
