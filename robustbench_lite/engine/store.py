"""The resumable result store: an SQLite file of finished units of work.

A *unit* is one attack at one threat model on one shard of the data. Its `UnitKey` names
everything that decides its outcome (model and data hashes, the attack and its parameters,
the threat model, the seed, the shard and a free-form ``context``); its `UnitRecord` holds
the per-sample outcome. The engine asks `ResultStore.get` before running a unit and calls
`ResultStore.put` once the unit is finished, so a rerun skips every finished unit and gives
the same numbers as an uninterrupted run.

Contract:

* Records are looked up by `UnitKey.digest`, the SHA-256 of the key's canonical JSON
  (`UnitKey.canonical_json`: sorted keys, no whitespace, ASCII, floats written as Python's
  shortest round-trip ``repr``, tuples as lists, ``-0.0`` as ``0.0``, non-finite floats as
  ``{"__float__": "inf"}``). The digest is the same in every process and Python version;
  two keys are equal exactly when their digests are.
* A record's ``robust`` (bool), ``success`` (bool) and ``distances`` (float64) hold one
  entry per shard sample (``shard_stop - shard_start``); a record with ``error`` or
  ``skipped`` set may hold none.
* A key names the package version and the attack's and task's implementation versions, so
  an upgrade that changes any of them recomputes rather than reusing an older result.
* A record that cannot be read back as it was put (undecodable arrays, arrays whose length
  is not the key's shard length, a key that does not match its digest) is damaged: `get`
  logs a warning naming the file and the unit and returns None, so the engine recomputes
  the unit and its `put` replaces the record. A damaged *file* raises `StoreError`.
* Records with ``error`` or ``skipped`` are stored and returned like any other: `get` does
  not judge them; the engine decides whether a stored error counts as finished (it does:
  rerunning a deterministic failure gives the same failure) or is retried.
* `put` of a key already stored replaces the record (last write wins).
* Arrays are stored as ``.npy`` bytes (`numpy.save`) and read with ``allow_pickle=False``;
  nothing is ever pickled, so opening a store cannot execute code.

Durability: the file uses WAL journaling with ``synchronous=FULL``; each `put` is one
transaction that is committed, and its WAL frame fsynced, before `put` returns. A process
killed at any moment (Ctrl-C, ``kill -9``, power loss) leaves every unit whose `put`
returned readable and the file consistent; at most the unit in flight is lost. (WAL with
``synchronous=NORMAL`` would survive a killed process but could lose the last commits on
power loss; one fsync per unit costs nothing next to running an attack.) WAL needs a local
file system: do not put the store on NFS or a similar network share.

Concurrency: one writer at a time; other processes may read meanwhile (WAL readers do not
block the writer), and a process that finds the file locked waits up to
`BUSY_TIMEOUT_SECONDS` before failing.

The schema version is kept in ``PRAGMA user_version`` (`SCHEMA_VERSION`); a file written by
a newer version, a corrupt file, or an SQLite file that is not a result store raises
`StoreError`, whose message names the file and the fix.
"""

from __future__ import annotations

import io
import json
import logging
import math
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from robustbench_lite.engine.keys import UnitKey, as_integer
from robustbench_lite.errors import StoreError

__all__ = ["ResultStore", "StoreError", "UnitKey", "UnitRecord"]

logger = logging.getLogger(__name__)

#: Version of the table layout, kept in ``PRAGMA user_version`` (0 means a new, empty file).
#: Version 2 adds the ``success`` column, version 3 the ``expectation`` column.
SCHEMA_VERSION = 3

#: How long a connection waits for another process's lock before failing.
BUSY_TIMEOUT_SECONDS = 30.0


