"""A restored data directory brought up to replay WAL: written settings, ``pg_ctl`` as the server's OS user, and
the questions asked of it while it replays.

PostgreSQL refuses to run as root, so when dbkeeper is root the server and ``psql`` run as ``postgres`` (as the
drill's sandbox does). The server listens on a Unix socket only (``listen_addresses = ''``), in a directory of
the caller's choosing (by default a private one), so nothing connects to a half-recovered database. ``pg_ctl``
starts it without ``-w``: its "server started" says nothing about recovery, which can still end in a FATAL
later; the caller watches ``state()`` and the log instead.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from dbkeeper.engines.postgres.clients import Client
from dbkeeper.engines.postgres.conn import quote_literal
from dbkeeper.engines.postgres.sandbox import server_user
from dbkeeper.errors import ToolError

LOG_NAME = "dbkeeper-recovery.log"
_SEP = "\x1f"


def conf_line(key: str, value: str) -> str:
    return f"{key} = {quote_literal(value)}\n"


def give_to_server_user(path: Path) -> tuple[int | None, str]:
    """chown -R ``path`` to the OS user that will run the server (when we are root); that user's uid and name."""
    uid, gid, user = server_user("a restored cluster")
    if uid is not None and gid is not None:
        os.chown(path, uid, gid)
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)
    return uid, user


@dataclass(frozen=True)
class ReplayState:
    in_recovery: bool
    paused: bool
    replay_lsn: str | None
    replay_time: str | None  # pg_last_xact_replay_timestamp(), the last replayed commit's time


@dataclass
class RecoveryServer:
    datadir: Path
    bindir: Path
    socket_dir: Path
    port: int
    uid: int | None
    user: str
    env: dict[str, str]
    gid: int | None = None

    @classmethod
    def for_datadir(
        cls, datadir: Path, pg_ctl: Client, socket_dir: Path, port: int, env: dict[str, str]
    ) -> RecoveryServer:
        uid, gid, user = server_user("a restored cluster")
        return cls(datadir, Path(os.path.realpath(pg_ctl.path)).parent, socket_dir, port, uid, user, env, gid)

    @property
    def log(self) -> Path:
        return self.datadir / LOG_NAME

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def start(self) -> None:
        options = f"-c listen_addresses='' -k {self.socket_dir} -p {self.port}"
        self._run(["pg_ctl", "-D", str(self.datadir), "-l", str(self.log), "-W", "-o", options, "start"])

    def running(self) -> bool:
        """Whether the postmaster of ``postmaster.pid`` is alive (not ``pg_ctl status``, whose answer during a
        long recovery was seen to be wrong)."""
        try:
            pid = int((self.datadir / "postmaster.pid").read_text().split("\n", 1)[0])
            os.kill(pid, 0)
        except (OSError, ValueError):
            return False
        return True

    def stop(self, mode: str = "fast") -> None:
        if (self.datadir / "postmaster.pid").exists():
            self._run(["pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "-t", "120", "stop"], check=False)

    def sql(self, text: str, db: str = "postgres") -> list[list[str]]:
        argv = [str(self.bindir / "psql"), "-X", "-w", "-q", "-A", "-t", "-F", _SEP, "-v", "ON_ERROR_STOP=1"]
        argv += ["-h", str(self.socket_dir), "-p", str(self.port), "-U", self.user, "-d", db, "-c", text]
        done = self._exec(argv, timeout=120)
        if done.returncode != 0:
            raise ToolError(f"psql on the restored cluster failed: {done.stderr.strip()[-300:]}", stderr=done.stderr)
        return [line.split(_SEP) for line in done.stdout.splitlines() if line]

    def sql_file(self, path: Path, db: str = "postgres") -> str:
        argv = [str(self.bindir / "psql"), "-X", "-w", "-q", "-v", "ON_ERROR_STOP=1"]
        argv += ["-h", str(self.socket_dir), "-p", str(self.port), "-U", self.user, "-d", db]
        done = self._exec(argv, timeout=600, stdin=path.read_bytes())
        if done.returncode != 0:
            raise ToolError(f"the smoke file {path} failed: {done.stderr.strip()[-300:]}", stderr=done.stderr)
        return done.stdout

    def state(self) -> ReplayState | None:
        """Where replay is; None while the server does not answer yet (still starting, or not consistent)."""
        try:
            row = self.sql(
                "SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END,"
                " pg_last_wal_replay_lsn(), pg_last_xact_replay_timestamp()"
            )[0]
        except ToolError:
            return None
        return ReplayState(row[0] == "t", row[1] == "t", row[2] or None, row[3] or None)

    def promote(self, timeout: float = 120) -> None:
        """End recovery: resume from a pause at the target (PostgreSQL then promotes), or pg_promote."""
        state = self.state()
        if state is not None and state.paused:
            self.sql("SELECT pg_wal_replay_resume()")
        elif state is not None and state.in_recovery:
            self.sql("SELECT pg_promote(true, 60)")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state()
            if state is not None and not state.in_recovery:
                return
            time.sleep(0.2)
        raise ToolError("the restored cluster did not finish promotion", "read its log: " + str(self.log))

    def _run(self, argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        full = [str(self.bindir / argv[0]), *argv[1:]]
        done = self._exec(full, timeout=180)
        if check and done.returncode != 0:
            tail = " ".join((done.stderr or done.stdout).split())[-300:]
            raise ToolError(f"{argv[0]} failed on the restored cluster: {tail}", stderr=done.stderr)
        return done

    def _exec(self, argv: list[str], *, timeout: float, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
        try:
            done = subprocess.run(
                argv,
                input=stdin.decode() if stdin is not None else None,
                capture_output=True,
                text=True,
                user=self.uid,
                group=self.gid,
                extra_groups=[] if self.uid is not None else None,
                cwd=self.datadir,
                env=self.env,
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ToolError(f"cannot run {os.path.basename(argv[0])} on the restored cluster: {exc}") from exc
        return done
