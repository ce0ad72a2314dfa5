"""The plugin host, in process: discovery, registration checks, error messages, meta-tests.

Every test builds a fresh manager (`get_plugin_manager(load_entrypoints=False,
extra_plugins=...)`); plugins are throw-away modules holding ``@hookimpl`` functions.
Entry-point discovery is exercised with a real ``*.dist-info`` written to a temporary folder
on ``sys.path``.
"""

from __future__ import annotations

import copy
import inspect
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import click
import pytest
import torch
from click.testing import CliRunner
from torch import nn

import robustbench_lite
from robustbench_lite import hookspecs, plugin_host
from robustbench_lite.attacks.base import Attack, AttackKind, LogitsFn
from robustbench_lite.catalogue import Catalogue, build_catalogue
from robustbench_lite.cli import add_plugin_commands, cli, main
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.data.source import DatasetSource
from robustbench_lite.errors import PluginError
from robustbench_lite.host.attack import attack_batch
from robustbench_lite.models.adapter import LoadedModule, LoadRequest, ModelAdapter
from robustbench_lite.models.architecture import Architecture
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.plugin_host import (
    DEFAULT_PLUGINS,
    LOAD_PLUGINS_ENV,
    PluginInfo,
    PluginManager,
    get_plugin_manager,
)
from robustbench_lite.threat import Norm, ThreatModel

TESTS_DIR = Path(__file__).resolve().parent
DOCS = TESTS_DIR.parent / "docs" / "plugins.md"
EXAMPLE_PLUGIN_DIR = TESTS_DIR.parent / "plugins" / "example-attack"

BUILTIN_NAMES = {
    "architectures": {"digits-cnn", "preact-resnet18", "wrn-28-10"},
    "adapters": {"torchscript", "torch-checkpoint", "safetensors"},
    "datasets": {"digits", "npz", "image-folder", "cifar10", "mnist"},
    "attacks": {"fgsm", "fgm", "pgd", "apgd-ce", "apgd-dlr", "apgd-t", "square", "noise",
                "deepfool", "cw-l2", "autoattack", "art", "foolbox"},
}

CATALOGUE_HOOKS = ("register_architectures", "register_model_adapters", "register_datasets",
                   "register_attacks")


# ---------------------------------------------------------------- helpers


def make_plugin(name: str, **hooks: Callable[..., None]) -> ModuleType:
    """A plugin module called ``name`` implementing ``hooks`` (hook name -> function)."""
    module = ModuleType(name)
    for hook, function in hooks.items():
        setattr(module, hook, robustbench_lite.hookimpl(function))
    return module


def registering(*objects: Any) -> Callable[[Callable[[Any], None]], None]:
    """A catalogue hook implementation that registers ``objects``."""

    def hook(register: Callable[[Any], None]) -> None:
        for obj in objects:
            register(obj)

    return hook


def make_manager(*plugins: object) -> PluginManager:
    return get_plugin_manager(load_entrypoints=False, extra_plugins=plugins)


def catalogue_with(*plugins: object) -> Catalogue:
    return build_catalogue(make_manager(*plugins))


class Identity(Attack):
    """Returns the clean batch: the smallest valid attack."""

    name = "identity"
    norms = frozenset({Norm.LINF})
    kind = AttackKind.BASELINE

    def __init__(self) -> None:
        self._set_params()

    def run(self, model: LogitsFn, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
            generator: torch.Generator) -> torch.Tensor:
        return x.clone()


class FakeFGSM(Identity):
    name = "fgsm"


class ToySource(DatasetSource):
    name = "toy"
    description = "four 2x2 grey images"
    needs_path = False

    def load(self, path: Path | None, split: str) -> EvalData:
        return EvalData(torch.full((4, 1, 2, 2), 0.5), torch.tensor([0, 1, 0, 1]),
                        ("a", "b"), self.name)


class ToyAdapter(ModelAdapter):
    name = "toy-format"
    description = "files starting with TOY"

    def detect(self, path: Path, header: bytes) -> bool:
        return header.startswith(b"TOY")

    def load(self, request: LoadRequest) -> LoadedModule:
        raise NotImplementedError


