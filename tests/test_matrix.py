"""Threat matrices: standard eps by family, the built-in presets, TOML files, resolution and
the ``robust matrix`` commands (invoked directly through click's CliRunner)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from click.testing import CliRunner

import robustbench_lite.builtin.matrices as builtin_matrices
from robustbench_lite.attacks.spec import build_attack, parse_attack_spec
from robustbench_lite.catalogue import Catalogue, catalogue_for
from robustbench_lite.cli import matrix as cli_matrix
from robustbench_lite.errors import MatrixError, PluginError, UnknownMatrixError
from robustbench_lite.hookspecs import hookimpl
from robustbench_lite.matrix.core import MatrixPreset, ThreatMatrix
from robustbench_lite.matrix.files import format_eps, load_matrix_file, matrix_to_toml
from robustbench_lite.matrix.presets import STANDARD_EPS, standard_eps
from robustbench_lite.matrix.resolve import resolve_matrix
from robustbench_lite.plugin_host import PluginManager, get_plugin_manager
from robustbench_lite.threat import Norm, ThreatModel

PRESETS = ("quick", "standard", "autoattack")
FAMILIES = ("digits", "mnist", "cifar10", "cifar100", "imagenet", "generic", "unknown-family")
LINF, L2 = Norm.LINF, Norm.L2


@pytest.fixture
def matrix_manager() -> PluginManager:
    """The built-ins with the matrix presets, whether or not builtin.matrices is one of the
    default plugins yet (registering it twice would be an error)."""
    manager = get_plugin_manager(load_entrypoints=False)
    if "standard" in catalogue_for(manager).matrices.names():
        return manager
    return get_plugin_manager(load_entrypoints=False, extra_plugins=(builtin_matrices,))


@pytest.fixture
def matrix_catalogue(matrix_manager: PluginManager) -> Catalogue:
    return catalogue_for(matrix_manager)


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, matrix_manager: PluginManager) -> CliRunner:
    monkeypatch.setattr(cli_matrix, "default_plugin_manager", lambda: matrix_manager)
    return CliRunner()


def write(tmp_path: Path, text: str, name: str = "matrix.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def threats(norm: Norm, *eps: float) -> tuple[ThreatModel, ...]:
    return tuple(ThreatModel(norm, value) for value in eps)


# ---------------------------------------------------------------- standard eps


@pytest.mark.parametrize(("family", "linf", "l2"), [
    ("digits", 0.1, 1.0),
    ("mnist", 0.3, 2.0),
    ("cifar10", 8 / 255, 0.5),
    ("cifar100", 8 / 255, 0.5),
    ("imagenet", 4 / 255, 3.0),
    ("generic", 8 / 255, 0.5),
])
def test_standard_eps_by_family(family: str, linf: float, l2: float) -> None:
    assert standard_eps(family) == {LINF: linf, L2: l2}


def test_unknown_family_falls_back_to_generic() -> None:
    assert standard_eps("svhn") == STANDARD_EPS["generic"] == STANDARD_EPS["cifar10"]
    standard_eps("svhn")[LINF] = 1.0  # a copy: the table is not changed
    assert STANDARD_EPS["generic"][LINF] == 8 / 255


# ---------------------------------------------------------------- presets


def test_builtin_presets_are_registered(matrix_catalogue: Catalogue) -> None:
    assert set(PRESETS) <= set(matrix_catalogue.matrices.names())
    for name in PRESETS:
        preset = matrix_catalogue.matrices.get(name)
        assert (preset.name, preset.version) == (name, "1")
        assert preset.description
        assert matrix_catalogue.matrices.plugin_of(name) == builtin_matrices.__name__


def test_quick_preset(matrix_catalogue: Catalogue) -> None:
    quick = matrix_catalogue.matrices.get("quick")
    digits = quick.build("digits")
    assert (digits.name, digits.version) == ("quick", "1")
    assert digits.attacks == ("fgsm", "pgd")
    assert digits.threats == threats(LINF, 0.05, 0.1)
    assert quick.build("cifar10").threats == threats(LINF, 4 / 255, 8 / 255)
    assert quick.build("mnist").threats == threats(LINF, 0.15, 0.3)


def test_standard_preset(matrix_catalogue: Catalogue) -> None:
    standard = matrix_catalogue.matrices.get("standard")
    digits = standard.build("digits")
    assert digits.threats == threats(LINF, 0.05, 0.1, 0.2) + threats(L2, 0.5, 1.0, 2.0)
    assert digits.attacks == ("fgsm", "fgm", "pgd:steps=50,restarts=2", "apgd-ce",
                              "apgd-t:n_target_classes=3", "square:n_queries=1000",
                              "deepfool", "noise")
    assert len(digits.cells()) == 48
    cifar = standard.build("cifar10")
    assert cifar.threats == (threats(LINF, 4 / 255, 8 / 255, 16 / 255)
                             + threats(L2, 0.25, 0.5, 1.0))
    assert standard.build("unknown-family") == standard.build("generic")


def test_autoattack_preset(matrix_catalogue: Catalogue) -> None:
    autoattack = matrix_catalogue.matrices.get("autoattack")
    assert autoattack.build("digits").attacks == ("autoattack",)
    assert autoattack.build("digits").threats == threats(LINF, 0.1) + threats(L2, 1.0)
    assert autoattack.build("imagenet").threats == threats(LINF, 4 / 255) + threats(L2, 3.0)


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("family", FAMILIES)
def test_every_preset_attack_builds(matrix_catalogue: Catalogue, name: str,
                                    family: str) -> None:
    matrix = matrix_catalogue.matrices.get(name).build(family)
    assert matrix.threats and matrix.attacks
    for spec in matrix.attacks:
        attack = build_attack(spec, matrix_catalogue)
        assert attack.name == parse_attack_spec(spec)[0]
        assert any(attack.supports(threat) for threat in matrix.threats), spec


def matrix_plugin(*objects: Any) -> ModuleType:
    """A throw-away plugin whose ``register_threat_matrices`` registers ``objects``."""
    plugin = ModuleType("matrix_plugin")

    @hookimpl
    def register_threat_matrices(register: Callable[[Any], None]) -> None:
        for obj in objects:
            register(obj)

    plugin.register_threat_matrices = register_threat_matrices  # type: ignore[attr-defined]
    return plugin


def test_plugin_preset_through_register_threat_matrices() -> None:
    def build(family: str) -> ThreatMatrix:
        return ThreatMatrix("sweep", "3", ("pgd",),
                            threats(LINF, *(standard_eps(family)[LINF] * m for m in (1, 4))))

    plugin = matrix_plugin(MatrixPreset("sweep", "3", "PGD at 1x and 4x", build))
    manager = get_plugin_manager(load_entrypoints=False, extra_plugins=(plugin,))
    catalogue = catalogue_for(manager)
    assert catalogue.matrices.plugin_of("sweep") == "matrix_plugin"
    assert resolve_matrix("sweep", catalogue, "mnist").threats == threats(LINF, 0.3, 1.2)


@pytest.mark.parametrize(("obj", "message"), [
    (MatrixPreset("quick", "9", "a clash", lambda family: ThreatMatrix("q", "9", (), ())),
     r"threat matrix name 'quick' is registered twice: by plugin "
     r"'(matrix_plugin|robustbench_lite\.builtin\.matrices)' and by plugin '(?!\1)"),
    (ThreatMatrix("m", "1", ("fgsm",), threats(LINF, 0.1)),
     r"plugin 'matrix_plugin' registered .* through register_threat_matrices, but it is "
     r"not a MatrixPreset"),
])
def test_bad_plugin_presets_name_the_plugin(obj: Any, message: str) -> None:
    extra: tuple[ModuleType, ...] = (matrix_plugin(obj),)
    builtins_only = catalogue_for(get_plugin_manager(load_entrypoints=False))
    if "standard" not in builtins_only.matrices.names():
        extra = (builtin_matrices, *extra)
    with pytest.raises(PluginError, match=message):
        catalogue_for(get_plugin_manager(load_entrypoints=False, extra_plugins=extra))


# ---------------------------------------------------------------- with_overrides


def test_with_overrides() -> None:
    matrix = ThreatMatrix("m", "1", ("fgsm", "pgd"), threats(LINF, 0.1, 0.2), "about m")
    assert matrix.with_overrides() == matrix
    attacks_only = matrix.with_overrides(attacks=["noise"])
    assert attacks_only.attacks == ("noise",)
    assert attacks_only.threats == matrix.threats
    threats_only = matrix.with_overrides(threats=threats(L2, 1.0))
    assert threats_only.threats == threats(L2, 1.0)
    assert threats_only.attacks == matrix.attacks
    assert (threats_only.name, threats_only.description) == ("m", "about m")


# ---------------------------------------------------------------- TOML files

EXAMPLE = """\
name = "my-review"
version = "2"
description = "Linf grid plus one L2 point"
attacks = ["fgsm", "pgd:steps=40,restarts=2"]

