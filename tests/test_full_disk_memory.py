"""A full-disk ABI scan (5424 x 5424 at 2 km) processes end to end within the 3 GB memory budget.

Slow (a few minutes on 2 cores, plus writing the scan once under ``build/bench``): ``make test-slow``.
The peak is measured in a fresh process by the benchmark script, so it is the pipeline's own.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.bench import bench_pipeline

BUDGET_MB = 3 * 1024


@pytest.mark.slow
def test_full_disk_end_to_end_peak_rss_under_budget() -> None:
    bench_pipeline.prepare(bench_pipeline.SCENES["full_disk"])
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench.bench_pipeline", "--scene", "full_disk", "--mode", "end_to_end"],
        cwd=bench_pipeline.REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=540,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["pixels"] > 20_000_000  # the disk was retrieved, by day and by the night model
    assert result["peak_rss_mb"] < BUDGET_MB, f"peak RSS {result['peak_rss_mb']:.0f} MB"
