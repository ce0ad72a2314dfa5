"""Keyword parameters of plugin objects (attacks, defenses): kept for display and rebuilding,
and read from users' ``NAME:key=value,...`` specs."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class Parametrised:
    """Stores the keyword arguments ``__init__`` was given (`_set_params`); ``params`` returns
    a copy, so ``type(obj)(**obj.params)`` rebuilds the object."""

    _params: dict[str, Any]

    def _set_params(self, **params: Any) -> None:
        self._params = dict(params)

    @property
    def params(self) -> dict[str, Any]:
        """Hyperparameters, as given to ``__init__`` (defaults included)."""
        return dict(getattr(self, "_params", {}))


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_spec(spec: str, kind: str, error: type[Exception]) -> tuple[str, dict[str, Any]]:
    """Split ``NAME[:key=value,...]`` into its name and parameters (values read as JSON when
    they parse, else kept as text). A name may itself contain colons
    (``art:ProjectedGradientDescent:max_iter=10``): the parameters are the first
    colon-separated part that contains ``=``, and everything after it. ``error`` (naming the
    ``kind``) for a parameter that is not ``key=value``."""
    parts = spec.split(":")
    split_at = next((i for i, part in enumerate(parts) if "=" in part), len(parts))
    name = ":".join(parts[:split_at]).strip()
    params: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in ":".join(parts[split_at:]).split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise error(f"{kind} parameter {item!r} in {spec!r} must look like key=value")
        params[key.strip()] = _parse_value(value.strip())
    return name, params


def construct(cls: Callable[..., T], name: str, params: dict[str, Any], kind: str,
              error: type[Exception]) -> T:
    """``cls(**params)``, with ``error`` (one line naming the ``kind`` and ``name``) for an
    unknown parameter (listing the accepted ones; skipped when ``cls`` takes ``**kwargs``)
    or a value ``cls`` rejects."""
    signature = inspect.signature(cls)
    accepted = [p for p in signature.parameters if p != "kwargs"]
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD
                    for p in signature.parameters.values())
    unknown = sorted(set(params) - set(accepted))
    if unknown and not takes_any:
        raise error(f"{kind} {name!r} has no parameter {', '.join(unknown)}; it accepts: "
                    f"{', '.join(accepted) or '(none)'}")
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise error(f"{kind} {name!r} rejected its parameters {params}: {exc}") from exc
