"""Build defenses from users' specs: ``NAME`` or ``NAME:key=value,key=value``."""

from __future__ import annotations

from collections.abc import Sequence

from robustbench_lite.catalogue import Catalogue
from robustbench_lite.defenses.base import Defense, Recipe, compose
from robustbench_lite.errors import DefenseError
from robustbench_lite.params import construct, parse_spec


def build_defense(spec: str, catalogue: Catalogue) -> Defense:
    """Instantiate a registered defense; unknown names and parameters list the valid ones."""
    name, params = parse_spec(spec, "defense", DefenseError)
    return construct(catalogue.defenses.get(name), name, params, "defense", DefenseError)


def build_recipe(specs: Sequence[str], catalogue: Catalogue) -> Recipe:
    """The recipe of ``specs`` in order (see `compose` for the combinations refused)."""
    if not specs:
        raise DefenseError("no defense given; add `defense` NAME (see robust plugins for "
                           "the registered defenses), e.g. `defense` pgd-at")
    return compose([build_defense(spec, catalogue) for spec in specs])
