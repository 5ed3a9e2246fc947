"""satpy configuration shipped with the project: the product file names for ``satpy_cf_nc``."""

from __future__ import annotations

from pathlib import Path

CONFIG_DIR = Path(__file__).parent / "etc"


def register() -> None:
    """Add the project's reader extensions to satpy's configuration search path."""
    import satpy

    paths = list(satpy.config.get("config_path", []))
    if str(CONFIG_DIR) not in paths:
        satpy.config.set(config_path=[*paths, str(CONFIG_DIR)])


if __name__ == "__main__":  # pragma: no cover
    print(CONFIG_DIR)
