"""Score a product against the truth file of a synthetic scene (end-to-end checks, the demo)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from models.synthetic.truth import NOT_SIMULATED
from pipeline.features import cot_retrieved, mask_retrieved


def score_against_truth(product: Path, truth: Path) -> dict[str, Any]:
    """Mask and phase accuracy and log10 COT errors where both the scene and the product have data."""
    with xr.open_dataset(product, mask_and_scale=False) as p, xr.open_dataset(truth, mask_and_scale=False) as t:
        if p["cloud_mask"].shape != t["cloud_mask"].shape:
            raise ValueError(f"{product.name} and {truth.name} are on different grids")
        retrieved = mask_retrieved(p["retrieval_quality"].values) & (t["cloud_mask"].values != NOT_SIMULATED)
        mask, true_mask = p["cloud_mask"].values, t["cloud_mask"].values
        both = retrieved & cot_retrieved(p["retrieval_quality"].values) & (mask == 1) & (true_mask == 1)
        phase, true_phase = p["cloud_phase"].values, t["cloud_phase"].values
        log_true = np.log10(t["cloud_optical_thickness"].values[both])
        log_error = np.log10(p["cloud_optical_thickness"].values[both]) - log_true
    n = int(retrieved.sum())
    if n == 0:
        return {"pixels_scored": 0}
    sst = float(np.sum((log_true - log_true.mean()) ** 2)) if both.any() else 0.0
    return {
        "pixels_scored": n,
        "mask_accuracy": float((mask[retrieved] == true_mask[retrieved]).mean()),
        "cloud_fraction_true": float(true_mask[retrieved].mean()),
        "cloud_fraction_retrieved": float((mask[retrieved] == 1).mean()),
        "phase_accuracy": float((phase[both] == true_phase[both]).mean()) if both.any() else None,
        "log10_cot_rmse": float(np.sqrt(np.mean(log_error**2))) if both.any() else None,
        "log10_cot_bias": float(np.mean(log_error)) if both.any() else None,
        "log10_cot_r2": 1 - float(np.sum(log_error**2)) / sst if sst > 0 else None,
    }
