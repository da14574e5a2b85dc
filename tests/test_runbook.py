"""docs/RUNBOOK.md, run: every ``dbkeeper …`` line of its ``sh`` blocks, in document order, against real things.

The runbook cannot rot: each command it shows runs here against real PostgreSQL 15 (``db1``) and 17 (``db2``), a
real S3 endpoint (moto), real SQLite and the real ``age``, and must exit 0, or, for the failing examples of its
error table (``# exit N: <case>``), exit N with the first line the table gives on stderr. Each ``sh`` block says
where it runs (``# on backup1`` …): every host is a directory of its own, and the files the runbook shows for a
host (``# /srv/dbkeeper/dbkeeper.toml on backup1``) are written there when the reading reaches them. The only
difference between what the runbook says and what runs is ``SUBSTITUTIONS``: the doc's host names, bucket, key
file and backup name, swapped for this test's. A line that cannot run here opts out with a trailing
``# not run in tests: <reason>``; nothing else is skipped.

The failures of the error table are made to happen for real (``FAULTS``): a wrong password, a lock another process
holds, a byte flipped in the bucket, a file-size limit standing in for a full disk (as tests/cli/test_sqlite_cli.py
and tests/engines/test_pg_engine.py do), rows that break a foreign key, a server newer than every ``pg_dump`` on a
restricted PATH. Only the encoding case is injected by editing a manifest: dbkeeper creates a restore target with
the source's encoding, so a wrong manifest is the one way left to meet it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from helpers import hold_lock
from pg import PASSWORD, Cluster, ClusterError, quote_ident, quote_literal
from s3server import MotoServer, aws_env

REPO = Path(__file__).resolve().parent.parent
RUNBOOK = REPO / "docs" / "RUNBOOK.md"
MIN_COMMANDS = 50  # the runbook shows at least this many dbkeeper commands
MAX_NOT_RUN = 4  # and opts out of running at most this many

# Where a sh block runs ("# on backup1, in /srv/dbkeeper"): each host is a directory of its own.
HOSTS = {"backup1": "backup1", "ops1": "ops1", "any machine": "anywhere", "a dev machine": "dev"}
WORKDIR = "/srv/dbkeeper/"  # the runbook's files under it go into their host's directory
# The lines other than dbkeeper's that run too; the rest of a sh block (apt, chmod, systemctl …) is only shown.
SHELL_LINES = ("age-keygen ", "age -d ", "(cd backups/casino && sha256sum -c ", "(cd casino && sha256sum -c ")
OUTPUT = {"age -d ": "-- PostgreSQL database dump"}  # what such a pipeline must print (head exits 0 regardless)

DOC_RECIPIENT = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"  # age's own example key
DOC_BACKUP = "casino_20261127_020000"
BACKUP_STEM = re.compile(r"casino_\d{8}_\d{6}(?:-\d+)?")  # -2: a second backup in the same second


# What the runbook names -> what this test has, computed when a line uses it (for a line run on ``host``).
SUBSTITUTIONS: dict[str, Callable[[World, str], str]] = {
    "db1:5432": lambda world, host: f"127.0.0.1:{world.pg15.port}",
    "db1:5433": lambda world, host: "127.0.0.1:1",  # a port nothing listens on
    "db2:5432": lambda world, host: f"127.0.0.1:{world.pg17.port}",  # the next server, PostgreSQL 17
    "db-1": lambda world, host: "db-1.invalid",  # a host name no DNS knows
    "s3://acme-backups/casino": lambda world, host: f"s3://{world.bucket}/casino",
    "/secure/age-key.txt": lambda world, host: str(world.key),
    DOC_RECIPIENT: lambda world, host: world.recipient(),  # of the key the runbook's age-keygen made
    "/usr/lib/postgresql/17/bin": lambda world, host: str(world.pg17.bindir),
    "/var/lib/node_exporter/textfile": lambda world, host: str(world.textfile),
    DOC_BACKUP: lambda world, host: world.newest(host),  # the newest backup in the store the host works on
}


# -- reading the runbook ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    number: int  # its line in RUNBOOK.md
    host: str
    text: str  # without its trailing comment
    exit_code: int = 0
    case: str | None = None  # the error table's row it shows
    not_run: str | None = None  # the reason given after "# not run in tests:"

    @property
    def is_dbkeeper(self) -> bool:
        return self.text.startswith("dbkeeper ")


@dataclass(frozen=True)
class DocFile:
    number: int
    host: str
    path: str  # relative to the host's directory
    text: str


@dataclass(frozen=True)
class Row:
    case: str
    exit_code: int
    first_line: str


@dataclass
class Runbook:
    steps: list[Command | DocFile] = field(default_factory=list)
    rows: dict[str, Row] = field(default_factory=dict)


_FENCE = re.compile(r"^```(\S*)\s*$")
_HOST = re.compile(r"^# on (" + "|".join(map(re.escape, HOSTS)) + r")\b")
_FILE = re.compile(r"^(?:#|--) (" + re.escape(WORKDIR) + r"\S+) on (\S+)$")
_COMMENT = re.compile(r"\s+#\s")
_EXIT = re.compile(r"exit (\d+): (.+)")
_NOT_RUN = re.compile(r"not run in tests:(.*)")
_TABLE_HEAD = "| case | exit | first line dbkeeper prints |"


def parse(text: str) -> Runbook:
    book = Runbook()
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if lines[i].startswith(_TABLE_HEAD):
            i = _parse_table(lines, i, book)
            continue
        if not fence or not fence.group(1):
            i += 1
            continue
        start, lang = i + 1, fence.group(1)
        end = next(j for j in range(start, len(lines)) if lines[j] == "```")
        block = lines[start:end]
        if lang == "sh":
            book.steps += _parse_sh(block, start + 1)
        elif block and (file := _FILE.match(block[0])):
            assert file.group(2) in HOSTS, f"line {start + 1}: unknown host {file.group(2)}"
            path = file.group(1).removeprefix(WORKDIR)
            book.steps.append(DocFile(start + 1, file.group(2), path, "\n".join(block) + "\n"))
        i = end + 1
    return book


def _parse_sh(block: list[str], first: int) -> list[Command]:
    host = _HOST.match(block[0]) if block else None
    assert host, f"line {first}: a sh block starts with '# on <host>', one of {', '.join(HOSTS)}"
    out = []
    for number, raw in enumerate(block[1:], first + 1):
        assert not raw.rstrip().endswith("\\"), f"line {number}: one command per line, no continuations"
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        text, comment = raw.strip(), ""
        if m := _COMMENT.search(text):
            text, comment = text[: m.start()], text[m.end() :].strip()
        if not (text.startswith("dbkeeper ") or text.startswith(SHELL_LINES)):
            continue  # shown, not run: apt, chmod, systemctl …
        exit_code, case, not_run = 0, None, None
        if m := _EXIT.fullmatch(comment):
            exit_code, case = int(m.group(1)), m.group(2).strip()
        elif m := _NOT_RUN.fullmatch(comment):
            not_run = m.group(1).strip()
        out.append(Command(number, host.group(1), text, exit_code, case, not_run))
    return out


def _parse_table(lines: list[str], i: int, book: Runbook) -> int:
    i += 2  # the header and the |---| line
    while i < len(lines) and lines[i].startswith("|"):
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", lines[i].strip())[1:-1]]
        case, code, first = cells[0], cells[1], cells[2]
        assert first.startswith("`") and first.endswith("`"), f"line {i + 1}: the first line goes in backticks"
        book.rows[case] = Row(case, int(code), first.strip("`"))
        i += 1
    return i


def dbkeeper_lines(text: str) -> list[int]:
    """Every line of a sh block that starts with 'dbkeeper ', found without the parser (to check it missed none)."""
    numbers, in_sh = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            in_sh = not in_sh and line.strip() == "```sh"
        elif in_sh and line.strip().startswith("dbkeeper "):
            numbers.append(number)
    return numbers


# -- the world the runbook runs in ----------------------------------------------------------------------------

CASINO_SQL = """
CREATE TABLE users (
    id integer PRIMARY KEY,
    email text NOT NULL UNIQUE,
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE game_sessions (
    id integer PRIMARY KEY,
    user_id integer NOT NULL REFERENCES users (id),
    score integer NOT NULL,
    played_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO users (id, email, name)
    SELECT i, 'user' || i || '@example.com', 'User ' || i FROM generate_series(1, 3000) i;
UPDATE users SET name = 'Łukasz' WHERE id = 7;  -- no such letter in LATIN1: the encoding case needs one
INSERT INTO game_sessions (id, user_id, score)
    SELECT i, i % 3000 + 1, i * 37 % 1000 FROM generate_series(1, 2500) i;
ALTER TABLE users OWNER TO casino_owner;
ALTER TABLE game_sessions OWNER TO casino_owner;
"""

_ROLE = "DO $$ BEGIN CREATE ROLE {}; EXCEPTION WHEN duplicate_object THEN NULL; END $$"


@dataclass
class Fault:
    """What a failing example runs with: extra environment, and a hook in the child before it starts."""

    env: dict[str, str] = field(default_factory=dict)
    preexec: Callable[[], None] | None = None


@dataclass
class World:
    root: Path
    pg15: Cluster
    pg17: Cluster
    s3: Any
    bucket: str
    env: dict[str, str]

    @classmethod
    @contextmanager
    def create(cls, root: Path, pg15: Cluster, pg17: Cluster, moto: MotoServer) -> Iterator[World]:
        aws = aws_env(moto.url, root)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_"))}
        env.update(aws, PGPASSFILE=str(root / "pgpass"))
        s3 = boto3.client(
            "s3",
            endpoint_url=aws["AWS_ENDPOINT_URL"],
            region_name=aws["AWS_DEFAULT_REGION"],
            aws_access_key_id=aws["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=aws["AWS_SECRET_ACCESS_KEY"],
        )
        world = cls(root, pg15, pg17, s3, f"runbook-{uuid.uuid4().hex[:12]}", env)
        try:
            world._set_up()
            yield world
        finally:
            world._tear_down()

    def _set_up(self) -> None:
        for host in HOSTS.values():
            (self.root / host).mkdir()
        self.key.parent.mkdir(mode=0o700)
        self.textfile.mkdir()
        pgpass = self.root / "pgpass"
        pgpass.write_text(
            "".join(
                f"127.0.0.1:{c.port}:*:{user}:{PASSWORD}\n"
                for c in (self.pg15, self.pg17)
                for user in ("app", "postgres")
            )
        )
        pgpass.chmod(0o600)
        self.s3.create_bucket(Bucket=self.bucket)
        self._drop_databases()
        for cluster in (self.pg15, self.pg17):  # db1 and db2 both have the backup role; only db1 has casino_owner
            cluster.psql(_ROLE.format("app LOGIN"))
            cluster.psql(f"ALTER ROLE app PASSWORD {quote_literal(PASSWORD)}; GRANT pg_read_all_data TO app")
        self.pg15.psql(_ROLE.format("casino_owner"))
        self.pg15.psql("CREATE DATABASE casino OWNER casino_owner TEMPLATE template0")
        self.pg15.psql(CASINO_SQL, db="casino")
        with sqlite3.connect(self.root / HOSTS["a dev machine"] / "app.db") as conn:
            conn.executescript((REPO / "examples" / "test_app.sql").read_text())
        conn.close()

    def _drop_databases(self) -> None:
        for cluster in (self.pg15, self.pg17):
            for name in cluster.psql("SELECT datname FROM pg_database WHERE datname LIKE 'casino%'").split():
                cluster.drop_db(name)

    def _tear_down(self) -> None:
        with suppress(ClusterError):
            self._drop_databases()
        for cluster, roles in ((self.pg15, ("app", "casino_owner")), (self.pg17, ("app",))):
            for role in roles:
                with suppress(ClusterError):
                    cluster.psql(f"DROP ROLE IF EXISTS {quote_ident(role)}")
        with suppress(Exception):
            for key in self._keys():
                self.s3.delete_object(Bucket=self.bucket, Key=key)
            self.s3.delete_bucket(Bucket=self.bucket)

    # -- facts the substitutions need --------------------------------------------------------------------
    @property
    def key(self) -> Path:
        return self.root / "secure" / "age-key.txt"

    @property
    def textfile(self) -> Path:
        return self.root / "textfile"

    def host_dir(self, host: str) -> Path:
        return self.root / HOSTS[host]

    def recipient(self) -> str:
        out = subprocess.run(["age-keygen", "-y", str(self.key)], capture_output=True, text=True, check=True)
        return out.stdout.strip()

    def newest(self, host: str) -> str:
        """The newest complete casino backup in backup1's own store, or, for every other host, in the bucket."""
        if host == "backup1":
            names = [p.name for p in (self.host_dir(host) / "backups" / "casino").glob("casino_*.json")]
        else:
            names = [k.rsplit("/", 1)[1] for k in self._keys() if k.endswith(".json")]
        stems = [m.group(0) for name in names if (m := BACKUP_STEM.match(name))]
        assert stems, f"no casino backup yet on {host}"
        return max(stems)

    def _keys(self) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def newest_object(self, suffix: str = "") -> str:
        return f"casino/casino/{self.newest('ops1')}.sql.gz.age{suffix}"

    def substitute(self, text: str, host: str) -> str:
        for placeholder, value in SUBSTITUTIONS.items():
            if placeholder in text:
                text = text.replace(placeholder, value(self, host))
        return text

    def source_url(self) -> str:
        return self.substitute("postgresql://app@db1:5432/casino", "backup1")

    # -- running -----------------------------------------------------------------------------------------
    def write(self, doc: DocFile) -> None:
        path = self.host_dir(doc.host) / doc.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.substitute(doc.text, doc.host))

    def run(self, command: Command, fault: Fault) -> subprocess.CompletedProcess[str]:
        text = self.substitute(command.text, command.host)
        how: dict[str, Any] = {
            "cwd": self.host_dir(command.host),
            "env": {**self.env, **fault.env},
            "capture_output": True,
            "text": True,
            "timeout": 300,
            "preexec_fn": fault.preexec,
        }
        if command.is_dbkeeper:
            return subprocess.run([sys.executable, "-m", "dbkeeper", *shlex.split(text)[1:]], **how)
        return subprocess.run(text, shell=True, **how)

    def dbkeeper(self, host: str, *argv: str) -> None:
        """A dbkeeper run the runbook does not show (setting up a fault); it must succeed."""
        result = subprocess.run(
            [sys.executable, "-m", "dbkeeper", *argv],
            cwd=self.host_dir(host),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr


# -- the failures of the error table, for real --------------------------------------------------------------


@contextmanager
def no_fault(world: World) -> Iterator[Fault]:
    yield Fault()


@contextmanager
def wrong_password(world: World) -> Iterator[Fault]:
    yield Fault(env={"PGPASSWORD": "not-the-password"})  # PGPASSWORD wins over ~/.pgpass


@contextmanager
def no_password(world: World) -> Iterator[Fault]:
    yield Fault(env={"PGPASSFILE": str(world.root / "no-such-pgpass")})


def _small_files() -> None:
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG, as on a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))


