"""A dask scheduler that counts computes (as satpy's tests do), to assert laziness."""

from __future__ import annotations

from typing import Any

import dask


class CountingScheduler:
    """Synchronous scheduler that fails once more than ``max_computes`` computes happen."""

    def __init__(self, max_computes: int = 0) -> None:
        self.max_computes = max_computes
        self.calls = 0

    def __call__(self, dsk: Any, keys: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls > self.max_computes:
            raise RuntimeError(f"{self.calls} dask computes happened, at most {self.max_computes} were expected")
        return dask.get(dsk, keys, **kwargs)
