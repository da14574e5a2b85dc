"""wal-push and wal-fetch as PostgreSQL runs them: archive_command on a real cluster, exit codes as it reads them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from archiving import SOURCE, archiving_cluster
from conftest import _pg15_bindir, _pg17_bindir
from dbkeeper.pitr.archive import WalArchive, cluster_of
from dbkeeper.storage import open_store
from fixtures_s3 import s3_bucket, s3_client, s3_env  # noqa: F401


def _bindir(major: int) -> Path:
    found = _pg15_bindir() if major == 15 else _pg17_bindir()
    assert found is not None
    return found


@pytest.mark.parametrize("major", [15, 17])
def test_archive_command_stores_each_segment_and_fetch_brings_it_back(major: int, tmp_path: Path) -> None:
    with archiving_cluster(_bindir(major)) as ac:
        closed = ac.switch()
        ac.wait_archived(closed)
        cluster = cluster_of(ac.cluster.datadir)
        assert cluster is not None and cluster.major == major
        arch = WalArchive(open_store(ac.store), SOURCE)
        names = [o.name.text for o in arch.files(cluster.archive_id)]
        assert closed in names
        # restore_command, as PostgreSQL runs it during recovery: from the data directory, as its user.
        dest = ac.home / "RECOVERYXLOG"
        fetched = subprocess.run(
            ac.dbkeeper_argv("wal-fetch", closed, str(dest), "--data-dir", str(ac.cluster.datadir)),
            capture_output=True,
            text=True,
        )
        assert fetched.returncode == 0, fetched.stderr
        original = ac.cluster.datadir / "pg_wal" / closed
        if original.exists():  # not yet recycled
            assert dest.read_bytes() == original.read_bytes()
        assert len(dest.read_bytes()) == 16 << 20


def test_exit_codes_are_the_ones_postgresql_reads(tmp_path: Path) -> None:
    with archiving_cluster(_bindir(15)) as ac:
        closed = ac.switch()
        ac.wait_archived(closed)
        datadir = str(ac.cluster.datadir)
        dest = ac.home / "out"

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(ac.dbkeeper_argv(*args), capture_output=True, text=True, cwd=datadir)

        # Not archived: 1, the one "not found" answer, and nothing at DEST.
        missing = run("wal-fetch", "00000009.history", str(dest))
        assert missing.returncode == 1 and not dest.exists()
        # A usage error, a damaged object: 126, so recovery stops instead of ending early.
        assert run("wal-fetch", "not-a-wal-name", str(dest)).returncode == 126
        assert run("wal-fetch").returncode == 126
        cluster = cluster_of(ac.cluster.datadir)
        assert cluster is not None
        arch = WalArchive(open_store(ac.store), SOURCE)
        obj = next(o for o in arch.files(cluster.archive_id) if o.name.text == closed)
        path = Path(ac.store) / obj.object
        path.write_bytes(path.read_bytes()[:-10])
        damaged = run("wal-fetch", closed, str(dest))
        assert damaged.returncode == 126 and "damaged" in damaged.stderr and not dest.exists()
        assert not [p for p in ac.home.iterdir() if "dbkeeper-tmp" in p.name]
        # wal-push: 0 or 1, whatever goes wrong.
        assert run("wal-push").returncode == 1
        assert run("wal-push", "pg_wal/nonexistent").returncode == 1
        altered = ac.home / closed
        altered.write_bytes(bytes(16 << 20))
        refused = run("wal-push", str(altered))
        assert refused.returncode == 1 and "no WAL page magic" in refused.stderr
        assert "Traceback" not in refused.stderr


def test_a_segment_that_changed_is_refused_and_postgresql_keeps_it(tmp_path: Path) -> None:
    """Different bytes under an archived name: refused (exit 1), alerted in the server log, never overwritten;
    PostgreSQL keeps the file and retries, so nothing is lost while someone looks."""
    with archiving_cluster(_bindir(15)) as ac:
        closed = ac.switch()
        ac.wait_archived(closed)
        cluster = cluster_of(ac.cluster.datadir)
        assert cluster is not None
        original = ac.cluster.datadir / "pg_wal" / closed
        data = bytearray(original.read_bytes())
        data[5000] ^= 0xFF
        forged = ac.home / closed
        forged.write_bytes(bytes(data))
        result = subprocess.run(
            ac.dbkeeper_argv("wal-push", str(forged), "--data-dir", str(ac.cluster.datadir)),
            capture_output=True,
            text=True,
        )
        assert result.returncode == 1
        assert "already archived with other contents" in result.stderr
        arch = WalArchive(open_store(ac.store), SOURCE)
        assert [o.name.text for o in arch.files(cluster.archive_id)].count(closed) == 1
        same = subprocess.run(
            ac.dbkeeper_argv("wal-push", str(original), "--data-dir", str(ac.cluster.datadir), "--json"),
            capture_output=True,
            text=True,
        )
        assert same.returncode == 0 and '"duplicate": true' in same.stdout


def test_archiving_to_s3(s3_env: dict[str, str], s3_bucket: str) -> None:  # noqa: F811
    url = f"s3://{s3_bucket}/pitr-test"
    env = {k: v for k, v in s3_env.items()}
    aws_config = Path(env["AWS_CONFIG_FILE"])
    # The server's user reads the (empty) AWS config too.
    shared = Path(os.path.dirname(aws_config))
    for p in (shared, aws_config):
        p.chmod(p.stat().st_mode | 0o055)
    with archiving_cluster(_bindir(15), store=url, env=env) as ac:
        if not os.access(aws_config, os.R_OK):
            pytest.fail("test setup: the AWS config file must be readable")
        closed = ac.switch()
        ac.wait_archived(closed)
        cluster = cluster_of(ac.cluster.datadir)
        assert cluster is not None
        arch = WalArchive(open_store(url), SOURCE)
        assert closed in [o.name.text for o in arch.files(cluster.archive_id)]
