"""Backends: other libraries' attacks run as robustbench_lite attacks.

``art:ClassName`` runs an evasion attack of the Adversarial Robustness Toolbox
(`ArtAttack`), ``foolbox:ClassName`` a Foolbox attack (`FoolboxAttack`); parameters follow
as usual (``art:ProjectedGradientDescent:max_iter=10,eps_step=0.01``). Both are ordinary
`Attack` plugins with ``namespace = True``, and the host treats them like any other: it
seeds them, counts their queries and verifies their output.

What the backends guarantee:

* the threat model sets eps, the norm and targeted; a parameter that contradicts it is an
  error;
* the result is projected onto the threat model, so minimum-norm and decision-based attacks
  are scored at eps (the host itself rejects out-of-ball outputs, it does not project);
* the libraries' forward passes go through the host's model function, so queries are
  counted;
* one seed drawn from the host's generator seeds the global numpy and torch generators
  the libraries use, for the duration of the call only.

The libraries are imported on first use (ART takes seconds to import), so registering the
backends costs nothing until ``art:`` or ``foolbox:`` is named.
"""

from __future__ import annotations

from robustbench_lite.attacks.backends.art_backend import ArtAttack, available_art_attacks
from robustbench_lite.attacks.backends.foolbox_backend import (
    FoolboxAttack,
    available_foolbox_attacks,
)

__all__ = ["ArtAttack", "FoolboxAttack", "available_art_attacks", "available_foolbox_attacks"]
