"""The ``robust`` command line. One module per command; plugins may add commands."""

from __future__ import annotations

import sys
from typing import Any

import click
from click.exceptions import NoArgsIsHelpError

from robustbench_lite import __version__
from robustbench_lite.cli.audit import audit_command
from robustbench_lite.cli.generator import train_generator_command
from robustbench_lite.cli.harden import harden_command
from robustbench_lite.cli.matrix import matrix_group
from robustbench_lite.cli.plugins import plugins_command
from robustbench_lite.cli.report import diff_command, report_command
from robustbench_lite.cli.train import train_command
from robustbench_lite.cli.train_gan import train_gan_command
from robustbench_lite.errors import PluginError


class RobustGroup(click.Group):
    """The ``robust`` group: every error, click's own usage errors included, is one
    ``Error:`` line with exit code 1 (gates and strict checks keep their codes 3 and 4)."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("standalone_mode", True):
            return super().main(*args, **kwargs)
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except NoArgsIsHelpError as exc:  # a group called without a command: its help
            click.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
            sys.exit(0)
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            click.echo(f"Error: {_one_line(exc.format_message())}{hint}", err=True)
            sys.exit(1)
        except click.ClickException as exc:
            click.echo(f"Error: {_one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)


def _one_line(message: str) -> str:
    return " ".join(message.split())


@click.group(cls=RobustGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
cli.add_command(train_gan_command)


def add_plugin_commands(group: click.Group) -> None:
    """Let plugins add sub-commands through ``register_commands``."""
    from robustbench_lite.plugin_host import default_plugin_manager

    for impl in default_plugin_manager().hook.register_commands.get_hookimpls():
        before = dict(group.commands)
        try:
            impl.function(cli=group)
        except Exception as exc:
            raise PluginError(f"plugin {impl.plugin_name!r} failed in register_commands: "
                              f"{type(exc).__name__}: {exc}") from exc
        replaced = sorted(name for name, command in before.items()
                          if group.commands.get(name) is not command)
        if replaced:
            group.commands.clear()
            group.commands.update(before)
            raise PluginError(f"plugin {impl.plugin_name!r} registers the command(s) "
                              f"{', '.join(replaced)}, which already exist; uninstall the "
                              "plugin or ask its author to rename them")


def main() -> None:
    """Entry point of the ``robust`` script."""
    try:
        add_plugin_commands(cli)
    except PluginError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    cli(prog_name="robust")
