"""Pipeline throughput and peak memory on a full-disk ABI scan (5424 x 5424 at 2 km).

Three measurements, each in its own process so its peak RSS is its own:

* ``inference``: the model alone on in-memory features (as many pixels as the scan's day side);
* ``read``: ingest + ancillary + features computed and reduced, no model;
* ``end_to_end``: ``process_granule`` to a product file.

The scan is written once (``build/bench/abi_full_disk``) with the synthetic writer's quick renderers:
real format, sizes and chunking, plausible radiances and brightness temperatures (C01, C03-C06 and
the thermal C07, C11, C13-C15), processed by the default no-C02 thermal model by day and the night
model beside it. Run: ``python -m tests.bench.bench_pipeline``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from pipeline.sensors import DEFAULT_CHUNK

REPO = Path(__file__).resolve().parents[2]
SCAN = REPO / "build" / "bench" / "abi_full_disk"
BANDS = ["C01", "C03", "C04", "C05", "C06"]
START = dt.datetime(2019, 10, 27, 21, 0, 27)  # local noon under GOES-West


def _peak_rss_mb() -> float:
    """This process's peak RSS since it started.

    ``VmHWM`` rather than ``getrusage``: Linux carries ``ru_maxrss`` over ``execve``, so a child
    spawned by a process that once held a large scan would report its parent's peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux


def prepare() -> Path:
    from models.synthetic.l1b_abi import write_abi_scene

    if not any(SCAN.glob("OR_ABI-L1b-RadF-*C15*.nc")):
        started = time.perf_counter()
        write_abi_scene(SCAN, START, sector="F", platform="G17", bands=BANDS, seed=11, quick=True, thermal=True)
        print(f"wrote the full-disk scan in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return SCAN


def run(mode: str, chunk: int) -> dict[str, float]:
    import dask

    from pipeline.features import mask_retrieved
    from pipeline.granules import single_granule
    from pipeline.process import ProcessOptions, granule_features, process_granule

    model = REPO / "models" / "artifacts" / "mthccar_abi_noc02_ir.pt"
    started = time.perf_counter()
    if mode == "inference":
        import torch

        from models.artifact import load_artifact
        from pipeline.inference import DEFAULT_BATCH

        artifact = load_artifact(model)
        module = artifact.module
        torch.set_num_threads(2)
        batch = DEFAULT_BATCH["cpu"]
        pixels = 4_000_000 // batch * batch
        x = torch.rand(batch, artifact.spec.size)
        with torch.inference_mode():
            started = time.perf_counter()
            for _ in range(pixels // batch):
                module(x)
    elif mode == "read":
        features, _ = granule_features([SCAN], model, chunk_size=chunk)
        quality = features["retrieval_quality"].data
        total = features["features"].data.sum(axis=2)
        with dask.config.set(scheduler="threads"):
            counts, _ = dask.compute(mask_retrieved(quality).sum(), total.sum())
        pixels = int(counts)
    else:
        out = REPO / "build" / "bench" / "products"
        for old in out.glob("*"):
            old.unlink()
        result = process_granule(
            single_granule([SCAN]), ProcessOptions(out_dir=out, model=model, chunk_size=chunk, quicklook=False)
        )
        pixels = int(result.stats["retrieved"])
    seconds = time.perf_counter() - started
    return {
        "mode": mode,
        "pixels": pixels,
        "seconds": seconds,
        "pixels_per_second": pixels / seconds,
        "peak_rss_mb": _peak_rss_mb(),
        "chunk": chunk,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["inference", "read", "end_to_end"])
    parser.add_argument("--chunk", type=int, default=DEFAULT_CHUNK)
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(run(args.mode, args.chunk)))
        return 0
    prepare()
    results = {}
    for mode in ("inference", "read", "end_to_end"):
        out = subprocess.run(
            [sys.executable, "-m", "tests.bench.bench_pipeline", "--mode", mode, "--chunk", str(args.chunk)],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    base = results["inference"]["pixels_per_second"]
    print(f"{'measurement':<12} {'pixels':>12} {'seconds':>8} {'pixels/s':>12} {'vs model':>9} {'peak RSS':>10}")
    for mode, r in results.items():
        print(
            f"{mode:<12} {r['pixels']:>12,} {r['seconds']:>8.1f} {r['pixels_per_second']:>12,.0f} "
            f"{r['pixels_per_second'] / base:>9.3f} {r['peak_rss_mb']:>8.0f} MB"
        )
    e2e, read = results["end_to_end"], results["read"]
    print(
        f"end to end / read-only throughput: {e2e['pixels_per_second'] / read['pixels_per_second']:.2f}; "
        f"peak RSS end to end {e2e['peak_rss_mb'] / 1024:.2f} GB (budget 3 GB) with {args.chunk}-pixel chunks"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
