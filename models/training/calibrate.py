"""Post-hoc calibration on the validation split, and the scores that say whether it worked.

A network trained with cross-entropy is usually over-confident: its 0.9 means less than 90 %.
Temperature scaling (Guo et al. 2017, ICML, "On calibration of modern neural networks") divides
each head's logits by one number fitted by likelihood on held-out points; it keeps every decision
(the sign of a logit, the arg-max of a softmax) and so every accuracy figure. The COT uncertainty
head's standard deviation is scaled so that +-1 sigma covers 68.27 % of validation errors.

Which points calibrate which head, as the product uses them: the mask on every point; phase, COT
class and COT uncertainty on points cloudy in truth and in prediction (the heads are gated by the
predicted mask, so their output on predicted-clear pixels is never published).

COT errors have heavier tails than a Gaussian, so one sigma cannot give both a 68 % and a 95 %
interval: as in split-conformal prediction (Angelopoulos & Bates 2021, "A gentle introduction to
conformal prediction"), each interval's half-width is calibrated on the validation split, the
68 % one as the sigma scale and the 95 % one as a factor on that sigma stored beside it.

Scores: expected calibration error (ECE) over 15 equal-width bins of the predicted probability
(Naeini et al. 2015; for the three-class COT head, of the top-class confidence) and the coverage of
the 68 % and 95 % Gaussian intervals of log10 COT.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from models.mthccar import CALIBRATION_FIELDS, GAUSSIAN_95, LOG10_COT_MIN, LOG10_COT_RANGE, MTHCCAR
from models.spec import SURFACE_GROUPS
from models.training.data import Block, FeatureSource, has_cot_truth

logger = logging.getLogger(__name__)

ECE_BINS = 15
ONE_SIGMA_COVERAGE = 0.6827
INTERVAL_95_COVERAGE = 0.95
TEMPERATURE_BOUNDS = (0.05, 20.0)


# ---- fitting -----------------------------------------------------------------------------------------
def _golden_minimum(loss: Callable[[float], float], low: float, high: float, steps: int = 60) -> float:
    """Minimum of a unimodal function of one variable on [low, high] by golden-section search."""
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = low, high
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = loss(c), loss(d)
    for _ in range(steps):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = loss(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = loss(d)
    return (a + b) / 2.0


def _binary_nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    z = logits / temperature
    return float(np.mean(np.logaddexp(0.0, z) - labels * z))


def _softmax_nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    return float(np.mean(log_norm - z[np.arange(len(labels)), labels]))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Temperature minimising the negative log-likelihood: (N,) binary logits or (N, K) class logits."""
    if len(labels) == 0:
        return 1.0
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim == 1:
        y = np.asarray(labels, dtype=np.float64)

        def nll(log_t: float) -> float:
            return _binary_nll(logits, y, float(np.exp(log_t)))

    else:
        classes = np.asarray(labels, dtype=np.int64)

        def nll(log_t: float) -> float:
            return _softmax_nll(logits, classes, float(np.exp(log_t)))

    return float(np.exp(_golden_minimum(nll, *np.log(TEMPERATURE_BOUNDS))))


def sigma_scale(errors: np.ndarray, sigma: np.ndarray, coverage: float = ONE_SIGMA_COVERAGE) -> float:
    """Factor on sigma so that |error| <= factor * sigma for ``coverage`` of the points."""
    ratio = np.abs(errors) / np.maximum(sigma, 1e-6)
    ratio = ratio[np.isfinite(ratio)]
    return float(np.quantile(ratio, coverage)) if len(ratio) else 1.0


