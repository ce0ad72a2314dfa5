"""Run the Adversarial Robustness Toolbox's evasion attacks as robustbench_lite attacks.

Users write ``art:ClassName[:key=value,...]``, e.g.
``art:ProjectedGradientDescent:max_iter=10,eps_step=0.01`` or
``art:HopSkipJump:max_iter=2,max_eval=50,init_eval=10``.
"""

from __future__ import annotations

import inspect
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from robustbench_lite.attacks._classes import (
    class_goal,
    labels_or_targets_reason,
    targets_first,
)
from robustbench_lite.attacks.backends._common import (
    LogitsModule,
    check_threat_params,
    compact_names,
    device_context,
    import_library,
    num_classes_of,
    seeded,
)
from robustbench_lite.attacks.base import Attack, AttackKind
from robustbench_lite.errors import AttackError
from robustbench_lite.tasks.classification.objectives import TARGETS
from robustbench_lite.tasks.objective import ModelFn, Objective
from robustbench_lite.threat import Norm, ThreatModel

REQUIREMENT = "adversarial-robustness-toolbox>=1.20,<2"

#: The first argument of every ART attack: the backend passes the wrapped model.
_ESTIMATOR_ARGS = ("estimator", "classifier")
_ART_NORMS: dict[Norm, float] = {Norm.LINF: float(np.inf), Norm.L2: 2, Norm.L1: 1}


@lru_cache(maxsize=1)
def _evasion_classes() -> tuple[dict[str, type], frozenset[str]]:
    """ART's evasion attack classes by name, and the names usable on a PyTorch classifier
    (those whose ``_estimator_requirements`` a ``PyTorchClassifier`` meets)."""
    evasion = import_library("art.attacks.evasion", "art", REQUIREMENT)
    base = import_library("art.attacks", "art", REQUIREMENT).EvasionAttack
    estimator = import_library("art.estimators.classification", "art",
                               REQUIREMENT).PyTorchClassifier
    classes: dict[str, type] = {}
    for name in dir(evasion):
        obj = getattr(evasion, name)
        if isinstance(obj, type) and issubclass(obj, base) and not inspect.isabstract(obj):
            classes[name] = obj
    mro = estimator.__mro__
    usable = set()
    for name, cls in classes.items():
        requirements = getattr(cls, "_estimator_requirements", None) or ()
        if all(any(option in mro for option in (req if isinstance(req, tuple) else (req,)))
               for req in requirements):
            usable.add(name)
    return classes, frozenset(usable)


def available_art_attacks() -> list[str]:
    """Names of ART's evasion attacks that can run on a PyTorch image classifier."""
    return sorted(_evasion_classes()[1])


