"""Inference and products: real ABI granules, synthetic scenes with truth, schedulers, atomic writes."""

from __future__ import annotations

import glob
import os
import shutil
import warnings
from pathlib import Path

import dask
import dask.array as da
import netCDF4
import numpy as np
import pytest
import torch
import xarray as xr
from typer.testing import CliRunner

from models.artifact import ArtifactError
from models.registry import ARTIFACTS, default_artifacts
from pipeline import inference
from pipeline.cli import app
from pipeline.features import GOOD, NIGHT
from pipeline.granules import single_granule
from pipeline.process import ProcessOptions, granule_features, process_granule
from pipeline.product import ProductExistsError
from pipeline.runtime import dask_runtime
from tests.support.compliance import compliance_issues

NO_C02_MODEL = ARTIFACTS / "mthccar_abi_noc02.pt"
NO_C02_BANDS = ("C01", "C03", "C04", "C05", "C06")


@pytest.fixture(scope="module")
def day(granules: Path) -> Path:
    return granules / "abi" / "g17_meso1_20191027T2000_day"


@pytest.fixture(scope="module")
def day_product(day: Path, tmp_path_factory: pytest.TempPathFactory):
    """The real daytime granule through the shipped no-C02 thermal model, as the CLI would pick it."""
    out = tmp_path_factory.mktemp("day_product")
    result = process_granule(single_granule([day], sensor="abi"), ProcessOptions(out_dir=out))
    return result


def test_day_product_uses_the_no_c02_thermal_model_and_finds_cloud_and_clear(day_product) -> None:
    assert day_product.model == "mthccar_abi_noc02_ir"
    # the scan's start and its nominal end (a mesoscale slot is 1 min), whatever band files end when
    assert day_product.product.name.startswith("MTHCCAR-L2-CLD_G17_abi_M1_s20191027T200027_e20191027T200127_c")
    assert day_product.product.name.endswith("_v2.7.0.nc")
    stats = day_product.stats
    # all but a handful of pixels that one thermal band's quality flags mark out of range (code 3)
    assert 249_900 <= stats["retrieved"] <= 250_000
    fraction = stats["cloudy"] / stats["retrieved"]
    assert 0.05 < fraction < 0.95  # marine stratocumulus and clear land are both in the scene
    assert day_product.quicklook.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_four_level_mask_and_cot_uncertainty_follow_the_probabilities(day_product) -> None:
    with xr.open_dataset(day_product.product, mask_and_scale=False) as ds:
        p = ds["cloud_mask_probability"].values
        levels = ds["cloud_mask_4level"].values
        mask = ds["cloud_mask"].values
        cot = np.where(ds["cloud_optical_thickness"].values == -999, np.nan, ds["cloud_optical_thickness"].values)
        sigma = ds["cloud_optical_thickness_uncertainty"].values
        sigma = np.where(sigma == -999, np.nan, sigma)
        assert ds["cloud_mask_4level"].attrs["flag_meanings"] == "clear probably_clear probably_cloudy cloudy"
    retrieved = mask != 255
    expected = (p >= 0.1).astype(int) + (p >= 0.5) + (p >= 0.9)
    np.testing.assert_array_equal(levels[retrieved], expected[retrieved])
    assert (levels[~retrieved] == 255).all()
    np.testing.assert_array_equal(levels[retrieved] >= 2, mask[retrieved] == 1)  # the binary mask is the middle split
    assert set(np.unique(levels[retrieved])) == {0, 1, 2, 3}
    with_cot = np.isfinite(cot)
    np.testing.assert_array_equal(np.isfinite(sigma), with_cot)
    assert with_cot.sum() > 1000
    assert (sigma[with_cot] > 0.01).all()
    assert np.median(sigma[with_cot]) < 0.5


