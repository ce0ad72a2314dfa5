"""Build defenses from users' specs: ``NAME`` or ``NAME:key=value,key=value``."""

from __future__ import annotations

import inspect
from collections.abc import Sequence

from robustbench_lite.attacks.spec import parse_attack_spec
from robustbench_lite.catalogue import Catalogue
from robustbench_lite.defenses.base import Defense, Recipe, compose
from robustbench_lite.errors import AttackError, DefenseError


def build_defense(spec: str, catalogue: Catalogue) -> Defense:
    """Instantiate a registered defense; unknown names and parameters list the valid ones."""
    try:
        name, params = parse_attack_spec(spec)
    except AttackError as exc:
        raise DefenseError(str(exc).replace("attack parameter", "defense parameter")) from None
    defense_class = catalogue.defenses.get(name)
    accepted = [p for p in inspect.signature(defense_class.__init__).parameters
                if p not in ("self", "kwargs")]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise DefenseError(f"defense {name!r} has no parameter {', '.join(unknown)}; it "
                           f"accepts: {', '.join(accepted) or '(none)'}")
    try:
        return defense_class(**params)
    except (TypeError, ValueError) as exc:
        raise DefenseError(f"defense {name!r} rejected its parameters {params}: {exc}") from exc


def build_recipe(specs: Sequence[str], catalogue: Catalogue) -> Recipe:
    """The recipe of ``specs`` in order (see `compose` for the combinations refused)."""
    if not specs:
        raise DefenseError("no defense given; add --defense NAME (see robust plugins for "
                           "the registered defenses), e.g. --defense pgd-at")
    return compose([build_defense(spec, catalogue) for spec in specs])
