"""Train -> evaluate -> export -> load -> predict on a toy reference-schema file, and the error cases."""

from __future__ import annotations

import itertools
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from models.artifact import ArtifactError, load_artifact
from models.training.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint
from models.training.data import FeatureSource, ReferenceDataset, split_selector
from models.training.evaluate import average_precision, detection_by_cot, evaluate_artifact, predict
from models.training.export import ReferenceCheckpointError, convert_reference, export_checkpoint
from models.training.train import (
    LR_FLOOR,
    CandidateScore,
    TrainConfig,
    cross_validate,
    expand_grid,
    one_standard_error_choice,
    train,
)
from tests.test_network import _reference_checkpoint


def test_training_reduces_the_loss(trained_viirs) -> None:
    result, _ = trained_viirs
    losses = [h["validation_loss"] for h in result.history]
    assert losses[-1] < 0.8 * losses[0]
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_artifact_carries_the_declared_metadata(trained_viirs) -> None:
    _, path = trained_viirs
    artifact = load_artifact(path, expect_sensor="viirs")
    meta = artifact.metadata
    assert meta["sensor"] == "viirs"
    assert meta["attention"] == "attending"
    assert meta["input_size"] == 20
    assert artifact.spec.bands == ["M01", "M02", "M03", "M04", "M05", "M07", "M08", "M09", "M10", "M11"]
    assert [f["wavelength_um"] for f in meta["feature_spec"]["features"][:2]] == [0.412, 0.445]
    assert artifact.spec.scaling_fitted
    assert meta["feature_spec"]["reflectance_convention"].startswith("BRF = pi")
    assert meta["metrics"]["split"] == "test"
    assert 0 < meta["metrics"]["cloud_mask"]["accuracy"] <= 1
    assert meta["training_data"]["file_name"] == "toy_reference.nc"
    assert len(meta["weights_sha256"]) == 64
    assert meta["scripted_eager_max_difference"] <= 1e-5


def test_artifact_predicts_like_the_checkpoint(trained_viirs, toy_reference_file: Path) -> None:
    result, path = trained_viirs
    artifact = load_artifact(path)
    eager = model_from_checkpoint(load_checkpoint(result.best_checkpoint)).eval()
    with ReferenceDataset(toy_reference_file, "viirs", spec=artifact.spec) as data:
        block = FeatureSource(data, artifact.spec, split_selector("test")).all()
    scripted_out = predict(artifact.module, block.features)
    eager_out = predict(eager, block.features)
    for key in scripted_out:
        np.testing.assert_allclose(scripted_out[key], eager_out[key], atol=1e-5)
    assert np.all((scripted_out["cloud_mask_probability"] >= 0) & (scripted_out["cloud_mask_probability"] <= 1))


def test_evaluation_writes_metrics_card_and_plots(trained_viirs, toy_reference_file: Path, tmp_path: Path) -> None:
    _, path = trained_viirs
    metrics = evaluate_artifact(path, toy_reference_file, tmp_path)
    assert metrics["split"] == "test"  # the training file is recognised: only held-out points are scored
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["cloud_mask"]["accuracy"] == pytest.approx(metrics["cloud_mask"]["accuracy"])
    confusion = np.array(saved["three_class"]["confusion_matrix"])
    assert confusion.shape == (3, 3)
    assert confusion.sum() == saved["n"]
    for key in ("by_phase", "by_surface", "by_bin"):
        assert saved["log10_cot"][key]
    assert set(saved["uncertainty_goal"]) == {"liquid", "ice"}
    detection = saved["cloud_mask"]["detection_by_cot"]
    assert sum(row["n"] for row in detection.values()) == saved["cloud_mask"]["true_cloudy"]
    card = (tmp_path / "model_card.md").read_text()
    assert "| cloudy in truth, by true COT | n | flagged cloudy |" in card
    assert "# Model card" in card
    assert "| accuracy |" in card
    assert "- Hyper-parameters: " in card
    assert "learning_rate `" in card
    name = load_artifact(path).name
    for png in ("cot_hexbin.png", "confusion_matrix.png", "precision_recall.png", f"{name}_reliability.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # calibration: fitted on the validation split at training, scored before and after on the test split
    calibration = saved["calibration"]
    assert set(calibration["fitted"]) == {
        "mask_temperature",
        "phase_temperature",
        "cot_class_temperature",
        "cot_sigma_scale",
        "cot_interval95_factor",
    }
    assert calibration["fitted"]["mask_temperature"] != 1.0
    assert calibration["interval95_factor"] == calibration["fitted"]["cot_interval95_factor"]
    for head in ("cloud_mask", "cloud_phase", "cot_class"):
        assert 0 <= calibration["ece"][head]["ece"] <= 1
        assert 0 <= calibration["uncalibrated"]["ece"][head]["ece"] <= 1
    assert 0 < calibration["coverage"]["all"]["68"] < calibration["coverage"]["all"]["95"] <= 1
    assert "## Calibration" in card
    assert f"![reliability diagrams]({name}_reliability.png)" in card


def test_detection_by_cot_counts_each_cloudy_pixel_once_by_its_cot() -> None:
    cot = np.array([0.05, 0.2, 0.2, 0.5, 2.0, 3.0, 50.0, np.nan, np.nan, np.nan])
    cloudy = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 0], bool)  # the last is clear; two broken pixels
    flagged = np.array([0, 1, 0, 1, 1, 1, 1, 0, 1, 1], bool)
    rows = detection_by_cot(cloudy, flagged, np.log10(cot))
    assert {k: (v["n"], v["flagged"]) for k, v in rows.items()} == {
        "COT < 0.1": (1, 0.0),
        "COT 0.1-0.3": (2, 0.5),
        "COT 0.3-1": (1, 1.0),
        "COT 1-3": (1, 1.0),
        "COT >= 3": (2, 1.0),
        "broken (half to fully covered)": (2, 0.5),
    }
    assert "broken (half to fully covered)" not in detection_by_cot(cloudy[:7], flagged[:7], np.log10(cot[:7]))


