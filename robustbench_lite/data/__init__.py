"""Datasets: the `EvalData` container, the `DatasetSource` interface and built-in sources."""

from robustbench_lite.data.eval_data import EvalData, make_eval_data
from robustbench_lite.data.source import DatasetSource

__all__ = ["DatasetSource", "EvalData", "make_eval_data"]