TOY_ARCH = Architecture(name="toy-linear", build=lambda: nn.Linear(4, 2), input_shape=(1, 2, 2),
                        description="one linear layer")


# ---------------------------------------------------------------- built-ins


def test_every_builtin_is_registered_through_the_hooks() -> None:
    manager = make_manager()
    catalogue = build_catalogue(manager)
    for attribute, expected in BUILTIN_NAMES.items():
        registry = getattr(catalogue, attribute)
        assert expected <= set(registry.names()), attribute
        for name in expected:
            assert registry.plugin_of(name) in DEFAULT_PLUGINS
    infos = {info.name: info for info in manager.plugin_infos()}
    assert set(DEFAULT_PLUGINS) <= set(infos)
    assert all(infos[name].builtin for name in DEFAULT_PLUGINS)
    assert catalogue.builtin_plugins == frozenset(DEFAULT_PLUGINS)


def test_builtins_only_without_entry_points() -> None:
    manager = make_manager()
    assert [info.name for info in manager.plugin_infos()] == list(DEFAULT_PLUGINS)


def test_hookimpl_is_importable_from_the_package_root() -> None:
    from robustbench_lite import hookimpl

    assert hookimpl is hookspecs.hookimpl
    assert "hookimpl" in robustbench_lite.__all__
    assert hookspecs.PROJECT_NAME == plugin_host.ENTRY_POINT_GROUP == "robustbench_lite"


# ---------------------------------------------------------------- third-party registration


@pytest.mark.parametrize(("hook", "obj", "attribute"), [
    ("register_architectures", TOY_ARCH, "architectures"),
    ("register_model_adapters", ToyAdapter, "adapters"),
    ("register_datasets", ToySource, "datasets"),
    ("register_attacks", Identity, "attacks"),
], ids=lambda value: value if isinstance(value, str) else "")
def test_plugin_registers_each_kind(hook: str, obj: Any, attribute: str) -> None:
    catalogue = catalogue_with(make_plugin("toy-plugin", **{hook: registering(obj)}))
    registry = getattr(catalogue, attribute)
    assert registry.get(obj.name) is obj
    assert registry.plugin_of(obj.name) == "toy-plugin"


def test_third_party_adapters_are_detected_first() -> None:
    catalogue = catalogue_with(
        make_plugin("toy-plugin", register_model_adapters=registering(ToyAdapter)))
    order = catalogue.adapters_in_detection_order()
    assert order[0] is ToyAdapter
    assert {cls.name for cls in order[1:]} == BUILTIN_NAMES["adapters"]


def test_plugin_info_of_an_extra_plugin() -> None:
    manager = make_manager(make_plugin("toy-plugin", register_attacks=registering(Identity)))
    assert manager.plugin_infos()[-1] == PluginInfo("toy-plugin", None, None, False)


# ---------------------------------------------------------------- registration errors


def test_duplicate_name_with_a_builtin_names_both_plugins() -> None:
    plugin = make_plugin("clashing-plugin", register_attacks=registering(FakeFGSM))
    with pytest.raises(PluginError) as info:
        catalogue_with(plugin)
    message = str(info.value)
    assert "'fgsm'" in message
    assert "robustbench_lite.builtin.attacks" in message and "clashing-plugin" in message


def test_duplicate_name_between_two_plugins_names_both() -> None:
    first = make_plugin("first-plugin", register_datasets=registering(ToySource))
    second = make_plugin("second-plugin", register_datasets=registering(ToySource))
    with pytest.raises(PluginError, match=r"dataset name 'toy' is registered twice") as info:
        catalogue_with(first, second)
    assert "first-plugin" in str(info.value) and "second-plugin" in str(info.value)


def test_two_plugins_with_the_same_plugin_name() -> None:
    with pytest.raises(PluginError, match=r"plugin 'robustbench_lite\.builtin\.attacks' could "
                                        r"not be registered"):
        make_manager(make_plugin("robustbench_lite.builtin.attacks",
                                 register_attacks=registering(Identity)))


