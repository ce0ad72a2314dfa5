"""Keyword parameters of plugin objects (attacks, defenses): kept for display and rebuilding,
and read from users' ``NAME:key=value,...`` specs."""

from __future__ import annotations

import inspect
import json
import math
import types
import typing
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


def _type_problem(value: Any, hint: Any) -> str | None:
    """Why ``value`` does not fit the annotation ``hint`` (int, float, bool, str and unions
    of them, None included); None when it fits or the annotation is something else."""
    members = typing.get_args(hint) if isinstance(hint, types.UnionType) or \
        typing.get_origin(hint) is typing.Union else (hint,)
    if not all(member in _SIMPLE for member in members):
        return None
    for member in members:
        if member is type(None) and value is None:
            return None
        if member is bool and isinstance(value, bool):
            return None
        if member is int and isinstance(value, int) and not isinstance(value, bool):
            return None
        if member is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return None if math.isfinite(value) else "must be a finite number"
        if member is str and isinstance(value, str):
            return None
    wanted = " or ".join(_SIMPLE[member] for member in members)
    return f"must be {wanted}"


_SIMPLE: dict[Any, str] = {int: "an integer", float: "a number", bool: "true or false",
                           str: "text", type(None): "null"}


def check_types(cls: Callable[..., Any], name: str, params: dict[str, Any], kind: str,
                error: type[Exception]) -> None:
    """Raise ``error`` for a parameter whose value does not fit ``cls``'s annotation
    (``steps=2.5`` for an int, ``random_start=abc`` for a bool, ``rel_step_size=NaN``)."""
    try:
        init = getattr(cls, "__init__") if isinstance(cls, type) else cls  # noqa: B009
        hints = typing.get_type_hints(init)
    except Exception:  # annotations that do not resolve: leave the checks to cls
        return
    for key, value in params.items():
        problem = _type_problem(value, hints[key]) if key in hints else None
        if problem is not None:
            raise error(f"{kind} {name!r}: {key} {problem}, got {value!r}")


def construct(cls: Callable[..., T], name: str, params: dict[str, Any], kind: str,
              error: type[Exception]) -> T:
    """``cls(**params)``, with ``error`` (one line naming the ``kind`` and ``name``) for an
    unknown parameter (listing the accepted ones; skipped when ``cls`` takes ``**kwargs``),
    a value of the wrong type (`check_types`) or a value ``cls`` rejects."""
    signature = inspect.signature(cls)
    accepted = [p for p in signature.parameters if p != "kwargs"]
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD
                    for p in signature.parameters.values())
    unknown = sorted(set(params) - set(accepted))
    if unknown and not takes_any:
        raise error(f"{kind} {name!r} has no parameter {', '.join(unknown)}; it accepts: "
                    f"{', '.join(accepted) or '(none)'}")
    check_types(cls, name, params, kind, error)
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise error(f"{kind} {name!r} rejected its parameters {params}: {exc}") from exc
