"""Threat matrices in TOML files: `load_matrix_file` reads one, `matrix_to_toml` writes one.

Format (see docs/matrices.md)::

    name = "my-review"        # required
    version = "2"              # optional, default "1"
    description = "..."        # optional
    attacks = ["fgsm", "pgd:steps=40,restarts=2"]   # required, attack specs
    [[threats]]                # one or more
    norm = "linf"
    eps = [0.03, "8/255"]      # numbers or fraction strings; or a single value
    targeted = false           # optional
    targets = "random"         # optional, with targeted = true: random, next-likely,
                               # least-likely or a class index

Contract: every problem raises `MatrixError` with one line that names the file and either
the TOML line (syntax errors) or the field at fault (``threats[1].eps``, ``attacks[0]``),
and says how to fix it. Attack names are not checked here (the catalogue does that when the
attacks are built); attack entries must be non-empty strings. Every eps must be finite and
> 0. ``load_matrix_file(path)`` of ``matrix_to_toml(m)`` written to ``path`` equals ``m``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

from robustbench_lite.errors import MatrixError, ThreatModelError
from robustbench_lite.matrix.core import ThreatMatrix
from robustbench_lite.threat import (
    RANDOM_TARGETS,
    Norm,
    ThreatModel,
    parse_eps,
    parse_target_mode,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

TOP_LEVEL_KEYS = ("name", "version", "description", "attacks", "threats")
THREAT_KEYS = ("norm", "eps", "targeted", "targets")
DEFAULT_VERSION = "1"
_FORMAT_HINT = "see docs/matrices.md for the format"

#: Builds the error for a field (``threats[0].eps``) and a problem with its fix.
Fail = Callable[[str, str], MatrixError]


def load_matrix_file(path: Path) -> ThreatMatrix:
    """Read and check the threat matrix in the TOML file ``path``."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise MatrixError(f"{path}: no such matrix file; check the path, or name a preset "
                          "(robust matrix list)") from None
    except OSError as exc:
        raise MatrixError(f"{path}: cannot read the matrix file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise MatrixError(f"{path}: not UTF-8 text (byte {exc.start}); save the file as "
                          "UTF-8") from exc
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MatrixError(f"{path}: invalid TOML: {exc}; fix the syntax there "
                          f"({_FORMAT_HINT})") from exc
    except (ValueError, RecursionError) as exc:  # an integer of 4300+ digits, deep nesting
        detail = " ".join(str(exc).split(";")[0].split())[:160]
        raise MatrixError(f"{path}: cannot read the TOML ({type(exc).__name__}: {detail}); "
                          f"write ordinary numbers and tables ({_FORMAT_HINT})") from exc
    return matrix_from_dict(document, source=str(path))


def matrix_from_dict(document: dict[str, Any], source: str) -> ThreatMatrix:
    """Check a parsed TOML document and build the matrix; errors name ``source``."""

    def fail(where: str, problem: str) -> MatrixError:
        return MatrixError(f"{source}: {where}: {problem}")

    unknown = [key for key in document if key not in TOP_LEVEL_KEYS]
    if unknown:
        raise fail(unknown[0], f"unknown key; the valid keys are {', '.join(TOP_LEVEL_KEYS)}")
    name = document.get("name")
    if not isinstance(name, str) or not name.strip():
        raise fail("name", 'required: a non-empty string, e.g. name = "my-review"')
    version = document.get("version", DEFAULT_VERSION)
    if isinstance(version, int) and not isinstance(version, bool):
        version = str(version)
    if not isinstance(version, str) or not version.strip():
        raise fail("version", 'must be a non-empty string, e.g. version = "2"')
    description = document.get("description", "")
    if not isinstance(description, str):
        raise fail("description", 'must be a string, e.g. description = "what this is for"')
    return ThreatMatrix(name=name, version=version,
                        attacks=_attacks(document, fail), threats=_threats(document, fail),
                        description=description)


def _attacks(document: dict[str, Any], fail: Fail) -> tuple[str, ...]:
    if "attacks" not in document:
        raise fail("attacks", 'required: a list of attack specs, e.g. attacks = ["fgsm", '
                   '"pgd:steps=40"]')
    attacks = document["attacks"]
    if not isinstance(attacks, list) or not attacks:
        raise fail("attacks", 'must be a non-empty list of attack specs, e.g. attacks = '
                   '["fgsm", "pgd:steps=40"]')
    specs = []
    for index, spec in enumerate(attacks):
        if not isinstance(spec, str) or not spec.strip():
            raise fail(f"attacks[{index}]", f"must be a non-empty string such as "
                       f'"pgd:steps=40", got {_show(spec)}')
        specs.append(spec)
    return tuple(specs)


