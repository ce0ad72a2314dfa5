"""How an audit runs: seed, batch size, mode, sharding, what to show and record."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class AuditSettings:
    """``cell_time_limit``: seconds one unit of work (a cell or one shard of it) may run
    before it fails with a time-limit error (None: no limit). ``draws``: forward draws over
    which a randomised model judges each example (None: `automatic_draws`; a deterministic
    model always uses 1). ``smoothing_sigma``: compute the randomized-smoothing certificate
    at this noise level (None: not computed), with ``smoothing_n0`` selection draws,
    ``smoothing_n`` estimation draws and failure probability ``smoothing_alpha``
    (`robustbench_lite.engine.smoothing`; the defaults take under 30 s for the 450 digits
    on a 2-core CPU and certify at most 2.12 sigma; docs/harden.md)."""

    seed: int = 0
    batch_size: int = 128
    show_progress: bool = True
    command: str = ""
    fast: bool = False
    shard_size: int | None = None
    matrix: dict[str, str] = field(default_factory=dict)
    examples: int = 6
    cell_time_limit: float | None = None
    draws: int | None = None
    smoothing_sigma: float | None = None
    smoothing_n0: int = 50
    smoothing_n: int = 400
    smoothing_alpha: float = 0.001
