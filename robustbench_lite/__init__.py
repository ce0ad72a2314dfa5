"""robustbench_lite: audit and harden the adversarial robustness of PyTorch image models.

Plugins implement hooks with `hookimpl`; see `robustbench_lite.hookspecs` for the contracts.
"""

from importlib import metadata
from typing import Any

from robustbench_lite.hookspecs import hookimpl

try:
    __version__ = metadata.version("robustbench-lite")
except metadata.PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "audit", "hookimpl"]


def __getattr__(name: str) -> Any:
    """``robustbench_lite.audit`` is imported on first use (it loads torch and the engine)."""
    if name == "audit":
        from robustbench_lite.api import audit

        return audit
    raise AttributeError(f"module 'robustbench_lite' has no attribute {name!r}")
