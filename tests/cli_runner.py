"""Running ``robust`` in process for the command-line tests (with the ``isolated_cli``
fixture of conftest, which runs each test in its own folder and restores logging)."""

from __future__ import annotations

from click.testing import CliRunner, Result

from robustbench_lite.cli import cli


def invoke(*args: object) -> Result:
    """``robust ARGS...`` in process; exceptions propagate. click >= 8.2 captures stdout and
    stderr apart (``result.stdout``, ``result.stderr``; ``result.output`` holds both)."""
    return CliRunner().invoke(cli, [str(arg) for arg in args], catch_exceptions=False)
