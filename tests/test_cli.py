"""The ``mthccar`` command line: its commands, and one clear sentence on bad input."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from flows.cli import app  # the assembled command: training, synthetic and processing commands

runner = CliRunner()


def _console_script() -> str:
    found = shutil.which("mthccar", path=str(Path(sys.executable).parent))
    assert found, "the mthccar console script is not installed in this environment"
    return found


def test_help_lists_the_model_commands() -> None:
    result = subprocess.run([_console_script(), "--help"], capture_output=True, text=True, check=True)
    for command in ("train", "evaluate", "export", "convert-reference"):
        assert command in result.stdout


def test_train_export_evaluate_through_the_cli(toy_reference_file: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "train",
            str(toy_reference_file),
            "--sensor",
            "abi",
            "--bands",
            "C01,C03,C04,C05,C06",
            "--out",
            str(run),
            "--epochs",
            "2",
            "--lr-schedule",
            "cosine",
            "--recon-weight",
            "0.3",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "best validation loss" in result.output
    result = runner.invoke(app, ["export", str(run / "best.pt"), "--out", str(tmp_path / "abi_noc02.pt")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app, ["evaluate", str(tmp_path / "abi_noc02.pt"), str(toy_reference_file), "--out", str(tmp_path / "eval")]
    )
    assert result.exit_code == 0, result.output
    assert "mask accuracy" in result.output
    card = (tmp_path / "eval" / "model_card.md").read_text()
    assert "lr_schedule `cosine`" in card
    assert "recon_weight `0.3`" in card


def test_unknown_sensor_is_rejected_by_the_cli(toy_reference_file: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", str(toy_reference_file), "--sensor", "modis", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "modis" in result.output


def test_bad_input_gives_one_sentence_and_exit_status_1(tmp_path: Path) -> None:
    junk = tmp_path / "junk.nc"
    junk.write_text("not a netCDF file")
    result = runner.invoke(app, ["train", str(junk), "--sensor", "oci", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"error: {junk} is not a readable netCDF file" + lines[0].split("netCDF file", 1)[1]]
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["export", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "a.pt")])
    assert result.exit_code == 1
    assert "does not exist" in result.output


def test_kfold_needs_a_grid(toy_reference_file: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["train", str(toy_reference_file), "--sensor", "abi", "--out", str(tmp_path), "--kfold", "3"]
    )
    assert result.exit_code == 1
    assert "--kfold needs at least one --grid" in result.output


def test_build_default_models_takes_the_recipe_unless_told(tmp_path: Path, monkeypatch: Any) -> None:
    """The command's defaults are the recipe's constants (one place to change), options override them."""
    import models.training.defaults as defaults

    calls: list[dict[str, Any]] = []

    def record(work: Path, **options: Any) -> Path:
        calls.append(options)
        return work / "README.md"

    monkeypatch.setattr(defaults, "build_default_models", record)
    assert runner.invoke(app, ["build-default-models", "--work", str(tmp_path)]).exit_code == 0
    assert runner.invoke(app, ["build-default-models", "--work", str(tmp_path), "--epochs", "3"]).exit_code == 0
    assert calls[0]["epochs"] == defaults.TRAINING_EPOCHS
    assert calls[0]["samples"] == defaults.TRAINING_SAMPLES
    assert calls[1]["epochs"] == 3