def test_average_precision_of_known_rankings() -> None:
    labels = np.array([1, 0, 1, 0])
    assert average_precision(labels, np.array([0.9, 0.8, 0.7, 0.1]))[0] == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision(labels, np.array([0.9, 0.1, 0.8, 0.2]))[0] == pytest.approx(1.0)


def test_resume_continues_where_training_stopped(toy_reference_file: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(sensor="abi", epochs=2, batch_size=512, patience=10)
    train(toy_reference_file, tmp_path, cfg, progress=False)
    first = load_checkpoint(tmp_path / "last.pt")["training"]["loop_state"]
    assert first["epoch"] == 2
    result = train(
        toy_reference_file,
        tmp_path,
        TrainConfig(sensor="abi", epochs=4, batch_size=512, patience=10),
        resume=True,
        progress=False,
    )
    assert [h["epoch"] for h in result.history] == [0, 1, 2, 3]
    assert result.history[:2] == first["history"]
    with pytest.raises(ValueError, match="trained with attention='attending', not 'none'"):
        train(
            toy_reference_file,
            tmp_path,
            TrainConfig(sensor="abi", attention="none", epochs=5),
            resume=True,
            progress=False,
        )
    with pytest.raises(ValueError, match="trained with lr_schedule='plateau', not 'cosine'"):
        train(toy_reference_file, tmp_path, TrainConfig(sensor="abi", epochs=5, lr_schedule="cosine"), resume=True)


def test_cosine_schedule_anneals_the_learning_rate_over_the_budget(toy_reference_file: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(sensor="abi", epochs=5, batch_size=512, patience=10, learning_rate=1e-3, lr_schedule="cosine")
    rates = [h["learning_rate"] for h in train(toy_reference_file, tmp_path, cfg, progress=False).history]
    assert rates[0] == pytest.approx(1e-3)
    assert rates[2] == pytest.approx(0.5 * (1e-3 + LR_FLOOR * 1e-3))
    assert rates[-1] == pytest.approx(LR_FLOOR * 1e-3)
    assert all(a > b for a, b in itertools.pairwise(rates))
    with pytest.raises(ValueError, match="lr_schedule must be one of plateau, cosine, not 'step'"):
        train(toy_reference_file, tmp_path / "bad", TrainConfig(sensor="abi", epochs=1, lr_schedule="step"))


def test_one_standard_error_rule_prefers_the_simpler_candidate() -> None:
    scores = [
        CandidateScore({"l1_weight": 1e-3}, [1.01, 1.04, 1.00]),
        CandidateScore({"l1_weight": 1e-4}, [0.99, 1.04, 0.98]),
        CandidateScore({"l1_weight": 0.0}, [1.30, 1.20, 1.25]),
    ]
    assert one_standard_error_choice(scores) == 0
    scores[0] = CandidateScore({"l1_weight": 1e-3}, [1.5, 1.6, 1.55])
    assert one_standard_error_choice(scores) == 1
    assert expand_grid({"a": [1, 2], "b": ["x", "y"]}) == [
        {"a": 1, "b": "x"},
        {"a": 1, "b": "y"},
        {"a": 2, "b": "x"},
        {"a": 2, "b": "y"},
    ]


def test_kfold_cross_validation_scores_every_candidate(toy_reference_file: Path) -> None:
    base = TrainConfig(sensor="abi", epochs=2, batch_size=512)
    scores, choice = cross_validate(toy_reference_file, base, {"cls_weight": [0.6, 0.4]}, folds=3, progress=False)
    assert [s.hyperparameters for s in scores] == [{"cls_weight": 0.6}, {"cls_weight": 0.4}]
    assert all(len(s.fold_losses) == 3 and np.all(np.isfinite(s.fold_losses)) for s in scores)
    assert choice in (0, 1)


def test_converted_reference_checkpoint_reproduces_the_reference(toy_reference_file: Path, tmp_path: Path) -> None:
    ref = _reference_checkpoint(tmp_path / "ref_abi.pth", input_size=16)
    meta = convert_reference(tmp_path / "ref_abi.pth", "abi", tmp_path / "abi_ref.pt", scaling_from=toy_reference_file)
    assert meta["attention"] == "reference"
    artifact = load_artifact(tmp_path / "abi_ref.pt", expect_sensor="abi")
    # the reference min-max scaled over every point of the file it read, and took cos of the stored degrees
    with ReferenceDataset(toy_reference_file, "abi", angle_transform="cos_raw") as data:
        raw = data.read(0, data.npoints).features
    assert [f.transform for f in artifact.spec.features[-3:]] == ["cos_raw"] * 3
    scaled = artifact.spec.scale(raw)
    np.testing.assert_allclose(scaled.min(axis=0)[:6], 0.0, atol=1e-6)
    np.testing.assert_allclose(scaled.max(axis=0)[:6], 1.0, atol=1e-6)
    x = torch.from_numpy(scaled[:500])
    with torch.no_grad():
        _, p_clear, _, _, _, regression = ref(x)
        out = artifact.module(x)
    np.testing.assert_allclose(out["cloud_mask_probability"].numpy(), 1 - p_clear.squeeze(1).numpy(), atol=1e-5)
    np.testing.assert_allclose(out["log10_cot"].numpy(), regression.squeeze(1).numpy() * 4.5 - 2, atol=1e-5)


def test_reference_checkpoint_of_the_wrong_size_is_refused(tmp_path: Path) -> None:
    _reference_checkpoint(tmp_path / "ref_oci.pth", input_size=233)
    with pytest.raises(ReferenceCheckpointError, match="takes 233 inputs but the viirs feature spec has 20"):
        convert_reference(tmp_path / "ref_oci.pth", "viirs", tmp_path / "x.pt")
    torch.save({"encoder.0.weight": torch.zeros(128, 20)}, tmp_path / "partial.pth")
    with pytest.raises(ReferenceCheckpointError, match="does not match the reference architecture"):
        convert_reference(tmp_path / "partial.pth", "viirs", tmp_path / "x.pt")


def _rewrite_member(src: Path, dst: Path, match: str, edit) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            zout.writestr(item, edit(data) if match in item.filename else data)


def test_corrupted_weights_are_refused(trained_viirs, tmp_path: Path) -> None:
    _, path = trained_viirs
    bad = tmp_path / "tampered.pt"

    def flip(data: bytes) -> bytes:
        values = bytearray(data)
        values[len(values) // 2] ^= 0xFF
        return bytes(values)

    _rewrite_member(path, bad, "/data/0", flip)
    with pytest.raises(ArtifactError, match=r"tampered\.pt is corrupted: its weights do not match the sha256"):
        load_artifact(bad)


def test_truncated_and_foreign_files_are_refused(trained_viirs, tmp_path: Path) -> None:
    _, path = trained_viirs
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ArtifactError, match=r"truncated\.pt is not a readable TorchScript model artifact"):
        load_artifact(truncated)
    plain = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(3, 3)), plain)
    with pytest.raises(ArtifactError, match="without MT-HCCAR metadata"):
        load_artifact(plain)
    with pytest.raises(ArtifactError, match="does not exist"):
        load_artifact(tmp_path / "missing.pt")


def test_artifact_for_another_sensor_is_refused(trained_viirs) -> None:
    _, path = trained_viirs
    with pytest.raises(ArtifactError, match=r"viirs\.pt is a model for viirs, not for abi"):
        load_artifact(path, expect_sensor="abi")


def test_training_checkpoint_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        export_checkpoint(tmp_path / "nope.pt", tmp_path / "out.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an MT-HCCAR training checkpoint"):
        export_checkpoint(tmp_path / "other.pt", tmp_path / "out.pt")


def test_read_metadata_reads_the_zip_without_loading_the_model(tmp_path: Path) -> None:
    from models.artifact import read_metadata
    from models.registry import default_artifacts

    for path in default_artifacts():
        assert read_metadata(path) == load_artifact(path).metadata
    not_a_model = tmp_path / "notes.pt"
    not_a_model.write_text("plain text")
    with pytest.raises(ArtifactError, match=r"notes\.pt is not a readable TorchScript model artifact"):
        read_metadata(not_a_model)
    bare = tmp_path / "bare.pt"
    with zipfile.ZipFile(bare, "w") as archive:
        archive.writestr("bare/data.pkl", b"")
    with pytest.raises(ArtifactError, match="without MT-HCCAR metadata"):
        read_metadata(bare)
