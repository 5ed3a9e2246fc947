"""Evaluation with the reference's metrics, a markdown model card and PNG plots.

Metrics (as the reference ``evaluate.ipynb`` computes them):

* cloud mask, cloudy positive: accuracy, F1, precision, recall; and the share of the cloudy pixels
  flagged, by true COT (overcast pixels) and for broken pixels, which shows where the misses lie
  (this project's addition);
* phase on pixels cloudy in truth and prediction: per-class precision and recall;
* 3-class (clear, liquid, ice) confusion matrix and accuracy;
* average precision per class (clear, liquid, ice, cloudy) and micro-averaged over the 3 classes;
* log10 COT MSE, RMSE and R^2 on pixels cloudy in truth and prediction, overall and by true
  phase, surface group and COT bin (with the auxiliary class accuracy per bin); overcast pixels
  only, where a file has broken clouds (their COT is defined for the cloud, not the pixel);
* the uncertainty goal: share of pixels with true COT > 5 whose COT is within 30 % (liquid) or
  35 % (ice);
* calibration (``models.training.calibrate``): expected calibration error of the mask, phase and
  COT-class probabilities, overall and by surface group, before and after the fitted calibration,
  with reliability diagrams; coverage of the 68 % and 95 % log10-COT intervals.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.mthccar import GAUSSIAN_95, interval95_factor, stored_calibration
from models.spec import SURFACE_GROUPS
from models.training.calibrate import (
    ECE_BINS,
    calibration_scores,
    expected_calibration_error,
    head_outcomes,
    reliability,
)
from models.training.data import Block, FeatureSource, ReferenceDataset, has_cot_truth, split_selector
from models.training.simulate.simulator import PHYSICS_VERSIONS, has_broken_clouds

logger = logging.getLogger(__name__)

CLASS_NAMES = ("clear", "liquid", "ice")
BIN_NAMES = ("thin", "moderate", "thick")
UNCERTAINTY_GOAL = {"liquid": 0.30, "ice": 0.35}
UNCERTAINTY_MIN_COT = 5.0
# COT (0.55 um) edges of the detection table: sub-visible and thin cirrus or haze-like liquid below
# 0.3, and clouds every passive test should see above 1-3
DETECTION_COT_EDGES = (0.1, 0.3, 1.0, 3.0)
BROKEN = "broken (half to fully covered)"


@torch.inference_mode()
def predict(
    model: Callable[[torch.Tensor], dict[str, torch.Tensor]], features: np.ndarray, batch_size: int = 65_536
) -> dict[str, np.ndarray]:
    """Model outputs for scaled features (N, F), in batches, as numpy."""
    chunks: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(features), batch_size):
        out = model(torch.from_numpy(np.ascontiguousarray(features[start : start + batch_size])))
        for key, value in out.items():
            chunks.setdefault(key, []).append(value.cpu().numpy())
    if not chunks:
        raise ValueError("no points to predict")
    return {k: np.concatenate(v) for k, v in chunks.items()}


def average_precision(labels: np.ndarray, scores: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Average precision (step-wise, as scikit-learn) and the precision-recall curve."""
    labels = labels.astype(bool)
    if not labels.any():
        return float("nan"), np.array([1.0]), np.array([0.0])
    order = np.argsort(-scores, kind="mergesort")
    y, s = labels[order], scores[order]
    last_of_threshold = np.r_[np.nonzero(np.diff(s))[0], len(y) - 1]
    tps = np.cumsum(y)[last_of_threshold]
    fps = last_of_threshold + 1 - tps
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    return ap, precision, recall


def _ratio(num: Any, den: Any) -> float:
    return float(num / den) if den else float("nan")


