"""Option parsing shared by commands that load models and data."""

from __future__ import annotations

import json
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


def resolve_device(text: str) -> torch.device:
    """``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``."""
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except RuntimeError as exc:
        raise click.BadParameter(f"{text!r} is not a device; use auto, cpu or cuda[:N]",
                                 param_hint="--device") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise click.BadParameter("CUDA is not available on this machine; use --device cpu",
                                 param_hint="--device")
    return device



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
