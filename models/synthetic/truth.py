"""Truth files beside synthetic granules: what the scene really held, for end-to-end scoring.

One netCDF file per granule, on the product grid: ``cloud_mask`` (0 clear, 1 cloudy),
``cloud_phase`` (0 clear, 1 liquid, 2 ice), ``cloud_optical_thickness`` (at 0.55 um),
``cloud_effective_radius`` and ``surface_class``; 255 / NaN where nothing was simulated (space,
night). Written under a temporary name and renamed when complete.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import netCDF4
import numpy as np

from models.fileio import publish, temporary_path
from models.training.simulate.simulator import AtmosphereState

TRUTH_PREFIX = "MTHCCAR-TRUTH_"
NOT_SIMULATED = 255


def truth_file_name(granule_id: str) -> str:
    return f"{TRUTH_PREFIX}{granule_id}.nc"


class TruthWriter:
    def __init__(self, directory: Path, granule_id: str, shape: tuple[int, int], attrs: dict[str, Any]) -> None:
        name = truth_file_name(granule_id)
        self.final = directory / name
        self.tmp = temporary_path(self.final)
        nc = self.nc = netCDF4.Dataset(self.tmp, "w", format="NETCDF4")
        nc.createDimension("y", shape[0])
        nc.createDimension("x", shape[1])
        nc.setncatts({"title": "MT-HCCAR synthetic scene truth", "granule_id": granule_id, **attrs})
        chunks = (min(shape[0], 512), min(shape[1], 512))
        for name_, dtype, fill, meaning in (
            ("cloud_mask", "u1", NOT_SIMULATED, "0 clear, 1 cloudy"),
            ("cloud_phase", "u1", NOT_SIMULATED, "0 clear, 1 liquid, 2 ice"),
            ("cloud_optical_thickness", "f4", np.float32(np.nan), "cloud optical thickness at 0.55 um"),
            ("cloud_effective_radius", "f4", np.float32(np.nan), "um"),
            ("surface_class", "i2", np.int16(-1), "IGBP class 1-20"),
        ):
            var = nc.createVariable(
                name_, dtype, ("y", "x"), zlib=True, complevel=2, chunksizes=chunks, fill_value=fill
            )
            var.long_name = meaning

    def write(self, rows: slice, simulated: np.ndarray, state: AtmosphereState) -> None:
        """Rows ``rows``; ``state`` holds the simulated pixels (``simulated`` True) in row-major order."""
        shape = simulated.shape

        def scatter(values: np.ndarray, fill: Any, dtype: Any) -> np.ndarray:
            out = np.full(shape, fill, dtype=dtype)
            out[simulated] = values
            return out

        cloudy = state.cloudy
        self.nc["cloud_mask"][rows, :] = scatter(cloudy.astype(np.uint8), NOT_SIMULATED, np.uint8)
        self.nc["cloud_phase"][rows, :] = scatter(
            np.where(cloudy, np.where(state.ice, 2, 1), 0).astype(np.uint8), NOT_SIMULATED, np.uint8
        )
        self.nc["cloud_optical_thickness"][rows, :] = scatter(
            np.where(cloudy, 10.0 ** np.nan_to_num(state.log10_cot, nan=-9), np.nan), np.nan, np.float32
        )
        self.nc["cloud_effective_radius"][rows, :] = scatter(
            np.where(cloudy, state.effective_radius, np.nan), np.nan, np.float32
        )
        self.nc["surface_class"][rows, :] = scatter(state.surface_class, -1, np.int16)

    def finish(self) -> Path:
        self.nc.close()
        return publish(self.tmp, self.final)

    def abort(self) -> None:
        if self.nc.isopen():
            self.nc.close()
        self.tmp.unlink(missing_ok=True)


def write_truth(
    directory: Path, granule_id: str, simulated: np.ndarray, state: AtmosphereState, attrs: dict[str, Any]
) -> Path:
    """A whole truth file in one go (swath granules are rendered in one block)."""
    writer = TruthWriter(directory, granule_id, simulated.shape, attrs)
    try:
        writer.write(slice(0, simulated.shape[0]), simulated, state)
        return writer.finish()
    except BaseException:
        writer.abort()
        raise
