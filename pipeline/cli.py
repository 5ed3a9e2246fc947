"""The processing commands of ``mthccar`` (process, validate) and the app they are registered on.

The whole command is assembled in ``flows.cli`` from each package's commands: these, the training
wing's (``models.training.cli``), the synthetic granules' (``models.synthetic.cli``) and the
orchestration's (serve, demo). Each command imports its implementation lazily, so ``--help`` is fast.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from models.commands import friendly_errors
from pipeline.sensors import DEFAULT_CHUNK, Precision, SensorName

app = typer.Typer(
    name="mthccar",
    help="MT-HCCAR cloud mask, phase and optical thickness retrieval for VIIRS, ABI and PACE OCI.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
logger = logging.getLogger("mthccar")

F = TypeVar("F", bound=Callable[..., Any])


@app.callback()
def main(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="Debug log output.")] = 0,
) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for chatty in ("httpx", "httpcore", "distributed", "numba", "matplotlib", "fsspec"):
        logging.getLogger(chatty).setLevel(max(level, logging.WARNING))


@app.command()
@friendly_errors
def process(
    inputs: Annotated[list[str], typer.Argument(help="Granule files, directories, globs or fsspec URLs.")],
    out: Annotated[Path, typer.Option(help="Directory for products and quicklooks.")],
    model: Annotated[
        Path | None, typer.Option(help="Model artifact (default: the shipped model for the sensor).")
    ] = None,
    sensor: Annotated[SensorName | None, typer.Option(help="Only granules of this sensor.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    chunk_size: Annotated[int, typer.Option(min=64, help="Pixels per chunk side.")] = DEFAULT_CHUNK,
    precision: Annotated[
        Precision,
        typer.Option(
            help="Network arithmetic: bfloat16 is faster on GPUs and CPUs with AVX-512 BF16 or AMX "
            "(slower elsewhere), where the model's held-out check allows it."
        ),
    ] = Precision.float32,
    scheduler: Annotated[str | None, typer.Option(help="Address of a dask scheduler, e.g. tcp://host:8786.")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Run on a local cluster of N worker processes.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing different product of the same granule.")] = False,
    nwp: Annotated[Path | None, typer.Option(help="NWP file (ERA5 tcwv/tco3/sp) instead of the climatology.")] = None,
    land_cover: Annotated[Path | None, typer.Option(help="IGBP land-cover raster (variable land_cover).")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    area: Annotated[
        list[str] | None,
        typer.Option(
            help="Also write the product on this grid: a shipped area (conus, europe, global_0p1), "
            "a pyresample area FILE or FILE:NAME. Repeatable."
        ),
    ] = None,
    geotiff: Annotated[
        bool, typer.Option(help="With --area, also write a GeoTIFF (mask, phase, COT) of each gridded product.")
    ] = False,
) -> None:
    """Retrieve cloud mask, phase and COT for every granule in INPUTS and write CF products."""
    from models.fileio import remove_stale_temporaries
    from pipeline.access import AccessPolicy, untrusted_reason
    from pipeline.ancillary import AncillaryConfig
    from pipeline.claims import GranuleBusyError
    from pipeline.failures import describe_failure
    from pipeline.granules import find_granules
    from pipeline.process import ProcessOptions, process_granule
    from pipeline.runtime import dask_runtime

    policy = AccessPolicy.from_env()  # unrestricted unless an operator set the roots
    for item in inputs:
        policy.check_input(item)
    for name, path in (("NWP file", nwp), ("land-cover file", land_cover)):
        if path is not None:
            policy.check_input(str(path), name)
    policy.check_output(str(out), "--out")
    if model is not None:
        policy.check_model(str(model))
        if model.is_file() and (reason := untrusted_reason(model)):
            typer.secho(f"warning: {reason}; the flows would refuse it", err=True, fg=typer.colors.YELLOW)
    from pipeline.gridded import resolve_area

    areas = tuple(area or ())
    for spec in areas:
        resolve_area(spec)  # an unknown area is one sentence before any granule is read
    if geotiff and not areas:
        raise ValueError("--geotiff writes the gridded products as GeoTIFF: give an --area too")
    granules = find_granules(inputs, sensor.value if sensor else None)
    config = AncillaryConfig.from_files(str(nwp) if nwp else None, str(land_cover) if land_cover else None)
    if out.is_dir():
        remove_stale_temporaries(out)  # what a killed earlier run left
    failures = 0
    with terminate_as_interrupt(), dask_runtime(scheduler, workers, device) as runtime:
        logger.info("processing %d granule(s) on %s", len(granules), runtime.description)
        options = ProcessOptions(
            out,
            model,
            device,
            chunk_size,
            overwrite,
            config,
            runtime.torch_threads,
            runtime.resources,
            areas=areas,
            geotiff=geotiff,
            precision=precision.value,
        )
        for granule in granules:
            if runtime.client is None and progress:
                from dask.diagnostics import ProgressBar

                bar: Any = ProgressBar(minimum=1.0)
            else:
                bar = contextlib.nullcontext()
            try:
                with bar:
                    result = process_granule(granule, options)
            except GranuleBusyError as busy:
                typer.echo(f"{busy}; skipped")
                continue
            except Exception as err:  # one sentence per granule; the batch goes on
                failures += 1
                logger.debug("traceback of the failure of %s", granule.id, exc_info=err)
                typer.secho(f"error: {describe_failure(err, granule.id, out)}", err=True, fg=typer.colors.RED)
                continue
            typer.echo(result.summary())
    if failures:
        typer.secho(f"{failures} of {len(granules)} granule(s) failed", err=True, fg=typer.colors.RED)
        raise typer.Exit(1)


@app.command()
@friendly_errors
def validate(
    product: Annotated[Path, typer.Argument(help="An ABI product of this pipeline.")],
    reference: Annotated[
        list[Path], typer.Option(help="Same-time NOAA L2 ACM/BCM, ACTP, COD or FDC file, or the L1b C13 file.")
    ],
    out: Annotated[Path, typer.Option(help="Folder for the JSON, markdown and PNG outputs.")] = Path("validation"),
) -> None:
    """Score a product against operational products and the scan's infrared: agreement, POD, false alarms."""
    from pipeline.validate import validate_product

    written = validate_product(product, reference, out)
    typer.echo(written["markdown"].read_text())
    typer.echo("written: " + ", ".join(str(p) for p in written.values()))


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a scheduler or ``kill``) unwinds like Ctrl-C, so staging files and claims are removed."""
    import signal

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (e.g. the command run inside a test harness)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    app()
