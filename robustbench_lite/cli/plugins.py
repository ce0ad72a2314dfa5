"""``robust plugins``: what every plugin is and what it registers."""

from __future__ import annotations

import json
from typing import Any

import click

from robustbench_lite.catalogue import catalogue_for
from robustbench_lite.cli.errors import explain_errors
from robustbench_lite.plugin_host import default_plugin_manager


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@explain_errors
def plugins_command(as_json: bool) -> None:
    """List every plugin, its version, its hooks and what it registers.

    \b
    Examples:
      robust plugins
      robust plugins --json
    """
    manager = default_plugin_manager()
    catalogue = catalogue_for(manager)
    listing: list[dict[str, Any]] = []
    for info in manager.plugin_infos():
        plugin = manager.get_plugin(info.name)
        hooks = sorted(caller.name for caller in manager.get_hookcallers(plugin) or [])
        registered = {registry.kinds: [name for name in registry.names()
                                      if registry.plugin_of(name) == info.name]
                      for registry in catalogue.registries()}
        listing.append({"name": info.name, "version": info.version,
                        "distribution": info.distribution, "builtin": info.builtin,
                        "hooks": hooks,
                        "registers": {kind: names for kind, names in registered.items() if names}})
    if as_json:
        click.echo(json.dumps(listing, indent=2))
        return
    for entry in listing:
        origin = "built-in" if entry["builtin"] else (entry["distribution"] or "local")
        click.echo(f"{entry['name']} {entry['version'] or ''} ({origin})")
        click.echo(f"  hooks: {', '.join(entry['hooks']) or '-'}")
        for kind, names in entry["registers"].items():
            click.echo(f"  {kind}: {', '.join(names)}")
