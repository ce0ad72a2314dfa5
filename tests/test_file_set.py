"""The output files of an audit change together or not at all, kill -9 at any write
included, and no temporary survives the next write."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from robustbench_lite.file_set import JOURNAL, complete_interrupted_write, write_file_set

NAMES = ("report.html", "results.json", "cells.csv", "curves.csv")

#: Runs write_file_set in a child that SIGKILLs itself at the N-th call of one os function.
CHILD = """
import os, signal, sys
from pathlib import Path
from robustbench_lite.file_set import write_file_set
function, n, folder = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
real = getattr(os, function)
calls = 0
def dying(*args, **kwargs):
    global calls
    calls += 1
    if calls == n:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
setattr(os, function, dying)
write_file_set(folder, {name: "new " + name for name in sys.argv[4:]})
"""


def _versions(folder: Path) -> set[str]:
    return {(folder / name).read_text().split()[0] for name in NAMES}


def _killed_write(folder: Path, function: str, n: int) -> int:
    completed = subprocess.run([sys.executable, "-c", CHILD, function, str(n), str(folder),
                                *NAMES],
                               capture_output=True, text=True, timeout=60, check=False)
    return completed.returncode


@pytest.mark.parametrize(("function", "n"), [
    *[("fsync", n) for n in range(1, 9)],      # staging files, the folder, the journal
    *[("replace", n) for n in range(1, 6)],     # the journal, then each output
])
def test_kill_9_at_any_write_leaves_one_consistent_set(function: str, n: int,
                                                       tmp_path: Path) -> None:
    write_file_set(tmp_path, {name: "old " + name for name in NAMES})
    code = _killed_write(tmp_path, function, n)
    if code == 0:
        pytest.skip(f"the write makes fewer than {n} calls of os.{function}")
    assert code == -signal.SIGKILL
    interrupted_after_journal = (tmp_path / JOURNAL).exists()
    complete_interrupted_write(tmp_path)
    versions = _versions(tmp_path)
    assert len(versions) == 1  # all old or all new, never a mix
    if interrupted_after_journal:
        assert versions == {"new"}
    # the next write leaves no temporary and no journal behind
    write_file_set(tmp_path, {name: "third " + name for name in NAMES})
    assert _versions(tmp_path) == {"third"}
    leftovers = sorted(p.name for p in tmp_path.iterdir()
                       if p.name.endswith(".tmp") or p.name == JOURNAL)
    assert leftovers == []


def test_an_exception_while_staging_replaces_nothing(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    write_file_set(tmp_path, {name: "old " + name for name in NAMES})
    real_fsync = os.fsync
    calls = []

    def failing(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(OSError, match="No space left"):
        write_file_set(tmp_path, {name: "new " + name for name in NAMES})
    assert _versions(tmp_path) == {"old"}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_tampered_journal_cannot_move_files_outside_the_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "report.html").write_text("kept")
    (folder / JOURNAL).write_text(json.dumps([["report.html", "../outside.txt"]]))
    complete_interrupted_write(folder)
    assert not outside.exists() and (folder / "report.html").read_text() == "kept"
    assert not (folder / JOURNAL).exists()
