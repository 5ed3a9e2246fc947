"""The ``synth-granule`` command of ``mthccar``: a synthetic scene written in a real L1b format."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from models.bands import SensorName
from models.commands import band_list, friendly_errors

app = typer.Typer()


def _parse_time(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)
    except ValueError:
        raise ValueError(f"--time {value!r} is not an ISO 8601 time such as 2019-10-27T20:00:27") from None


@app.command("synth-granule")
@friendly_errors
def synth_granule(
    sensor: Annotated[SensorName, typer.Option(help="Sensor whose L1b format to write.")],
    time: Annotated[str, typer.Option(help="Scan start time (UTC, ISO 8601), e.g. 2019-10-27T20:00:27.")],
    out: Annotated[Path, typer.Option(help="Output directory.")],
    sector: Annotated[str | None, typer.Option(help="ABI sector: M1, M2, C or F.")] = None,
    platform: Annotated[str | None, typer.Option(help="G16-G19 (ABI), NP/J1/J2 (VIIRS).")] = None,
    file_format: Annotated[str | None, typer.Option("--format", help="VIIRS: l1b (VNP02/03MOD) or sdr.")] = None,
    bands: Annotated[str | None, typer.Option(help="Comma-separated bands (default: all solar bands).")] = None,
    lines: Annotated[int | None, typer.Option(min=16, help="Swath lines (VIIRS, OCI).")] = None,
    pixels: Annotated[int | None, typer.Option(min=2, help="Swath pixels (VIIRS, OCI).")] = None,
    centre_lat: Annotated[float | None, typer.Option(help="Swath centre latitude (VIIRS, OCI).")] = None,
    seed: Annotated[int, typer.Option(help="Scene random seed.")] = 0,
    block: Annotated[
        int | None,
        typer.Option(min=1, help="Simulate once per BLOCK x BLOCK pixels (default: <= 3 M sample-band values)."),
    ] = None,
    thermal: Annotated[
        bool, typer.Option(help="ABI: also write C07, C11, C13-C16; VIIRS (L1B): M12-M16 (day and night).")
    ] = False,
) -> None:
    """Render a synthetic scene into real L1b files (and a truth file beside them)."""
    import time as clock

    from models.synthetic.granules import synthesise

    started = clock.perf_counter()
    paths = synthesise(
        sensor.value,
        out,
        _parse_time(time),
        band_list(bands),
        sector=sector,
        platform=platform,
        file_format=file_format,
        lines=lines,
        pixels=pixels,
        centre_lat=centre_lat,
        seed=seed,
        thermal=thermal,
        block=block,
    )
    typer.echo(f"wrote {len(paths)} files to {out} in {clock.perf_counter() - started:.1f} s")
    for path in paths:
        typer.echo(f"  {path.name}")
