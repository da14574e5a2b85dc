"""The state directory: $DBKEEPER_STATE_DIR, /var/lib/dbkeeper as root, the XDG state directory otherwise; the
drill log, the locks and the metrics file live there unless their own settings say otherwise."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dbkeeper import drill_log, lock, state

NOBODY = 65534


def as_user(uid: int, env: dict[str, str]) -> str:
    """state_dir() computed by a forked child running as ``uid`` (a real non-root process, this interpreter)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to uid, answer, leave without running the parent's cleanup
        try:
            os.close(read)
            os.environ.clear()
            os.environ.update(env)
            os.setgid(uid)
            os.setuid(uid)
            os.write(write, str(state.state_dir()).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        answer = f.read().decode()
    os.waitpid(pid, 0)
    return answer


def test_explicit_state_dir_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBKEEPER_STATE_DIR", str(tmp_path / "st"))
    monkeypatch.delenv("DBKEEPER_LOCK_DIR")
    assert state.state_dir() == tmp_path / "st"
    assert drill_log.default_path() == tmp_path / "st" / "DR_DRILL_LOG.md"
    assert lock.lock_dir() == tmp_path / "st" / "locks"
    assert state.metrics_path() == tmp_path / "st" / "metrics" / "dbkeeper.prom"
    monkeypatch.setenv("DBKEEPER_LOCK_DIR", str(tmp_path / "elsewhere"))
    assert lock.lock_dir() == tmp_path / "elsewhere"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to test root's default and to become another user")
def test_root_uses_var_lib_and_other_users_their_xdg_state_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DBKEEPER_STATE_DIR")
    assert state.state_dir() == Path("/var/lib/dbkeeper")
    assert as_user(NOBODY, {"HOME": "/home/nobody"}) == "/home/nobody/.local/state/dbkeeper"
    assert as_user(NOBODY, {"HOME": "/home/nobody", "XDG_STATE_HOME": "/srv/st"}) == "/srv/st/dbkeeper"
    # A relative XDG_STATE_HOME is invalid (the XDG spec): ignored, not resolved against the working directory.
    assert as_user(NOBODY, {"HOME": "/home/nobody", "XDG_STATE_HOME": "st"}) == "/home/nobody/.local/state/dbkeeper"
    assert as_user(NOBODY, {"HOME": "/h", "DBKEEPER_STATE_DIR": "/x"}) == "/x"


def test_metrics_file_without_a_path_goes_into_the_state_directory(tmp_path: Path) -> None:
    from helpers import make_sqlite_app, run_dbkeeper

    make_sqlite_app(tmp_path / "app.db", users=5, sessions=5)
    env = {"DBKEEPER_STATE_DIR": str(tmp_path / "st")}
    result = run_dbkeeper("backup", "app.db", "--name", "app", "--metrics-file", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "st" / "metrics" / "dbkeeper.prom").read_text()
    assert 'dbkeeper_backup_size_bytes{source="app",database="app"}' in text
    # With a path, that path (as before); its directory is not made up.
    result = run_dbkeeper("backup", "app.db", "--name", "app", "--metrics-file", "m.prom", env=env, cwd=tmp_path)
    assert result.returncode == 0 and (tmp_path / "m.prom").exists()
