"""Defenses that harden a model during training (see `robustbench_lite.defenses.base`)."""
