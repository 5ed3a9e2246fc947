"""Simulator speed and memory against the issue's budgets, with ratios measured in the same run.

* 100k samples x 20 bands: with and without the DISORT correction, 1 and 2 processes
  (budget: well under a minute on 2 cores);
* 250k OCI samples through ``simulate_dataset`` in a child process: time and peak RSS
  (budget: 8 GB).

Run: ``python -m tests.bench.bench_simulator``.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

SAMPLES, BANDS = 100_000, 20


def _bands():
    from models.bands import ABI_BANDS, VIIRS_I_BANDS, VIIRS_M_BANDS

    return (VIIRS_M_BANDS + VIIRS_I_BANDS + ABI_BANDS)[:BANDS]


def _part(args: tuple[int, int, bool]) -> int:
    from models.training.simulate.dataset import sample_state, simulate_bands

    seed, n, correction = args
    simulate_bands(_bands(), sample_state(n, np.random.default_rng(seed)), correction)
    return n


def timed(processes: int, correction: bool) -> float:
    parts = [(i, SAMPLES // (processes * 4), correction) for i in range(processes * 4)]
    started = time.perf_counter()
    with ProcessPoolExecutor(processes) as pool:
        list(pool.map(_part, parts))
    return time.perf_counter() - started


def oci_child(out: str) -> None:
    from models.training.simulate.dataset import simulate_dataset

    started = time.perf_counter()
    simulate_dataset(out, "oci", 250_000, seed=1)
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - started,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "children_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            }
        )
    )


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--oci-child":
        oci_child(sys.argv[2])
        return 0
    rows = {(p, c): timed(p, c) for p in (1, 2) for c in (True, False)}
    base = rows[(1, True)]
    print(f"{SAMPLES:,} samples x {BANDS} bands")
    for (processes, correction), seconds in rows.items():
        print(
            f"  {processes} process(es), correction {'on ' if correction else 'off'}: {seconds:6.1f} s "
            f"({SAMPLES * BANDS / seconds:,.0f} sample-bands/s, speed-up {base / seconds:.2f})"
        )
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [sys.executable, "-m", "tests.bench.bench_simulator", "--oci-child", str(Path(tmp) / "oci.nc")],
            capture_output=True,
            text=True,
            check=True,
        )
        oci = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"250,000 OCI samples x 223 bands: {oci['seconds']:.0f} s, peak RSS {oci['peak_rss_mb']:.0f} MB "
        f"(writer) / {oci['children_peak_rss_mb']:.0f} MB (largest worker); budget 8 GB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
