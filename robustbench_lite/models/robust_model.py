"""`RobustModel`: the one shape of model every attack and report sees."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn


@dataclass(frozen=True)
class LoadInfo:
    """How a model was obtained: the adapter that loaded it and whether code was trusted."""

    format: str
    trusted: bool = False
    path: str | None = None
    architecture: str | None = None
    notes: tuple[str, ...] = ()
    #: Everything besides the file's bytes that changes what the model computes (adapter,
    #: architecture and its keyword arguments, folded normalisation), as name/value text.
    computation: tuple[tuple[str, str], ...] = ()


@dataclass
class RobustModel:
    """A classifier taking ``x`` in [0, 1] of shape ``(N, *input_shape)`` and returning logits.

    Normalisation lives inside ``module``. Parameters are frozen (attacks only need gradients
    with respect to the input); ``module`` is kept in evaluation mode.
    """

    module: nn.Module
    input_shape: tuple[int, ...]
    num_classes: int
    name: str
    sha256: str
    load_info: LoadInfo
    task: str = "classification"  # the registered task that judges it
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def __post_init__(self) -> None:
        self.module.eval()
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the file's hash and `LoadInfo.computation`: the same file loaded with
        other normalisation, architecture arguments or adapter gets another fingerprint
        (the result store keys cells by it)."""
        text = json.dumps([self.sha256, [list(item) for item in self.load_info.computation]])
        return hashlib.sha256(text.encode()).hexdigest()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.module(x)
        return out

    def to(self, device: torch.device | str) -> RobustModel:
        """Move the model to ``device`` in place and return it."""
        self.device = torch.device(device)
        self.module.to(self.device)
        return self

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Predicted labels for ``x`` (any device), batch by batch on the model's device."""
        labels = [self(x[i:i + batch_size].to(self.device)).argmax(dim=1).cpu()
                  for i in range(0, len(x), batch_size)]
        return torch.cat(labels) if labels else torch.empty(0, dtype=torch.long)


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def state_dict_sha256(*modules: nn.Module) -> str:
    """Hex sha256 of the modules' state dicts, in order: each entry's name, then its tensor's
    raw bytes (CPU, contiguous), in the state dict's order (for models built in Python)."""
    digest = hashlib.sha256()
    for module in modules:
        for key, tensor in module.state_dict().items():
            digest.update(key.encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
                          .numpy().tobytes())
    return digest.hexdigest()
