"""dbkeeper's base backup and restore to a time against pgBackRest's, on one throwaway cluster, in one run.

    python bench/pitr_base.py                # PostgreSQL 15, pgbench -i -s 50 (~800 MB), 2 rounds
    python bench/pitr_base.py --scale 10 --rounds 1

The cluster's archive_command feeds both tools (``dbkeeper wal-push %p && pgbackrest archive-push %p``), so each
restores from its own archive. Per round: ``dbkeeper basebackup`` and ``pgbackrest backup --type=full``
(compress-type=zst), each timed with its peak memory; then, after more pgbench load, a restore of each to the
same time T: ``dbkeeper restore --pitr --to-time T`` (unpack, pg_verifybackup, replay, pause, promote, stop) and
``pgbackrest restore --type=time --target=T --target-action=promote`` plus starting the server and waiting for
the promotion (then stopping it): the same work to a running-then-stopped promoted cluster. Read the ratios:
absolute seconds on a shared machine mean little. Needs root (the server runs as postgres) and the Debian
package pgbackrest (2.45 on bookworm).
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the test harness's throwaway clusters

from pg import Cluster, _RunAs, server_dbkeeper  # noqa: E402
from run import timed  # noqa: E402

STANZA = "bench"
AS_PG = _RunAs.detect()


def sh(argv: list[str], *, as_postgres: bool = False, env: dict[str, str] | None = None) -> str:
    full = AS_PG.argv(argv) if as_postgres else argv
    done = subprocess.run(full, capture_output=True, text=True, env=env, cwd="/", check=False)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{done.stdout}{done.stderr}")
    return done.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=50, help="pgbench -i scale (50: ~800 MB)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--bindir", default="/usr/lib/postgresql/15/bin")
    args = ap.parse_args()
    if not shutil.which("pgbackrest"):
        raise SystemExit("pgbackrest is not installed: apt-get install pgbackrest")
    work = Path(tempfile.mkdtemp(prefix="dbkeeper-bench-pitr-"))
    work.chmod(0o755)
    for d in ("store", "pgbr-repo", "pgbr-log", "pgbr-lock", "pgbr-spool", "restore"):
        (work / d).mkdir()
    AS_PG.own(work / "store", work / "pgbr-repo", work / "pgbr-log", work / "pgbr-lock", work / "pgbr-spool")
    (work / "restore").chmod(0o777)
    conf = work / "pgbackrest.conf"
    dbk_config = work / "dbkeeper.toml"
    dbk_config.write_text(f'store = "{work / "store"}"\n\n[pitr]\nsource = "bench"\n')
    cluster = None
    try:
        dbkeeper = server_dbkeeper()
        archive = f"{dbkeeper} --config {dbk_config} wal-push %p"
        archive += f" && pgbackrest --config={conf} --stanza={STANZA} archive-push %p"
        cluster = Cluster.start(
            Path(args.bindir),
            work / "pg",
            {
                "wal_level": "replica",
                "archive_mode": "on",
                "archive_command": archive,
                "archive_timeout": "10s",
                "max_wal_senders": "5",
                "max_wal_size": "1GB",
                "synchronous_commit": "on",
            },
        )
        conf.write_text(
            f"[global]\nrepo1-path={work / 'pgbr-repo'}\nrepo1-retention-full=10\ncompress-type=zst\n"
            f"log-path={work / 'pgbr-log'}\nlock-path={work / 'pgbr-lock'}\nspool-path={work / 'pgbr-spool'}\n"
            f"start-fast=y\nlog-level-console=warn\n\n[{STANZA}]\npg1-path={cluster.datadir}\n"
            f"pg1-socket-path={cluster.socket_dir}\npg1-port={cluster.port}\n"
        )
        conf.chmod(0o644)
        env = cluster.env()
        print(f"pgbench -i -s {args.scale} …", flush=True)
        sh([cluster.tool("pgbench"), "-i", "-s", str(args.scale), "-q", "postgres"], env=env)
        size = cluster.psql("SELECT pg_size_pretty(sum(pg_database_size(datname))) FROM pg_database")
        print(f"cluster: {size}", flush=True)
        sh(["pgbackrest", f"--config={conf}", f"--stanza={STANZA}", "stanza-create"], as_postgres=True)
        dbk = [sys.executable, "-m", "dbkeeper", "--config", str(dbk_config)]
        pgbr = [*AS_PG.argv(["pgbackrest", f"--config={conf}", f"--stanza={STANZA}"])]
        backup_times: dict[str, list[float]] = {"dbkeeper": [], "pgbackrest": []}
        backup_rss: dict[str, list[float]] = {"dbkeeper": [], "pgbackrest": []}
        restore_times: dict[str, list[float]] = {"dbkeeper": [], "pgbackrest": []}
        commands = {
            "dbkeeper": [*dbk, "basebackup", cluster.url(), "--pg-bin", args.bindir],
            "pgbackrest": [*pgbr, "backup", "--type=full"],
        }
        for r in range(args.rounds):
            # Alternate who goes first; each starts with the archiver idle (both wait for their backup's WAL).
            for name in ["dbkeeper", "pgbackrest"] if r % 2 == 0 else ["pgbackrest", "dbkeeper"]:
                _archive_idle(cluster)
                wall, rss = timed([commands[name]], env)
                backup_times[name].append(wall)
                backup_rss[name].append(rss)
            print(f"round {r + 1}: backup dbkeeper {backup_times['dbkeeper'][-1]:.1f}s,"
                  f" pgbackrest {backup_times['pgbackrest'][-1]:.1f}s", flush=True)  # fmt: skip
            sh([cluster.tool("pgbench"), "-c", "2", "-T", "8", "-N", "postgres"], env=env)
            target = datetime.now(UTC)
            time.sleep(1)
            sh([cluster.tool("pgbench"), "-c", "2", "-T", "3", "-N", "postgres"], env=env)
            _archive_idle(cluster)
            t = target.isoformat()
            d1 = work / "restore" / f"dbk{r}"
            wall, _ = timed(
                [[*dbk, "restore", "--pitr", str(d1), "--to-time", t, "--pg-bin", args.bindir,
                  "--wal-fetch-command", dbkeeper]],
                env,
            )  # fmt: skip
            restore_times["dbkeeper"].append(wall)
            d2 = work / "restore" / f"pgbr{r}"
            start = time.perf_counter()
            when = target.strftime("%Y-%m-%d %H:%M:%S.%f+00")
            sh([*pgbr, "restore", f"--pg1-path={d2}", "--type=time", f"--target={when}", "--target-action=promote"])
            _start_and_wait_promoted(cluster, d2, work / "restore" / f"sock{r}")
            restore_times["pgbackrest"].append(time.perf_counter() - start)
            print(f"round {r + 1}: restore to time dbkeeper {restore_times['dbkeeper'][-1]:.1f}s,"
                  f" pgbackrest {restore_times['pgbackrest'][-1]:.1f}s", flush=True)  # fmt: skip
            shutil.rmtree(d1, ignore_errors=True)
            shutil.rmtree(d2, ignore_errors=True)
        _report(size, backup_times, backup_rss, restore_times)
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _archive_idle(cluster: Cluster) -> None:
    seg = cluster.psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
    cluster.psql("SELECT pg_switch_wal()")
    _wait_archived(cluster, seg)


def _wait_archived(cluster: Cluster, seg: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while cluster.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")[:24] < seg:
        if time.monotonic() > deadline:
            raise SystemExit(f"{seg} not archived")
        time.sleep(0.2)


def _start_and_wait_promoted(cluster: Cluster, datadir: Path, sock: Path) -> None:
    """Start pgBackRest's restored directory (socket only) and wait until recovery ended; then stop it."""
    sock.mkdir()
    AS_PG.own(sock)
    options = f"-c listen_addresses='' -k {sock} -p 5432 -c archive_mode=off"
    sh([cluster.tool("pg_ctl"), "-D", str(datadir), "-l", str(datadir / "bench.log"), "-W", "-o", options, "start"],
       as_postgres=True)  # fmt: skip
    psql = [cluster.tool("psql"), "-X", "-At", "-h", str(sock), "-p", "5432", "-U", "postgres", "-d", "postgres"]
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        done = subprocess.run(AS_PG.argv([*psql, "-c", "SELECT pg_is_in_recovery()"]), capture_output=True,
                              text=True, cwd="/", check=False)  # fmt: skip
        if done.returncode == 0 and done.stdout.strip() == "f":
            break
        time.sleep(0.2)
    else:
        raise SystemExit("pgBackRest's restore did not finish recovery")
    sh([cluster.tool("pg_ctl"), "-D", str(datadir), "-m", "fast", "-w", "stop"], as_postgres=True)


def _report(
    size: str, backups: dict[str, list[float]], rss: dict[str, list[float]], restores: dict[str, list[float]]
) -> None:
    med = {k: statistics.median(v) for k, v in backups.items()}
    rmed = {k: statistics.median(v) for k, v in restores.items()}
    print(f"\ncluster {size}; medians of {len(backups['dbkeeper'])} rounds")
    print(f"{'':28} {'dbkeeper':>10} {'pgbackrest':>11} {'ratio':>7}")
    print(f"{'base backup (s)':28} {med['dbkeeper']:10.1f} {med['pgbackrest']:11.1f} "
          f"{med['dbkeeper'] / med['pgbackrest']:7.2f}")  # fmt: skip
    print(f"{'base backup peak RSS (MB)':28} {max(rss['dbkeeper']):10.0f} {max(rss['pgbackrest']):11.0f}")
    print(f"{'restore to a time (s)':28} {rmed['dbkeeper']:10.1f} {rmed['pgbackrest']:11.1f} "
          f"{rmed['dbkeeper'] / rmed['pgbackrest']:7.2f}")  # fmt: skip
    print(shlex.join(["goal:", "ratios <= 1.0"]))


if __name__ == "__main__":
    raise SystemExit(main())
