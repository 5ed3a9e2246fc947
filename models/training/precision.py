"""How much reduced precision changes an artifact's outputs on its held-out split, recorded in the artifact.

``check_precision`` runs the artifact in float32 and in the reduced precision through the network
inference uses (``models.runner``), scores the change by the terms of ``PRECISION_BOUNDS`` and embeds
it in the artifact's metadata, where the pipeline reads it before it agrees to run that precision.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from models.artifact import load_artifact, update_metadata
from models.runner import PRECISION_CHECKS_KEY, precision_bounds, precision_change, runner_network, within_bounds
from models.training.evaluate import predict, scored_points

logger = logging.getLogger(__name__)


def check_precision(
    artifact_path: str | Path, data_path: str | Path, precision: str = "bfloat16", split: str = "auto"
) -> dict[str, Any]:
    """Measure ``precision`` against float32 on the artifact's held-out split and embed the result."""
    artifact = load_artifact(artifact_path)
    points, split, data = scored_points(artifact, data_path, split)
    features = points.features
    reference = predict(runner_network(artifact), features)
    candidate = predict(runner_network(artifact, precision=precision), features)
    change: dict[str, Any] = precision_change(reference, candidate)
    change.update({"split": split, "data": data["file_name"], "bounds": precision_bounds(artifact.spec)})
    change["within_bounds"] = within_bounds(change, artifact.spec)
    checks = {**artifact.metadata.get(PRECISION_CHECKS_KEY, {}), precision: change}
    update_metadata(artifact_path, {PRECISION_CHECKS_KEY: checks})
    logger.info(
        "%s in %s: %.3f %% of mask and %.3f %% of phase decisions changed, log10 COT p99 change %.3f (%s)",
        Path(artifact_path).name,
        precision,
        100 * change["mask_decisions_changed"],
        100 * change["phase_decisions_changed"],
        change["log10_cot_change_p99"],
        "within bounds" if change["within_bounds"] else "over the bounds: refused",
    )
    return change
