"""One entry point for synthetic granules of every sensor, in their real L1b formats."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from models.synthetic.l1b_abi import write_abi_scene
from models.synthetic.l1b_oci import write_oci_granule
from models.synthetic.l1b_viirs import write_viirs_granule


def _abi(out: Path, time: dt.datetime, options: dict[str, Any]) -> list[Path]:
    return write_abi_scene(
        out,
        time,
        sector=options.get("sector") or "M1",
        platform=options.get("platform") or "G17",
        bands=options.get("bands"),
        seed=options.get("seed", 0),
        thermal=bool(options.get("thermal")),
        block=options.get("block"),
    )


def _viirs(out: Path, time: dt.datetime, options: dict[str, Any]) -> list[Path]:
    kwargs = {k: options[k] for k in ("lines", "pixels", "centre_lat", "block") if options.get(k) is not None}
    return write_viirs_granule(
        out,
        time,
        platform=options.get("platform") or "NP",
        file_format=options.get("file_format") or "l1b",
        bands=options.get("bands"),
        seed=options.get("seed", 0),
        thermal=bool(options.get("thermal")),
        **kwargs,
    )


def _solar_only(sensor: str, options: dict[str, Any]) -> None:
    if options.get("thermal"):
        raise ValueError(f"synthetic {sensor} granules have solar bands only; --thermal is for ABI and VIIRS")


def _oci(out: Path, time: dt.datetime, options: dict[str, Any]) -> list[Path]:
    _solar_only("OCI", options)
    kwargs = {k: options[k] for k in ("lines", "pixels", "centre_lat", "block") if options.get(k) is not None}
    if options.get("bands"):
        raise ValueError("OCI granules always carry every blue, red and SWIR band; drop --bands")
    return write_oci_granule(out, time, seed=options.get("seed", 0), **kwargs)


WRITERS: dict[str, Callable[[Path, dt.datetime, dict[str, Any]], list[Path]]] = {
    "abi": _abi,
    "viirs": _viirs,
    "oci": _oci,
}


def synthesise(
    sensor: str, out: str | Path, time: dt.datetime, bands: Sequence[str] | None = None, **options: Any
) -> list[Path]:
    """Write a synthetic granule of ``sensor`` (plus its truth file) into ``out``; returns the paths."""
    try:
        writer = WRITERS[sensor]
    except KeyError:
        raise ValueError(f"unknown sensor {sensor!r}: expected one of {', '.join(WRITERS)}") from None
    return writer(Path(out), time, {**options, "bands": list(bands) if bands else None})
