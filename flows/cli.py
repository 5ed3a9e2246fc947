"""The complete ``mthccar`` command, assembled from each package's commands, plus ``serve`` and ``demo``.

Prefect is imported here, in the orchestration layer, so that ``pipeline`` stays usable without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from models.commands import friendly_errors
from models.synthetic.cli import app as synthetic_commands
from models.training.cli import app as training_commands
from pipeline.cli import app

app.add_typer(training_commands)  # nameless: their commands join the top level
app.add_typer(synthetic_commands)

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
    input_root: Annotated[
        list[Path] | None, typer.Option(help="Folder runs may read (repeatable; $MTHCCAR_INPUT_ROOTS).")
    ] = None,
    output_root: Annotated[
        list[Path] | None, typer.Option(help="Folder runs may write (repeatable; $MTHCCAR_OUTPUT_ROOTS).")
    ] = None,
    model_root: Annotated[
        list[Path] | None, typer.Option(help="Folder of model files (repeatable; $MTHCCAR_MODEL_ROOTS).")
    ] = None,
    url_prefix: Annotated[
        list[str] | None, typer.Option(help="fsspec URL prefix inputs may come from (repeatable).")
    ] = None,
    model_registry: Annotated[
        Path | None, typer.Option(help="JSON of registered models, name -> sha256 ($MTHCCAR_MODEL_REGISTRY).")
    ] = None,
) -> None:
    """Register the on-demand, operational and backfill deployments and serve them (PREFECT_API_URL).

    Where the served runs send their dask work and where they write are set here, for every run
    (a run's own settings still win): the flow runs inherit this process's environment.
    """
    import os

    from flows.deployments import serve as serve_deployments
    from flows.parameters import ENV_OUT_DIR, ENV_SCHEDULER, ENV_WORKERS, RunSettings, Where
    from pipeline.access import AccessPolicy, registered_models

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
    _set_access_policy(input_root, output_root, model_root, url_prefix, model_registry)
    policy = AccessPolicy.from_env()
    policy.check_input(incoming, "incoming location")  # the schedule's own parameters must pass too
    policy.check_output(out_dir, "--out")
    registered_models()  # one sentence now for a missing, unreadable or loosely writable registry
    serve_deployments(incoming, out_dir, None if cron else interval_minutes, cron, limit)


def _set_access_policy(
    inputs: list[Path] | None,
    outputs: list[Path] | None,
    models: list[Path] | None,
    prefixes: list[str] | None,
    registry: Path | None,
) -> None:
    """Put serve's access options in the environment its flow runs inherit (see pipeline.access)."""
    import os

    from pipeline import access

    for variable, folders in (
        (access.ENV_INPUT_ROOTS, inputs),
        (access.ENV_OUTPUT_ROOTS, outputs),
        (access.ENV_MODEL_ROOTS, models),
    ):
        if folders:
            os.environ[variable] = os.pathsep.join(str(f.expanduser().resolve()) for f in folders)
    if prefixes:
        os.environ[access.ENV_URL_PREFIXES] = ",".join(prefixes)
    if registry is not None:
        os.environ[access.ENV_MODEL_REGISTRY] = str(registry.expanduser().resolve())


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