def not_an_attack() -> None:
    """A function, not an `Attack` subclass."""


@pytest.mark.parametrize(("hook", "obj"), [
    ("register_attacks", not_an_attack),
    ("register_attacks", Identity()),  # an instance, not the class
    ("register_datasets", Identity),
    ("register_model_adapters", ToySource),
    ("register_architectures", Identity),
], ids=["function-as-attack", "attack-instance", "attack-as-dataset", "dataset-as-adapter",
        "attack-as-architecture"])
def test_wrong_type_names_the_plugin_and_the_hook(hook: str, obj: Any) -> None:
    plugin = make_plugin("sloppy-plugin", **{hook: registering(obj)})
    with pytest.raises(PluginError, match=rf"'sloppy-plugin' registered .* through {hook}"):
        catalogue_with(plugin)


def test_registered_class_without_a_name() -> None:
    class Nameless(Identity):
        name = ""

    plugin = make_plugin("sloppy-plugin", register_attacks=registering(Nameless))
    with pytest.raises(PluginError, match=r"'sloppy-plugin' .* without a non-empty string"):
        catalogue_with(plugin)


@pytest.mark.parametrize("hook", CATALOGUE_HOOKS)
def test_hook_that_raises_names_the_plugin(hook: str) -> None:
    def broken(register: Callable[[Any], None]) -> None:
        raise RuntimeError("disk on fire")

    plugin = make_plugin("fragile-plugin", **{hook: broken})
    with pytest.raises(PluginError, match=rf"'fragile-plugin' failed in {hook}: "
                                          r"RuntimeError: disk on fire"):
        catalogue_with(plugin)


def test_hook_with_wrong_parameters_names_the_plugin() -> None:
    def register_attacks(callback: Callable[[Any], None]) -> None:
        """Wrong parameter name: pluggy passes ``register``."""

    with pytest.raises(PluginError, match=r"'wrong-plugin' implements a hook wrongly"):
        make_manager(make_plugin("wrong-plugin", register_attacks=register_attacks))


# ---------------------------------------------------------------- entry points


def write_distribution(root: Path, dist: str, version: str, entry_point: str,
                       module: str, source: str) -> None:
    """Install, by hand, a distribution with one entry point in the ``robustbench_lite``
    group: ``module.py`` plus ``*.dist-info/{METADATA,entry_points.txt}``, which is all
    `importlib.metadata` reads."""
    (root / f"{module}.py").write_text(source)
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[robustbench_lite]\n{entry_point} = {module}\n")


GOOD_PLUGIN_SOURCE = '''\
from robustbench_lite import hookimpl
from robustbench_lite.attacks.fgsm import FGSM


class Renamed(FGSM):
    name = "fgsm-again"


@hookimpl
def register_attacks(register):
    register(Renamed)
'''


