"""Where the shipped default models live, readable without the training code that builds them."""

from __future__ import annotations

from pathlib import Path

ARTIFACTS = Path(__file__).parent / "artifacts"


def default_artifacts(directory: Path = ARTIFACTS) -> list[Path]:
    """The shipped artifacts, by file name."""
    return sorted(directory.glob("*.pt"))
