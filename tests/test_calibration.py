"""Post-hoc calibration and its scores, on draws whose calibration is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.mthccar import MTHCCAR
from models.training.calibrate import (
    expected_calibration_error,
    fit_temperature,
    reliability,
    sigma_scale,
)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def test_fitted_temperature_undoes_known_over_confidence() -> None:
    rng = np.random.default_rng(3)
    true_logit = rng.normal(0.0, 2.0, 200_000)
    labels = (rng.random(true_logit.size) < _sigmoid(true_logit)).astype(float)
    over_confident = 2.5 * true_logit  # a head whose logits are 2.5 times too large
    assert fit_temperature(over_confident, labels) == pytest.approx(2.5, rel=0.03)
    before = expected_calibration_error(_sigmoid(over_confident), labels)
    after = expected_calibration_error(_sigmoid(over_confident / 2.5), labels)
    assert before > 0.05
    assert after < 0.01


def test_softmax_temperature_is_recovered() -> None:
    rng = np.random.default_rng(4)
    true_logits = rng.normal(0.0, 1.5, (100_000, 3))
    p = np.exp(true_logits) / np.exp(true_logits).sum(axis=1, keepdims=True)
    labels = (rng.random((len(p), 1)) > np.cumsum(p, axis=1)).sum(axis=1)
    assert fit_temperature(0.5 * true_logits, labels) == pytest.approx(0.5, rel=0.03)


def test_ece_of_a_constant_forecast_is_its_bias() -> None:
    outcome = np.r_[np.ones(300), np.zeros(700)]
    assert expected_calibration_error(np.full(1000, 0.3), outcome) == pytest.approx(0.0)
    assert expected_calibration_error(np.full(1000, 0.5), outcome) == pytest.approx(0.2)
    table = reliability(np.full(1000, 0.5), outcome)
    assert table["count"].sum() == 1000
    assert table["count"][7] == 1000  # 0.5 falls in bin 7 of 15
    assert np.isnan(expected_calibration_error(np.array([]), np.array([])))


def test_sigma_scale_makes_one_sigma_cover_68_percent() -> None:
    rng = np.random.default_rng(5)
    true_sigma = rng.uniform(0.05, 0.5, 100_000)
    errors = rng.normal(0.0, true_sigma)
    factor = sigma_scale(errors, true_sigma / 3)  # a head that reports a third of the spread
    assert factor == pytest.approx(3.0, rel=0.03)
    covered = np.abs(errors) <= factor * true_sigma / 3
    assert covered.mean() == pytest.approx(0.6827, abs=0.005)
    assert np.mean(np.abs(errors) <= 1.96 * factor * true_sigma / 3) == pytest.approx(0.95, abs=0.005)


def test_calibration_changes_probabilities_but_not_decisions() -> None:
    torch.manual_seed(0)
    model = MTHCCAR(12).eval()
    x = torch.randn(4000, 12) * 3
    with torch.no_grad():
        before = model(x)
        model.set_calibration(
            {"mask_temperature": 3.0, "phase_temperature": 0.5, "cot_class_temperature": 2.0, "cot_sigma_scale": 2.0}
        )
        after = model(x)
    assert not torch.allclose(before["cloud_mask_probability"], after["cloud_mask_probability"])
    assert torch.equal(before["cloud_mask_probability"] >= 0.5, after["cloud_mask_probability"] >= 0.5)
    assert torch.equal(before["cloud_phase_probability"] > 0.5, after["cloud_phase_probability"] > 0.5)
    assert torch.equal(before["cot_class_probability"].argmax(1), after["cot_class_probability"].argmax(1))
    assert torch.equal(before["log10_cot"], after["log10_cot"])
    assert torch.allclose(after["log10_cot_uncertainty"], 2.0 * before["log10_cot_uncertainty"])
    with pytest.raises(ValueError, match="unknown calibration fields"):
        model.set_calibration({"temperature": 1.0})
