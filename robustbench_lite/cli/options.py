"""Option parsing shared by commands that load models and data."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import torch


def parse_floats(text: str | None, option: str) -> list[float] | None:
    """``"0.5,0.5,0.5"`` → ``[0.5, 0.5, 0.5]``."""
    if text is None:
        return None
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of numbers",
                                 param_hint=option) from exc


def parse_json_object(text: str | None, option: str) -> dict[str, Any]:
    """A JSON object such as ``{"num_classes": 100}``."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"{text!r} is not valid JSON ({exc.msg})",
                                 param_hint=option) from exc
    if not isinstance(value, dict):
        raise click.BadParameter("must be a JSON object such as '{\"num_classes\": 100}'",
                                 param_hint=option)
    return value


def device_choices() -> list[str]:
    """The ``--device`` values usable on this machine: ``auto``, ``cpu``, then ``cuda`` and
    ``cuda:0``..``cuda:N-1`` and ``mps`` where present."""
    choices = ["auto", "cpu"]
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count:
        choices += ["cuda", *(f"cuda:{index}" for index in range(count))]
    if torch.backends.mps.is_available():
        choices.append("mps")
    return choices


def resolve_device(text: str) -> torch.device:
    """``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:N`` (an existing GPU) or
    ``mps`` (where available); anything else (``meta``, ``cuda:99``, ``banana``) is a
    `click.BadParameter` naming the device and the choices on this machine."""
    key = text.strip().lower()
    if key == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    choices = device_choices()
    if key not in choices:
        shown = text if len(text) <= 40 else text[:37] + "..."
        why = "CUDA is not available on this machine" if key.startswith("cuda") and \
            "cuda" not in choices else "not a device this machine can run on"
        raise click.BadParameter(f"{shown!r}: {why}; choose one of: {', '.join(choices)}",
                                 param_hint="--device")
    return torch.device(key)


def check_output_folder(folder: Path, option: str = "--out") -> None:
    """Check before any work that files can be written into ``folder``: create it (and its
    parents) if needed, create and remove a probe file, and remove the folder again if this
    created it. `click.ClickException` (one line naming the folder and the fix) otherwise:
    a file in the way, a read-only folder or parent, a full disk."""
    if folder.exists() and not folder.is_dir():
        raise click.ClickException(f"{option} {folder} is a file, not a folder; choose "
                                   f"another {option}")
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".robust-write-probe.", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise click.ClickException(f"{option} {folder}: cannot write there ({reason}); "
                                   f"choose a writable {option} folder") from exc
    if created:
        with contextlib.suppress(OSError):
            folder.rmdir()


def parse_model_options(device: str, arch_kwargs: str | None, mean: str | None, std: str | None
                        ) -> tuple[torch.device, dict[str, Any], list[float] | None,
                                   list[float] | None]:
    """Parse option values before any work, so that a bad one fails at once with one line."""
    try:
        return (resolve_device(device), parse_json_object(arch_kwargs, "--arch-kwargs"),
                parse_floats(mean, "--mean"), parse_floats(std, "--std"))
    except click.BadParameter as exc:
        raise click.ClickException(exc.format_message()) from exc

template_dir_option = click.option(
    "--template-dir", "template_dirs", multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A folder of templates overriding the built-in ones; repeatable, first match wins. "
         'A template may extend "default:NAME" to replace single blocks of the built-in one.')

#: The default per-unit time limit of the command line, in seconds.
DEFAULT_CELL_TIME_LIMIT = 3600.0

cell_time_limit_option = click.option(
    "--cell-time-limit", "cell_time_limit", type=click.FloatRange(min=0),
    default=DEFAULT_CELL_TIME_LIMIT, show_default=True, metavar="SECONDS",
    help="Fail a cell (or one --shard-size unit of it) that runs longer than this, e.g. a "
         "hung plugin attack; it is not stored, so a rerun tries again. 0: no limit.")


def refuse_given(context: click.Context, names: Sequence[str], reason: str) -> None:
    """A usage error when the user gave any of the options ``names`` (parameter names, left
    at their defaults otherwise): ``--a, --b cannot be used REASON``."""
    flags = {param.name: param.opts[0] for param in context.command.params}
    given = [flags[name] for name in names
             if context.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT]
    if given:
        raise click.UsageError(f"{', '.join(given)} cannot be used {reason}")
