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

* ``model``: the default model alone on the scene's own features (pixels sampled from a 3 x 3
  lattice of chunks across the scene, so with its mix of clear and cloudy), as the threaded
  pipeline runs it (``models.runner``, one single-threaded forward per core, batches of the
  pipeline's size), in float32 and bfloat16, with a float32 (65536 x 233) @ (233 x 128) matmul timed
  alternately in the same process: the model's GFLOP/s (2 x parameters per pixel) over the matmul's
  is its share of the machine's roofline. Where the scene has night pixels, the night model is timed
  the same way on its own (float32);
* ``read``: ingest + ancillary + the day and night models' features computed and reduced, no model
  (``pipeline.process.granule_feature_sets``, what a product reads);
* ``end_to_end``: ``process_granule`` to a product file (no quicklook).

It prints end to end / (read-only + model alone) in time, the model's time being each model's rate
applied to the pixels it retrieved end to end; where the difference goes, timed task by task
(task-seconds of the model, the reads and the compressing store end to end, against read-only's and
the model alone's; time outside tasks); and for full disks the share of the 10-minute full-disk
cadence one scan takes. Run: ``python -m tests.bench.bench_pipeline``.
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

from dask.callbacks import Callback

from pipeline.sensors import DEFAULT_CHUNK

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "build" / "bench"
START = dt.datetime(2019, 10, 27, 21, 0, 27)  # local noon under GOES-West
NO_C02 = ["C01", "C03", "C04", "C05", "C06"]
ALL_SOLAR = ["C01", "C02", "C03", "C04", "C05", "C06"]
MATMUL = (65_536, 233, 128)
CADENCE_S = {"full_disk": 600.0, "full_disk_c02": 600.0}  # ABI mode 6: a full disk every 10 minutes
# What a computation's dask tasks do, by their key's name (dask.utils.key_split): the model's tasks
# (pipeline.inference, fused with the features they take), and dask.array.store's, which compress
# their chunk (pipeline.chunk_sink) and write it; every other task reads, calibrates or reduces.
TASK_KINDS = {"mthccar-infer": "model", "store-map": "store", "getitem-store-map": "store"}


class TaskClock(Callback):
    """(key, start, end) of every task the local schedulers run while it is active. Unlike dask's
    ``Profiler`` it keeps neither the graphs nor the tasks, so it holds no memory of theirs and
    leaves a run's peak RSS its own."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[Any, float, float]] = []
        self._started: dict[Any, float] = {}

    def _pretask(self, key: Any, dsk: Any, state: Any) -> None:
        self._started[key] = time.perf_counter()

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        self.records.append((key, self._started.pop(key), time.perf_counter()))


def task_seconds(records: list[tuple[Any, float, float]]) -> dict[str, float]:
    """Seconds spent in tasks of each kind (``TASK_KINDS``, else "read") over (key, start, end)
    records of one run, and ``span``, from the first task's start to the last one's end."""
    from dask.utils import key_split

    spent = {"model": 0.0, "store": 0.0, "read": 0.0}
    for key, start, end in records:
        spent[TASK_KINDS.get(key_split(key), "read")] += end - start
    spent["span"] = max(end for _, _, end in records) - min(start for _, start, _ in records) if records else 0.0
    return spent


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


LATTICE = 3  # chunks sampled for the model-alone inputs: a LATTICE x LATTICE grid across the scene
SAMPLE_PER_CHUNK = 40_000


def _feature_sets(granule: Any, day: Any, chunk: int) -> list[tuple[Any, Any]]:
    """(model, its lazy features) for the day model and, where the granule has one, the night
    model, as a product reads them."""
    from pipeline.process import ProcessOptions, granule_feature_sets, night_partner

    night = night_partner(granule, day)
    options = ProcessOptions(out_dir=BENCH / "products", chunk_size=chunk)
    _, features, night_features = granule_feature_sets(granule, day, options, night)
    return [(day, features)] if night is None else [(day, features), (night, night_features)]


def _sampled_inputs(sets: list[tuple[Any, Any]]) -> list[Any]:
    """Scaled features of the pixels each model retrieves (one array per feature set), from a
    lattice of chunks spread over the scene, so with the scene's mix of clear and cloudy, land and
    sea (the cloudy share sets how much of the heads runs)."""
    import dask
    import numpy as np

    from pipeline.features import mask_retrieved
    from pipeline.process import night_pixels

    blocks = sets[0][1]["features"].data.numblocks
    rows = {(2 * i + 1) * blocks[0] // (2 * LATTICE) for i in range(LATTICE)}
    cols = {(2 * j + 1) * blocks[1] // (2 * LATTICE) for j in range(LATTICE)}
    lazy = [
        [(f["features"].data.blocks[i, j, 0], f["retrieval_quality"].data.blocks[i, j]) for _, f in sets]
        for i in sorted(rows)
        for j in sorted(cols)
    ]
    with dask.config.set(scheduler="threads"):
        (computed,) = dask.compute(lazy)
    rng = np.random.default_rng(0)
    parts: list[list[Any]] = [[] for _ in sets]
    for (day_x, day_quality), *night in computed:
        chosen = [(day_x, mask_retrieved(day_quality))]
        chosen += [(night_x, night_pixels(day_quality, night_quality)) for night_x, night_quality in night]
        for kept_parts, (x, keep) in zip(parts, chosen, strict=True):
            flat = np.asarray(x).reshape(-1, x.shape[-1])
            kept = np.flatnonzero(keep.reshape(-1) & np.isfinite(flat).all(axis=1))
            if len(kept) > SAMPLE_PER_CHUNK:
                kept = rng.choice(kept, SAMPLE_PER_CHUNK, replace=False)
            kept_parts.append(flat[kept].astype(np.float32))
    return [np.concatenate(p) for p in parts]


def _model_alone(artifact: Any, pixels_in: Any, precisions: tuple[str, ...]) -> dict[str, Any]:
    """The model alone as the threaded pipeline runs it (one single-threaded forward per core at a
    time, through ``models.runner``), in each precision, alternating with the reference matmul
    (all cores) so that all see the same machine state."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import torch

    from models.runner import build_runner
    from pipeline.inference import DEFAULT_BATCH

    runners = {precision: build_runner(artifact, precision=precision) for precision in precisions}
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
    result: dict[str, Any] = {
        "model_name": artifact.path.stem,
        "pixels": pixels,
        "matmul_gflops": matmul_gflops,
        "sample_pixels": len(pixels_in),
        "cloudy_share": float(np.mean(artifact.module(inputs[0])["cloud_mask_probability"].detach().numpy() > 0.5)),
    }
    for precision, spent in seconds.items():
        key = "" if precision == "float32" else "bf16_"
        result[f"{key}seconds"] = spent
        result[f"{key}roofline_share"] = 2 * parameters * pixels / spent / 1e9 / matmul_gflops
    result["model_gflops"] = 2 * parameters * pixels / seconds["float32"] / 1e9
    return result


def run(scene_name: str, mode: str, chunk: int) -> dict[str, Any]:
    import dask

    from pipeline.features import NIGHT_RETRIEVED, mask_retrieved
    from pipeline.granules import single_granule
    from pipeline.process import ProcessOptions, choose_artifact, process_granule

    scan = BENCH / scene_name
    granule = single_granule([scan])
    day = choose_artifact(granule, None)
    started = time.perf_counter()
    result: dict[str, Any] = {"model_name": day.path.stem}
    if mode == "model":
        from models.runner import cpu_has_native_bfloat16

        sets = _feature_sets(granule, day, chunk)
        day_in, *night_in = _sampled_inputs(sets)
        if not len(day_in):
            raise SystemExit(f"{scene_name}: no daylit pixels in the sampled chunks; benchmark scenes are day scans")
        # emulated bfloat16 runs about 9x slower than float32 and would take minutes per run for nothing
        result.update(_model_alone(day, day_in, ("float32", "bfloat16") if cpu_has_native_bfloat16() else ("float32",)))
        if night_in and len(night_in[0]):
            result["night"] = _model_alone(sets[1][0], night_in[0], ("float32",))
    elif mode == "read":
        with TaskClock() as tasks:
            sets = _feature_sets(granule, day, chunk)
            totals = [f["features"].data.sum(axis=2).sum() for _, f in sets]
            with dask.config.set(scheduler="threads"):
                counts, *_ = dask.compute(mask_retrieved(sets[0][1]["retrieval_quality"].data).sum(), *totals)
        result.update(pixels=int(counts), seconds=time.perf_counter() - started)
    else:
        out = BENCH / "products"
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("*"):
            old.unlink()
        with TaskClock() as tasks:
            done = process_granule(granule, ProcessOptions(out_dir=out, chunk_size=chunk, quicklook=False))
        night_count = int(done.stats["quality_counts"][NIGHT_RETRIEVED])
        result.update(
            pixels=int(done.stats["retrieved"]), night_pixels=night_count, seconds=time.perf_counter() - started
        )
    if mode != "model":
        result["task_seconds"] = task_seconds(tasks.records)
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
    bf16 = [float(r["bf16_roofline_share"]) for r in model if "bf16_seconds" in r]
    speedup = [float(r["seconds"]) / float(r["bf16_seconds"]) for r in model if "bf16_seconds" in r]
    if bf16:
        print(
            f"   bfloat16 (opt-in): {_spread(bf16, '.2f')} of the float32 roofline, {_spread(speedup, '.2f')} x float32"
        )
    else:
        print("   bfloat16 (opt-in): not timed, this CPU has no native bfloat16 arithmetic")
    night_pixels = int(e2e[0].get("night_pixels", 0))
    model_s = (pixels - night_pixels) / model_rate
    nights = [r["night"] for r in model if "night" in r]
    if night_pixels and nights:
        night_rate = statistics.median(float(r["pixels"]) / float(r["seconds"]) for r in nights)
        model_s += night_pixels / night_rate
        print(
            f"   night model {nights[0]['model_name']} alone: {night_rate:,.0f} pixels/s on inputs "
            f"{statistics.median(float(r['cloudy_share']) for r in nights):.0%} cloudy, for "
            f"{night_pixels:,} of the pixels"
        )
    elif night_pixels:
        print(f"   {night_pixels:,} night pixels but none in the sampled chunks: timed at the day model's rate")
        model_s += night_pixels / model_rate
    expected = statistics.median(seconds["read"]) + model_s
    print(
        f"   model alone over the scene's pixels {model_s:.1f} s; end to end / (read-only + model alone) "
        f"in time: {statistics.median(seconds['end_to_end']) / expected:.2f}"
    )
    _print_task_breakdown(runs, model_s)
    if scene in CADENCE_S:
        print(
            f"   one scan takes {statistics.median(seconds['end_to_end']) / CADENCE_S[scene]:.0%} of the "
            f"{CADENCE_S[scene] / 60:.0f}-minute full-disk cadence"
        )


def _print_task_breakdown(runs: dict[str, list[dict[str, Any]]], model_s: float) -> None:
    """Where end to end spends more than read-only and the model alone: the task-seconds of each
    (medians), the model alone's wall time on every core counted as its task-seconds."""
    import os

    def median(mode: str, kind: str) -> float:
        return statistics.median(float(r["task_seconds"][kind]) for r in runs[mode])

    cores = os.cpu_count() or 1
    e2e = {kind: median("end_to_end", kind) for kind in ("model", "read", "store", "span")}
    e2e_tasks = e2e["model"] + e2e["read"] + e2e["store"]
    read_tasks = median("read", "read") + median("read", "model") + median("read", "store")
    outside = {
        mode: statistics.median(float(r["seconds"]) for r in runs[mode]) - median(mode, "span")
        for mode in ("end_to_end", "read")
    }
    print(
        f"   end to end ran {e2e_tasks:.1f} task-s ({e2e_tasks / max(e2e['span'], 1e-9) / cores:.0%} of {cores} cores "
        f"while tasks ran): model with its features {e2e['model']:.1f}, reads {e2e['read']:.1f}, compression and "
        f"store {e2e['store']:.1f}; read-only {read_tasks:.1f} + model alone {model_s * cores:.1f} = "
        f"{read_tasks + model_s * cores:.1f}. Outside tasks: {outside['end_to_end']:.1f} s end to end, "
        f"{outside['read']:.1f} s read-only"
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
