"""The network that inference runs, built from an artifact's weights: heads on cloudy pixels only,
in float32 or (opt-in) bfloat16.

* **Heads on cloudy pixels only.** MT-HCCAR gates the phase, auxiliary and COT heads with the hard
  cloud mask (``heads(feature * gate)``), so every clear pixel feeds them the same zero vector and gets
  the same outputs. The runner evaluates the heads once on a zero row and on the cloudy pixels, and
  hands the zero row's outputs to every clear pixel. The outputs equal the artifact's own ``forward``
  (checked on probe inputs each time a runner is built; ``PARITY_TOLERANCE``), and the heads' cost,
  most of the network's, follows the cloudy fraction. ReLUs run in place (no copy of each layer's
  output).
* **bfloat16** (``precision="bfloat16"``): the first layer (scaled inputs, where a kelvin between two
  brightness temperatures matters) and the final transforms stay in float32; the rest runs in
  bfloat16, which CPUs with AVX-512 BF16/AMX and GPUs multiply several times faster. It is refused
  for an artifact whose change on its held-out split has not been measured
  (``mthccar check-precision``) or exceeds ``PRECISION_BOUNDS`` (a night model: its mask and phase
  bounds; its COT is no product).

An artifact whose weights do not fit today's network (a format this module does not know) runs as
its own TorchScript module, in float32.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import numpy as np
import torch
from torch import Tensor, nn

from models.artifact import PARITY_TOLERANCE, Artifact, ArtifactError, output_difference, probe_inputs, torchscript
from models.mthccar import MTHCCAR
from models.runner_cache import load_runner, store_runner
from models.spec import FeatureSpec

logger = logging.getLogger(__name__)

PRECISIONS: Final = ("float32", "bfloat16")
# Largest change that reduced precision may make against float32 on an artifact's held-out split:
# mask and phase decisions changed on at most 0.5 % of the pixels, and log10 COT changed by at most
# 0.05 (12 % in COT, a quarter of the day models' held-out log10-COT RMSE of 0.19-0.23) on 99 % of
# the pixels cloudy in both.
PRECISION_BOUNDS: Final = {
    "mask_decisions_changed": 0.005,
    "phase_decisions_changed": 0.005,
    "log10_cot_change_p99": 0.05,
}
PRECISION_CHECKS_KEY: Final = "precision_checks"
COT_BOUNDS: Final = ("log10_cot_change_p99",)


def precision_bounds(spec: FeatureSpec) -> dict[str, float]:
    """The bounds that apply to a model: a night model's COT is no product, so only its mask and phase."""
    return {k: v for k, v in PRECISION_BOUNDS.items() if not (spec.night and k in COT_BOUNDS)}


class CloudyHeadsNetwork(nn.Module):
    """MT-HCCAR's ``forward`` with the gated heads evaluated on cloudy pixels and one zero row."""

    def __init__(self, net: MTHCCAR, reduced: bool) -> None:
        super().__init__()
        self.net = net
        layers = list(net.encoder)
        self.first = layers[0]
        self.rest = nn.Sequential(*layers[1:])
        self.reduced = reduced

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        hidden = self.first(x)
        if self.reduced:
            hidden = hidden.to(torch.bfloat16)
        feature = self.rest(hidden)
        clear_logit = self.net.cls1(feature).float()
        index = torch.nonzero((torch.sigmoid(clear_logit) <= 0.5).squeeze(1)).squeeze(1)
        rows = torch.cat([feature.new_zeros(1, feature.shape[1]), feature.index_select(0, index)])
        heads = self.net.heads(rows, torch.ones_like(rows[:, :1]))
        lookup = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        lookup[index] = torch.arange(1, index.numel() + 1, device=x.device)
        spread = {name: value.index_select(0, lookup).float() for name, value in heads.items()}
        return self.net.outputs(clear_logit, spread)


def _network(artifact: Artifact) -> MTHCCAR | None:
    """The eager network holding the artifact's weights; None when they do not fit it."""
    net = MTHCCAR(artifact.spec.size, str(artifact.metadata.get("attention", "attending")))
    try:
        net.load_state_dict({k: v.cpu() for k, v in artifact.module.state_dict().items()})
    except RuntimeError as err:
        logger.info("%s runs as its own module: its weights do not fit the network (%s)", artifact.name, err)
        return None
    return net.eval()


