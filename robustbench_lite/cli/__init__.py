"""The ``robust`` command line. One module per command; plugins may add commands."""

from __future__ import annotations

import sys

import click

from robustbench_lite import __version__
from robustbench_lite.cli.audit import audit_command
from robustbench_lite.cli.generator import train_generator_command
from robustbench_lite.cli.harden import harden_command
from robustbench_lite.cli.matrix import matrix_group
from robustbench_lite.cli.plugins import plugins_command
from robustbench_lite.cli.report import diff_command, report_command
from robustbench_lite.cli.train import train_command
from robustbench_lite.errors import PluginError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="robust")
def cli() -> None:
    """Audit and harden the adversarial robustness of PyTorch image models.

    \b
    Examples:
      robust audit                      # the built-in default model on digits
      robust audit model.pt --arch preact-resnet18 --data cifar10:./cifar-10-batches-py
      robust plugins                    # installed plugins and what they register
      robust report out/results.json -o report.html   # re-render a stored audit
    """


cli.add_command(audit_command)
cli.add_command(harden_command)
cli.add_command(matrix_group)
cli.add_command(plugins_command)
cli.add_command(report_command)
cli.add_command(diff_command)
cli.add_command(train_command)
cli.add_command(train_generator_command)


def add_plugin_commands(group: click.Group) -> None:
    """Let plugins add sub-commands through ``register_commands``."""
    from robustbench_lite.plugin_host import default_plugin_manager

    for impl in default_plugin_manager().hook.register_commands.get_hookimpls():
        try:
            impl.function(cli=group)
        except Exception as exc:
            raise PluginError(f"plugin {impl.plugin_name!r} failed in register_commands: "
                              f"{type(exc).__name__}: {exc}") from exc


def main() -> None:
    """Entry point of the ``robust`` script."""
    try:
        add_plugin_commands(cli)
    except PluginError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    cli(prog_name="robust")
