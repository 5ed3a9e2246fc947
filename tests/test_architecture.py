"""The layers: the processing path needs only the artifact contract of ``models``, never its training
wing (``models.training``: data, training, evaluation, export, the simulator), the synthetic
granule writers (``models.synthetic``) or Prefect."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROCESSING_PATH = (
    "pipeline.cli",
    "pipeline.process",
    "pipeline.ingest",
    "pipeline.ancillary",
    "pipeline.features",
    "pipeline.inference",
    "pipeline.product",
    "pipeline.quicklook",
    "pipeline.validate",
    "pipeline.access",
)
FORBIDDEN = ("models.training", "models.synthetic", "prefect", "flows")


def test_the_processing_path_imports_no_training_simulation_or_prefect() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for name in {PROCESSING_PATH!r}: importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({FORBIDDEN!r}))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
