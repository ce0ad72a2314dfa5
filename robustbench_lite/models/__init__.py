"""Models: the `RobustModel` wrapper, the architecture zoo and the file adapters."""

from robustbench_lite.models.robust_model import LoadInfo, RobustModel

__all__ = ["LoadInfo", "RobustModel"]
