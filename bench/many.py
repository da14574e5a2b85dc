"""Many small databases in one run: dbkeeper against the dumps themselves.

    python bench/many.py --url postgresql://postgres@127.0.0.1:5432/postgres --count 50

Creates ``--count`` small databases (two tables, a few thousand rows each), then times, in turn and for
``--rounds`` rounds: every ``pg_dump | gzip -1`` one after the other (the dumps themselves), and ``dbkeeper
backup`` of all of them in one run with ``--parallel-sources 1`` and ``--parallel-sources 4``. Reports medians and
the seconds dbkeeper spends beyond the dumps.
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
from pathlib import Path
from urllib.parse import urlsplit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="a server to create the databases on (its database part is ignored)")
    ap.add_argument("--count", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    parts = urlsplit(args.url)
    env = {
        **os.environ,
        "PGHOST": parts.hostname or "",
        "PGPORT": str(parts.port or 5432),
        "PGUSER": parts.username or "postgres",
    }
    env.pop("PGDATABASE", None)
    base = args.url.rsplit("/", 1)[0]
    names = [f"bench_many_{i:03d}" for i in range(args.count)]
    print(f"creating {args.count} small databases ...", flush=True)
    for name in names:
        subprocess.run(
            ["psql", "-Xq", "-d", "postgres", "-c", f"DROP DATABASE IF EXISTS {name}", "-c", f"CREATE DATABASE {name}"],
            env=env,
            check=True,
        )
        subprocess.run(
            [
                "psql",
                "-Xq",
                "-d",
                name,
                "-c",
                "CREATE TABLE users AS SELECT g AS id, md5(g::text) AS email FROM generate_series(1, 3000) g;"
                "CREATE TABLE events AS SELECT g AS id, g % 3000 AS user_id, now() AS at"
                " FROM generate_series(1, 5000) g; ALTER TABLE users ADD PRIMARY KEY (id);",
            ],
            env=env,
            check=True,
        )
    work = Path(tempfile.mkdtemp(prefix="dbkeeper-many-"))
    urls = [f"{base}/{n}" for n in names]
    results: dict[str, list[float]] = {
        "pg_dump | gzip, one after the other": [],
        "dbkeeper backup --parallel-sources 1": [],
        "dbkeeper backup --parallel-sources 4": [],
    }
    try:
        for r in range(args.rounds):
            t0 = time.perf_counter()
            for name in names:
                with open(work / f"{name}.sql.gz", "wb") as out:
                    dump = subprocess.Popen(["pg_dump", "-d", name], stdout=subprocess.PIPE, env=env)
                    subprocess.run(["gzip", "-1"], stdin=dump.stdout, stdout=out, check=True)
                    assert dump.wait() == 0
            results["pg_dump | gzip, one after the other"].append(time.perf_counter() - t0)
            for jobs in (1, 4):
                store = work / f"store{r}_{jobs}"
                t0 = time.perf_counter()
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "dbkeeper",
                        "backup",
                        *urls,
                        "--parallel-sources",
                        str(jobs),
                        "--store",
                        str(store),
                    ],
                    env=env,
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
                results[f"dbkeeper backup --parallel-sources {jobs}"].append(time.perf_counter() - t0)
                shutil.rmtree(store)
            print(f"  round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in results.items()), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for name in names:
            subprocess.run(["psql", "-Xq", "-d", "postgres", "-c", f"DROP DATABASE IF EXISTS {name}"], env=env)
    med = {k: statistics.median(v) for k, v in results.items()}
    base_s = med["pg_dump | gzip, one after the other"]
    print(f"\n{args.count} databases, {args.rounds} rounds, medians:")
    for k, v in med.items():
        print(f"  {k:<40} {v:6.2f} s   beyond the dumps: {v - base_s:+.2f} s   ratio {v / base_s:.2f}")


if __name__ == "__main__":
    main()
