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
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.logs import route_project_logs
from flows.parameters import OperationalRequest
from flows.process import options_for, report_markdown, run_granule
from flows.runners import dask_for
from flows.tasks import find_task, granule_from
from models.fileio import atomic_output, remove_stale_temporaries
from pipeline.granules import GranuleError
from pipeline.process import best_bands, choose_artifact

logger = logging.getLogger(__name__)

STATE_NAME = ".mthccar-operational-state.json"


STATE_KEYS = ("done", "failed", "waiting")


def load_state(path: Path) -> dict[str, Any]:
    """The progress record; one sentence when it is unreadable or not of the expected shape."""
    if not path.exists():
        return {key: {} for key in STATE_KEYS}
    try:
        state = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError(f"operational state file {path} is corrupt; move it away to start afresh") from None
    except OSError as error:
        raise ValueError(f"operational state file {path} cannot be read ({error.strerror})") from None
    if not isinstance(state, dict) or any(not isinstance(state.get(key, {}), dict) for key in STATE_KEYS):
        raise ValueError(
            f"operational state file {path} is not a state file of this pipeline (expected an object with "
            f"{', '.join(STATE_KEYS)} maps); move it away to start afresh"
        )
    for key in STATE_KEYS:
        state.setdefault(key, {})
    return state


def check_writable(path: Path) -> None:
    """Refuse to start when the state file could not be saved, before any granule is processed."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path.with_name(path.name + ".probe")) as probe:
            probe.write_text("")
        path.with_name(path.name + ".probe").unlink(missing_ok=True)
    except OSError as error:
        raise ValueError(
            f"operational state file {path} cannot be written ({error.strerror or error}); "
            "set state_file or out_dir to a writable location"
        ) from None


def fingerprint(ref: dict[str, Any]) -> str:
    """What the state remembers of a scan's files: names, sizes and modification times.

    A re-delivered (corrected) scan has another fingerprint and is processed again.
    """
    import fsspec

    parts = []
    for path in sorted(ref["paths"]):
        fs, _, (local,) = fsspec.get_fs_token_paths(path)
        info = fs.info(local)
        mtime = info.get("mtime") or info.get("LastModified") or info.get("created") or ""
        parts.append(f"{Path(local).name}:{info.get('size')}:{mtime}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def save_state(path: Path, state: dict[str, Any]) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True))


def _recorded(state: dict[str, Any], ref: dict[str, Any], print_: str) -> bool:
    """Whether this delivery of the scan (same fingerprint) is already done or failed for good."""
    for record in ("done", "failed"):
        entry = state[record].get(ref["id"])
        if isinstance(entry, dict) and entry.get("fingerprint") == print_:
            return True
    return False


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


@flow(name="mthccar-operational", validate_parameters=True, persist_result=True)
def operational(request: OperationalRequest) -> dict[str, Any]:
    """One scan of the incoming location: process what is new and complete, remember what was done."""
    route_project_logs()
    out_dir = Path(request.out_dir)
    state_path = Path(request.state_file) if request.state_file else out_dir / STATE_NAME
    state = load_state(state_path)
    check_writable(state_path)
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
    prints = {r["id"]: fingerprint(r) for r in refs}
    todo = [r for r in refs if not _recorded(state, r, prints[r["id"]])]
    already = len(refs) - len(todo)
    with dask_for(request.settings) as runtime:
        for ref in todo[: request.max_granules]:
            readiness, reason = _readiness(ref, request, state, now)
            if readiness == "waiting":
                waiting.append(f"{ref['id']} ({reason})")
                continue
            redelivered = any(ref["id"] in state[r] for r in ("done", "failed"))
            if readiness == "incomplete":
                outcome = {"granule": ref["id"], "status": "failed", "reason": f"incomplete scan: {reason}"}
            else:  # a corrected re-delivery replaces the product made from the earlier files
                outcome = run_granule(ref, options_for(str(out_dir), request.settings, runtime, force=redelivered))
            outcomes.append(outcome)
            if outcome["status"] == "busy":
                continue  # another run has it; look again at the next scan
            state["waiting"].pop(ref["id"], None)
            for record in ("done", "failed"):
                state[record].pop(ref["id"], None)
            record = "failed" if outcome["status"] == "failed" else "done"
            state[record][ref["id"]] = {
                "fingerprint": prints[ref["id"]],
                "result": outcome.get("product") or outcome.get("reason", ""),
            }
            save_state(state_path, state)
    save_state(state_path, state)
    extra = "\n".join(
        line
        for line in (
            f"{already} scan(s) of the incoming location were already done.",
            f"Waiting for {len(waiting)} scan(s): {', '.join(waiting)}" if waiting else "",
        )
        if line
    )
    create_markdown_artifact(
        report_markdown("MT-HCCAR operational scan", outcomes, extra),
        key="mthccar-operational-report",
        description=f"scan of {request.incoming}",
    )
    return {"outcomes": outcomes, "waiting": waiting, "already_done": already, "state_file": str(state_path)}
