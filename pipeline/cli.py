"""The ``mthccar`` command: the single entry point for training, export, simulation and processing.

Each command imports its implementation lazily, so ``mthccar --help`` is fast and the processing
commands never load training code.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from pipeline.sensors import DEFAULT_CHUNK, SensorName

app = typer.Typer(
    name="mthccar",
    help="MT-HCCAR cloud mask, phase and optical thickness retrieval for VIIRS, ABI and PACE OCI.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
logger = logging.getLogger("mthccar")

F = TypeVar("F", bound=Callable[..., Any])


class Attention(StrEnum):
    attending = "attending"
    reference = "reference"
    none = "none"


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input: reported as one sentence, exit status 1."""
    return (ValueError, FileNotFoundError, FileExistsError, PermissionError, KeyError)


def friendly_errors(func: F) -> F:
    """Turn a user error into one clear sentence on stderr and a non-zero exit, with no traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except _user_errors() as err:
            message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
            typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def main(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="Debug log output.")] = 0,
) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for chatty in ("httpx", "httpcore", "distributed", "numba", "matplotlib", "fsspec"):
        logging.getLogger(chatty).setLevel(max(level, logging.WARNING))


def _band_list(bands: str | None) -> list[str] | None:
    return [b.strip() for b in bands.split(",") if b.strip()] if bands else None


def _parse_grid(values: list[str]) -> dict[str, list[Any]]:
    grid: dict[str, list[Any]] = {}
    for item in values:
        key, _, raw = item.partition("=")
        if not raw:
            raise ValueError(f"--grid expects KEY=V1,V2,..., got {item!r}")
        parsed: list[Any] = []
        for token in raw.split(","):
            try:
                parsed.append(json.loads(token))
            except json.JSONDecodeError:
                parsed.append(token)
        grid[key.strip().replace("-", "_")] = parsed
    return grid


@app.command()
@friendly_errors
def train(
    data: Annotated[Path, typer.Argument(help="Training file in the reference schema (netCDF).")],
    sensor: Annotated[SensorName, typer.Option(help="Sensor whose reflectances to train on.")],
    out: Annotated[Path, typer.Option(help="Output directory for checkpoints and metrics.")],
    bands: Annotated[str | None, typer.Option(help="Comma-separated band subset, e.g. C01,C03,C04,C05,C06.")] = None,
    attention: Annotated[Attention, typer.Option(help="Attention mode.")] = Attention.attending,
    epochs: Annotated[int | None, typer.Option(min=1, help="Most epochs [TrainConfig: 150].")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="[TrainConfig: 1024]")] = None,
    lr: Annotated[float | None, typer.Option(min=0.0, help="Adam learning rate [TrainConfig: 2e-3].")] = None,
    cls_weight: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="w in w*cls + (1-w)*COT [TrainConfig].")
    ] = None,
    l1_weight: Annotated[
        float | None, typer.Option(min=0.0, help="L1 parameter penalty (reference: 1e-4) [TrainConfig].")
    ] = None,
    patience: Annotated[int | None, typer.Option(min=1, help="Early stopping: epochs without improvement.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for weights and shuffling.")] = 0,
    split_seed: Annotated[int, typer.Option(help="Seed of the train/validation/test split.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    resume: Annotated[bool, typer.Option(help="Continue from OUT/last.pt.")] = False,
    kfold: Annotated[int, typer.Option(min=0, help="K-fold CV over --grid, then train the 1-SE choice.")] = 0,
    grid: Annotated[list[str] | None, typer.Option(help="KEY=V1,V2 (repeatable), simplest value first.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train MT-HCCAR on a reference-schema file; keeps the best-validation checkpoint."""
    from dataclasses import replace

    from models.training.train import TrainConfig, cross_validate
    from models.training.train import train as run_training

    given: dict[str, Any] = {
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": lr,
        "cls_weight": cls_weight,
        "l1_weight": l1_weight,
        "patience": patience,
    }
    cfg = TrainConfig(
        sensor=sensor.value,
        bands=_band_list(bands),
        attention=attention.value,
        seed=seed,
        split_seed=split_seed,
        device=device,
        **{k: v for k, v in given.items() if v is not None},  # the rest: TrainConfig's defaults
    )
    if kfold:
        search = _parse_grid(grid or [])
        if not search:
            raise ValueError("--kfold needs at least one --grid KEY=V1,V2")
        unknown = set(search) - set(cfg.hyperparameters())
        if unknown:
            raise ValueError(f"--grid keys {sorted(unknown)} are not tunable; use {sorted(cfg.hyperparameters())}")
        scores, choice = cross_validate(data, cfg, search, kfold, progress=progress)
        out.mkdir(parents=True, exist_ok=True)
        report = [
            {
                "hyperparameters": s.hyperparameters,
                "fold_losses": s.fold_losses,
                "mean": s.mean,
                "standard_error": s.standard_error,
            }
            for s in scores
        ]
        (out / "kfold.json").write_text(json.dumps({"folds": kfold, "candidates": report, "chosen": choice}, indent=1))
        typer.echo(f"{kfold}-fold CV: chose {scores[choice].hyperparameters} by the one-standard-error rule")
        cfg = replace(cfg, **scores[choice].hyperparameters)
    result = run_training(data, out, cfg, resume=resume, progress=progress)
    typer.echo(
        f"best validation loss {result.best_validation_loss:.4f} at epoch {result.best_epoch}; "
        f"checkpoint {result.best_checkpoint}; test metrics {out / 'metrics.json'}"
    )


