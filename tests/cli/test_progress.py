"""Progress lines, as a person at a terminal sees them (the command's stderr on a real pty of a given width), and
nothing of them anywhere else: off a terminal, with -q, with --log-format json. Also -v and JSON log lines."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import sqlite3
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from dbkeeper.progress import Progress
from dbkeeper.repo import Repository
from dbkeeper.storage.local import LocalStore
from dbkeeper.verify import verify
from helpers import make_sqlite_app, run_dbkeeper
from pg import PgDb

LONG = "a_source_with_a_rather_long_name_to_fill_the_line"


def on_pty(argv: list[str], cwd: Path, columns: int = 160) -> tuple[int, str, str]:
    """dbkeeper with stderr on a pseudo-terminal of ``columns``: (exit code, stdout, what the terminal got)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "dbkeeper", *argv],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=dict(os.environ, COLUMNS="", LINES=""),
    )
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO once the child is gone
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    out = proc.stdout.read().decode() if proc.stdout else ""
    return proc.wait(), out, seen.decode()


def phases_of(lines: list[str]) -> list[str]:
    """The phases a progress line went through, each once (the line ticks while a phase lasts)."""
    found = [ln.split(": ", 1)[1].rsplit(", ", 1)[0] for ln in lines if "%" not in ln]
    return [p for i, p in enumerate(found) if i == 0 or found[i - 1] != p]


def drawn(terminal: str) -> list[str]:
    """Each state of the progress line (the text between carriage returns), trailing blanks dropped."""
    return [part.rstrip() for part in re.split(r"[\r\n]", terminal) if part.strip()]


@pytest.fixture
def app(tmp_path: Path) -> Path:
    db = make_sqlite_app(tmp_path / f"{LONG}.db", users=20000, sessions=20000)
    with sqlite3.connect(db) as conn:  # some bytes that do not compress, so the stream takes a moment
        conn.execute("CREATE TABLE blobs (b BLOB)")
        conn.executemany("INSERT INTO blobs VALUES (randomblob(65536))", [()] * 200)
    return tmp_path


def test_backup_line_has_percent_and_eta_and_uses_the_whole_width(app: Path) -> None:
    code, out, terminal = on_pty(["backup", f"{LONG}.db", "--store", "backups"], app, columns=160)
    assert code == 0, terminal
    lines = drawn(terminal)
    assert lines and all(line.startswith(f"backup {LONG}.db: ") for line in lines), lines
    assert any(
        re.search(r"\d+% [\d.]+ [kMG]?B of ~[\d.]+ [kMG]?B, [\d.]+ [kMG]?B stored, .*/s, ETA ", ln) for ln in lines
    )
    assert max(len(line) for line in lines) > 78  # not cut at 78 on a 160-column terminal
    assert max(len(line) for line in lines) <= 159
    assert "100% " in lines[-1]  # the end is drawn, whatever the redraw rate
    assert out.startswith("backups/")  # the result itself is on stdout, untouched


def test_a_narrow_terminal_shortens_the_label_not_the_numbers(app: Path) -> None:
    code, _, terminal = on_pty(["backup", f"{LONG}.db", "--store", "backups"], app, columns=60)
    assert code == 0, terminal
    lines = drawn(terminal)
    assert lines and max(len(line) for line in lines) <= 59
    assert all("…: " in line and "% " in line and ", ETA " in line for line in lines), lines  # rate, stored: gone


def test_restore_verify_and_copy_show_progress_then_the_phases(app: Path) -> None:
    assert run_dbkeeper("backup", f"{LONG}.db", "--store", "backups", "--name", "app", cwd=app).returncode == 0
    code, out, terminal = on_pty(["restore", "latest", "restored.db", "--store", "backups"], app)
    assert code == 0, terminal
    lines = drawn(terminal)
    assert any(re.search(r"^restore app/\S+: +\d+% .* of [\d.]+ [kMG]?B, .*ETA", ln) for ln in lines), lines
    phases = phases_of(lines)
    assert phases == [
        "checking the checksum",
        "checking integrity",
        "checking row counts",
        "putting it in place",
    ], phases
    assert "restored " in out

    code, _, terminal = on_pty(["verify", "latest", "--store", "backups"], app)
    [size] = {
        float(m[1])
        for m in re.finditer(r"^verify app/\S+: 100% \S+ MB of ([\d.]+) MB", "\n".join(drawn(terminal)), re.M)
    }
    assert code == 0
    code, _, terminal = on_pty(["copy", "latest", "--store", "backups", "--to", "offsite", "--to", "more"], app)
    [both] = {
        float(m[1]) for m in re.finditer(r"^copy app/\S+: 100% \S+ MB of ([\d.]+) MB", "\n".join(drawn(terminal)), re.M)
    }
    assert code == 0 and abs(both - 2 * size) <= 0.1  # two stores: the backup's size twice