[[threats]]
norm = "linf"
eps = [0.03, "8/255"]

[[threats]]
norm = "l2"
eps = 0.5
targeted = true
"""


def test_load_matrix_file(tmp_path: Path) -> None:
    matrix = load_matrix_file(write(tmp_path, EXAMPLE))
    assert matrix == ThreatMatrix(
        name="my-review", version="2", description="Linf grid plus one L2 point",
        attacks=("fgsm", "pgd:steps=40,restarts=2"),
        threats=(*threats(LINF, 0.03, 8 / 255), ThreatModel(L2, 0.5, targeted=True)))


def test_optional_fields_default(tmp_path: Path) -> None:
    matrix = load_matrix_file(write(tmp_path, 'name = "m"\nattacks = ["fgsm"]\n'
                                    '[[threats]]\nnorm = "linf"\neps = 1\n'))
    assert (matrix.version, matrix.description) == ("1", "")
    assert matrix.threats == threats(LINF, 1.0)


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("family", ["digits", "cifar10", "imagenet"])
def test_show_toml_round_trip(runner: CliRunner, matrix_catalogue: Catalogue, tmp_path: Path,
                              name: str, family: str) -> None:
    result = runner.invoke(cli_matrix.matrix_group,
                           ["show", name, "--toml", "--data-family", family])
    assert result.exit_code == 0, result.output
    loaded = load_matrix_file(write(tmp_path, result.output))
    assert loaded == matrix_catalogue.matrices.get(name).build(family)


def test_toml_round_trip_of_awkward_values(tmp_path: Path) -> None:
    matrix = ThreatMatrix(
        name='quote " and \\ back', version="2.1",
        description="two\nlines, tab\t, unicode é ✓, control \x01 and \x7f",
        attacks=("pgd:steps=3", "art:ProjectedGradientDescent:max_iter=2"),
        threats=(ThreatModel(LINF, 1 / 3), ThreatModel(LINF, 1e-5, targeted=True),
                 ThreatModel(LINF, 2 / 255), ThreatModel(L2, 0.1 + 0.2), ThreatModel(LINF, 0.2)))
    assert load_matrix_file(write(tmp_path, matrix_to_toml(matrix))) == matrix


def test_fraction_eps_are_written_as_fractions() -> None:
    assert format_eps(8 / 255) == "8/255"
    assert format_eps(16 / 255) == "16/255"
    assert format_eps(0.2) == "0.2"  # 51/255, but the decimal is short
    assert format_eps(85 / 255) == "1/3"
    assert format_eps(0.1 + 0.2) == repr(0.1 + 0.2)


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'name = "m"\nattacks = ["fgsm"]\nthis is not toml\n')
    with pytest.raises(MatrixError) as info:
        load_matrix_file(path)
    message = str(info.value)
    assert str(path) in message and "line 3" in message and "\n" not in message


def test_missing_attacks(tmp_path: Path) -> None:
    path = write(tmp_path, 'name = "m"\n[[threats]]\nnorm = "linf"\neps = 0.1\n')
    with pytest.raises(MatrixError, match=r"attacks: required") as info:
        load_matrix_file(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("eps", ['"abc"', "-1", "0", '"0"', "[]", "true", "nan"])
def test_bad_eps_names_the_field(tmp_path: Path, eps: str) -> None:
    path = write(tmp_path, f'name = "m"\nattacks = ["fgsm"]\n[[threats]]\nnorm = "linf"\n'
                           f"eps = {eps}\n")
    with pytest.raises(MatrixError, match=r"threats\[0\]\.eps: ") as info:
        load_matrix_file(path)
    assert str(path) in str(info.value)


def test_bad_eps_in_a_later_table(tmp_path: Path) -> None:
    text = EXAMPLE.replace("eps = 0.5", 'eps = [0.5, "1/0"]')
    with pytest.raises(MatrixError, match=r"threats\[1\]\.eps: cannot read eps '1/0'"):
        load_matrix_file(write(tmp_path, text))


def test_unknown_top_level_key_lists_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(MatrixError, match=r"attack: unknown key; the valid keys are name, "
                       r"version, description, attacks, threats"):
        load_matrix_file(write(tmp_path, 'attack = ["fgsm"]\n' + EXAMPLE))


@pytest.mark.parametrize(("text", "field"), [
    ('name = "m"\nattacks = ["fgsm", ""]\n[[threats]]\nnorm = "linf"\neps = 0.1\n',
     r"attacks\[1\]: must be a non-empty string"),
    ('name = "m"\nattacks = [1]\n[[threats]]\nnorm = "linf"\neps = 0.1\n', r"attacks\[0\]"),
    ('name = "m"\nattacks = "fgsm"\n[[threats]]\nnorm = "linf"\neps = 0.1\n', r"attacks: "),
    ('name = "m"\nattacks = []\n[[threats]]\nnorm = "linf"\neps = 0.1\n', r"attacks: "),
    ('attacks = ["fgsm"]\n[[threats]]\nnorm = "linf"\neps = 0.1\n', r"name: required"),
    ('name = "m"\nversion = true\nattacks = ["fgsm"]\n[[threats]]\nnorm = "linf"\n'
     "eps = 0.1\n", r"version: "),
    ('name = "m"\nattacks = ["fgsm"]\n', r"threats: required"),
    ('name = "m"\nattacks = ["fgsm"]\n[threats]\nnorm = "linf"\neps = 0.1\n',
     r"threats: .*double brackets"),
    ('name = "m"\nattacks = ["fgsm"]\n[[threats]]\nnorm = "l7"\neps = 0.1\n',
     r"threats\[0\]\.norm: unknown norm 'l7'"),
    ('name = "m"\nattacks = ["fgsm"]\n[[threats]]\neps = 0.1\n', r"threats\[0\]\.norm: "),
    ('name = "m"\nattacks = ["fgsm"]\n[[threats]]\nnorm = "linf"\n', r"threats\[0\]\.eps: "),
    ('name = "m"\nattacks = ["fgsm"]\n[[threats]]\nnorm = "linf"\neps = 0.1\n'
     'targeted = "yes"\n', r"threats\[0\]\.targeted: must be true or false"),
    ('name = "m"\nattacks = ["fgsm"]\n[[threats]]\nnorm = "linf"\neps = 0.1\nepsilon = 1\n',
     r"threats\[0\]\.epsilon: unknown key; the valid keys are norm, eps, targeted"),
])
def test_field_errors(tmp_path: Path, text: str, field: str) -> None:
    with pytest.raises(MatrixError, match=field) as info:
        load_matrix_file(write(tmp_path, text))
    assert str(info.value).startswith(str(tmp_path))
    assert "\n" not in str(info.value)


def test_missing_or_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(MatrixError, match="no such matrix file"):
        load_matrix_file(tmp_path / "absent.toml")
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'name = "caf\xe9"\n')
    with pytest.raises(MatrixError, match="not UTF-8"):
        load_matrix_file(path)


# ---------------------------------------------------------------- resolve_matrix


def test_resolve_preset_and_file(matrix_catalogue: Catalogue, tmp_path: Path) -> None:
    standard = resolve_matrix("standard", matrix_catalogue, "cifar10")
    assert standard == matrix_catalogue.matrices.get("standard").build("cifar10")
    path = write(tmp_path, EXAMPLE)
    assert resolve_matrix(str(path), matrix_catalogue, "digits") == load_matrix_file(path)
    other = write(tmp_path, EXAMPLE, name="standard")  # a file named like a preset
    assert resolve_matrix(str(other), matrix_catalogue, "digits").name == "my-review"


def test_resolve_unknown_lists_presets(matrix_catalogue: Catalogue) -> None:
    with pytest.raises(UnknownMatrixError) as info:
        resolve_matrix("standrad", matrix_catalogue, "digits")
    message = str(info.value)
    assert "'standrad'" in message and "a .toml file" in message
    for name in PRESETS:
        assert name in message
    with pytest.raises(MatrixError, match="no such matrix file"):
        resolve_matrix("missing.toml", matrix_catalogue, "digits")


# ---------------------------------------------------------------- robust matrix


def test_matrix_list(runner: CliRunner) -> None:
    result = runner.invoke(cli_matrix.matrix_group, ["list"])
    assert result.exit_code == 0, result.output
    for name in PRESETS:
        assert f"{name} (version 1, robustbench_lite.builtin.matrices)" in result.output


def test_matrix_show_standard(runner: CliRunner) -> None:
    result = runner.invoke(cli_matrix.matrix_group, ["show", "standard"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "standard (version 1)"
    assert "data family: digits" in lines
    assert "threat models (6):" in lines
    for threat in ("linf eps=0.05", "linf eps=0.1", "linf eps=0.2", "l2 eps=0.5",
                   "l2 eps=1.0", "l2 eps=2.0"):
        assert f"  {threat}" in lines
    assert "attacks (8):" in lines and "  pgd:steps=50,restarts=2" in lines
    assert "cells: 48 (42 run, 6 skipped)" in lines


def test_matrix_show_family_and_file(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli_matrix.matrix_group, ["show", "quick", "--data-family",
                                                     "cifar10"])
    assert result.exit_code == 0, result.output
    assert "  linf eps=8/255 (0.03137)" in result.output.splitlines()
    result = runner.invoke(cli_matrix.matrix_group, ["show", str(write(tmp_path, EXAMPLE))])
    assert result.exit_code == 0, result.output
    assert "my-review (version 2)" in result.output
    assert "  targeted l2 eps=0.5" in result.output
    assert "cells: 6 (5 run, 1 skipped)" in result.output  # fgsm supports Linf only


def test_matrix_show_errors(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli_matrix.matrix_group, ["show", "nope"])
    assert result.exit_code == 1
    assert result.output.count("Error:") == 1
    assert "unknown threat matrix 'nope'; choose one of: autoattack, quick, standard" in (
        result.output)
    bad = write(tmp_path, EXAMPLE.replace('"fgsm"', '"fgsn"'))
    result = runner.invoke(cli_matrix.matrix_group, ["show", str(bad)])
    assert result.exit_code == 1 and "unknown attack 'fgsn'" in result.output