@app.command()
@friendly_errors
def evaluate(
    artifact: Annotated[Path, typer.Argument(help="Model artifact (.pt).")],
    data: Annotated[Path, typer.Argument(help="Reference-schema file with truth.")],
    out: Annotated[Path, typer.Option(help="Directory for metrics.json, model_card.md and plots.")] = Path(
        "evaluation"
    ),
    split: Annotated[str, typer.Option(help="auto (test split of the training file, else all), test or all.")] = "auto",
) -> None:
    """Score an artifact: metrics JSON, markdown model card, PNG plots."""
    from models.training.evaluate import evaluate_artifact

    metrics = evaluate_artifact(artifact, data, out, split)
    mask, cot = metrics["cloud_mask"], metrics["log10_cot"]["all"]
    typer.echo(
        f"mask accuracy {mask['accuracy']:.4f}, phase accuracy {metrics['phase']['accuracy']:.4f}, "
        f"log10 COT RMSE {cot['rmse']:.3f} R2 {cot['r2']:.3f} on {metrics['n']} samples; report in {out}"
    )


@app.command()
@friendly_errors
def export(
    checkpoint: Annotated[Path, typer.Argument(help="Training checkpoint (best.pt).")],
    out: Annotated[Path, typer.Option(help="Artifact path (.pt).")],
    model_version: Annotated[str, typer.Option(help="Version recorded in the artifact.")] = "1.0.0",
    name: Annotated[str | None, typer.Option(help="Model name (default: the file stem).")] = None,
) -> None:
    """Export a checkpoint as a TorchScript artifact with embedded metadata."""
    from models.training.export import export_checkpoint

    meta = export_checkpoint(checkpoint, out, model_version, name)
    typer.echo(f"wrote {out} ({meta['sensor']}, {meta['input_size']} features, sha256 {meta['weights_sha256'][:12]})")


@app.command("convert-reference")
@friendly_errors
def convert_reference(
    reference: Annotated[Path, typer.Argument(help="State dict saved by the reference code (.pth).")],
    sensor: Annotated[SensorName, typer.Option(help="Sensor the checkpoint was trained for.")],
    out: Annotated[Path, typer.Option(help="Artifact path (.pt).")],
    scaling_from: Annotated[
        Path | None, typer.Option(help="Refit the reference's min-max scaling on this file.")
    ] = None,
    bands: Annotated[str | None, typer.Option(help="Comma-separated band subset.")] = None,
    angle_transform: Annotated[str, typer.Option(help="auto, cos_raw or cos_degrees.")] = "auto",
    model_version: Annotated[str, typer.Option()] = "reference",
) -> None:
    """Convert a reference MT-HCCAR checkpoint into an artifact (attention='reference')."""
    from models.training.export import convert_reference as run

    meta = run(reference, sensor.value, out, scaling_from, _band_list(bands), angle_transform, model_version)
    typer.echo(f"wrote {out} ({meta['sensor']}, {meta['input_size']} features)")


class SimSensor(StrEnum):
    abi = "abi"
    viirs = "viirs"
    oci = "oci"
    all = "all"


@app.command()
@friendly_errors
def simulate(
    sensor: Annotated[SimSensor, typer.Option(help="Which sensor's reflectances to write (all: OCI, VIIRS and ABI).")],
    samples: Annotated[int, typer.Option(min=1, help="Number of samples.")],
    out: Annotated[Path, typer.Option(help="Output file (reference schema, netCDF-4).")],
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    correction: Annotated[bool, typer.Option(help="Apply the DISORT-derived multiple-scattering correction.")] = True,
    workers: Annotated[int, typer.Option(min=1, help="Processes (default: up to 2).")] = 2,
) -> None:
    """Simulate training data in the reference schema with the offline RT model."""
    import time

    from models.training.simulate.dataset import simulate_dataset

    started = time.perf_counter()
    simulate_dataset(out, sensor.value, samples, seed, correction, workers)
    typer.echo(f"wrote {samples} samples to {out} in {time.perf_counter() - started:.1f} s")


