"""Epoch checkpoints of a training run: written atomically, read back only by the same run
(a fingerprint of its settings, data and starting weights)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from robustbench_lite.atomic import atomic_path
from robustbench_lite.errors import RobustbenchError


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (tensors, plain data) to ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        torch.save(state, temporary)


def load_checkpoint(path: Path | None, fingerprint: str, error: type[RobustbenchError],
                    where: str) -> dict[str, Any] | None:
    """The state saved at ``path`` by the run of ``fingerprint``; None when there is no
    checkpoint; ``error`` (one line; ``where`` names the option choosing another folder)
    when it cannot be read or belongs to another run."""
    if path is None or not path.is_file():
        return None
    try:
        state: dict[str, Any] = torch.load(path, weights_only=True)
    except Exception as exc:
        raise error(f"cannot read the checkpoint {path} ({type(exc).__name__}: "
                    f"{' '.join(str(exc).split())[:120]}); delete it to start over") from None
    if state.get("fingerprint") != fingerprint:
        raise error(f"the checkpoint {path} belongs to a run with other settings, data or "
                    f"starting weights; use another {where}, or delete it to start over")
    return state
