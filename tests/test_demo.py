"""The demo's choice of real scenes: what it processes, and what it says when they are not there."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.demo import missing_real_scenes_notice, real_granules
from pipeline.real_scenes import GRANULES_ENV, REAL_DAY_SCENE, REAL_NIGHT_SCENE, granules_root


def test_the_shared_real_scenes_are_found_and_nothing_is_said() -> None:
    found = real_granules()
    assert found == {
        "real": granules_root().joinpath(*REAL_DAY_SCENE),
        "real_night": granules_root().joinpath(*REAL_NIGHT_SCENE),
    }
    assert missing_real_scenes_notice(found) is None


def test_absent_real_scenes_are_named_with_where_the_demo_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(GRANULES_ENV, str(tmp_path))
    day = tmp_path.joinpath(*REAL_DAY_SCENE)
    day.mkdir(parents=True)
    (day / "OR_ABI-L1b-RadM1-M6C01_G17_s20193002000275_e20193002000332_c20193002000379.nc").touch()
    tmp_path.joinpath(*REAL_NIGHT_SCENE).mkdir(parents=True)  # a folder without L1b files is not a scene

    found = real_granules()
    notice = missing_real_scenes_notice(found)

    assert list(found) == ["real"]
    assert notice is not None
    assert str(tmp_path) in notice
    assert GRANULES_ENV in notice
    assert "/".join(REAL_NIGHT_SCENE) in notice
    assert "/".join(REAL_DAY_SCENE) not in notice
    assert "\n" not in notice


@pytest.mark.slow
def test_the_demo_runs_the_default_models_on_every_scene(tmp_path: Path) -> None:
    """``make demo`` end to end (about 2 minutes): products, validation and the synthetic scan's score."""
    import netCDF4

    from flows.demo import run_demo

    # a folder from an older, solar-only demo: its scan is rendered again and its product goes
    stale_scan = tmp_path / "demo" / "input" / "synthetic_abi_m1"
    stale_scan.mkdir(parents=True)
    (stale_scan / "OR_ABI-L1b-RadM1-M6C01_G17_s20193002000275_e20193002000332_c20193002000379.nc").touch()
    stale_product = tmp_path / "demo" / "products" / "synthetic" / "MTHCCAR-L2-CLD_G17_abi_M1_old_v2.5.0.nc"
    stale_product.parent.mkdir(parents=True)
    stale_product.touch()

    summary = run_demo(tmp_path / "demo")

    assert set(summary["runs"]) == {"synthetic", "real", "real_night"}
    artifacts = {}
    for name, outcomes in summary["runs"].items():
        assert [o["status"] for o in outcomes] == ["processed"], name
        with netCDF4.Dataset(outcomes[0]["product"]) as product:
            artifacts[name] = (product.getncattr("model_artifact"), product.getncattr("night_model_artifact"))
    assert artifacts == {
        "synthetic": ("mthccar_abi_ir", "mthccar_abi_night"),  # every band: the default thermal day model
        "real": ("mthccar_abi_noc02_ir", "mthccar_abi_night"),  # the shared day scan has no C02
        "real_night": ("mthccar_abi_ir", "mthccar_abi_night"),
    }
    # both real products judged, the night one by its scan's C13 alone: mask and phase lines
    assert set(summary["validation"]) == {"real", "real_night"}
    night = summary["validation"]["real_night"].read_text()
    assert "C13 brightness temperature < 250 K" in night
    assert "too cold for liquid water" in night
    assert "FDC" not in night
    assert list(stale_product.parent.glob("*.nc")) == [Path(summary["runs"]["synthetic"][0]["product"])]
    assert summary["score"]["mask_accuracy"] > 0.92
    assert summary["score"]["phase_accuracy"] > 0.98
