"""Every error of the command line is one ``Error:`` line with exit code 1, click's own
usage errors included; logged warnings start with ``Warning:``."""

from __future__ import annotations

import logging

import pytest
from click.testing import CliRunner

from robustbench_lite.cli import cli
from robustbench_lite.cli.errors import configure_output


@pytest.mark.parametrize("args", [
    ["audit", "--batch-size", "0"],
    ["audit", "--no-such-option"],
    ["audit", "--split", "validation"],
    ["no-such-command"],
    ["report"],  # a missing argument
    ["harden", "--epochs", "two"],
])
def test_usage_errors_are_one_line_with_exit_code_1(args: list[str]) -> None:
    result = CliRunner().invoke(cli, args, prog_name="robust")
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "--help" in lines[0]  # says where to look
    assert "Usage:" not in result.output


def test_help_and_a_bare_group_still_print_help_with_exit_code_0() -> None:
    runner = CliRunner()
    for args in ([], ["--help"], ["matrix"]):
        result = runner.invoke(cli, args, prog_name="robust")
        assert result.exit_code == 0, result.output
        assert result.output.startswith("Usage: robust")


def test_logged_warnings_and_errors_carry_their_prefix(
        capsys: pytest.CaptureFixture[str]) -> None:
    configure_output(quiet=False)
    try:
        logging.getLogger("robustbench_lite.test").info("plain progress")
        logging.getLogger("robustbench_lite.test").warning("a cell failed")
        logging.getLogger("robustbench_lite.test").error("it broke")
        assert capsys.readouterr().err.splitlines() == [
            "plain progress", "Warning: a cell failed", "Error: it broke"]
    finally:
        configure_output(quiet=True)
