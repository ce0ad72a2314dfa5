"""The host's side of an attack: run a plugin's attack on one batch, verify what it returns
and judge the result itself (`attack_batch`, `BatchResult`)."""

from robustbench_lite.host.attack import BatchResult, QueryCounter, attack_batch, batch_seed
from robustbench_lite.host.verify import Verification, verify_batch

__all__ = ["BatchResult", "QueryCounter", "Verification", "attack_batch", "batch_seed",
           "verify_batch"]
