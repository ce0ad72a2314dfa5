"""``robust matrix``: list the threat-matrix presets and show what one would run."""

from __future__ import annotations

import click

from robustbench_lite.attacks.spec import build_attack
from robustbench_lite.catalogue import catalogue_for
from robustbench_lite.cli.errors import explain_errors
from robustbench_lite.host.attack import CLASSIFICATION
from robustbench_lite.matrix.files import format_eps, matrix_to_toml
from robustbench_lite.matrix.presets import STANDARD_EPS
from robustbench_lite.matrix.resolve import resolve_matrix
from robustbench_lite.plugin_host import default_plugin_manager
from robustbench_lite.threat import ThreatModel, targeted_prefix

DEFAULT_FAMILY = "digits"


@click.group("matrix")
def matrix_group() -> None:
    """Threat matrices: which attacks run at which threat models.

    \b
    Examples:
      robust matrix list
      robust matrix show standard
      robust matrix show standard --data-family cifar10
      robust matrix show standard --toml > my-review.toml   # a file to edit
      robust audit --matrix my-review.toml
    """


@matrix_group.command("list")
@explain_errors
def list_command() -> None:
    """List the registered presets with their version and description.

    \b
    Examples:
      robust matrix list
    """
    catalogue = catalogue_for(default_plugin_manager())
    for preset in catalogue.matrices.values():  # in registration order: built-ins first
        origin = catalogue.matrices.plugin_of(preset.name)
        click.echo(f"{preset.name} (version {preset.version}, {origin})")
        click.echo(f"  {preset.description}")


@matrix_group.command("show")
@click.argument("spec", metavar="NAME|FILE")
@click.option("--data-family", "family", type=click.Choice(sorted(STANDARD_EPS)),
              default=DEFAULT_FAMILY, show_default=True,
              help="Data family whose standard eps a preset uses (files ignore it).")
@click.option("--toml", "as_toml", is_flag=True,
              help="Print the matrix as a TOML file that --matrix accepts.")
@explain_errors
def show_command(spec: str, family: str, as_toml: bool) -> None:
    """Show the threat models, attacks and cells of a preset or a .toml matrix file.

    \b
    Examples:
      robust matrix show quick
      robust matrix show standard --data-family cifar10
      robust matrix show my-review.toml
      robust matrix show standard --toml > my-review.toml
    """
    catalogue = catalogue_for(default_plugin_manager())
    matrix = resolve_matrix(spec, catalogue, family)
    if as_toml:
        click.echo(matrix_to_toml(matrix), nl=False)
        return
    attacks = [build_attack(attack, catalogue) for attack in matrix.attacks]
    skipped = [f"{attack.name} at {threat_text(threat)}" for threat in matrix.threats
               for attack in attacks if not attack.supports(threat)
               or not attack.serves(CLASSIFICATION.objective_type(threat))]
    click.echo(f"{matrix.name} (version {matrix.version})")
    if matrix.description:
        click.echo(f"  {matrix.description}")
    if spec in catalogue.matrices.names():
        click.echo(f"data family: {family}")
    click.echo(f"threat models ({len(matrix.threats)}):")
    for threat in matrix.threats:
        click.echo(f"  {threat_text(threat)}")
    click.echo(f"attacks ({len(matrix.attacks)}):")
    for attack in matrix.attacks:
        click.echo(f"  {attack}")
    cells = len(matrix.cells())
    click.echo(f"cells: {cells} ({cells - len(skipped)} run, {len(skipped)} skipped)")
    if skipped:
        click.echo(f"  skipped, unsupported threat model or classification objective: "
                   f"{', '.join(skipped)}")


def threat_text(threat: ThreatModel) -> str:
    """``linf eps=8/255 (0.0314)``: the exact eps, and its decimal when it is a fraction."""
    exact = format_eps(threat.eps)
    decimal = f" ({threat.eps:.4g})" if "/" in exact else ""
    return f"{targeted_prefix(threat.target_mode)}{threat.norm.value} eps={exact}{decimal}"

