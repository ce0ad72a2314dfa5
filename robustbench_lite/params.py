"""Keyword parameters kept by plugin objects (attacks, defenses) for display and rebuilding."""

from __future__ import annotations

from typing import Any


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
