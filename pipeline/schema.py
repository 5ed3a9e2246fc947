"""The cloud product's schema as data (``pipeline/etc/product.yaml``): names, variables, attributes.

``pipeline.product`` computes values and asks this module for everything a reader of the file sees:
file names, each variable's dtype and CF attributes, the coordinates' attributes and the constant
global attributes. satpy's reader extension (``pipeline/etc/readers/satpy_cf_nc.yaml``) is generated
from the same file names: ``python -m pipeline.schema --write-reader``.
"""

from __future__ import annotations

import argparse
import re
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ETC = Path(__file__).resolve().parent / "etc"
SCHEMA_FILE = ETC / "product.yaml"
READER_FILE = ETC / "readers" / "satpy_cf_nc.yaml"
DTYPES = {"u1": np.uint8, "f4": np.float32}
_ONE_PLACEHOLDER = re.compile(r"^\{(\w+)\}$")
_FIELD = re.compile(r"\{(\w+)(?::[^}]*)?\}")
_TYPED_BY_VARIABLE = ("flag_values", "valid_range")  # arrays of the variable's own dtype


@cache
def schema() -> dict[str, Any]:
    """The parsed schema (read once per process)."""
    content: dict[str, Any] = yaml.safe_load(SCHEMA_FILE.read_text())
    return content


def variable_names() -> tuple[str, ...]:
    return tuple(schema()["variables"])


def variable_dtype(name: str) -> Any:
    return DTYPES[schema()["variables"][name]["dtype"]]


def fill_value(dtype: Any) -> Any:
    """The product's fill value for a variable of ``dtype`` (uint8 or float32)."""
    code = next(code for code, numpy_type in DTYPES.items() if np.dtype(numpy_type) == np.dtype(dtype))
    return DTYPES[code](schema()["fill_values"][code])


def _resolve(value: Any, context: dict[str, Any]) -> Any:
    """Fill ``{placeholders}``; a value that is a single placeholder takes the context's object itself."""
    if not isinstance(value, str):
        return value
    whole = _ONE_PLACEHOLDER.match(value)
    if whole:
        return context[whole.group(1)]
    return value.format(**context) if "{" in value else value


def attributes(table: dict[str, Any], context: dict[str, Any] | None = None) -> dict[str, Any]:
    return {key: _resolve(value, context or {}) for key, value in table.items()}


def variable_attributes(name: str, context: dict[str, Any] | None = None) -> dict[str, Any]:
    """CF attributes of a 2-D product variable, placeholders filled from ``context``."""
    entry = schema()["variables"][name]
    attrs = attributes(entry["attrs"], context)
    dtype = DTYPES[entry["dtype"]]
    for key in _TYPED_BY_VARIABLE:
        if key in attrs:
            attrs[key] = np.asarray(attrs[key], dtype=dtype)
    return {**attrs, **schema()["field_attributes"]}


def coordinate_attributes(name: str, context: dict[str, Any] | None = None) -> dict[str, Any]:
    return attributes(schema()["coordinates"][name], context)


def global_attributes() -> dict[str, Any]:
    return dict(schema()["global_attributes"])


def file_name(kind: str, **fields: Any) -> str:
    """A file name from the schema's patterns; ``kind`` is ``stem``, ``product`` or ``gridded``."""
    names = schema()["file_names"]
    stem = str(names["stem"].format(prefix=names["prefix"], **fields))
    return stem if kind == "stem" else str(names[kind].format(stem=stem, **fields))


def file_glob(kind: str, **fields: Any) -> str:
    """A glob of ``kind`` names: the stem's fields must be given, any other missing field is ``*``."""
    stem = file_name("stem", **fields)
    if kind == "stem":
        return stem
    keep = {*fields, "stem"}
    wildcarded = _FIELD.sub(lambda field: field.group(0) if field.group(1) in keep else "*", _pattern(kind))
    return wildcarded.format(stem=stem, **fields)


def _pattern(kind: str) -> str:
    return str(schema()["file_names"][kind])


def reader_patterns() -> list[str]:
    """satpy (trollsift) patterns of the product and its gridded files, most specific first."""
    names = schema()["file_names"]
    stem = names["stem"].replace("{prefix}", names["prefix"])
    return [names[kind].replace("{stem}", stem) for kind in ("gridded", "product")]


def reader_config() -> str:
    """The text of satpy's ``satpy_cf_nc`` extension for the products."""
    header = (
        "# Generated from pipeline/etc/product.yaml by `python -m pipeline.schema --write-reader`; do not edit.\n"
        "# Extends satpy's own satpy_cf_nc reader with the file names of MT-HCCAR products, so that\n"
        '# Scene(reader="satpy_cf_nc", filenames=[product]) opens them. satpy finds this file through the\n'
        '# package\'s "satpy.readers" entry point (pyproject.toml), which points it at pipeline/etc/.\n'
    )
    body = (
        "reader:\n"
        "  name: satpy_cf_nc\n"
        "file_types:\n"
        "  mthccar_product:\n"
        "    file_reader: !!python/name:satpy.readers.satpy_cf_nc.SatpyCFFileHandler\n"
        "    file_patterns:\n" + "".join(f"      - '{pattern}'\n" for pattern in reader_patterns())
    )
    return header + body


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-reader", action="store_true", help=f"write {READER_FILE}")
    args = parser.parse_args(argv)
    if args.write_reader:
        READER_FILE.write_text(reader_config())
    else:
        print(reader_config(), end="")


if __name__ == "__main__":
    main()
