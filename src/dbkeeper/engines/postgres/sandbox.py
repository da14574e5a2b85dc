"""A throwaway PostgreSQL cluster for a drill: the default place a drill restores into.

A backup's content is not trusted (whoever can write the store can write a dump that pg_dump could have written:
functions, triggers, index expressions that run code as the restoring role). A drill therefore restores it where
that code reaches no real database: a cluster dbkeeper starts itself with the backup's major (``initdb``, else the
newest newer one), in a private temporary directory, run by this OS user (``postgres`` with its own group and no
other when dbkeeper runs as root), listening on a Unix socket in that directory only (no TCP), with nothing in it
but what the drill loads. It never connects to the backup's own server. It is not a jail: the restoring role is
its superuser, so such code can run programs as that OS user (docs/SECURITY.md). The roles the backup's objects
name are created in it (NOLOGIN), so owners and privileges load as they are. ``stop`` ends it and removes
everything.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dbkeeper.engines.postgres.clients import pick
from dbkeeper.engines.postgres.conn import PgConn, quote_ident
from dbkeeper.engines.postgres.psql import query
from dbkeeper.errors import DbkeeperError, ToolError

PORT = 5432  # a socket in a directory of its own: no other server can hold the name
_UNPRIVILEGED = "postgres"


@dataclass
class Sandbox:
    root: Path
    bindir: Path
    user: str
    major: int
    _uid: int | None
    _gid: int | None = None

    @classmethod
    def start(cls, major: int, *, pg_bin: str | None = None) -> Sandbox:
        """A running throwaway cluster of PostgreSQL ``major`` (or newer); DbkeeperError if none can be made."""
        initdb = pick("initdb", major, pg_bin)
        uid, gid, user = server_user("a drill's sandbox")
        base = tempfile.gettempdir()
        if uid is not None and not _traversable(Path(base)):
            base = "/tmp"  # noqa: S108 - a private 0700 directory below it, owned by the user that runs the cluster
        root = Path(tempfile.mkdtemp(prefix="dbkeeper-sandbox-", dir=base))
        # The real directory: a link to initdb (/usr/local/bin) may have no pg_ctl beside it.
        box = cls(root, Path(os.path.realpath(initdb.path)).parent, user, initdb.major, uid, gid)
        try:
            if uid is not None:
                os.chown(root, uid, -1)
            box._run(
                "initdb",
                ["-D", str(root / "data"), "-U", user, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"],
            )
            options = f"-c listen_addresses='' -k {root} -p {PORT} -c fsync=off -c full_page_writes=off"
            box._run(
                "pg_ctl", ["-D", str(root / "data"), "-l", str(root / "log"), "-w", "-t", "60", "-o", options, "start"]
            )
        except BaseException:
            box.stop()
            raise
        return box

    def conn(self, dbname: str) -> PgConn:
        return PgConn(dbname, host=str(self.root), port=PORT, user=self.user)

    def describe(self) -> str:
        return f"a throwaway PostgreSQL {self.major} cluster (as {self.user}, socket only)"

    def create_roles(self, names: list[str], *, pg_bin: str | None = None) -> None:
        """The roles a backup's objects name, so that owners and grants load as they are (NOLOGIN)."""
        for name in names:
            sql = f"DO $$ BEGIN CREATE ROLE {quote_ident(name)} NOLOGIN; EXCEPTION WHEN duplicate_object THEN END $$"
            query(self.conn("postgres"), sql, pg_bin=pg_bin, doing="creating the backup's roles")

    def stop(self) -> None:
        """Stop the cluster at once and remove its directory (whatever state it is in)."""
        if (self.root / "data" / "postmaster.pid").exists():
            with contextlib.suppress(DbkeeperError):  # removing its directory below still ends what is left
                self._run("pg_ctl", ["-D", str(self.root / "data"), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, program: str, args: list[str]) -> None:
        argv = [str(self.bindir / program), *args]
        try:
            # As root: that user's uid, its own group and no other (root's group and groups are not passed on).
            groups: list[int] | None = [] if self._uid is not None else None
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                cwd=self.root,
                timeout=120,
                user=self._uid,
                group=self._gid,
                extra_groups=groups,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ToolError(f"cannot run {program} for the drill's sandbox: {exc}") from exc
        if done.returncode != 0:
            tail = " ".join((done.stderr or done.stdout).split())[-300:]
            raise ToolError(
                f"{program} failed starting the drill's sandbox cluster: {tail}",
                "check that the PostgreSQL server package of the backup's major is installed (Debian:"
                " postgresql-NN), or drill on a server of your own with --target",
            )


def server_user(what: str = "a drill's sandbox") -> tuple[int | None, int | None, str]:
    """Who runs a cluster dbkeeper starts (``what``): this user, or ``postgres`` when this is root (PostgreSQL
    refuses to run as root): its uid and gid (None: this process's own), and its name."""
    if os.geteuid() != 0:
        return None, None, pwd.getpwuid(os.geteuid()).pw_name
    try:
        entry = pwd.getpwnam(_UNPRIVILEGED)
    except KeyError:
        raise DbkeeperError(
            f"{what} cannot run as root and there is no 'postgres' user to run it",
            "run dbkeeper as an ordinary user, or create a 'postgres' user",
        ) from None
    return entry.pw_uid, entry.pw_gid, _UNPRIVILEGED


def _traversable(path: Path) -> bool:
    """Whether every directory down to ``path`` lets others pass (the sandbox's user is not this one)."""
    return all(p.stat().st_mode & 0o001 for p in [path, *path.parents])
