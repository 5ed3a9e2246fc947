"""The complete ``mthccar`` command: the library commands of ``pipeline.cli`` plus ``serve`` and ``demo``.

Prefect is imported here, in the orchestration layer, so that ``pipeline`` stays usable without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli import app, friendly_errors

__all__ = ["app"]


@app.command()
@friendly_errors
def serve(
    incoming: Annotated[str, typer.Option(help="Directory or fsspec URL where granules arrive.")],
    out: Annotated[str, typer.Option(help="Directory for products (resolved to an absolute path now).")] = "products",
    interval_minutes: Annotated[float, typer.Option(min=0.1, help="Operational scan interval.")] = 5.0,
    cron: Annotated[
        str | None, typer.Option(help="Cron schedule instead of the interval, e.g. '*/10 * * * *'.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Flow runs at once from this process.")] = 4,
    scheduler: Annotated[
        str | None, typer.Option(help="Dask scheduler for the served runs (default: $MTHCCAR_DASK_SCHEDULER).")
    ] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Or a local cluster of N worker processes.")] = None,
) -> None:
    """Register the on-demand, operational and backfill deployments and serve them (PREFECT_API_URL).

    Where the served runs send their dask work and where they write are set here, for every run
    (a run's own settings still win): the flow runs inherit this process's environment.
    """
    import os

    from flows.deployments import serve as serve_deployments
    from flows.parameters import ENV_OUT_DIR, ENV_SCHEDULER, ENV_WORKERS, RunSettings, Where

    if "://" not in incoming and not Path(incoming).is_dir():
        raise ValueError(f"incoming location {incoming} is not a directory")
    if scheduler and workers:
        raise ValueError("give either --scheduler or --workers, not both")
    scheduler = scheduler or os.environ.get(ENV_SCHEDULER) or None
    if scheduler:
        RunSettings(where=Where.scheduler, scheduler_address=scheduler)  # one sentence for a bad address
        os.environ[ENV_SCHEDULER] = scheduler
    if workers:
        os.environ[ENV_WORKERS] = str(workers)
    out_dir = str(Path(out).expanduser().resolve()) if "://" not in out else out
    os.environ[ENV_OUT_DIR] = out_dir
    if "://" not in incoming:
        incoming = str(Path(incoming).resolve())
    serve_deployments(incoming, out_dir, None if cron else interval_minutes, cron, limit)


@app.command()
@friendly_errors
def demo(
    out: Annotated[Path, typer.Option(help="Where the demo writes its inputs and products.")] = Path("demo-output"),
    seed: Annotated[int, typer.Option(help="Seed of the synthetic scene.")] = 7,
) -> None:
    """End-to-end example: synthetic (and real) ABI granules through the Prefect flow, scored against truth."""
    from flows.demo import run_demo

    run_demo(out, seed)


if __name__ == "__main__":  # pragma: no cover
    app()