def _regression(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    if len(true) == 0:
        return {"n": 0, "mse": float("nan"), "rmse": float("nan"), "r2": float("nan")}
    err = pred - true
    mse = float(np.mean(err**2))
    sst = float(np.sum((true - true.mean()) ** 2))
    r2 = 1.0 - float(np.sum(err**2)) / sst if sst > 0 else float("nan")
    return {"n": len(true), "mse": mse, "rmse": float(np.sqrt(mse)), "r2": r2}


def class_scores(pred: dict[str, np.ndarray]) -> np.ndarray:
    """(N, 3) scores of clear, liquid, ice from the hierarchical probabilities."""
    p_cloudy, p_ice = pred["cloud_mask_probability"], pred["cloud_phase_probability"]
    return np.stack([1 - p_cloudy, p_cloudy * (1 - p_ice), p_cloudy * p_ice], axis=1)


def _detection_label(lower: float | None, upper: float | None) -> str:
    if lower is None:
        return f"COT < {upper:g}"
    return f"COT >= {lower:g}" if upper is None else f"COT {lower:g}-{upper:g}"


def detection_by_cot(true_cloudy: np.ndarray, pred_cloudy: np.ndarray, log10_cot: np.ndarray) -> dict[str, Any]:
    """Share of the truly cloudy pixels flagged cloudy, by true COT (overcast) and for broken pixels.

    A broken pixel has no pixel COT (NaN ``log10_cot``); a file without broken clouds has no such row.
    """

    def row(sel: np.ndarray) -> dict[str, Any]:
        return {"n": int(sel.sum()), "flagged": _ratio(pred_cloudy[sel].sum(), sel.sum())}

    overcast = true_cloudy & np.isfinite(log10_cot)
    # as ``cot_class_of``: bins on log10 edges, each bin [lower, upper)
    index = np.digitize(np.where(overcast, log10_cot, 0.0), np.log10(DETECTION_COT_EDGES))
    bounds = itertools.pairwise((None, *DETECTION_COT_EDGES, None))
    rows = {_detection_label(lower, upper): row(overcast & (index == i)) for i, (lower, upper) in enumerate(bounds)}
    broken = true_cloudy & ~np.isfinite(log10_cot)
    if broken.any():
        rows[BROKEN] = row(broken)
    return rows


def compute_metrics(pred: dict[str, np.ndarray], truth: Block, interval95: float = GAUSSIAN_95) -> dict[str, Any]:
    """All metrics of predictions against the truth (``interval95``: the model's 95 % COT half-width)."""
    true_cloudy = truth.cloudy > 0.5
    pred_cloudy = pred["cloud_mask_probability"] >= 0.5
    tp = int(np.sum(true_cloudy & pred_cloudy))
    fp = int(np.sum(~true_cloudy & pred_cloudy))
    fn = int(np.sum(true_cloudy & ~pred_cloudy))
    tn = int(np.sum(~true_cloudy & ~pred_cloudy))
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    mask = {
        "accuracy": _ratio(tp + tn, len(true_cloudy)),
        "precision": precision,
        "recall": recall,
        "f1": _ratio(2 * precision * recall, precision + recall),
        "true_cloudy": int(true_cloudy.sum()),
        "predicted_cloudy": int(pred_cloudy.sum()),
        "detection_by_cot": detection_by_cot(true_cloudy, pred_cloudy, truth.log10_cot),
    }
    true_ice = truth.ice > 0.5
    pred_ice = pred["cloud_phase_probability"] > 0.5
    both = true_cloudy & pred_cloudy
    phase: dict[str, Any] = {
        "n": int(both.sum()),
        "accuracy": _ratio(np.sum(both & (true_ice == pred_ice)), both.sum()),
    }
    for name, t, p in (("liquid", ~true_ice, ~pred_ice), ("ice", true_ice, pred_ice)):
        phase[name] = {
            "precision": _ratio(np.sum(both & t & p), np.sum(both & p)),
            "recall": _ratio(np.sum(both & t & p), np.sum(both & t)),
        }
    true3 = np.where(true_cloudy, np.where(true_ice, 2, 1), 0)
    pred3 = np.where(pred_cloudy, np.where(pred_ice, 2, 1), 0)
    confusion = np.zeros((3, 3), dtype=np.int64)
    np.add.at(confusion, (true3, pred3), 1)
    scores = class_scores(pred)
    ap = {name: average_precision(true3 == i, scores[:, i])[0] for i, name in enumerate(CLASS_NAMES)}
    ap["cloudy"] = average_precision(true_cloudy, pred["cloud_mask_probability"])[0]
    onehot = np.eye(3, dtype=bool)[true3]
    ap["micro"] = average_precision(onehot.ravel(), scores.ravel())[0]

    both = both & has_cot_truth(truth)
    log_true, log_pred = truth.log10_cot[both], pred["log10_cot"][both]
    cot: dict[str, Any] = {"all": _regression(log_pred, log_true)}
    ice_both = true_ice[both]
    cot["by_phase"] = {
        "liquid": _regression(log_pred[~ice_both], log_true[~ice_both]),
        "ice": _regression(log_pred[ice_both], log_true[ice_both]),
    }
    surface = truth.surface_type[both]
    cot["by_surface"] = {
        group: _regression(log_pred[np.isin(surface, classes)], log_true[np.isin(surface, classes)])
        for group, classes in SURFACE_GROUPS.items()
    }
    bins = truth.cot_class[both]
    pred_bins = np.argmax(pred["cot_class_probability"][both], axis=1)
    cot["by_bin"] = {
        name: {
            **_regression(log_pred[bins == i], log_true[bins == i]),
            "class_accuracy": _ratio(np.sum((bins == i) & (pred_bins == i)), np.sum(bins == i)),
        }
        for i, name in enumerate(BIN_NAMES)
    }
    goal: dict[str, Any] = {}
    cot_true, cot_pred = 10.0**log_true, 10.0**log_pred
    for name, tolerance in UNCERTAINTY_GOAL.items():
        sel = (cot_true > UNCERTAINTY_MIN_COT) & (ice_both if name == "ice" else ~ice_both)
        within = np.abs(cot_pred[sel] - cot_true[sel]) <= tolerance * cot_true[sel]
        goal[name] = {"tolerance": tolerance, "n": int(sel.sum()), "fraction_within": _ratio(within.sum(), sel.sum())}
    return {
        "n": len(true_cloudy),
        "cloud_mask": mask,
        "phase": phase,
        "three_class": {
            "labels": list(CLASS_NAMES),
            "confusion_matrix": confusion.tolist(),
            "accuracy": _ratio(np.trace(confusion), confusion.sum()),
        },
        "average_precision": ap,
        "log10_cot": cot,
        "uncertainty_goal": goal,
        "calibration": calibration_scores(pred, truth, interval95),
    }


def predict_source(
    model: Callable[[torch.Tensor], dict[str, torch.Tensor]], source: FeatureSource
) -> tuple[dict[str, np.ndarray], Block]:
    """Outputs of ``model`` over every point of a feature source, block by block, with their truth."""
    if isinstance(model, torch.nn.Module):
        model.eval()
    preds: list[dict[str, np.ndarray]] = []
    truths: list[Block] = []
    for block in source.blocks():
        if len(block):
            preds.append(predict(model, block.features))
            truths.append(block)
    if not preds:
        raise ValueError("no points to predict")
    pred = {k: np.concatenate([p[k] for p in preds]) for k in preds[0]}
    return pred, Block.concatenate(truths, source.spec.size)


def evaluate_source(model: Callable[[torch.Tensor], dict[str, torch.Tensor]], source: FeatureSource) -> dict[str, Any]:
    """Metrics of a model over every point of a feature source."""
    pred, truth = predict_source(model, source)
    return compute_metrics(pred, truth, interval95_factor(model))


# ---- plots and model card --------------------------------------------------------------------------
def write_plots(pred: dict[str, np.ndarray], truth: Block, metrics: dict[str, Any], out_dir: Path) -> list[Path]:
    """Hexbin of predicted vs true log10 COT, the confusion matrix and PR curves, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    both = has_cot_truth(truth) & (pred["cloud_mask_probability"] >= 0.5)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    if both.any():
        hb = ax.hexbin(
            truth.log10_cot[both],
            pred["log10_cot"][both],
            gridsize=60,
            bins="log",
            mincnt=1,
            extent=(-2, 2.7, -2, 2.7),
            cmap="viridis",
        )
        fig.colorbar(hb, ax=ax, label="pixels")
    ax.plot([-2, 2.7], [-2, 2.7], "k--", lw=1)
    r = metrics["log10_cot"]["all"]
    ax.set(
        xlabel="true log10 COT",
        ylabel="predicted log10 COT",
        title=f"log10 COT: RMSE {r['rmse']:.3f}, R$^2$ {r['r2']:.3f}",
    )
    paths.append(out_dir / "cot_hexbin.png")
    fig.savefig(paths[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)

    confusion = np.asarray(metrics["three_class"]["confusion_matrix"])
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    norm = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(3):
        for j in range(3):
            ax.text(
                j,
                i,
                f"{confusion[i, j]}\n{norm[i, j]:.1%}",
                ha="center",
                va="center",
                color="white" if norm[i, j] > 0.5 else "black",
                fontsize=9,
            )
    ax.set(
        xticks=range(3),
        yticks=range(3),
        xticklabels=CLASS_NAMES,
        yticklabels=CLASS_NAMES,
        xlabel="predicted",
        ylabel="true",
        title="clear / liquid / ice",
    )
    paths.append(out_dir / "confusion_matrix.png")
    fig.savefig(paths[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)

    true3 = np.where(truth.cloudy > 0.5, np.where(truth.ice > 0.5, 2, 1), 0)
    scores = class_scores(pred)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for i, name in enumerate(CLASS_NAMES):
        ap, precision, recall = average_precision(true3 == i, scores[:, i])
        ax.step(recall, precision, where="post", label=f"{name} (AP {ap:.3f})")
    ap, precision, recall = average_precision(np.eye(3, dtype=bool)[true3].ravel(), scores.ravel())
    ax.step(recall, precision, where="post", ls="--", color="k", label=f"micro-average (AP {ap:.3f})")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="precision-recall")
    ax.legend(loc="lower left")
    paths.append(out_dir / "precision_recall.png")
    fig.savefig(paths[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)
    return paths


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _training_lines(training: dict[str, Any]) -> list[str]:
    """The training-data and hyper-parameter lines of a model card (band lists are left to the inputs line)."""
    if not training:
        return ["- Training data: not recorded"]
    described = {k: v for k, v in training.items() if k not in ("bands", "hyperparameters")}
    lines = ["- Training data: " + "; ".join(f"{k} `{v}`" for k, v in described.items())]
    hyperparameters = training.get("hyperparameters")
    if hyperparameters:
        lines.append("- Hyper-parameters: " + ", ".join(f"{k} `{v}`" for k, v in hyperparameters.items()))
    return lines


def _calibration_lines(name: str, calibration: dict[str, Any]) -> list[str]:
    """The model card's calibration section: ECE before and after, by surface, interval coverage."""
    if not calibration:
        return []
    from models.artifact import FOUR_LEVEL_MASK_THRESHOLDS

    before = calibration.get("uncalibrated", {}).get("ece", {})
    ece = calibration["ece"]
    heads = {"cloud_mask": "cloud mask", "cloud_phase": "phase", "cot_class": "COT class (top class)"}
    groups = list(next(iter(ece.values()))["by_surface"])
    coverage = calibration["coverage"]
    fitted = calibration.get("fitted") or {}
    lines = [
        "## Calibration",
        "",
        "Temperatures and the COT sigma scale were fitted on the validation split after training "
        "(`models/training/calibrate.py`) and are applied inside the model. Expected calibration error "
        f"over {ECE_BINS} probability bins on this split:",
        "",
        "| head | n | ECE before | ECE after |",
        "|---|---|---|---|",
        *[
            f"| {label} | {ece[h]['n']} | {_fmt(before.get(h, {}).get('ece', float('nan')))} | {_fmt(ece[h]['ece'])} |"
            for h, label in heads.items()
        ],
        "",
        "| ECE after, by surface | " + " | ".join(groups) + " |",
        "|---|" + "---|" * len(groups),
        *[
            f"| {label} | " + " | ".join(_fmt(ece[h]["by_surface"][g]["ece"]) for g in groups) + " |"
            for h, label in heads.items()
        ],
        "",
        f"The 68 % interval of log10 COT is +-1 sigma (`log10_cot_uncertainty`), the 95 % interval "
        f"+-{calibration.get('interval95_factor', GAUSSIAN_95):.2f} sigma (errors are heavier-tailed than "
        "Gaussian; both half-widths calibrated on the validation split). Share of cloudy pixels inside:",
        "",
        "| log10 COT interval coverage | 68 % interval | 95 % interval |",
        "|---|---|---|",
        *[f"| {k} | {_fmt(v['68'])} | {_fmt(v['95'])} |" for k, v in coverage.items()],
        "",
        f"Median 1-sigma uncertainty of log10 COT: {_fmt(calibration['median_log10_cot_uncertainty'])}. "
        "Fitted values: " + ", ".join(f"{k} {v:.3f}" for k, v in fitted.items()) + ". "
        "The product's four-level mask splits the calibrated P(cloudy) at "
        + ", ".join(f"{t:g}" for t in FOUR_LEVEL_MASK_THRESHOLDS)
        + " (clear, probably clear, probably cloudy, cloudy).",
        "",
        f"![reliability diagrams]({name}_reliability.png)",
        "",
    ]
    return lines


def _intended_use(metadata: dict[str, Any]) -> str:
    spec = metadata.get("feature_spec", {}).get("features", [])
    kinds = {f.get("kind") for f in spec}
    if "reflectance" not in kinds:
        what = (
            "Per-pixel night-time cloud mask and phase from thermal bands (its COT output is not used). Runs "
            "beside a day model on the pixels without sun."
        )
    elif "brightness_temperature" in kinds:
        what = "Per-pixel daytime cloud mask, phase and optical thickness from solar-reflective and thermal bands."
    else:
        what = "Per-pixel daytime cloud mask, phase and optical thickness from solar-reflective bands."
    physics = str(metadata.get("training_data", {}).get("simulator_version", ""))
    broken = physics in PHYSICS_VERSIONS and has_broken_clouds(physics)
    world = (
        "Trained on plane-parallel single-layer radiative-transfer simulations of the project's simulator "
        f"{physics}: measured land spectra with a BRDF, sun glint, background and heavy aerosol labelled clear"
        + (
            "; a quarter of the clouds cover only half or more of their pixel (cloudy labels, no COT "
            "target: COT is learnt and judged on overcast pixels). Multi-layer cloud, pixels less than half "
            "covered"
            if broken
            else ". Multi-layer cloud, broken cloud within a pixel"
        )
        + " and seasonal snow without a land-cover input are outside the training distribution. Pixels "
        "beyond the model's sun limit are flagged, not produced."
    )
    return f"{what} {world}"


def _detection_lines(mask: dict[str, Any]) -> list[str]:
    rows = mask.get("detection_by_cot")
    if not rows:  # metrics computed before the table existed
        return []
    return [
        "| cloudy in truth, by true COT | n | flagged cloudy |",
        "|---|---|---|",
        *[f"| {k} | {v['n']} | {_fmt(v['flagged'])} |" for k, v in rows.items()],
        "",
    ]


def model_card(metadata: dict[str, Any], metrics: dict[str, Any], data_name: str, split: str) -> str:
    """A markdown model card from artifact metadata and evaluation metrics."""
    spec = metadata["feature_spec"]
    bands = [f for f in spec["features"] if f["kind"] in ("reflectance", "brightness_temperature")]
    band_text = ", ".join(
        f"{f['name']} ({f['wavelength_um']:.3f} um{', BT' if f['kind'] == 'brightness_temperature' else ''})"
        for f in bands[:16]
    )
    if len(bands) > 16:
        band_text += f", ... ({len(bands)} bands, {bands[0]['wavelength_um']:.3f}-{bands[-1]['wavelength_um']:.3f} um)"
    others = [f["name"] for f in spec["features"] if f["kind"] not in ("reflectance", "brightness_temperature")]
    mask, phase, cot = metrics["cloud_mask"], metrics["phase"], metrics["log10_cot"]
    lines = [
        f"# Model card: {metadata['name']}",
        "",
        f"- Model: {metadata['model_name']} {metadata['model_version']}, attention `{metadata['attention']}`",
        f"- Sensor: {metadata['sensor']}; inputs ({metadata['input_size']}): {band_text}; {', '.join(others)}",
        f"- Reflectance: {spec['reflectance_convention']}; relative azimuth: {spec['relative_azimuth_convention']}",
        f"- Weights sha256: `{metadata['weights_sha256']}`",
        *_training_lines(metadata.get("training_data", {})),
        "",
        f"## Evaluation on `{data_name}` ({split} split, {metrics['n']} samples)",
        "",
        "| cloud mask | value |",
        "|---|---|",
        *[f"| {k} | {_fmt(mask[k])} |" for k in ("accuracy", "f1", "precision", "recall")],
        "",
        *_detection_lines(mask),
        "| phase (on pixels cloudy in truth and prediction) | precision | recall |",
        "|---|---|---|",
        *[f"| {k} | {_fmt(phase[k]['precision'])} | {_fmt(phase[k]['recall'])} |" for k in ("liquid", "ice")],
        f"| accuracy | {_fmt(phase['accuracy'])} | |",
        "",
        "| average precision | value |",
        "|---|---|",
        *[f"| {k} | {_fmt(v)} |" for k, v in metrics["average_precision"].items()],
        "",
        "| log10 COT subset | n | MSE | RMSE | R^2 |",
        "|---|---|---|---|---|",
        *[
            f"| {k} | {v['n']} | {_fmt(v['mse'])} | {_fmt(v['rmse'])} | {_fmt(v['r2'])} |"
            for k, v in [("all", cot["all"]), *cot["by_phase"].items(), *cot["by_surface"].items()]
        ],
        "",
        "| COT bin | n | class accuracy | R^2 |",
        "|---|---|---|---|",
        *[f"| {k} | {v['n']} | {_fmt(v['class_accuracy'])} | {_fmt(v['r2'])} |" for k, v in cot["by_bin"].items()],
        "",
        "| uncertainty goal (true COT > 5) | tolerance | within |",
        "|---|---|---|",
        *[
            f"| {k} | {v['tolerance']:.0%} | {_fmt(v['fraction_within'])} |"
            for k, v in metrics["uncertainty_goal"].items()
        ],
        "",
        f"3-class confusion matrix (rows true, columns predicted; {', '.join(CLASS_NAMES)}): "
        f"`{metrics['three_class']['confusion_matrix']}`",
        "",
        *_calibration_lines(metadata["name"], metrics.get("calibration", {})),
        "## Intended use and limits",
        "",
        _intended_use(metadata),
        "",
    ]
    return "\n".join(lines)


def scored_points(artifact: Any, data_path: str | Path, split: str = "auto") -> tuple[Block, str, dict[str, Any]]:
    """The points an artifact is scored on, the split they come from and the data's description.

    ``auto`` is the test split of the artifact's own training file (recognised by name and size),
    else every point of the file.
    """
    training = artifact.metadata.get("training_data", {})
    seed = int(training.get("split_seed", 0))
    with ReferenceDataset(data_path, artifact.sensor, seed=seed, spec=artifact.spec) as dataset:
        if split == "auto":
            same = (training.get("file_name"), training.get("npoints")) == (dataset.path.name, dataset.npoints)
            split = "test" if same else "all"
            logger.info("evaluating on the %s split of %s", split, dataset.path.name)
        return FeatureSource(dataset, artifact.spec, split_selector(split)).all(), split, dataset.describe()


def evaluate_artifact(
    artifact_path: str | Path, data_path: str | Path, out_dir: str | Path, split: str = "auto"
) -> dict[str, Any]:
    """Evaluate an artifact on a reference-schema file: metrics JSON, model card, PNG plots."""
    from models.artifact import load_artifact

    artifact = load_artifact(artifact_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    truth, split, data = scored_points(artifact, data_path, split)
    pred = predict(artifact.module, truth.features)
    metrics = compute_metrics(pred, truth, interval95_factor(artifact.module))
    uncalibrated = uncalibrated_predictions(artifact.module, truth.features)
    if uncalibrated is not None:
        metrics["calibration"]["uncalibrated"] = calibration_scores(uncalibrated, truth)
    metrics["calibration"]["fitted"] = stored_calibration(artifact.module)
    metrics["split"] = split
    metrics["data"] = data
    name = artifact.metadata["name"]
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    (out / "model_card.md").write_text(model_card(artifact.metadata, metrics, Path(data_path).name, split))
    write_plots(pred, truth, metrics, out)
    write_reliability_plot(pred, uncalibrated, truth, out / f"{name}_reliability.png")
    return metrics


def uncalibrated_predictions(module: Any, features: np.ndarray) -> dict[str, np.ndarray] | None:
    """Outputs of ``module`` with its calibration set aside (restored afterwards)."""
    values = getattr(module, "calibration", None)
    if values is None:
        return None
    kept = values.clone()
    try:
        with torch.no_grad():
            values.fill_(1.0)
        return predict(module, features)
    finally:
        with torch.no_grad():
            values.copy_(kept)


def write_reliability_plot(
    pred: dict[str, np.ndarray], uncalibrated: dict[str, np.ndarray] | None, truth: Block, path: Path
) -> Path:
    """Reliability diagrams of the mask, phase and COT-class heads, before and after calibration."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4))
    titles = {"cloud_mask": "cloud mask: P(cloudy)", "cloud_phase": "phase: P(ice)", "cot_class": "COT class: top"}
    runs = [("calibrated", pred, "C0")] + ([("uncalibrated", uncalibrated, "C3")] if uncalibrated else [])
    for k, head in enumerate(titles):
        ax = fig.add_subplot(1, 3, k + 1)
        ax.plot([0, 1], [0, 1], "k--", lw=1)
        for label, outputs, colour in runs:
            p, y, points = head_outcomes(outputs, truth)[head]
            table = reliability(p[points], y[points], ECE_BINS)
            filled = table["count"] > 0
            ece = expected_calibration_error(p[points], y[points], ECE_BINS)
            ax.plot(
                table["probability"][filled],
                table["frequency"][filled],
                "o-",
                color=colour,
                ms=3,
                label=f"{label} (ECE {ece:.3f})",
            )
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="predicted probability", ylabel="observed frequency")
        ax.set_title(titles[head])
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path
