"""The schema of ``results.json``, checked generically from the type hints of the result
dataclasses (`robustbench_lite.results`), and its encoding of non-finite numbers.

Every field is checked against its annotation: ``str``, ``int``, ``float``, ``bool``,
``X | None``, ``list[X]``, ``dict[str, X]``, ``Any`` and nested dataclasses. ``bool`` is
not an ``int``; an ``int`` is a valid ``float``. Two markers refine an annotation through
``typing.Annotated``: `Range` bounds a number (`Fraction`, `NonNegative`, `Count`) and
`Keys` gives a free-form ``dict`` row the keys the report reads, described by a dataclass
whose fields without a default are required (the row stays a ``dict``). Unknown keys are
ignored: a later version of the same schema may add fields.

Non-finite floats are written as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``
(`encode_non_finite`), so that the file is strict JSON; a ``float`` field accepts exactly
these strings and `build` turns them back into floats. NaN passes every `Range` (it
records that a number is undefined); ``Infinity`` passes a range without an upper bound.

Nothing here imports `robustbench_lite.results`; it imports the markers from here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn, Union, get_args, get_origin, get_type_hints

from robustbench_lite.errors import ResultsFileError

#: The largest results.json read (bytes); a real one is a few MiB, examples included.
MAX_BYTES = 512 * 1024 ** 2
#: The deepest nesting of lists and objects accepted (a real results.json nests about 5).
MAX_DEPTH = 64

#: How non-finite floats are written in results.json, and read back.
NON_FINITE: dict[str, float] = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


@dataclass(frozen=True)
class Range:
    """A number must lie in [``low``, ``high``] (NaN always passes)."""

    low: float
    high: float = math.inf

    def contains(self, value: float) -> bool:
        return math.isnan(value) or self.low <= value <= self.high

    def describe(self, kind: str) -> str:
        if self.high == math.inf:
            return f"a non-negative {kind}" if self.low == 0 else f"{kind} of at least {self.low:g}"
        article = "an" if kind[0] in "aeiou" else "a"
        return f"{article} {kind} in [{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class Keys:
    """A ``dict`` row must hold the keys of the dataclass ``shape`` (the fields without a
    default), each of its field's type when present. ``shape`` may define a classmethod
    ``required_keys(row)`` naming keys required depending on the row's content."""

    shape: type[Any]


#: A share of samples, in [0, 1] (or NaN).
Fraction = Annotated[float, Range(0.0, 1.0)]
#: A size, a budget: at least 0 (NaN and Infinity pass).
NonNegative = Annotated[float, Range(0.0)]
#: A number of things: an integer, at least 0.
Count = Annotated[int, Range(0)]


def encode_non_finite(value: Any) -> Any:
    """``value`` (plain JSON-like data) with every non-finite float replaced by its string
    in `NON_FINITE`; tuples become lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, dict):
        return {key: encode_non_finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [encode_non_finite(item) for item in value]
    return value


def dumps(document: dict[str, Any]) -> str:
    """``document`` as the text of a results.json: strict JSON (no NaN tokens), indented."""
    return json.dumps(encode_non_finite(document), indent=2, allow_nan=False) + "\n"


# ---------------------------------------------------------------------------- reading


def load_document(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``, after checks of its size and nesting depth;
    `ResultsFileError` (one line naming the file) otherwise."""
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ResultsFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ResultsFileError(f"{path} is a folder; pass its results.json") from None
    except OSError as exc:
        raise ResultsFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        limit = f"{MAX_BYTES // 2 ** 20} MiB" if MAX_BYTES >= 2 ** 20 else f"{MAX_BYTES} bytes"
        raise ResultsFileError(f"{path} is larger than {limit}; it is not a results.json of "
                               "robust audit")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ResultsFileError(f"{path} is not JSON (not UTF-8 text)") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsFileError(f"{path} is not JSON (line {exc.lineno}, column {exc.colno}: "
                               f"{exc.msg})") from None
    except RecursionError:
        raise ResultsFileError(f"{path} is nested deeper than {MAX_DEPTH} levels; it is not "
                               "a results.json of robust audit") from None
    except ValueError as exc:  # an integer of more than 4300 digits; drop Python's advice
        raise ResultsFileError(f"{path} is not valid JSON: {str(exc).split(';')[0]}") from None
    if too_deep(raw, MAX_DEPTH):
        raise ResultsFileError(f"{path} is nested deeper than {MAX_DEPTH} levels; it is not "
                               "a results.json of robust audit")
    if not isinstance(raw, dict):
        raise ResultsFileError(f"{path} is not a results.json: expected a JSON object")
    return raw


