"""wal-push and wal-fetch as PostgreSQL runs them: archive_command on a real cluster, exit codes as it reads them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from archiving import SOURCE, archiving_cluster
from conftest import _pg15_bindir, _pg17_bindir
from dbkeeper.pitr.archive import Cluster, WalArchive, cluster_of
from dbkeeper.storage import open_store
from fixtures_s3 import s3_bucket, s3_client, s3_env  # noqa: F401
from walgen import SYSID


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
    """Different bytes under an archived name: refused (exit 1), alerted in the server log and once through the
    config's [notify] urls (not at every retry), never overwritten; PostgreSQL keeps the file and retries, so
    nothing is lost while someone looks."""
    from httpd import Recorder

    with (
        Recorder() as said,
        archiving_cluster(
            _bindir(15), config_extra=f'[notify]\nurls = ["json://{said.url.removeprefix("http://")}/said"]\n'
        ) as ac,
    ):
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
        retried = subprocess.run(
            ac.dbkeeper_argv("wal-push", str(forged), "--data-dir", str(ac.cluster.datadir)),
            capture_output=True,
            text=True,
        )
        assert retried.returncode == 1
        [alert] = said.requests
        assert alert.json()["title"].startswith("dbkeeper wal FAILED on ")
        assert f"{closed} is already archived with other contents" in alert.json()["message"]
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


def _archive_one_to_s3(url: str, tmp_path: Path) -> tuple[str, bytes]:
    from walgen import segment, write

    data = segment("000000010000000000000003")
    wal_dir = tmp_path / "pg_wal"
    wal_dir.mkdir()
    WalArchive(open_store(url), SOURCE).push(Path(write(wal_dir, "000000010000000000000003", data)), CLUSTER)
    return "000000010000000000000003", data


CLUSTER = Cluster(SYSID, 15)


def _fetch(url: str, endpoint: str, name: str, dest: Path, aws: dict[str, str]) -> subprocess.CompletedProcess[str]:
    from helpers import run_dbkeeper

    return run_dbkeeper(
        "wal-fetch", name, str(dest), "--source", SOURCE, "--store", url, "--archive-id", CLUSTER.archive_id,
        env={**aws, "AWS_ENDPOINT_URL": endpoint},
    )  # fmt: skip


def test_transient_s3_faults_in_wal_fetch_are_retried_or_stop_recovery(
    s3_env: dict[str, str],  # noqa: F811
    s3_bucket: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """503 SlowDown on the wire: a few are retried through; a store that stays down is exit 126 (recovery
    stops), never 1 (which would end recovery early, at the wrong point), and never a file at DEST."""
    from faultproxy import FaultProxy

    url = f"s3://{s3_bucket}/pitr"
    name, data = _archive_one_to_s3(url, tmp_path)
    upstream = int(s3_env["AWS_ENDPOINT_URL"].rsplit(":", 1)[1])
    dest = tmp_path / "RECOVERYXLOG"
    with FaultProxy(upstream, fail=4) as proxy:
        done = _fetch(url, proxy.url, name, dest, s3_env)
        assert done.returncode == 0, done.stderr
        assert proxy.failed == 4 and dest.read_bytes() == data
    dest.unlink()
    with FaultProxy(upstream, fail=10_000) as proxy:
        done = _fetch(url, proxy.url, name, dest, s3_env)
        assert done.returncode == 126, done.stderr
        assert "Traceback" not in done.stderr and not dest.exists()
        # "Not archived" is the one answer a store that cannot be read must never give.
        missing = _fetch(url, proxy.url, "000000010000000000000009", dest, s3_env)
        assert missing.returncode == 126
    closed = _fetch(url, "http://127.0.0.1:9", name, dest, s3_env)
    assert closed.returncode == 126 and not dest.exists()
    assert not list(tmp_path.glob(".*dbkeeper-tmp"))


def test_two_clusters_archiving_as_one_source_never_mix(tmp_path: Path) -> None:
    """Same source, same segment names, other system identifiers (a re-initdb, or a misconfigured second
    server): each cluster's WAL lives under its own archive id, and each restore reads its own."""
    with archiving_cluster(_bindir(15)) as first:
        store = first.store
        with archiving_cluster(_bindir(15), store=store) as second:
            for ac in (first, second):
                ac.wait_archived(ac.switch())
            a, b = cluster_of(first.cluster.datadir), cluster_of(second.cluster.datadir)
            assert a is not None and b is not None and a.sysid != b.sysid
            arch = WalArchive(open_store(store), SOURCE)
            assert sorted(i.archive_id for i in arch.ids()) == sorted([a.archive_id, b.archive_id])
            common = {o.name.text for o in arch.files(a.archive_id)} & {o.name.text for o in arch.files(b.archive_id)}
            assert "000000010000000000000001" in common
            for ac, cl in ((first, a), (second, b)):
                dest = ac.home / "seg"
                done = subprocess.run(
                    ac.dbkeeper_argv("wal-fetch", "000000010000000000000001", str(dest)),
                    capture_output=True,
                    text=True,
                    cwd=ac.cluster.datadir,
                )
                assert done.returncode == 0, done.stderr
                from dbkeeper.pitr.walfile import read_header

                assert read_header(dest.read_bytes()).sysid == cl.sysid
