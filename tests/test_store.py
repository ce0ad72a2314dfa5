"""The resumable result store: round trips, canonical keys, corruption and kill -9."""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from robustbench_lite.engine.store import (
    SCHEMA_VERSION,
    ResultStore,
    StoreError,
    UnitKey,
    UnitRecord,
)
from robustbench_lite.errors import RobustbenchError
from robustbench_lite.threat import Norm

FIXED_KEY = UnitKey(model_sha256="a" * 64, data_sha256="b" * 64, attack="pgd",
                    params={"steps": 10, "step_size": 0.01, "restarts": (1, 2), "loss": "ce",
                            "random_start": True},
                    norm="linf", eps=8 / 255, targeted=False, seed=0, shard_start=0,
                    shard_stop=128, context="cascade after: fgsm", task="classification",
                    objective="untargeted",
                    versions={"robustbench_lite": "0.1.0", "attack": 1, "task": 1})
FIXED_JSON = (
    '{"attack":"pgd","context":"cascade after: fgsm","data_sha256":"' + "b" * 64 + '",'
    '"eps":0.03137254901960784,"model_sha256":"' + "a" * 64 + '","norm":"linf",'
    '"objective":"untargeted",'
    '"params":{"loss":"ce","random_start":true,"restarts":[1,2],"step_size":0.01,"steps":10},'
    '"seed":0,"shard_start":0,"shard_stop":128,"targeted":false,"task":"classification",'
    '"versions":{"attack":1,"robustbench_lite":"0.1.0","task":1}}'
)
FIXED_DIGEST = "3178a2a227fc0ff91d57b605dc7f7dc90a0f1bda2b08b67409f0f2fc4650f5d2"


def unit_key(index: int, size: int = 6, **changes: Any) -> UnitKey:
    fields: dict[str, Any] = dict(
        model_sha256="m" * 64, data_sha256="d" * 64, attack="pgd",
        params={"steps": 10, "step_size": 0.25}, norm="l2", eps=0.5, targeted=False, seed=3,
        shard_start=index * size, shard_stop=(index + 1) * size)
    fields.update(changes)
    return UnitKey(**fields)


def unit_record(index: int, size: int = 6, **changes: Any) -> UnitRecord:
    """A deterministic record for shard ``index`` (also used by the kill -9 child)."""
    rng = np.random.default_rng(index)
    distances = rng.random(size)
    if size >= 3:
        distances[0], distances[1], distances[2] = math.nan, math.inf, -0.0
    fields: dict[str, Any] = dict(
        key=unit_key(index, size), robust=rng.random(size) < 0.5, distances=distances,
        queries=100 + index, seconds=0.5 * index,
        violations=index % 2, violation_details=[f"sample {index} left the ball"] * (index % 2))
    fields.update(changes)
    return UnitRecord(**fields)


def assert_same(got: UnitRecord | None, expected: UnitRecord) -> None:
    assert got is not None
    assert got.key == expected.key
    assert got.robust.dtype == np.bool_ and got.distances.dtype == np.float64
    np.testing.assert_array_equal(got.robust, expected.robust)
    np.testing.assert_array_equal(got.distances, expected.distances)  # NaN == NaN here
    assert (got.queries, got.seconds, got.violations, got.violation_details, got.error,
            got.skipped) == (expected.queries, expected.seconds, expected.violations,
                             expected.violation_details, expected.error, expected.skipped)


