"""Run Foolbox's attacks as robustbench_lite attacks.

Users write ``foolbox:ClassName[:key=value,...]``, e.g.
``foolbox:LinfPGD:abs_stepsize=0.025,steps=20`` or ``foolbox:L2DeepFoolAttack``.

Compatibility note (foolbox 3.3.4 with numpy 2 / torch 2.x / scipy >= 1.8): the attacks used
here work unchanged; importing foolbox emits a scipy ``DeprecationWarning``
(``scipy.ndimage.filters``, from ``foolbox.attacks.blur``), which the backend silences for
the import only. The Brendel-Bethge attacks need ``numba``, which foolbox does not declare;
without it they fail with a clear message.
"""

from __future__ import annotations

import inspect
import warnings
from functools import lru_cache
from types import ModuleType
from typing import Any

import torch

from robustbench_lite.attacks._classes import (
    class_goal,
    labels_or_targets_reason,
    targets_first,
)
from robustbench_lite.attacks.backends._common import (
    LogitsModule,
    compact_names,
    device_context,
    import_library,
    seeded,
)
from robustbench_lite.attacks.base import Attack, AttackKind
from robustbench_lite.errors import AttackError
from robustbench_lite.tasks.objective import ModelFn, Objective
from robustbench_lite.threat import Norm, ThreatModel

REQUIREMENT = "foolbox>=3.3.4,<4"

_DISTANCE_NAMES = {Norm.LINF: "linf", Norm.L2: "l2", Norm.L1: "l1"}


@lru_cache(maxsize=1)
def _foolbox() -> ModuleType:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*scipy\.ndimage\.filters.*",
                                category=DeprecationWarning)
        return import_library("foolbox", "foolbox", REQUIREMENT)


@lru_cache(maxsize=1)
def _attack_classes() -> dict[str, type]:
    foolbox = _foolbox()
    base = foolbox.attacks.base.Attack
    classes: dict[str, type] = {}
    for name in dir(foolbox.attacks):
        obj = getattr(foolbox.attacks, name)
        if isinstance(obj, type) and issubclass(obj, base) and not inspect.isabstract(obj):
            classes[name] = obj
    return classes


def available_foolbox_attacks() -> list[str]:
    """Names of Foolbox's attack classes (aliases such as ``PGD`` included)."""
    return sorted(_attack_classes())


def _norm_of_distance(distance: Any) -> Norm | str | None:
    """The threat norm of a Foolbox distance, its description if no threat norm matches it
    (L0), ``None`` for an attack without a distance."""
    if distance is None:
        return None
    p = getattr(distance, "p", None)
    for norm, order in ((Norm.LINF, float("inf")), (Norm.L2, 2.0), (Norm.L1, 1.0)):
        if p is not None and float(p) == order:
            return norm
    return str(distance)


