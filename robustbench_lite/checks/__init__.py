"""Sanity checks of the evaluation itself (see `robustbench_lite.checks.base`)."""
