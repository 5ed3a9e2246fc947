"""The embedded default run (``make demo``): a synthetic ABI scene with truth and, when present, the
real GOES-17 day and night granules, processed by the ``process_granule`` flow on a temporary
Prefect server.

Writes into ``demo-output/``: the synthetic L1b files and their truth, products, quicklooks (the
real day product also on the CONUS grid, NetCDF and GeoTIFF),
``score.json`` (the synthetic product scored against its truth) and ``validation/`` (the real day
product against NOAA's same-time fire/cloud mask and the scan's 10.3 um band, the real night product
against its scan's 10.3 um band), and prints where everything is.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from pathlib import Path
from typing import Any

from pipeline.real_scenes import (
    GRANULES_ENV,
    REAL_DAY_SCENE,
    REAL_NIGHT_SCENE,
    granules_root,
    real_day_references,
    real_night_references,
)

logger = logging.getLogger(__name__)

SCENE_TIME = dt.datetime(2019, 10, 27, 20, 0, 27, 500000)


REAL_SCENES = {"real": REAL_DAY_SCENE, "real_night": REAL_NIGHT_SCENE}


def real_granules() -> dict[str, Path]:
    """The shared real scenes that are present, by run name."""
    folders = {name: granules_root().joinpath(*parts) for name, parts in REAL_SCENES.items()}
    return {name: folder for name, folder in folders.items() if any(folder.glob("OR_ABI-L1b-*.nc"))}


def missing_real_scenes_notice(found: dict[str, Path]) -> str | None:
    """One sentence naming the real scenes the demo will not process and where it looked; None if all are there."""
    missing = [name for name in REAL_SCENES if name not in found]
    if not missing:
        return None
    folders = ", ".join("/".join(REAL_SCENES[name]) for name in missing)
    return (
        f"real GOES-17 scene(s) not found under {granules_root()} ({folders}): only the scenes present are "
        f"processed; set {GRANULES_ENV} to the folder that holds them"
    )


# what judges each real product (the day one: NOAA's same-time FDCC and its scan's C13; the night
# one: its scan's C13), and how the demo's summary names it
VALIDATIONS = {
    "real": (real_day_references, "the real day product against NOAA's fire/cloud mask and C13"),
    "real_night": (real_night_references, "the real night product against its scan's C13"),
}


def _validate_real(runs: dict[str, Any], out: Path) -> dict[str, Path]:
    """The markdown summary of each real product's validation, for the products and references there."""
    from pipeline.validate import validate_product

    summaries = {}
    for name, (references, _) in VALIDATIONS.items():
        product = runs.get(name, [{}])[0].get("product")
        found = references()
        if product and found:
            summaries[name] = validate_product(Path(product), found, out)["markdown"]
    return summaries


def run_demo(out: Path = Path("demo-output"), seed: int = 7) -> dict[str, Any]:
    from flows.parameters import ProcessRequest, RunSettings
    from flows.process import process_granule
    from flows.server import temporary_server, using_server
    from models.synthetic.l1b_abi import write_abi_scene
    from pipeline.scoring import score_against_truth

    started = time.perf_counter()
    synthetic = out / "input" / "synthetic_abi_m1"
    products = out / "products"
    # every band a real scan has, thermal ones included, so the synthetic scan takes the default
    # day model operations run (a folder from a solar-only demo is rendered again)
    if not any(synthetic.glob("OR_ABI-L1b-*C13_*.nc")):
        print(f"rendering a synthetic GOES-17 ABI Meso-1 scan with truth into {synthetic} ...", flush=True)
        # the scan rendered before, and its products, which are not products of the new one
        for stale in [*synthetic.glob("*.nc"), *(products / "synthetic").glob("MTHCCAR-L2-CLD_*")]:
            stale.unlink()
        write_abi_scene(synthetic, SCENE_TIME, "M1", "G17", seed=seed, thermal=True)
    real = real_granules()
    notice = missing_real_scenes_notice(real)
    if notice:
        print(notice, flush=True)
    runs: dict[str, Any] = {}
    print("starting a temporary Prefect server (SQLite) ...", flush=True)
    with temporary_server() as api, using_server(api):
        print(f"Prefect API at {api} (UI at {api.removesuffix('/api')} while the demo runs)", flush=True)
        # the synthetic scan copies the real one's time and sector: keep their products apart
        runs["synthetic"] = process_granule(
            ProcessRequest(inputs=[str(synthetic)], out_dir=str(products / "synthetic"))
        )
        for name, folder in real.items():
            # the real day scene also on the CONUS map grid, as NetCDF and GeoTIFF
            settings = RunSettings(areas=["conus"], geotiff=True) if name == "real" else RunSettings()
            runs[name] = process_granule(
                ProcessRequest(inputs=[str(folder)], out_dir=str(products / name), settings=settings)
            )
    truth = next(synthetic.glob("MTHCCAR-TRUTH_*.nc"))
    score = score_against_truth(Path(runs["synthetic"][0]["product"]), truth)
    (out / "score.json").write_text(json.dumps(score, indent=1))
    validations = _validate_real(runs, out / "validation")
    summary = {"runs": runs, "score": score, "validation": validations, "seconds": time.perf_counter() - started}
    print(f"\nMT-HCCAR demo finished in {time.perf_counter() - started:.0f} s")
    for name, outcomes in runs.items():
        for o in outcomes:
            print(f"  {name}: {o['granule']} {o['status']} -> {o.get('product')}")
            if o.get("quicklook"):
                print(f"    quicklook {o['quicklook']}")
            for path in o.get("gridded", []):
                print(f"    gridded {path}")
    if notice:
        print(f"  {notice}")
    for name, validation in validations.items():
        print(f"  {VALIDATIONS[name][1]} ({validation}):")
        for line in validation.read_text().splitlines():
            if line.startswith("- "):
                print(f"    {line[2:]}")
    print(f"  score of the synthetic product against its truth ({out / 'score.json'}):")
    print(
        f"    mask accuracy {score['mask_accuracy']:.3f} (cloud fraction {score['cloud_fraction_retrieved']:.2f} "
        f"retrieved vs {score['cloud_fraction_true']:.2f} true), phase accuracy {score['phase_accuracy']:.3f}, "
        f"log10 COT RMSE {score['log10_cot_rmse']:.3f}"
    )
    return summary
