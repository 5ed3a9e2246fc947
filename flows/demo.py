"""The embedded default run (``make demo``): a synthetic ABI scene with truth and, when present, the
real GOES-17 granules, processed by the ``process_granule`` flow on a temporary Prefect server.

Writes into ``demo-output/``: the synthetic L1b files and their truth, products, quicklooks and
``score.json`` (the product scored against the truth), and prints where everything is.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SCENE_TIME = dt.datetime(2019, 10, 27, 20, 0, 27, 500000)


def real_granules() -> Path | None:
    root = Path(os.environ.get("MTHCCAR_GRANULES", Path(__file__).resolve().parents[2] / "shared" / "granules"))
    day = root / "abi" / "g17_meso1_20191027T2000_day"
    return day if any(day.glob("OR_ABI-L1b-*.nc")) else None


def run_demo(out: Path = Path("demo-output"), seed: int = 7) -> dict[str, Any]:
    from flows.parameters import ProcessRequest
    from flows.process import process_granule
    from flows.server import temporary_server, using_server
    from models.synthetic.l1b_abi import write_abi_scene
    from pipeline.scoring import score_against_truth

    started = time.perf_counter()
    synthetic = out / "input" / "synthetic_abi_m1"
    if not any(synthetic.glob("OR_ABI-L1b-*C06*.nc")):
        print(f"rendering a synthetic GOES-17 ABI Meso-1 scan with truth into {synthetic} ...", flush=True)
        write_abi_scene(synthetic, SCENE_TIME, "M1", "G17", seed=seed)
    products = out / "products"
    real = real_granules()
    runs: dict[str, Any] = {}
    print("starting a temporary Prefect server (SQLite) ...", flush=True)
    with temporary_server() as api, using_server(api):
        print(f"Prefect API at {api} (UI at {api.removesuffix('/api')} while the demo runs)", flush=True)
        # the synthetic scan copies the real one's time and sector: keep their products apart
        runs["synthetic"] = process_granule(
            ProcessRequest(inputs=[str(synthetic)], out_dir=str(products / "synthetic"))
        )
        if real is not None:
            runs["real"] = process_granule(ProcessRequest(inputs=[str(real)], out_dir=str(products / "real")))
    truth = next(synthetic.glob("MTHCCAR-TRUTH_*.nc"))
    score = score_against_truth(Path(runs["synthetic"][0]["product"]), truth)
    (out / "score.json").write_text(json.dumps(score, indent=1))
    summary = {"runs": runs, "score": score, "seconds": time.perf_counter() - started}
    print(f"\nMT-HCCAR demo finished in {time.perf_counter() - started:.0f} s")
    for name, outcomes in runs.items():
        for o in outcomes:
            print(f"  {name}: {o['granule']} {o['status']} -> {o.get('product')}")
            if o.get("quicklook"):
                print(f"    quicklook {o['quicklook']}")
    print(f"  score of the synthetic product against its truth ({out / 'score.json'}):")
    print(
        f"    mask accuracy {score['mask_accuracy']:.3f} (cloud fraction {score['cloud_fraction_retrieved']:.2f} "
        f"retrieved vs {score['cloud_fraction_true']:.2f} true), phase accuracy {score['phase_accuracy']:.3f}, "
        f"log10 COT RMSE {score['log10_cot_rmse']:.3f}"
    )
    return summary
