"""The command-line reference lists every command and option."""

from __future__ import annotations

from pathlib import Path

import click

from robustbench_lite.cli import cli

CLI_DOC = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()


def _commands(group: click.Group, prefix: str) -> list[tuple[str, click.Command]]:
    found = []
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            found += _commands(command, path)
        else:
            found.append((path, command))
    return found


def test_every_command_and_option_is_documented() -> None:
    for path, command in _commands(cli, "robust"):
        assert f"Usage: {path}" in CLI_DOC, path
        for param in command.params:
            for option in param.opts:
                if option.startswith("-"):
                    assert option in CLI_DOC, f"{path} {option}"