@pytest.mark.parametrize("flag", [["-q"], ["--quiet"], ["--log-format", "json"], ["--json"]])
def test_no_progress_with_quiet_json_logs_or_json_output(app: Path, flag: list[str]) -> None:
    code, _, terminal = on_pty(["backup", f"{LONG}.db", "--store", "backups", *flag], app)
    assert code == 0 and terminal == ""
    if flag != ["--json"]:  # a global option, so before the command too: dbkeeper -q verify …
        code, _, terminal = on_pty([*flag, "verify", "latest", "--store", "backups"], app)
        assert code == 0 and terminal == ""


def test_off_a_terminal_nothing_is_drawn_and_v_logs_the_phases(app: Path) -> None:
    result = run_dbkeeper("backup", f"{LONG}.db", "--store", "backups", "--name", "app", cwd=app)
    assert result.returncode == 0 and result.stderr == ""
    result = run_dbkeeper("restore", "latest", "r.db", "--store", "backups", cwd=app)
    assert result.returncode == 0 and result.stderr == ""
    result = run_dbkeeper("-v", "restore", "latest", "r2.db", "--store", "backups", cwd=app)
    assert result.returncode == 0 and "\r" not in result.stderr
    assert re.findall(r"dbkeeper: debug: restore app/\S+: (.+)", result.stderr) == [
        "checking the checksum",
        "checking integrity",
        "checking row counts",
        "putting it in place",
    ]


def test_json_log_lines(app: Path) -> None:
    result = run_dbkeeper("--log-format", "json", "backup", "missing.db", "--store", "backups", cwd=app)
    assert result.returncode == 1
    [doc] = [json.loads(line) for line in result.stderr.splitlines()]
    assert doc["level"] == "error" and doc["message"].startswith("SQLite database missing.db does not exist")
    assert doc["hint"] and doc["exit_code"] == 1 and re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", doc["ts"])
    result = run_dbkeeper("restore", "latest", "r.db", "--store", "backups", "-v", "--log-format", "json", cwd=app)
    assert result.returncode != 0
    assert all(json.loads(line)["level"] in ("error", "debug") for line in result.stderr.splitlines())


class Recorded:
    """A Progress that keeps what it was told."""

    def __init__(self) -> None:
        self.total: int | None = None
        self.done: list[int] = []
        self.phases: list[str] = []

    def expect(self, total: int | None) -> None:
        self.total = total

    def update(self, done: int, stored: int | None = None) -> None:
        self.done.append(done)

    def phase(self, text: str) -> None:
        self.phases.append(text)


def test_verify_reports_running_totals_up_to_the_manifest_size(app: Path) -> None:
    """The bug this replaces: each chunk's size was passed where the running total belongs (the line stayed at
    "1.0 MB" for a whole restore)."""
    assert run_dbkeeper("backup", f"{LONG}.db", "--store", "backups", "--name", "app", cwd=app).returncode == 0
    repo = Repository(LocalStore(app / "backups"))
    [name] = [p.relative_to(app / "backups").as_posix() for p in (app / "backups" / "app").glob("*.gz")]
    seen = Recorded()
    progress: Progress = seen
    assert verify(repo, name, progress=progress).ok
    size = (app / "backups" / name).stat().st_size
    assert seen.total == size and len(seen.done) > 2
    assert seen.done == sorted(seen.done) and seen.done[-1] == size and seen.done[0] < size


def test_postgresql_backup_estimate_and_restore_phases_on_a_pty(
    pgdb: PgDb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL: the backup's total is pg_database_size, and a restore's line, once the last byte went past,
    says the indexes are being built, then that the row counts are checked."""
    cluster, name = pgdb
    monkeypatch.setenv("PGPASSWORD", cluster.env()["PGPASSWORD"])
    cluster.psql(
        "CREATE TABLE t (id int PRIMARY KEY, body text);"
        "INSERT INTO t SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 50000) g;"
        "CREATE INDEX t_body ON t (body);",
        db=name,
    )
    size = int(cluster.psql(f"SELECT pg_database_size('{name}')"))
    code, _, terminal = on_pty(["backup", pgdb.url, "--name", "pg", "--store", "backups"], tmp_path)
    assert code == 0, terminal
    [total] = {m[1] for m in re.finditer(r" of ~([\d.]+ [kMG]?B)", terminal)}
    from dbkeeper.units import human_size

    assert total == human_size(size)
    code, _, terminal = on_pty(["restore", "latest", cluster.url(f"{name}_r"), "--store", "backups"], tmp_path)
    assert code == 0, terminal
    phases = phases_of(drawn(terminal))
    assert phases == [
        "checking the checksum",
        "building indexes and constraints",
        "checking row counts",
        "putting it in place",
    ], phases
    cluster.drop_db(f"{name}_r")
