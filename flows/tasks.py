"""Prefect tasks around the pipeline: find, check (ingest), infer, write. No science here.

Only small values cross task boundaries: file lists, paths, ids, counts. Retries are for
transient failures only (timeouts, dropped connections, I/O hiccups on network file systems);
bad input fails once, with its one-sentence reason.
"""

from __future__ import annotations

import errno
import logging
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.tasks import Task

from pipeline.granules import Granule, find_granules
from pipeline.inference import compute_context
from pipeline.ingest import check_file
from pipeline.process import (
    ProcessOptions,
    already_done,
    build_granule_product,
    checked_artifact,
    choose_artifact,
    granule_stem,
)
from pipeline.product import StagedProduct, check_existing, ensure_quicklook, publish_product, stage_product

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


@task(name="check inputs", task_run_name="check {ref[id]}", **TRANSIENT_RETRIES)
def check_task(ref: dict[str, Any], model: str | None, out_dir: str, force: bool) -> dict[str, Any]:
    """Choose the model, check every file and band is there; say if the product already exists."""
    granule = granule_from(ref)
    artifact = choose_artifact(granule, Path(model) if model else None)
    granule.require(artifact.spec.bands)
    for path in granule.used_paths(artifact.spec.bands):  # the files the model reads, as ingest does
        check_file(path, granule.reader)
    done = already_done(granule, artifact, Path(out_dir), overwrite=force)
    if done is not None:
        ensure_quicklook(done)  # a run killed after publishing the product may have left it without
    return {
        "model": str(artifact.path),
        "model_name": artifact.name,
        "sha256": artifact.sha256,
        "bands": artifact.spec.bands,
        "existing": str(done) if done else None,
    }


@task(name="infer", task_run_name="infer {ref[id]}", **TRANSIENT_RETRIES)
def infer_task(ref: dict[str, Any], checked: dict[str, Any], options: ProcessOptions) -> dict[str, Any]:
    """Run ingest, features and the model over every chunk into a staged product file."""
    granule = granule_from(ref)
    artifact = checked_artifact(checked["model"], expect_sensor=granule.sensor)  # loaded by check_task
    product, attrs = build_granule_product(granule, artifact, options)
    # check_task decided; this only guards against a product that appeared since (never a silent replace)
    identical, replaces = check_existing(product.attrs, attrs, options.out_dir, options.overwrite)
    replaces = replaces or ([identical] if identical else [])
    with compute_context(options.resources):
        staged = stage_product(product, attrs, options.out_dir, replaces)
    return {
        "staging": str(staged.staging),
        "final": str(staged.final),
        "replaces": [str(p) for p in staged.replaces],
        "stats": staged.stats,
    }


@task(name="write", task_run_name="write {staged[final]}", **TRANSIENT_RETRIES)
def write_task(staged: dict[str, Any], quicklook: bool = True) -> dict[str, Any]:
    """Draw the quicklook of the staged product and publish both under their final names."""
    published = publish_product(
        StagedProduct(
            Path(staged["staging"]), Path(staged["final"]), [Path(p) for p in staged["replaces"]], staged["stats"]
        ),
        quicklook,
    )
    return {"product": str(published.product), "quicklook": str(published.quicklook) if published.quicklook else None}