def _parse_time(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)
    except ValueError:
        raise ValueError(f"--time {value!r} is not an ISO 8601 time such as 2019-10-27T20:00:27") from None


@app.command("synth-granule")
@friendly_errors
def synth_granule(
    sensor: Annotated[SensorName, typer.Option(help="Sensor whose L1b format to write.")],
    time: Annotated[str, typer.Option(help="Scan start time (UTC, ISO 8601), e.g. 2019-10-27T20:00:27.")],
    out: Annotated[Path, typer.Option(help="Output directory.")],
    sector: Annotated[str | None, typer.Option(help="ABI sector: M1, M2, C or F.")] = None,
    platform: Annotated[str | None, typer.Option(help="G16-G19 (ABI), NP/J1/J2 (VIIRS).")] = None,
    file_format: Annotated[str | None, typer.Option("--format", help="VIIRS: l1b (VNP02/03MOD) or sdr.")] = None,
    bands: Annotated[str | None, typer.Option(help="Comma-separated bands (default: all solar bands).")] = None,
    lines: Annotated[int | None, typer.Option(min=16, help="Swath lines (VIIRS, OCI).")] = None,
    pixels: Annotated[int | None, typer.Option(min=2, help="Swath pixels (VIIRS, OCI).")] = None,
    centre_lat: Annotated[float | None, typer.Option(help="Swath centre latitude (VIIRS, OCI).")] = None,
    seed: Annotated[int, typer.Option(help="Scene random seed.")] = 0,
) -> None:
    """Render a synthetic scene into real L1b files (and a truth file beside them)."""
    import time as clock

    from models.synthetic.granules import synthesise

    started = clock.perf_counter()
    paths = synthesise(
        sensor.value,
        out,
        _parse_time(time),
        _band_list(bands),
        sector=sector,
        platform=platform,
        file_format=file_format,
        lines=lines,
        pixels=pixels,
        centre_lat=centre_lat,
        seed=seed,
    )
    typer.echo(f"wrote {len(paths)} files to {out} in {clock.perf_counter() - started:.1f} s")
    for path in paths:
        typer.echo(f"  {path.name}")


@app.command("build-default-models")
@friendly_errors
def build_default_models(
    work: Annotated[Path, typer.Option(help="Working directory for the simulated data and training runs.")] = Path(
        "build/default-models"
    ),
    samples: Annotated[int, typer.Option(min=1000, help="Simulated samples.")] = 400_000,
    epochs: Annotated[int, typer.Option(min=1)] = 150,
    ablation: Annotated[bool, typer.Option(help="Also train the OCI attention ablation.")] = True,
    only: Annotated[str | None, typer.Option(help="Comma-separated model names to (re)build.")] = None,
) -> None:
    """Rebuild the shipped default models (simulate, train, export, evaluate): what `make models` runs."""
    from models.training.defaults import build_default_models as build

    summary = build(work, samples=samples, epochs=epochs, ablation=ablation, only=tuple(_band_list(only) or ()))
    typer.echo(f"default models rebuilt; summary in {summary}")


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
    scheduler: Annotated[str | None, typer.Option(help="Address of a dask scheduler, e.g. tcp://host:8786.")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Run on a local cluster of N worker processes.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing different product of the same granule.")] = False,
    nwp: Annotated[Path | None, typer.Option(help="NWP file (ERA5 tcwv/tco3/sp) instead of the climatology.")] = None,
    land_cover: Annotated[Path | None, typer.Option(help="IGBP land-cover raster (variable land_cover).")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
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
    granules = find_granules(inputs, sensor.value if sensor else None)
    config = AncillaryConfig.from_files(str(nwp) if nwp else None, str(land_cover) if land_cover else None)
    if out.is_dir():
        remove_stale_temporaries(out)  # what a killed earlier run left
    failures = 0
    with terminate_as_interrupt(), dask_runtime(scheduler, workers, device) as runtime:
        logger.info("processing %d granule(s) on %s", len(granules), runtime.description)
        options = ProcessOptions(
            out, model, device, chunk_size, overwrite, config, runtime.torch_threads, runtime.resources
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
