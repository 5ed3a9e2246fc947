"""The MT-HCCAR network (Li et al., ECML-PKDD 2024), layer for layer as the reference code.

Blocks and their state-dict prefixes (identical to the reference, so its checkpoints load):

* ``encoder``   input -> 128 -> 64 -> 32, ReLU
* ``cls1``      C_Mask: 32 -> 64 -> 1, logit of P(cloud-free)
* ``cls2``      C_Phase: 32 -> 64 -> 1, logit of P(liquid), on hard-gated (cloudy) features
* ``cls31/32``  C_Aux: 32 -> 64 -> 128 (ReLU) -> 3 coarse COT classes (thin, moderate, thick)
* ``reg1``      regression trunk 32 -> 64 -> 128
* ``cross_attn`` classification-assisted attention between regression and auxiliary features
* ``reg2``      128 -> 1, log10 COT scaled to [0, 1] as (log10 COT + 2) / 4.5
* ``recon``     32 -> 128 -> input, the auto-encoder head used only as a training regulariser

Two additions that the reference lacks (``EXTENSION_KEYS``; a reference state dict loads without
them and its models say "no uncertainty"):

* ``reg_log_variance`` 128 -> 32 -> 1 on the attended regression features (detached, so it never
  changes the COT estimate): log variance of log10 COT, trained with a Gaussian negative
  log-likelihood, the heteroscedastic regression of Nix & Weigend (1994);
* ``calibration``, a buffer of five numbers fitted after training on the validation split
  (``models.training.calibrate``): temperatures of the mask, phase and COT-class logits (Guo et
  al. 2017, ICML), a scale of the COT standard deviation and the half-width of the 95 % interval
  in those sigmas. ``forward`` applies the first four, so the outputs are calibrated and the
  artifact contract is unchanged (the gate stays at logit 0); the fifth is read by the product.

The reference ends its heads with ``Sigmoid``; here the heads return logits (no parameters differ,
so the keys are the same) and probabilities are taken where needed, which lets training use the
numerically stable ``*_with_logits`` losses.

Attention modes:

* ``reference``: the reference non-local block. Its features are 1-D, so its softmax runs over a
  single element and is identically 1: the output is ``W_z(g(x_reg)) + x_reg`` and the auxiliary
  features never reach the COT output. Kept for checkpoint compatibility.
* ``attending`` (default): the 128-d regression and auxiliary features are split into 8 tokens
  of 16; every regression token attends over the auxiliary tokens (softmax over 8), and the
  attended values are added back residually, so the auxiliary classification really informs COT.
* ``none``: no attention, for ablation.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Final

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ATTENTION_MODES: Final = ("attending", "reference", "none")
LOG10_COT_MIN: Final = -2.0  # value the reference gives clear pixels; the lower end of the scaled range
LOG10_COT_RANGE: Final = 4.5  # scaled COT = (log10 COT - LOG10_COT_MIN) / LOG10_COT_RANGE
FEATURE_WIDTH: Final = 128
EXTENSION_KEYS: Final = (
    "reg_log_variance.0.weight",
    "reg_log_variance.0.bias",
    "reg_log_variance.2.weight",
    "reg_log_variance.2.bias",
    "calibration",
)
CALIBRATION_FIELDS: Final = (
    "mask_temperature",
    "phase_temperature",
    "cot_class_temperature",
    "cot_sigma_scale",
    "cot_interval95_factor",  # half-width of the 95 % log10-COT interval in sigma (1.96 if Gaussian)
)
GAUSSIAN_95: Final = 1.959964
# log variance of log10 COT: sigma from 0.0025 to 7.4
LOG_VARIANCE_MIN: Final = -12.0
LOG_VARIANCE_MAX: Final = 4.0


def short_softmax(x: Tensor, dim: int) -> Tensor:
    """Softmax over a short dimension (8 attention keys, 3 COT classes), written out.

    ATen's softmax over a dimension this short runs element by element: on CPU it took 4.6 ms of a
    33 ms forward of 8192 cloudy pixels. These vectorised ops give the same values at a fifth of
    the cost. Like ATen's, it works in float32 on bfloat16 input and returns the input's type.
    """
    weights = (x - x.amax(dim=dim, keepdim=True)).float().exp()
    return (weights / weights.sum(dim=dim, keepdim=True)).to(x.dtype)


class ReferenceCrossAttention(nn.Module):
    """The reference implementation's non-local block, computed exactly as it does."""

    def __init__(self, in_channels: int = FEATURE_WIDTH, inter_channels: int = FEATURE_WIDTH // 2) -> None:
        super().__init__()
        self.inter_channels = inter_channels
        self.g = nn.Linear(in_channels, inter_channels)
        self.W_z = nn.Linear(inter_channels, in_channels)
        nn.init.zeros_(self.W_z.weight)
        nn.init.zeros_(self.W_z.bias)
        self.theta = nn.Linear(in_channels, inter_channels)
        self.phi = nn.Linear(in_channels, inter_channels)

    def forward(self, x_reg: Tensor, x_aux: Tensor) -> Tensor:
        batch = x_reg.size(0)
        g_x = self.g(x_reg).view(batch, self.inter_channels, -1).permute(0, 2, 1)
        theta_x = self.theta(x_aux).view(batch, self.inter_channels, -1).permute(0, 2, 1)
        phi_x = self.phi(x_reg).view(batch, self.inter_channels, -1)
        weights = F.softmax(torch.matmul(theta_x, phi_x), dim=-1)
        y = torch.matmul(weights, g_x).permute(0, 2, 1).contiguous().view(batch, self.inter_channels)
        return self.W_z(y) + x_reg


class TokenCrossAttention(nn.Module):
    """Cross-attention from regression tokens (queries) to auxiliary-classification tokens.

    ``theta`` projects queries, ``phi`` keys and ``g`` values (the non-local block's names);
    ``W_z`` starts at zero so the block begins as the identity, as in the reference.
    """

    def __init__(self, in_channels: int = FEATURE_WIDTH, tokens: int = 8) -> None:
        super().__init__()
        if in_channels % tokens:
            raise ValueError(f"{in_channels} features do not split into {tokens} tokens")
        self.tokens = tokens
        self.width = in_channels // tokens
        self.theta = nn.Linear(self.width, self.width)
        self.phi = nn.Linear(self.width, self.width)
        self.g = nn.Linear(self.width, self.width)
        self.W_z = nn.Linear(self.width, self.width)
        self.position = nn.Parameter(torch.randn(tokens, self.width) * 0.02)
        nn.init.zeros_(self.W_z.weight)
        nn.init.zeros_(self.W_z.bias)
        self.temperature = math.sqrt(self.width)

    def forward(self, x_reg: Tensor, x_aux: Tensor) -> Tensor:
        batch = x_reg.size(0)
        reg_tokens = x_reg.view(batch, self.tokens, self.width)
        aux_tokens = x_aux.view(batch, self.tokens, self.width)
        query = self.theta(reg_tokens + self.position)
        key = self.phi(aux_tokens + self.position)
        value = self.g(aux_tokens)
        weights = short_softmax(torch.matmul(query, key.transpose(1, 2)) / self.temperature, dim=-1)
        attended = torch.matmul(weights, value)
        return x_reg + self.W_z(attended).reshape(batch, self.tokens * self.width)


class NoAttention(nn.Module):
    """Pass the regression features through unchanged (ablation)."""

    def forward(self, x_reg: Tensor, x_aux: Tensor) -> Tensor:
        return x_reg


def _mlp(*sizes: int, final_relu: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(n_in, n_out))
        if final_relu or i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class MTHCCAR(nn.Module):
    """Multi-task network: hierarchical cloud mask -> phase classification and attention-aided COT."""

    def __init__(self, input_size: int, attention: str = "attending") -> None:
        super().__init__()
        if attention not in ATTENTION_MODES:
            raise ValueError(f"attention must be one of {', '.join(ATTENTION_MODES)}, not {attention!r}")
        if input_size < 1:
            raise ValueError(f"input_size must be positive, not {input_size}")
        self.input_size = input_size
        self.attention = attention
        self.reference_aux = attention == "reference"
        self.log10_cot_min = LOG10_COT_MIN
        self.log10_cot_range = LOG10_COT_RANGE
        self.log_variance_min = LOG_VARIANCE_MIN
        self.log_variance_max = LOG_VARIANCE_MAX
        self.encoder = _mlp(input_size, 128, 64, 32, final_relu=True)
        self.cls1 = _mlp(32, 64, 1, final_relu=False)
        self.cls2 = _mlp(32, 64, 1, final_relu=False)
        self.cls31 = _mlp(32, 64, FEATURE_WIDTH, final_relu=True)
        self.cls32 = nn.Sequential(nn.Linear(FEATURE_WIDTH, 3))
        self.reg1 = _mlp(32, 64, FEATURE_WIDTH, final_relu=True)
        block: nn.Module
        if attention == "reference":
            block = ReferenceCrossAttention()
        elif attention == "attending":
            block = TokenCrossAttention()
        else:
            block = NoAttention()
        self.cross_attn = nn.ModuleList([block])
        self.reg2 = nn.Sequential(nn.Linear(FEATURE_WIDTH, 1))
        self.recon = _mlp(32, 128, input_size, final_relu=False)
        self.reg_log_variance = _mlp(FEATURE_WIDTH, 32, 1, final_relu=False)
        self.register_buffer("calibration", torch.tensor([1.0, 1.0, 1.0, 1.0, GAUSSIAN_95]))

    def _attend(self, x_reg: Tensor, x_aux: Tensor) -> Tensor:
        out = x_reg
        for block in self.cross_attn:
            out = block(x_reg, x_aux)
        return out

    @torch.jit.unused
    def load_compatible(self, state: dict[str, Tensor]) -> tuple[list[str], list[str]]:
        """Load a state dict that may predate the extensions (a reference checkpoint, an older run).

        Returns the missing keys other than the extensions and the unexpected keys, for the caller
        to refuse in its own words. Without the uncertainty head, the network says "no
        uncertainty": its sigma scale is NaN.
        """
        result = self.load_state_dict(state, strict=False)
        missing = [k for k in result.missing_keys if k not in EXTENSION_KEYS]
        if not any(key.startswith("reg_log_variance.") for key in state):
            self.set_calibration({"cot_sigma_scale": float("nan")})
        return missing, list(result.unexpected_keys)

    @torch.jit.unused
    def set_calibration(self, values: dict[str, float]) -> None:
        """Store fitted calibration values (``CALIBRATION_FIELDS``); missing ones stay as they are."""
        unknown = set(values) - set(CALIBRATION_FIELDS)
        if unknown:
            raise ValueError(f"unknown calibration fields {sorted(unknown)}: expected {CALIBRATION_FIELDS}")
        calibration = self.calibration
        assert isinstance(calibration, Tensor)
        with torch.no_grad():
            for name, value in values.items():
                calibration[CALIBRATION_FIELDS.index(name)] = float(value)

    def heads(self, feature: Tensor, cloudy_gate: Tensor) -> dict[str, Tensor]:
        """Phase, auxiliary and COT heads on encoder features gated by a (N, 1) 0/1 cloudy mask."""
        x_cloudy = feature * cloudy_gate
        aux_feature = self.cls31(x_cloudy)
        reg_feature = self.reg1(x_cloudy)
        attended = self._attend(reg_feature, aux_feature)
        log_variance = self.reg_log_variance(attended.detach()).clamp(self.log_variance_min, self.log_variance_max)
        return {
            "liquid_logit": self.cls2(x_cloudy),
            "cot_class_logits": self.cls32(aux_feature),
            "cot_scaled": self.reg2(attended),
            "cot_log_variance": log_variance,
        }

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Inference outputs for products (no reconstruction decoder); ``x`` is scaled (N, F)."""
        feature = self.encoder(x)
        clear_logit = self.cls1(feature)
        cloudy_gate = (torch.sigmoid(clear_logit) <= 0.5).to(feature.dtype)
        return self.outputs(clear_logit, self.heads(feature, cloudy_gate))

    def outputs(self, clear_logit: Tensor, out: dict[str, Tensor]) -> dict[str, Tensor]:
        """The calibrated product outputs from the mask logit and the raw outputs of ``heads``."""
        calibration = self.calibration
        assert isinstance(calibration, Tensor)
        p_clear = torch.sigmoid(clear_logit / calibration[0])
        logits = out["cot_class_logits"] / calibration[2]
        if self.reference_aux:
            # the reference trained this head through a sigmoid: normalise those scores
            scores = torch.sigmoid(logits)
            class_probability = scores / scores.sum(dim=1, keepdim=True).clamp_min(1e-12)
        else:
            class_probability = short_softmax(logits, dim=1)
        return {
            "cloud_mask_probability": (1.0 - p_clear).squeeze(1),
            "cloud_phase_probability": torch.sigmoid(-out["liquid_logit"] / calibration[1]).squeeze(1),
            "cot_class_probability": class_probability,
            "log10_cot": (out["cot_scaled"] * self.log10_cot_range + self.log10_cot_min).squeeze(1),
            "log10_cot_uncertainty": (torch.exp(0.5 * out["cot_log_variance"]) * calibration[3]).squeeze(1),
        }

    @torch.jit.unused
    def training_outputs(self, x: Tensor, cloudy_gate: Tensor | None = None) -> dict[str, Tensor]:
        """Logits and reconstruction for the loss; ``cloudy_gate`` defaults to the predicted mask."""
        feature = self.encoder(x)
        clear_logit = self.cls1(feature)
        if cloudy_gate is None:
            cloudy_gate = (torch.sigmoid(clear_logit) <= 0.5).to(feature.dtype)
        out = self.heads(feature, cloudy_gate)
        out["clear_logit"] = clear_logit
        out["reconstruction"] = self.recon(feature)
        return out

    @torch.jit.unused
    def reference_outputs(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """The reference ``forward``'s tuple: reconstruction, P(clear), P(liquid), aux scores, gate, COT."""
        feature = self.encoder(x)
        p_clear = torch.sigmoid(self.cls1(feature))
        gate = torch.where(p_clear <= 0.5, 1, 0)
        out = self.heads(feature, gate.to(feature.dtype))
        return (
            self.recon(feature),
            p_clear,
            torch.sigmoid(out["liquid_logit"]),
            torch.sigmoid(out["cot_class_logits"]),
            gate,
            out["cot_scaled"],
        )


def stored_calibration(module: Any) -> dict[str, float] | None:
    """The calibration a network carries (eager or TorchScript), by field; None for one without."""
    values = getattr(module, "calibration", None)
    if values is None:
        return None
    return dict(zip(CALIBRATION_FIELDS, (float(v) for v in values), strict=True))


def interval95_factor(module: Any) -> float:
    """Half-width of a network's 95 % log10-COT interval in sigmas (a Gaussian's without calibration)."""
    stored = stored_calibration(module)
    return stored["cot_interval95_factor"] if stored else GAUSSIAN_95


def parameter_count(model: nn.Module, include_decoder: bool = True, include_extensions: bool = True) -> int:
    """Number of trainable parameters, optionally leaving out the decoder or the non-reference heads."""
    return sum(
        p.numel()
        for name, p in model.named_parameters()
        if (include_decoder or not name.startswith("recon.")) and (include_extensions or name not in EXTENSION_KEYS)
    )
