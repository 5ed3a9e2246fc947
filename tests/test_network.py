"""The network: reference compatibility, attention modes, TorchScript."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models.mthccar import ATTENTION_MODES, EXTENSION_KEYS, MTHCCAR, parameter_count


# ---- the reference implementation, rebuilt here with its exact module names -----------------------
class RefCrossATT(nn.Module):
    def __init__(self, in_channels: int, inter_channels: int | None = None) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.inter_channels = inter_channels or in_channels // 2
        self.g = nn.Linear(self.in_channels, self.inter_channels)
        self.W_z = nn.Linear(self.inter_channels, self.in_channels)
        nn.init.constant_(self.W_z.weight, 0)
        nn.init.constant_(self.W_z.bias, 0)
        self.theta = nn.Linear(self.in_channels, self.inter_channels)
        self.phi = nn.Linear(self.in_channels, self.inter_channels)

    def forward(self, x):
        x1, x2 = x
        batch_size = x1.size(0)
        g_x = self.g(x1).view(batch_size, self.inter_channels, -1).permute(0, 2, 1)
        theta_x = self.theta(x2).view(batch_size, self.inter_channels, -1).permute(0, 2, 1)
        phi_x = self.phi(x1).view(batch_size, self.inter_channels, -1)
        f = torch.matmul(theta_x, phi_x)
        y = torch.matmul(F.softmax(f, dim=-1), g_x)
        y = y.permute(0, 2, 1).contiguous().view(batch_size, self.inter_channels, *x1.size()[2:])
        return self.W_z(y) + x1


class RefMTHCCAR(nn.Module):
    def __init__(self, input_size: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(input_size, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU()
        )
        self.cls1 = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 1), nn.Sigmoid())
        self.cls2 = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 1), nn.Sigmoid())
        self.cls31 = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 128), nn.ReLU())
        self.cls32 = nn.Sequential(nn.Linear(128, 3), nn.Sigmoid())
        self.reg1 = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 128), nn.ReLU())
        self.cross_attn = nn.Sequential(RefCrossATT(in_channels=128))
        self.reg2 = nn.Sequential(nn.Linear(128, 1))
        self.recon = nn.Sequential(nn.Linear(32, 128), nn.ReLU(), nn.Linear(128, input_size))

    def forward(self, x):
        feature = self.encoder(x)
        classification1 = self.cls1(feature)
        mask_cloudy = torch.where(classification1 <= 0.5, 1, 0)
        x_cloudy = feature * mask_cloudy
        classification2 = self.cls2(x_cloudy)
        class3_feature = self.cls31(x_cloudy)
        classification3 = self.cls32(class3_feature)
        regression_feature = self.reg1(x_cloudy)
        attn_feature = self.cross_attn((regression_feature, class3_feature))
        regression = self.reg2(attn_feature)
        reconstruction = self.recon(feature)
        return reconstruction, classification1, classification2, classification3, mask_cloudy, regression


def _reference_checkpoint(path: Path, input_size: int = 233, seed: int = 7) -> RefMTHCCAR:
    torch.manual_seed(seed)
    ref = RefMTHCCAR(input_size)
    with torch.no_grad():  # a trained W_z is not zero: make the attention path count
        ref.cross_attn[0].W_z.weight.normal_(0, 0.1)
        ref.cross_attn[0].W_z.bias.normal_(0, 0.1)
        # centre the mask head on the probe inputs, so both branches of the hard gate are used
        head = ref.cls1[2]
        head.weight.mul_(20)
        logits = torch.nn.functional.linear(
            ref.cls1[1](ref.cls1[0](ref.encoder(_probe(input_size)))), head.weight, head.bias
        )
        head.bias.sub_(logits.median())
    torch.save(ref.state_dict(), path)
    return ref.eval()


def _probe(input_size: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(512, input_size, generator=generator) * 3 - 1


def _mixed_batch(input_size: int, model: RefMTHCCAR) -> torch.Tensor:
    """Inputs with both predicted-clear and predicted-cloudy rows (exercises the hard gate)."""
    x = _probe(input_size)
    with torch.no_grad():
        gate = model(x)[4].squeeze(1)
    assert 0 < int(gate.sum()) < len(x), "probe batch should mix both gate states"
    return x


def test_reference_state_dict_loads_with_identical_keys_and_outputs(tmp_path: Path) -> None:
    ref = _reference_checkpoint(tmp_path / "ref.pth")
    state = torch.load(tmp_path / "ref.pth", weights_only=True)
    model = MTHCCAR(233, attention="reference")
    result = model.load_state_dict(state, strict=False)
    assert set(result.missing_keys) == set(EXTENSION_KEYS)  # the uncertainty head and the calibration
    assert not result.unexpected_keys
    model.eval()
    x = _mixed_batch(233, ref)
    with torch.no_grad():
        expected = ref(x)
        got = model.reference_outputs(x)
    for name, a, b in zip(("recon", "cls1", "cls2", "cls3", "gate", "regression"), expected, got, strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-5, rtol=0), name


def test_inference_outputs_follow_reference_semantics(tmp_path: Path) -> None:
    ref = _reference_checkpoint(tmp_path / "ref.pth", input_size=16)
    model = MTHCCAR(16, attention="reference")
    model.load_state_dict(torch.load(tmp_path / "ref.pth", weights_only=True), strict=False)
    model.eval()
    x = _mixed_batch(16, ref)
    with torch.no_grad():
        _, p_clear, p_liquid, aux, _, regression = ref(x)
        out = model(x)
    assert torch.allclose(out["cloud_mask_probability"], 1 - p_clear.squeeze(1), atol=1e-6)
    assert torch.allclose(out["cloud_phase_probability"], 1 - p_liquid.squeeze(1), atol=1e-6)
    assert torch.allclose(out["log10_cot"], regression.squeeze(1) * 4.5 - 2.0, atol=1e-5)
    assert torch.allclose(out["cot_class_probability"], aux / aux.sum(1, keepdim=True), atol=1e-6)


def test_reference_attention_ignores_auxiliary_features_but_attending_does_not() -> None:
    torch.manual_seed(1)
    x_reg, x_aux = torch.randn(4, 128), torch.randn(4, 128)
    for mode, should_depend in (("reference", False), ("attending", True), ("none", False)):
        block = MTHCCAR(10, attention=mode).cross_attn[0]
        for p in block.parameters():  # W_z starts at zero: perturb every weight
            torch.nn.init.normal_(p, 0, 0.2)
        changed = not torch.allclose(block(x_reg, x_aux), block(x_reg, torch.randn(4, 128)))
        assert changed == should_depend, mode


@pytest.mark.parametrize("mode", ATTENTION_MODES)
def test_torchscript_round_trip_matches_eager(mode: str, tmp_path: Path) -> None:
    torch.manual_seed(2)
    model = MTHCCAR(20, attention=mode).eval()
    scripted = torch.jit.script(model)
    torch.jit.save(scripted, tmp_path / "m.pt")
    loaded = torch.jit.load(tmp_path / "m.pt")
    x = torch.rand(300, 20)
    with torch.no_grad():
        a, b = model(x), loaded(x)
    assert set(a) == {
        "cloud_mask_probability",
        "cloud_phase_probability",
        "cot_class_probability",
        "log10_cot",
        "log10_cot_uncertainty",
    }
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    assert a["cot_class_probability"].shape == (300, 3)
    assert torch.allclose(a["cot_class_probability"].sum(1), torch.ones(300), atol=1e-5)


def test_parameter_counts_match_the_reference() -> None:
    model = MTHCCAR(233, attention="reference")
    assert parameter_count(model, include_extensions=False) == 133_391
    assert parameter_count(model, include_decoder=False, include_extensions=False) == 99_110
    assert parameter_count(model) == 133_391 + 128 * 32 + 32 + 32 + 1


def test_bad_constructor_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="attention must be one of"):
        MTHCCAR(10, attention="self")
    with pytest.raises(ValueError, match="input_size must be positive"):
        MTHCCAR(0)
