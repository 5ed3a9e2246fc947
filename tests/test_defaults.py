"""Rebuilding the shipped default models: a partial rebuild loses nothing of the summary."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from models.registry import ARTIFACTS
from models.training.defaults import build_default_models


def test_rebuilding_one_model_keeps_the_other_rows_and_the_ablation(tmp_path: Path) -> None:
    out = tmp_path / "artifacts"
    out.mkdir()
    for shipped in [*ARTIFACTS.glob("*.metrics.json"), ARTIFACTS / "README.md"]:
        shutil.copy(shipped, out)
    summary = build_default_models(
        tmp_path / "work", out, samples=1500, epochs=1, ablation=False, only=("mthccar_abi_noc02",)
    )
    text = summary.read_text()
    shipped_readme = (ARTIFACTS / "README.md").read_text()
    start = shipped_readme.index("## Attention ablation")
    ablation = shipped_readme[start : shipped_readme.index("\n## ", start + 1)]
    assert ablation.strip() in text  # the ablation rows of the earlier full build
    for name in ("mthccar_abi_ir", "mthccar_abi_night", "mthccar_viirs", "mthccar_oci"):
        accuracy = json.loads((ARTIFACTS / f"{name}.metrics.json").read_text())["cloud_mask"]["accuracy"]
        assert f"| {name} | {accuracy:.4f} |" in text
    rebuilt = json.loads((out / "mthccar_abi_noc02.metrics.json").read_text())["cloud_mask"]["accuracy"]
    assert f"| mthccar_abi_noc02 | {rebuilt:.4f} |" in text
    assert (out / "mthccar_abi_noc02.pt").is_file()
    assert not (out / "mthccar_abi.pt").exists()  # only the named model was trained
    assert text.count("## The real GOES-17 day scene") == 1  # run on the rebuilt model, not repeated


def test_summary_writers_take_turns(tmp_path: Path) -> None:
    """Two rebuilds at once (``--only`` in two shells) write the summary one after the other."""
    import threading
    import time

    from models.training.defaults import _summary_lock

    order: list[str] = []

    def second() -> None:
        with _summary_lock(tmp_path):
            order.append("second")

    with _summary_lock(tmp_path):
        waiting = threading.Thread(target=second)
        waiting.start()
        time.sleep(0.3)
        order.append("first")
    waiting.join(5)
    assert order == ["first", "second"]


def test_a_run_of_another_world_is_trained_afresh_not_refused(
    trained_viirs, toy_reference_file: Path, tmp_path: Path, caplog
) -> None:
    """After a physics change the build's training file has a new name; a work folder's run of the
    earlier file is then trained over, where resuming it would be refused."""
    from models.training.defaults import _resumable

    result, _ = trained_viirs
    run = result.best_checkpoint.parent
    assert _resumable(run, toy_reference_file)
    assert not _resumable(tmp_path, toy_reference_file)  # nothing to resume
    with caplog.at_level("WARNING"):
        assert not _resumable(run, tmp_path / "simulated_300000_seed2024_physics9.9.nc")
    assert f"was trained on {toy_reference_file.name}, not simulated_300000_seed2024_physics9.9.nc" in caplog.text