def test_the_real_abi_scene_on_the_conus_grid(day_product) -> None:
    from pyproj import Proj
    from satpy import Scene

    from pipeline.gridded import grid_product, resolve_area

    gridded = grid_product(day_product.product, resolve_area("conus"))
    with xr.open_dataset(gridded) as grid, xr.open_dataset(day_product.product) as native:
        filled = np.isfinite(grid["cloud_mask"].values)
        lat, lon = grid["latitude"].values[filled], grid["longitude"].values[filled]
        # a map counts area, a scan counts pixels: weigh each native pixel by its footprint (the fixed
        # grid's pixels shrink towards the sub-satellite point, where this scene is cloudiest)
        native_lat, native_lon = native["latitude"].values, native["longitude"].values
        dlon_dy, dlon_dx = np.gradient(native_lon)
        dlat_dy, dlat_dx = np.gradient(native_lat)
        area = np.abs(dlon_dx * dlat_dy - dlon_dy * dlat_dx) * np.cos(np.deg2rad(native_lat))
        # and only the pixels inside the CONUS grid (it cuts off the scene's south-western ocean)
        conus = resolve_area("conus")
        x, y = Proj(conus.crs)(np.nan_to_num(native_lon), np.nan_to_num(native_lat))
        xmin, ymin, xmax, ymax = conus.area_extent
        inside = (x > xmin) & (x < xmax) & (y > ymin) & (y < ymax)
        retrieved = np.isfinite(native["cloud_mask"].values) & np.isfinite(area) & inside
        cloudy = native["cloud_mask"].values == 1
        native_fraction = float(area[retrieved & cloudy].sum() / area[retrieved].sum())
        grid_fraction = float((grid["cloud_mask"].values[filled] == 1).mean())
        assert grid.attrs["area_id"] == "conus"
    # the Meso-1 sector over California and Nevada
    assert lat.min() > 30
    assert lat.max() < 46
    assert lon.min() > -128
    assert lon.max() < -108
    assert grid_fraction == pytest.approx(native_fraction, abs=0.02)
    assert compliance_issues(gridded)["high"] == []
    with warnings.catch_warnings():  # satpy opens the gridded file on its own area
        warnings.simplefilter("ignore", UserWarning)
        scene = Scene(reader="satpy_cf_nc", filenames=[str(gridded)])
        scene.load(["cloud_mask"])
    assert scene["cloud_mask"].attrs["area"].shape == (1100, 1700)


def test_day_product_passes_the_compliance_checker(day_product) -> None:
    issues = compliance_issues(day_product.product)
    assert issues["high"] == []
    assert issues["medium"] == []


def test_the_product_file_is_its_schema(day_product) -> None:
    """Every variable of pipeline/etc/product.yaml is in the file with its dtype and attributes, nothing
    else is, and the file's name parses with the reader pattern generated from the same schema."""
    import trollsift

    from pipeline import schema

    with xr.open_dataset(day_product.product, mask_and_scale=False, decode_times=False) as ds:
        two_d = {str(name) for name, var in ds.data_vars.items() if var.dims == ("y", "x")}
        assert two_d == set(schema.variable_names())
        for name in schema.variable_names():
            var = ds[name]
            assert var.dtype == schema.variable_dtype(name), name
            assert var.attrs["_FillValue"] == schema.fill_value(var.dtype), name
            for key, expected in schema.schema()["variables"][name]["attrs"].items():
                if "{" not in str(expected):  # placeholders are filled per product
                    np.testing.assert_array_equal(var.attrs[key], expected, err_msg=f"{name}.{key}")
        texts = [v for attrs in [ds.attrs, *(var.attrs for var in ds.variables.values())] for v in attrs.values()]
        assert not [text for text in texts if isinstance(text, str) and "{" in text]  # every placeholder filled
        for key, expected in schema.global_attributes().items():
            assert ds.attrs[key] == expected, key
    fields = trollsift.parse(schema.reader_patterns()[1], day_product.product.name)
    assert (fields["platform_shortname"], fields["sector"], fields["model_version"]) == ("G17", "M1", "2.7.0")
    assert schema.READER_FILE.read_text() == schema.reader_config(), "run python -m pipeline.schema --write-reader"


