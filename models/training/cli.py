"""The training wing's commands of ``mthccar``: train, evaluate, export, convert-reference, simulate
and build-default-models. Each imports its implementation when it runs, so ``--help`` stays fast."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from models.bands import SensorName
from models.commands import band_list, friendly_errors

app = typer.Typer()


class Attention(StrEnum):
    attending = "attending"
    reference = "reference"
    none = "none"


class SurfaceGrouping(StrEnum):
    land_cover = "land_cover"
    reference = "reference"


class LRSchedule(StrEnum):
    plateau = "plateau"
    cosine = "cosine"


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
    surface_grouping: Annotated[
        SurfaceGrouping, typer.Option(help="Surface one-hot: the reference's 4 groups or land-cover groups.")
    ] = SurfaceGrouping.land_cover,
    epochs: Annotated[int | None, typer.Option(min=1, help="Most epochs [TrainConfig: 150].")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="[TrainConfig: 1024]")] = None,
    lr: Annotated[float | None, typer.Option(min=0.0, help="Adam learning rate [TrainConfig: 2e-3].")] = None,
    lr_schedule: Annotated[
        LRSchedule | None,
        typer.Option(help="Halve on validation plateaus, or cosine over the epochs (the default models)."),
    ] = None,
    recon_weight: Annotated[
        float | None, typer.Option(min=0.0, help="Reconstruction loss weight (reference 3.0, default models 0.3).")
    ] = None,
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
        "lr_schedule": lr_schedule.value if lr_schedule else None,
        "recon_weight": recon_weight,
        "cls_weight": cls_weight,
        "l1_weight": l1_weight,
        "patience": patience,
    }
    cfg = TrainConfig(
        sensor=sensor.value,
        bands=band_list(bands),
        attention=attention.value,
        surface_grouping=surface_grouping.value,
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
    ece, coverage = metrics["calibration"]["ece"], metrics["calibration"]["coverage"]["all"]
    typer.echo(
        f"mask accuracy {mask['accuracy']:.4f}, phase accuracy {metrics['phase']['accuracy']:.4f}, "
        f"log10 COT RMSE {cot['rmse']:.3f} R2 {cot['r2']:.3f} on {metrics['n']} samples; "
        f"ECE mask {ece['cloud_mask']['ece']:.3f} phase {ece['cloud_phase']['ece']:.3f} "
        f"COT class {ece['cot_class']['ece']:.3f}; COT intervals cover {coverage['68']:.1%} (68 %) and "
        f"{coverage['95']:.1%} (95 %); report in {out}"
    )


@app.command("check-precision")
@friendly_errors
def check_precision(
    artifact: Annotated[Path, typer.Argument(help="Model artifact (.pt); its metadata is updated in place.")],
    data: Annotated[Path, typer.Argument(help="Reference-schema file with the artifact's held-out split.")],
    precision: Annotated[str, typer.Option(help="Reduced precision to measure against float32.")] = "bfloat16",
    split: Annotated[str, typer.Option(help="auto (test split of the training file, else all), test or all.")] = "auto",
) -> None:
    """Measure how much reduced precision changes an artifact's outputs and record it in the artifact."""
    from models.training.precision import check_precision as measure

    change = measure(artifact, data, precision, split)
    verdict = "allowed" if change["within_bounds"] else "refused (over the bounds)"
    typer.echo(
        f"{artifact.name} in {precision} on {change['pixels']} {change['split']} samples: "
        f"{change['mask_decisions_changed']:.3%} of mask and {change['phase_decisions_changed']:.3%} of phase "
        f"decisions changed, log10 COT p99 change {change['log10_cot_change_p99']:.3f}; {verdict}"
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

    meta = run(reference, sensor.value, out, scaling_from, band_list(bands), angle_transform, model_version)
    typer.echo(f"wrote {out} ({meta['sensor']}, {meta['input_size']} features)")


class SimSensor(StrEnum):
    abi = "abi"
    viirs = "viirs"
    oci = "oci"
    all = "all"
    thermal = "thermal"


@app.command()
@friendly_errors
def simulate(
    sensor: Annotated[
        SimSensor,
        typer.Option(help="Which sensor's bands to write (all: OCI, VIIRS and ABI; thermal: VIIRS and ABI)."),
    ],
    samples: Annotated[int, typer.Option(min=1, help="Number of samples.")],
    out: Annotated[Path, typer.Option(help="Output file (reference schema, netCDF-4).")],
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    correction: Annotated[bool, typer.Option(help="Apply the DISORT-derived multiple-scattering correction.")] = True,
    workers: Annotated[int, typer.Option(min=1, help="Processes (default: up to 2).")] = 2,
    night: Annotated[bool, typer.Option(help="Night samples: no sunlight (thermal bands only carry signal).")] = False,
    physics: Annotated[
        str | None,
        typer.Option(
            help="Simulator physics: 2.2 (SPCTRAL2 1.38 um band), 2.3 (LOWTRAN7 1.38 um water band, lofted "
            "and stratospheric aerosol: the VIIRS and OCI day models' world), 2.4 (2.3 with mid-level clouds, "
            "440-680 hPa tops, and heavy aerosol as often as observed: the ABI solar-only models' world) or 2.5 "
            "(2.4 with broken clouds: the ABI day infrared models' world, the default)."
        ),
    ] = None,
) -> None:
    """Simulate training data in the reference schema with the offline RT model."""
    import time

    from models.training.simulate.dataset import simulate_dataset
    from models.training.simulate.simulator import SIMULATOR_VERSION

    started = time.perf_counter()
    simulate_dataset(out, sensor.value, samples, seed, correction, workers, night, physics or SIMULATOR_VERSION)
    typer.echo(f"wrote {samples} samples to {out} in {time.perf_counter() - started:.1f} s")


@app.command("build-default-models")
@friendly_errors
def build_default_models(
    work: Annotated[Path, typer.Option(help="Working directory for the simulated data and training runs.")] = Path(
        "build/default-models"
    ),
    samples: Annotated[
        int | None,
        typer.Option(min=1000, help="Simulated samples, by day and again at night [default: the recipe's, 300000]."),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="At most this many epochs [default: the recipe's, 160].")
    ] = None,
    ablation: Annotated[
        bool,
        typer.Option(help="Also train the attention ablation (reference and no attention) of the real-scene model."),
    ] = True,
    only: Annotated[str | None, typer.Option(help="Comma-separated model names to (re)build.")] = None,
) -> None:
    """Rebuild the shipped default models (simulate, train, export, evaluate): what `make models` runs."""
    from models.training.defaults import TRAINING_EPOCHS, TRAINING_SAMPLES
    from models.training.defaults import build_default_models as build

    summary = build(
        work,
        samples=samples or TRAINING_SAMPLES,
        epochs=epochs or TRAINING_EPOCHS,
        ablation=ablation,
        only=tuple(band_list(only) or ()),
    )
    typer.echo(f"default models rebuilt; summary in {summary}")