def too_deep(document: Any, limit: int) -> bool:
    """Whether lists and objects in ``document`` nest deeper than ``limit`` (the document
    itself is level 1); without recursion."""
    stack: list[tuple[Any, int]] = [(document, 1)] if isinstance(document, dict | list) else []
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, dict | list))
    return False


class _Invalid(Exception):
    """A problem at the JSON path ``where``; ``shallow``: the value itself has the wrong
    type (an enclosing ``X | None`` restates what is expected)."""

    def __init__(self, where: str, problem: str, shallow: bool = False) -> None:
        super().__init__(problem)
        self.where = where
        self.problem = problem
        self.shallow = shallow


def validate(raw: dict[str, Any], cls: type[Any], source: object) -> None:
    """Check ``raw`` against the dataclass ``cls``; `ResultsFileError` naming ``source`` (the
    file) and the JSON path of the first problem otherwise."""
    try:
        _check(raw, cls, "")
    except _Invalid as exc:
        raise ResultsFileError(f"{source}: {exc.problem}") from None


def _child(where: str, key: str) -> str:
    if key.isidentifier():
        return f"{where}.{key}" if where else key
    return f"{where}[{_short(json.dumps(key, ensure_ascii=False))}]"


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def describe(value: Any) -> str:
    """``value`` as an error message shows it: ``the string '0.9'``, ``true``, ``a list``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {_short(repr(value))}"
    if isinstance(value, float) and not math.isfinite(value):
        return encode_non_finite(value)  # type: ignore[no-any-return]
    if isinstance(value, int | float):
        return _short(repr(value))
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def expected(hint: Any) -> str:
    """What a value of type ``hint`` is, in words: ``a number in [0, 1] or null``."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Annotated:
        for mark in hint.__metadata__:
            if isinstance(mark, Range):
                return mark.describe("integer" if args[0] is int else "number")
        return expected(args[0])
    if origin in (Union, types.UnionType):
        options = [expected(arg) for arg in args if arg is not type(None)]
        return " or ".join(options) + (" or null" if type(None) in args else "")
    if hint is bool:
        return "true or false"
    if hint is int:
        return "an integer"
    if hint is float:
        return "a number"
    if hint is str:
        return "a string"
    if origin is list:
        return "a list"
    return "an object"


def _fail(where: str, hint: Any, value: Any) -> NoReturn:
    subject = f"{where} " if where else ""
    raise _Invalid(where, f"{subject}must be {expected(hint)}, got {describe(value)}",
                   shallow=True)