@contextmanager
def disk_full(world: World) -> Iterator[Fault]:
    yield Fault(preexec=_small_files)


@contextmanager
def lock_held(world: World) -> Iterator[Fault]:
    holder = hold_lock(world.source_url())
    try:
        yield Fault()
    finally:
        holder.kill()
        holder.wait()


@contextmanager
def _replaced_object(world: World, key: str, change: Callable[[bytes], bytes]) -> Iterator[None]:
    original = world.s3.get_object(Bucket=world.bucket, Key=key)["Body"].read()
    world.s3.put_object(Bucket=world.bucket, Key=key, Body=change(original), ServerSideEncryption="AES256")
    try:
        yield
    finally:
        world.s3.put_object(Bucket=world.bucket, Key=key, Body=original, ServerSideEncryption="AES256")


def _flip_a_byte(data: bytes) -> bytes:
    damaged = bytearray(data)
    damaged[len(damaged) // 2] ^= 0x01
    return bytes(damaged)


@contextmanager
def damaged_backup(world: World) -> Iterator[Fault]:
    with _replaced_object(world, world.newest_object(), _flip_a_byte):
        yield Fault()


@contextmanager
def rows_breaking_a_foreign_key(world: World) -> Iterator[Fault]:
    """A session loaded with triggers off left a game session of a player that does not exist; a nightly took it."""
    orphan = "SET session_replication_role = replica; INSERT INTO game_sessions VALUES (99999, 424242, 1, now())"
    world.pg15.psql(orphan, db="casino")
    world.dbkeeper("backup1", "backup", "casino")
    try:
        yield Fault()
    finally:
        world.pg15.psql("DELETE FROM game_sessions WHERE id = 99999", db="casino")


@contextmanager
def manifest_with_wrong_encoding(world: World) -> Iterator[Fault]:
    def latin1(data: bytes) -> bytes:
        doc = json.loads(data)
        assert doc["server_encoding"] == "UTF8"
        return json.dumps({**doc, "server_encoding": "LATIN1"}).encode()

    with _replaced_object(world, world.newest_object(".json"), latin1):
        yield Fault()


@contextmanager
def only_old_pg_dump(world: World) -> Iterator[Fault]:
    yield Fault(env={"PATH": "/usr/bin:/bin"})  # PostgreSQL 15's client only: 17's is elsewhere


FAULTS: dict[str, Callable[[World], AbstractContextManager[Fault]]] = {
    "wrong password": wrong_password,
    "no password found": no_password,
    "disk full": disk_full,
    "another backup running": lock_held,
    "damaged backup": damaged_backup,
    "foreign key violation": rows_breaking_a_foreign_key,
    "encoding": manifest_with_wrong_encoding,
    "server newer than pg_dump": only_old_pg_dump,
}
# The other rows need nothing: the command names a host, port or database that is not there, backup1 has no key,
# and db2 has no role casino_owner.


# -- checking -------------------------------------------------------------------------------------------------


def first_line_matches(expected: str, actual: str) -> bool:
    """The table's first line, with '…' standing for any text (libpq's detail, a pid, a time)."""
    return re.fullmatch(".*".join(re.escape(part) for part in expected.split("…")), actual) is not None


def problem(world: World, book: Runbook, command: Command, result: subprocess.CompletedProcess[str]) -> str | None:
    shown = f"line {command.number} ({command.host}): {command.text}"
    said = f"exit {result.returncode}\nstdout: {result.stdout[-2000:]}\nstderr: {result.stderr[-2000:]}"
    if result.returncode != command.exit_code:
        return f"{shown}\nexpected exit {command.exit_code}, got {said}"
    if "Traceback" in result.stderr:
        return f"{shown}\na traceback: {said}"
    for prefix, wanted in OUTPUT.items():
        if command.text.startswith(prefix) and wanted not in result.stdout:
            return f"{shown}\nexpected {wanted!r} in its output, got {said}"
    if command.case is None:
        return None
    expected = world.substitute(book.rows[command.case].first_line, command.host)
    lines = result.stderr.splitlines()
    if not lines or not first_line_matches(expected, lines[0]):
        return f"{shown}\nexpected the first line\n  {expected}\ngot {said}"
    if len(lines) < 2 or not lines[1].startswith("  Try: "):
        return f"{shown}\nexpected a '  Try: ' line after the first, got {said}"
    return None


# -- the tests --------------------------------------------------------------------------------------------------


def test_the_runbook_is_well_formed() -> None:
    text = RUNBOOK.read_text()
    book = parse(text)
    commands = [s for s in book.steps if isinstance(s, Command)]
    shown = [c for c in commands if c.is_dbkeeper]
    assert len(shown) >= MIN_COMMANDS
    assert [c.number for c in shown] == dbkeeper_lines(text), "the parser missed a dbkeeper line"

    not_run = [c for c in commands if c.not_run is not None]
    for c in not_run:
        assert c.not_run, f"line {c.number}: '# not run in tests:' needs a reason"
    assert len(not_run) <= MAX_NOT_RUN, [c.text for c in not_run]

    shown_cases = {c.case for c in commands if c.case}
    assert shown_cases == set(book.rows), "every row of the error table has an example, every example a row"
    for c in commands:
        if c.case:
            assert book.rows[c.case].exit_code == c.exit_code, f"line {c.number}: exit code differs from the table"
    assert set(FAULTS) <= set(book.rows)

    for prefix in SHELL_LINES:
        assert any(c.text.startswith(prefix) for c in commands), f"no line starting {prefix!r} any more"
    files = {(f.host, f.path) for f in book.steps if isinstance(f, DocFile)}
    assert {("backup1", "dbkeeper.toml"), ("ops1", "dbkeeper.toml"), ("ops1", "drill/smoke.sql")} <= files
    for placeholder in SUBSTITUTIONS:
        assert placeholder in text, f"{placeholder} is no longer in the runbook: drop it from SUBSTITUTIONS"


def test_every_command_in_the_runbook_runs(pg15: Cluster, pg17: Cluster, s3_server: MotoServer, tmp_path: Path) -> None:
    book = parse(RUNBOOK.read_text())
    ran: list[Command] = []
    not_run: list[Command] = []
    problems: list[str] = []
    with World.create(tmp_path, pg15, pg17, s3_server) as world:
        for step in book.steps:
            if isinstance(step, DocFile):
                world.write(step)
                continue
            if step.not_run is not None:
                not_run.append(step)
                continue
            with FAULTS.get(step.case or "", no_fault)(world) as fault:
                result = world.run(step, fault)
            ran.append(step)
            if found := problem(world, book, step, result):
                problems.append(found)
        drill_log = (world.host_dir("ops1") / "docs" / "DR_DRILL_LOG.md").read_text()

    assert not problems, f"{len(problems)} of {len(ran)} runbook commands misbehaved:\n\n" + "\n\n".join(problems)
    commands = [s for s in book.steps if isinstance(s, Command)]
    # Every line was run, or says why not: nothing was skipped silently.
    assert sorted(ran + not_run, key=lambda c: c.number) == commands
    assert len([c for c in ran if c.is_dbkeeper]) >= MIN_COMMANDS - MAX_NOT_RUN
    assert "| PASS |" in drill_log and "| FAIL |" not in drill_log
