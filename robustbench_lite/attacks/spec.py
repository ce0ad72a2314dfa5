"""Build an attack from a user's spec: ``NAME`` or ``NAME:key=value,key=value``."""

from __future__ import annotations

import inspect
import json
from typing import Any

from robustbench_lite.attacks.base import Attack
from robustbench_lite.catalogue import Catalogue
from robustbench_lite.errors import AttackError


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_attack_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Split ``pgd:steps=40,restarts=2`` into ``("pgd", {"steps": 40, "restarts": 2})``."""
    name, _, rest = spec.partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise AttackError(f"attack parameter {item!r} in {spec!r} must look like key=value")
        params[key.strip()] = _parse_value(value.strip())
    return name.strip(), params


def build_attack(spec: str, catalogue: Catalogue) -> Attack:
    """Instantiate a registered attack from its spec; unknown names and parameters list the
    valid ones."""
    name, params = parse_attack_spec(spec)
    attack_class = catalogue.attacks.get(name)
    accepted = [p for p in inspect.signature(attack_class.__init__).parameters if p != "self"]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise AttackError(f"attack {name!r} has no parameter {', '.join(unknown)}; it accepts: "
                          f"{', '.join(accepted) or '(none)'}")
    try:
        return attack_class(**params)
    except (TypeError, ValueError) as exc:
        raise AttackError(f"attack {name!r} rejected its parameters {params}: {exc}") from exc
