"""wal-verify and check against real clusters archiving with wal-push (PostgreSQL 15 and 17; a directory and S3)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from archiving import SOURCE, ArchivingCluster, archiving_cluster
from conftest import _pg15_bindir, _pg17_bindir
from dbkeeper.pitr.archive import WalArchive, cluster_of
from dbkeeper.storage import open_store
from fixtures_s3 import s3_bucket, s3_client, s3_env  # noqa: F401


def _bindir(major: int) -> Path:
    found = _pg15_bindir() if major == 15 else _pg17_bindir()
    assert found is not None
    return found


def _run(ac: ArchivingCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(ac.dbkeeper_argv(*args), capture_output=True, text=True, env=ac.cluster.env())


def _url(ac: ArchivingCluster) -> str:
    return ac.cluster.url("postgres")


def _s3(request: pytest.FixtureRequest) -> tuple[str, dict[str, str]]:
    env = dict(request.getfixturevalue("s3_env"))
    bucket = request.getfixturevalue("s3_bucket")
    aws_config = Path(env["AWS_CONFIG_FILE"])
    for p in (aws_config.parent, aws_config):
        p.chmod(p.stat().st_mode | 0o055)
    return f"s3://{bucket}/verify", env


@pytest.mark.parametrize(("major", "store_kind"), [(15, "local"), (17, "local"), (15, "s3")])
def test_wal_verify_finds_a_deleted_segment_and_check_sees_archiving_work(
    major: int, store_kind: str, request: pytest.FixtureRequest
) -> None:
    store, env = (None, {}) if store_kind == "local" else _s3(request)
    with archiving_cluster(_bindir(major), store=store, env=env, settings={"archive_timeout": "30"}) as ac:
        closed = ac.switches(5)
        ac.wait_archived(closed[-1])
        ok = _run(ac, "wal-verify", "--json")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        doc = json.loads(ok.stdout)["archives"][0]
        assert doc["ok"] and doc["lost"] == [] and doc["timelines"][0]["found"] >= 5
        checked = _run(ac, "check", _url(ac), "--json", "--source", SOURCE)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        report = json.loads(checked.stdout)
        assert report["ok"] and report["archived_after_seconds"] is not None
        assert report["restore_point"].startswith("dbkeeper-check-")
        # With the server: up to its current segment, and it says it is whole.
        live = _run(ac, "wal-verify", "--server", _url(ac))
        assert live.returncode == 0, live.stdout + live.stderr
        assert live.stdout.startswith("OK main/")
        # A segment deleted from the middle is LOST (once nothing newer is still arriving).
        cluster = cluster_of(ac.cluster.datadir)
        assert cluster is not None
        arch = WalArchive(open_store(ac.store), SOURCE)
        victim = next(o for o in arch.files(cluster.archive_id) if o.name.text == closed[2])
        arch.store.delete(victim.object)
        lost = _run(ac, "wal-verify", "--delay", "0s")
        assert lost.returncode == 3
        assert "LOST" in lost.stdout and closed[2] in lost.stdout
        as_json = json.loads(_run(ac, "wal-verify", "--delay", "0s", "--json").stdout)
        assert as_json["archives"][0]["lost"] == [closed[2]] and not as_json["ok"]


def test_check_reports_an_archive_command_for_another_source() -> None:
    with archiving_cluster(_bindir(15)) as ac:
        ac.cluster.psql("ALTER SYSTEM SET archive_timeout = 0")
        ac.cluster.psql("SELECT pg_reload_conf()")
        closed = ac.switch()
        ac.wait_archived(closed)
        with ac.daemon():
            result = _run(ac, "check", _url(ac), "--source", "elsewhere", "--timeout", "3", "--json")
        assert result.returncode == 3
        report = json.loads(result.stdout)
        assert any("archive_timeout is 0" in w for w in report["warnings"])
        assert "the running wal-daemon pushes to source 'main', not 'elsewhere'" in report["warnings"]
        assert any("did not reach" in p for p in report["problems"])
        # archive_command not dbkeeper's: said so.
        ac.cluster.psql("ALTER SYSTEM SET archive_command = 'cp %p /nonexistent/%f'")
        ac.cluster.psql("SELECT pg_reload_conf()")
        result = _run(ac, "check", _url(ac), "--timeout", "2")
        assert result.returncode == 3 and "does not call dbkeeper wal-push" in result.stdout
        assert "Traceback" not in result.stderr


def test_wal_verify_without_an_archive_is_a_usage_error(tmp_path: Path) -> None:
    store = tmp_path / "empty"
    store.mkdir()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "dbkeeper", "wal-verify", "--store", str(store), "--source", "main"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "holds no WAL archive" in result.stderr
