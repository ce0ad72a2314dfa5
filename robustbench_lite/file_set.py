"""Replace a set of files in one folder together: after any interruption, kill -9 included,
the folder holds either the whole old set or the whole new one, once the next
`write_file_set` (or `complete_interrupted_write`) into it ran.

How: every new file is written to a temporary beside its target and flushed to disk; then a
journal (``.outputs.journal``, itself written atomically) lists the temporaries and their
targets; then each temporary is renamed over its target and the journal is removed. A run
killed before the journal exists leaves the old set and stray temporaries (removed by the
next write); one killed after it leaves a journal that the next write (or reader) rolls
forward. Writers of one folder hold an exclusive lock on it, so concurrent runs never
interleave their sets.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from robustbench_lite.atomic import atomic_write_text, fsync_folder, new_file_mode

logger = logging.getLogger(__name__)

JOURNAL = ".outputs.journal"


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` itself (blocking) for the block; a no-op where
    ``fcntl`` is missing."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    handle = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # releases the lock


def _temporary_prefix(name: str) -> str:
    return f".{name}."


def _stage(folder: Path, name: str, text: str) -> Path:
    handle, temporary = tempfile.mkstemp(prefix=_temporary_prefix(name), suffix=".tmp",
                                         dir=folder)
    path = Path(temporary)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(path, new_file_mode())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def _roll_forward(folder: Path, pairs: list[tuple[str, str]]) -> None:
    for temporary, name in pairs:
        if (folder / temporary).exists():
            os.replace(folder / temporary, folder / name)
    fsync_folder(folder)
    (folder / JOURNAL).unlink(missing_ok=True)
    fsync_folder(folder)


def _journal_pairs(folder: Path) -> list[tuple[str, str]] | None:
    """The journal's (temporary, target) names; None if there is none or it is unreadable.
    Names are checked to be plain file names inside ``folder``."""
    try:
        raw = json.loads((folder / JOURNAL).read_text(encoding="utf-8"))
        pairs = [(str(temporary), str(name)) for temporary, name in raw]
    except (OSError, ValueError, TypeError):
        return None
    if any(Path(part).name != part or part in ("", ".", "..")
           for pair in pairs for part in pair):
        return None
    return pairs


def complete_interrupted_write(folder: Path) -> None:
    """Finish a set write into ``folder`` that was interrupted after its journal was
    written, and remove what it left behind (nothing happens if there is none)."""
    if (folder / JOURNAL).exists():
        with folder_lock(folder):
            _complete_interrupted(folder)


def _complete_interrupted(folder: Path, names: Mapping[str, object] | None = None) -> None:
    """`complete_interrupted_write`, also removing the temporaries of ``names``; the caller
    holds `folder_lock`."""
    pairs = _journal_pairs(folder) if (folder / JOURNAL).exists() else None
    if pairs is not None:
        logger.warning("%s: completing an interrupted write of %d output file(s)", folder,
                       len(pairs))
        _roll_forward(folder, pairs)
    else:
        (folder / JOURNAL).unlink(missing_ok=True)
    targets = {JOURNAL, *(names or ()), *(name for _, name in pairs or ())}
    for name in targets:
        for stray in folder.glob(f"{_temporary_prefix(name)}*.tmp"):
            stray.unlink(missing_ok=True)


def write_file_set(folder: Path, files: Mapping[str, str]) -> dict[str, Path]:
    """Write ``files`` (file name -> UTF-8 text) into ``folder`` as one set (see the module
    docstring); returns the paths by file name. On an exception nothing of the old set has
    been replaced unless the journal was written, in which case the set is completed."""
    folder.mkdir(parents=True, exist_ok=True)
    with folder_lock(folder):
        _complete_interrupted(folder, files)
        staged: dict[str, Path] = {}
        try:
            for name, text in files.items():
                staged[name] = _stage(folder, name, text)
            fsync_folder(folder)
            atomic_write_text(folder / JOURNAL, json.dumps(
                [[path.name, name] for name, path in staged.items()]))
        except BaseException:
            for path in staged.values():
                path.unlink(missing_ok=True)
            raise
        _roll_forward(folder, [(path.name, name) for name, path in staged.items()])
    return {name: folder / name for name in files}
