"""How an audit runs: seed, batch size, mode, sharding, what to show and record."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class AuditSettings:
    """``cell_time_limit``: seconds one unit of work (a cell or one shard of it) may run
    before it fails with a time-limit error (None: no limit)."""

    seed: int = 0
    batch_size: int = 128
    show_progress: bool = True
    command: str = ""
    fast: bool = False
    shard_size: int | None = None
    matrix: dict[str, str] = field(default_factory=dict)
    examples: int = 6
    cell_time_limit: float | None = None