_SCHEMA = """
CREATE TABLE units (
    digest TEXT PRIMARY KEY NOT NULL,  -- sha256 of key
    key TEXT NOT NULL,                 -- UnitKey.canonical_json()
    robust BLOB NOT NULL,              -- .npy bytes, bool, one per shard sample
    distances BLOB NOT NULL,           -- .npy bytes, float64, one per shard sample
    success BLOB,                      -- .npy bytes, bool, one per shard sample (schema 2)
    expectation BLOB,                  -- .npy bytes, float64 (3, n): randomised models only
    queries INTEGER NOT NULL,
    seconds REAL NOT NULL,
    violations INTEGER NOT NULL,
    violation_details TEXT NOT NULL,   -- JSON list of strings
    error TEXT,
    skipped TEXT,
    written TEXT NOT NULL              -- UTC ISO 8601 time of the put
)
"""

_COLUMNS = ("digest, key, robust, distances, success, expectation, queries, seconds, "
            "violations, violation_details, error, skipped, written")


@dataclass
class UnitRecord:
    """The outcome of one finished unit. ``robust`` (the task still judges the model right),
    ``success`` (the attack reached its objective) and ``distances`` hold one entry per
    shard sample (``distances`` NaN where not attacked, inf allowed; ``success`` False
    where not attacked); a record with ``error`` or ``skipped`` may hold empty arrays
    instead. ``success`` defaults to "attacked and no longer robust". ``storable`` False
    marks an outcome of this run only (a time limit passed, a plugin changed the model):
    the engine does not store it, so a rerun computes the unit again."""

    key: UnitKey
    robust: np.ndarray[Any, np.dtype[np.bool_]]
    distances: np.ndarray[Any, np.dtype[np.float64]]
    queries: int
    seconds: float
    violations: int = 0
    violation_details: list[str] = field(default_factory=list)
    error: str | None = None
    skipped: str | None = None
    success: np.ndarray[Any, np.dtype[np.bool_]] | None = None
    storable: bool = True
    #: Randomised models: ``(3, n)`` per-sample selection, fresh and success scores
    #: (`robustbench_lite.host.expectation`), NaN where not attacked; None otherwise.
    expectation: np.ndarray[Any, np.dtype[np.float64]] | None = None


