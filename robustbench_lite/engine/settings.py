"""How an audit runs: seed, batch size, mode, sharding, what to show and record."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class AuditSettings:
    seed: int = 0
    batch_size: int = 128
    show_progress: bool = True
    command: str = ""
    fast: bool = False
    shard_size: int | None = None
    matrix: dict[str, str] = field(default_factory=dict)
    examples: int = 6