@pytest.fixture
def site_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on ``sys.path`` holding a broken plugin (``broken``: raises on import) and a
    working one (``good``); ``ROBUSTBENCH_LITE_LOAD_PLUGINS`` unset."""
    root = tmp_path / "site"
    root.mkdir()
    write_distribution(root, "broken-rbl-plugin", "0.1", "broken", "broken_rbl_plugin",
                       'raise RuntimeError("boom at import")\n')
    write_distribution(root, "good-rbl-plugin", "0.2", "good", "good_rbl_plugin",
                       GOOD_PLUGIN_SOURCE)
    monkeypatch.delenv(LOAD_PLUGINS_ENV, raising=False)
    monkeypatch.syspath_prepend(str(root))  # also invalidates importlib's caches
    yield root
    for module in ("broken_rbl_plugin", "good_rbl_plugin"):
        sys.modules.pop(module, None)


def test_plugin_failing_at_import_is_named(site_dir: Path) -> None:
    with pytest.raises(PluginError) as info:
        get_plugin_manager()
    message = str(info.value)
    assert "plugin 'broken' (from broken-rbl-plugin) failed to import" in message
    assert "RuntimeError: boom at import" in message
    assert LOAD_PLUGINS_ENV in message  # says how to get going again


@pytest.mark.parametrize("allowed", ["", "good", " good , other "])
def test_allow_list_skips_plugins_not_named(site_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                            allowed: str) -> None:
    monkeypatch.setenv(LOAD_PLUGINS_ENV, allowed)
    manager = get_plugin_manager()
    assert not manager.has_plugin("broken")
    assert manager.has_plugin("good") == ("good" in allowed)


def test_allow_list_naming_the_broken_plugin_still_fails(
        site_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOAD_PLUGINS_ENV, "good,broken")
    with pytest.raises(PluginError, match="'broken'"):
        get_plugin_manager()


def test_entry_point_plugin_is_registered_with_its_distribution(
        site_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOAD_PLUGINS_ENV, "good")
    manager = get_plugin_manager()
    assert PluginInfo("good", "good-rbl-plugin", "0.2", False) in manager.plugin_infos()
    catalogue = build_catalogue(manager)
    assert catalogue.attacks.plugin_of("fgsm-again") == "good"


def test_cli_reports_an_import_failure_in_one_line(
        site_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`robust` (the real ``main``) prints one ``Error:`` line, no traceback, and exits 1."""
    monkeypatch.setattr(sys, "argv", ["robust", "plugins"])
    plugin_host.default_plugin_manager.cache_clear()
    try:
        with pytest.raises(SystemExit) as exit_info:
            main()
    finally:
        plugin_host.default_plugin_manager.cache_clear()
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert re.match(r"Error: plugin 'broken' \(from broken-rbl-plugin\) failed to import",
                    lines[0])
    assert "Traceback" not in captured.err + captured.out


# ---------------------------------------------------------------- register_commands


def hello_commands(cli: click.Group) -> None:
    @cli.command("hello")
    @click.option("--name", default="world")
    def hello(name: str) -> None:
        """Say hello from a plugin."""
        click.echo(f"hello {name}")


@pytest.fixture
def fresh_cli() -> click.Group:
    """A copy of the ``robust`` group that plugins may add to without touching the real one."""
    group = copy.copy(cli)
    group.commands = dict(cli.commands)
    return group