def raw_outputs(model: MTHCCAR, source: FeatureSource) -> tuple[dict[str, np.ndarray], Block]:
    """Uncalibrated logits, log10 COT and its sigma at the predicted gate, with the truth."""
    from models.training.evaluate import predict_source

    def uncalibrated(x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = model.training_outputs(x)
        return {
            "clear_logit": out["clear_logit"].squeeze(1),
            "liquid_logit": out["liquid_logit"].squeeze(1),
            "cot_class_logits": out["cot_class_logits"],
            "log10_cot": out["cot_scaled"].squeeze(1) * LOG10_COT_RANGE + LOG10_COT_MIN,
            "sigma": torch.exp(0.5 * out["cot_log_variance"].squeeze(1)),
        }

    model.eval()
    raw, truth = predict_source(uncalibrated, source)
    return {k: v.astype(np.float64) for k, v in raw.items()}, truth


def fit_calibration(raw: dict[str, np.ndarray], truth: Block) -> dict[str, float]:
    """The four calibration numbers (``CALIBRATION_FIELDS``) from raw outputs on calibration points."""
    cloudy = truth.cloudy > 0.5
    both = cloudy & (raw["clear_logit"] <= 0.0)
    overcast = both & has_cot_truth(truth)
    errors = raw["log10_cot"][overcast] - truth.log10_cot[overcast]
    values = {
        "mask_temperature": fit_temperature(-raw["clear_logit"], cloudy.astype(np.float64)),
        "phase_temperature": fit_temperature(-raw["liquid_logit"][both], (truth.ice[both] > 0.5).astype(np.float64)),
        "cot_class_temperature": fit_temperature(raw["cot_class_logits"][overcast], truth.cot_class[overcast]),
        "cot_sigma_scale": sigma_scale(errors, raw["sigma"][overcast]),
    }
    values["cot_interval95_factor"] = sigma_scale(errors, values["cot_sigma_scale"] * raw["sigma"][overcast], 0.95)
    assert tuple(values) == CALIBRATION_FIELDS
    return values


def calibrate(model: MTHCCAR, source: FeatureSource) -> dict[str, float]:
    """Fit the calibration on ``source`` (the validation split) and store it in the model."""
    model.set_calibration({**dict.fromkeys(CALIBRATION_FIELDS, 1.0), "cot_interval95_factor": GAUSSIAN_95})
    values = fit_calibration(*raw_outputs(model, source))
    model.set_calibration(values)
    logger.info("calibration: %s", ", ".join(f"{k} {v:.3f}" for k, v in values.items()))
    return values


# ---- scores ------------------------------------------------------------------------------------------
def reliability(probability: np.ndarray, outcome: np.ndarray, bins: int = ECE_BINS) -> dict[str, np.ndarray]:
    """Per-bin mean probability, observed frequency and count over equal-width probability bins."""
    p = np.clip(np.asarray(probability, dtype=np.float64), 0.0, 1.0)
    y = np.asarray(outcome, dtype=np.float64)
    index = np.minimum((p * bins).astype(np.int64), bins - 1)
    count = np.bincount(index, minlength=bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(index, weights=p, minlength=bins) / count
        frequency = np.bincount(index, weights=y, minlength=bins) / count
    return {"probability": mean_p, "frequency": frequency, "count": count}


def expected_calibration_error(probability: np.ndarray, outcome: np.ndarray, bins: int = ECE_BINS) -> float:
    """Count-weighted mean |probability - frequency| over the bins; NaN without points."""
    if len(probability) == 0:
        return float("nan")
    table = reliability(probability, outcome, bins)
    filled = table["count"] > 0
    gaps = np.abs(table["probability"][filled] - table["frequency"][filled])
    return float(np.sum(gaps * table["count"][filled]) / np.sum(table["count"][filled]))


def head_outcomes(pred: dict[str, np.ndarray], truth: Block) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(probability, outcome, points) per head, on the points that head is judged on."""
    cloudy = truth.cloudy > 0.5
    every = np.ones(len(cloudy), dtype=bool)
    both = cloudy & (pred["cloud_mask_probability"] >= 0.5)
    classes = pred["cot_class_probability"]
    return {
        "cloud_mask": (pred["cloud_mask_probability"], cloudy.astype(np.float64), every),
        "cloud_phase": (pred["cloud_phase_probability"], (truth.ice > 0.5).astype(np.float64), both),
        "cot_class": (
            classes.max(axis=1),
            (classes.argmax(axis=1) == truth.cot_class).astype(np.float64),
            both & has_cot_truth(truth),
        ),
    }


def interval_coverage(
    pred: dict[str, np.ndarray], truth: Block, points: np.ndarray, interval95: float = GAUSSIAN_95
) -> dict[str, float]:
    """Share of points whose true log10 COT lies in the 68 % (+-sigma) and 95 % (+-interval95 sigma) intervals."""
    sigma = pred.get("log10_cot_uncertainty")
    if sigma is None or not points.any() or not np.isfinite(sigma[points]).any():
        return {"68": float("nan"), "95": float("nan")}
    error = np.abs(pred["log10_cot"][points] - truth.log10_cot[points])
    return {"68": float(np.mean(error <= sigma[points])), "95": float(np.mean(error <= interval95 * sigma[points]))}


def calibration_scores(pred: dict[str, np.ndarray], truth: Block, interval95: float = GAUSSIAN_95) -> dict[str, Any]:
    """ECE per head (overall and by surface group) and COT interval coverage."""
    heads = head_outcomes(pred, truth)
    ece: dict[str, Any] = {}
    for head, (p, y, points) in heads.items():
        by_surface = {}
        for group, classes in SURFACE_GROUPS.items():
            sel = points & np.isin(truth.surface_type, classes)
            by_surface[group] = {"n": int(sel.sum()), "ece": expected_calibration_error(p[sel], y[sel])}
        overall = expected_calibration_error(p[points], y[points])
        ece[head] = {"n": int(points.sum()), "ece": overall, "by_surface": by_surface}
    both = heads["cot_class"][2]  # cloudy in truth and prediction, with a COT truth
    ice = truth.ice > 0.5
    coverage = {
        "all": interval_coverage(pred, truth, both, interval95),
        "liquid": interval_coverage(pred, truth, both & ~ice, interval95),
        "ice": interval_coverage(pred, truth, both & ice, interval95),
    }
    sigma = pred.get("log10_cot_uncertainty")
    median_sigma = float(np.nanmedian(sigma[both])) if sigma is not None and both.any() else float("nan")
    return {
        "ece": ece,
        "coverage": coverage,
        "interval95_factor": interval95,
        "median_log10_cot_uncertainty": median_sigma,
    }
