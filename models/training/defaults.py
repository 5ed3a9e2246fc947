"""The shipped default models: how they are built (``make models``) and where they live.

One simulated file (all three sensors from the same samples) trains every default model with
the attending attention; each is exported to ``models/artifacts/<name>.pt`` with a model card and
metrics beside it. The ablation (reference vs attending vs no attention) is run on the OCI data,
the sensor of the reference's published results.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from models.registry import ARTIFACTS
from models.training.evaluate import evaluate_artifact
from models.training.export import export_checkpoint
from models.training.train import TrainConfig, train

logger = logging.getLogger(__name__)

MODEL_VERSION = "1.0.0"
TRAINING_SAMPLES = 400_000  # the 67.5 % training split alone exceeds 250k
TRAINING_SEED = 2024


@dataclass(frozen=True)
class DefaultModel:
    name: str
    sensor: str
    bands: tuple[str, ...] | None
    summary: str


DEFAULT_MODELS = (
    DefaultModel("mthccar_abi", "abi", None, "GOES ABI C01-C06"),
    DefaultModel(
        "mthccar_abi_noc02",
        "abi",
        ("C01", "C03", "C04", "C05", "C06"),
        "GOES ABI without C02 (granules often lack the 0.5 km band)",
    ),
    DefaultModel("mthccar_viirs", "viirs", None, "VIIRS M01-M05, M07-M11 (the reference's 10 bands; M06 saturates)"),
    DefaultModel("mthccar_oci", "oci", None, "PACE OCI, 223 bands (216 hyperspectral 350-887 nm + 7 SWIR)"),
)
ABLATION_MODES = ("reference", "none")  # attending is the default model itself


def _summary_row(name: str, metrics: dict[str, Any]) -> str:
    cot = metrics["log10_cot"]["all"]
    return (
        f"| {name} | {metrics['cloud_mask']['accuracy']:.4f} | {metrics['phase']['accuracy']:.4f} | "
        f"{cot['r2']:.3f} | {cot['rmse']:.3f} | {metrics['uncertainty_goal']['liquid']['fraction_within']:.3f} | "
        f"{metrics['uncertainty_goal']['ice']['fraction_within']:.3f} |"
    )


ABLATION_HEADING = "## Ablation on OCI (same data, same split)"
SUMMARY_FOOTER = "Each `<name>.md` is the model card, `<name>.metrics.json` the full metrics."
TABLE_HEADER = (
    "| model | mask accuracy | phase accuracy | log10 COT R^2 | log10 COT RMSE | liquid COT>5 within 30 % "
    "| ice COT>5 within 35 % |\n|---|---|---|---|---|---|---|"
)


def _earlier_ablation(summary: Path) -> list[str]:
    """The ablation section of an earlier summary: kept when a run rebuilds only other models."""
    text = summary.read_text() if summary.exists() else ""
    start = text.find(ABLATION_HEADING)
    end = text.find(SUMMARY_FOOTER, start)
    return [*text[start:end].rstrip("\n").split("\n"), ""] if 0 <= start < end else []


def build_default_models(
    work: Path,
    out: Path = ARTIFACTS,
    samples: int = TRAINING_SAMPLES,
    epochs: int = 150,
    ablation: bool = True,
    only: tuple[str, ...] = (),
) -> Path:
    """Simulate, train, export and evaluate every default model; returns the summary file."""
    from models.training.simulate.dataset import simulate_dataset

    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    data = work / f"simulated_{samples}_seed{TRAINING_SEED}.nc"
    if not data.exists():
        simulate_dataset(data, "all", samples, seed=TRAINING_SEED)
    base = TrainConfig(sensor="abi", epochs=epochs, seed=TRAINING_SEED, split_seed=TRAINING_SEED)
    results: dict[str, dict[str, Any]] = {}
    for model in DEFAULT_MODELS:
        if only and model.name not in only:
            continue
        cfg = replace(base, sensor=model.sensor, bands=list(model.bands) if model.bands else None)
        run = work / model.name
        result = train(data, run, cfg, resume=(run / "last.pt").exists(), progress=False)
        artifact = out / f"{model.name}.pt"
        export_checkpoint(result.best_checkpoint, artifact, MODEL_VERSION, model.name)
        report = work / f"{model.name}_evaluation"
        metrics = evaluate_artifact(artifact, data, report, split="test")
        shutil.copy(report / "model_card.md", out / f"{model.name}.md")
        (out / f"{model.name}.metrics.json").write_text(json.dumps(metrics, indent=1))
        results[model.name] = metrics
        logger.info("%s: %s", model.name, _summary_row(model.name, metrics))
    ablation_rows = []
    if ablation and (not only or "mthccar_oci" in only):
        oci = next(m for m in DEFAULT_MODELS if m.sensor == "oci")
        ablation_rows.append(_summary_row("attending (default)", results[oci.name]))
        for mode in ABLATION_MODES:
            run = work / f"ablation_oci_{mode}"
            cfg = replace(base, sensor="oci", attention=mode)
            result = train(data, run, cfg, resume=(run / "last.pt").exists(), progress=False)
            artifact = run / f"oci_{mode}.pt"
            export_checkpoint(result.best_checkpoint, artifact, MODEL_VERSION, f"mthccar_oci_{mode}")
            metrics = evaluate_artifact(artifact, data, run / "evaluation", split="test")
            ablation_rows.append(_summary_row(mode, metrics))
    for model in DEFAULT_MODELS:  # models not rebuilt in this run keep their row
        earlier = out / f"{model.name}.metrics.json"
        if model.name not in results and earlier.exists():
            results[model.name] = json.loads(earlier.read_text())
    results = {m.name: results[m.name] for m in DEFAULT_MODELS if m.name in results}
    summary = out / "README.md"
    ablation_section = (
        [ABLATION_HEADING, "", TABLE_HEADER, *ablation_rows, ""] if ablation_rows else _earlier_ablation(summary)
    )
    lines = [
        "# Default models",
        "",
        f"Trained with `make models` on {samples} simulated samples (seed {TRAINING_SEED}, "
        "67.5/22.5/10 % train/validation/test split); metrics on the held-out test split. "
        "Targets from the reference's published OCI results on its own data: mask accuracy >= 0.984, "
        "phase accuracy >= 0.98, log10-COT R^2 >= 0.89 and RMSE <= 0.163.",
        "",
        TABLE_HEADER,
        *[_summary_row(name, m) for name, m in results.items()],
        "",
        *ablation_section,
        SUMMARY_FOOTER,
        "",
    ]
    if results:
        summary.write_text("\n".join(lines))
    return summary
