"""Pipeline throughput and peak memory on the path operations run, scene by scene.

Scenes (written once under ``build/bench/<scene>`` by the synthetic writers, real formats and sizes):

* ``meso``: an ABI Meso-1 scan with every band (C02 at 0.5 km, thermal C07, C11, C13-C15), rendered
  by the full simulator with per-pixel noise: the default choice is ``mthccar_abi_ir`` by day and
  ``mthccar_abi_night`` elsewhere;
* ``viirs``: a full VIIRS M-band granule (3232 x 3200, ``mthccar_viirs``);
* ``full_disk``: an ABI full disk without C02 (quick renderers; ``mthccar_abi_noc02_ir`` + night);
* ``full_disk_c02``: the same with C02 at 0.5 km (21,696 x 21,696 pixels, about 1 GB of input and
  tens of minutes on two cores: on demand only, ``--scenes full_disk_c02``).

For each scene, each measurement runs in a process of its own (its peak RSS is its own) and is
repeated (``--repeats``, 3 by default); the table gives the median and the spread (min-max):

* ``model``: the default model alone on the scene's own features (its middle chunk), as the threaded
  pipeline runs it (``models.runner``, one single-threaded forward per core, batches of the
  pipeline's size), in float32 and bfloat16, with a float32 (65536 x 233) @ (233 x 128) matmul timed
  alternately in the same process: the model's GFLOP/s (2 x parameters per pixel) over the matmul's
  is its share of the machine's roofline;
* ``read``: ingest + ancillary + features computed and reduced, no model;
* ``end_to_end``: ``process_granule`` to a product file (no quicklook).

It prints end to end / (read-only + model alone) in time, and for full disks the share of the
10-minute full-disk cadence one scan takes. Run: ``python -m tests.bench.bench_pipeline``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.sensors import DEFAULT_CHUNK

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "build" / "bench"
START = dt.datetime(2019, 10, 27, 21, 0, 27)  # local noon under GOES-West
NO_C02 = ["C01", "C03", "C04", "C05", "C06"]
ALL_SOLAR = ["C01", "C02", "C03", "C04", "C05", "C06"]
MATMUL = (65_536, 233, 128)
CADENCE_S = {"full_disk": 600.0, "full_disk_c02": 600.0}  # ABI mode 6: a full disk every 10 minutes


def _write_abi(target: Path, sector: str, bands: list[str], quick: bool) -> None:
    from models.synthetic.l1b_abi import write_abi_scene

    write_abi_scene(target, START, sector=sector, platform="G17", bands=bands, seed=11, quick=quick, thermal=True)


def _write_viirs(target: Path) -> None:
    from models.synthetic.l1b_viirs import write_viirs_granule

    write_viirs_granule(target, START, seed=11)


@dataclass(frozen=True)
class Scene:
    name: str
    write: Callable[[Path], None]
    marker: str  # a file name pattern present once the scene is complete


SCENES = {
    scene.name: scene
    for scene in (
        Scene("meso", lambda p: _write_abi(p, "M1", ALL_SOLAR, quick=False), "MTHCCAR-TRUTH_*.nc"),
        Scene("viirs", _write_viirs, "MTHCCAR-TRUTH_*.nc"),
        Scene("full_disk", lambda p: _write_abi(p, "F", NO_C02, quick=True), "OR_ABI-L1b-RadF-*C15*.nc"),
        Scene("full_disk_c02", lambda p: _write_abi(p, "F", ALL_SOLAR, quick=True), "OR_ABI-L1b-RadF-*C15*.nc"),
    )
}
DEFAULT_SCENES = ("meso", "viirs", "full_disk")


def _peak_rss_mb() -> float:
    """This process's peak RSS since it started.

    ``VmHWM`` rather than ``getrusage``: Linux carries ``ru_maxrss`` over ``execve``, so a child
    spawned by a process that once held a large scan would report its parent's peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux


