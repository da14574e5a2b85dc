"""WAL archiving under load: dbkeeper wal-push alone, with wal-daemon, and pgBackRest 2.45 archive-push (plain
and archive-async), one after the other in one run on the same kind of throwaway cluster.

    python bench/wal_push.py                      # PostgreSQL 15, pgbench -s 10, 20 s of load per mode
    python bench/wal_push.py --seconds 40 --scale 20 --modes dbkeeper,dbkeeper+daemon

For each mode: a fresh cluster whose archive_command runs the archiver through a shim that logs each call's
wall time and exit status; pgbench (TPC-B, 4 clients) for --seconds while a ledger writer commits a row every
100 ms and records when each commit was acknowledged (and its LSN); then load stops, the ledger goes on for
--idle seconds with archive_timeout = 5s, and the server is killed (pg_ctl stop -m immediate).

Printed per mode: the foreground archive_command's p50/p99 per segment; WAL produced and segments archived per
second during the load; the largest .ready backlog; how long after the load the backlog took to drain; and the
RPO at the crash: the last acknowledged ledger commit minus the newest one whose WAL was archived (the end of
the newest segment archive_command said 0 for). Run as root (the server runs as postgres) after
scripts/install-test-deps; pgBackRest comes from Debian (apt-get install -y pgbackrest).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the test harness's throwaway clusters
sys.path.insert(0, str(HERE.parent / "src"))

from archiving import ArchivingCluster, archiving_cluster  # noqa: E402
from conftest import _pg15_bindir  # noqa: E402
from dbkeeper.pitr import walfile  # noqa: E402
from pg import _RunAs  # noqa: E402

SEG = 16 << 20
MODES = ("dbkeeper", "dbkeeper+daemon", "pgbackrest", "pgbackrest-async")

SHIM = """#!/bin/sh
# archive_command timing shim: <log> <command...> (the command gets %p last)
log="$1"; shift
t0=$(date +%s%N)
"$@"
rc=$?
t1=$(date +%s%N)
echo "$t0 $t1 $rc $(basename "$(eval echo \\${$#})")" >> "$log"
exit $rc
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=20, help="pgbench load per mode (default 20)")
    ap.add_argument("--idle", type=int, default=12, help="ledger only, after the load, before the crash (default 12)")
    ap.add_argument("--scale", type=int, default=10, help="pgbench -s (default 10)")
    ap.add_argument("--burst", type=int, default=300, help="MB of WAL written at once after the load (default 300)")
    ap.add_argument("--fast-runs", type=int, default=60, help="runs of the spool answer alone (default 60)")
    ap.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    args = ap.parse_args()
    bindir = _pg15_bindir()
    if bindir is None:
        sys.exit("PostgreSQL 15 not found: run scripts/install-test-deps")
    if not shutil.which("pgbackrest") and any(m.startswith("pgbackrest") for m in args.modes.split(",")):
        subprocess.run(["apt-get", "install", "-y", "pgbackrest"], check=True, capture_output=True)
    version = subprocess.run(["pgbackrest", "version"], capture_output=True, text=True).stdout.strip()
    fast_path(args.fast_runs)
    results = {}
    for mode in args.modes.split(","):
        print(f"== {mode}", flush=True)
        results[mode] = run_mode(mode, bindir, args)
        print("   " + line(mode, results[mode]), flush=True)
    print(f"\nWAL archiving under pgbench -c 4 -s {args.scale} for {args.seconds}s ({version}); archive_timeout 5s")
    print(
        f"{'mode':18} {'fg p50 ms':>9} {'fg p99 ms':>9} {'WAL seg/s':>9} {'arch seg/s':>10} {'max .ready':>10}"
        f" {'drain s':>7} {'RPO s':>6}"
    )
    for mode, r in results.items():
        print(
            f"{mode:18} {r['p50']:9.1f} {r['p99']:9.1f} {r['wal_rate']:9.2f} {r['arch_rate']:10.2f}"
            f" {r['backlog_max']:10d} {r['drain']:7.1f} {r['rpo']:6.1f}"
        )
    print(f"\nA burst of ~{args.burst} MB of WAL (CREATE TABLE AS), from its start until nothing is .ready:")
    print(f"{'mode':18} {'segments':>8} {'fg p50 ms':>9} {'fg p99 ms':>9} {'written s':>9} {'archived s':>10}")
    for mode, r in results.items():
        print(
            f"{mode:18} {r['burst_segments']:8d} {r['burst_p50']:9.1f} {r['burst_p99']:9.1f}"
            f" {r['burst_wal_s']:9.1f} {r['burst_archived_s']:10.1f}"
        )
    base = results.get("pgbackrest")
    if base:
        for mode, r in results.items():
            if mode.startswith("dbkeeper"):
                print(
                    f"{mode}: foreground p99 {r['p99'] / max(base['p99'], 1e-9):.2f}x pgbackrest's under load,"
                    f" {r['burst_p99'] / max(base['burst_p99'], 1e-9):.2f}x in the burst; burst archived in"
                    f" {r['burst_archived_s'] / max(base['burst_archived_s'], 1e-9):.2f}x its time"
                )
    return 0


def fast_path(runs: int) -> None:
    """wal-push answering from a spool acknowledgement, alone: the interpreter the server uses, one 16 MB segment
    checked per run; beside it, in the same loop, the bare interpreter and pgBackRest's own start-up."""
    import hashlib
    import tempfile

    from dbkeeper.pitr.spool import Ack, file_identity
    from pg import SERVER_VENV

    python = str(SERVER_VENV / "bin" / "python")
    src = str(HERE.parent / "src")
    with tempfile.TemporaryDirectory(prefix="dbkeeper-fastpath-") as tmp:
        d = Path(tmp)
        (d / "global").mkdir()
        (d / "pg_wal").mkdir()
        (d / "global" / "pg_control").write_bytes((7_000_000_000_000_000_001).to_bytes(8, "little"))
        (d / "PG_VERSION").write_text("15\n")
        name = "000000010000000000000007"
        data = os.urandom(SEG)
        (d / "pg_wal" / name).write_bytes(data)
        pushed = d / "spool" / "7000000000000000001-15" / "pushed"
        pushed.mkdir(parents=True)
        ack = Ack(
            name,
            SEG,
            hashlib.sha256(data).hexdigest(),
            "obj",
            "main",
            "/store",
            file_identity(str(d / "pg_wal" / name)),
        ).to_text()
        env = {"PYTHONPATH": src, "PATH": "/usr/bin:/bin"}
        argvs = {
            "python -c pass": [python, "-c", "pass"],
            "pgbackrest version": ["pgbackrest", "version"],
            "dbkeeper wal-push (spool)": [
                python,
                "-m",
                "dbkeeper",
                "wal-push",
                f"pg_wal/{name}",
                "--spool",
                str(d / "spool"),
            ],
            # What the installed `dbkeeper` script runs (no runpy): from dbkeeper.quick import main
            "script wal-push (spool)": [
                python,
                "-c",
                "from dbkeeper.quick import main; raise SystemExit(main())",
                "wal-push",
                f"pg_wal/{name}",
                "--spool",
                str(d / "spool"),
            ],
        }
        times: dict[str, list[float]] = {k: [] for k in argvs}
        for _ in range(runs):
            for label, argv in argvs.items():
                (pushed / name).write_text(ack)
                t0 = time.perf_counter()
                done = subprocess.run(argv, cwd=d, env=env, capture_output=True)
                times[label].append((time.perf_counter() - t0) * 1000)
                if done.returncode != 0 or ("wal-push" in label and (pushed / name).exists()):
                    raise SystemExit(f"{label} did not answer from the spool: {done.stderr.decode()}")
    print(f"Answer from the spool alone ({runs} runs each, interleaved; ms):")
    for label, t in times.items():
        print(f"  {label:26} p50 {statistics.median(t):6.1f}  p99 {pct(t, 99):6.1f}")
    for label in ("dbkeeper wal-push (spool)", "script wal-push (spool)"):
        extra = statistics.median(times[label]) - statistics.median(times["python -c pass"])
        print(f"  {label} over the bare interpreter: p50 +{extra:.1f} ms", flush=True)


def line(mode: str, r: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items())


def run_mode(mode: str, bindir: Path, args: argparse.Namespace) -> dict[str, float]:
    run_as = _RunAs.detect()
    with archiving_cluster(bindir, settings={"archive_timeout": "5s", "max_wal_size": "1GB"}) as ac:
        shim = ac.home / "shim.sh"
        shim.write_text(SHIM)
        shim.chmod(0o755)
        log = ac.home / "archive.log"
        log.touch()
        run_as.own(log)
        real = archive_command(mode, ac, run_as)
        ac.cluster.psql(f"ALTER SYSTEM SET archive_command = {quote(f'{shim} {log} {real} %p')}")
        ac.cluster.psql("SELECT pg_reload_conf()")
        env = ac.cluster.env()
        subprocess.run(
            [str(bindir / "pgbench"), "-i", "-q", "-s", str(args.scale), "postgres"],
            env=env,
            check=True,
            capture_output=True,
        )
        wait_drained(ac, 300)
        with daemon_if(mode, ac):
            ledger = Ledger(ac, bindir)
            ledger.start()
            lsn0 = lsn(ac)
            sampler = BacklogSampler(ac)
            sampler.start()
            log_mark = len(log.read_text().splitlines())
            t0 = time.monotonic()
            subprocess.run(
                [str(bindir / "pgbench"), "-c", "4", "-j", "2", "-T", str(args.seconds), "postgres"],
                env=env,
                check=True,
                capture_output=True,
            )
            load = time.monotonic() - t0
            wal = lsn(ac) - lsn0
            archived_during = [c for c in calls(log)[log_mark:] if c[2] == 0 and c[0] / 1e9 <= time.time()]
            drain_t0 = time.monotonic()
            wait_drained(ac, 600)
            drain = time.monotonic() - drain_t0
            # A burst: ~args.burst MB of WAL at once (a bulk load), the archive's worst moment.
            burst_mark = len(log.read_text().splitlines())
            b0 = time.monotonic()
            ac.cluster.psql(
                "CREATE TABLE burst AS SELECT g, repeat('x', 900) AS pad"
                f" FROM generate_series(1, {args.burst * 1000}) g"
            )
            burst_wal = time.monotonic() - b0
            wait_drained(ac, 900)
            burst_total = time.monotonic() - b0
            burst_fg = [(b - a) / 1e6 for a, b, rc, name in calls(log)[burst_mark:] if rc == 0 and len(name) == 24]
            time.sleep(args.idle)
            ac.cluster.stop()  # immediate: a crash
            sampler.stop.set()
            ledger.stop.set()
            ledger.join(10)
        fg = [(t1 - t0_) / 1e6 for t0_, t1, rc, name in calls(log)[log_mark:burst_mark] if rc == 0 and len(name) == 24]
        ok_names = [name for _a, _b, rc, name in calls(log) if rc == 0 and len(name) == 24]
        reach = max((walfile.WalName.parse(n).segno(SEG) + 1) * SEG for n in ok_names)
        acked = ledger.acks
        newest = max((t for t, at in acked if at <= reach), default=acked[0][0])
        return {
            "p50": statistics.median(fg),
            "p99": pct(fg, 99),
            "wal_rate": wal / SEG / load,
            "arch_rate": len([c for c in archived_during if len(c[3]) == 24]) / load,
            "backlog_max": sampler.max,
            "drain": drain,
            "rpo": acked[-1][0] - newest,
            "segments": len(fg),
            "burst_segments": len(burst_fg),
            "burst_p50": statistics.median(burst_fg) if burst_fg else 0.0,
            "burst_p99": pct(burst_fg, 99) if burst_fg else 0.0,
            "burst_wal_s": burst_wal,
            "burst_archived_s": burst_total,
        }


def archive_command(mode: str, ac: ArchivingCluster, run_as: _RunAs) -> str:
    dbkeeper = f"env {ac.command} --config {shlex.quote(str(ac.config))} wal-push"
    if mode.startswith("dbkeeper"):
        return dbkeeper
    repo = ac.home / "pgbackrest"
    for d in ("repo", "spool", "lock", "log"):
        (repo / d).mkdir(parents=True, exist_ok=True)
    run_as.own(repo)
    conf = repo / "pgbackrest.conf"
    asynchronous = mode.endswith("async")
    conf.write_text(
        "[global]\n"
        f"repo1-path={repo / 'repo'}\nspool-path={repo / 'spool'}\nlock-path={repo / 'lock'}\n"
        f"log-path={repo / 'log'}\nlog-level-console=warn\nlog-level-file=off\ncompress-type=zst\n"
        + ("archive-async=y\nprocess-max=4\n" if asynchronous else "")
        + f"\n[bench]\npg1-path={ac.cluster.datadir}\npg1-port={ac.cluster.port}\n"
        f"pg1-socket-path={ac.cluster.socket_dir}\n"
    )
    conf.chmod(0o644)
    created = subprocess.run(
        run_as.argv(["pgbackrest", f"--config={conf}", "--stanza=bench", "stanza-create"]),
        capture_output=True,
        text=True,
        cwd="/",
    )
    if created.returncode != 0:
        raise SystemExit(f"pgbackrest stanza-create failed: {created.stdout}{created.stderr}")
    return f"pgbackrest --config={conf} --stanza=bench archive-push"


@contextmanager
def daemon_if(mode: str, ac: ArchivingCluster) -> Iterator[None]:
    if mode != "dbkeeper+daemon":
        yield
        return
    with ac.daemon():
        yield


def calls(log: Path) -> list[tuple[int, int, int, str]]:
    out = []
    for row in log.read_text().splitlines():
        parts = row.split()
        if len(parts) == 4:
            out.append((int(parts[0]), int(parts[1]), int(parts[2]), parts[3]))
    return out


def lsn(ac: ArchivingCluster) -> int:
    return walfile.parse_lsn(ac.cluster.psql("SELECT pg_current_wal_lsn()").strip())


def wait_drained(ac: ArchivingCluster, timeout: float) -> None:
    status = ac.cluster.datadir / "pg_wal" / "archive_status"
    deadline = time.monotonic() + timeout
    while any(p.suffix == ".ready" for p in status.iterdir()):
        if time.monotonic() > deadline:
            raise SystemExit("the archive did not catch up")
        time.sleep(0.1)


class BacklogSampler(threading.Thread):
    def __init__(self, ac: ArchivingCluster) -> None:
        super().__init__(daemon=True)
        self.status = ac.cluster.datadir / "pg_wal" / "archive_status"
        self.max = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            try:
                n = sum(p.suffix == ".ready" for p in self.status.iterdir())
            except OSError:
                return
            self.max = max(self.max, n)


class Ledger(threading.Thread):
    """One psql session committing a row every 100 ms; records (acknowledged at, commit's end LSN)."""

    def __init__(self, ac: ArchivingCluster, bindir: Path) -> None:
        super().__init__(daemon=True)
        self.acks: list[tuple[float, int]] = []
        self.stop = threading.Event()
        ac.cluster.psql("CREATE TABLE IF NOT EXISTS ledger (n int, at timestamptz)")
        self.proc = subprocess.Popen(
            [str(bindir / "psql"), "-X", "-q", "-A", "-t", "postgres"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            env=ac.cluster.env(),
        )

    def run(self) -> None:
        assert self.proc.stdin and self.proc.stdout
        n = 0
        try:
            while not self.stop.is_set():
                n += 1
                self.proc.stdin.write(
                    f"INSERT INTO ledger VALUES ({n}, clock_timestamp()); SELECT pg_current_wal_insert_lsn();\n"
                )
                self.proc.stdin.flush()
                out = self.proc.stdout.readline().strip()
                if not out:
                    return
                self.acks.append((time.time(), walfile.parse_lsn(out)))
                time.sleep(0.1)
        except (BrokenPipeError, ValueError, OSError):
            return
        finally:
            self.proc.kill()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


if __name__ == "__main__":
    raise SystemExit(main())