def test_day_product_opens_in_xarray_cf_xarray_and_satpy(day_product) -> None:
    import cf_xarray  # noqa: F401  (registers the .cf accessor)

    with xr.open_dataset(day_product.product) as ds:
        assert ds["cloud_mask"].shape == (500, 500)
        assert ds.attrs["Conventions"] == "CF-1.10, ACDD-1.3"
        liquid = int((ds["cloud_phase"].cf == "liquid").sum())
        ice = int((ds["cloud_phase"].cf == "ice").sum())
        cloudy = int((ds["cloud_mask"].cf == "cloudy").sum())
        assert liquid + ice == cloudy > 0
        cot = ds["cloud_optical_thickness"].values
        assert np.all(np.isnan(cot[ds["cloud_mask"].values == 0]))
        assert np.nanmin(cot) >= 0
        assert np.nanmax(cot) <= 400
    from satpy import Scene

    # no configuration: the package's satpy.readers entry point adds the product file names
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        scene = Scene(reader="satpy_cf_nc", filenames=[str(day_product.product)])
        scene.load(["cloud_mask", "cloud_optical_thickness"])
    area = scene["cloud_mask"].attrs["area"]
    assert area.shape == (500, 500)
    np.testing.assert_allclose(area.area_extent, (881767.6067, 3126266.9693, 1883776.2507, 4128275.6133), atol=1)


def test_product_records_provenance(day_product, day: Path) -> None:
    with xr.open_dataset(day_product.product) as ds:
        # the files the model read: its ten band files (five solar, five thermal), not every file of the scan
        bands = (*NO_C02_BANDS, "C07", "C11", "C13", "C14", "C15")
        used = [p.name for p in sorted(day.glob("*.nc")) if any(f"-M6{b}_" in p.name for b in bands)]
        assert ds.attrs["source"].split() == used
        assert len(ds.attrs["model_sha256"]) == 64
        assert ds.attrs["model_version"] == "2.7.0"
        assert ds.attrs["platform"] == "GOES-17"
        assert ds.attrs["instrument"] == "ABI"
        assert ds.attrs["time_coverage_start"] == "2019-10-27T20:00:27Z"
        assert ds["goes_imager_projection"].attrs["longitude_of_projection_origin"] == -137.0
        encoding = ds["cloud_mask"].encoding
        assert encoding["zlib"]
        assert encoding["shuffle"]
        assert encoding["complevel"] == 4


def test_night_granule_without_a_night_model_gives_an_all_night_product(granules: Path, tmp_path: Path) -> None:
    night = granules / "abi" / "g17_meso1_20191201T1027_night"
    alone = tmp_path / "models"
    alone.mkdir()
    shutil.copy(ARTIFACTS / "mthccar_abi.pt", alone)  # a day model with no night model beside it
    result = process_granule(single_granule([night]), ProcessOptions(out_dir=tmp_path, model=alone / "mthccar_abi.pt"))
    assert result.stats["retrieved"] == 0
    with xr.open_dataset(result.product, mask_and_scale=False) as ds:
        assert np.all(ds["retrieval_quality"].values == NIGHT)
        assert np.all(ds["cloud_mask"].values == 255)
    assert "0 of 250000 pixels retrieved" in result.summary()
    assert compliance_issues(result.product)["high"] == []


def test_synthetic_scene_is_retrieved_against_its_truth(synthetic_granules: dict[str, Path], tmp_path: Path) -> None:
    """End-to-end score on a synthetic Meso scan; thresholds from measurement (mask 0.85, RMSE 0.23)."""
    source = synthetic_granules["abi"]
    result = process_granule(single_granule([source]), ProcessOptions(out_dir=tmp_path))
    truth = xr.open_dataset(next(source.glob("MTHCCAR-TRUTH_*.nc")), mask_and_scale=False)
    with xr.open_dataset(result.product, mask_and_scale=False) as product:
        retrieved = (product["retrieval_quality"].values <= 1) & (truth["cloud_mask"].values != 255)
        mask, true_mask = product["cloud_mask"].values, truth["cloud_mask"].values
        accuracy = float((mask[retrieved] == true_mask[retrieved]).mean())
        both = retrieved & (mask == 1) & (true_mask == 1)
        phase_accuracy = float((product["cloud_phase"].values[both] == truth["cloud_phase"].values[both]).mean())
        error = np.log10(product["cloud_optical_thickness"].values[both]) - np.log10(
            truth["cloud_optical_thickness"].values[both]
        )
    assert retrieved.mean() > 0.99
    assert accuracy > 0.80
    assert phase_accuracy > 0.95
    assert float(np.sqrt(np.mean(error**2))) < 0.30
    assert abs(float(np.mean(error))) < 0.1


