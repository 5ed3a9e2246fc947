"""Export a training checkpoint, or convert a reference checkpoint, into a model artifact."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from models.artifact import file_sha256, write_artifact
from models.mthccar import MTHCCAR
from models.spec import FeatureSpec
from models.training.checkpoint import load_checkpoint, model_from_checkpoint
from models.training.data import ReferenceDataset, split_selector

logger = logging.getLogger(__name__)

DEFAULT_MODEL_VERSION = "1.0.0"


def export_checkpoint(
    checkpoint: str | Path, out: str | Path, model_version: str = DEFAULT_MODEL_VERSION, name: str | None = None
) -> dict[str, Any]:
    """Write the artifact of a training checkpoint (``best.pt``), with its stored metrics."""
    payload = load_checkpoint(Path(checkpoint))
    model = model_from_checkpoint(payload)
    training = payload["training"]
    data = dict(training.get("data", {}))
    data["hyperparameters"] = {
        k: payload["config"].get(k)
        for k in (
            "attention",
            "epochs",
            "batch_size",
            "learning_rate",
            "lr_schedule",
            "cls_weight",
            "recon_weight",
            "l1_weight",
            "seed",
        )
    }
    data["best_epoch"] = training.get("best_epoch")
    data["best_validation_loss"] = training.get("best_validation_loss")
    return write_artifact(
        model,
        payload["spec"],
        out,
        model_version=model_version,
        training_data=data,
        metrics=payload["metrics"],
        name=name,
    )


class ReferenceCheckpointError(ValueError):
    """A reference checkpoint cannot be converted."""


def convert_reference(
    reference: str | Path,
    sensor: str,
    out: str | Path,
    scaling_from: str | Path | None = None,
    bands: Sequence[str] | None = None,
    angle_transform: str = "auto",
    model_version: str = DEFAULT_MODEL_VERSION,
) -> dict[str, Any]:
    """Artifact from a state dict saved by the reference code (``torch.save(model.state_dict())``).

    The reference fitted min-max scaling on whatever file it read and never saved it;
    ``scaling_from`` refits it the same way over every point of that file. The reference took
    ``np.cos`` of the stored angle values: ``angle_transform="auto"`` reproduces that (``cos_raw``
    on a file in degrees, ``cos_degrees`` on one in radians; ``cos_raw`` when no file is given).
    """
    reference = Path(reference)
    if not reference.is_file():
        raise ReferenceCheckpointError(f"reference checkpoint {reference} does not exist")
    try:
        state = torch.load(reference, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ReferenceCheckpointError(
            f"{reference} is not a readable PyTorch state dict ({type(err).__name__})"
        ) from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict) or "encoder.0.weight" not in state:
        raise ReferenceCheckpointError(f"{reference} holds no MT-HCCAR state dict (no encoder.0.weight)")
    input_size = int(state["encoder.0.weight"].shape[1])
    if angle_transform == "auto":
        angle_transform = "cos_raw"
        if scaling_from is not None:
            with ReferenceDataset(scaling_from, sensor, bands) as probe:
                angle_transform = "cos_raw" if probe.angle_factor == 1.0 else "cos_degrees"
    spec = FeatureSpec.for_sensor(sensor, bands, angle_transform=angle_transform)
    if spec.size != input_size:
        raise ReferenceCheckpointError(
            f"{reference} takes {input_size} inputs but the {sensor} feature spec has {spec.size}"
        )
    model = MTHCCAR(input_size, attention="reference")
    missing, unexpected = model.load_compatible(state)  # no uncertainty head: NaN uncertainty
    if missing or unexpected:
        raise ReferenceCheckpointError(
            f"{reference} does not match the reference architecture: missing {missing[:4]}, unexpected {unexpected[:4]}"
        )
    training: dict[str, Any] = {"reference_checkpoint": reference.name, "reference_sha256": file_sha256(reference)}
    if scaling_from is not None:
        with ReferenceDataset(scaling_from, sensor, bands, angle_transform=angle_transform) as dataset:
            spec = dataset.fit_scaling(split_selector("all"))
            training["scaling_fitted_on"] = dataset.describe()
    else:
        logger.warning("no --scaling-from file: %s will carry identity scaling", Path(out).name)
    return write_artifact(
        model,
        spec,
        out,
        model_version=model_version,
        training_data=training,
        notes="converted from a reference MT-HCCAR checkpoint (attention='reference')",
    )
