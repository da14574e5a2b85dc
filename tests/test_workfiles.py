"""Working files on this host: locked while used, removed on the way out, and what a dead process left is told
apart from a live one's by its lock alone."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbkeeper import workfiles


@pytest.fixture(autouse=True)
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    yield tmp


_HOLD = """
import sys, time
from pathlib import Path
from dbkeeper.workfiles import TempBeside, WorkDir
held = WorkDir("verify") if sys.argv[1] == "dir" else TempBeside(Path(sys.argv[1]))
print(held.path, flush=True)
time.sleep(60)
"""


def _holder(what: str, tmp: Path) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, what], stdout=subprocess.PIPE, text=True, env={**os.environ, "TMPDIR": str(tmp)}
    )
    assert proc.stdout is not None
    return proc, Path(proc.stdout.readline().strip())


@pytest.mark.parametrize("what", ["dir", "file"])
def test_a_live_holders_file_is_kept_and_a_dead_ones_removed(private_tmp: Path, tmp_path: Path, what: str) -> None:
    target = tmp_path / "app.db"
    proc, path = _holder("dir" if what == "dir" else str(target), private_tmp)
    try:
        [found] = workfiles.find([target])
        assert found.path == path and found.in_use and not found.stale()
        workfiles.sweep([target])
        workfiles.remove(found)
        assert path.exists()
    finally:
        proc.kill()
        proc.wait()
    [found] = workfiles.find([target])
    assert not found.in_use and found.stale() and not found.stale(3600)
    workfiles.sweep([target])
    assert not path.exists() and workfiles.find([target]) == []


def test_what_is_not_ours_is_never_touched(private_tmp: Path, tmp_path: Path) -> None:
    """A link with a working directory's name (to a directory elsewhere), a file where a directory belongs, and
    a temporary of another target's name are not leftovers."""
    elsewhere = tmp_path / "precious"
    elsewhere.mkdir()
    (elsewhere / "data").write_text("keep")
    (private_tmp / "dbkeeper-work-verify-abc").symlink_to(elsewhere)
    (private_tmp / "dbkeeper-work-verify-def").write_text("a file")
    (tmp_path / ".other.db.abc.dbkeeper-tmp").write_text("x")
    (tmp_path / ".app.db.abc.dbkeeper-tmp").symlink_to(elsewhere / "data")
    assert workfiles.find([tmp_path / "app.db"]) == []
    workfiles.sweep([tmp_path / "app.db"])
    assert (elsewhere / "data").read_text() == "keep" and (private_tmp / "dbkeeper-work-verify-def").exists()


def test_closing_removes_the_file_and_what_sqlite_put_beside_it(tmp_path: Path) -> None:
    temp = workfiles.TempBeside(tmp_path / "app.db")
    for side in workfiles.SQLITE_SIDE_FILES:
        Path(f"{temp.path}{side}").write_text("x")
    temp.close()
    assert list(tmp_path.iterdir()) == [tmp_path / "tmp"]
    with workfiles.WorkDir("verify") as path:
        (path / "check.db").write_bytes(b"x")
    assert list((tmp_path / "tmp").iterdir()) == []