def test_register_commands_adds_a_sub_command(fresh_cli: click.Group,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    manager = make_manager(make_plugin("greeter", register_commands=hello_commands))
    monkeypatch.setattr(plugin_host, "default_plugin_manager", lambda: manager)
    add_plugin_commands(fresh_cli)
    runner = CliRunner()
    help_result = runner.invoke(fresh_cli, ["--help"], prog_name="robust")
    assert help_result.exit_code == 0
    assert re.search(r"^\s+hello\s+Say hello from a plugin\.", help_result.output, re.M)
    assert re.search(r"^\s+audit\s", help_result.output, re.M)  # built-ins still there
    hello = runner.invoke(fresh_cli, ["hello", "--name", "plugins"], prog_name="robust")
    assert hello.exit_code == 0 and hello.output == "hello plugins\n"
    assert "hello" not in cli.commands


def test_register_commands_failure_names_the_plugin(fresh_cli: click.Group,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(cli: click.Group) -> None:
        raise ZeroDivisionError("division by zero")

    manager = make_manager(make_plugin("crasher", register_commands=crash))
    monkeypatch.setattr(plugin_host, "default_plugin_manager", lambda: manager)
    with pytest.raises(PluginError, match="'crasher' failed in register_commands"):
        add_plugin_commands(fresh_cli)


def test_a_plugin_cannot_replace_a_built_in_command(fresh_cli: click.Group,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    def impostor(cli: click.Group) -> None:
        @cli.command("audit")
        def fake_audit() -> None:
            click.echo("everything is robust")

    manager = make_manager(make_plugin("impostor", register_commands=impostor))
    monkeypatch.setattr(plugin_host, "default_plugin_manager", lambda: manager)
    original = fresh_cli.commands["audit"]
    with pytest.raises(PluginError, match=r"plugin 'impostor' registers the command\(s\) "
                                          "audit, which already exist"):
        add_plugin_commands(fresh_cli)
    assert fresh_cli.commands["audit"] is original


def test_misspelled_hook_is_an_error_naming_the_plugin() -> None:
    typo = make_plugin("typo", register_attack=registering(Identity))
    with pytest.raises(PluginError, match="'typo' implements an unknown hook"):
        make_manager(typo)


# ---------------------------------------------------------------- the example plugin in process


@pytest.fixture
def example_plugin(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """``plugins/example-attack`` imported from its source folder (not installed)."""
    monkeypatch.syspath_prepend(str(EXAMPLE_PLUGIN_DIR))
    import robustbench_lite_example_attack

    yield robustbench_lite_example_attack
    sys.modules.pop("robustbench_lite_example_attack", None)


def test_example_plugin_registers_random_sign(example_plugin: ModuleType) -> None:
    catalogue = catalogue_with(example_plugin)
    attack_class = catalogue.attacks.get("random-sign")
    assert attack_class is example_plugin.RandomSign
    assert catalogue.attacks.plugin_of("random-sign") == "robustbench_lite_example_attack"
    attack = attack_class()
    assert attack.params == {"samples": 8} and attack.kind is AttackKind.BASELINE
    assert attack.supports(ThreatModel(Norm.LINF, 0.1))
    assert not attack.supports(ThreatModel(Norm.L2, 1.0))
    with pytest.raises(ValueError, match="samples"):
        attack_class(samples=0)


def test_example_attack_passes_the_host_checks(example_plugin: ModuleType,
                                               default_model: RobustModel,
                                               tiny_batch: tuple[torch.Tensor, torch.Tensor],
                                               ) -> None:
    x, y = tiny_batch
    threat = ThreatModel(Norm.LINF, 0.2)
    attack = example_plugin.RandomSign(samples=4)
    outcome = attack_batch(attack, default_model, x, y, threat, seed=3)
    assert bool(outcome.valid.all()) and outcome.problems == ()
    assert 0 < outcome.queries <= 4 * len(x)
    fooled = outcome.success
    assert fooled.any()
    # fooled samples stopped early, so fewer queries than samples * batch
    assert outcome.queries < 4 * len(x)
    again = attack_batch(attack, default_model, x, y, threat, seed=3)
    assert torch.equal(outcome.x_adv, again.x_adv)
    # every perturbed pixel sits on a corner of the ball or on the pixel box
    delta = (outcome.x_adv - x).abs()
    on_corner = torch.isclose(delta, torch.tensor(threat.eps), atol=1e-6)
    on_box = (outcome.x_adv == 0) | (outcome.x_adv == 1)
    assert bool((on_corner | on_box).all())


# ---------------------------------------------------------------- meta-tests


def hook_specs() -> dict[str, inspect.Signature]:
    """Every hook the host declares, with its signature."""
    marker = f"{hookspecs.PROJECT_NAME}_spec"
    return {name: inspect.signature(function) for name, function in vars(hookspecs).items()
            if inspect.isfunction(function) and hasattr(function, marker)}


def test_hook_specs_are_found() -> None:
    assert set(CATALOGUE_HOOKS) | {"register_commands"} <= set(hook_specs())
    assert set(hook_specs()) == set(make_manager().hook.__dict__)


def test_every_hook_has_a_test() -> None:
    text = "\n".join(path.read_text() for path in sorted(TESTS_DIR.glob("test_*.py")))
    untested = [name for name in hook_specs() if not re.search(rf"\b{name}\b", text)]
    assert not untested, f"hooks named in no test under tests/: {untested}"


def test_every_hook_signature_is_documented() -> None:
    docs = DOCS.read_text()
    missing = [f"{name}({', '.join(signature.parameters)})"
               for name, signature in hook_specs().items()
               if f"{name}({', '.join(signature.parameters)})" not in docs]
    assert not missing, f"hook signatures missing from {DOCS.name}: {missing}"
