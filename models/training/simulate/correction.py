"""The DISORT-derived correction of the fast model's multiple-scattering term (shipped table).

Built by ``build_tables.build_ms_correction`` from 32-stream DISORT (TMS/IMS) for one HG cloud
layer over a black surface; with it the fast model's median error against DISORT drops from a few
percent to about 0.5 % (rt-simulator-notes section 3).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
from scipy.interpolate import RegularGridInterpolator

from models.training.simulate.optics import DATA

AXES = ("G", "LW", "LTAU", "MU0", "MU", "PHI")
THIN_CLOUD = 0.01  # below this optical thickness multiple scattering is Rayleigh's: no correction


class MSCorrection:
    """Multilinear lookup C(g, log10(1 - ssa), log10 tau, mu0, mu, phi) with clamping to the table."""

    def __init__(self, path: Path = DATA / "ms_correction.npz") -> None:
        with np.load(path) as data:
            axes = [data[name].astype(np.float64) for name in AXES]
            values = data["C"].astype(np.float64)
        self.low = np.array([a[0] for a in axes])
        self.high = np.array([a[-1] for a in axes])
        self.interpolator = RegularGridInterpolator(axes, values)

    def __call__(
        self, g: np.ndarray, ssa: np.ndarray, tau: np.ndarray, mu0: np.ndarray, mu: np.ndarray, phi_deg: np.ndarray
    ) -> np.ndarray:
        arrays = np.broadcast_arrays(
            g, np.log10(np.maximum(1 - ssa, 1e-9)), np.log10(np.maximum(tau, 1e-6)), mu0, mu, phi_deg
        )
        points = np.stack([np.clip(a, lo, hi) for a, lo, hi in zip(arrays, self.low, self.high, strict=True)], -1)
        factor = self.interpolator(points.reshape(-1, len(AXES))).reshape(arrays[0].shape)
        return np.where(arrays[2] < np.log10(THIN_CLOUD), 1.0, factor)


@cache
def shipped_correction() -> MSCorrection:
    return MSCorrection()
