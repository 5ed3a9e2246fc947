"""VIIRS granules with their thermal bands (M12-M16): read as rendered, retrieved day and night."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from models.bands import VIIRS_M_BANDS
from models.synthetic.l1b_viirs import VIIRS, write_viirs_granule
from models.synthetic.polar import render_swath
from pipeline.features import NIGHT_RETRIEVED
from pipeline.granules import single_granule
from pipeline.ingest import ingest

DAY = dt.datetime(2019, 10, 27, 20, 30)  # 13:30 local solar time under the swath
NIGHT = dt.datetime(2019, 10, 27, 9, 30)  # 01:30 local solar time at 120 W
THERMAL = ("M12", "M13", "M14", "M15", "M16")
SHAPE = {"lines": 48, "pixels": 80}


@pytest.fixture(scope="module")
def granules(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("viirs_thermal")
    for name, time in (("day", DAY), ("night", NIGHT)):
        write_viirs_granule(root / name, time, seed=1, centre_lon=-120.0, thermal=True, **SHAPE)
    return {"day": root / "day", "night": root / "night"}


def _rendered(time: dt.datetime) -> np.ndarray:
    one_band = [VIIRS_M_BANDS[0]]  # the granule's pixels are rendered one by one (block 1) too
    scene = render_swath(VIIRS, time, one_band, SHAPE["lines"], SHAPE["pixels"], 35.0, -120.0, 1, 1, THERMAL)
    assert scene.brightness_temperature is not None
    return scene.brightness_temperature


@pytest.mark.parametrize("when", ["day", "night"])
def test_thermal_bands_read_back_as_rendered(when: str, granules: dict[str, Path]) -> None:
    """satpy's viirs_l1b reader turns the radiance counts into temperatures through each band's lookup
    table; they are the rendered ones up to the counts' resolution."""
    values = ingest(single_granule([granules[when]]), list(THERMAL)).compute()
    rendered = _rendered(DAY if when == "day" else NIGHT)
    for k, band in enumerate(THERMAL):
        read = values[f"brightness_temperature_{band}"].values
        assert read.dtype == np.float32
        warm = rendered[..., k] > 260.0  # 3.7-4 um counts are coarse in the cold
        tolerance = 0.05 if band in ("M14", "M15", "M16") else 0.5
        np.testing.assert_allclose(read[warm], rendered[..., k][warm], atol=tolerance)
    m15 = values["brightness_temperature_M15"].values
    assert 200.0 < np.nanmin(m15) < np.nanmax(m15) < 320.0


def test_thermal_bands_need_the_l1b_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"thermal bands \(M12-M16\) are written in the L1B format only"):
        write_viirs_granule(tmp_path, DAY, file_format="sdr", thermal=True, **SHAPE)


def _scores(product: Path, truth_dir: Path) -> tuple[np.ndarray, dict[str, float]]:
    truth = xr.open_dataset(next(truth_dir.glob("MTHCCAR-TRUTH_*.nc")), mask_and_scale=False)
    with truth, xr.open_dataset(product, mask_and_scale=False) as ds:
        quality = ds["retrieval_quality"].values
        mask, true_mask = ds["cloud_mask"].values, truth["cloud_mask"].values
        cot = truth["cloud_optical_thickness"].values
        land = ~np.isin(truth["surface_class"].values, (17,))
        scores = {
            "agreement": float((mask == true_mask).mean()),
            "clear land flagged": float((mask[(true_mask == 0) & land] == 1).mean()),
            "cloud flagged": float((mask[true_mask == 1] == 1).mean()),
            "cloud of COT >= 1 flagged": float((mask[(true_mask == 1) & (cot >= 1)] == 1).mean()),
        }
        return quality, scores


def test_day_and_night_granules_run_the_thermal_models(granules: dict[str, Path], tmp_path: Path) -> None:
    """By day the solar + thermal model with the night model beside it; at night the night model on
    every pixel. Scored against the scene's truth, which with thermal bands covers night pixels too."""
    from pipeline.process import ProcessOptions, process_granule

    for when in ("day", "night"):
        product = process_granule(
            single_granule([granules[when]]), ProcessOptions(out_dir=tmp_path / when, quicklook=False)
        ).product
        with xr.open_dataset(product) as ds:
            assert ds.attrs["model_artifact"] == "mthccar_viirs_ir"
            assert ds.attrs["night_model_artifact"] == "mthccar_viirs_night"
        quality, scores = _scores(product, granules[when])
        if when == "night":
            assert np.all(quality == NIGHT_RETRIEVED)
        else:
            assert np.all(quality <= 1)
        assert scores["agreement"] >= 0.9, (when, scores)
        assert scores["clear land flagged"] <= 0.1, (when, scores)
        # sub-unit clouds are where the models miss (2.4.0 by day: COT < 0.3 21 %, 0.3-1 64 %, 1-3 98.5 %)
        assert scores["cloud of COT >= 1 flagged"] >= 0.97, (when, scores)
        assert scores["cloud flagged"] >= 0.85, (when, scores)


def test_block_rendered_thermal_granule_describes_every_pixel(tmp_path: Path) -> None:
    """Rendered once per 4 x 4 pixels, day and night pixels alike: the truth covers every pixel and
    the temperatures are constant on each block up to the 0.1 K noise."""
    write_viirs_granule(tmp_path, NIGHT, seed=1, centre_lon=-120.0, thermal=True, block=4, **SHAPE)
    with xr.open_dataset(next(tmp_path.glob("MTHCCAR-TRUTH_*.nc")), mask_and_scale=False) as truth:
        assert (truth["cloud_mask"].values != 255).all()
    m15 = ingest(single_granule([tmp_path]), ["M15"]).compute()["brightness_temperature_M15"].values
    tiles = m15.reshape(12, 4, 20, 4)
    assert float(np.nanmax(tiles.std(axis=(1, 3)))) < 0.3
