"""Shared fixtures: a fresh plugin manager and catalogue, the default model and data."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from robustbench_lite.catalogue import Catalogue, catalogue_for
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.data.resolve import load_dataset
from robustbench_lite.models.loading import check_model_on_data, load_model
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.plugin_host import PluginManager, get_plugin_manager


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from intra-op threads, and on a busy machine threads wait on
    each other; one thread keeps the suite fast and its timings stable."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def manager() -> PluginManager:
    """A fresh manager with the built-ins only (installed plugins are not loaded)."""
    return get_plugin_manager(load_entrypoints=False)


@pytest.fixture
def catalogue(manager: PluginManager) -> Catalogue:
    return catalogue_for(manager)


@pytest.fixture(scope="session")
def digits_test() -> EvalData:
    return load_dataset("digits", catalogue_for(get_plugin_manager(load_entrypoints=False)))


@pytest.fixture(scope="session")
def default_model(digits_test: EvalData) -> RobustModel:
    """The bundled default model, loaded the way `robust audit` loads it."""
    catalogue = catalogue_for(get_plugin_manager(load_entrypoints=False))
    arch = catalogue.architectures.get("digits-cnn")
    assert arch.weights is not None
    model = load_model(arch.weights, catalogue=catalogue, input_shape=digits_test.input_shape,
                       arch="digits-cnn", num_classes=10)
    check_model_on_data(model, digits_test)
    return model


@pytest.fixture
def tiny_batch(digits_test: EvalData, default_model: RobustModel) -> tuple[torch.Tensor,
                                                                          torch.Tensor]:
    """64 correctly classified digits."""
    correct = default_model.predict(digits_test.x) == digits_test.y
    return digits_test.x[correct][:64], digits_test.y[correct][:64]


@pytest.fixture
def isolated_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run a command-line test in ``tmp_path`` and restore the root logger afterwards, which
    `robust` reconfigures (use with ``pytest.mark.usefixtures("isolated_cli")``)."""
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)

