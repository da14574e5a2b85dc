"""Encryption end to end through the CLI, checked with the stock age, gunzip, zcat and sha256sum.

Keys come from the stock ``age-keygen``; what dbkeeper writes must decrypt with the stock ``age -d``.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from conftest import make_age_key
from helpers import backup_files, cli, cli_json, make_sqlite_app, run_dbkeeper
from history import flip_byte
from pg import Cluster, PgDb


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for var in ("DBKEEPER_STORE", "DBKEEPER_CONFIG", "DBKEEPER_AGE_IDENTITY"):
        monkeypatch.delenv(var, raising=False)
    return make_sqlite_app(tmp_path / "app.db", users=300, sessions=200)


@pytest.fixture
def keys(app: Path) -> list[tuple[Path, str]]:
    """Two age identities made by age-keygen: (identity file, recipient)."""
    return [make_age_key(app.parent / f"key{i}.txt") for i in (1, 2)]


def stock_decrypt(key: Path, path: Path, unzip: str = "gunzip") -> bytes:
    """``age -d -i KEY FILE | gunzip``, as a person would type it."""
    age = subprocess.Popen(["age", "-d", "-i", str(key), str(path)], stdout=subprocess.PIPE)
    out = subprocess.run([unzip], stdin=age.stdout, capture_output=True, check=True).stdout
    assert age.wait() == 0
    return out


def encrypted_backup(capsys: pytest.CaptureFixture[str], *argv: str) -> Path:
    code, out, err = cli(capsys, "backup", *argv, "--json")
    assert code == 0, err
    doc = json.loads(out)["backups"][0]
    return Path(doc["location"])


def test_sqlite_backup_decrypts_with_stock_age_and_checksums_cover_the_stored_bytes(
    app: Path, keys: list[tuple[Path, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    (key, recipient), _ = keys
    path = encrypted_backup(capsys, "sqlite:///app.db", "--encrypt-to", recipient)
    assert path.name.startswith("app_") and path.name.endswith(".db.gz.age")
    assert backup_files(path.parent) == [path.name, f"{path.name}.json", f"{path.name}.sha256"]
    assert not path.read_bytes().startswith(b"\x1f\x8b")  # not gzip in the clear
    manifest = json.loads(Path(f"{path}.json").read_text())
    assert manifest["encryption"] == {"format": "age", "recipients": [recipient]}
    ok = subprocess.run(["sha256sum", "-c", f"{path.name}.sha256"], cwd=path.parent, capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.strip() == f"{path.name}: OK"

    restored = app.parent / "by-hand.db"
    restored.write_bytes(stock_decrypt(key, path))
    with sqlite3.connect(restored) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (300,)


def test_verify_and_restore_without_an_identity_are_usage_errors(
    app: Path, keys: list[tuple[Path, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    encrypted_backup(capsys, "sqlite:///app.db", "--encrypt-to", keys[0][1])
    for argv in (["verify", "latest"], ["restore", "latest", "sqlite:///restored.db"]):
        done = run_dbkeeper(*argv)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.splitlines()
        assert lines[0].startswith("dbkeeper: error: ") and "is encrypted" in lines[0]
        assert lines[1].startswith("  Try: ") and "--identity" in lines[1] and len(lines) == 2
    assert not (app.parent / "restored.db").exists()


def test_the_wrong_identity_is_a_clear_error_and_restores_nothing(
    app: Path, keys: list[tuple[Path, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    (_, recipient), (wrong, _) = keys
    encrypted_backup(capsys, "sqlite:///app.db", "--encrypt-to", recipient)

    done = run_dbkeeper("verify", "latest", "--identity", str(wrong))
    assert done.returncode == 3 and done.stderr == ""
    last = done.stdout.splitlines()[-1]
    assert "FAILED: decrypt:" in last and "not for this identity" in last

    done = run_dbkeeper("restore", "latest", "sqlite:///restored.db", "--identity", str(wrong))
    assert done.returncode == 3 and "Traceback" not in done.stderr
    error, hint = done.stderr.splitlines()
    assert error.startswith("dbkeeper: error: ") and "nothing was restored" in error and "decrypt" in error
    assert hint.startswith("  Try: ") and "--identity" in hint
    assert not (app.parent / "restored.db").exists()
    assert [p for p in app.parent.iterdir() if "dbkeeper-tmp" in p.name] == []


def test_the_right_identity_verifies_and_restores(
    app: Path, keys: list[tuple[Path, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    (key, recipient), _ = keys
    encrypted_backup(capsys, "sqlite:///app.db", "--encrypt-to", recipient)
    code, out, _ = cli(capsys, "verify", "latest", "--identity", str(key))
    assert code == 0 and out.splitlines()[-1].endswith(": verified")
    assert "OK      row counts" in out
    code, doc = cli_json(capsys, "restore", "latest", "sqlite:///restored.db", "--identity", str(key))
    assert code == 0 and doc["rows"] == 500
    with sqlite3.connect(app.parent / "restored.db") as conn:
        assert conn.execute("SELECT count(*) FROM game_sessions").fetchone() == (200,)


def test_a_damaged_encrypted_backup_is_refused(
    app: Path, keys: list[tuple[Path, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    (key, recipient), _ = keys
    path = encrypted_backup(capsys, "sqlite:///app.db", "--encrypt-to", recipient)
    flip_byte(path)
    code, out, _ = cli(capsys, "verify", "latest", "--identity", str(key))
    assert code == 3 and "FAILED  checksum" in out
    code, _, err = cli(capsys, "restore", "latest", "sqlite:///restored.db", "--identity", str(key))
    assert code == 3 and "nothing was restored" in err
    assert not (app.parent / "restored.db").exists()


def test_several_recipients_each_key_decrypts(
    app: Path, keys: list[tuple[Path, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    (key1, r1), (key2, r2) = keys
    path = encrypted_backup(capsys, "sqlite:///app.db", "--encrypt-to", r1, "--encrypt-to", r2)
    assert json.loads(Path(f"{path}.json").read_text())["encryption"]["recipients"] == [r1, r2]
    for key in (key1, key2):
        assert stock_decrypt(key, path).startswith(b"SQLite format 3\x00")
        assert cli(capsys, "verify", "latest", "--identity", str(key))[0] == 0
    both = app.parent / "both.txt"  # an identity file with several keys, the second one matching
    third, _ = make_age_key(app.parent / "key3.txt")
    both.write_text(third.read_text() + key2.read_text())
    assert cli(capsys, "verify", "latest", "--identity", str(both))[0] == 0


def test_config_recipients_and_identity_and_the_environment(
    app: Path, keys: list[tuple[Path, str]], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (key1, r1), (key2, r2) = keys
    config = app.parent / "dbkeeper.toml"
    config.write_text(f'[encryption]\nrecipients = ["{r1}"]\nidentity = "{key1.name}"\n')
    path = encrypted_backup(capsys, "sqlite:///app.db")
    assert path.name.endswith(".db.gz.age")
    assert cli(capsys, "verify", "latest")[0] == 0  # the config's identity
    assert cli(capsys, "restore", "latest", "sqlite:///r1.db")[0] == 0

    config.write_text(f'[encryption]\nrecipients = "{r2}"\n')  # a single string is allowed too
    encrypted_backup(capsys, "sqlite:///app.db", "--store", "other")
    assert cli(capsys, "verify", "latest", "--store", "other")[0] == 2  # no identity anywhere
    monkeypatch.setenv("DBKEEPER_AGE_IDENTITY", str(key2))
    assert cli(capsys, "verify", "latest", "--store", "other")[0] == 0
    assert cli(capsys, "restore", "latest", "sqlite:///r2.db", "--store", "other")[0] == 0
    assert cli(capsys, "verify", "latest", "--store", "other", "--identity", str(key1))[0] == 3  # the flag wins

    assert cli(capsys, "backup", "sqlite:///app.db", "--store", "other", "--encrypt-to", r1)[0] == 0  # flag wins
    assert cli(capsys, "verify", "latest", "--store", "other", "--identity", str(key1))[0] == 0


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("recipients = 5", "encryption.recipients"),
        ("recipients = [5]", "encryption.recipients"),
        ("identity = 5", "encryption.identity"),
    ],
)
def test_bad_encryption_config_is_a_config_error(
    app: Path, capsys: pytest.CaptureFixture[str], table: str, message: str
) -> None:
    (app.parent / "dbkeeper.toml").write_text(f"[encryption]\n{table}\n")
    code, _, err = cli(capsys, "backup", "sqlite:///app.db")
    assert code == 2 and message in err
    assert not (app.parent / "backups").exists()


@pytest.mark.parametrize("problem", ["missing", "public key only", "malformed"])
def test_a_bad_identity_file_is_a_usage_error(
    app: Path, keys: list[tuple[Path, str]], capsys: pytest.CaptureFixture[str], problem: str
) -> None:
    (_, recipient), _ = keys
    encrypted_backup(capsys, "sqlite:///app.db", "--encrypt-to", recipient)
    bad = app.parent / "bad.txt"
    if problem == "public key only":
        bad.write_text(recipient + "\n")
    elif problem == "malformed":
        bad.write_text("AGE-SECRET-KEY-1NOTAKEY\n")
    code, _, err = cli(capsys, "verify", "latest", "--identity", str(bad))
    assert code == 2 and err.startswith("dbkeeper: error: ") and "bad.txt" in err


def test_a_bad_recipient_is_a_usage_error(app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "backup", "sqlite:///app.db", "--encrypt-to", "age1notarecipient")
    assert code == 2 and "not an age X25519 recipient" in err
    assert not (app.parent / "backups").exists() or backup_files(app.parent / "backups") == []


def test_postgres_backup_decrypts_with_stock_age_to_a_whole_plain_dump(
    pgdb: PgDb,
    pg15: Cluster,
    app: Path,
    keys: list[tuple[Path, str]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PGPASSWORD", pg15.env()["PGPASSWORD"])
    cluster, name = pgdb
    cluster.psql(
        "CREATE TABLE users (id int PRIMARY KEY, name text);"
        "INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 250) g;",
        db=name,
    )
    (key, recipient), (wrong, _) = keys
    path = encrypted_backup(capsys, pgdb.url, "--encrypt-to", recipient)
    assert path.name.endswith(".sql.gz.age")
    ok = subprocess.run(["sha256sum", "-c", f"{path.name}.sha256"], cwd=path.parent, capture_output=True)
    assert ok.returncode == 0
    sql = stock_decrypt(key, path, unzip="zcat").decode()
    assert sql.startswith("--")
    assert "-- PostgreSQL database dump complete" in sql
    assert "COPY public.users (id, name) FROM stdin;" in sql

    assert cli(capsys, "verify", "latest", "--identity", str(wrong))[0] == 3
    target = f"{name}_restored"
    code, _, err = cli(capsys, "restore", "latest", cluster.url(target), "--identity", str(wrong))
    assert code == 3 and "nothing was restored" in err
    assert cluster.psql(f"SELECT count(*) FROM pg_database WHERE datname = '{target}'") == "0"

    assert cli(capsys, "verify", "latest", "--identity", str(key))[0] == 0
    code, doc = cli_json(capsys, "restore", "latest", cluster.url(target), "--identity", str(key))
    try:
        assert code == 0 and doc["rows"] == 250
        assert cluster.psql("SELECT count(*), max(name) FROM users", db=target) == "250|user 99"
    finally:
        cluster.drop_db(target)
