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
    """Split a spec into its name and parameters.

    ``pgd:steps=40,restarts=2`` gives ``("pgd", {"steps": 40, "restarts": 2})``; a name may
    itself contain colons (``art:ProjectedGradientDescent:max_iter=10``): the parameters are
    the first colon-separated part that contains ``=``, and everything after it.
    """
    parts = spec.split(":")
    split_at = next((i for i, part in enumerate(parts) if "=" in part), len(parts))
    name = ":".join(parts[:split_at]).strip()
    rest = ":".join(parts[split_at:])
    params: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise AttackError(f"attack parameter {item!r} in {spec!r} must look like key=value")
        params[key.strip()] = _parse_value(value.strip())
    return name, params


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
    accepted = [p for p in inspect.signature(attack_class.__init__).parameters
                if p not in ("self", "kwargs")]
    has_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD
                     for p in inspect.signature(attack_class.__init__).parameters.values())
    unknown = sorted(set(params) - set(accepted))
    if unknown and not has_kwargs:
        raise AttackError(f"attack {name!r} has no parameter {', '.join(unknown)}; it accepts: "
                          f"{', '.join(accepted) or '(none)'}")
    try:
        return attack_class(**params)
    except (TypeError, ValueError) as exc:
        raise AttackError(f"attack {name!r} rejected its parameters {params}: {exc}") from exc
