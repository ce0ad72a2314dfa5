"""Turn library errors into one clear line and a non-zero exit; show warnings briefly."""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import click

from robustbench_lite.errors import RobustbenchError

F = TypeVar("F", bound=Callable[..., Any])


def explain_errors(command: F) -> F:
    """Re-raise `RobustbenchError` as `click.ClickException` (message only, exit code 1)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except RobustbenchError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper  # type: ignore[return-value]


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    click.echo(f"Warning: {message}", err=True)


def configure_output(quiet: bool, verbose: bool = False) -> None:
    """Log to stderr (warnings only when ``quiet``) and print warnings as one line each."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    logging.basicConfig(level=level, format="%(message)s", force=True)
    for noisy in ("matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warnings.showwarning = _show_warning