def _array_bytes(array: np.ndarray[Any, Any]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _checked(record: UnitRecord
             ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The record's arrays as contiguous little-endian bool / float64 / bool; ValueError if
    they do not fit its key."""
    robust = np.asarray(record.robust)
    distances = np.asarray(record.distances)
    success = np.zeros(len(robust), dtype=bool) if record.success is None else \
        np.asarray(record.success)
    if robust.dtype != np.bool_ or success.dtype != np.bool_:
        raise ValueError(f"UnitRecord.robust and .success must be bool arrays, got "
                         f"{robust.dtype} and {success.dtype}")
    if success.shape != robust.shape:
        raise ValueError(f"UnitRecord.success must match robust's shape {robust.shape}, got "
                         f"{success.shape}")
    if distances.dtype.kind not in "fiu":
        raise ValueError(f"UnitRecord.distances must be a float array, got {distances.dtype}")
    if robust.ndim != 1 or distances.ndim != 1:
        raise ValueError(f"UnitRecord arrays must be 1-D, got shapes {robust.shape} and "
                         f"{distances.shape}")
    expected = record.key.shard_size
    allowed = {expected, 0} if record.error is not None or record.skipped is not None else {
        expected}
    if len(robust) != len(distances) or len(robust) not in allowed:
        raise ValueError(f"UnitRecord arrays must hold one entry per shard sample "
                         f"({expected}), got {len(robust)} and {len(distances)}")
    return (np.ascontiguousarray(robust, dtype="|b1"),
            np.ascontiguousarray(distances, dtype="<f8"),
            np.ascontiguousarray(success, dtype="|b1"))


def _checked_counts(record: UnitRecord) -> tuple[int, float, int, str]:
    queries = as_integer("UnitRecord.queries", record.queries)
    violations = as_integer("UnitRecord.violations", record.violations)
    seconds = float(record.seconds)
    if queries < 0 or violations < 0 or not math.isfinite(seconds):
        raise ValueError(f"UnitRecord needs queries >= 0, violations >= 0 and finite seconds, "
                         f"got {queries}, {violations}, {seconds}")
    details = list(record.violation_details)
    if not all(isinstance(detail, str) for detail in details):
        raise TypeError("UnitRecord.violation_details must be a list of str")
    for name in ("error", "skipped"):
        value = getattr(record, name)
        if value is not None and not isinstance(value, str):
            raise TypeError(f"UnitRecord.{name} must be a str or None")
    return queries, seconds, violations, json.dumps(details, ensure_ascii=False)


class ResultStore:
    """SQLite file of finished units. Opening creates it (and its parent folder).

    Use as a context manager or call `close`. One instance belongs to one thread."""

    FILENAME = "results.sqlite"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder of result store {self.path}: "
                             f"{exc}") from exc
        try:
            connection = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_SECONDS,
                                         isolation_level=None)  # autocommit; see put
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open result store {self.path}: {exc}") from exc
        try:
            self._prepare(connection)
        except BaseException as exc:
            connection.close()
            if isinstance(exc, sqlite3.Error):
                raise self._failure(exc, "open") from exc
            raise
        self._connection: sqlite3.Connection | None = connection

    def _newer(self, version: int) -> StoreError:
        return StoreError(f"result store {self.path} was written by a newer robustbench_lite "
                          f"(schema {version}; this version reads schema {SCHEMA_VERSION}); "
                          "upgrade robustbench_lite, or delete the file to start afresh")

    def _prepare(self, connection: sqlite3.Connection) -> None:
        # The first read of the header: a file that is not SQLite fails here.
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise self._newer(version)
        mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            logger.warning("result store %s: WAL journaling unavailable (journal_mode=%s); "
                           "durability is kept, concurrent reads may wait", self.path, mode)
        connection.execute("PRAGMA synchronous = FULL")
        if version == SCHEMA_VERSION:
            return
        connection.execute("BEGIN IMMEDIATE")  # another process may be creating it too
        try:
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise self._newer(version)
            if version == 0:
                tables = connection.execute(
                    "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchall()
                if tables:
                    raise StoreError(f"{self.path} is an SQLite database but not a "
                                     "robustbench_lite result store; move it away or choose "
                                     "another output folder")
                connection.execute(_SCHEMA)
                connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            else:
                # Schema 1 records have keys without versions: they are never matched again,
                # and columns of NULLs are all they need; schema 2 records are of
                # deterministic models, which have no expectation.
                if version == 1:
                    connection.execute("ALTER TABLE units ADD COLUMN success BLOB")
                connection.execute("ALTER TABLE units ADD COLUMN expectation BLOB")
                connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def _failure(self, exc: sqlite3.Error, action: str) -> StoreError:
        detail = " ".join(str(exc).split())
        if isinstance(exc, sqlite3.DatabaseError) and not isinstance(
                exc, sqlite3.OperationalError):
            return StoreError(f"result store {self.path} is not a readable SQLite file "
                              f"({detail}); delete it to start afresh (finished units will "
                              "be recomputed)")
        return StoreError(f"cannot {action} result store {self.path}: {detail}")

    def _open_connection(self) -> sqlite3.Connection:
        if self._connection is None:
            raise ValueError(f"result store {self.path} is closed")
        return self._connection

    def get(self, key: UnitKey) -> UnitRecord | None:
        """The stored record of ``key`` (errored and skipped ones included), or None."""
        connection = self._open_connection()
        try:
            row = connection.execute(
                "SELECT key, robust, distances, success, expectation, queries, seconds, "
                "violations, violation_details, error, skipped FROM units WHERE digest = ?",
                (key.digest(),)).fetchone()
        except sqlite3.Error as exc:
            raise self._failure(exc, "read") from exc
        if row is None:
            return None
        stored_key, robust, distances, success, expectation, queries, seconds, violations, \
            details, error, skipped = row
        try:
            if stored_key != key.canonical_json():
                raise ValueError("the stored key does not match its digest")
            robust_array = np.load(io.BytesIO(robust), allow_pickle=False)
            distance_array = np.load(io.BytesIO(distances), allow_pickle=False)
            success_array = np.load(io.BytesIO(success), allow_pickle=False) \
                if success is not None else np.zeros(len(robust_array), dtype=bool)
            if robust_array.dtype != np.bool_ or distance_array.dtype.kind != "f" or \
                    success_array.dtype != np.bool_:
                raise ValueError("unexpected array types")
            sizes = {robust_array.shape, distance_array.shape, success_array.shape}
            allowed = {(key.shard_size,)} | ({(0,)} if error is not None or skipped is not None
                                             else set())
            if len(sizes) != 1 or not sizes <= allowed:
                raise ValueError(f"arrays of shapes {sorted(sizes)} for a shard of "
                                 f"{key.shard_size} samples")
            scores = None if expectation is None else np.load(io.BytesIO(expectation),
                                                              allow_pickle=False)
            if scores is not None and (scores.dtype.kind != "f"
                                       or scores.shape != (3, *robust_array.shape)):
                raise ValueError(f"expectation of shape {scores.shape}")
            details_list = json.loads(details)
            if not isinstance(details_list, list):
                raise ValueError("violation details are not a list")
        except (ValueError, TypeError, OSError, EOFError) as exc:
            # One damaged record (a bad disk sector, a foreign writer): recompute that unit;
            # its `put` replaces the record.
            logger.warning("result store %s: ignoring a damaged record of %s %s eps=%g, "
                           "samples %d-%d (%s); it will be recomputed", self.path, key.attack,
                           key.norm, key.eps, key.shard_start, key.shard_stop, exc)
            return None
        return UnitRecord(key=key, robust=robust_array,
                          distances=distance_array.astype(np.float64, copy=False),
                          queries=int(queries), seconds=float(seconds),
                          violations=int(violations), violation_details=list(details_list),
                          error=error, skipped=skipped, success=success_array,
                          expectation=None if scores is None
                          else scores.astype(np.float64, copy=False))

    def put(self, record: UnitRecord) -> None:
        """Store ``record`` (replacing any record of the same key) in one transaction that is
        committed and fsynced before this returns."""
        robust, distances, success = _checked(record)
        queries, seconds, violations, details = _checked_counts(record)
        written = datetime.now(timezone.utc).isoformat(timespec="seconds")
        scores = None
        if record.expectation is not None:
            scores = np.ascontiguousarray(record.expectation, dtype="<f8")
            if scores.shape != (3, len(robust)):
                raise ValueError(f"UnitRecord.expectation must have shape (3, {len(robust)}), "
                                 f"got {scores.shape}")
        row = (record.key.digest(), record.key.canonical_json(), _array_bytes(robust),
               _array_bytes(distances), _array_bytes(success),
               None if scores is None else _array_bytes(scores), queries, seconds, violations,
               details, record.error, record.skipped, written)
        connection = self._open_connection()
        try:
            # Autocommit mode: this single statement is its own transaction, committed (and,
            # with synchronous=FULL, synced to disk) before execute returns.
            connection.execute(f"INSERT OR REPLACE INTO units ({_COLUMNS}) "
                               f"VALUES ({', '.join('?' * len(row))})", row)
        except sqlite3.Error as exc:
            raise self._failure(exc, "write") from exc

    def keys(self) -> list[UnitKey]:
        """Every stored key, in the order they were last written."""
        connection = self._open_connection()
        try:
            rows = connection.execute("SELECT key FROM units ORDER BY rowid").fetchall()
        except sqlite3.Error as exc:
            raise self._failure(exc, "read") from exc
        try:
            return [UnitKey.from_json(text) for (text,) in rows]
        except (ValueError, TypeError, KeyError) as exc:
            raise self._damaged(exc) from exc

    def _damaged(self, exc: Exception) -> StoreError:
        return StoreError(f"result store {self.path} holds a damaged record ({exc}); delete "
                          "it to start afresh (finished units will be recomputed)")

    def __len__(self) -> int:
        connection = self._open_connection()
        try:
            count: int = connection.execute("SELECT count(*) FROM units").fetchone()[0]
        except sqlite3.Error as exc:
            raise self._failure(exc, "read") from exc
        return count

    def close(self) -> None:
        """Close the file (idempotent). Everything `put` stored is already on disk."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResultStore({str(self.path)!r})"
