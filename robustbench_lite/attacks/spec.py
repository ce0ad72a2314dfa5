"""Build an attack from a user's spec: ``NAME`` or ``NAME:key=value,key=value``."""

from __future__ import annotations

from typing import Any

from robustbench_lite.attacks.base import Attack
from robustbench_lite.catalogue import Catalogue
from robustbench_lite.errors import AttackError
from robustbench_lite.params import construct, parse_spec


def parse_attack_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Split a spec into its name and parameters: ``pgd:steps=40,restarts=2`` gives
    ``("pgd", {"steps": 40, "restarts": 2})`` (see `robustbench_lite.params.parse_spec`)."""
    return parse_spec(spec, "attack", AttackError)


def build_attack(spec: str, catalogue: Catalogue) -> Attack:
    """Instantiate a registered attack from its spec; unknown names and parameters list the
    valid ones.

    ``NAMESPACE:TARGET`` (e.g. ``art:HopSkipJump``) builds the attack registered as
    ``NAMESPACE`` with ``target=TARGET`` when that attack declares ``namespace = True``.
    """
    name, params = parse_attack_spec(spec)
    prefix, sep, target = name.partition(":")
    if sep and prefix in catalogue.attacks.names() and catalogue.attacks.get(prefix).namespace:
        attack_class = catalogue.attacks.get(prefix)
        params = {"target": target, **params}
    else:
        attack_class = catalogue.attacks.get(name)
    return construct(attack_class, name, params, "attack", AttackError)