def prepare(scene: Scene) -> Path:
    target = BENCH / scene.name
    if not any(target.glob(scene.marker)):
        started = time.perf_counter()
        scene.write(target)
        print(f"wrote {scene.name} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return target


def _scene_pixels(scan: Path, path: Path, chunk: int) -> Any:
    """Scaled features of the retrieved pixels of the scene's middle chunk: the model's real inputs
    (its cloudy share sets how much of the heads runs)."""
    import numpy as np

    from pipeline.features import mask_retrieved
    from pipeline.process import granule_features

    features, _ = granule_features([scan], path, chunk_size=chunk)
    blocks = features["features"].data.numblocks
    middle = (blocks[0] // 2, blocks[1] // 2)
    x = np.asarray(features["features"].data.blocks[middle[0], middle[1], 0].compute())
    quality = np.asarray(features["retrieval_quality"].data.blocks[middle].compute())
    flat = x.reshape(-1, x.shape[-1])
    keep = mask_retrieved(quality.reshape(-1)) & np.isfinite(flat).all(axis=1)
    return flat[keep].astype(np.float32)


def _model_alone(path: Path, pixels_in: Any) -> dict[str, float]:
    """The model alone as the threaded pipeline runs it (one single-threaded forward per core at a
    time, through ``models.runner``), in float32 and bfloat16, alternating with the reference matmul
    (all cores) so that all see the same machine state."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import torch

    from models.artifact import load_artifact
    from models.runner import build_runner
    from pipeline.inference import DEFAULT_BATCH

    artifact = load_artifact(path)
    runners = {precision: build_runner(artifact, precision=precision) for precision in ("float32", "bfloat16")}
    cores = os.cpu_count() or 1
    batch = DEFAULT_BATCH["cpu"]
    rng = np.random.default_rng(0)
    inputs = [torch.from_numpy(pixels_in[rng.integers(0, len(pixels_in), batch)]) for _ in range(cores)]
    rows, inner, cols = MATMUL
    a, b = torch.rand(rows, inner), torch.rand(inner, cols)
    parameters = sum(p.numel() for name, p in artifact.module.named_parameters() if not name.startswith("recon."))

    def forwards(module: Any, x: torch.Tensor) -> None:
        with torch.inference_mode():
            for _ in range(30):
                module(x)

    seconds = dict.fromkeys(runners, 0.0)
    matmul_s, pixels = 0.0, 0
    with ThreadPoolExecutor(cores) as pool, torch.inference_mode():
        for module in runners.values():
            module(inputs[0])
        for _ in range(6):
            torch.set_num_threads(1)  # as pipeline.inference sets it on threaded workers
            for precision, module in runners.items():
                started = time.perf_counter()
                list(pool.map(lambda x, m=module: forwards(m, x), inputs))
                seconds[precision] += time.perf_counter() - started
            pixels += 30 * batch * cores
            torch.set_num_threads(cores)
            started = time.perf_counter()
            for _ in range(10):
                torch.mm(a, b)
            matmul_s += time.perf_counter() - started
    matmul_gflops = 2 * rows * inner * cols * 60 / matmul_s / 1e9
    model_gflops = 2 * parameters * pixels / seconds["float32"] / 1e9
    bf16_gflops = 2 * parameters * pixels / seconds["bfloat16"] / 1e9
    return {
        "pixels": pixels,
        "seconds": seconds["float32"],
        "bf16_seconds": seconds["bfloat16"],
        "model_gflops": model_gflops,
        "matmul_gflops": matmul_gflops,
        "roofline_share": model_gflops / matmul_gflops,
        "bf16_roofline_share": bf16_gflops / matmul_gflops,
        "cloudy_share": float(np.mean(artifact.module(inputs[0])["cloud_mask_probability"].detach().numpy() > 0.5)),
    }


def run(scene_name: str, mode: str, chunk: int) -> dict[str, Any]:
    import dask

    from pipeline.features import mask_retrieved
    from pipeline.granules import single_granule
    from pipeline.process import ProcessOptions, choose_artifact, granule_features, process_granule

    scan = BENCH / scene_name
    granule = single_granule([scan])
    model = choose_artifact(granule, None).path
    started = time.perf_counter()
    result: dict[str, Any] = {"model_name": model.stem}
    if mode == "model":
        result.update(_model_alone(model, _scene_pixels(scan, model, chunk)))
    elif mode == "read":
        features, _ = granule_features([scan], model, chunk_size=chunk)
        quality = features["retrieval_quality"].data
        total = features["features"].data.sum(axis=2)
        with dask.config.set(scheduler="threads"):
            counts, _ = dask.compute(mask_retrieved(quality).sum(), total.sum())
        result.update(pixels=int(counts), seconds=time.perf_counter() - started)
    else:
        out = BENCH / "products"
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("*"):
            old.unlink()
        done = process_granule(granule, ProcessOptions(out_dir=out, chunk_size=chunk, quicklook=False))
        result.update(pixels=int(done.stats["retrieved"]), seconds=time.perf_counter() - started)
    result.update(peak_rss_mb=_peak_rss_mb(), input_mb=sum(p.stat().st_size for p in scan.glob("*.nc")) / 1e6)
    return result


def _measure(scene: str, mode: str, chunk: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "tests.bench.bench_pipeline", "--scene", scene, "--mode", mode]
    out = subprocess.run([*command, "--chunk", str(chunk)], cwd=REPO, capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _spread(values: list[float], fmt: str) -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def report(scene: str, runs: dict[str, list[dict[str, Any]]]) -> None:
    model, e2e = runs["model"], runs["end_to_end"]
    seconds = {mode: [float(r["seconds"]) for r in rs] for mode, rs in runs.items()}
    model_rate = statistics.median(float(r["pixels"]) / float(r["seconds"]) for r in model)
    pixels = int(e2e[0]["pixels"])
    print(
        f"-- {scene}: {pixels:,} pixels retrieved, {float(e2e[0]['input_mb']):.0f} MB of input, "
        f"model {e2e[0]['model_name']}, {len(e2e)} runs each: median (min-max)"
    )
    print(f"   {'measurement':<11} {'seconds':>22} {'pixels/s':>12} {'peak RSS MB':>22}")
    for mode, rs in runs.items():
        rates = [float(r["pixels"]) / float(r["seconds"]) for r in rs]
        rss = [float(r["peak_rss_mb"]) for r in rs]
        print(
            f"   {mode:<11} {_spread(seconds[mode], '8.1f'):>22} {statistics.median(rates):>12,.0f} "
            f"{_spread(rss, '6.0f'):>22}"
        )
    share = [float(r["roofline_share"]) for r in model]
    print(
        f"   model / matmul roofline: {_spread(share, '.2f')} "
        f"(model {statistics.median(float(r['model_gflops']) for r in model):.1f} GFLOP/s, matmul "
        f"{statistics.median(float(r['matmul_gflops']) for r in model):.1f} GFLOP/s) on inputs "
        f"{statistics.median(float(r['cloudy_share']) for r in model):.0%} cloudy"
    )
    bf16 = [float(r["bf16_roofline_share"]) for r in model]
    speedup = [float(r["seconds"]) / float(r["bf16_seconds"]) for r in model]
    print(f"   bfloat16 (opt-in): {_spread(bf16, '.2f')} of the float32 roofline, {_spread(speedup, '.2f')} x float32")
    expected = statistics.median(seconds["read"]) + pixels / model_rate
    print(
        f"   end to end / (read-only + model alone) in time: {statistics.median(seconds['end_to_end']) / expected:.2f}"
    )
    if scene in CADENCE_S:
        print(
            f"   one scan takes {statistics.median(seconds['end_to_end']) / CADENCE_S[scene]:.0%} of the "
            f"{CADENCE_S[scene] / 60:.0f}-minute full-disk cadence"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", default=",".join(DEFAULT_SCENES), help=f"of {', '.join(SCENES)}")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=DEFAULT_CHUNK)
    parser.add_argument("--scene", choices=list(SCENES), help=argparse.SUPPRESS)  # one measurement
    parser.add_argument("--mode", choices=["model", "read", "end_to_end"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mode:
        print(json.dumps(run(args.scene, args.mode, args.chunk)))
        return 0
    for name in args.scenes.split(","):
        prepare(SCENES[name])
        runs: dict[str, list[dict[str, Any]]] = {"model": [], "read": [], "end_to_end": []}
        for _ in range(args.repeats):  # interleaved, so slow drifts of the machine hit every mode alike
            for mode in runs:
                runs[mode].append(_measure(name, mode, args.chunk))
        report(name, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