def as_number(value: Any) -> float | None:
    """``value`` as a float when it is a valid ``float`` field (an int, a float or a string
    of `NON_FINITE`), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        return value
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            return None
    if isinstance(value, str):
        return NON_FINITE.get(value)
    return None


_HINTS: dict[type[Any], dict[str, Any]] = {}


def hints(cls: type[Any]) -> dict[str, Any]:
    """The resolved type hints of dataclass ``cls``, markers kept (cached)."""
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls, include_extras=True)
    return _HINTS[cls]


def _check(value: Any, hint: Any, where: str) -> None:
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return
    if origin is Annotated:
        _check_annotated(value, hint, where)
    elif origin in (Union, types.UnionType):
        _check_union(value, hint, where)
    elif hint is bool:
        if not isinstance(value, bool):
            _fail(where, hint, value)
    elif hint is int:
        if not isinstance(value, int) or isinstance(value, bool):
            _fail(where, hint, value)
    elif hint is float:
        if as_number(value) is None:
            _fail(where, hint, value)
    elif hint is str:
        if not isinstance(value, str):
            _fail(where, hint, value)
    elif origin is list:
        if not isinstance(value, list):
            _fail(where, hint, value)
        for index, item in enumerate(value):
            _check(item, args[0], f"{where}[{index}]")
    elif origin is dict:
        if not isinstance(value, dict):
            _fail(where, hint, value)
        for key, item in value.items():
            _check(item, args[1], _child(where, key))
    elif isinstance(hint, type) and dataclasses.is_dataclass(hint):
        _check_keys(value, hint, where)
    else:
        raise TypeError(f"results_schema cannot check the type {hint!r} (at {where})")


def _check_annotated(value: Any, hint: Any, where: str) -> None:
    base = get_args(hint)[0]
    try:
        _check(value, base, where)
    except _Invalid as exc:
        if exc.shallow and exc.where == where:
            _fail(where, hint, value)
        raise
    for mark in hint.__metadata__:
        if isinstance(mark, Range):
            number = as_number(value)
            if number is None or not mark.contains(number):
                _fail(where, hint, value)
        elif isinstance(mark, Keys):
            _check_keys(value, mark.shape, where)


def _check_union(value: Any, hint: Any, where: str) -> None:
    args = get_args(hint)
    if value is None and type(None) in args:
        return
    options = [arg for arg in args if arg is not type(None)]
    if len(options) == 1:
        try:
            _check(value, options[0], where)
        except _Invalid as exc:
            if exc.shallow and exc.where == where:
                _fail(where, hint, value)
            raise
        return
    for option in options:
        try:
            _check(value, option, where)
        except _Invalid:
            continue
        return
    _fail(where, hint, value)


def _check_keys(value: Any, shape: type[Any], where: str) -> None:
    """``value`` must be an object with the fields of the dataclass ``shape``."""
    if not isinstance(value, dict):
        _fail(where, shape, value)
    types_ = hints(shape)
    fields = dataclasses.fields(shape)
    required = [f.name for f in fields if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING]
    _require(value, required, where)
    for f in fields:
        if f.name in value:
            _check(value[f.name], types_[f.name], _child(where, f.name))
    extra = getattr(shape, "required_keys", None)
    if extra is not None:
        _require(value, extra(value), where)


def _require(value: dict[str, Any], names: Any, where: str) -> None:
    for name in names:
        if name not in value:
            raise _Invalid(where, f"missing the field {_child(where, name)!r}; it is not a "
                                  "complete results.json of robust audit")


# ---------------------------------------------------------------------------- building


def build(hint: Any, value: Any) -> Any:
    """``value`` (checked by `validate`) as an object of type ``hint``: dataclasses built
    (unknown keys ignored), float fields as floats (the strings of `NON_FINITE` decoded),
    `Keys` rows kept as dicts with their known fields decoded the same way."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any or value is None:
        return value
    if origin is Annotated:
        for mark in hint.__metadata__:
            if isinstance(mark, Keys):
                shape_hints = hints(mark.shape)
                return {key: build(shape_hints[key], item) if key in shape_hints else item
                        for key, item in value.items()}
        return build(args[0], value)
    if origin in (Union, types.UnionType):
        options = [arg for arg in args if arg is not type(None)]
        return build(options[0], value) if len(options) == 1 else value
    if hint is float:
        return NON_FINITE[value] if isinstance(value, str) else float(value)
    if origin is list:
        return [build(args[0], item) for item in value]
    if origin is dict:
        return {key: build(args[1], item) for key, item in value.items()}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        types_ = hints(hint)
        return hint(**{f.name: build(types_[f.name], value[f.name])
                       for f in dataclasses.fields(hint) if f.init and f.name in value})
    return value
