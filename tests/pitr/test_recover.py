"""Restore to a time on real clusters: a ledger of acknowledged commits, a base backup, pgbench load, a crash,
then restores to random times checked against the ledger; and every refusal that must come before anything is
unpacked (a target before the backup's end, past the archive's end, a deleted middle segment)."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from archiving import SOURCE, archiving_cluster
from conftest import _pg15_bindir, _pg17_bindir, make_age_key
from helpers import run_dbkeeper
from pg import _RunAs
from pitr_harness import (
    PITR_SETTINGS,
    Ledger,
    basebackup,
    crash,
    dbk,
    iso,
    ledger_ids,
    pgbench,
    restore,
    restore_checked,
    restored_psql,
    shared_dir,
    start_restored,
    stop_restored,
)

pytestmark = pytest.mark.slow


def bindir(major: int) -> Path:
    found = _pg15_bindir() if major == 15 else _pg17_bindir()
    assert found is not None, "PostgreSQL 17 binaries missing: run scripts/install-test-deps"
    return found


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.fixture
def work() -> Iterator[Path]:
    d = shared_dir("dbkeeper-pitr-work-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def server_s3_env(s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The S3 variables, without root's config files (the server's OS user cannot read them)."""
    env = {k: v for k, v in s3_env.items() if k not in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")}
    env.update(AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


@pytest.mark.parametrize(("major", "kind"), [(15, "local"), (17, "s3")])
def test_restores_to_random_times_after_a_crash_hold_exactly_the_acknowledged_commits(
    major: int, kind: str, request: pytest.FixtureRequest, work: Path
) -> None:
    store, env = None, None
    if kind == "s3":
        env = server_s3_env(request.getfixturevalue("s3_env"), request.getfixturevalue("monkeypatch"))
        store = request.getfixturevalue("s3_store_url")
    with archiving_cluster(bindir(major), store=store, env=env, settings=PITR_SETTINGS) as ac:
        ledger = Ledger(ac.cluster).start()
        try:
            time.sleep(1.5)
            bb = basebackup(ac)
            pgbench(ac, "-i", "-s", "1", "-q")
            pgbench(ac, "-c", "2", "-T", "3")
            time.sleep(1.5)
            # The archive's end: what a target may reach (S3 pushes without the daemon lag behind the load).
            switched = time.time()
            ac.wait_archived(ac.switch(), timeout=180)
            time.sleep(1)
        finally:
            crashed = time.time()
            crash(ac)
            ledger.stop()
        assert bb["kind"] == "full" and bb["wal_verified"] is True
        stop, start = epoch(bb["stop_time"]), epoch(bb["start_time"])
        rng = random.Random()
        for n in range(2):
            target = rng.uniform(stop + 0.3, switched - 0.5)
            result = restore_checked(ac, ledger, target, work, f"t{n}")
            assert result["backup"] == bb["id"]
            assert result["reached_lsn"] and result["reached_time"]
            assert float(result["rto_s"]) > 0  # type: ignore[arg-type]

        # A target before the backup's end: refused before anything is written.
        early = work / "early"
        done = restore(ac, early, "--to-time", iso(start - 1))
        assert done.returncode == 1 and "before the end of every base backup" in done.stderr, done.stderr
        assert not early.exists()

        # Past the archive's end: the crash lost what was not archived yet.
        while time.time() < crashed + 2.5:
            time.sleep(0.2)
        late = work / "late"
        done = restore(ac, late, "--to-time", iso(crashed + 2))
        assert done.returncode == 1 and "past the archive's end" in done.stderr, done.stderr
        assert not late.exists()


def test_a_deleted_middle_segment_is_named_before_anything_is_unpacked(work: Path) -> None:
    with archiving_cluster(bindir(15), settings=PITR_SETTINGS) as ac:
        ac.cluster.psql("CREATE TABLE t (x int)")
        bb = basebackup(ac)
        closed = ""
        for _ in range(4):
            ac.cluster.psql("INSERT INTO t SELECT generate_series(1, 1000)")
            closed = ac.switch()
        ac.wait_archived(closed)
        store = Path(ac.store)
        segments = sorted(p for p in store.rglob("*") if p.is_file() and len(p.name) > 24 and p.name[24] == "-")
        after = [p for p in segments if p.name[:24] > bb["stop_segment"]]
        assert len(after) >= 3, [p.name for p in segments]
        victim = after[1]
        victim.unlink()
        datadir = work / "gap"
        done = restore(ac, datadir, "--to-latest")
        assert done.returncode == 1, done.stdout
        assert f"WAL segment {victim.name[:24]} is missing from the archive" in done.stderr, done.stderr
        assert "nothing was restored" in done.stderr
        assert not datadir.exists()


def test_incremental_on_17_is_chained_to_the_newest_full_and_restored_through_pg_combinebackup(work: Path) -> None:
    with archiving_cluster(bindir(17), settings={**PITR_SETTINGS, "summarize_wal": "on"}) as ac:
        ledger = Ledger(ac.cluster).start()
        try:
            full = basebackup(ac)
            pgbench(ac, "-i", "-s", "2", "-q")
            incremental = basebackup(ac, "--incremental")
            time.sleep(1.5)
            switched = time.time()
            ac.wait_archived(ac.switch(), timeout=120)
            time.sleep(1)
        finally:
            crash(ac)
            ledger.stop()
        assert incremental["kind"] == "incremental" and incremental["parent"] == full["id"]
        assert incremental["id"].endswith("-I")
        target = random.uniform(epoch(incremental["stop_time"]) + 0.3, switched - 0.5)
        result = restore_checked(ac, ledger, target, work, "incr")
        assert result["backup"] == incremental["id"]


def test_incremental_needs_17_and_a_full_backup() -> None:
    with archiving_cluster(bindir(15), settings=PITR_SETTINGS) as ac:
        done = dbk(ac, "basebackup", ac.cluster.url(), "--incremental")
        assert done.returncode == 2 and "need PostgreSQL 17" in done.stderr, done.stderr
    with archiving_cluster(bindir(17), settings={**PITR_SETTINGS, "summarize_wal": "on"}) as ac:
        done = dbk(ac, "basebackup", ac.cluster.url(), "--incremental", "--pg-bin", str(ac.cluster.bindir))
        assert done.returncode == 2 and "needs a full one" in done.stderr, done.stderr
        assert not list(Path(ac.store).rglob("backup.json"))


def test_promotion_to_timeline_2_then_pitr_back_onto_timeline_1(work: Path) -> None:
    with archiving_cluster(bindir(15), settings=PITR_SETTINGS) as ac:
        ledger = Ledger(ac.cluster).start()
        try:
            basebackup(ac)
            time.sleep(2.5)
            branch = time.time()
            time.sleep(2.5)
            switched = time.time()
            ac.wait_archived(ac.switch())
        finally:
            crash(ac)
            ledger.stop()

        # Restore to `branch` and promote: timeline 2, which archives into the same archive from then on.
        tl2, sock = work / "tl2", work / "tl2-sock"
        sock.mkdir(mode=0o777)
        sock.chmod(0o777)
        done = restore(ac, tl2, "--to-time", iso(branch), sock=sock)
        assert done.returncode == 0, done.stderr + done.stdout
        assert restored_psql(sock, ac.cluster.bindir, "SELECT pg_is_in_recovery()") == "f"
        # Promoted, it says what it needs before it serves as the primary, naming the history file to push.
        note = json.loads(done.stdout)["note"]
        assert "archive_mode = on" in note and f"`dbkeeper wal-push pg_wal/00000002.history --source {SOURCE}`" in note
        stop_restored(tl2, ac.cluster.bindir, mode="fast")
        command = f"{ac.command} --config {ac.config} wal-push %p"
        with open(tl2 / "postgresql.auto.conf", "a") as f:
            f.write(f"archive_mode = 'on'\narchive_command = '{command}'\n")
        start_restored(tl2, sock, ac.cluster.bindir)
        restored_psql(sock, ac.cluster.bindir, "INSERT INTO ledger (id) SELECT generate_series(100001, 100010)")
        restored_psql(sock, ac.cluster.bindir, "SELECT pg_switch_wal()")
        deadline = time.time() + 60
        while "00000002" not in restored_psql(
            sock, ac.cluster.bindir, "SELECT last_archived_wal FROM pg_stat_archiver"
        ):
            assert time.time() < deadline, "timeline 2 was not archived"
            time.sleep(0.2)
        stop_restored(tl2, ac.cluster.bindir, mode="fast")
        # Promoted with archive_mode = off, the cluster marked its history file for no archiver: the runbook's
        # step when a restored cluster becomes the primary is to push it.
        push = _RunAs.detect().argv(ac.dbkeeper_argv("wal-push", "pg_wal/00000002.history"))
        pushed = subprocess.run(push, cwd=tl2, capture_output=True, text=True, check=False)
        assert pushed.returncode == 0, pushed.stderr
        assert list(Path(ac.store).rglob("00000002.history-*"))

        # Back onto timeline 1 (the default, --timeline current), to a time after the branch point.
        target = random.uniform(branch + 0.5, switched - 0.5)
        result = restore_checked(ac, ledger, target, work, "tl1")
        assert result["timeline"] == 1

        # And along timeline 2 to its end: the rows written there, none of timeline 1 after the branch.
        latest, sock3 = work / "latest", work / "latest-sock"
        sock3.mkdir()
        sock3.chmod(0o777)
        done = restore(ac, latest, "--timeline", "latest", "--to-latest", sock=sock3)
        try:
            assert done.returncode == 0, done.stderr + done.stdout
            assert json.loads(done.stdout)["timeline"] == 2
            ids = ledger_ids(sock3, ac.cluster.bindir)
            assert set(range(100001, 100011)) <= ids
            assert not ({i for i, sent, _ack in ledger.rows if sent > branch} & ids)
        finally:
            stop_restored(latest, ac.cluster.bindir)


def test_a_signed_encrypted_base_backup_restores_with_the_keys_and_a_smoke_file_gates_it(work: Path) -> None:
    keys = shared_dir("dbkeeper-pitr-keys-")
    try:
        identity, recipient = make_age_key(keys / "age.txt")
        identity.chmod(0o644)  # wal-fetch runs as the server's OS user and decrypts the archive
        sign = keys / "sign.key"
        generated = run_dbkeeper("key", "generate", str(sign))
        assert generated.returncode == 0, generated.stderr
        sign.chmod(0o644)
        public = run_dbkeeper("key", "public", str(sign)).stdout.strip()
        extra = f'\n[encryption]\nrecipients = ["{recipient}"]\n\n[signing]\nkey = "{sign}"\n'
        with archiving_cluster(bindir(15), settings=PITR_SETTINGS, config_extra=extra) as ac:
            ac.cluster.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
            bb = basebackup(ac)
            assert bb["encryption"] == {"format": "age", "recipients": [recipient]}
            prefix = next(Path(ac.store).rglob("backup.json")).parent
            assert sorted(p.name for p in prefix.iterdir()) == [
                "backup.json", "backup.json.sig", "backup_manifest.zst.age", "base.tar.zst.age",
            ]  # fmt: skip
            ac.cluster.psql("INSERT INTO t VALUES (2)")
            ac.wait_archived(ac.switch())

            # A wrong verify key: the base backup counts as broken, nothing is unpacked.
            other = run_dbkeeper("key", "generate", str(keys / "other.key"))
            assert other.returncode == 0
            wrong = run_dbkeeper("key", "public", str(keys / "other.key")).stdout.strip()
            refused = restore(ac, work / "wrong", "--to-latest", "--identity", str(identity), "--verify-key", wrong)
            assert refused.returncode == 1 and "bad signature" in refused.stderr, refused.stderr
            assert not (work / "wrong").exists()

            # Without the identity: refused, nothing left behind.
            done = restore(ac, work / "noid", "--to-latest", "--verify-key", public)
            assert done.returncode != 0 and "encrypted" in done.stderr, done.stderr
            assert not (work / "noid").exists()

            # A smoke file that fails stops the restore and removes the directory.
            bad = keys / "bad.sql"
            bad.write_text("SELECT 1 / (SELECT count(*) - 2 FROM t);\n")
            args = ["--to-latest", "--identity", str(identity), "--verify-key", public]
            done = restore(ac, work / "bad", *args, "--smoke", str(bad))
            assert done.returncode != 0 and "smoke file" in done.stderr, done.stderr
            assert not (work / "bad").exists()

            good = keys / "good.sql"
            good.write_text("DO $$ BEGIN IF (SELECT count(*) FROM t) <> 2 THEN RAISE 'rows missing'; END IF; END $$;\n")
            done = restore(ac, work / "good", *args, "--smoke", str(good))
            assert done.returncode == 0, done.stderr + done.stdout
            assert json.loads(done.stdout)["backup"] == bb["id"]
    finally:
        shutil.rmtree(keys, ignore_errors=True)
