"""Signed backups through the real CLI: keys, a signed backup verified and restored with the verify key, and what
whoever can write the store could plant (an unsigned set, a forged one, one signed by another key) refused."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import sqlite3
from pathlib import Path

import pytest

from dbkeeper.repo import names
from helpers import backup_files, cli, cli_json, make_sqlite_app, run_dbkeeper


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for var in ("DBKEEPER_STORE", "DBKEEPER_CONFIG", "DBKEEPER_VERIFY_KEY"):
        monkeypatch.delenv(var, raising=False)
    return make_sqlite_app(tmp_path / "test_app.db", users=30, sessions=20)


def keygen(capsys: pytest.CaptureFixture[str], path: str) -> str:
    code, out, err = cli(capsys, "key", "generate", path)
    assert code == 0, err
    return out.strip()


def backup(capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    code, doc = cli_json(capsys, "backup", "sqlite:///test_app.db", *extra)
    assert code == 0, doc
    return str(doc["backups"][0]["name"])


def listed(capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, tuple[str, str | None]]:
    code, doc = cli_json(capsys, "list", *extra)
    assert code == 0
    return {b["name"]: (b["status"], b["problem"]) for b in doc["backups"]}


def test_key_generate_and_public_round_trip_and_never_overwrite(app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    public = keygen(capsys, "sign.key")
    assert public.startswith("dbkeeper-ed25519:") and "\n" not in public
    key = app.parent / "sign.key"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert key.read_text().startswith("dbkeeper-ed25519-secret:")
    code, out, _ = cli(capsys, "key", "public", "sign.key")
    assert code == 0 and out.strip() == public
    code, doc = cli_json(capsys, "key", "public", "sign.key")
    assert code == 0 and doc["verify_key"] == public
    before = key.read_bytes()
    done = run_dbkeeper("key", "generate", "sign.key")
    assert done.returncode == 2 and "already exists" in done.stderr and "Traceback" not in done.stderr
    assert key.read_bytes() == before
    code, doc = cli_json(capsys, "key", "generate", "other.key")
    assert code == 0 and doc["verify_key"] != public


def test_the_wrong_kind_of_key_text_is_a_one_line_error(app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    public = keygen(capsys, "sign.key")
    backup(capsys, "--sign-key", "sign.key")
    (app.parent / "public.txt").write_text(public + "\n")
    secret = (app.parent / "sign.key").read_text().strip()
    for argv in (
        ("backup", "sqlite:///test_app.db", "--sign-key", "public.txt"),  # a verify key where the secret goes
        ("backup", "sqlite:///test_app.db", "--sign-key", "missing.key"),
        ("backup", "sqlite:///test_app.db", "--sign-key", "test_app.db"),  # not a key at all
        ("verify", "latest", "--verify-key", secret),  # the secret where the verify key goes
        ("verify", "latest", "--verify-key", "dbkeeper-ed25519:AAAA"),
        ("list", "--verify-key", "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq"),
        ("key", "public", "public.txt"),
    ):
        done = run_dbkeeper(*argv, cwd=app.parent)
        assert done.returncode == 2, (argv, done.stderr)
        lines = done.stderr.splitlines()
        assert len(lines) == 2 and lines[0].startswith("dbkeeper: error: ") and lines[1].startswith("  Try: "), argv
        assert secret.split(":")[1] not in done.stderr  # never echoes a secret
    (app.parent / "dbkeeper.toml").write_text('[signing]\nverify_key = "nope"\n')
    done = run_dbkeeper("list", cwd=app.parent)
    assert done.returncode == 2 and "signing.verify_key" in done.stderr and "Traceback" not in done.stderr
    assert len(backup_files(app.parent / "backups")) == 4  # the failed runs wrote nothing


def test_a_signed_backup_verifies_and_restores_with_the_verify_key(
    app: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    public = keygen(capsys, "sign.key")
    name = backup(capsys, "--sign-key", "sign.key")
    store = app.parent / "backups"
    assert backup_files(store) == sorted([name, name + ".json", name + ".json.sig", name + ".sha256"])
    assert len((store / (name + ".json.sig")).read_bytes()) == 64
    assert listed(capsys, "--verify-key", public) == {name: ("ok", None)}
    code, doc = cli_json(capsys, "verify", "latest", "--verify-key", public)
    assert code == 0 and {"name": "signature", "ok": True, "detail": "signed by the verify key"} in doc["checks"]
    done = run_dbkeeper(
        "restore", "latest", "sqlite:///restored.db", env={"DBKEEPER_VERIFY_KEY": public}, cwd=app.parent
    )
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(app.parent / "restored.db") as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (30,)
    # Without a verify key nothing changes: the signature is shown, not required.
    code, doc = cli_json(capsys, "list")
    assert code == 0 and doc["backups"][0]["signed"] is True
    code, doc = cli_json(capsys, "verify", "latest")
    assert code == 0 and "signature" not in [c["name"] for c in doc["checks"]]


def test_config_signs_and_requires_signatures(app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    public = keygen(capsys, "sign.key")
    unsigned = backup(capsys)
    (app.parent / "dbkeeper.toml").write_text(f'[signing]\nkey = "sign.key"\nverify_key = "{public}"\n')
    signed = backup(capsys)
    assert listed(capsys) == {unsigned: ("broken", "unsigned"), signed: ("ok", None)}
    code, doc = cli_json(capsys, "verify", "latest")
    assert code == 0 and doc["backup"] == signed


def test_an_unsigned_backup_is_broken_with_a_verify_key(app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    public = keygen(capsys, "sign.key")
    old = backup(capsys, "--sign-key", "sign.key")
    good = backup(capsys, "--sign-key", "sign.key")
    planted = backup(capsys)  # unsigned, and the newest
    assert listed(capsys, "--verify-key", public) == {
        old: ("ok", None),
        good: ("ok", None),
        planted: ("broken", "unsigned"),
    }
    code, out, _ = cli(capsys, "list", "--verify-key", public)
    assert "BROKEN: unsigned" in out
    done = run_dbkeeper("verify", f"backups/{planted}", "--verify-key", public, cwd=app.parent)
    assert done.returncode == 3 and "FAILED  signature   unsigned" in done.stdout
    # latest skips it; naming it is refused, and the target is left untouched
    code, doc = cli_json(capsys, "verify", "latest", "--verify-key", public)
    assert code == 0 and doc["backup"] == good
    with sqlite3.connect(app.parent / "target.db") as conn:
        conn.execute("CREATE TABLE mine (x)")
    before = (app.parent / "target.db").read_bytes()
    done = run_dbkeeper(
        "restore", planted, "sqlite:///target.db", "--drop-existing", "--verify-key", public, cwd=app.parent
    )
    assert done.returncode == 3 and "unsigned" in done.stderr and "nothing was restored" in done.stderr
    assert (app.parent / "target.db").read_bytes() == before
    # prune neither counts it nor deletes it
    code, doc = cli_json(capsys, "prune", "--keep-last", "1", "--verify-key", public)
    assert code == 0, doc
    assert listed(capsys, "--verify-key", public) == {good: ("ok", None), planted: ("broken", "unsigned")}


def forge(store: Path, name: str) -> None:
    """What whoever can write the store can do: new data, its .sha256 and its manifest recomputed to match."""
    data = store / name
    raw = gzip.decompress(data.read_bytes())
    with open(data.parent / "forged.db", "wb") as f:
        f.write(raw)
    with sqlite3.connect(data.parent / "forged.db") as conn:
        conn.execute("UPDATE users SET name = 'mallory'")
    forged = gzip.compress((data.parent / "forged.db").read_bytes())
    os.unlink(data.parent / "forged.db")
    digest = hashlib.sha256(forged).hexdigest()
    for part in (data, store / names.sidecar(name), store / names.manifest(name)):
        os.chmod(part, 0o600)
    data.write_bytes(forged)
    (store / names.sidecar(name)).write_bytes(names.sha256_line(digest, name))
    doc = json.loads((store / names.manifest(name)).read_text())
    doc.update(sha256=digest, size_bytes=len(forged))
    (store / names.manifest(name)).write_text(json.dumps(doc, indent=2) + "\n")


def test_a_forged_backup_is_refused(app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    public = keygen(capsys, "sign.key")
    name = backup(capsys, "--sign-key", "sign.key")
    forge(app.parent / "backups", name)
    assert cli(capsys, "verify", "latest")[0] == 0  # whole and self-consistent: only the signature tells
    assert listed(capsys, "--verify-key", public) == {name: ("broken", "bad signature")}
    done = run_dbkeeper("verify", f"backups/{name}", "--verify-key", public, cwd=app.parent)
    assert done.returncode == 3 and "FAILED  signature   bad signature" in done.stdout
    done = run_dbkeeper("restore", f"backups/{name}", "sqlite:///r.db", "--verify-key", public, cwd=app.parent)
    assert done.returncode == 3 and "bad signature" in done.stderr
    assert not (app.parent / "r.db").exists()
    done = run_dbkeeper("restore", "latest", "sqlite:///r.db", "--verify-key", public, cwd=app.parent)
    assert done.returncode != 0 and "no complete backup" in done.stderr
    assert not (app.parent / "r.db").exists()


def test_a_signature_by_another_key_is_refused(app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    public = keygen(capsys, "sign.key")
    keygen(capsys, "intruder.key")
    name = backup(capsys, "--sign-key", "intruder.key")
    assert listed(capsys, "--verify-key", public) == {name: ("broken", "bad signature")}
    done = run_dbkeeper("verify", f"backups/{name}", "--verify-key", public, cwd=app.parent)
    assert done.returncode == 3
    # a signature that is not even 64 bytes is just as bad
    sig = app.parent / "backups" / names.signature(name)
    os.chmod(sig, 0o600)
    sig.write_bytes(b"x" * 10)
    assert listed(capsys, "--verify-key", public) == {name: ("broken", "bad signature")}


def test_copy_carries_the_signature(app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    public = keygen(capsys, "sign.key")
    name = backup(capsys, "--sign-key", "sign.key")
    code, _out, err = cli(capsys, "copy", "latest", "--to", "offsite", "--verify-key", public)
    assert code == 0, err
    src, dest = app.parent / "backups", app.parent / "offsite"
    assert (dest / names.signature(name)).read_bytes() == (src / names.signature(name)).read_bytes()
    code, doc = cli_json(capsys, "verify", "latest", "--store", "offsite", "--verify-key", public)
    assert code == 0 and any(c["name"] == "signature" and c["ok"] for c in doc["checks"])
    # a host that requires signatures does not copy an unsigned set; without the key, the copy is unsigned too
    unsigned = backup(capsys)
    done = run_dbkeeper("copy", f"backups/{unsigned}", "--to", "offsite2", "--verify-key", public, cwd=app.parent)
    assert done.returncode == 3 and "unsigned" in done.stderr
    assert backup_files(app.parent / "offsite2") == []
    code, _out, err = cli(capsys, "copy", f"backups/{unsigned}", "--to", "offsite2")
    assert code == 0, err
    assert listed(capsys, "--store", "offsite2", "--verify-key", public) == {unsigned: ("broken", "unsigned")}


def test_copy_to_s3_carries_the_signature(app: Path, s3_store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    public = keygen(capsys, "sign.key")
    name = backup(capsys, "--sign-key", "sign.key")
    code, _out, err = cli(capsys, "copy", "latest", "--to", s3_store_url)
    assert code == 0, err
    code, doc = cli_json(capsys, "verify", "latest", "--store", s3_store_url, "--verify-key", public)
    assert code == 0 and any(c["name"] == "signature" and c["ok"] for c in doc["checks"])
    assert listed(capsys, "--store", s3_store_url, "--verify-key", public) == {name: ("ok", None)}
    # and back from S3 to a new directory
    code, _out, err = cli(capsys, "copy", f"{s3_store_url}/{name}", "--to", "back")
    assert code == 0, err
    assert listed(capsys, "--store", "back", "--verify-key", public) == {name: ("ok", None)}


def test_backup_to_s3_signed_and_an_unsigned_one_refused(
    app: Path, s3_store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    public = keygen(capsys, "sign.key")
    signed = backup(capsys, "--store", s3_store_url, "--sign-key", "sign.key")
    unsigned = backup(capsys, "--store", s3_store_url)
    assert listed(capsys, "--store", s3_store_url, "--verify-key", public) == {
        signed: ("ok", None),
        unsigned: ("broken", "unsigned"),
    }
    code, doc = cli_json(capsys, "restore", "latest", "sqlite:///r.db", "--store", s3_store_url, "--verify-key", public)
    assert code == 0 and doc["backup"] == signed


def test_drill_with_a_verify_key_uses_only_signed_backups(app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    public = keygen(capsys, "sign.key")
    backup(capsys)
    done = run_dbkeeper("drill", "--verify-key", public, cwd=app.parent)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert run_dbkeeper("drill", cwd=app.parent).returncode == 0  # without a key nothing changes
    signed = backup(capsys, "--sign-key", "sign.key")
    backup(capsys)  # a newer unsigned one: never the drill's
    code, doc = cli_json(capsys, "drill", "--verify-key", public)
    assert code == 0, doc
    assert signed in json.dumps(doc)


def test_copy_adds_the_signature_to_a_copy_that_lacks_it(app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    public = keygen(capsys, "sign.key")
    name = backup(capsys, "--sign-key", "sign.key")
    assert cli(capsys, "copy", "latest", "--to", "offsite")[0] == 0
    sig = app.parent / "offsite" / names.signature(name)
    sig.unlink()  # as a copy made by an older dbkeeper would be
    assert listed(capsys, "--store", "offsite", "--verify-key", public) == {name: ("broken", "unsigned")}
    code, out, err = cli(capsys, "copy", "latest", "--to", "offsite")
    assert code == 0, err
    assert listed(capsys, "--store", "offsite", "--verify-key", public) == {name: ("ok", None)}
    code, out, _ = cli(capsys, "copy", "latest", "--to", "offsite")
    assert code == 0 and out.startswith("already at")


def test_backup_copy_to_carries_the_signature_and_a_bad_env_key_is_named(
    app: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    public = keygen(capsys, "sign.key")
    name = backup(capsys, "--sign-key", "sign.key", "--copy-to", "offsite")
    assert listed(capsys, "--store", "offsite", "--verify-key", public) == {name: ("ok", None)}
    done = run_dbkeeper("verify", "latest", env={"DBKEEPER_VERIFY_KEY": "not-a-key"}, cwd=app.parent)
    assert done.returncode == 2 and "DBKEEPER_VERIFY_KEY" in done.stderr and "Traceback" not in done.stderr


def test_a_drill_record_is_signed_and_a_forged_pass_is_not_believed(
    app: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The drill host signs its record in the store; a monitoring host with the verify key (its own, empty drill
    log) believes it, and not a PASS planted by whoever can write the store: that one is counted, and status
    says so (WARNING)."""
    public = keygen(capsys, "sign.key")
    backup(capsys, "--sign-key", "sign.key", "--name", "app")
    code, doc = cli_json(capsys, "drill", "--sign-key", "sign.key", "--verify-key", public, "--log", "drills.md")
    assert code == 0, doc
    store = app.parent / "backups"
    [record] = [p for p in (store / "drills" / "app").iterdir() if p.suffix == ".json"]
    assert len(Path(str(record) + ".sig").read_bytes()) == 64
    elsewhere = ("--verify-key", public, "--drill-log", "other-host.md")
    code, doc = cli_json(capsys, "status", *elsewhere)
    assert code == 0 and doc["databases"][0]["last_drill"]["result"] == "PASS", doc
    assert doc["refused_drill_records"] == 0

    # A newer PASS planted unsigned (the genuine record's fields under a later date): not believed.
    forged = json.loads(record.read_bytes())
    forged["date"] = "2099-01-01T00:00:00Z"
    (store / "drills" / "app" / "20990101_000000-0badf00d.json").write_text(json.dumps(forged))
    code, doc = cli_json(capsys, "status", *elsewhere)
    assert code == 1 and doc["state"] == "WARNING" and doc["refused_drill_records"] == 1, doc
    assert doc["databases"][0]["last_drill"]["date"] != "2099-01-01T00:00:00Z"
    code, out, _err = cli(capsys, "status", *elsewhere)
    assert "1 drill record(s) not signed by the verify key, not believed" in out
    # Without a verify key, the store's records are believed as they are (nothing to check them with).
    code, doc = cli_json(capsys, "status", "--drill-log", "other-host.md")
    assert doc["refused_drill_records"] == 0
