"""dbkeeper prune and backup --prune through the CLI, on histories planted before the real clock's now."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dbkeeper.storage.local import LocalStore
from helpers import cli, cli_json, make_sqlite_app, run_dbkeeper
from history import Template, files, flip_byte, plant, real_backup, snapshot, triples, undeletable


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DBKEEPER_STORE", raising=False)
    monkeypatch.delenv("DBKEEPER_CONFIG", raising=False)
    return make_sqlite_app(tmp_path / "test_app.db", users=30, sessions=20)


@pytest.fixture
def store(app: Path) -> LocalStore:
    return LocalStore(app.parent / "backups")


@pytest.fixture
def template(app: Path) -> Template:
    return real_backup(LocalStore(app.parent / "scratch"), app, datetime(2020, 1, 1, tzinfo=UTC))


def history(store: LocalStore, template: Template, count: int) -> list[str]:
    """Daily backups at 02:00 UTC on the ``count`` days before today; names newest first."""
    today = datetime.now(UTC).replace(hour=2, minute=0, second=0, microsecond=0)
    return [plant(store, template, today - timedelta(days=n)) for n in range(1, count + 1)]


def test_dry_run_prints_every_decision_with_its_reasons_and_deletes_nothing(
    store: LocalStore, template: Template, capsys: pytest.CaptureFixture[str]
) -> None:
    names = history(store, template, 5)
    before = snapshot(store)
    code, out, err = cli(capsys, "prune", "--keep-last", "2", "--dry-run")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["ACTION", "BACKUP", "CREATED", "WHY"]
    rows = {line.split()[1]: line for line in lines[1:-1]}
    assert list(rows) == names
    assert rows[names[0]].startswith("keep") and "last 1, newest good backup; verified" in rows[names[0]]
    assert rows[names[1]].startswith("keep") and "last 2; verified" in rows[names[1]]
    assert all(rows[n].startswith("remove") and "matched no rule" in rows[n] for n in names[2:])
    assert lines[-1] == "backups: policy keep_last 2: kept 2, would remove 3 (dry run: nothing was deleted)"
    assert snapshot(store) == before


def test_prune_deletes_and_json_is_one_document(
    store: LocalStore, template: Template, capsys: pytest.CaptureFixture[str]
) -> None:
    names = history(store, template, 5)
    code, doc = cli_json(capsys, "prune", "--keep-last", "2")
    assert code == 0
    assert doc["ok"] and not doc["dry_run"] and doc["policy"]["keep_last"] == 2
    assert (doc["kept"], doc["removed"], doc["deleted"]) == (2, 3, 3)
    assert [d["name"] for d in doc["decisions"]] == names
    assert [d["action"] for d in doc["decisions"]] == ["keep", "keep", "remove", "remove", "remove"]
    assert doc["decisions"][0]["reasons"] == ["last 1", "newest good backup"] and doc["decisions"][0]["verified"]
    assert files(store) == triples(*names[:2])


def test_policy_comes_from_flags_else_config_else_keep_last_14(
    app: Path, store: LocalStore, template: Template, capsys: pytest.CaptureFixture[str]
) -> None:
    names = history(store, template, 16)
    code, doc = cli_json(capsys, "prune", "--dry-run")
    assert code == 0 and doc["policy"]["keep_last"] == 14 and doc["removed"] == 2
    (app.parent / "dbkeeper.toml").write_text("[retention]\nkeep_last = 3\nkeep_min = 5\n")
    code, doc = cli_json(capsys, "prune", "--dry-run")
    assert doc["policy"] == {**doc["policy"], "keep_last": 3, "keep_min": 5} and doc["kept"] == 5
    code, doc = cli_json(capsys, "prune", "--dry-run", "--keep-daily", "1")
    assert doc["policy"]["keep_last"] is None and doc["policy"]["keep_daily"] == 1 and doc["kept"] == 5
    assert len(files(store)) == 3 * len(names)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--keep-last", "0"], "no keep rule"),
        (["--keep-last", "-5"], "keep_last must be a count"),
        (["--keep-daily", "7", "--keep-min", "-1"], "keep_min must be a count"),
    ],
)
def test_bad_policies_are_usage_errors(
    store: LocalStore, template: Template, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    history(store, template, 3)
    code, _out, err = cli(capsys, "prune", *argv)
    assert code == 2 and message in err and "Try:" in err
    assert len(files(store)) == 9


def test_a_damaged_backup_is_shown_and_kept(
    store: LocalStore, template: Template, capsys: pytest.CaptureFixture[str]
) -> None:
    names = history(store, template, 4)
    flip_byte(store.local_path(names[0]))
    code, out, _ = cli(capsys, "prune", "--keep-last", "1")
    assert code == 0
    row = next(line for line in out.splitlines() if names[0] in line)
    assert row.startswith("keep") and "failed verification: checksum" in row
    assert files(store) == triples(*names[:2])


def test_only_the_named_database(store: LocalStore, template: Template, capsys: pytest.CaptureFixture[str]) -> None:
    names = history(store, template, 3)
    today = datetime.now(UTC).replace(microsecond=0)
    others = [plant(store, template, today - timedelta(days=n), database="other") for n in (1, 2, 3)]
    code, doc = cli_json(capsys, "prune", "--keep-last", "1", "--database", "other")
    assert code == 0 and {d["database"] for d in doc["decisions"]} == {"other"}
    assert files(store) == triples(*names, others[0])


def test_a_failed_deletion_is_an_error_without_traceback(store: LocalStore, template: Template) -> None:
    names = history(store, template, 3)
    with undeletable(store.local_path(names[2])):
        done = run_dbkeeper("prune", "--keep-last", "1", "--store", str(store.root))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("dbkeeper: error: permission denied: deleting")
    assert "1 could not be deleted" in done.stdout
    assert files(store) == sorted([names[2], *triples(names[0])])  # incomplete, never a good-looking backup


def test_backup_prune_verifies_then_prunes_that_database(
    app: Path, store: LocalStore, template: Template, capsys: pytest.CaptureFixture[str]
) -> None:
    (app.parent / "dbkeeper.toml").write_text("[retention]\nkeep_last = 2\n")
    names = history(store, template, 3)
    today = datetime.now(UTC).replace(microsecond=0)
    other = [plant(store, template, today - timedelta(days=n), database="other") for n in (1, 2, 3)]
    code, out, err = cli(capsys, "backup", "sqlite:///test_app.db", "--name", "app", "--prune")
    assert code == 0, err
    assert "policy keep_last 2: kept 2, removed 2" in out
    new = next(f for f in files(store) if f.endswith(".db.gz") and f not in names and "/other_" not in f)
    assert files(store) == triples(new, names[0], *other)
    assert f"removed {names[1]}" in out and f"removed {names[2]}" in out


def test_backup_prune_json(
    app: Path, store: LocalStore, template: Template, capsys: pytest.CaptureFixture[str]
) -> None:
    history(store, template, 3)
    code, doc = cli_json(capsys, "backup", "sqlite:///test_app.db", "--name", "app", "--prune")
    assert code == 0 and doc["ok"]
    pruned = doc["backups"][0]["prune"]
    assert pruned["policy"]["keep_last"] == 14 and pruned["removed"] == 0
    assert pruned["decisions"][0]["name"] == doc["backups"][0]["name"]


def test_backup_prune_with_an_empty_policy_fails_before_the_backup(
    app: Path, store: LocalStore, capsys: pytest.CaptureFixture[str]
) -> None:
    (app.parent / "dbkeeper.toml").write_text("[retention]\nkeep_last = 0\n")
    code, _out, err = cli(capsys, "backup", "sqlite:///test_app.db", "--prune")
    assert code == 2 and "no keep rule" in err
    assert files(store) == []


def test_prune_of_an_empty_store(app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "prune")
    assert (
        code == 2
        and out == ""
        and err.splitlines()
        == [
            "dbkeeper: error: store backups does not exist",
            "  Try: check --store (or $DBKEEPER_STORE, the config's store); `dbkeeper backup` creates it",
        ]
    )
    (app.parent / "backups").mkdir()
    code, out, _ = cli(capsys, "prune")
    assert code == 0 and out.strip() == "backups: policy keep_last 14: kept 0, removed 0"
    code, doc = cli_json(capsys, "prune")
    assert json.dumps(doc) and doc["decisions"] == []