class FoolboxAttack(Attack):
    """Any attack of Foolbox 3 (Rauber, Zimmermann, Bethge & Brendel, "Foolbox Native: Fast
    adversarial attacks to benchmark the robustness of machine learning models in PyTorch,
    TensorFlow, and JAX", JOSS 2020), named ``foolbox:ClassName``.

    The attack runs on a ``foolbox.PyTorchModel`` built around the host's model function
    (bounds = the threat's pixel box) and is called with ``epsilons=eps`` and the criterion
    ``Misclassification(labels)`` for an objective offering ``labels`` or
    ``TargetedMisclassification(targets)`` for one offering ``targets`` (the objectives it
    serves; a Foolbox class without a targeted mode, such as ``FGSM``, fails its targeted
    cells saying so). Foolbox attacks have a fixed norm (their ``distance``: ``LinfPGD``
    is Linf, ``L2PGD`` L2): the attack supports only that norm,
    and running it under another threat norm is an error. Attacks that take a ``distance``
    argument (``BinarizationRefinementAttack``, ``LinearSearchContrastReductionAttack``...)
    get the threat's; users cannot pass one.

    Outputs are projected onto the threat model (Foolbox's clipped outputs already are, up to
    rounding), so minimum-norm attacks (``L2DeepFoolAttack``, ``L2CarliniWagnerAttack``) and
    decision-based ones (``HopSkipJumpAttack``) are scored at eps. Randomness: a seed drawn
    from the host's generator seeds torch's and numpy's global generators (which Foolbox and
    eagerpy use) for the call, restored afterwards. Queries: every Foolbox forward pass goes
    through the host's model function and is counted.

    ``kind`` says ``gradient`` for every Foolbox attack; the real kind depends on the class.
    Cost: that of the Foolbox attack.

    Args:
        target: the Foolbox class name (see `available_foolbox_attacks`).
        **params: keyword arguments of the Foolbox class's ``__init__``.
    """

    name = "foolbox"
    namespace = True
    kind = AttackKind.GRADIENT
    norms = frozenset({Norm.LINF, Norm.L2, Norm.L1})

    def __init__(self, *, target: str, **params: Any) -> None:
        classes = _attack_classes()
        if target not in classes:
            raise AttackError(f"Foolbox has no attack {target!r}; write foolbox:NAME with NAME "
                              f"one of: {compact_names(classes)}")
        self.target = target
        self._class = classes[target]
        signature = inspect.signature(self._class).parameters
        accepted = [name for name, parameter in signature.items()
                    if name != "self" and parameter.kind not in (
                        inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
        takes_any = any(parameter.kind is inspect.Parameter.VAR_KEYWORD
                        for parameter in signature.values())
        self._takes_distance = "distance" in accepted
        if "distance" in params:
            raise AttackError(f"foolbox:{target}: the threat model sets the distance; drop "
                              "distance= and use --threat")
        unknown = sorted(set(params) - set(accepted))
        if unknown and not takes_any:
            raise AttackError(f"foolbox:{target} has no parameter {', '.join(unknown)}; it "
                              f"accepts: {', '.join(p for p in accepted if p != 'distance')}")
        self._user_params = dict(params)
        # Build it once now, so that bad values fail when the spec is read, not mid-audit.
        probe = self._make(Norm.LINF)
        self._norm = None if self._takes_distance else _norm_of_distance(
            getattr(probe, "distance", None))
        self._set_params(target=target, **params)

    def _make(self, norm: Norm) -> Any:
        kwargs = dict(self._user_params)
        if self._takes_distance:
            kwargs["distance"] = getattr(_foolbox().distances, _DISTANCE_NAMES[norm])
        try:
            return self._class(**kwargs)
        except ImportError as exc:
            raise AttackError(f"foolbox:{self.target} needs a package foolbox does not "
                              f"install: {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise AttackError(f"foolbox:{self.target} rejected its parameters "
                              f"{self._user_params}: {exc}") from exc

    def supports(self, threat: ThreatModel) -> bool:
        return super().supports(threat) and (self._norm is None or self._norm is threat.norm)

    def serves(self, objective: type[Objective]) -> bool:
        return targets_first(objective.offers) is not None

    def unserved_reason(self, objective: type[Objective]) -> str:
        return labels_or_targets_reason(f"foolbox:{self.target}", objective)

    def run(self, model: ModelFn, x: torch.Tensor, objective: Objective, threat: ThreatModel,
            generator: torch.Generator) -> torch.Tensor:
        if self._norm is not None and self._norm is not threat.norm:
            own = self._norm.value if isinstance(self._norm, Norm) else self._norm
            raise AttackError(f"foolbox:{self.target} is a {own} attack; it cannot run under "
                              f"{threat.label}: pick the Foolbox attack of that norm")
        goal = class_goal(objective, f"foolbox:{self.target}")
        foolbox = _foolbox()
        attack = self._make(threat.norm)
        device = x.device
        x = x.detach()
        criterion = (foolbox.criteria.TargetedMisclassification(goal.classes) if goal.targeted
                     else foolbox.criteria.Misclassification(goal.classes))
        takes_epsilons = "epsilons" in inspect.signature(type(attack).__call__).parameters
        with device_context(device):
            fmodel = foolbox.PyTorchModel(LogitsModule(model, device, x.dtype),
                                          bounds=(threat.lower, threat.upper), device=device)
            with seeded(generator, device):
                try:
                    if takes_epsilons:
                        _, clipped, _ = attack(fmodel, x, criterion, epsilons=threat.eps)
                    else:
                        _, clipped, _ = attack(fmodel, x, criterion)
                except ValueError as exc:
                    if "unsupported criterion" not in str(exc):
                        raise
                    mode = "targeted" if goal.targeted else "untargeted"
                    raise AttackError(f"foolbox:{self.target} has no {mode} mode (Foolbox: "
                                      f"{exc})") from exc
        result = torch.as_tensor(clipped).to(device=device, dtype=x.dtype)
        if result.shape != x.shape:
            raise AttackError(f"foolbox:{self.target} returned shape {tuple(result.shape)} for "
                              f"input shape {tuple(x.shape)}")
        return threat.project(result, x)
