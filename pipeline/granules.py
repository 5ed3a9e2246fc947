"""Find the files of one scan: from a directory, a list of paths or an fsspec URL, grouped per scan.

File names are parsed with the satpy reader's own patterns (``FileYAMLReader``), so anything satpy
recognises is grouped here too: by platform, sector (ABI) and start time within a threshold. A
granule knows which bands and geolocation companions it has, and says in one sentence what is
missing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from pipeline.sensors import PLATFORM_NAMES, ReaderSpec, reader_spec, readers_for

logger = logging.getLogger(__name__)

TIME_THRESHOLD_S = 30.0


@lru_cache(maxsize=64)
def _group_variables(path: str, group: str) -> frozenset[str] | None:
    """Variable names in one group of a local netCDF file; None when it cannot be read here."""
    import netCDF4

    from pipeline.netcdf_lock import netcdf_lock

    try:
        with netcdf_lock(), netCDF4.Dataset(path) as nc:
            return frozenset(nc.groups[group].variables) if group in nc.groups else None
    except (OSError, ValueError):
        return None  # remote or unreadable: the file check reports it in its own words


class GranuleError(ValueError):
    """The input files do not make a usable granule."""


@dataclass(frozen=True)
class FileEntry:
    path: str
    file_type: str
    groups: tuple[str, ...]  # VIIRS SDR dataset groups in the file (SVM01, GMTCO, ...)
    info: dict[str, Any] = field(hash=False, compare=False)


@dataclass(frozen=True)
class Granule:
    """The files of one scan for one reader."""

    reader: str
    files: tuple[FileEntry, ...]
    start_time: dt.datetime
    end_time: dt.datetime
    platform: str  # as in the file names (G17, NP, j01, PACE)
    sector: str | None = None

    @property
    def spec(self) -> ReaderSpec:
        return reader_spec(self.reader)

    @property
    def sensor(self) -> str:
        return self.spec.sensor

    @property
    def paths(self) -> list[str]:
        return [f.path for f in self.files]

    @property
    def platform_name(self) -> str:
        return PLATFORM_NAMES.get(self.platform, self.platform)

    @property
    def id(self) -> str:
        parts = [self.sensor, self.platform, self.sector or "", f"{self.start_time:%Y%m%dT%H%M%S}"]
        return "_".join(p for p in parts if p)

    def keys(self) -> set[str]:
        """File types and dataset groups present."""
        return {f.file_type for f in self.files} | {g for f in self.files for g in f.groups}

    def missing(self, bands: Sequence[str]) -> list[str]:
        """Plain-words list of what the granule lacks for these bands (empty when complete)."""
        spec, keys = self.spec, self.keys()
        problems = []
        absent: list[str] = []
        if spec.band_keys is not None:
            absent = [b for b in bands if spec.band_keys.get(b) not in keys]
        elif spec.band_group is not None:
            main_paths = [f.path for f in self.files if f.file_type in spec.main_files]
            present = _group_variables(main_paths[0], spec.band_group) if main_paths else None
            if present is not None:
                absent = [b for b in bands if b not in present]
        if absent:
            problems.append(f"band{'s' if len(absent) > 1 else ''} {', '.join(absent)}")
        for main in spec.main_files:
            if main not in keys:
                problems.append(f"its {main} file")
        if spec.geolocation and not keys & set(spec.geolocation):
            problems.append(f"the geolocation companion ({' or '.join(spec.geolocation)})")
        return problems

    def used_paths(self, bands: Sequence[str]) -> list[str]:
        """The files a retrieval from these bands reads: their band files and the companions."""
        spec = self.spec
        if spec.band_keys is None:
            return self.paths
        wanted = {spec.band_keys[b] for b in bands if b in spec.band_keys}
        wanted |= set(spec.main_files) | set(spec.geolocation)
        return [f.path for f in self.files if f.file_type in wanted or wanted.intersection(f.groups)]

    def require(self, bands: Sequence[str]) -> None:
        """Raise ``GranuleError`` naming the granule and what it lacks, if anything."""
        problems = self.missing(bands)
        if problems:
            raise GranuleError(
                f"granule {self.id} ({', '.join(Path(p).name for p in self.paths[:3])}"
                f"{'...' if len(self.paths) > 3 else ''}) lacks {' and '.join(problems)}"
            )


def is_url(path: str) -> bool:
    """Whether ``path`` names a remote file (an fsspec URL: s3://, gs://, https://...); ``file://``
    names a local one."""
    return "://" in path and not path.startswith("file://")


def expand_inputs(inputs: Iterable[str | Path]) -> list[str]:
    """Files named by paths, directories (their files), globs or fsspec URLs."""
    import fsspec

    files: list[str] = []
    for item in inputs:
        text = str(item)
        if is_url(text):
            fs, _, paths = fsspec.get_fs_token_paths(text)
            found = [p for p in (fs.find(paths[0]) if fs.isdir(paths[0]) else paths)]
            files.extend(fs.unstrip_protocol(p) for p in found)
            continue
        path = Path(text.removeprefix("file://"))
        if path.is_dir():
            files.extend(str(p) for p in sorted(path.iterdir()) if p.is_file() and not p.name.startswith("."))
        elif any(ch in text for ch in "*?["):
            files.extend(
                str(p)
                for p in sorted(
                    Path(path.anchor or ".").glob(str(path.relative_to(path.anchor)) if path.is_absolute() else text)
                )
            )
        elif path.exists():
            files.append(str(path))
        else:
            raise FileNotFoundError(f"input {text} does not exist")
    return files


def _reader_entries(reader_name: str, files: Sequence[str]) -> list[FileEntry]:
    from satpy.readers.core.config import configs_for_reader
    from satpy.readers.core.loading import load_reader

    configs = next(iter(configs_for_reader(reader_name)))
    reader = load_reader(configs)
    remaining = set(reader.filter_selected_filenames(files))
    entries = []
    for file_type, filetype_info in reader.sorted_filetype_items():
        for path, info in reader.filename_items_for_filetype(set(remaining), filetype_info):
            groups = tuple(str(info.get("datasets", "")).split("-")) if "datasets" in info else ()
            entries.append(FileEntry(path, file_type, tuple(g for g in groups if g), dict(info)))
            remaining.discard(path)
    return entries


def _group(reader_name: str, entries: list[FileEntry]) -> list[Granule]:
    spec = reader_spec(reader_name)
    entries = sorted(entries, key=lambda e: e.info["start_time"])
    groups: list[list[FileEntry]] = []
    for entry in entries:
        key = tuple(entry.info.get(k) for k in spec.group_keys)
        for group in groups:
            first = group[0]
            same_key = tuple(first.info.get(k) for k in spec.group_keys) == key
            close = abs((entry.info["start_time"] - first.info["start_time"]).total_seconds()) <= TIME_THRESHOLD_S
            if same_key and close:
                group.append(entry)
                break
        else:
            groups.append([entry])
    granules = []
    for group in groups:
        start = min(e.info["start_time"] for e in group)
        platform = str(group[0].info.get(spec.platform_key, "PACE" if spec.sensor == "oci" else "unknown"))
        sector = str(group[0].info[spec.sector_key]) if spec.sector_key else None
        granules.append(Granule(reader_name, tuple(group), start, _scan_end(spec, group, start), platform, sector))
    return granules


def _scan_end(spec: ReaderSpec, group: list[FileEntry], start: dt.datetime) -> dt.datetime:
    """The scan's end: its nominal slot where the sensor has one, so the granule's identity does not
    depend on which band files are present; else the latest end its file names give."""
    info = group[0].info
    if spec.slot_durations_s and spec.sector_key:
        sector = str(info[spec.sector_key])
        mode = str(info.get(spec.scan_mode_key or "", ""))
        slot = spec.slot_durations_s.get(f"{sector}/{mode}", spec.slot_durations_s.get(sector))
        if slot:
            return start + dt.timedelta(seconds=slot)
    nominal = dt.timedelta(seconds=spec.nominal_duration_s)  # names without an end time
    return max(e.info.get("end_time") or e.info["start_time"] + nominal for e in group)


def find_granules(inputs: Iterable[str | Path], sensor: str | None = None, reader: str | None = None) -> list[Granule]:
    """Group input files into granules (one per scan), for one sensor or reader, oldest first."""
    files = expand_inputs(inputs)
    if not files:
        raise GranuleError("no input files were given or found")
    candidates = (
        [reader]
        if reader
        else list(readers_for(sensor))
        if sensor
        else [r for s in ("abi", "viirs", "oci") for r in readers_for(s)]
    )
    granules: list[Granule] = []
    claimed: set[str] = set()
    for name in candidates:
        entries = [e for e in _reader_entries(name, files) if e.path not in claimed]
        claimed.update(e.path for e in entries)
        granules.extend(_group(name, entries))
    if not granules:
        what = f"{sensor} " if sensor else ""
        sample = ", ".join(Path(f).name for f in files[:3])
        raise GranuleError(
            f"none of the {len(files)} input files ({sample}{'...' if len(files) > 3 else ''}) "
            f"is a {what}L1b file this pipeline reads"
        )
    ignored = [f for f in files if f not in claimed]
    if ignored:
        logger.debug("ignoring %d files no reader claims: %s", len(ignored), ", ".join(Path(f).name for f in ignored))
    return sorted(granules, key=lambda g: g.start_time)


def single_granule(inputs: Iterable[str | Path], sensor: str | None = None) -> Granule:
    """The one granule the inputs make; an error when they hold several scans."""
    granules = find_granules(inputs, sensor)
    if len(granules) > 1:
        times = ", ".join(f"{g.start_time:%Y-%m-%d %H:%M:%S}" for g in granules[:4])
        raise GranuleError(f"the input files mix {len(granules)} scans ({times}); give the files of one scan")
    return granules[0]
