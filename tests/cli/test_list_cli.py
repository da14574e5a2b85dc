"""list: a header and one row per backup (source, age, size, state); what listing can see is marked, what it cannot
is said; a store that does not exist is an error, not "no backups". And verify/restore of a backup that is not
there is a usage error (exit 2), not damage (exit 3)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dbkeeper.repo import names
from helpers import backup_at, cli, make_sqlite_app, run_dbkeeper


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    make_sqlite_app(tmp_path / "app.db", users=30, sessions=3)
    return tmp_path / "backups"


def test_header_source_age_size_and_state_columns(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=5)
    name = backup_at("app.db", store, when, name="app")
    code, out, _ = cli(capsys, "list")
    header, row, note = out.splitlines()
    assert code == 0 and header.split() == ["BACKUP", "SOURCE", "CREATED", "AGE", "SIZE", "ROWS", "STATE"]
    cells = re.split(r"\s{2,}", row)
    assert cells[:3] == [name, "app", when.strftime("%Y-%m-%dT%H:%M:%SZ")]
    assert cells[3] in ("5h", "5h 0m") and re.fullmatch(r"\d+(\.\d)? k?B", cells[4]) and cells[5] == "33"
    assert cells[6] == "size ok"  # never a bare "ok": the data was not read
    assert header.index("SOURCE") == row.index("app ")  # columns line up under the header
    assert "not read" in note and "dbkeeper verify" in note


def test_damage_listing_can_see_is_marked_and_a_flipped_byte_is_left_to_verify(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    sets = [backup_at("app.db", store, now - timedelta(hours=h), name="app") for h in (4, 3, 2, 1)]
    longer, no_sidecar, no_manifest, flipped = (store / s for s in sets)
    longer.write_bytes(longer.read_bytes() + b"x")
    (store / names.sidecar(no_sidecar.relative_to(store).as_posix())).unlink()
    (store / names.manifest(no_manifest.relative_to(store).as_posix())).unlink()
    data = flipped.read_bytes()
    flipped.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    code, out, _ = cli(capsys, "list")
    states = [re.split(r"\s{2,}", line)[-1] for line in out.splitlines()[1:5]]
    assert code == 0 and states == [
        f"BROKEN: size is {len(data) + 1} bytes, the manifest says {len(data)}",
        "BROKEN: the .sha256 sidecar is missing",
        "INCOMPLETE: no manifest: the backup never completed",
        "size ok",
    ]
    code, out, _ = cli(capsys, "verify", sets[3])
    assert code == 3 and "FAILED  checksum" in out  # the full check finds what listing cannot


def test_signature_state_with_a_verify_key(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "key", "generate", "k.key")[0] == 0
    public = cli(capsys, "key", "public", "k.key")[1].strip().split()[-1]
    assert cli(capsys, "backup", "app.db", "--name", "app", "--sign-key", "k.key")[0] == 0
    assert cli(capsys, "backup", "app.db", "--name", "app")[0] == 0
    code, out, _ = cli(capsys, "list", "--verify-key", public)
    states = [re.split(r"\s{2,}", line)[-1] for line in out.splitlines()[1:3]]
    assert code == 0 and states == ["size ok, signed", "BROKEN: unsigned"]


def test_a_store_that_does_not_exist_is_an_error_an_empty_one_is_not(tmp_path: Path) -> None:
    for argv in (["list"], ["prune", "--keep-last", "1"], ["drill"]):
        done = run_dbkeeper(*argv, "--store", str(tmp_path / "typo"), cwd=tmp_path)
        assert done.returncode == 2 and done.stdout == "", (argv, done.stdout, done.stderr)
        assert done.stderr.splitlines() == [
            f"dbkeeper: error: store {tmp_path / 'typo'} does not exist",
            "  Try: check --store (or $DBKEEPER_STORE, the config's store); `dbkeeper backup` creates it",
        ], argv
    (tmp_path / "empty").mkdir()
    done = run_dbkeeper("list", "--store", str(tmp_path / "empty"), cwd=tmp_path)
    assert done.returncode == 0 and done.stdout == f"no backups in {tmp_path / 'empty'}\n"
    assert not (tmp_path / "typo").exists()  # asking created nothing


def test_a_backup_that_is_not_there_is_exit_2_not_damage(store: Path, tmp_path: Path) -> None:
    done = run_dbkeeper("verify", "nonexist", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"dbkeeper: error: no backup nonexist in {store.name} (which does not exist)\n")
    name = backup_at("app.db", store, datetime.now(UTC).replace(microsecond=0), name="app")
    for argv in (
        ["verify", "app/app_20000101_000000.db.gz"],
        ["restore", "app/app_20000101_000000.db.gz", "sqlite:///r.db"],
        ["copy", "app/app_20000101_000000.db.gz", "--to", "elsewhere"],
        ["verify", "latest", "--database", "nosuchdb"],
    ):
        done = run_dbkeeper(*argv, "--json", cwd=tmp_path)
        doc = json.loads(done.stdout)
        assert done.returncode == 2 and doc["exit_code"] == 2 and "Traceback" not in done.stderr, argv
    # a set missing a part is damage: exit 3
    (store / names.manifest(name)).unlink()
    assert run_dbkeeper("verify", name, cwd=tmp_path).returncode == 3
    assert not (tmp_path / "r.db").exists() and not (tmp_path / "elsewhere").exists()
