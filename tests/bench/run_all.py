"""Every benchmark, one after the other (``make bench``)."""

from __future__ import annotations

import sys

from tests.bench import bench_geometry, bench_pipeline, bench_simulator

if __name__ == "__main__":
    print("== simulator ==")
    bench_simulator.main()
    print("== geometry of a CONUS scan (satpy every scan vs the grid cache) ==")
    bench_geometry.main()
    print("== pipeline (Meso with C02 and IR, VIIRS, full-disk ABI) ==")
    sys.argv = sys.argv[:1]
    sys.exit(bench_pipeline.main())
