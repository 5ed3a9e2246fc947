"""The real day scene's answer as the water-vapour input alone moves (a robustness sweep, not a timing).

The shared GOES-17 day scene is processed with the climatology and through ERA5-style ``--nwp``
files whose column is the climatology's times 0.3-1.5, the rest of the scan unchanged, and each
product is scored by ``mthccar validate`` against the same-time FDCC and the scan's C13. Prints
FDCC-clear land / FDCC cloud / C13 > 290 K / C13 < 250 K flagged cloudy (%) per model and input
(``python -m tests.bench.bench_water_vapour_input [MODEL.pt ...]``; the two models that process the
scene by default when none are given).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

SCALES = (0.3, 0.5, 0.7, 1.0, 1.5)
LINES = ("clear_land_flagged_cloudy", "cloud_flagged_cloudy", "warm_above_290K", "cold_below_250K")


def _score(model: Path, nwp: Path | None, out: Path) -> str:
    from pipeline.ancillary import AncillaryConfig
    from pipeline.granules import single_granule
    from pipeline.process import ProcessOptions, process_granule
    from pipeline.real_scenes import REAL_DAY_SCENE, granules_root, real_day_references
    from pipeline.validate import flagged_cloudy_shares, validate_product

    scene = granules_root().joinpath(*REAL_DAY_SCENE)
    references = real_day_references()
    ancillary = AncillaryConfig.from_nwp(str(nwp)) if nwp else AncillaryConfig()
    product = process_granule(
        single_granule([scene]),
        ProcessOptions(out_dir=out, model=model, quicklook=False, ancillary=ancillary, overwrite=True),
    ).product
    report = json.loads(validate_product(product, references, out / "validation")["json"].read_text())
    checks = flagged_cloudy_shares(report)
    return " / ".join(f"{100 * checks[line]:.1f}" for line in LINES)


def main(models: list[Path]) -> None:
    from tests.support.nwp import era5_like_file

    print("| model | climatology | " + " | ".join(f"{s} x (--nwp)" for s in SCALES) + " |")
    print("|---|" + "---:|" * (len(SCALES) + 1))
    for model in models:
        with tempfile.TemporaryDirectory() as tmp:
            cells = [_score(model, None, Path(tmp) / "climatology")]
            for scale in SCALES:
                nwp = era5_like_file(Path(tmp) / f"era5_{scale}.nc", scale)
                cells.append(_score(model, nwp, Path(tmp) / f"nwp_{scale}"))
        print(f"| {model.stem} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    from models.registry import ARTIFACTS
    from models.training.defaults import REAL_SCENE_MODELS

    given = [Path(arg) for arg in sys.argv[1:]]
    main(given or [ARTIFACTS / f"{name}.pt" for name in REAL_SCENE_MODELS])
