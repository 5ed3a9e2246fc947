"""Reading a geostationary scan's geometry: satpy's angles every scan against the grid cache.

A synthetic CONUS scan with C05 at 1 km (3000 x 5000 pixels, real ABI L1b format) is read three
times each way, alternating, after one run that builds the cache; the script prints the medians,
the spread and their ratio (``python -m tests.bench.bench_geometry``).
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import tempfile
import time
from pathlib import Path

ANGLES = ["solar_zenith_angle", "sensor_zenith_angle", "relative_azimuth_angle", "latitude", "longitude"]
REPEATS = 3


def _read(granule, cache: str) -> float:
    from pipeline.ingest import ingest

    os.environ["MTHCCAR_GEOMETRY_CACHE"] = cache
    started = time.perf_counter()
    ingest(granule, ["C05"])[ANGLES].compute()
    return time.perf_counter() - started


def main() -> None:
    from models.synthetic.l1b_abi import write_abi_scene
    from pipeline.granules import single_granule

    with tempfile.TemporaryDirectory() as tmp:
        scan, cache = Path(tmp) / "scan", str(Path(tmp) / "cache")
        write_abi_scene(scan, dt.datetime(2019, 10, 27, 20, 1, 17), "C", "G17", ["C05"], seed=3, quick=True)
        granule = single_granule([scan])
        build = _read(granule, cache)
        times: dict[str, list[float]] = {"satpy every scan": [], "cached grid": []}
        for _ in range(REPEATS):
            times["satpy every scan"].append(_read(granule, "off"))
            times["cached grid"].append(_read(granule, cache))
    print(f"first scan, building the cache: {build:.2f} s")
    for name, values in times.items():
        print(f"{name}: median {statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f})")
    ratio = statistics.median(times["cached grid"]) / statistics.median(times["satpy every scan"])
    print(f"ratio cached / satpy: {ratio:.2f}")


if __name__ == "__main__":
    main()
