"""A cluster that archives its WAL into a store through ``dbkeeper wal-push`` (run by the server as its OS user,
as in production), a ledger writer that records when each commit was acknowledged, and the dbkeeper commands a
point-in-time restore test runs.

The oracle (PITR.md §5): recovery targets compare commit times, so a restore to T holds every ledger id whose
commit was acknowledged before T, and none whose INSERT was sent after T (its commit came later still).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from archiving import ArchivingCluster
from helpers import run_dbkeeper
from pg import Cluster, _RunAs


def shared_dir(prefix: str) -> Path:
    """A directory the server's OS user can write and we can read (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o777)
    return path


PITR_SETTINGS = {
    "archive_timeout": "1s",  # each second's commits reach the archive: targets up to a second before the crash
    "synchronous_commit": "on",  # an acknowledged commit is in the WAL
    "max_wal_senders": "5",
}


def dbk(ac: ArchivingCluster, *argv: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """dbkeeper as a user runs it, with the cluster's config (its store and [pitr] source) and PG* environment."""
    return run_dbkeeper("--config", str(ac.config), *argv, env={**ac.cluster.env(), **(env or {})})


def basebackup(ac: ArchivingCluster, *extra: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    done = dbk(ac, "basebackup", ac.cluster.url(), "--pg-bin", str(ac.cluster.bindir), "--json", *extra, env=env)
    assert done.returncode == 0, done.stderr + done.stdout
    doc: dict[str, Any] = json.loads(done.stdout)["backup"]
    return doc


def restore(
    ac: ArchivingCluster, datadir: Path, *extra: str, sock: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """restore --pitr into ``datadir``; with ``sock`` the server stays up on that socket directory (port 5432)."""
    args = ["restore", "--pitr", str(datadir), "--pg-bin", str(ac.cluster.bindir), "--json"]
    args += ["--wal-fetch-command", ac.command]
    if sock is not None:
        args += ["--socket-dir", str(sock), "--keep-running"]
    return dbk(ac, *args, *extra)


def crash(ac: ArchivingCluster) -> None:
    """``pg_ctl stop -m immediate``: what was not archived yet is lost to the archive."""
    done = subprocess.run(
        _RunAs.detect().argv([ac.cluster.tool("pg_ctl"), "stop", "-D", str(ac.cluster.datadir), "-m", "immediate"]),
        cwd="/", capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def pgbench(ac: ArchivingCluster, *args: str) -> None:
    done = subprocess.run(
        [ac.cluster.tool("pgbench"), *args, "postgres"], env=ac.cluster.env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


@dataclass
class Ledger:
    """Inserts ids 1, 2, 3 … every ``interval`` s, one transaction each, and records (id, sent, acknowledged)."""

    cluster: Cluster
    interval: float = 0.1
    rows: list[tuple[int, float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Ledger:
        self.cluster.psql("CREATE TABLE IF NOT EXISTS ledger (id int PRIMARY KEY, at timestamptz DEFAULT now())")
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            sent = time.time()
            try:
                self.cluster.psql(f"INSERT INTO ledger (id) VALUES ({n})")
            except Exception:
                return  # the server went away (the crash)
            self.rows.append((n, sent, time.time()))
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def expect(self, target: float) -> tuple[set[int], set[int]]:
        """(ids that must be there, ids that must not) after a restore to ``target`` (epoch seconds)."""
        must = {i for i, _sent, ack in self.rows if ack < target}
        never = {i for i, sent, _ack in self.rows if sent > target}
        return must, never


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def restored_psql(sock: Path, bindir: Path, sql: str, port: int = 5432) -> str:
    """Ask the restored server (on its socket, as its OS user: the backup's pg_hba trusts local connections)."""
    argv = [str(bindir / "psql"), "-X", "-At", "-h", str(sock), "-p", str(port), "-U", "postgres", "-d", "postgres"]
    done = subprocess.run(
        _RunAs.detect().argv([*argv, "-c", sql]), cwd="/", capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def stop_restored(datadir: Path, bindir: Path, mode: str = "immediate") -> None:
    if (datadir / "postmaster.pid").exists():
        argv = [str(bindir / "pg_ctl"), "-D", str(datadir), "-m", mode, "-w", "stop"]
        subprocess.run(_RunAs.detect().argv(argv), cwd="/", capture_output=True, check=False)


def start_restored(datadir: Path, sock: Path, bindir: Path) -> None:
    """Start a restored data directory again, on its socket only, as the server's OS user."""
    options = f"-c listen_addresses='' -k {sock} -p 5432"
    log = datadir / "restart.log"
    argv = [str(bindir / "pg_ctl"), "-D", str(datadir), "-l", str(log), "-w", "-o", options, "start"]
    done = subprocess.run(_RunAs.detect().argv(argv), cwd="/", capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr + log.read_text()


def ledger_ids(sock: Path, bindir: Path) -> set[int]:
    out = restored_psql(sock, bindir, "SELECT id FROM ledger")
    return {int(x) for x in out.split()} if out else set()


def restore_checked(ac: ArchivingCluster, ledger: Ledger, target: float, work: Path, name: str) -> dict[str, object]:
    """Restore to ``target`` paused there, and hold the restored ledger against the acknowledgements."""
    datadir, sock = work / name, work / f"{name}-sock"
    sock.mkdir()
    sock.chmod(0o777)
    done = restore(ac, datadir, "--to-time", iso(target), "--action", "pause", sock=sock)
    try:
        assert done.returncode == 0, done.stderr + done.stdout
        result: dict[str, object] = json.loads(done.stdout)
        ids = ledger_ids(sock, ac.cluster.bindir)
        must, never = ledger.expect(target)
        assert must, "the ledger has no commit acknowledged before the target: the test proves nothing"
        assert must <= ids, f"acknowledged before {iso(target)} but missing: {sorted(must - ids)[:10]}"
        assert not (never & ids), f"sent after {iso(target)} but present: {sorted(never & ids)[:10]}"
        assert restored_psql(sock, ac.cluster.bindir, "SELECT pg_is_wal_replay_paused()") == "t"
        return result
    finally:
        stop_restored(datadir, ac.cluster.bindir)
        shutil.rmtree(datadir, ignore_errors=True)
