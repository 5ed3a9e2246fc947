"""Scheduled operational processing: scan an incoming location, process new complete scans.

Each run lists the incoming location (a directory or any fsspec URL), groups the files into
scans, and processes the scans that are complete and not yet done, oldest first. A scan is
complete when it has every band of the sensor's best default model (or of the given model), or
when it has been seen unchanged for ``settle_minutes`` and has the bands of some model (real ABI
scans may lack C02 for good). Incomplete scans wait; after ``give_up_minutes`` they are recorded
as failed. Progress is recorded in a JSON state file after every scan, so a restarted run
resumes where the last one stopped.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.parameters import OperationalRequest
from flows.process import options_for, report_markdown, run_granule
from flows.runners import dask_for
from flows.tasks import find_task, granule_from
from models.fileio import atomic_output, remove_stale_temporaries
from pipeline.granules import GranuleError
from pipeline.process import best_bands, choose_artifact

logger = logging.getLogger(__name__)

STATE_NAME = ".mthccar-operational-state.json"


def load_state(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"done": {}, "failed": {}, "waiting": {}}
    try:
        state = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise ValueError(f"operational state file {path} is corrupt; move it away to start afresh") from None
    for key in ("done", "failed", "waiting"):
        state.setdefault(key, {})
    return state


def save_state(path: Path, state: dict[str, Any]) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True))


def _readiness(
    ref: dict[str, Any], request: OperationalRequest, state: dict[str, Any], now: dt.datetime
) -> tuple[str, str]:
    """("ready" | "waiting" | "incomplete", reason) for one scan."""
    granule = granule_from(ref)
    seen = state["waiting"].get(ref["id"])
    files = len(ref["paths"])
    if seen is None or seen["files"] != files:
        seen = {"since": now.isoformat(), "files": files}
        state["waiting"][ref["id"]] = seen
    age = (now - dt.datetime.fromisoformat(seen["since"])).total_seconds() / 60
    model = Path(request.settings.model) if request.settings.model else None
    wanted = best_bands(granule.sensor, model)
    if not granule.missing(wanted):
        return "ready", ""
    try:
        choose_artifact(granule, model)
        fits = True
    except ValueError:
        fits = False
    if fits and age >= request.settle_minutes:
        return "ready", ""
    if age >= request.give_up_minutes:
        return "incomplete", f"still lacks {' and '.join(granule.missing(wanted))} after {age:.0f} minutes"
    return "waiting", f"lacks {' and '.join(granule.missing(wanted))}"


@flow(name="mthccar-operational", validate_parameters=True)
def operational(request: OperationalRequest) -> dict[str, Any]:
    """One scan of the incoming location: process what is new and complete, remember what was done."""
    out_dir = Path(request.out_dir)
    state_path = Path(request.state_file) if request.state_file else out_dir / STATE_NAME
    state = load_state(state_path)
    if out_dir.is_dir():  # a killed earlier run may have left staging files
        remove_stale_temporaries(out_dir)
    try:
        refs = find_task([request.incoming], request.sensor.value if request.sensor else None)
    except GranuleError as error:
        logger.info("nothing to do: %s", error)
        refs = []
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    outcomes: list[dict[str, Any]] = []
    waiting: list[str] = []
    todo = [r for r in refs if r["id"] not in state["done"] and r["id"] not in state["failed"]]
    with dask_for(request.settings) as runtime:
        options = options_for(str(out_dir), request.settings, runtime, force=False)
        for ref in todo[: request.max_granules]:
            readiness, reason = _readiness(ref, request, state, now)
            if readiness == "waiting":
                waiting.append(f"{ref['id']} ({reason})")
                continue
            if readiness == "incomplete":
                outcome = {"granule": ref["id"], "status": "failed", "reason": f"incomplete scan: {reason}"}
            else:
                outcome = run_granule(ref, options)
            outcomes.append(outcome)
            state["waiting"].pop(ref["id"], None)
            record = "failed" if outcome["status"] == "failed" else "done"
            state[record][ref["id"]] = outcome.get("product") or outcome.get("reason", "")
            save_state(state_path, state)
    save_state(state_path, state)
    extra = f"Waiting for {len(waiting)} scan(s): {', '.join(waiting)}" if waiting else ""
    create_markdown_artifact(
        report_markdown("MT-HCCAR operational scan", outcomes, extra),
        key="mthccar-operational-report",
        description=f"scan of {request.incoming}",
    )
    return {"outcomes": outcomes, "waiting": waiting, "state_file": str(state_path)}