def _require_known(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ArtifactError(f"unknown precision {precision!r}: expected {' or '.join(PRECISIONS)}")


def require_precision(artifact: Artifact, precision: str) -> None:
    """Refuse, in one sentence, a precision unknown or not cleared for this artifact."""
    _require_known(precision)
    if precision == "float32":
        return
    check = artifact.metadata.get(PRECISION_CHECKS_KEY, {}).get(precision)
    if check is None:
        raise ArtifactError(
            f"{artifact.path.name} has no measured {precision} accuracy change on its held-out split; "
            f"run `mthccar check-precision {artifact.path} DATA` or use float32"
        )
    for name, bound in precision_bounds(artifact.spec).items():
        value = float(check.get(name, "nan"))  # a figure missing from the record clears nothing
        if not value <= bound:
            raise ArtifactError(
                f"{artifact.path.name} in {precision}: {name.replace('_', ' ')} {value:.4g} on its "
                f"held-out split is over the bound {bound:g}; use float32"
            )


def build_runner(artifact: Artifact, device: str = "cpu", precision: str = "float32") -> Any:
    """The TorchScript network to run on ``device`` at ``precision``, once the precision is cleared."""
    require_precision(artifact, precision)
    if precision == "bfloat16" and torch.device(device).type == "cpu" and not cpu_has_native_bfloat16():
        logger.warning(
            "%s: this CPU (%s) has no native bfloat16 arithmetic, so bfloat16 runs emulated and "
            "several times slower than float32 (9x in the benchmark on an AVX2 machine); use float32 here",
            artifact.path.name,
            torch.backends.cpu.get_cpu_capability(),
        )
    return runner_network(artifact, device, precision)


def cpu_has_native_bfloat16() -> bool:
    """Whether oneDNN finds bfloat16 instructions (AVX-512 BF16 or AMX) on this CPU."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def runner_network(artifact: Artifact, device: str = "cpu", precision: str = "float32") -> Any:
    """The network at ``precision`` whether or not it is cleared (what ``check-precision`` measures);
    in float32 checked against the artifact's own forward. Compiled once and then loaded from the
    network cache (``models.runner_cache``)."""
    _require_known(precision)
    stored = load_runner(artifact.sha256, precision)
    if stored is not None and _trusted(artifact, stored, precision):
        return stored.to(device)
    net = _network(artifact)
    if net is None:
        if precision != "float32":
            raise ArtifactError(f"{artifact.path.name} can only run in float32: its weights do not fit the network")
        return artifact.module
    for module in net.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = True  # each ReLU's input is a fresh layer output that nothing else reads
    runner = CloudyHeadsNetwork(net, reduced=precision != "float32")
    if runner.reduced:
        net.to(torch.bfloat16)
        runner.first.float()
        net.calibration = net.calibration.float()
    with torchscript():
        scripted = torch.jit.script(runner.eval())
    if precision == "float32":
        worst = _parity(artifact.module, scripted, artifact.spec.size)
        if worst > PARITY_TOLERANCE:
            logger.warning(
                "%s: the cloudy-heads network differs from the artifact by %.2e; running the artifact itself",
                artifact.name,
                worst,
            )
            return artifact.module
    store_runner(artifact.sha256, precision, scripted)
    return scripted.to(device)


def _trusted(artifact: Artifact, stored: Any, precision: str) -> bool:
    """Whether a network from the cache may run: in float32 it must match the artifact's forward,
    as a freshly compiled one must (a reduced-precision one is trusted by its cache key)."""
    if precision != "float32":
        return True
    worst = _parity(artifact.module, stored, artifact.spec.size)
    if worst > PARITY_TOLERANCE:
        logger.warning(
            "%s: the cached network differs from the artifact by %.2e; compiling it again", artifact.name, worst
        )
        return False
    return True


def _parity(reference: Any, candidate: Any, n_features: int) -> float:
    """Largest difference on probe inputs, absolute up to magnitude 1 and relative beyond: the far-out
    probes drive log10 COT to ~100, where float32 keeps 7 digits and summation order shows at 1e-5."""
    x = torch.cat([probe_inputs(n_features), -3.0 * probe_inputs(n_features)])
    with torch.inference_mode():
        a, b = reference.cpu()(x), candidate(x)
    return output_difference(a, b, scale_floor=1.0)


def precision_change(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray]) -> dict[str, float]:
    """How much a candidate's outputs differ from the float32 reference's, by the terms of the bounds."""
    cloudy = reference["cloud_mask_probability"] > 0.5
    candidate_cloudy = candidate["cloud_mask_probability"] > 0.5
    both = cloudy & candidate_cloudy
    phase = reference["cloud_phase_probability"][both] > 0.5
    candidate_phase = candidate["cloud_phase_probability"][both] > 0.5
    cot = np.abs(reference["log10_cot"][both] - candidate["log10_cot"][both])
    probability = np.abs(reference["cloud_mask_probability"] - candidate["cloud_mask_probability"])
    return {
        "pixels": int(cloudy.size),
        "mask_decisions_changed": float(np.mean(cloudy != candidate_cloudy)),
        "phase_decisions_changed": float(np.mean(phase != candidate_phase)) if both.any() else 0.0,
        "log10_cot_change_p99": float(np.percentile(cot, 99)) if both.any() else 0.0,
        "mask_probability_change_p99": float(np.percentile(probability, 99)),
    }


def within_bounds(change: dict[str, float], spec: FeatureSpec) -> bool:
    return all(float(change[name]) <= bound for name, bound in precision_bounds(spec).items())
