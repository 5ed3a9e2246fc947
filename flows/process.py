"""The ``process_granule`` flow: find -> check -> infer -> write for each granule, with a run report.

Idempotent: a granule whose product exists for the same inputs and model sha256 is skipped
(``force`` reprocesses). A granule that fails for a reason retrying cannot fix (bad file, missing
band, wrong model) is recorded with that reason; the other granules still run, and the flow run
ends Failed if any granule failed.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.parameters import ProcessRequest, RunSettings
from flows.runners import dask_for
from flows.tasks import check_task, find_task, infer_task, write_task
from pipeline.ancillary import AncillaryConfig
from pipeline.process import ProcessOptions
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
    )


def run_granule(ref: dict[str, Any], options: ProcessOptions, quicklook: bool = True) -> dict[str, Any]:
    """One granule through the tasks; returns its outcome (never raises for a granule's own failure)."""
    started = time.perf_counter()
    outcome: dict[str, Any] = {"granule": ref["id"], "start_time": ref["start_time"]}
    try:
        checked = check_task(
            ref, str(options.model) if options.model else None, str(options.out_dir), options.overwrite
        )
        outcome["model"] = checked["model_name"]
        if checked["existing"]:
            return {
                **outcome,
                "status": "skipped",
                "product": checked["existing"],
                "reason": "same inputs and model already processed",
                "seconds": time.perf_counter() - started,
            }
        staged = infer_task(ref, checked, options)
        written = write_task(staged, quicklook)
        stats = staged["stats"]
        retrieved = int(stats.get("retrieved", 0))
        return {
            **outcome,
            "status": "processed",
            **written,
            "retrieved": retrieved,
            "cloud_fraction": (int(stats["cloudy"]) / retrieved) if retrieved else None,
            "seconds": time.perf_counter() - started,
        }
    except Exception as error:  # each granule's failure is reported, the run goes on
        logger.error("granule %s failed: %s", ref["id"], error, exc_info=logger.isEnabledFor(logging.DEBUG))
        return {
            **outcome,
            "status": "failed",
            "reason": f"{type(error).__name__}: {error}",
            "seconds": time.perf_counter() - started,
        }


@task(
    name="process granule",
    task_run_name="process {ref[id]}",
    tags=["mthccar", "mthccar-granule"],
    cache_policy=NO_CACHE,
)
def process_granule_task(ref: dict[str, Any], options: ProcessOptions, quicklook: bool = True) -> dict[str, Any]:
    """One granule as a task, so batch flows can fan out with bounded concurrency."""
    return run_granule(ref, options, quicklook)


def report_markdown(title: str, outcomes: list[dict[str, Any]], extra: str = "") -> str:
    counts = {s: sum(o["status"] == s for o in outcomes) for s in ("processed", "skipped", "failed")}
    lines = [
        f"# {title}",
        "",
        f"{counts['processed']} processed, {counts['skipped']} skipped, {counts['failed']} failed.",
        extra,
        "",
        "| granule | status | cloud fraction | seconds | product / reason | quicklook |",
        "|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        fraction = f"{o['cloud_fraction']:.3f}" if o.get("cloud_fraction") is not None else ""
        detail = o.get("product") if o["status"] != "failed" else o.get("reason", "")
        lines.append(
            f"| {o['granule']} | {o['status']} | {fraction} | {o.get('seconds', 0):.1f} | "
            f"`{detail}` | `{o.get('quicklook') or ''}` |"
        )
    return "\n".join(lines) + "\n"


@flow(name="mthccar-process-granule", validate_parameters=True)
def process_granule(request: ProcessRequest) -> list[dict[str, Any]]:
    """Process the granules of the given files on demand; a markdown report per run."""
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
