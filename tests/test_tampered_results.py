"""A tampered or broken results.json is one clean error line (exit 1) naming the file and the
JSON path of the first problem; non-finite numbers are written as strict JSON and read back."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner
from result_factory import make_cell, make_result

from robustbench_lite import results_schema
from robustbench_lite.cli.report import diff_command, report_command
from robustbench_lite.reports.diff import render_diff_html
from robustbench_lite.reports.outputs import results_document, write_outputs
from robustbench_lite.reports.render import format_number, format_percent, render_html
from robustbench_lite.results import (
    AdversarialExample,
    AuditResult,
    CurvePoint,
    PerClassRow,
    SanityCheck,
    StageNote,
    TaskInfo,
    ThreatSummary,
    read_results,
)

PNG = "data:image/png;base64,iVBORw0KGgo="
Raw = dict[str, Any]


def full_result(**fields: Any) -> AuditResult:
    """A result with something in every section."""
    cells = [make_cell(attack, "linf", 0.1, accuracy, success_rate=0.5, n_attacked=97,
                       mean_distance=0.08, max_distance=0.1)
             for attack, accuracy in (("fgsm", 0.6), ("pgd", 0.4), ("apgd", 0.35),
                                      ("square", 0.5))]
    values: dict[str, Any] = dict(
        cells=cells,
        robust_accuracy=[ThreatSummary("linf", 0.1, 0.3, ["fgsm", "pgd", "apgd", "square"],
                                       success_rate=0.7)],
        per_class=[PerClassRow("linf", 0.1, str(c), 10, 0.9, 0.3) for c in range(10)],
        curves=[CurvePoint("linf", "worst case", 0.1, 0.3),
                CurvePoint("linf", "pgd", 0.1, 0.4)],
        transfer=[{"source": "digits-cnn", "target": "digits-cnn", "norm": "linf", "eps": 0.1,
                   "accuracy": 0.4, "source_success": 0.57}],
        checks=[SanityCheck("gradients", "pass", "gradients are informative",
                            {"zero_share": 0.0, "samples": 64})],
        gates=[{"threshold": 0.2, "norm": "linf", "eps": 0.1, "accuracy": 0.3, "passed": True,
                "message": "worst-case robust accuracy 30.0% at linf eps=0.1 >= 20.0%"}],
        examples=[AdversarialExample(0, "pgd", "linf", 0.1, "7", "7", 0.99, "3", 0.8, 0.1, 5.0,
                                     PNG, PNG, PNG)],
        certificate={"available": True, "lipschitz": 12.5, "median_radius": 0.2,
                     "certified": [{"eps": 0.1, "accuracy": 0.55}]},
        task=TaskInfo(metrics={"margin": 1.5}),
        notes=[StageNote("transfer", "linf eps=0.2", "not applicable", "no reason")],
        matrix={"name": "quick", "version": "1"},
    )
    values.update(fields)
    return make_result(**values)


@pytest.fixture(scope="module")
def raw() -> Raw:
    """A valid results.json object (as write_outputs writes it)."""
    document: Raw = json.loads(results_schema.dumps(results_document(full_result())))
    return document


def _write(path: Path, document: Raw) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def _one_error_line(command: Any, args: list[str], out: Path) -> str:
    run = CliRunner().invoke(command, [*args, "-o", str(out)])
    assert run.exit_code == 1, run.output
    lines = run.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), run.output
    assert not out.exists()
    return lines[0]


def _set(*path: str | int, value: Any) -> Callable[[Raw], None]:
    def tamper(document: Raw) -> None:
        target: Any = document
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return tamper


def _delete(*path: str | int) -> Callable[[Raw], None]:
    def tamper(document: Raw) -> None:
        target: Any = document
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return tamper


def _nest(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


TAMPERED: list[tuple[str, Callable[[Raw], None], str]] = [
    # string accuracies
    ("string cell accuracy", _set("cells", 3, "accuracy", value="0.9"),
     "cells[3].accuracy must be a number in [0, 1] or null, got the string '0.9'"),
    ("string clean accuracy", _set("clean_accuracy", value="0.9"),
     "clean_accuracy must be a number in [0, 1], got the string '0.9'"),
    ("string robust accuracy", _set("robust_accuracy", 0, "accuracy", value="0.3"),
     "robust_accuracy[0].accuracy must be a number in [0, 1], got the string '0.3'"),
    ("lower-case nan", _set("cells", 0, "accuracy", value="nan"),
     "cells[0].accuracy must be a number in [0, 1] or null, got the string 'nan'"),
    ("infinite accuracy", _set("curves", 0, "accuracy", value="Infinity"),
     "curves[0].accuracy must be a number in [0, 1], got the string 'Infinity'"),
    # out of range
    ("accuracy 1.5", _set("cells", 0, "accuracy", value=1.5),
     "cells[0].accuracy must be a number in [0, 1] or null, got 1.5"),
    ("negative success rate", _set("cells", 1, "success_rate", value=-0.1),
     "cells[1].success_rate must be a number in [0, 1] or null, got -0.1"),
    ("per-class accuracy 2", _set("per_class", 4, "robust_accuracy", value=2),
     "per_class[4].robust_accuracy must be a number in [0, 1], got 2"),
    ("per-class clean -1", _set("per_class", 0, "clean_accuracy", value=-1),
     "per_class[0].clean_accuracy must be a number in [0, 1], got -1"),
    ("certified accuracy 1.01", _set("certificate", "certified", 0, "accuracy", value=1.01),
     "certificate.certified[0].accuracy must be a number in [0, 1], got 1.01"),
    ("transfer accuracy 3", _set("transfer", 0, "accuracy", value=3),
     "transfer[0].accuracy must be a number in [0, 1], got 3"),
    ("negative eps", _set("cells", 2, "eps", value=-0.1),
     "cells[2].eps must be a non-negative number, got -0.1"),
    ("negative distance", _set("cells", 0, "mean_distance", value="-Infinity"),
     "cells[0].mean_distance must be a non-negative number or null, got the string "
     "'-Infinity'"),
    ("too large a number", _set("cells", 0, "eps", value=10 ** 400),
     "cells[0].eps must be a non-negative number, got 1000"),
    # negative counts
    ("negative queries", _set("cells", 0, "queries", value=-1),
     "cells[0].queries must be a non-negative integer, got -1"),
    ("negative n_samples", _set("data", "n_samples", value=-100),
     "data.n_samples must be a non-negative integer, got -100"),
    ("negative violations", _set("cells", 0, "violations", value=-2),
     "cells[0].violations must be a non-negative integer, got -2"),
    ("negative n_attacked", _set("cells", 0, "n_attacked", value=-3),
     "cells[0].n_attacked must be a non-negative integer or null, got -3"),
    # bool is not an int, a float is not an int
    ("bool queries", _set("cells", 0, "queries", value=True),
     "cells[0].queries must be a non-negative integer, got true"),
    ("bool n_samples", _set("data", "n_samples", value=False),
     "data.n_samples must be a non-negative integer, got false"),
    ("bool seed", _set("run", "seed", value=True), "run.seed must be an integer, got true"),
    ("bool accuracy", _set("clean_accuracy", value=True),
     "clean_accuracy must be a number in [0, 1], got true"),
    ("float queries", _set("cells", 0, "queries", value=1.5),
     "cells[0].queries must be a non-negative integer, got 1.5"),
    ("string in a list of ints", _set("model", "input_shape", 1, value="8"),
     "model.input_shape[1] must be an integer, got the string '8'"),
    # wrong types in every top-level section
    ("model", _set("model", value=[]), "model must be an object, got a list"),
    ("data", _set("data", value="digits"), "data must be an object, got the string 'digits'"),
    ("clean_accuracy null", _set("clean_accuracy", value=None),
     "clean_accuracy must be a number in [0, 1], got null"),
    ("cells", _set("cells", value={}), "cells must be a list, got an object"),
    ("a cell", _set("cells", 0, value="pgd"),
     "cells[0] must be an object, got the string 'pgd'"),
    ("robust_accuracy", _set("robust_accuracy", value=3),
     "robust_accuracy must be a list, got 3"),
    ("run", _set("run", value=None), "run must be an object, got null"),
    ("matrix", _set("matrix", value=["quick"]), "matrix must be an object, got a list"),
    ("matrix version", _set("matrix", "version", value=1),
     "matrix.version must be a string, got 1"),
    ("mode", _set("mode", value=1), "mode must be a string, got 1"),
    ("per_class", _set("per_class", value={}), "per_class must be a list, got an object"),
    ("curves", _set("curves", value="x"), "curves must be a list, got the string 'x'"),
    ("transfer", _set("transfer", value={}), "transfer must be a list, got an object"),
    ("a transfer row", _set("transfer", 0, value=[]), "transfer[0] must be an object, got a list"),
    ("checks", _set("checks", value=None), "checks must be a list, got null"),
    ("check details", _set("checks", 0, "details", value=[1]),
     "checks[0].details must be an object, got a list"),
    ("gates", _set("gates", value={}), "gates must be a list, got an object"),
    ("gate passed", _set("gates", 0, "passed", value="yes"),
     "gates[0].passed must be true or false, got the string 'yes'"),
    ("examples", _set("examples", value=1), "examples must be a list, got 1"),
    ("example index", _set("examples", 0, "index", value=-1),
     "examples[0].index must be a non-negative integer, got -1"),
    ("certificate", _set("certificate", value=[]), "certificate must be an object, got a list"),
    ("certificate available", _set("certificate", "available", value="yes"),
     "certificate.available must be true or false, got the string 'yes'"),
    ("task", _set("task", value="classification"),
     "task must be an object, got the string 'classification'"),
    ("task metric", _set("task", "metrics", "a b", value="x"),
     "task.metrics[\"a b\"] must be a number, got the string 'x'"),
    ("notes", _set("notes", value={}), "notes must be a list, got an object"),
    ("run versions", _set("run", "versions", "torch", value=2),
     "run.versions.torch must be a string, got 2"),
    ("params", _set("cells", 0, "params", value=[]),
     "cells[0].params must be an object, got a list"),
    # required keys, also of the free-form rows the report reads
    ("transfer row without norm", _delete("transfer", 0, "norm"),
     "missing the field 'transfer[0].norm'"),
    ("transfer row without accuracy", _delete("transfer", 0, "accuracy"),
     "missing the field 'transfer[0].accuracy'"),
    ("gate without message", _delete("gates", 0, "message"),
     "missing the field 'gates[0].message'"),
    ("gate without passed", _delete("gates", 0, "passed"),
     "missing the field 'gates[0].passed'"),
    ("certificate without lipschitz", _delete("certificate", "lipschitz"),
     "missing the field 'certificate.lipschitz'"),
    ("certificate without certified", _delete("certificate", "certified"),
     "missing the field 'certificate.certified'"),
    ("certified row without eps", _delete("certificate", "certified", 0, "eps"),
     "missing the field 'certificate.certified[0].eps'"),
    ("unavailable certificate without reason", _set("certificate", value={"available": False}),
     "missing the field 'certificate.reason'"),
    ("certificate without available", _set("certificate", value={"reason": "no"}),
     "missing the field 'certificate.available'"),
    ("plugin without name", _set("run", "plugins", value=[{"version": "1"}]),
     "missing the field 'run.plugins[0].name'"),
    ("note without reason", _delete("notes", 0, "reason"),
     "missing the field 'notes[0].reason'"),
    ("cell without accuracy", _delete("cells", 2, "accuracy"),
     "missing the field 'cells[2].accuracy'"),
    ("no run", _delete("run"), "missing the field 'run'"),
    # the file as a whole
    ("nested too deep", _set("cells", 0, "params", "deep", value=_nest(70)),
     "nested deeper than 64 levels"),
    ("schema version as text", _set("schema_version", value="2"),
     "has schema_version the string '2'"),
    ("schema version as bool", _set("schema_version", value=True), "has schema_version true"),
]


@pytest.mark.parametrize("case, tamper, expected", TAMPERED, ids=[t[0] for t in TAMPERED])
def test_tampered_results_are_one_error_line(case: str, tamper: Callable[[Raw], None],
                                             expected: str, raw: Raw, tmp_path: Path) -> None:
    document = copy.deepcopy(raw)
    tamper(document)
    source = _write(tmp_path / "results.json", document)
    line = _one_error_line(report_command, [str(source)], tmp_path / "out.html")
    assert line.startswith(f"Error: {source}"), line
    assert expected in line, line


@pytest.mark.parametrize("case, text, expected", [
    ("huge nesting", "[" * 100_000 + "]" * 100_000, "nested deeper than 64 levels"),
    ("huge nesting in an object", '{"schema_version": 2, "cells": ' + "[" * 100_000
     + "]" * 100_000 + "}", "nested deeper than 64 levels"),
    ("nesting json can parse", "[" * 500 + "]" * 500, "nested deeper than 64 levels"),
    ("a list", "[1, 2]", "expected a JSON object"),
    ("an integer of 5000 digits", '{"schema_version": 2, "clean_accuracy": 1' + "0" * 5000
     + "}", "is not valid JSON: Exceeds the limit"),
    ("not UTF-8", "\udcff", "not UTF-8"),
])
def test_broken_files_are_one_error_line(case: str, text: str, expected: str,
                                         tmp_path: Path) -> None:
    source = tmp_path / "results.json"
    source.write_bytes(text.encode("utf-8", "surrogateescape"))
    line = _one_error_line(report_command, [str(source)], tmp_path / "out.html")
    assert expected in line, line


def test_file_size_is_capped(raw: Raw, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = _write(tmp_path / "results.json", raw)
    monkeypatch.setattr(results_schema, "MAX_BYTES", 1000)
    line = _one_error_line(report_command, [str(source)], tmp_path / "out.html")
    assert "is larger than 1000 bytes" in line
    assert source.stat().st_size > results_schema.MAX_BYTES


def test_diff_reads_through_the_same_checks(raw: Raw, tmp_path: Path) -> None:
    good = _write(tmp_path / "good.json", raw)
    document = copy.deepcopy(raw)
    document["cells"][3]["accuracy"] = "0.9"
    bad = _write(tmp_path / "bad.json", document)
    for args in ([str(good), str(bad)], [str(bad), str(good)]):
        line = _one_error_line(diff_command, args, tmp_path / "diff.html")
        assert f"{bad}: cells[3].accuracy must be a number in [0, 1]" in line


def test_unknown_keys_are_ignored(raw: Raw, tmp_path: Path) -> None:
    document = copy.deepcopy(raw)
    document["added_in_a_later_version"] = {"x": 1}
    document["cells"][0]["new_cell_field"] = [1, 2]
    document["model"]["new_model_field"] = "x"
    document["task"]["new"] = None
    document["transfer"][0]["new_transfer_key"] = 1
    source = _write(tmp_path / "results.json", document)
    expected = full_result()
    expected.transfer[0]["new_transfer_key"] = 1  # free-form rows keep their keys
    assert read_results(source) == expected
    assert AuditResult.from_dict(document) == expected
    out = tmp_path / "out.html"
    run = CliRunner().invoke(report_command, [str(source), "-o", str(out)])
    assert run.exit_code == 0, run.output


def test_valid_file_reads_back_equal(raw: Raw, tmp_path: Path) -> None:
    assert read_results(_write(tmp_path / "results.json", raw)) == full_result()


def _strict(text: str) -> Any:
    def reject(constant: str) -> None:
        raise ValueError(f"non-standard JSON constant {constant}")
    return json.loads(text, parse_constant=reject)


def non_finite_result() -> AuditResult:
    nan, inf = math.nan, math.inf
    result = full_result(clean_accuracy=nan)
    result.cells[0].accuracy = nan
    result.cells[0].success_rate = nan
    result.cells[0].mean_distance = inf
    result.cells[0].max_distance = nan
    result.cells[1].max_distance = inf
    result.cells[1].seconds = -inf
    result.robust_accuracy[0].accuracy = nan
    result.curves = [CurvePoint("linf", "worst case", 0.1, nan),
                     CurvePoint("linf", "pgd", 0.1, 0.4),
                     CurvePoint("linf", "pgd", inf, 0.1),
                     CurvePoint("l2", "pgd", 0.5, nan)]
    result.per_class[0].robust_accuracy = nan
    result.transfer[0]["accuracy"] = nan
    result.certificate = {"available": True, "lipschitz": inf, "median_radius": nan,
                          "certified": [{"eps": 0.1, "accuracy": nan}]}
    result.task.metrics["margin"] = -inf
    result.checks[0].details["zero_share"] = nan
    return result


def test_non_finite_values_round_trip(tmp_path: Path) -> None:
    paths = write_outputs(non_finite_result(), tmp_path / "audit")
    text = paths["results"].read_text(encoding="utf-8")
    document = _strict(text)  # strict JSON: no NaN or Infinity tokens
    assert document["clean_accuracy"] == "NaN"
    assert document["cells"][0]["mean_distance"] == "Infinity"
    assert document["cells"][1]["seconds"] == "-Infinity"
    assert document["certificate"]["lipschitz"] == "Infinity"
    assert document["verdict"]["clean_accuracy"] == "NaN"

    back = read_results(paths["results"])
    assert math.isnan(back.clean_accuracy)
    cell = back.cells[0]
    assert cell.accuracy is not None and math.isnan(cell.accuracy)
    assert cell.mean_distance == math.inf
    assert cell.max_distance is not None and math.isnan(cell.max_distance)
    assert back.cells[1].seconds == -math.inf
    assert math.isnan(back.curves[0].accuracy) and back.curves[2].eps == math.inf
    assert math.isnan(back.per_class[0].robust_accuracy)
    assert math.isnan(back.transfer[0]["accuracy"])
    assert back.certificate["lipschitz"] == math.inf
    assert math.isnan(back.certificate["median_radius"])
    assert math.isnan(back.certificate["certified"][0]["accuracy"])
    assert back.task.metrics["margin"] == -math.inf
    assert back.checks[0].details["zero_share"] == "NaN"  # free-form: stays as written
    assert _strict(results_schema.dumps(results_document(back))) == document

    html = render_html(back)
    assert "n/a" in html
    assert "<td>inf</td>" in html  # the infinite mean distance
    assert "<strong>inf</strong>" in html  # the infinite Lipschitz bound
    render_diff_html(back, back)
    render_diff_html(back, make_result())
    render_diff_html(make_result(), back)

    cells = pd.read_csv(paths["cells"])
    assert math.isnan(cells.loc[0, "accuracy"]) and cells.loc[0, "mean_distance"] == math.inf
    curves = pd.read_csv(paths["curves"])
    assert curves["eps"].tolist()[2] == math.inf
    assert "inf" in paths["cells"].read_text(encoding="utf-8")

    out = tmp_path / "again.html"
    run = CliRunner().invoke(report_command, [str(paths["results"]), "-o", str(out)])
    assert run.exit_code == 0, run.output
    run = CliRunner().invoke(diff_command, [str(paths["results"]), str(paths["results"]),
                                            "-o", str(tmp_path / "diff.html")])
    assert run.exit_code == 0, run.output


def test_bare_non_finite_tokens_are_read(raw: Raw, tmp_path: Path) -> None:
    """A file with NaN tokens (Python's json default) is read, not rejected."""
    document = copy.deepcopy(raw)
    document["clean_accuracy"] = math.nan
    document["cells"][0]["max_distance"] = math.inf
    source = tmp_path / "results.json"
    source.write_text(json.dumps(document), encoding="utf-8")
    result = read_results(source)
    assert math.isnan(result.clean_accuracy) and result.cells[0].max_distance == math.inf


def test_report_filters_show_non_finite_numbers() -> None:
    assert format_percent(math.nan) == "n/a"
    assert format_percent(None) == "-"
    assert format_percent(0.5) == "50.0%"
    assert format_number(math.inf, ".4f") == "inf"
    assert format_number(math.nan) == "n/a"
    assert format_number(None) == "\N{EN DASH}"
    assert format_number(0.12345, ".3g") == "0.123"


def test_encode_non_finite() -> None:
    value = {"a": [math.nan, (math.inf, -math.inf)], "b": 1.5, "c": "NaN"}
    assert results_schema.encode_non_finite(value) == {
        "a": ["NaN", ["Infinity", "-Infinity"]], "b": 1.5, "c": "NaN"}