def _features(synthetic_granules: dict[str, Path], model: Path):
    return granule_features([synthetic_granules["abi"]], model, chunk_size=226)


def test_inference_runs_once_per_chunk_and_only_on_valid_pixels(synthetic_granules: dict[str, Path]) -> None:
    features, artifact = _features(synthetic_granules, NO_C02_MODEL)
    outputs = inference.run_inference(features, artifact, device="cpu")
    before = inference.CALLS["blocks"]
    with dask.config.set(scheduler="threads"):
        values = dask.compute(*[outputs[name].data for name in inference.OUTPUTS])
    assert inference.CALLS["blocks"] - before == 9  # 3 x 3 chunks, each inferred once for all outputs
    assert all(v.shape == (500, 500) for v in values)
    assert np.all((values[0] >= 0) & (values[0] <= 1))
    np.testing.assert_allclose(values[2] + values[3] + values[4], 1.0, atol=1e-5)


def test_a_chunk_with_nothing_to_retrieve_never_builds_a_network(tmp_path: Path) -> None:
    """A day scan's chunks give the night model nothing: it is not loaded (0.3 s a Meso scan)."""
    features = np.ones((4, 5, 16), dtype=np.float32)
    quality = np.full((4, 5), NIGHT, dtype=np.uint8)  # no pixel this model retrieves
    missing = tmp_path / "not-there.pt"
    kwargs = {"sha256": "0" * 64, "device": "cpu", "batch_size": 0, "torch_threads": 1}
    out = inference.infer_block(features, quality, path=str(missing), **kwargs)
    assert out.shape == (4, 5, len(inference.OUTPUTS))
    assert np.isnan(out).all()
    quality[0, 0] = GOOD  # one retrievable pixel: now the network is needed and its absence is an error
    with pytest.raises(ArtifactError, match=r"not-there\.pt does not exist"):
        inference.infer_block(features, quality, path=str(missing), **kwargs)


