"""Finding PostgreSQL client programs that fit the server.

``pg_dump`` refuses a server newer than itself, and a dump made by a newer ``pg_dump`` may hold settings an
older server rejects (17's ``transaction_timeout``), so the right client is the one of the server's own major,
else the newest newer one. Like Barman, we do not trust ``PATH`` alone: Debian installs ``pg_wrapper`` shims in
/usr/bin, so every candidate is asked its ``--version``.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from dbkeeper import proc
from dbkeeper.errors import ToolError, ToolNotFound

_VERSION_RE = re.compile(r"\(PostgreSQL\) (\d+)(?:\.(\d+))?")
_EXE = ".exe" if os.name == "nt" else ""
_WELL_KNOWN = (
    "/usr/lib/postgresql/*/bin",
    "/usr/pgsql-*/bin",
    "/opt/homebrew/opt/postgresql@*/bin",
    "/usr/local/opt/postgresql@*/bin",
    "C:/Program Files/PostgreSQL/*/bin",
)


@dataclass(frozen=True, order=True)
class Client:
    major: int
    minor: int
    path: str

    @property
    def version(self) -> str:
        return f"{self.major}.{self.minor}"


@cache
def _probe(path: str) -> Client | None:
    try:
        out = proc.run([path, "--version"], timeout=15)
    except ToolError:
        return None
    m = _VERSION_RE.search(out)
    if not m:
        return None
    return Client(int(m[1]), int(m[2] or 0), path)


def candidates(program: str, pg_bin: str | None = None) -> list[Client]:
    """Every distinct working ``program`` we can find; only ``pg_bin``'s when it is given."""
    if pg_bin:
        dirs = [pg_bin]
    else:
        dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]
        for pattern in _WELL_KNOWN:
            dirs.extend(sorted(glob.glob(pattern)))
    seen: set[str] = set()
    found: list[Client] = []
    for d in dirs:
        exe = os.path.join(d, program + _EXE)
        if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
            continue
        real = os.path.realpath(exe)
        if real in seen or (real.endswith("/pg_wrapper") and not pg_bin):
            continue  # Debian's shim picks one of the /usr/lib/postgresql/*/bin programs we look at anyway
        seen.add(real)
        client = _probe(exe)
        if client:
            found.append(client)
    return found


def pick(program: str, server_major: int | None, pg_bin: str | None = None) -> Client:
    """The client for a server: its own major, else the newest newer one; ToolNotFound says what is needed."""
    found = candidates(program, pg_bin)
    where = f"in {pg_bin}" if pg_bin else "on PATH or in /usr/lib/postgresql/*/bin"
    if not found:
        raise ToolNotFound(
            f"no {program} found {where}",
            "install the PostgreSQL client (Debian: apt install postgresql-client) or pass --pg-bin DIR",
        )
    if server_major is None:
        return max(found)
    same = [c for c in found if c.major == server_major]
    if same:
        return max(same)
    newer = [c for c in found if c.major > server_major]
    if newer:
        return max(newer)
    have = ", ".join(sorted({c.version for c in found}))
    raise ToolNotFound(
        f"the server is PostgreSQL {server_major} but the newest {program} found {where} is {max(found).version}"
        f" (found: {have}); {program} must be at least as new as the server",
        f"install postgresql-client-{server_major} (or newer), or pass --pg-bin with its bin directory",
    )


def bindir_of(client: Client) -> Path:
    return Path(client.path).parent
