"""Prometheus metrics: valid text format (checked by prometheus_client's parser), right values, atomic write."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dbkeeper import metrics
from dbkeeper.errors import DbkeeperError
from dbkeeper.repo import Repository
from dbkeeper.storage.local import LocalStore
from helpers import backup_at, cli, make_sqlite_app
from pg import PASSWORD, PgDb


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def parse(text: str) -> dict[str, dict[str, float]]:
    """{metric name: {database label: value}}, through the reference parser; fails on malformed text."""
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge" and family.documentation
        for sample in family.samples:
            out.setdefault(sample.name, {})[sample.labels.get("database", "")] = sample.value
    return out


def test_values_come_from_the_newest_good_manifest_and_the_drill_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = make_sqlite_app(tmp_path / "app.db", users=200, sessions=20)
    now = datetime.now(UTC).replace(microsecond=0)
    backup_at(str(app), tmp_path / "backups", now - timedelta(days=2))
    newest = backup_at(str(app), tmp_path / "backups", now - timedelta(hours=2))
    make_sqlite_app(tmp_path / "shop.db", users=5, sessions=0)
    assert cli(capsys, "backup", "shop.db")[0] == 0
    assert cli(capsys, "drill", "--database", "app")[0] == 0
    (tmp_path / "smoke.sql").write_text("-- expect: value = 1\nSELECT 2;\n")
    assert cli(capsys, "drill", "--database", "shop", "--smoke", "smoke.sql")[0] == 3

    text = metrics.render(metrics.collect(Repository(LocalStore(tmp_path / "backups")), "docs/DR_DRILL_LOG.md"))
    got = parse(text)
    manifest = json.loads((tmp_path / "backups" / (newest + ".json")).read_text())
    completed = datetime.strptime(manifest["completed_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert got["dbkeeper_backup_last_success_timestamp_seconds"]["app"] == completed.timestamp()
    assert got["dbkeeper_backup_size_bytes"]["app"] == manifest["size_bytes"]
    assert got["dbkeeper_backup_duration_seconds"]["app"] == manifest["duration_s"]
    assert got["dbkeeper_backup_rows"] == {"app": 220, "shop": 5}
    assert got["dbkeeper_backup_broken_since_last_success"] == {"app": 0, "shop": 0}
    assert got["dbkeeper_drill_last_passed"] == {"app": 1, "shop": 0}
    assert abs(got["dbkeeper_drill_last_success_timestamp_seconds"]["app"] - now.timestamp()) < 60
    assert got["dbkeeper_drill_last_success_timestamp_seconds"]["shop"] == 0  # never passed
    assert set(got["dbkeeper_drill_duration_seconds"]) == {"app"}
    assert 0 <= got["dbkeeper_drill_restore_seconds"]["app"] <= got["dbkeeper_drill_duration_seconds"]["app"]
    assert "last_failure" not in text  # not derivable honestly: failed backups leave nothing in the store


def test_a_database_without_good_backup_has_last_success_zero(tmp_path: Path) -> None:
    store = tmp_path / "backups"
    store.mkdir()
    (store / "app_20261101_020000.db.gz").write_bytes(b"incomplete")
    got = parse(metrics.render(metrics.collect(Repository(LocalStore(store)), tmp_path / "none.md")))
    assert got == {
        "dbkeeper_backup_last_success_timestamp_seconds": {"app": 0},
        "dbkeeper_backup_broken_since_last_success": {"app": 1},
        "dbkeeper_drill_last_success_timestamp_seconds": {"app": 0},
        "dbkeeper_backup_future_dated": {"app": 0},
        "dbkeeper_store_leftovers": {"": 0},
    }


def test_render_escapes_labels_and_help() -> None:
    family = metrics.Family("dbkeeper_x", 'Help with a \\ and\na newline "quoted".')
    family.samples.append(({"database": 'we"ird\\name\nline'}, 1.5))
    family.samples.append(({"database": "big"}, 1795823749.0))
    text = metrics.render([family])
    assert '{database="we\\"ird\\\\name\\nline"} 1.5' in text
    assert "# HELP dbkeeper_x Help with a \\\\ and\\na newline" in text
    assert 'dbkeeper_x{database="big"} 1795823749\n' in text
    [parsed] = list(text_string_to_metric_families(text))
    assert parsed.documentation == 'Help with a \\ and\na newline "quoted".'
    assert [s.labels["database"] for s in parsed.samples] == ['we"ird\\name\nline', "big"]


def test_write_is_atomic_and_readable_by_node_exporter(tmp_path: Path) -> None:
    target = tmp_path / "textfile" / "dbkeeper.prom"
    target.parent.mkdir()
    target.write_text("old\n")
    old_umask = os.umask(0o077)
    try:
        metrics.write(target, "# HELP a b\n# TYPE a gauge\na 1\n")
    finally:
        os.umask(old_umask)
    assert target.read_text() == "# HELP a b\n# TYPE a gauge\na 1\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["dbkeeper.prom"]  # no temporary left
    with pytest.raises(DbkeeperError) as info:
        metrics.write(tmp_path / "missing" / "dbkeeper.prom", "a 1\n")
    assert "cannot write the metrics file" in info.value.message and "--metrics-file" in (info.value.hint or "")
    assert not (tmp_path / "missing").exists()


def test_backup_writes_metrics_also_after_a_failed_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_sqlite_app(tmp_path / "app.db", users=10, sessions=0)
    prom = tmp_path / "dbkeeper.prom"
    assert cli(capsys, "backup", "app.db", "--metrics-file", str(prom))[0] == 0
    first = parse(prom.read_text())
    assert first["dbkeeper_backup_rows"] == {"app": 10}
    prom.unlink()
    (tmp_path / "app.db").rename(tmp_path / "gone.db")
    code, _, err = cli(capsys, "backup", "sqlite:///app.db", "--metrics-file", str(prom))
    assert code == 1 and "does not exist" in err
    assert (
        parse(prom.read_text())["dbkeeper_backup_last_success_timestamp_seconds"]
        == (first["dbkeeper_backup_last_success_timestamp_seconds"])
    )


def test_metrics_file_from_config_for_backup_and_drill(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_sqlite_app(tmp_path / "app.db", users=10, sessions=0)
    (tmp_path / "dbkeeper.toml").write_text('metrics_file = "node.prom"\n[drill]\nlog = "drills.md"\n')
    assert cli(capsys, "backup", "app.db")[0] == 0
    assert "dbkeeper_drill_last_passed" not in (tmp_path / "node.prom").read_text()
    assert cli(capsys, "drill")[0] == 0
    assert parse((tmp_path / "node.prom").read_text())["dbkeeper_drill_last_passed"] == {"app": 1}


def test_unwritable_metrics_file_fails_the_run_but_keeps_the_backup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_sqlite_app(tmp_path / "app.db", users=10, sessions=0)
    code, _, err = cli(capsys, "backup", "app.db", "--metrics-file", str(tmp_path / "no" / "dir.prom"))
    assert code == 1 and err.startswith("dbkeeper: error: cannot write the metrics file")
    assert len([p for p in (tmp_path / "backups").rglob("*") if p.is_file()]) == 3


def test_restore_leftovers_on_the_sources_servers_are_counted(
    tmp_path: Path, pgdb: PgDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg, name = pgdb
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    repo = Repository(LocalStore(tmp_path / "backups"))
    unreachable = "postgresql://app@127.0.0.1:1/shop"

    def counts() -> dict[tuple[str, str], float]:
        text = metrics.render(metrics.collect(repo, tmp_path / "drills.md", servers=[pgdb.url, unreachable]))
        return {
            (s.labels["server"], s.labels["kind"]): s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name == "dbkeeper_server_restore_leftovers"
        }

    server = f"postgresql://{pg.host}:{pg.port}"
    before = counts()
    assert set(before) == {(server, "temporary"), (server, "replaced")}  # none for a server not asked
    aside = f"{name[:30]}_dbkeeper_old_0badc0de"
    pg.create_db(aside)
    try:
        after = counts()
        assert after[(server, "replaced")] == before[(server, "replaced")] + 1
        assert after[(server, "temporary")] == before[(server, "temporary")]
    finally:
        pg.drop_db(aside)