class ArtAttack(Attack):
    """Any evasion attack of the Adversarial Robustness Toolbox (Nicolae et al., "Adversarial
    Robustness Toolbox v1.0.0", arXiv:1807.01069, 2018), named ``art:ClassName``.

    The attack runs on an ART ``PyTorchClassifier`` built around the host's model function
    (cross-entropy loss, clip values = the threat's pixel box). From the threat model the
    backend passes ``eps``, ``norm`` (``np.inf``, 2 or 1) and ``targeted`` (from the
    objective) wherever the ART class accepts them; a user parameter ``eps``, ``norm`` or
    ``targeted`` that contradicts the threat model or its objective is an error. It also
    passes ``verbose=False`` and ``batch_size`` = the host's batch size where accepted;
    every other ART default is kept as ART defines it (note: ART's step sizes, e.g. PGD's
    ``eps_step=0.1``, are absolute, not relative to eps).
    It serves objectives offering ``labels`` (untargeted: ART gets the true labels) and,
    for ART classes with a targeted mode, objectives offering ``targets`` (``targeted=True``
    and the target labels), both as one-hot.

    Outputs are projected onto the threat model, so minimum-norm attacks (``DeepFool``,
    ``CarliniL2Method``) and decision-based ones (``HopSkipJump``, ``BoundaryAttack``) are
    scored at eps. Randomness: a seed drawn from the host's generator seeds numpy's and
    torch's global generators for the call (restored afterwards), so a run seed reproduces
    ART's random starts. Queries: every ART forward pass goes through the host's model
    function and is counted.

    ``kind`` says ``gradient`` for every ART attack; the real kind depends on the class
    (``HopSkipJump`` is decision-based, ``SquareAttack`` score-based, ``DeepFool``
    minimum-norm). Norms: Linf, L2 and L1 as far as the class supports them (an ART class
    that rejects the norm fails its cell with ART's message). Cost: that of the ART attack.

    Args:
        target: the ART class name (see `available_art_attacks`).
        **params: keyword arguments of the ART class's ``__init__``.
    """

    name = "art"
    namespace = True
    kind = AttackKind.GRADIENT
    norms = frozenset({Norm.LINF, Norm.L2, Norm.L1})

    def __init__(self, *, target: str, **params: Any) -> None:
        classes, usable = _evasion_classes()
        if target not in usable:
            problem = (f"ART's {target} needs another kind of estimator than a PyTorch image "
                       "classifier" if target in classes
                       else f"ART has no evasion attack {target!r}")
            raise AttackError(f"{problem}; write art:NAME with NAME one of: "
                              f"{compact_names(usable)}")
        self.target = target
        self._class = classes[target]
        signature = inspect.signature(self._class).parameters
        self._accepted = [name for name, parameter in signature.items()
                          if name != "self" and name not in _ESTIMATOR_ARGS
                          and parameter.kind not in (inspect.Parameter.VAR_POSITIONAL,
                                                     inspect.Parameter.VAR_KEYWORD)]
        takes_any = any(parameter.kind is inspect.Parameter.VAR_KEYWORD
                        for parameter in signature.values())
        passed = sorted(set(params) & set(_ESTIMATOR_ARGS))
        if passed:
            raise AttackError(f"art:{target}: {', '.join(passed)} is the model; the backend "
                              "passes it")
        unknown = sorted(set(params) - set(self._accepted))
        if unknown and not takes_any:
            raise AttackError(f"art:{target} has no parameter {', '.join(unknown)}; it accepts: "
                              f"{', '.join(self._accepted) or '(none)'}")
        self._user_params = dict(params)
        self._set_params(target=target, **params)

    def serves(self, objective: type[Objective]) -> bool:
        capability = targets_first(objective.offers)
        if capability == TARGETS:
            return "targeted" in self._accepted
        return capability is not None

    def unserved_reason(self, objective: type[Objective]) -> str:
        if targets_first(objective.offers) == TARGETS:
            return (f"art:{self.target} has no targeted mode, which objective "
                    f"{objective.name!r} needs")
        return labels_or_targets_reason(f"art:{self.target}", objective)

    def attack_kwargs(self, threat: ThreatModel, batch_size: int, *,
                      targeted: bool | None = None) -> dict[str, Any]:
        """The keyword arguments the ART class is built with for ``threat`` (``targeted``:
        whether the objective has targets, by default ``threat.targeted``)."""
        who = f"art:{self.target}"
        if targeted is None:
            targeted = threat.targeted
        check_threat_params(self._user_params, threat, who, targeted)
        if targeted and "targeted" not in self._accepted:
            raise AttackError(f"{who} has no targeted mode")
        defaults: dict[str, Any] = {"eps": float(threat.eps), "norm": _ART_NORMS[threat.norm],
                                    "targeted": targeted, "verbose": False,
                                    "batch_size": batch_size}
        kwargs = {key: value for key, value in defaults.items() if key in self._accepted}
        kwargs.update({key: value for key, value in self._user_params.items()
                       if key not in ("eps", "norm", "targeted")})
        return kwargs

    def run(self, model: ModelFn, x: torch.Tensor, objective: Objective, threat: ThreatModel,
            generator: torch.Generator) -> torch.Tensor:
        classification = import_library("art.estimators.classification", "art", REQUIREMENT)
        goal = class_goal(objective, f"art:{self.target}")
        kwargs = self.attack_kwargs(threat, len(x), targeted=goal.targeted)
        device = x.device
        classes = num_classes_of(model, x)
        with device_context(device):
            classifier = classification.PyTorchClassifier(
                model=LogitsModule(model, device, x.dtype), loss=nn.CrossEntropyLoss(),
                input_shape=tuple(x.shape[1:]), nb_classes=classes,
                clip_values=(threat.lower, threat.upper),
                device_type="gpu" if device.type == "cuda" else "cpu")
            try:
                attack = self._class(classifier, **kwargs)
            except (TypeError, ValueError) as exc:
                raise AttackError(f"art:{self.target} rejected its parameters {kwargs}: "
                                  f"{exc}") from exc
            labels = np.eye(classes, dtype=np.float32)[goal.classes.detach().cpu().numpy()]
            with seeded(generator, device):
                x_adv = attack.generate(x=x.detach().cpu().numpy().astype(np.float32),
                                        y=labels)
        result = torch.as_tensor(np.asarray(x_adv)).to(device=device, dtype=x.dtype)
        if result.shape != x.shape:
            raise AttackError(f"art:{self.target} returned shape {tuple(result.shape)} for "
                              f"input shape {tuple(x.shape)}: it is not a per-sample evasion "
                              "attack")
        return threat.project(result, x)
