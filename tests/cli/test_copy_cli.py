"""dbkeeper copy and backup --copy-to through the CLI, between real directories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dbkeeper.storage.local import LocalStore
from helpers import backup_files, cli, cli_json, make_sqlite_app, run_dbkeeper
from history import at, files, flip_byte, plant, real_backup, triples


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DBKEEPER_STORE", raising=False)
    monkeypatch.delenv("DBKEEPER_CONFIG", raising=False)
    return make_sqlite_app(tmp_path / "test_app.db", users=30, sessions=20)


@pytest.fixture
def backed_up(app: Path, capsys: pytest.CaptureFixture[str]) -> str:
    code, doc = cli_json(capsys, "backup", "sqlite:///test_app.db")
    assert code == 0
    return str(doc["backups"][0]["name"])


def test_copy_latest_to_two_stores_then_again(backed_up: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "copy", "latest", "--to", "off1", "--to", "off2")
    assert code == 0 and err == ""
    assert out.splitlines() == [f"copied to off1/{backed_up}", f"copied to off2/{backed_up}"]
    for d in ("off1", "off2"):
        assert backup_files(Path(d)) == triples(backed_up)
        assert cli(capsys, "verify", "latest", "--store", d)[0] == 0
    code, out, _ = cli(capsys, "copy", backed_up, "--to", "off1")
    assert code == 0 and out.strip() == f"already at off1/{backed_up}"


def test_copy_json_and_config_destinations(app: Path, backed_up: str, capsys: pytest.CaptureFixture[str]) -> None:
    (app.parent / "dbkeeper.toml").write_text('copy_to = ["offsite"]\n')
    code, doc = cli_json(capsys, "copy", f"backups/{backed_up}")
    assert code == 0 and doc["ok"] and doc["backup"] == backed_up
    assert [(c["destination"], c["status"]) for c in doc["copies"]] == [("offsite", "copied")]
    assert backup_files(app.parent / "offsite") == triples(backed_up)


def test_copy_without_a_destination_is_a_usage_error(backed_up: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "copy", "latest")
    assert code == 2 and "--to STORE" in err


def test_a_damaged_backup_is_not_copied(app: Path, backed_up: str) -> None:
    flip_byte(app.parent / "backups" / backed_up)
    done = run_dbkeeper("copy", "latest", "--to", "offsite")
    assert done.returncode == 3 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"dbkeeper: error: copy to offsite: {backed_up} does not match its manifest")
    assert "Try: run `dbkeeper verify`" in done.stderr
    assert files(LocalStore(app.parent / "offsite")) == []


def test_an_incomplete_backup_is_refused(app: Path, backed_up: str, capsys: pytest.CaptureFixture[str]) -> None:
    (app.parent / "backups" / f"{backed_up}.json").unlink()
    code, _, err = cli(capsys, "copy", f"backups/{backed_up}", "--to", "offsite")
    assert code == 3 and "incomplete" in err
    assert not (app.parent / "offsite").exists()


def test_backup_copy_to(app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "backup", "sqlite:///test_app.db", "--copy-to", "off1", "--copy-to", "off2")
    assert code == 0, err
    name = backup_files(app.parent / "backups")[0]
    assert f"  copied to off1/{name}" in out.splitlines() and f"  copied to off2/{name}" in out.splitlines()
    for d in ("off1", "off2"):
        assert backup_files(app.parent / d) == triples(name)


def test_backup_copy_to_from_config_in_json(app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (app.parent / "dbkeeper.toml").write_text('copy_to = "offsite"\n')
    code, doc = cli_json(capsys, "backup", "sqlite:///test_app.db")
    assert code == 0 and doc["ok"]
    assert [c["status"] for c in doc["backups"][0]["copies"]] == ["copied"]
    assert len(backup_files(app.parent / "offsite")) == 3


def test_a_failed_copy_fails_the_run_and_skips_the_prune(app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (app.parent / "blocked").write_text("a file where a store should be")
    (app.parent / "dbkeeper.toml").write_text("[retention]\nkeep_last = 1\n")
    store = LocalStore(app.parent / "backups")
    old = plant(store, real_backup(LocalStore(app.parent / "scratch"), app, at("2020-01-01")), at("2020-01-02"))
    code, out, err = cli(capsys, "backup", "sqlite:///test_app.db", "--copy-to", "blocked", "--prune", "--json")
    assert code == 1 and "Traceback" not in err
    assert "dbkeeper: error: " in err and "prune skipped: the copy failed" in err
    result = json.loads(out)["backups"][0]
    assert not result["ok"] and result["copies"][0]["status"] == "failed" and result["prune"]["skipped"]
    new = result["name"]
    assert files(store) == triples(old, new)  # the new backup is there, and nothing was pruned
