"""Prefect tasks around the pipeline's steps: find, plan, stage, publish. No science here.

Only small values cross task boundaries: file lists, paths, ids, counts. Retries are for
transient failures only (timeouts, dropped connections, I/O hiccups on network file systems);
bad input fails once, with its one-sentence reason.
"""

from __future__ import annotations

import errno
import logging
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.tasks import Task

from pipeline import process as steps  # the steps the CLI runs too
from pipeline.granules import Granule, find_granules
from pipeline.process import Plan, ProcessOptions, granule_stem
from pipeline.product import Published, StagedProduct

logger = logging.getLogger(__name__)

TRANSIENT_ERRNOS = {
    errno.EIO,
    errno.EAGAIN,
    errno.ETIMEDOUT,
    errno.ECONNRESET,
    errno.ECONNREFUSED,
    errno.ECONNABORTED,
    errno.ESTALE,
    errno.EBUSY,
    errno.ENETUNREACH,
    errno.EHOSTUNREACH,
    errno.ENETDOWN,
}
NOT_TRANSIENT = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)


def is_transient(error: BaseException | None) -> bool:
    """Whether retrying could help: timeouts, lost connections, transient I/O errors."""
    if isinstance(error, TimeoutError | ConnectionError):
        return True
    if isinstance(error, OSError) and not isinstance(error, NOT_TRANSIENT):
        return error.errno in TRANSIENT_ERRNOS
    return False


def retry_transient(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    try:
        error = state.result(raise_on_failure=False)
    except Exception as raised:  # some states raise instead of returning the exception
        error = raised
    retry = is_transient(error if isinstance(error, BaseException) else None)
    if not retry:
        logger.info("%s failed for good (no retry): %s", task.name, error)
    return retry


TRANSIENT_RETRIES: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": [2, 10, 30],
    "retry_condition_fn": retry_transient,
    "cache_policy": NO_CACHE,  # every task reads or writes files: never reuse an earlier result
}


def granule_ref(granule: Granule) -> dict[str, Any]:
    """A granule as plain data: its reader and files (enough to find it again anywhere)."""
    return {
        "id": granule.id,
        "reader": granule.reader,
        "paths": granule.paths,
        "start_time": granule.start_time.isoformat(),
        "stem": granule_stem(granule),
    }


def granule_from(ref: dict[str, Any]) -> Granule:
    found = find_granules(ref["paths"], reader=ref["reader"])
    if len(found) != 1:
        raise ValueError(f"the files of granule {ref['id']} no longer make one granule ({len(found)} found)")
    return found[0]


@task(name="find granules", **TRANSIENT_RETRIES)
def find_task(inputs: list[str], sensor: str | None) -> list[dict[str, Any]]:
    return [granule_ref(g) for g in find_granules(inputs, sensor)]


@task(name="plan", task_run_name="plan {ref[id]}", **TRANSIENT_RETRIES)
def plan_task(ref: dict[str, Any], options: ProcessOptions) -> Plan:
    """Choose the model, check the files it reads, find an existing product (``pipeline.process.plan``)."""
    return steps.plan(granule_from(ref), options)


@task(name="stage", task_run_name="stage {planned.granule.id}", **TRANSIENT_RETRIES)
def stage_task(planned: Plan, options: ProcessOptions) -> StagedProduct:
    """Ingest, features and the model over every chunk into the staging file (``pipeline.process.stage``)."""
    return steps.stage(planned, options)


@task(name="publish", task_run_name="publish {staged.final.name}", **TRANSIENT_RETRIES)
def publish_task(
    staged: StagedProduct, quicklook: bool = True, areas: tuple[str, ...] = (), geotiff: bool = False
) -> Published:
    """Quicklook and product under their final names, then the gridded copies (``pipeline.process.publish``)."""
    return steps.publish(staged, quicklook, areas, geotiff)
