"""Turn library errors into one clear line and a non-zero exit; show warnings briefly."""

from __future__ import annotations

import functools
import logging
import re
import shlex
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import click

from robustbench_lite.errors import RobustbenchError

F = TypeVar("F", bound=Callable[..., Any])


#: How the library names an argument in a message (`robustbench_lite.errors.argument`).
_ARGUMENT = re.compile(r"`([a-z][a-z0-9_]*)`")


def as_flags(message: str) -> str:
    """A library message with its arguments written as the command line's flags:
    ```arch_kwargs``` becomes ``--arch-kwargs``."""
    return _ARGUMENT.sub(lambda match: "--" + match.group(1).replace("_", "-"), message)


def explain_errors(command: F) -> F:
    """Re-raise `RobustbenchError` as `click.ClickException` (message only, with arguments
    named as flags; exit code 1), and an `OSError` (disk full, permission denied) as one
    line naming the file."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except RobustbenchError as exc:
            raise click.ClickException(as_flags(str(exc))) from exc
        except OSError as exc:  # the machine refused: a full disk, a read-only folder...
            where = f"{exc.filename}: " if exc.filename else ""
            raise click.ClickException(f"{where}{exc.strerror or exc}; free space or "
                                       "choose another place to write") from exc

    return wrapper  # type: ignore[return-value]


def command_line(context: click.Context) -> str:
    """The command as a user would retype it: the command path and every option that
    differs from its default."""
    parts = context.command_path.split()
    for param in context.command.params:
        value = context.params.get(param.name or "")
        if value in (None, False, ()) or value == param.default:
            continue
        if isinstance(param, click.Argument):
            parts.append(str(value))
            continue
        flag = param.opts[0]
        values = value if isinstance(value, tuple) else (value,)
        for item in values:
            parts.extend([flag] if item is True else [flag, str(item)])
    return shlex.join(parts)


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    click.echo(f"Warning: {message}", err=True)


class LevelPrefixFormatter(logging.Formatter):
    """The message alone, with ``Warning:`` or ``Error:`` in front at those levels (the
    same prefixes as the command line's own warnings and errors)."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        if record.levelno >= logging.ERROR:
            return f"Error: {message}"
        if record.levelno >= logging.WARNING:
            return f"Warning: {message}"
        return message


class EchoHandler(logging.Handler):
    """Writes log records through ``click.echo`` to whatever stderr is current."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(self.format(record), err=True)
        except Exception:
            self.handleError(record)


def configure_output(quiet: bool, verbose: bool = False) -> None:
    """Log to stderr (warnings only when ``quiet``) and print warnings as one line each."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, EchoHandler)]:
        root.removeHandler(handler)
    handler = EchoHandler()
    handler.setFormatter(LevelPrefixFormatter("%(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warnings.showwarning = _show_warning
