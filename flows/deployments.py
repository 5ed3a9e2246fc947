"""Deployments of the three flows, served by ``mthccar serve`` against the configured Prefect server.

* ``mthccar-process-granule/on-demand``: started from the UI (a form of ``ProcessRequest``);
* ``mthccar-operational/operational``: on a cron or interval schedule, one run at a time;
* ``mthccar-backfill/backfill``: on demand, one run at a time (its granules fan out inside), so
  a backfill never takes more than its own slot beside the operational schedule.

Every deployment enforces its parameter schema: the server refuses bad UI values before a run is
even created. With a work pool (docker compose, ``prefect.yaml``) the same deployments go to
queues of different priority instead.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flows.backfill import backfill
from flows.operational import operational
from flows.process import process_granule

# The operational and backfill flows record each granule's failure in their report and raise only
# when the run itself cannot go on (archive unreachable, scheduler gone, disk for the state file
# lost): those runs are retried. The on-demand flow raises for failed granules, so it is not.
INFRASTRUCTURE_RETRIES: dict[str, Any] = {"retries": 2, "retry_delay_seconds": 60}

# The flows as deployed, here and in prefect.yaml's entrypoints alike (one definition of each)
on_demand_flow = process_granule
operational_flow = operational.with_options(**INFRASTRUCTURE_RETRIES)
backfill_flow = backfill.with_options(**INFRASTRUCTURE_RETRIES)


def build_deployments(
    incoming: str, out_dir: str, interval_minutes: float | None = 5.0, cron: str | None = None
) -> list[Any]:
    if cron and interval_minutes:
        interval_minutes = None
    schedule: dict[str, Any] = {"cron": cron} if cron else {"interval": dt.timedelta(minutes=interval_minutes or 5)}
    return [
        on_demand_flow.to_deployment(
            name="on-demand",
            tags=["mthccar", "on-demand"],
            enforce_parameter_schema=True,
            description="Process the granules of the given files now.",
        ),
        operational_flow.to_deployment(
            name="operational",
            tags=["mthccar", "operational"],
            enforce_parameter_schema=True,
            concurrency_limit=1,
            parameters={"request": {"incoming": incoming, "out_dir": out_dir}},
            description="Scan the incoming location and process new complete scans.",
            **schedule,
        ),
        backfill_flow.to_deployment(
            name="backfill",
            tags=["mthccar", "backfill"],
            enforce_parameter_schema=True,
            concurrency_limit=1,
            description="Reprocess an archive over a time range.",
        ),
    ]


def _merged(edited: dict[str, Any], ours: dict[str, Any]) -> dict[str, Any]:
    """``edited`` with ``ours`` laid over it, nested dicts merged key by key."""
    out = dict(edited)
    for key, value in ours.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def keep_edited_parameters(deployments: list[Any]) -> list[Any]:
    """Keep the parameters an operator edited in the UI when ``serve`` registers the deployments again.

    ``serve``'s own values (the operational incoming location and output folder) still win; every
    other edited value (``settle_minutes``, run settings, ...) survives a restart.
    """
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        for deployment in deployments:
            try:
                existing = client.read_deployment_by_name(f"{deployment.flow_name}/{deployment.name}")
            except ObjectNotFound:
                continue
            deployment.parameters = _merged(existing.parameters or {}, deployment.parameters)
    return deployments


def serve(
    incoming: str, out_dir: str, interval_minutes: float | None = 5.0, cron: str | None = None, limit: int = 4
) -> None:
    """Register the deployments (keeping parameters edited in the UI) and run them until interrupted."""
    from prefect import serve as prefect_serve

    deployments = keep_edited_parameters(build_deployments(incoming, out_dir, interval_minutes, cron))
    prefect_serve(*deployments, limit=limit)
