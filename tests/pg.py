"""Real PostgreSQL clusters for tests: initdb, start on a free loopback port, stop.

A cluster lives entirely under the directory it is given (data, log, password file) plus a short socket
directory in /tmp (a unix socket path must stay under ~107 bytes). PostgreSQL refuses to run as root, so
when we are root the server-side programs run as the ``postgres`` OS user and the files are chowned to it;
client programs (psql, pg_dump) run as whoever we are and connect over TCP with a password, as dbkeeper will.

Durability is off (``fsync=off``): a test cluster is thrown away, and start-up and loading get faster.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

PASSWORD = "postgres-secret"
SUPERUSER = "postgres"
HOST = "127.0.0.1"

_START_ATTEMPTS = 3  # a free port can be taken between our probe and the server's bind
_READY_TIMEOUT_S = 60.0


class ClusterError(RuntimeError):
    """A cluster could not be created, started, queried or stopped; the message quotes the tool's output."""


@dataclass(frozen=True)
class _RunAs:
    """Runs server-side programs: as ``postgres`` via runuser when we are root, directly otherwise."""

    user: pwd.struct_passwd | None

    @classmethod
    def detect(cls) -> _RunAs:
        if os.geteuid() != 0:
            return cls(None)
        try:
            return cls(pwd.getpwnam(SUPERUSER))
        except KeyError:
            raise ClusterError(
                "running as root, but there is no 'postgres' OS user to run the server as; "
                "install postgresql-15 (scripts/install-test-deps) or run the tests as a normal user"
            ) from None

    def argv(self, argv: Sequence[str]) -> list[str]:
        return ["runuser", "-u", SUPERUSER, "--", *argv] if self.user else list(argv)

    def own(self, *paths: Path) -> None:
        """Give ``paths`` (recursively) to the server's user, so it can write there."""
        if not self.user:
            return
        for top in paths:
            os.chown(top, self.user.pw_uid, self.user.pw_gid)
            for root, dirs, files in os.walk(top):
                for name in dirs + files:
                    os.chown(os.path.join(root, name), self.user.pw_uid, self.user.pw_gid, follow_symlinks=False)

    def check_can_use(self, bindir: Path, basedir: Path) -> None:
        """Fail early and clearly when ``postgres`` cannot reach the binaries or the base directory."""
        if not self.user:
            return
        probe = subprocess.run(
            self.argv(["sh", "-c", 'test -x "$1" && test -w "$2"', "sh", str(bindir / "postgres"), str(basedir)]),
            cwd="/",
            capture_output=True,
            check=False,
        )
        if probe.returncode != 0:
            raise ClusterError(
                f"the 'postgres' OS user cannot execute {bindir / 'postgres'} or write {basedir}; "
                "every parent directory must be searchable by others (chmod o+x), or point "
                "DBKEEPER_TEST_PG17_BIN at a copy of the binaries under a readable path"
            )


