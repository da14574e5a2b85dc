"""dbkeeper against the baselines it replaces, interleaved in one run, reported as medians and ratios.

    python bench/run.py                 # starts a throwaway PostgreSQL 15, builds a ~500 MB database, 3 rounds
    python bench/run.py --mb 1500 --rounds 5 --url postgresql://postgres@127.0.0.1:5432/bench --reuse

Each round runs every command once, in turn, so that a noisy machine slows all of them alike; the report gives
each command's median wall time and peak memory (the largest single process, from wait4) and the ratios the
project's performance goals are stated in. Absolute times on shared machines mean little: read the ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the test harness's throwaway clusters and moto server

import dataset  # noqa: E402

GNU_TIME = "/usr/bin/time" if os.path.exists("/usr/bin/time") else None


@dataclass
class Sample:
    wall: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)


def timed(
    stages: Sequence[Sequence[str]], env: dict[str, str], stdin_file: str | None = None, stdout_file: str | None = None
) -> tuple[float, float]:
    """Run a pipeline of processes (stdout of each into the next); return (wall seconds, peak RSS MB)."""
    procs: list[subprocess.Popen[bytes]] = []
    start = time.perf_counter()
    stdin = open(stdin_file, "rb") if stdin_file else subprocess.DEVNULL  # noqa: SIM115
    stdout = open(stdout_file, "wb") if stdout_file else subprocess.DEVNULL  # noqa: SIM115
    prev = stdin
    rss_files = []
    for i, argv in enumerate(stages):
        last = i == len(stages) - 1
        if GNU_TIME:  # a small parent: wait4's maxrss would otherwise include our own pages, forked before exec
            rss_files.append(tempfile.NamedTemporaryFile(prefix="rss-", delete=False).name)  # noqa: SIM115
            argv = [GNU_TIME, "-f", "%M", "-o", rss_files[-1], *argv]
        p = subprocess.Popen(argv, stdin=prev, stdout=stdout if last else subprocess.PIPE, env=env)
        if i > 0 and procs[-1].stdout:
            procs[-1].stdout.close()
        procs.append(p)
        prev = p.stdout  # type: ignore[assignment]
    peak = 0
    for p in procs:
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        if not GNU_TIME:
            peak = max(peak, usage.ru_maxrss)
        if p.returncode != 0:
            raise SystemExit(f"benchmark command failed ({p.returncode}): {' '.join(p.args)}")  # type: ignore[arg-type]
    wall = time.perf_counter() - start
    for name in rss_files:
        peak = max(peak, int(Path(name).read_text().split()[-1]))
        os.unlink(name)
    for f in (stdin, stdout):
        if hasattr(f, "close"):
            f.close()  # type: ignore[union-attr]
    return wall, peak / 1024


def compile_bytecode() -> None:
    """Byte-compile dbkeeper as pip does when it installs a package: a source checkout run with
    PYTHONDONTWRITEBYTECODE would otherwise compile every module on every run (60 ms each time)."""
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("dbkeeper")
    if spec and spec.submodule_search_locations:
        for where in spec.submodule_search_locations:
            compileall.compile_dir(where, quiet=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=500, help="approximate database size to build")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--url", help="an existing server's database to use (postgresql://user@host:port/db)")
    ap.add_argument("--reuse", action="store_true", help="with --url: do not rebuild the database")
    ap.add_argument("--s3", action="store_true", help="also back up to a local moto_server S3 endpoint")
    ap.add_argument("--only", help="comma-separated subset: backup,restore")
    ap.add_argument(
        "--tenants", type=int, default=1, help="build one schema per tenant (many tables and indexes, same size)"
    )
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="dbkeeper-bench-"))
    cleanup: list[Callable[[], None]] = [lambda: shutil.rmtree(work, ignore_errors=True)]
    try:
        run(args, work, cleanup)
    finally:
        for f in reversed(cleanup):
            f()


def run(args: argparse.Namespace, work: Path, cleanup: list[Callable[[], None]]) -> None:
    if args.url:
        url = args.url
        bindir = Path(shutil.which("pg_dump") or "pg_dump").parent
        env = dict(os.environ)
    else:
        from pg import Cluster

        cluster = Cluster.start(Path("/usr/lib/postgresql/15/bin"), work / "pg")
        cleanup.append(cluster.stop)
        url, bindir, env = cluster.url("bench"), cluster.bindir, cluster.env()
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    db = parts.path.lstrip("/")
    env.update({"PGHOST": parts.hostname or "", "PGPORT": str(parts.port or 5432), "PGUSER": parts.username or ""})
    env.pop("PGDATABASE", None)
    if not (args.url and args.reuse):
        layout = f" in {args.tenants} tenant schemas" if args.tenants > 1 else ""
        print(f"building a ~{args.mb} MB database{layout} (deterministic, seed 1) ...", flush=True)
        os.environ.update({k: env[k] for k in ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD") if k in env})
        dataset.build(url, args.mb, psql=str(bindir / "psql"), tenants=args.tenants)
    size = subprocess.run(
        [bindir / "psql", "-XAtc", f"SELECT pg_size_pretty(pg_database_size('{db}'))", "-d", db],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    if args.s3:
        from s3server import MotoServer, aws_env

        moto = MotoServer().start()
        cleanup.append(moto.stop)
        env.update(aws_env(moto.url, work))
        import boto3

        boto3.client(
            "s3",
            endpoint_url=moto.url,
            region_name=env["AWS_DEFAULT_REGION"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        ).create_bucket(Bucket="bench")

    pg_dump, psql = str(bindir / "pg_dump"), str(bindir / "psql")
    dbk = [sys.executable, "-m", "dbkeeper"]
    compile_bytecode()
    gz = str(work / "baseline.sql.gz")
    commands: dict[str, Callable[[int], tuple[float, float]]] = {}
    only = set((args.only or "backup,restore").split(","))
    if "backup" in only:
        commands["pg_dump > /dev/null"] = lambda i: timed([[pg_dump, "-d", db]], env)
        commands["pg_dump | gzip -6"] = lambda i: timed([[pg_dump, "-d", db], ["gzip", "-6"]], env, stdout_file=gz)
        commands["dbkeeper backup"] = lambda i: timed([[*dbk, "backup", url, "--store", str(work / f"store{i}")]], env)
        commands["dbkeeper backup --compress zstd"] = lambda i: timed(
            [[*dbk, "backup", url, "--compress", "zstd", "--store", str(work / f"zstore{i}")]], env
        )
        if args.s3:
            commands["dbkeeper backup --store s3://"] = lambda i: timed(
                [[*dbk, "backup", url, "--store", f"s3://bench/round{i}"]], env
            )
        commands["dbkeeper backup --format custom"] = lambda i: timed(
            [[*dbk, "backup", url, "--format", "custom", "--store", str(work / f"cstore{i}")]], env
        )
    if "restore" in only:
        if not os.path.exists(gz):
            timed([[pg_dump, "-d", db], ["gzip", "-6"]], env, stdout_file=gz)
        if not (work / "store0").exists():
            timed([[*dbk, "backup", url, "--store", str(work / "store0")]], env)
        if not (work / "custom0").exists():
            timed([[*dbk, "backup", url, "--format", "custom", "--store", str(work / "custom0")]], env)

        def zcat_psql(i: int) -> tuple[float, float]:
            target = f"bench_zcat_{i}"
            subprocess.run(
                [psql, "-Xq", "-d", "postgres", "-c", f"DROP DATABASE IF EXISTS {target}"], env=env, check=True
            )
            t0 = time.perf_counter()
            subprocess.run([psql, "-Xq", "-d", "postgres", "-c", f"CREATE DATABASE {target}"], env=env, check=True)
            _, rss = timed(
                [["zcat", gz], [psql, "-Xq", "-v", "ON_ERROR_STOP=1", "-d", target]],
                {**env, "PGOPTIONS": "-c client_min_messages=warning"},
            )
            return time.perf_counter() - t0, rss

        def dbk_restore(store: str, *extra: str) -> Callable[[int], tuple[float, float]]:
            def run_one(i: int) -> tuple[float, float]:
                target = f"bench_dbk_{i}"
                subprocess.run(
                    [psql, "-Xq", "-d", "postgres", "-c", f"DROP DATABASE IF EXISTS {target}"], env=env, check=True
                )
                argv = [*dbk, "restore", "latest", url.rsplit("/", 1)[0] + "/" + target, "--store", store, *extra]
                return timed([argv], env)

            return run_one

        commands["zcat | psql"] = zcat_psql
        commands["dbkeeper restore"] = dbk_restore(str(work / "store0"))
        commands["dbkeeper restore --jobs 1"] = dbk_restore(str(work / "store0"), "--jobs", "1")
        commands["dbkeeper restore --jobs 2"] = dbk_restore(str(work / "store0"), "--jobs", "2")
        commands["dbkeeper restore (custom) --jobs 2"] = dbk_restore(str(work / "custom0"), "--jobs", "2")

    samples = {name: Sample() for name in commands}

    def settle() -> None:
        """Start each command from the same state: the previous one's dirty pages written out (a restore leaves
        hundreds of MB, whose checkpoint would otherwise land on whichever command runs next)."""
        subprocess.run([psql, "-Xq", "-d", "postgres", "-c", "CHECKPOINT"], env=env, check=True)
        os.sync()

    for i in range(args.rounds):
        for name, command in commands.items():
            settle()
            wall, rss = command(i)
            samples[name].wall.append(wall)
            samples[name].rss_mb.append(rss)
            print(f"  round {i + 1}: {name:<34} {wall:7.2f} s  {rss:6.1f} MB", flush=True)
        for d in work.glob("*store*"):
            shutil.rmtree(d, ignore_errors=True) if d.name not in ("store0", "custom0") else None

    med = {name: statistics.median(s.wall) for name, s in samples.items()}
    print(f"\ndatabase {size}, {args.rounds} rounds, {os.cpu_count()} cores; medians:")
    for name, s in samples.items():
        print(f"  {name:<34} {med[name]:7.2f} s   peak {max(s.rss_mb):6.1f} MB")
    print("\nratios (goal in brackets):")

    def ratio(a: str, b: str, goal: str) -> None:
        if a in med and b in med:
            per_round = [x / y for x, y in zip(samples[a].wall, samples[b].wall, strict=True)]
            print(f"  {a} / {b}: {statistics.median(per_round):.2f}  [{goal}]")

    ratio("dbkeeper backup", "pg_dump > /dev/null", "<= 1.1")
    ratio("dbkeeper backup", "pg_dump | gzip -6", "<= 0.15")
    ratio("dbkeeper backup --compress zstd", "pg_dump > /dev/null", "zstd, for comparison")
    ratio("dbkeeper backup --store s3://", "dbkeeper backup", "<= 1.1")
    ratio("dbkeeper backup --format custom", "pg_dump > /dev/null", "custom archive, for comparison")
    ratio("dbkeeper restore", "zcat | psql", "<= 1.0, aim 0.8")
    ratio("dbkeeper restore --jobs 1", "zcat | psql", "one session, for comparison")
    ratio("dbkeeper restore --jobs 2", "zcat | psql", "two sessions, for comparison")
    ratio("dbkeeper restore (custom) --jobs 2", "zcat | psql", "pg_restore -j 2 against the plain baseline")


if __name__ == "__main__":
    main()
