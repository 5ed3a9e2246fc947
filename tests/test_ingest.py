"""Granule ingest on the real ABI granules and on synthetic VIIRS/OCI files in their real formats."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import dask
import netCDF4
import numpy as np
import pytest

from models.artifact import ArtifactError
from models.bands import sensor_bands
from pipeline.ancillary import AncillaryConfig, GridSource, add_ancillary, ozone_climatology, water_vapour_climatology
from pipeline.features import DEGRADED, GOOD, NIGHT, NO_INPUT, build_features
from pipeline.granules import GranuleError, find_granules, single_granule
from pipeline.ingest import FLAG_SATURATED, IngestError, _abi_dqf_flags, ingest
from pipeline.process import choose_artifact, granule_features
from pipeline.real_scenes import REAL_FIRE_REFERENCE
from tests.support.dask_counting import CountingScheduler

NO_C02 = ["C01", "C03", "C04", "C05", "C06"]


@pytest.fixture(scope="module")
def day(granules: Path) -> Path:
    return granules / "abi" / "g17_meso1_20191027T2000_day"


@pytest.fixture(scope="module")
def night(granules: Path) -> Path:
    return granules / "abi" / "g17_meso1_20191201T1027_night"


def _compute(ds):
    with dask.config.set(scheduler="threads"):
        return ds.compute()


def test_day_granule_loads_on_the_2km_grid_with_plausible_values(day: Path) -> None:
    granule = single_granule([day])
    assert granule.reader == "abi_l1b"
    assert granule.platform == "G17"
    assert granule.sector == "M1"
    assert granule.missing(NO_C02) == []
    scene = ingest(granule, NO_C02)
    assert scene["reflectance_C01"].shape == (500, 500)
    values = _compute(scene)
    # satpy reports C01 at 19 % on average (pi L d^2 / E0); BRF divides by cos(SZA) ~ 0.64
    c01 = values["reflectance_C01"].values
    assert 0.25 < np.nanmean(c01) < 0.35
    assert np.nanmin(c01) > 0.1
    assert np.nanmax(c01) < 1.3
    assert 0.15 < np.nanmean(values["reflectance_C06"]) < 0.3
    sza = values["solar_zenith_angle"].values
    assert 40 < sza.min() < sza.max() < 60  # 20:00 UTC = local noon over California in late October
    assert 35 < np.nanmean(values["sensor_zenith_angle"]) < 60  # GOES-West at 137 W
    lat, lon = values["latitude"].values, values["longitude"].values
    assert lat.min() > 30
    assert lat.max() < 44.5
    assert lon.min() > -128
    assert lon.max() < -110
    assert int(values["input_flags"].max()) == 0


def test_ingest_is_lazy_and_chunked_on_the_file_chunks(
    synthetic_granules: dict[str, Path], tiny_artifacts: dict[str, Path]
) -> None:
    # the synthetic scan is chunked on disk like operational full-disk files: 226 pixels
    counter = CountingScheduler(max_computes=0)
    with dask.config.set(scheduler=counter):
        features, artifact = granule_features([synthetic_granules["abi"]], tiny_artifacts["abi_noc02"], chunk_size=226)
    assert counter.calls == 0
    assert features["features"].data.chunks[:2] == ((226, 226, 48), (226, 226, 48))
    assert features["features"].shape == (500, 500, 15)
    assert artifact.name == "tiny_abi_noc02"


def test_viirs_l1b_is_read_chunk_by_chunk_on_whole_file_chunks(tmp_path: Path) -> None:
    """Without reader chunks satpy reads a VIIRS band as one 4096-pixel chunk: the granule's bands
    were read band by band before any feature chunk could start (1.9 GB peak for a full granule)."""
    from models.synthetic.l1b_viirs import write_viirs_granule

    write_viirs_granule(tmp_path, dt.datetime(2019, 10, 27, 20, 30), lines=192, pixels=160, seed=1)
    granule = single_granule([tmp_path])
    band = ingest(granule, ["M05"], chunk_size=64)["reflectance_M05"].data
    assert band.chunks == ((64, 64, 64), (160,))  # whole scans and file chunks (64 x 160 on disk)
    graph = band.__dask_graph__()
    # xarray keeps the file's variable as one "original-" key and reads it in one task per chunk
    reads = [name for name in graph.layers if name.startswith("open_dataset-M05")]
    assert reads
    assert all(len(graph.layers[name]) == 3 for name in reads)


def test_features_follow_the_artifact_spec(day: Path, tiny_artifacts: dict[str, Path]) -> None:
    features, artifact = granule_features([day], tiny_artifacts["abi_noc02"])
    values = _compute(features)
    granule = single_granule([day])
    scene = _compute(add_ancillary(ingest(granule, NO_C02)))
    spec = artifact.spec
    raw = np.stack([scene[f"reflectance_{b}"].values for b in spec.bands], axis=-1)
    expected = (raw - spec.offsets[:5]) / spec.scales[:5]
    np.testing.assert_allclose(values["features"].values[..., :5], expected, rtol=1e-5, atol=1e-6)
    cos_sza = (np.cos(np.radians(scene["solar_zenith_angle"].values)) - spec.offsets[12]) / spec.scales[12]
    np.testing.assert_allclose(values["features"].values[..., 12], cos_sza, rtol=1e-4, atol=1e-5)
    assert set(np.unique(values["retrieval_quality"])) <= {GOOD, DEGRADED}


def _dqf_bad_on_the_2km_grid(path: Path) -> np.ndarray:
    """DQF >= 2 (fill excepted), any of each 2 km cell's native pixels, read whole with netCDF4."""
    with netCDF4.Dataset(path) as handle:
        handle.set_auto_maskandscale(False)
        dqf = handle["DQF"][:].astype(np.uint8)
    bad = (dqf >= 2) & (dqf != 255)
    factor = dqf.shape[0] // 500
    return bad.reshape(500, factor, 500, factor).any(axis=(1, 3))