def test_round_trip_and_missing_key(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "out" / ResultStore.FILENAME
    records = [unit_record(0), unit_record(1),
               unit_record(2, error="RuntimeError: boom", robust=np.zeros(0, bool),
                           distances=np.zeros(0)),
               unit_record(3, skipped="pgd does not support l1 eps=1")]
    with ResultStore(path) as store:
        assert len(store) == 0 and store.keys() == []
        for record in records:
            store.put(record)
        for record in records:
            assert_same(store.get(record.key), record)
        assert store.get(unit_key(9)) is None
        assert len(store) == 4
        assert store.keys() == [record.key for record in records]
        got = store.get(records[0].key)
        assert got is not None and got.robust.flags.writeable
    assert path.is_file()


def test_reopen_and_last_write_wins(tmp_path: Path) -> None:
    path = tmp_path / ResultStore.FILENAME
    with ResultStore(path) as store:
        store.put(unit_record(0))
        store.put(unit_record(1))
        store.put(unit_record(0, queries=7, error="ValueError: retried"))
    with ResultStore(path) as store:
        assert len(store) == 2
        assert store.keys() == [unit_key(1), unit_key(0)]  # order of last write
        assert_same(store.get(unit_key(0)), unit_record(0, queries=7,
                                                        error="ValueError: retried"))
        assert_same(store.get(unit_key(1)), unit_record(1))


def test_a_second_reader_sees_committed_units(tmp_path: Path) -> None:
    path = tmp_path / ResultStore.FILENAME
    with ResultStore(path) as writer, ResultStore(path) as reader:
        assert reader.get(unit_key(0)) is None
        writer.put(unit_record(0))
        assert_same(reader.get(unit_key(0)), unit_record(0))
    connection = sqlite3.connect(path)
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        blob = connection.execute("SELECT robust FROM units").fetchone()[0]
        assert blob.startswith(b"\x93NUMPY")  # .npy bytes, not a pickle
    finally:
        connection.close()


def test_put_rejects_records_that_do_not_fit_their_key(tmp_path: Path) -> None:
    with ResultStore(tmp_path / ResultStore.FILENAME) as store:
        with pytest.raises(ValueError, match="one entry per shard sample"):
            store.put(unit_record(0, robust=np.zeros(5, bool)))
        with pytest.raises(ValueError, match="one entry per shard sample"):
            store.put(unit_record(0, robust=np.zeros(0, bool), distances=np.zeros(0)))
        with pytest.raises(ValueError, match="bool array"):
            store.put(unit_record(0, robust=np.zeros(6)))
        with pytest.raises(ValueError, match="float array"):
            store.put(unit_record(0, distances=np.array([object()] * 6)))
        assert len(store) == 0
        store.put(unit_record(0, distances=np.ones(6, np.float32)))
        got = store.get(unit_key(0))
        assert got is not None and got.distances.dtype == np.float64
    with pytest.raises(ValueError, match="closed"):
        store.get(unit_key(0))


def test_digest_is_pinned() -> None:
    """A change here invalidates every store on disk: change the canonical form only on
    purpose (and then migrate or bump SCHEMA_VERSION)."""
    assert FIXED_KEY.canonical_json() == FIXED_JSON
    assert FIXED_KEY.digest() == FIXED_DIGEST
    assert UnitKey.from_json(FIXED_JSON) == FIXED_KEY
    assert UnitKey.from_json(FIXED_JSON).digest() == FIXED_DIGEST


def test_equal_keys_have_equal_digests() -> None:
    numpy_fields: dict[str, Any] = dict(targeted=np.bool_(False), seed=np.int64(0))
    same = UnitKey(model_sha256="a" * 64, data_sha256="b" * 64, attack="pgd",
                   params={"random_start": np.bool_(True), "loss": "ce", "restarts": [1, 2],
                           "steps": np.int64(10), "step_size": 0.01},
                   norm=Norm.LINF, eps=np.float64(8 / 255), shard_start=0, shard_stop=128,
                   context="cascade after: fgsm", objective="untargeted",
                   versions={"task": np.int64(1), "attack": 1, "robustbench_lite": "0.1.0"},
                   **numpy_fields)
    assert same == FIXED_KEY and hash(same) == hash(FIXED_KEY)
    assert same.digest() == FIXED_DIGEST
    assert unit_key(0, eps=1) == unit_key(0, eps=1.0)
    assert unit_key(0, eps=0.0) == unit_key(0, eps=-0.0)
    assert unit_key(0, params={"a": math.inf, "b": (1.5, None)}).params == {
        "a": math.inf, "b": [1.5, None]}


@pytest.mark.parametrize("change", [
    {"model_sha256": "n" * 64}, {"data_sha256": "e" * 64}, {"attack": "fgsm"},
    {"params": {"steps": 11, "step_size": 0.25}}, {"params": {"steps": 10.0, "step_size": 0.25}},
    {"params": {"steps": 10}}, {"params": {"steps": 10, "step_size": 0.25, "x": True}},
    {"params": {"steps": 10, "step_size": 0.25, "x": 1}}, {"norm": "linf"},
    {"eps": 0.5000000000000001}, {"targeted": True}, {"seed": 4}, {"shard_start": 1},
    {"shard_stop": 7}, {"context": "cascade after: fgsm"},
])
def test_changed_fields_change_the_digest(change: dict[str, Any]) -> None:
    base = unit_key(0)
    changed = unit_key(0, **change)
    assert changed != base and changed.digest() != base.digest()


def test_key_validation() -> None:
    with pytest.raises(ValueError, match="finite"):
        unit_key(0, eps=math.nan)
    with pytest.raises(ValueError, match="shard"):
        unit_key(0, shard_start=5, shard_stop=4)
    with pytest.raises(TypeError, match="bool"):
        unit_key(0, targeted="no")
    with pytest.raises(TypeError, match="int"):
        unit_key(0, seed=1.0)
    with pytest.raises(TypeError, match="set"):
        unit_key(0, params={"steps": {1, 2}})
    with pytest.raises(TypeError, match="strings"):
        unit_key(0, params={1: 2})


def test_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / ResultStore.FILENAME
    path.write_bytes(np.random.default_rng(0).bytes(8192))
    with pytest.raises(StoreError, match="delete it to start afresh") as raised:
        ResultStore(path)
    assert str(path) in str(raised.value) and "\n" not in str(raised.value)
    assert isinstance(raised.value, RobustbenchError)


def test_foreign_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / ResultStore.FILENAME
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE photos (name TEXT)")
    connection.commit()
    connection.close()
    with pytest.raises(StoreError, match="not a robustbench_lite result store"):
        ResultStore(path)


SCHEMA_1 = """
CREATE TABLE units (digest TEXT PRIMARY KEY NOT NULL, key TEXT NOT NULL, robust BLOB NOT NULL,
    distances BLOB NOT NULL, queries INTEGER NOT NULL, seconds REAL NOT NULL,
    violations INTEGER NOT NULL, violation_details TEXT NOT NULL, error TEXT, skipped TEXT,
    written TEXT NOT NULL)
"""


def test_a_schema_1_store_is_migrated_and_its_old_cells_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    old = sqlite3.connect(path)
    old.execute(SCHEMA_1)
    old.execute("INSERT INTO units VALUES ('x', '{}', x'00', x'00', 0, 0.0, 0, '[]', NULL, "
                "NULL, 'then')")
    old.execute("PRAGMA user_version = 1")
    old.commit()
    old.close()
    with ResultStore(path) as store:
        assert len(store) == 1
        assert store.get(unit_key(0)) is None  # keys without versions never match again
        success = np.array([True, False, True, False, False, False])
        store.put(unit_record(0, success=success))
        got = store.get(unit_key(0))
        assert got is not None and got.success is not None
        assert got.success.tolist() == success.tolist()
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3


def test_newer_schema_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / ResultStore.FILENAME
    with ResultStore(path) as store:
        store.put(unit_record(0))
    connection = sqlite3.connect(path)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()
    with pytest.raises(StoreError, match="newer robustbench_lite") as raised:
        ResultStore(path)
    assert str(path) in str(raised.value)
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    connection.close()


CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from test_store import unit_record
    from robustbench_lite.engine.store import ResultStore
    store = ResultStore(Path(sys.argv[1]))
    for index in range(int(sys.argv[3])):
        store.put(unit_record(index, size=5000))
        print(index, flush=True)
    time.sleep(60)
""")


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_kill_9_loses_at_most_the_unit_in_flight(tmp_path: Path) -> None:
    path = tmp_path / ResultStore.FILENAME
    total = 12
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(Path(__file__).parent), str(total)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stderr is not None
    reported: list[int] = []
    try:
        while len(reported) < 3:
            line = child.stdout.readline()
            assert line, f"the child died early: {child.stderr.read()}"
            reported.append(int(line))
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    reported += [int(line) for line in child.stdout.read().split()]  # printed before death
    child.stdout.close()
    child.stderr.close()
    assert reported == list(range(len(reported)))
    with ResultStore(path) as store:
        written = store.keys()
        stored = sorted(key.shard_start // 5000 for key in written)
        # every reported unit is there; at most one more (committed, not yet reported)
        assert stored in (reported, [*reported, len(reported)])
        for index in stored:
            assert_same(store.get(unit_key(index, 5000)), unit_record(index, size=5000))
        store.put(unit_record(total, size=5000))  # still writable
        assert len(store) == len(stored) + 1
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    connection.close()
