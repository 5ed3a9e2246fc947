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
