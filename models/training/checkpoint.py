"""Training checkpoints: weights, optimiser state, configuration and the fitted feature spec.

Checkpoints hold only tensors and plain Python values, so they load with
``torch.load(..., weights_only=True)`` and no pickled code ever runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from models.fileio import atomic_output
from models.mthccar import MTHCCAR
from models.spec import FeatureSpec

CHECKPOINT_FORMAT = "mthccar-checkpoint-1"


class CheckpointError(ValueError):
    """A file is not a usable MT-HCCAR checkpoint."""


def atomic_torch_save(obj: Any, path: Path) -> None:
    """Save to a temporary name in the same directory, then rename: no half-written file."""
    with atomic_output(path) as tmp:
        torch.save(obj, tmp)


def save_checkpoint(
    path: Path,
    model: MTHCCAR,
    spec: FeatureSpec,
    config: dict[str, Any],
    training: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
    metrics: dict[str, Any] | None = None,
) -> None:
    payload: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "state_dict": model.state_dict(),
        "input_size": model.input_size,
        "attention": model.attention,
        "spec_json": spec.to_json(),
        "config_json": json.dumps(config),
        "training_json": json.dumps(training),
        "metrics_json": json.dumps(metrics or {}),
    }
    if optimizer is not None:
        payload["optimizer"] = optimizer.state_dict()
    atomic_torch_save(payload, path)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint; the returned dict has parsed ``spec``, ``config``, ``training``."""
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or foreign files
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({type(err).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not an MT-HCCAR training checkpoint (for a reference .pth use convert-reference)"
        )
    payload["spec"] = FeatureSpec.from_json(payload["spec_json"])
    payload["config"] = json.loads(payload["config_json"])
    payload["training"] = json.loads(payload["training_json"])
    payload["metrics"] = json.loads(payload.get("metrics_json", "{}"))
    return payload


def model_from_checkpoint(payload: dict[str, Any]) -> MTHCCAR:
    """The network of a checkpoint; one saved before the uncertainty head says it has none (NaN)."""
    model = MTHCCAR(int(payload["input_size"]), str(payload["attention"]))
    missing, unexpected = model.load_compatible(payload["state_dict"])
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint state does not fit the network: missing {missing[:4]}, unexpected {unexpected[:4]}"
        )
    return model
