"""robustbench_lite: audit and harden the adversarial robustness of PyTorch image models.

Plugins implement hooks with `hookimpl`; see `robustbench_lite.hookspecs` for the contracts.
"""

from importlib import metadata

from robustbench_lite.hookspecs import hookimpl

try:
    __version__ = metadata.version("robustbench-lite")
except metadata.PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "hookimpl"]