def _threats(document: dict[str, Any], fail: Fail) -> tuple[ThreatModel, ...]:
    tables = document.get("threats")
    example = '[[threats]] tables, each with norm = "linf" and eps = [0.03, "8/255"]'
    if tables is None:
        raise fail("threats", f"required: one or more {example}")
    if not isinstance(tables, list) or not tables:
        raise fail("threats", f"must be one or more {example} (note the double brackets)")
    threats: list[ThreatModel] = []
    for index, table in enumerate(tables):
        where = f"threats[{index}]"
        if not isinstance(table, dict):
            raise fail(where, f"must be a table; write {example}")
        unknown = [key for key in table if key not in THREAT_KEYS]
        if unknown:
            raise fail(f"{where}.{unknown[0]}", f"unknown key; the valid keys are "
                       f"{', '.join(THREAT_KEYS)}")
        if not isinstance(table.get("norm"), str):
            raise fail(f"{where}.norm", "required: a string, one of "
                       f"{', '.join(n.value for n in Norm)}")
        try:
            norm = Norm.parse(table["norm"])
        except ThreatModelError as exc:
            raise fail(f"{where}.norm", str(exc)) from exc
        targeted = table.get("targeted", False)
        if not isinstance(targeted, bool):
            raise fail(f"{where}.targeted", "must be true or false")
        if "targets" in table and not targeted:
            raise fail(f"{where}.targets", "applies only to a targeted threat model; add "
                       "targeted = true")
        try:
            targets = parse_target_mode(table.get("targets", RANDOM_TARGETS))
        except ThreatModelError as exc:
            raise fail(f"{where}.targets", str(exc)) from exc
        if "eps" not in table:
            raise fail(f"{where}.eps", 'required: a number, a fraction string ("8/255") or '
                       "a list of them")
        values = table["eps"] if isinstance(table["eps"], list) else [table["eps"]]
        if not values:
            raise fail(f"{where}.eps", 'must list at least one eps, e.g. eps = [0.03, "8/255"]')
        for value in values:
            threats.append(ThreatModel(norm, _eps(value, f"{where}.eps", fail),
                                       targeted=targeted, targets=targets))
    return tuple(threats)


def _eps(value: Any, where: str, fail: Fail) -> float:
    hint = 'write a positive number (0.03) or a fraction string ("8/255")'
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise fail(where, f"{_show(value)} is not an eps; {hint}")
    if isinstance(value, str):
        try:
            eps = parse_eps(value)
        except ThreatModelError:
            raise fail(where, f"cannot read eps {value[:40]!r} as a finite number; "
                       f"{hint}") from None
    else:
        try:
            eps = float(value)
        except OverflowError:  # an integer beyond the float range
            eps = math.inf
    if not math.isfinite(eps) or eps <= 0:
        shown = _show(value) if len(_show(value)) <= 40 else _show(value)[:37] + "..."
        raise fail(where, f"eps must be a finite number greater than 0, got {shown}; {hint}")
    return eps


def _show(value: Any) -> str:
    """A value as the user wrote it in TOML (strings quoted, booleans lower case)."""
    if isinstance(value, str):
        return repr(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


# ---------------------------------------------------------------- writing


def format_eps(eps: float) -> str:
    """Readable exact text for an eps: a fraction with a denominator up to 255 (``8/255``,
    ``1/3``) when it is exactly that float and the decimal is long, else the shortest
    decimal that reads back to the same float."""
    decimal = repr(float(eps))
    if len(decimal) > 8:
        fraction = Fraction(eps).limit_denominator(255)
        if fraction > 0 and float(fraction) == eps:
            return f"{fraction.numerator}/{fraction.denominator}"
    return decimal


def _toml_string(text: str) -> str:
    escapes = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
               "\r": "\\r"}
    out = []
    for char in text:
        if char in escapes:
            out.append(escapes[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _toml_eps(eps: float) -> str:
    text = format_eps(eps)
    return _toml_string(text) if "/" in text else text


def matrix_to_toml(matrix: ThreatMatrix) -> str:
    """The matrix as a TOML file that `load_matrix_file` reads back equal to ``matrix``.

    Consecutive threat models of the same norm and targeting share one ``[[threats]]``
    table. Raises `MatrixError` for what the format cannot hold (a pixel box other than
    [0, 1]).
    """
    for threat in matrix.threats:
        if (threat.lower, threat.upper) != (0.0, 1.0):
            raise MatrixError(f"matrix {matrix.name!r}: the TOML format has no pixel box; "
                              f"{threat.label} uses [{threat.lower}, {threat.upper}]")
    lines = [f"name = {_toml_string(matrix.name)}", f"version = {_toml_string(matrix.version)}"]
    if matrix.description:
        lines.append(f"description = {_toml_string(matrix.description)}")
    lines.append("attacks = [")
    lines.extend(f"    {_toml_string(spec)}," for spec in matrix.attacks)
    lines.append("]")
    groups: list[tuple[Norm, str | None, list[float]]] = []
    for threat in matrix.threats:
        if groups and groups[-1][:2] == (threat.norm, threat.target_mode):
            groups[-1][2].append(threat.eps)
        else:
            groups.append((threat.norm, threat.target_mode, [threat.eps]))
    for norm, target_mode, eps_values in groups:
        lines += ["", "[[threats]]", f"norm = {_toml_string(norm.value)}",
                  f"eps = [{', '.join(_toml_eps(eps) for eps in eps_values)}]"]
        if target_mode is not None:
            lines.append("targeted = true")
            lines.append(f"targets = {_toml_string(target_mode)}")
    return "\n".join(lines) + "\n"