class Cluster:
    """One running PostgreSQL server. Create with :meth:`start`; always :meth:`stop` it (idempotent)."""

    def __init__(
        self,
        bindir: Path,
        basedir: Path,
        socket_dir: Path,
        port: int,
        run_as: _RunAs,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self._settings = dict(settings or {})
        self._bindir = bindir
        self._basedir = basedir
        self._socket_dir = socket_dir
        self._port = port
        self._run_as = run_as
        self._version = ""
        self._major = 0
        self._stopped = False

    # -- life cycle ---------------------------------------------------------------------------------------

    @classmethod
    def start(cls, bindir: Path, basedir: Path, settings: Mapping[str, str] | None = None) -> Cluster:
        """initdb a new cluster under ``basedir`` (created if missing), start it and wait until it answers.

        ``settings`` are added to (or override) the test settings, e.g. ``archive_mode``. Raises ClusterError
        with the server log when it does not come up.
        """
        bindir = Path(bindir).resolve()
        basedir = Path(basedir).resolve()
        for tool in ("initdb", "pg_ctl", "postgres", "psql"):
            if not (bindir / tool).is_file():
                raise ClusterError(f"{bindir / tool} is missing; run scripts/install-test-deps")
        run_as = _RunAs.detect()
        basedir.mkdir(parents=True, exist_ok=True)
        run_as.own(basedir)
        run_as.check_can_use(bindir, basedir)
        socket_dir = Path(tempfile.mkdtemp(prefix="pgsock-"))
        socket_dir.chmod(0o755)  # clients (maybe not postgres) must reach the socket inside
        run_as.own(socket_dir)

        cluster = cls(bindir, basedir, socket_dir, 0, run_as, settings)
        try:
            cluster._initdb()
            for attempt in range(1, _START_ATTEMPTS + 1):
                cluster._port = _free_port()
                cluster._configure()
                if cluster._pg_ctl_start(last=attempt == _START_ATTEMPTS):
                    break
            cluster._wait_ready()
            cluster._read_version()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def stop(self) -> None:
        """Stop immediately (the data is disposable). Safe to call twice or on a server that already died."""
        if self._stopped:
            return
        if (self.datadir / "postmaster.pid").exists():
            result = self._server_tool(["pg_ctl", "stop", "-D", str(self.datadir), "-m", "immediate", "-w"])
            if result.returncode != 0 and (self.datadir / "postmaster.pid").exists():
                status = self._server_tool(["pg_ctl", "status", "-D", str(self.datadir)])
                if status.returncode != 3:  # 3: not running
                    raise ClusterError(f"pg_ctl stop failed:\n{result.stdout}{result.stderr}")
        shutil.rmtree(self._socket_dir, ignore_errors=True)
        self._stopped = True

    def _initdb(self) -> None:
        pwfile = self._basedir / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        pwfile.chmod(0o600)
        self._run_as.own(pwfile)
        argv = [
            "initdb",
            "-D",
            str(self.datadir),
            "-U",
            SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            f"--locale={_utf8_locale()}",
            "--no-sync",
        ]
        result = self._server_tool(argv)
        pwfile.unlink()
        if result.returncode != 0:
            raise ClusterError(f"initdb failed in {self.datadir}:\n{result.stdout}{result.stderr}")

    def _configure(self) -> None:
        """Our settings go in an include file that each start attempt rewrites (the port changes)."""
        settings = {
            "listen_addresses": HOST,
            "port": str(self._port),
            "unix_socket_directories": str(self._socket_dir),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "16MB",
            "max_connections": "40",
            "max_wal_size": "256MB",
            "logging_collector": "off",
            "log_min_messages": "warning",
            "log_line_prefix": "%m [%p] %q%u@%d ",
            "timezone": "UTC",
            "lc_messages": "C",
            **self._settings,
        }
        lines = [f"{key} = '{_conf_quote(value)}'" for key, value in settings.items()]
        include = self.datadir / "dbkeeper_test.conf"
        include.write_text("\n".join(lines) + "\n")
        self._run_as.own(include)
        conf = self.datadir / "postgresql.conf"
        if "dbkeeper_test.conf" not in conf.read_text():
            with conf.open("a") as out:
                out.write("\ninclude 'dbkeeper_test.conf'\n")

    def _pg_ctl_start(self, *, last: bool) -> bool:
        """True once the server runs; False to retry on another port; raises with the log on the last try."""
        result = self._server_tool(
            ["pg_ctl", "start", "-D", str(self.datadir), "-l", str(self.logfile), "-w", "-t", "60"]
        )
        if result.returncode == 0:
            return True
        log = self.server_log()
        port_taken = "could not bind" in log or "Address already in use" in log
        if port_taken and not last:
            return False
        raise ClusterError(
            f"pg_ctl start failed (bindir {self._bindir}, port {self._port}):\n"
            f"{result.stdout}{result.stderr}\n--- server log {self.logfile} ---\n{log}"
        )

    def _wait_ready(self) -> None:
        """pg_ctl -w saw the postmaster up; also make sure a password login over TCP works."""
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while True:
            try:
                self.psql("SELECT 1")
                return
            except ClusterError as exc:
                if time.monotonic() > deadline:
                    raise ClusterError(f"{exc}\n--- server log {self.logfile} ---\n{self.server_log()}") from None
                time.sleep(0.1)

    def _read_version(self) -> None:
        out = self.psql("SELECT current_setting('server_version_num'), current_setting('server_version')")
        num, text = out.split("|", 1)
        self._major = int(num) // 10000
        match = re.match(r"\d+(?:\.\d+)?", text)
        self._version = match.group(0) if match else text

    def _server_tool(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        full = [str(self._bindir / argv[0]), *argv[1:]]
        return subprocess.run(
            self._run_as.argv(full),
            cwd=self._basedir,  # postgres may not be able to read our cwd
            env=_scrubbed_env(),
            capture_output=True,
            text=True,
            check=False,
        )

    # -- facts ----------------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def host(self) -> str:
        return HOST

    @property
    def socket_dir(self) -> Path:
        return self._socket_dir

    @property
    def bindir(self) -> Path:
        return self._bindir

    @property
    def datadir(self) -> Path:
        return self._basedir / "data"

    @property
    def logfile(self) -> Path:
        return self._basedir / "server.log"

    @property
    def version(self) -> str:
        """The server's version as ``major.minor``, e.g. ``"15.18"`` (distribution suffixes dropped)."""
        return self._version

    @property
    def major(self) -> int:
        return self._major

    def server_log(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")
        except FileNotFoundError:
            return "(no server log)"

    def __repr__(self) -> str:
        return f"<Cluster {self._version or '?'} {HOST}:{self._port} {self._basedir}>"

    # -- clients --------------------------------------------------------------------------------------------

    def url(self, db: str = "postgres", user: str = SUPERUSER) -> str:
        """A connection URL without the password (it comes from :meth:`env`'s PGPASSWORD)."""
        return f"postgresql://{user}@{HOST}:{self._port}/{db}"

    def env(self) -> dict[str, str]:
        """A whole environment for client tools: ours, less any outside PG* variable, plus this server's.

        Pass it as ``env=`` to a subprocess, or ``monkeypatch.setenv`` its PG* items.
        """
        env = _scrubbed_env()
        env.update(
            PGHOST=HOST,
            PGPORT=str(self._port),
            PGUSER=SUPERUSER,
            PGPASSWORD=PASSWORD,
            PGCLIENTENCODING="UTF8",
            PGCONNECT_TIMEOUT="10",
        )
        return env

    def tool(self, name: str) -> str:
        """The path of one of this cluster's client programs (pg_dump, psql …) as a string for argv."""
        return str(self._bindir / name)

    def psql(self, sql: str, db: str = "postgres") -> str:
        """Run ``sql`` (any statements and psql meta-commands); return query output in ``-At`` style.

        Output of every row-returning statement is printed one row a line, columns joined by ``|``; the
        trailing newline is stripped. Raises ClusterError quoting stderr on any error (ON_ERROR_STOP).
        """
        return self._psql(["-f", "-"], db, sql)

    def psql_file(self, path: Path, db: str = "postgres") -> str:
        """Run a SQL script file, stopping at the first error."""
        return self._psql(["-f", str(path)], db, None)

    def _psql(self, args: Sequence[str], db: str, stdin: str | None) -> str:
        argv = [self.tool("psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", db, *args]
        result = subprocess.run(
            argv, input=stdin, env=self.env(), capture_output=True, text=True, encoding="utf-8", check=False
        )
        if result.returncode != 0:
            shown = stdin if stdin is not None and len(stdin) < 2000 else " ".join(argv)
            raise ClusterError(f"psql on {db!r} failed ({result.returncode}): {result.stderr.strip()}\n{shown}")
        return result.stdout.removesuffix("\n")

    def create_db(self, name: str, template: str = "template0", encoding: str | None = None) -> None:
        """Create database ``name``. A non-UTF8 ``encoding`` gets locale C, which fits every encoding."""
        sql = f"CREATE DATABASE {quote_ident(name)} TEMPLATE {quote_ident(template)}"
        if encoding is not None:
            sql += f" ENCODING {quote_literal(encoding)}"
            if encoding.upper().replace("-", "") not in ("UTF8", "UNICODE"):
                sql += " LOCALE 'C'"
        self.psql(sql)

    def drop_db(self, name: str) -> None:
        """Drop ``name`` if it exists, disconnecting any session still in it."""
        self.psql(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")


class PgDb(NamedTuple):
    """A database on a running cluster; unpacks as ``cluster, name``."""

    cluster: Cluster
    name: str

    @property
    def url(self) -> str:
        return self.cluster.url(self.name)


def unique_db_name(hint: str) -> str:
    """A database name unique to this call, readable in server logs: ``t_<hint>_<8 hex>``, <= 63 bytes."""
    slug = re.sub(r"[^a-z0-9]+", "_", hint.lower()).strip("_")[:40]
    return f"t_{slug}_{uuid.uuid4().hex[:8]}"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _conf_quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "''")


SERVER_VENV = Path(os.environ.get("DBKEEPER_SERVER_VENV", "/opt/dbkeeper-test/venv"))
_server_copy: Path | None = None


def server_dbkeeper() -> str:
    """A shell command prefix that runs this checkout's dbkeeper as the server's OS user can: what goes before
    ``wal-push %p`` in archive_command.

    As root the server runs as ``postgres``, who cannot read our interpreter (under /root) or maybe this
    checkout: the code is copied to a world-readable directory once per session and run by the virtualenv
    scripts/install-test-deps made from Debian's python3. Otherwise our own interpreter runs the checkout.
    """
    global _server_copy
    src = Path(__file__).resolve().parent.parent / "src"
    if os.geteuid() != 0:
        return f"PYTHONPATH={shlex.quote(str(src))} {shlex.quote(sys.executable)} -m dbkeeper"
    python = SERVER_VENV / "bin" / "python"
    if not python.exists():
        raise ClusterError(f"{python} is missing; run scripts/install-test-deps (as root it builds that venv)")
    if _server_copy is None:
        top = Path(tempfile.mkdtemp(prefix="dbkeeper-server-code-"))
        shutil.copytree(src / "dbkeeper", top / "dbkeeper", ignore=shutil.ignore_patterns("__pycache__"))
        for root, dirs, files in os.walk(top):
            for name in [*dirs, *files]:
                os.chmod(os.path.join(root, name), 0o755 if name in dirs else 0o644)
        top.chmod(0o755)
        # Compiled once here: postgres cannot write __pycache__, and every archived segment would compile again.
        subprocess.run([str(python), "-m", "compileall", "-q", str(top)], check=True)
        for root, _dirs, files in os.walk(top):
            for name in files:
                os.chmod(os.path.join(root, name), 0o644)
        _server_copy = top
    return f"PYTHONPATH={shlex.quote(str(_server_copy))} {shlex.quote(str(python))} -m dbkeeper"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _scrubbed_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Our environment without PG* settings that would point a tool at some other server."""
    source = os.environ if base is None else base
    return {k: v for k, v in source.items() if not k.startswith("PG")}


def _utf8_locale() -> str:
    """C.UTF-8 when the C library has it (glibc >= 2.35 always does; Debian 12 does), else C."""
    try:
        listed = subprocess.run(["locale", "-a"], capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return "C"
    normal = {name.lower().replace("-", "") for name in listed}
    return "C.UTF-8" if "c.utf8" in normal else "C"
