"""What every command of ``mthccar`` shares: a user error is one sentence and a non-zero exit."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer

F = TypeVar("F", bound=Callable[..., Any])


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input: reported as one sentence, exit status 1."""
    return (ValueError, FileNotFoundError, FileExistsError, PermissionError, KeyError)


def friendly_errors(func: F) -> F:
    """Turn a user error into one clear sentence on stderr and a non-zero exit, with no traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except user_errors() as err:
            message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
            typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def band_list(bands: str | None) -> list[str] | None:
    return [b.strip() for b in bands.split(",") if b.strip()] if bands else None