def test_inference_uses_the_artifact_the_plan_verified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A threaded run loads and verifies each model once per process (0.1 s each), not again for
    its inference tasks; a file changed since is loaded again."""
    import models.artifact
    from pipeline.process import checked_artifact

    path = tmp_path / "model.pt"
    shutil.copy(default_artifacts()[0], path)
    planned = checked_artifact(path)

    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("the artifact was loaded again")

    monkeypatch.setattr(models.artifact, "load_artifact", no_loading)
    monkeypatch.setattr(inference, "load_artifact", no_loading)
    monkeypatch.setattr(inference, "_CACHE", {})  # no network built by an earlier test
    assert inference.worker_model(str(path), planned.sha256, "cpu") is not None
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="loaded again"):
        checked_artifact(path)


def test_small_batches_give_the_same_outputs(synthetic_granules: dict[str, Path]) -> None:
    features, artifact = _features(synthetic_granules, NO_C02_MODEL)
    with dask.config.set(scheduler="threads"):
        big = inference.run_inference(features, artifact, device="cpu").compute()
        small = inference.run_inference(features, artifact, device="cpu", batch_size=1000).compute()
    for name in inference.OUTPUTS:  # matmul blocking differs with the batch: equal to float32 rounding
        np.testing.assert_allclose(big[name].values, small[name].values, rtol=1e-5, atol=1e-6)


def test_two_scenes_in_one_graph_keep_their_own_outputs(synthetic_granules: dict[str, Path]) -> None:
    """Inference keys hash their inputs, so granules sharing a model never share (or swap) results."""
    features, artifact = _features(synthetic_granules, NO_C02_MODEL)
    dimmer = features.assign(features=features["features"] * np.float32(0.9))
    first = inference.run_inference(features, artifact, device="cpu")["log10_cot"].data
    second = inference.run_inference(dimmer, artifact, device="cpu")["log10_cot"].data
    assert first.name != second.name
    with dask.config.set(scheduler="threads"):
        together = dask.compute(first, second)
        alone = second.compute()
    np.testing.assert_array_equal(together[1], alone)
    assert not np.allclose(together[0], together[1], equal_nan=True)


def test_a_product_written_while_another_granule_opens_its_files(
    synthetic_granules: dict[str, Path], tmp_path: Path
) -> None:
    """``opening_files`` sets dask's global scheduler to "synchronous" while one granule's thread opens
    its files; a backfill at concurrency 4 once failed the granule that wrote its product meanwhile
    ("No clients found": it took the setting for a cluster)."""
    granule = single_granule([synthetic_granules["abi"]])
    alone = process_granule(granule, ProcessOptions(out_dir=tmp_path / "alone", chunk_size=226, quicklook=False))
    with dask.config.set(scheduler="synchronous"):
        meanwhile = process_granule(
            granule, ProcessOptions(out_dir=tmp_path / "meanwhile", chunk_size=226, quicklook=False)
        )
    with xr.open_dataset(alone.product) as a, xr.open_dataset(meanwhile.product) as b:
        for name in a.data_vars:
            np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=str(name))


def test_local_cluster_equals_threaded_run_bit_for_bit(synthetic_granules: dict[str, Path], tmp_path: Path) -> None:
    from distributed import get_task_stream

    granule = single_granule([synthetic_granules["abi"]])
    before = inference.CALLS["blocks"]
    threaded = process_granule(granule, ProcessOptions(out_dir=tmp_path / "threads", chunk_size=226, quicklook=False))
    inferred = inference.CALLS["blocks"] - before
    with dask_runtime(workers=2) as runtime, get_task_stream() as stream:
        assert runtime.client is not None
        assert runtime.torch_threads >= 1
        # glibc keeps its own malloc thresholds in the workers (inference 1.7x slower with distributed's)
        environ = runtime.client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
        assert set(environ.values()) == {None}
        # another granule's thread opening its files sets dask's global scheduler to "synchronous"
        # for a moment; a product written then still goes to the cluster (the task stream shows it)
        with dask.config.set(scheduler="synchronous"):
            clustered = process_granule(
                granule,
                ProcessOptions(
                    out_dir=tmp_path / "cluster", chunk_size=226, quicklook=False, torch_threads=runtime.torch_threads
                ),
            )
    infer_tasks = [task["key"] for task in stream.data if "mthccar-infer" in str(task["key"])]
    assert len(infer_tasks) == len(set(infer_tasks)) == inferred  # the summary and the chunks share them
    # threads store the chunks from their tasks; cluster workers return them encoded (pipeline.chunk_sink)
    with xr.open_dataset(threaded.product) as a, xr.open_dataset(clustered.product) as b:
        assert set(a.variables) == set(b.variables)
        for name in a.variables:
            np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=str(name))
            for key in ("zlib", "complevel", "shuffle", "chunksizes", "dtype", "_FillValue"):
                assert a[name].encoding.get(key) == b[name].encoding.get(key), (name, key)
            assert a[name].attrs.keys() == b[name].attrs.keys()


def test_chunks_compressed_in_tasks_read_back_exactly(tmp_path: Path) -> None:
    from pipeline.chunk_sink import ChunkWriter, store_chunks

    path = tmp_path / "chunks.nc"
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("y", 10)
        nc.createDimension("x", 7)
        nc.createVariable("probability", "f4", ("y", "x"), zlib=True, chunksizes=(4, 4), fill_value=-999.0)
        nc.createVariable("mask", "u1", ("y", "x"), zlib=True, chunksizes=(4, 4), fill_value=255)
    probability = np.linspace(0, 1, 70, dtype=np.float32).reshape(10, 7)
    probability[3, 2] = -999.0
    mask = (probability > 0.5).astype(np.uint8)
    sources = [  # blocks that are not the file's chunks: realigned before the write
        da.from_array(probability, chunks=((3, 5, 2), (7,))),
        da.from_array(mask, chunks=((4, 4, 2), (4, 3))),
    ]
    with ChunkWriter(path) as writer, dask.config.set(scheduler="threads"):
        sinks = [writer.sink("probability"), writer.sink("mask")]
        dask.compute(store_chunks(sources, sinks))
        with pytest.raises(ValueError, match=r"/mask: a block at \(2, 0\) does not start on a chunk of \(4, 4\)"):
            sinks[1][2:6, 0:4] = mask[2:6, 0:4]
    with netCDF4.Dataset(path) as nc:
        nc.set_auto_mask(False)
        np.testing.assert_array_equal(nc["probability"][:], probability)
        np.testing.assert_array_equal(nc["mask"][:], mask)
        assert nc["probability"].filters()["complevel"] == 4
        assert nc["probability"].filters()["shuffle"]


def test_cuda_without_a_gpu_is_a_clear_error(synthetic_granules: dict[str, Path]) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="device 'cuda' was requested but this worker has no CUDA device"):
        inference.resolve_device("cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_and_cpu_inference_agree(synthetic_granules: dict[str, Path]) -> None:
    features, artifact = _features(synthetic_granules, NO_C02_MODEL)
    with dask.config.set(scheduler="threads"):
        cpu = inference.run_inference(features, artifact, device="cpu").compute()
        gpu = inference.run_inference(features, artifact, device="cuda").compute()
    for name in inference.OUTPUTS:
        np.testing.assert_allclose(cpu[name].values, gpu[name].values, atol=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_benchmark_smoke_run(tmp_path: Path) -> None:
    """tests/bench/bench_gpu.py runs on this device: float32 is the reference, cheaper precisions
    change the outputs a little, and the GEMM roofline is measured."""
    import json

    from tests.bench import bench_gpu

    assert bench_gpu.main(["--quick", "--repeats", "1", "--json", str(tmp_path / "gpu.json")]) == 0
    figures = json.loads((tmp_path / "gpu.json").read_text())
    by_precision = {run["precision"]: run for run in figures["model"]["runs"]}
    assert by_precision["artifact float32"]["largest_output_change"] == 0.0
    assert by_precision["runner float32"]["largest_output_change"] < 1e-3  # what the pipeline runs
    assert all(run["pixels_per_second"] > 0 for run in by_precision.values())
    assert by_precision["runner bfloat16"]["largest_output_change"] < 0.5
    assert by_precision["artifact bfloat16 autocast"]["largest_output_change"] < 0.5
    assert figures["matmul"]["square"]["gflops"]["median"] > 0


def test_failure_while_writing_leaves_nothing_behind(
    synthetic_granules: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(inference, "infer_block", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        process_granule(single_granule([synthetic_granules["abi"]]), ProcessOptions(out_dir=tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_existing_product_is_skipped_or_protected(
    synthetic_granules: dict[str, Path], tmp_path: Path, tiny_artifacts: dict[str, Path]
) -> None:
    granule = single_granule([synthetic_granules["abi"]])
    first = process_granule(granule, ProcessOptions(out_dir=tmp_path, quicklook=False))
    again = process_granule(granule, ProcessOptions(out_dir=tmp_path, quicklook=False))
    assert again.skipped
    assert again.product == first.product
    other = tiny_artifacts["abi_noc02"]  # same model version, other weights: a different product
    with pytest.raises(ProductExistsError, match="is a different product of the same granule"):
        process_granule(granule, ProcessOptions(out_dir=tmp_path, model=other, quicklook=False))
    replaced = process_granule(granule, ProcessOptions(out_dir=tmp_path, model=other, overwrite=True, quicklook=False))
    products = sorted(glob.glob(str(tmp_path / "MTHCCAR-L2-CLD_*.nc")))
    assert products == [str(replaced.product)]


def test_cli_process_picks_the_no_c02_model_and_summarises(day: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["process", str(day), "--sensor", "abi", "--out", str(tmp_path), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "pixels retrieved, cloud fraction" in result.output
    assert "mthccar_abi_noc02_ir" in result.output
    assert len(list(tmp_path.glob("MTHCCAR-L2-CLD_*.nc"))) == 1
    assert len(list(tmp_path.glob("*_quicklook.png"))) == 1


def test_cli_process_reports_a_bad_model_in_one_sentence(
    day: Path, tmp_path: Path, tiny_artifacts: dict[str, Path]
) -> None:
    result = CliRunner().invoke(
        app, ["process", str(day), "--out", str(tmp_path), "--model", str(tiny_artifacts["abi"]), "--no-progress"]
    )
    assert result.exit_code == 1
    assert "needs band C02, which granule abi_G17_M1_20191027T200027 lacks" in result.output
    assert list(tmp_path.glob("*.nc")) == []


def test_inference_tasks_go_only_to_workers_advertising_a_gpu(
    synthetic_granules: dict[str, Path], tmp_path: Path
) -> None:
    import subprocess
    import sys
    import time

    from distributed import LocalCluster, get_task_stream

    cluster = LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=True,
        resources={"GPU": 1},
        host="127.0.0.1",
        dashboard_address=None,
    )
    plain = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dask"),
            "worker",
            cluster.scheduler_address,
            "--nthreads",
            "1",
            "--no-dashboard",
            "--name",
            "plain-cpu",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with dask_runtime(scheduler=cluster.scheduler_address, device="auto") as runtime:
            client = runtime.client
            deadline = time.monotonic() + 60
            while len(client.scheduler_info(n_workers=-1)["workers"]) < 2:
                assert time.monotonic() < deadline, "the second worker did not join"
                time.sleep(0.5)
            assert runtime.resources == {"GPU": 1.0}
            with get_task_stream(client) as stream:
                process_granule(
                    single_granule([synthetic_granules["abi"]]),
                    ProcessOptions(out_dir=tmp_path, chunk_size=226, quicklook=False, resources=runtime.resources),
                )
            workers = client.scheduler_info(n_workers=-1)["workers"]
            gpu = {address for address, w in workers.items() if w.get("resources", {}).get("GPU")}
            inference = {t["worker"] for t in stream.data if "mthccar-infer" in str(t["key"])}
            others = {t["worker"] for t in stream.data if "mthccar-infer" not in str(t["key"])}
        assert inference == gpu
        assert len(others) == 2  # the rest of the graph used both workers
    finally:
        plain.terminate()
        plain.wait(timeout=30)
        cluster.close()


def test_swath_products_pass_the_compliance_checker(synthetic_granules: dict[str, Path], tmp_path: Path) -> None:
    for kind in ("viirs_l1b", "oci"):
        result = process_granule(single_granule([synthetic_granules[kind]]), ProcessOptions(out_dir=tmp_path / kind))
        assert result.stats["retrieved"] > 0
        issues = compliance_issues(result.product)
        assert issues["high"] == [], (kind, issues)
        assert issues["medium"] == [], (kind, issues)
        with xr.open_dataset(result.product) as ds:
            assert ds["latitude"].dims == ("y", "x")
            assert "x" not in ds.coords
            assert ds.attrs["cdm_data_type"] == "Swath"


def test_quicklooks_show_the_coastline_and_a_graticule(day_product) -> None:
    from PIL import Image

    from pipeline.quicklook import graticule_step, land_fraction

    np.testing.assert_array_equal(
        land_fraction(np.array([37.77, 37.5, np.nan]), np.array([-122.42, -123.5, 0.0])), [1.0, 0.0, np.nan]
    )  # San Francisco, the Pacific off it, no geolocation
    assert graticule_step(np.array([30.5, 44.0])) == 5.0
    assert graticule_step(np.array([36.0, 38.5])) == 0.5
    picture = np.asarray(Image.open(day_product.quicklook).convert("RGB")).astype(int)
    red, green, blue = picture[..., 0], picture[..., 1], picture[..., 2]
    coast = (red > 200) & (green < 120) & (blue > 100)  # the magenta coastline
    columns = np.nonzero(coast.any(axis=0))[0]
    # drawn on each of the three panels (the California coast crosses every one of them)
    assert len(np.unique(columns // (picture.shape[1] // 3))) == 3
    assert coast.sum() > 500


def test_cot_class_is_the_most_probable_class_first_on_ties() -> None:
    from pipeline.product import _most_probable

    levels = np.array(np.meshgrid([0.0, 0.5, 1.0], [0.0, 0.5, 1.0], [0.0, 0.5, 1.0])).reshape(3, -1)  # every tie
    classes = _most_probable(*(level.astype(np.float32) for level in levels))
    np.testing.assert_array_equal(classes, np.argmax(levels, axis=0))