def test_dqf_flags_match_the_files_and_are_read_a_target_chunk_at_a_time(day: Path) -> None:
    bands = ["C01", "C03", "C05", "C07", "C13"]
    files = {band: next(day.glob(f"*M6{band}_*.nc")) for band in bands}
    expected = np.logical_or.reduce([_dqf_bad_on_the_2km_grid(path) for path in files.values()])
    assert 0 < expected.sum() < 100  # the day scene has a few out-of-range pixels: the test can fail

    scene = ingest(single_granule([day]), bands, chunk_size=200)  # target chunks across the file chunks
    flags = _compute(scene)["input_flags"].values
    np.testing.assert_array_equal((flags & FLAG_SATURATED) > 0, expected)

    # at the default chunking every DQF is read in blocks of whole target chunks, not in the files'
    # own small chunks (one task each: 219 reads for a Meso scan's eleven bands)
    file_chunks = 0
    for path in files.values():
        with netCDF4.Dataset(path) as handle:
            chunk_y, chunk_x = handle["DQF"].chunking()
            height, width = handle["DQF"].shape
        file_chunks += -(-height // chunk_y) * -(-width // chunk_x)
    dqf_only = _abi_dqf_flags(single_granule([day]), bands, (500, 500), ((500,), (500,)))
    assert len(dict(dqf_only.__dask_graph__())) < file_chunks


def test_night_granule_is_flagged_night_everywhere(night: Path, tiny_artifacts: dict[str, Path]) -> None:
    features, _ = granule_features([night], tiny_artifacts["abi"])
    quality = _compute(features["retrieval_quality"]).values
    assert quality.shape == (500, 500)
    assert np.all(quality == NIGHT)


def test_night_granule_loads_every_band_at_mixed_resolutions(night: Path) -> None:
    granule = single_granule([night])
    assert granule.missing(["C01", "C02", "C03", "C04", "C05", "C06"]) == []
    scene = ingest(granule, ["C01", "C02", "C03", "C04", "C05", "C06"])
    assert scene["reflectance_C02"].shape == (500, 500)  # 0.5 km aggregated to 2 km


def test_model_needing_c02_is_refused_on_the_day_granule(day: Path, tiny_artifacts: dict[str, Path]) -> None:
    granule = single_granule([day])
    with pytest.raises(ArtifactError, match=r"abi\.pt needs band C02, which granule abi_G17_M1_20191027T200027 lacks"):
        choose_artifact(granule, tiny_artifacts["abi"])
    assert choose_artifact(granule, tiny_artifacts["abi_noc02"]).spec.bands == NO_C02
    with pytest.raises(GranuleError, match="lacks band C02"):
        ingest(granule, ["C01", "C02"])


def test_viirs_model_is_refused_for_an_abi_granule(day: Path, tiny_artifacts: dict[str, Path]) -> None:
    with pytest.raises(ArtifactError, match=r"viirs\.pt is a model for viirs, not for abi"):
        choose_artifact(single_granule([day]), tiny_artifacts["viirs"])


@pytest.mark.parametrize("kind", ["viirs_l1b", "viirs_sdr"])
def test_synthetic_viirs_ingests_to_the_simulated_brf(kind: str, synthetic_granules: dict[str, Path]) -> None:
    granule = single_granule([synthetic_granules[kind]])
    assert granule.reader == kind
    bands = [b.name for b in sensor_bands("viirs").training_bands]
    values = _compute(ingest(granule, bands, chunk_size=32))
    assert values["reflectance_M05"].shape == (48, 80)
    assert values["reflectance_M05"].data.dtype == np.float32
    truth = netCDF4.Dataset(next(synthetic_granules[kind].glob("MTHCCAR-TRUTH_*.nc")))
    clear_ocean = (truth["cloud_mask"][:] == 0) & (truth["surface_class"][:] == 17)
    truth.close()
    m07 = values["reflectance_M07"].values
    if clear_ocean.any():
        assert np.nanmedian(m07[clear_ocean]) < 0.08  # dark ocean in the near-IR
    assert np.nanmax(values["reflectance_M04"]) > 0.3  # clouds are bright
    assert values["relative_azimuth_angle"].min() >= 0
    assert values["relative_azimuth_angle"].max() <= 180
    assert values["sensor_zenith_angle"].max() > 50  # the swath edges


def test_block_rendered_swath_keeps_truth_and_radiances_consistent(
    synthetic_granules: dict[str, Path], tmp_path: Path
) -> None:
    """A VIIRS granule rendered once per 4 x 4 pixels: truth and BRF are constant on each block (BRF up
    to the 0.5 % noise), equal to the per-pixel rendering at the block centres, and it still ingests."""
    import datetime as dt

    from models.synthetic.l1b_viirs import write_viirs_granule
    from models.synthetic.polar import auto_block

    assert auto_block(3232 * 3200, 10) == 6  # a full granule
    assert auto_block(48 * 80, 10) == 1  # the test granules
    write_viirs_granule(tmp_path, dt.datetime(2019, 10, 27, 20, 30), lines=48, pixels=80, seed=1, block=4)
    bands = ["M05", "M10"]
    blocky = _compute(ingest(single_granule([tmp_path]), bands))
    fine = _compute(ingest(single_granule([synthetic_granules["viirs_l1b"]]), bands))
    m05, full = blocky["reflectance_M05"].values, fine["reflectance_M05"].values
    tiles = m05.reshape(12, 4, 20, 4)
    spread = np.nanmax(tiles, axis=(1, 3)) / np.nanmin(tiles, axis=(1, 3))
    assert np.nanmax(spread) < 1.04  # noise only within a block
    np.testing.assert_allclose(m05[2::4, 2::4], full[2::4, 2::4], rtol=1e-4)  # centres as rendered alone
    with netCDF4.Dataset(next(tmp_path.glob("MTHCCAR-TRUTH_*.nc"))) as truth:
        cot = np.asarray(truth["cloud_optical_thickness"][:].filled(np.nan)).reshape(12, 4, 20, 4)
        mask = np.asarray(truth["cloud_mask"][:]).reshape(12, 4, 20, 4)
    assert (mask == mask[:, :1, :, :1]).all()
    np.testing.assert_array_equal(cot, np.broadcast_to(cot[:, :1, :, :1], cot.shape))
    assert 0 < (mask == 1).mean() < 1


def test_l1b_and_sdr_of_the_same_scene_agree(synthetic_granules: dict[str, Path]) -> None:
    bands = ["M05", "M10"]
    l1b = _compute(ingest(single_granule([synthetic_granules["viirs_l1b"]]), bands))
    sdr = _compute(ingest(single_granule([synthetic_granules["viirs_sdr"]]), bands))
    np.testing.assert_allclose(l1b["reflectance_M05"], sdr["reflectance_M05"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(l1b["solar_zenith_angle"], sdr["solar_zenith_angle"], atol=0.02)


def test_synthetic_oci_selects_bands_by_wavelength(synthetic_granules: dict[str, Path]) -> None:
    granule = single_granule([synthetic_granules["oci"]])
    bands = [b.name for b in sensor_bands("oci").training_bands]
    scene = ingest(granule, bands, chunk_size=64)
    assert len([v for v in scene.data_vars if v.startswith("reflectance_")]) == 223
    values = _compute(scene[["reflectance_oci_350", "reflectance_oci_2261", "solar_zenith_angle"]])
    assert values["reflectance_oci_350"].shape == (32, 40)
    assert np.nanmean(values["reflectance_oci_350"]) > np.nanmean(values["reflectance_oci_2261"])


def test_synthetic_oci_reflectance_is_the_rendered_scene(tmp_path: Path) -> None:
    """rhot, deflated chunk by chunk on threads and stored directly, reads back as the rendered BRF,
    edge chunks (119 bands in chunks of 16, 260 scans in chunks of 256) included."""
    from models.synthetic.l1b_oci import OCI, band_groups, write_oci_granule
    from models.synthetic.polar import render_swath

    start = dt.datetime(2024, 5, 1, 19, 0)
    write_oci_granule(tmp_path, start, lines=260, pixels=40, seed=3, block=4)
    groups = band_groups()
    scene = render_swath(OCI, start, [b for g in groups.values() for b in g], 260, 40, 20.0, None, 3, 4)
    with netCDF4.Dataset(next(tmp_path.glob("PACE_OCI.*.nc"))) as nc:
        assert nc["observation_data/rhot_blue"].filters()["shuffle"]
        stored = np.concatenate([nc[f"observation_data/rhot_{g}"][:].filled(np.nan) for g in groups])
    np.testing.assert_array_equal(stored, np.moveaxis(scene.brf, -1, 0))
    assert (stored[:, scene.simulated] > 0).all()


def test_block_rendered_abi_scan_keeps_truth_and_radiances_consistent(tmp_path: Path) -> None:
    """An ABI Meso scan rendered once per 4 x 4 pixels (what CONUS and full disks get by default):
    truth constant on each block, cloudy blocks brighter, and satpy still reads it."""
    from models.synthetic.l1b_abi import write_abi_scene
    from models.synthetic.polar import auto_block

    assert auto_block(1500 * 2500, 6) == 3  # CONUS
    assert auto_block(500 * 500, 11) == 1  # Meso with the thermal bands: per pixel, as before
    write_abi_scene(tmp_path, dt.datetime(2019, 10, 27, 20, 0, 27), bands=["C05"], seed=4, block=4)
    with netCDF4.Dataset(next(tmp_path.glob("MTHCCAR-TRUTH_*.nc"))) as truth:
        mask = np.asarray(truth["cloud_mask"][:224, :])  # the first 226-row block holds 56 whole tiles
    tiles = mask.reshape(56, 4, 125, 4)
    assert (tiles == tiles[:, :1, :, :1]).all()
    assert 0 < (mask == 1).mean() < 1
    values = _compute(ingest(single_granule([tmp_path]), ["C05"]))
    m05 = values["reflectance_C05"].values[:448].reshape(56, 8, 125, 8)  # 1 km, with sub-2 km texture
    tile_mean = np.nanmean(m05, axis=(1, 3))
    cloudy_tile = tiles[:, 0, :, 0] == 1
    assert np.isfinite(tile_mean).all()
    assert np.median(tile_mean[cloudy_tile]) > np.median(tile_mean[tiles[:, 0, :, 0] == 0])


def test_swath_simulation_does_not_depend_on_the_number_of_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    from models.synthetic import polar
    from models.training.simulate.dataset import sample_state

    state = sample_state(60, np.random.default_rng(5))
    bands = sensor_bands("viirs").training_bands
    monkeypatch.setattr(polar, "SIMULATED_AT_ONCE", 20 * len(bands))  # three parts
    one = polar.simulate_in_parts(bands, state, workers=1)
    two = polar.simulate_in_parts(bands, state, workers=2)
    assert one.shape == (60, len(bands))
    np.testing.assert_array_equal(one, two)


def test_chunk_writer_refuses_what_it_cannot_store_faithfully(tmp_path: Path) -> None:
    import h5py

    from models.synthetic.chunks import write_region

    path = tmp_path / "chunks.nc"
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("y", 10)
        nc.createDimension("x", 7)
        nc.createVariable("deflated", "f4", ("y", "x"), zlib=True, chunksizes=(4, 4))
        nc.createVariable("plain", "f4", ("y", "x"), chunksizes=(4, 4))
    data = np.arange(70, dtype=np.float32).reshape(10, 7)
    with h5py.File(path, "r+") as h5:
        with pytest.raises(ValueError, match="/plain is not a chunked variable with shuffle and deflate"):
            write_region(h5["plain"], (0, 0), data)
        with pytest.raises(ValueError, match=r"/deflated: region \(2, 0\) \+ \(8, 7\) is not whole chunks on axis 0"):
            write_region(h5["deflated"], (2, 0), data[2:])
        write_region(h5["deflated"], (0, 0), data[:4])
        write_region(h5["deflated"], (4, 0), data[4:])
    with netCDF4.Dataset(path) as nc:
        np.testing.assert_array_equal(nc["deflated"][:], data)


def test_granules_are_grouped_per_scan(day: Path, night: Path) -> None:
    granules = find_granules([day, night], sensor="abi")
    assert [g.id for g in granules] == ["abi_G17_M1_20191027T200027", "abi_G17_M1_20191201T102727"]
    with pytest.raises(GranuleError, match=r"the input files mix 2 scans \(2019-10-27 20:00:27, 2019-12-01 10:27:27\)"):
        single_granule([day, night])


def test_mixed_scan_files_are_refused(day: Path, night: Path, tmp_path: Path) -> None:
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for path in [*day.glob("*C01_*"), *night.glob("*C03_*")]:
        (mixed / path.name).symlink_to(path)
    with pytest.raises(GranuleError, match="mix 2 scans"):
        single_granule([mixed])
    granules = find_granules([mixed])
    with pytest.raises(GranuleError, match=r"lacks bands C03, C04, C05, C06"):
        granules[0].require(NO_C02)


def test_missing_band_is_named(day: Path, tmp_path: Path) -> None:
    partial = tmp_path / "no_c05"
    partial.mkdir()
    for path in day.glob("*.nc"):
        if "C05_" not in path.name:
            (partial / path.name).symlink_to(path)
    with pytest.raises(GranuleError, match=r"granule abi_G17_M1_20191027T200027 \(.*\) lacks band C05"):
        ingest(single_granule([partial]), NO_C02)


def test_missing_geolocation_companion_is_named(synthetic_granules: dict[str, Path], tmp_path: Path) -> None:
    for path in synthetic_granules["viirs_l1b"].glob("VNP02MOD*"):
        shutil.copy(path, tmp_path / path.name)
    granule = single_granule([tmp_path])
    with pytest.raises(GranuleError, match=r"lacks the geolocation companion \(vgeom\)"):
        ingest(granule, ["M05"])
    sdr_only = tmp_path / "sdr"
    sdr_only.mkdir()
    for path in synthetic_granules["viirs_sdr"].glob("SVM0*"):
        shutil.copy(path, sdr_only / path.name)
    with pytest.raises(GranuleError, match=r"lacks the geolocation companion \(GMTCO or GMODO\)"):
        single_granule([sdr_only]).require(["M05"])


def test_truncated_file_is_named(day: Path, tmp_path: Path) -> None:
    for path in day.glob("*.nc"):
        target = tmp_path / path.name
        if "C03_" in path.name:
            target.write_bytes(path.read_bytes()[:4000])
        else:
            target.symlink_to(path)
    with pytest.raises(IngestError, match=r"OR_ABI-L1b-RadM1-M6C03_G17_.*\.nc is truncated or corrupt"):
        ingest(single_granule([tmp_path]), NO_C02)


def test_not_a_netcdf_file_is_named(day: Path, tmp_path: Path) -> None:
    for path in day.glob("*.nc"):
        target = tmp_path / path.name
        if "C04_" in path.name:
            target.write_text("GIF89a not a netCDF file at all\n" * 20)
        else:
            target.symlink_to(path)
    with pytest.raises(
        IngestError,
        match=r"OR_ABI-L1b-RadM1-M6C04_G17_.*\.nc is truncated or corrupt: it is not a "
        r"readable netCDF-4/HDF5 file",
    ):
        ingest(single_granule([tmp_path]), NO_C02)


def test_wrong_product_is_named(day: Path, granules: Path, tmp_path: Path) -> None:
    fire = next(granules.joinpath(*REAL_FIRE_REFERENCE).glob("*.nc"))
    for path in day.glob("*.nc"):
        target = tmp_path / path.name
        if "C06_" in path.name:
            shutil.copy(fire, target)  # an L2 fire product under an L1b name
        else:
            target.symlink_to(path)
    with pytest.raises(IngestError, match=r"OR_ABI-L1b-RadM1-M6C06_G17_.*\.nc is not a abi_l1b file: it lacks Rad"):
        ingest(single_granule([tmp_path]), NO_C02)


def test_unrecognised_inputs_are_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(GranuleError, match=r"none of the 1 input files \(notes\.txt\) is a L1b file"):
        find_granules([tmp_path])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_granules([tmp_path / "absent"])


def test_climatology_is_physical() -> None:
    lat = np.array([-80.0, -45.0, 0.0, 45.0, 80.0])
    july = water_vapour_climatology(lat, 196)
    january = water_vapour_climatology(lat, 15)
    assert july[2] > 3.5
    assert july[4] < 1.5
    assert july[3] > january[3]
    ozone_march = ozone_climatology(lat, 80)
    ozone_october = ozone_climatology(lat, 280)
    assert 240 < ozone_march[2] < 290
    assert ozone_march[4] > 400
    assert ozone_october[0] < 220  # the ozone hole


# the US Standard Atmosphere's water-vapour density (g m-3) at 0, 1, ..., 10 km (AFGL profiles,
# Anderson et al. 1986, AFGL-TR-86-0110); its column above sea level is 1.43 cm
US_STANDARD_WATER_DENSITY = (5.9, 4.2, 2.9, 1.8, 1.1, 0.64, 0.38, 0.21, 0.12, 0.046, 0.018)


@pytest.mark.parametrize("altitude_km", [1, 2, 3])
def test_the_water_vapour_default_is_the_column_above_the_ground(altitude_km: int) -> None:
    """Over high ground most of the sea-level column lies below the surface; the default says so as
    the US Standard Atmosphere does, within 10 %."""
    density = np.array(US_STANDARD_WATER_DENSITY)
    above = np.trapezoid(density[altitude_km:]) / np.trapezoid(density)  # 1 km steps
    lat = np.array([38.0])
    ratio = water_vapour_climatology(lat, 300, altitude_km * 1000.0) / water_vapour_climatology(lat, 300)
    assert ratio[0] == pytest.approx(above, rel=0.10)


def test_the_pipeline_gives_high_ground_a_drier_column(day: Path) -> None:
    """The default ancillary over a real scan: the Great Basin (about 1.5 km up) gets under 60 % of
    the column the coast at the same latitude gets."""
    from models.earth import altitude_m

    scene = add_ancillary(ingest(single_granule([day]), ["C01"]))
    lat, lon = scene["latitude"].values, scene["longitude"].values
    h2o = scene["h2o"].values
    altitude = altitude_m(np.nan_to_num(lat), np.nan_to_num(lon))
    band = np.abs(lat - 38.5) < 0.5
    high, low = band & (altitude > 1400), band & (altitude < 100) & (altitude > -10)
    assert high.sum() > 100
    assert low.sum() > 100
    assert np.median(h2o[high]) < 0.6 * np.median(h2o[low])


def test_nwp_and_land_cover_files_replace_the_defaults(day: Path, tmp_path: Path) -> None:
    import xarray as xr

    lat = np.arange(50.0, 20.0, -0.25)
    lon = np.arange(-135.0, -100.0, 0.25)
    shape = (len(lat), len(lon))
    xr.Dataset(
        {
            "tcwv": (("latitude", "longitude"), np.full(shape, 25.0)),  # kg m-2 -> 2.5 cm
            "tco3": (("latitude", "longitude"), np.full(shape, 300 * 2.1415e-5)),  # kg m-2 -> 300 DU
            "sp": (("latitude", "longitude"), np.full(shape, 95000.0)),
        },  # Pa -> 950 hPa
        coords={"latitude": lat, "longitude": lon},
    ).to_netcdf(tmp_path / "era5.nc")
    land = np.full(shape, 16, dtype=np.int16)  # all desert
    xr.Dataset({"land_cover": (("lat", "lon"), land)}, coords={"lat": lat, "lon": lon}).to_netcdf(tmp_path / "igbp.nc")
    config = AncillaryConfig.from_nwp(str(tmp_path / "era5.nc"), str(tmp_path / "igbp.nc"))
    scene = _compute(
        add_ancillary(ingest(single_granule([day]), NO_C02), config)[["h2o", "o3", "spress", "albedo_type"]]
    )
    np.testing.assert_allclose(scene["h2o"], 2.5, rtol=1e-5)
    np.testing.assert_allclose(scene["o3"], 300.0, rtol=1e-4)
    np.testing.assert_allclose(scene["spress"], 950.0, rtol=1e-5)
    assert np.all(scene["albedo_type"] == 16)
    assert scene.attrs["ancillary"]["h2o"] == "era5.nc:tcwv"


def test_default_ancillary_marks_land_cover_and_water(day: Path) -> None:
    scene = _compute(add_ancillary(ingest(single_granule([day]), NO_C02))[["albedo_type", "spress", "h2o", "skt"]])
    counts = dict(zip(*np.unique(scene["albedo_type"], return_counts=True), strict=True))
    assert {7, 10, 12, 13, 16, 17} <= set(counts)  # shrubs, grass, crops, towns, desert and the Pacific
    assert counts[10] + counts[7] > counts[12]  # October California: more grass and shrub than crops
    water = scene["albedo_type"].values == 17
    # a mid-day skin temperature: lowland warmer than the sea, the mountains colder
    lowland = ~water & (scene["spress"].values > 950)
    assert 290 < np.median(scene["skt"].values[lowland]) < 310
    assert np.median(scene["skt"].values[water]) < np.median(scene["skt"].values[lowland])
    assert scene["skt"].values[~water].min() < np.median(scene["skt"].values[water])
    at_sea_level = np.isclose(scene["spress"].values[water], 1013.25)
    assert at_sea_level.mean() > 0.95  # the ocean; mountain lakes (Tahoe, 1.9 km) are water too
    assert scene["spress"].values[~water].min() < 800  # the Sierra Nevada


def test_missing_nwp_variable_is_named(day: Path, tmp_path: Path) -> None:
    import xarray as xr

    xr.Dataset(
        {"t2m": (("latitude", "longitude"), np.zeros((3, 3)))},
        coords={"latitude": [40.0, 35.0, 30.0], "longitude": [-125.0, -120.0, -115.0]},
    ).to_netcdf(tmp_path / "bad.nc")
    config = AncillaryConfig(h2o=GridSource(str(tmp_path / "bad.nc"), "tcwv", 0.1))
    with pytest.raises(ValueError, match=r"bad\.nc has no variable 'tcwv' \(it has t2m\)"):
        add_ancillary(ingest(single_granule([day]), NO_C02), config)


def test_features_refuse_a_spec_without_scaling(day: Path) -> None:
    from models.spec import FeatureSpec

    scene = add_ancillary(ingest(single_granule([day]), NO_C02))
    with pytest.raises(ValueError, match="carries no fitted feature scaling"):
        build_features(scene, FeatureSpec.for_sensor("abi", NO_C02))


def test_fill_and_space_pixels_are_not_retrieved(day: Path, tiny_artifacts: dict[str, Path]) -> None:
    granule = single_granule([day])
    artifact = choose_artifact(granule, tiny_artifacts["abi_noc02"])
    scene = add_ancillary(ingest(granule, NO_C02))
    holes = scene["reflectance_C05"].copy()
    holes[:10, :10] = np.nan
    scene["reflectance_C05"] = holes
    scene["input_flags"] = scene["input_flags"].where(~np.isnan(holes), 2).astype(np.uint8)
    quality = _compute(build_features(scene, artifact.spec)["retrieval_quality"]).values
    assert np.all(quality[:10, :10] == NO_INPUT)
    assert np.all(quality[10:, 10:] <= DEGRADED)


def test_granules_are_found_and_read_from_an_fsspec_url(day: Path) -> None:
    import fsspec

    memory = fsspec.filesystem("memory")
    for path in day.glob("*C0[1-6]_*.nc"):
        memory.pipe(f"/archive/ABI-L1b-RadM/2019/300/20/{path.name}", path.read_bytes())
    try:
        granule = single_granule(["memory://archive/ABI-L1b-RadM/2019/300/20"])
        assert granule.id == "abi_G17_M1_20191027T200027"
        assert all(p.startswith("memory://") for p in granule.paths)
        read = ["reflectance_C01", "input_flags"]  # the flags read each band's DQF from its file again
        remote = _compute(ingest(granule, NO_C02)[read])
        local = _compute(ingest(single_granule([day]), NO_C02)[read])
        for name in read:
            np.testing.assert_array_equal(remote[name].values, local[name].values)
    finally:
        memory.rm("/archive", recursive=True)


@pytest.mark.parametrize(("kind", "reads"), [("viirs_l1b", False), ("viirs_sdr", True), ("oci", True)])
def test_swath_granules_from_a_url_are_read_or_refused_in_one_sentence(
    kind: str, reads: bool, synthetic_granules: dict[str, Path]
) -> None:
    """satpy's viirs_l1b reader opens local paths only: from a URL it failed on a path without its
    protocol ("No such file or directory: '/archive/...'"); the SDR and OCI readers read URLs."""
    import fsspec

    memory = fsspec.filesystem("memory")
    for path in synthetic_granules[kind].iterdir():
        memory.pipe(f"/swath_urls/{kind}/{path.name}", path.read_bytes())
    try:
        granule = single_granule([f"memory://swath_urls/{kind}"])
        band = sensor_bands(granule.sensor).training_bands[0].name
        if reads:
            remote = _compute(ingest(granule, [band]))[f"reflectance_{band}"].values
            local = _compute(ingest(single_granule([synthetic_granules[kind]]), [band]))[f"reflectance_{band}"].values
            np.testing.assert_array_equal(remote, local)
        else:
            with pytest.raises(IngestError, match=r"^satpy's viirs_l1b reader reads local files only, .*memory://"):
                ingest(granule, [band])
    finally:
        memory.rm("/swath_urls", recursive=True)


def test_each_reader_states_what_its_files_must_contain(tmp_path: Path) -> None:
    import h5py

    from pipeline.ingest import check_file

    path = tmp_path / "VNP02MOD.A2019300.2030.002.2021000000000.nc"
    with h5py.File(path, "w") as handle:
        handle.create_group("something_else")
    with pytest.raises(
        IngestError, match=r"VNP02MOD.*\.nc is not a viirs_l1b file: it has neither observation_data nor"
    ):
        check_file(str(path), "viirs_l1b")
    with pytest.raises(
        IngestError, match=r"is not a pace_oci_l1b_nc file: it lacks observation_data, geolocation_data"
    ):
        check_file(str(path), "pace_oci_l1b_nc")


def test_thermal_bands_ingest_as_brightness_temperatures(day: Path, tmp_path: Path) -> None:
    """Real C13/C14 through satpy in kelvin; a synthetic scan's thermal files read back as the
    thermal simulator drew them: cloud colder than clear ground."""
    import datetime as dt

    import xarray as xr

    from models.synthetic.l1b_abi import write_abi_scene

    real = _compute(ingest(single_granule([day]), ["C05", "C13", "C14"])[["brightness_temperature_C13"]])
    bt = real["brightness_temperature_C13"].values
    assert np.nanmin(bt) > 200
    assert np.nanmax(bt) < 340
    assert np.nanmedian(bt) > 270
    write_abi_scene(tmp_path, dt.datetime(2019, 10, 27, 20, 0, 27), "M1", "G17", bands=["C05"], seed=5, thermal=True)
    scene = _compute(ingest(single_granule([tmp_path]), ["C05", "C07", "C13"]))
    with xr.open_dataset(next(tmp_path.glob("MTHCCAR-TRUTH_*.nc"))) as truth:
        cloudy = truth["cloud_mask"].values == 1
        clear = truth["cloud_mask"].values == 0
    c13 = scene["brightness_temperature_C13"].values
    assert np.nanmedian(c13[clear]) > np.nanmedian(c13[cloudy]) + 5
    assert np.nanpercentile(c13[cloudy], 10) < np.nanpercentile(c13[clear], 10) - 20  # high ice tops
    assert np.isfinite(scene["brightness_temperature_C07"].values).mean() > 0.99


@pytest.mark.parametrize("import_pipeline", [False, True])
def test_off_disk_blocks_do_not_flood_the_log_with_numpy_warnings(import_pipeline: bool) -> None:
    """Averaging an all-NaN 0.5 km block (off the Earth's disk) warns from numpy at compute time, long
    after ingest returned; the processing path silences exactly that message of satpy's resampler."""
    import subprocess
    import sys

    script = (
        ("import pipeline.ingest\n" if import_pipeline else "")
        + "import numpy as np, dask.array as da\n"
        + "from satpy.resample.native import _aggregate\n"
        + "_aggregate(da.full((8, 8), np.nan, chunks=4), 2.0, 2.0).compute()\n"
    )
    done = subprocess.run([sys.executable, "-W", "default", "-c", script], capture_output=True, text=True, check=True)
    assert ("Mean of empty slice" in done.stderr) is not import_pipeline, done.stderr
