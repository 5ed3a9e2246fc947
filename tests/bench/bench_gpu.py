"""The pipeline on a CUDA device: model batch sweep, GEMM roofline, end to end on one GPU and on a
``LocalCUDACluster``. Needs a CUDA machine (``mthccar[cuda]`` for the cluster); nothing here runs on CPU.

* ``model``: the default ABI model (``mthccar_abi_ir``) alone on device-resident features, batch
  sizes swept: the network the pipeline runs (``models.runner``, float32 and bfloat16) and the
  artifact itself in float32 and under BF16/FP16 autocast, with each variant's largest output change
  against the artifact in float32 on the same inputs (the accuracy price of the cheaper precision);
* ``matmul``: a float32 GEMM of the model's widest layer shape at the largest batch and an
  8192^3 GEMM (TF32 off), timed in the same process: the model's share of the device's roofline;
* ``end_to_end``: the Meso scene of ``bench_pipeline`` (C02 and thermal bands) processed with
  ``device=cuda`` in this process, then through a ``LocalCUDACluster`` (one worker per GPU).

Every figure is the median of ``--repeats`` runs with its min-max. Run:
``python -m tests.bench.bench_gpu [--repeats 3] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BATCHES = (65_536, 262_144, 1_048_576, 4_194_304)
PRECISIONS = ("float32", "bfloat16", "float16")


def _median(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _timed(function: Any, repeats: int, sync: Any) -> list[float]:
    function()
    sync()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        sync()
        times.append(time.perf_counter() - started)
    return times


def model_sweep(repeats: int, batches: tuple[int, ...] = BATCHES) -> dict[str, Any]:
    import torch

    from models.artifact import load_artifact
    from models.registry import ARTIFACTS
    from models.runner import runner_network

    artifact = load_artifact(ARTIFACTS / "mthccar_abi_ir.pt")
    module = torch.jit.load(str(artifact.path), map_location="cuda").eval()
    parameters = sum(p.numel() for name, p in module.named_parameters() if not name.startswith("recon."))
    # what the pipeline runs (models.runner: heads on cloudy pixels; bfloat16 opt-in)
    runners = {precision: runner_network(artifact, "cuda", precision) for precision in ("float32", "bfloat16")}
    sync = torch.cuda.synchronize
    results: dict[str, Any] = {"parameters": parameters, "model": artifact.name, "runs": []}
    with torch.inference_mode():
        for batch in batches:
            x = torch.rand(batch, artifact.spec.size, device="cuda")
            reference = module(x)
            variants: dict[str, Any] = {f"runner {p}": (lambda x=x, r=r: r(x)) for p, r in runners.items()}
            for precision in PRECISIONS:
                dtype = getattr(torch, precision)

                def forward(dtype: Any = dtype, x: Any = x) -> Any:
                    with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
                        return module(x)

                variants[f"artifact {precision}" + (" autocast" if precision != "float32" else "")] = forward
            for name, forward in variants.items():
                times = [t / batch for t in _timed(forward, repeats, sync)]
                outputs = forward()
                change = max(float((outputs[k].float() - reference[k]).abs().max()) for k in reference)
                rate = 1 / statistics.median(times)
                results["runs"].append(
                    {
                        "batch": batch,
                        "precision": name,
                        "pixels_per_second": rate,
                        "spread_pixels_per_second": [1 / max(times), 1 / min(times)],
                        "gflops": 2 * parameters * rate / 1e9,
                        "largest_output_change": change,
                    }
                )
    return results


def matmul_roofline(repeats: int) -> dict[str, Any]:
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    sync = torch.cuda.synchronize
    shapes = {"widest_layer": (BATCHES[-1], 233, 128), "square": (8192, 8192, 8192)}
    out = {}
    for name, (rows, inner, cols) in shapes.items():
        a = torch.rand(rows, inner, device="cuda")
        b = torch.rand(inner, cols, device="cuda")
        times = _timed(lambda a=a, b=b: torch.mm(a, b), repeats, sync)
        out[name] = {"gflops": _median([2 * rows * inner * cols / t / 1e9 for t in times])}
    return out


def end_to_end(repeats: int) -> dict[str, Any]:
    from flows.parameters import DeviceName, RunSettings, Where
    from flows.runners import dask_for
    from pipeline.granules import single_granule
    from pipeline.process import ProcessOptions, process_granule
    from tests.bench.bench_pipeline import SCENES, prepare

    granule = single_granule([prepare(SCENES["meso"])])
    results: dict[str, Any] = {}
    for where in (Where.threads, Where.cuda_cluster):
        try:
            with dask_for(RunSettings(where=where, device=DeviceName.cuda)) as runtime:
                times = []
                for _ in range(repeats):
                    with tempfile.TemporaryDirectory() as out:
                        options = ProcessOptions(
                            Path(out),
                            device="cuda",
                            torch_threads=runtime.torch_threads,
                            resources=runtime.resources,
                            quicklook=False,
                        )
                        started = time.perf_counter()
                        process_granule(granule, options)
                        times.append(time.perf_counter() - started)
                results[f"{where.value} ({runtime.description})"] = {"seconds": _median(times)}
        except ValueError as err:  # where=cuda_cluster without dask-cuda
            results[where.value] = {"skipped": str(err)}
    return results


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--quick", action="store_true", help="small batches only, no end to end (a smoke run)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device here: run this on a GPU machine", file=sys.stderr)
        return 2
    figures: dict[str, Any] = {"device": torch.cuda.get_device_name(0)}
    figures["model"] = model_sweep(args.repeats, BATCHES[:1] if args.quick else BATCHES)
    figures["matmul"] = matmul_roofline(args.repeats)
    if not args.quick:
        figures["end_to_end"] = end_to_end(args.repeats)
    square = figures["matmul"]["square"]["gflops"]["median"]
    print(f"device: {figures['device']}; float32 GEMM {square:,.0f} GFLOP/s (8192^3, TF32 off)")
    print(f"{'batch':>10} {'variant':>27} {'Mpixels/s':>10} {'GFLOP/s':>9} {'of GEMM':>8} {'max change':>11}")
    for run in figures["model"]["runs"]:
        print(
            f"{run['batch']:>10,} {run['precision']:>27} {run['pixels_per_second'] / 1e6:>10.1f} "
            f"{run['gflops']:>9.0f} {run['gflops'] / square:>8.3f} {run['largest_output_change']:>11.2e}"
        )
    for name, value in figures.get("end_to_end", {}).items():
        print(f"end to end, Meso scene, {name}: {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
