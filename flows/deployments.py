"""Deployments of the three flows, served by ``mthccar serve`` against the configured Prefect server.

* ``mthccar-process-granule/on-demand``: started from the UI (a form of ``ProcessRequest``);
* ``mthccar-operational/operational``: on a cron or interval schedule, one run at a time;
* ``mthccar-backfill/backfill``: on demand, one run at a time (its granules fan out inside), so
  a backfill never takes more than its own slot beside the operational schedule.

Every deployment enforces its parameter schema: the server refuses bad UI values before a run is
even created. With a work pool (docker compose) the same deployments go to queues of different
priority instead: ``prefect.yaml`` is generated from the table here
(``python -m flows.deployments --write-prefect-yaml``), so the two cannot drift apart.
"""

from __future__ import annotations

import argparse
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
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


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment as data: ``serve`` builds it, and ``prefect.yaml`` is generated from it."""

    name: str
    entrypoint: str  # attribute of this module
    description: str
    concurrency_limit: int | None = None
    scheduled: bool = False  # the operational schedule (interval or cron)

    @property
    def tags(self) -> list[str]:
        return ["mthccar", self.name]


DEPLOYMENTS = (
    DeploymentSpec("on-demand", "on_demand_flow", "Process the granules of the given files now (a form in the UI)."),
    DeploymentSpec(
        "operational",
        "operational_flow",
        "Scan the incoming location on a schedule and process new complete scans, one run at a time.",
        concurrency_limit=1,
        scheduled=True,
    ),
    DeploymentSpec(
        "backfill",
        "backfill_flow",
        "Reprocess an archive over a time range (lowest-priority queue, one run at a time).",
        concurrency_limit=1,
    ),
)
DEFAULT_INTERVAL_MINUTES = 5.0
# prefect.yaml (docker compose, a work pool): the containers' volumes and Dask scheduler
WORK_POOL = "mthccar"
POOL_DEFAULTS: dict[str, Any] = {
    "incoming": "/data/incoming",
    "out_dir": "/data/products",
    "settings": {"where": "scheduler", "scheduler_address": "tcp://dask-scheduler:8786"},
}
PREFECT_YAML = Path(__file__).resolve().parents[1] / "prefect.yaml"
# the server image of docker/compose.yaml: a newer client release must not change the shipped file
PREFECT_SERVER_VERSION = "3.9.1"


def _flow(spec: DeploymentSpec) -> Any:
    return globals()[spec.entrypoint]


def build_deployments(
    incoming: str, out_dir: str, interval_minutes: float | None = DEFAULT_INTERVAL_MINUTES, cron: str | None = None
) -> list[Any]:
    """The deployments ``serve`` registers: the table above with serve's locations and schedule."""
    if cron and interval_minutes:
        interval_minutes = None
    schedule: dict[str, Any] = (
        {"cron": cron} if cron else {"interval": dt.timedelta(minutes=interval_minutes or DEFAULT_INTERVAL_MINUTES)}
    )
    deployments = []
    for spec in DEPLOYMENTS:
        options: dict[str, Any] = {"concurrency_limit": spec.concurrency_limit} if spec.concurrency_limit else {}
        if spec.scheduled:
            options.update(parameters={"request": {"incoming": incoming, "out_dir": out_dir}}, **schedule)
        deployments.append(
            _flow(spec).to_deployment(
                name=spec.name,
                tags=spec.tags,
                enforce_parameter_schema=True,
                description=spec.description,
                **options,
            )
        )
    return deployments


def prefect_yaml() -> str:
    """The text of ``prefect.yaml``: the same deployments for a work pool, one queue each."""
    import yaml

    deployments = []
    for spec in DEPLOYMENTS:
        entry: dict[str, Any] = {
            "name": spec.name,
            "description": spec.description,
            "entrypoint": f"flows/deployments.py:{spec.entrypoint}",
            "enforce_parameter_schema": True,
            "tags": spec.tags,
        }
        if spec.concurrency_limit:
            entry["concurrency_limit"] = spec.concurrency_limit
        if spec.scheduled:
            entry["parameters"] = {"request": POOL_DEFAULTS}
            entry["schedules"] = [{"interval": int(DEFAULT_INTERVAL_MINUTES * 60)}]
        entry["work_pool"] = {"name": WORK_POOL, "work_queue_name": spec.name}
        deployments.append(entry)
    config = {
        "name": "mthccar",
        "prefect-version": PREFECT_SERVER_VERSION,
        "build": None,
        "push": None,
        "pull": [{"prefect.deployments.steps.set_working_directory": {"directory": "/opt/mthccar"}}],
        "deployments": deployments,
    }
    header = (
        "# Generated by `python -m flows.deployments --write-prefect-yaml` from flows/deployments.py; do not edit.\n"
        "# Deployments for a Prefect work pool (docker/compose.yaml runs `prefect deploy --all` with this).\n"
        "# Without a work pool, `mthccar serve` registers the same three deployments and runs them itself.\n"
    )
    return header + yaml.safe_dump(config, sort_keys=False, width=120)


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
    incoming: str,
    out_dir: str,
    interval_minutes: float | None = DEFAULT_INTERVAL_MINUTES,
    cron: str | None = None,
    limit: int = 4,
) -> None:
    """Register the deployments (keeping parameters edited in the UI) and run them until interrupted."""
    from prefect import serve as prefect_serve

    deployments = keep_edited_parameters(build_deployments(incoming, out_dir, interval_minutes, cron))
    prefect_serve(*deployments, limit=limit)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print or write prefect.yaml from the deployments table.")
    parser.add_argument("--write-prefect-yaml", action="store_true", help=f"write {PREFECT_YAML}")
    if parser.parse_args(argv).write_prefect_yaml:
        PREFECT_YAML.write_text(prefect_yaml())
    else:
        print(prefect_yaml(), end="")


if __name__ == "__main__":
    main()
