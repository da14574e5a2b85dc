"""The dashboard on a store of many backups: how long each page takes, against the catalog scan alone.

    python bench/dashboard.py --count 10000 --rounds 5

Makes one real SQLite backup, then plants ``--count`` more from it into a fresh local store (the same data under
new names and times, with their own sidecars and manifests, as a year of frequent backups leaves), starts
``dbkeeper serve`` on it as a real process and times GET requests of the overview, the source's page, one
backup's page and /metrics (the first request, then the median of ``--rounds`` more). The baseline is
``dbkeeper.repo.catalog.scan`` of the same store in this process: reading every manifest once, which is what a
page costs without the dashboard's manifest cache. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from dbkeeper.engines import engine_for  # noqa: E402
from dbkeeper.pipeline import BackupOptions, run_backup  # noqa: E402
from dbkeeper.repo import Repository, catalog, names  # noqa: E402
from dbkeeper.repo.manifest import iso  # noqa: E402
from dbkeeper.storage.local import LocalStore  # noqa: E402

SOURCE = "app"


def plant_store(store_dir: Path, count: int, now: datetime) -> None:
    """One real backup of a small SQLite app, and ``count - 1`` planted like it, one every 50 minutes back."""
    db = store_dir.parent / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER, total REAL)")
        conn.executemany("INSERT INTO users (name) VALUES (?)", [(f"user {i}",) for i in range(200)])
    store = LocalStore(store_dir)
    first = now - timedelta(minutes=50 * (count - 1))
    doc = run_backup(engine_for(str(db)), Repository(store), SOURCE, BackupOptions(), clock=lambda: first)
    data = store.local_path(doc.name).read_bytes()
    parsed = names.parse(doc.name)
    assert parsed is not None
    for i in range(1, count):
        when = first + timedelta(minutes=50 * i)
        name = names.new_name(SOURCE, doc.database, when, parsed.extension).name
        stamp = iso(when)
        grown = {table: rows + i for table, rows in doc.row_counts.items()}
        planted = dataclasses.replace(
            doc, file=names.basename(name), created_at=stamp, completed_at=stamp, row_counts=grown
        )
        store.put(name, [data])
        store.put(names.sidecar(name), [names.sha256_line(planted.sha256, name)])
        store.put(names.manifest(name), [planted.to_json()])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:
        body = response.read()
    return time.perf_counter() - t0, len(body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=10_000, help="backups in the store (default 10000)")
    ap.add_argument("--rounds", type=int, default=5, help="timed requests per page after the first (default 5)")
    ap.add_argument(
        "--refresh",
        default="30s",
        help="serve --refresh (default 30s, as serve's); 0s re-reads the store behind every request: the worst case",
    )
    args = ap.parse_args()
    now = datetime.now(UTC).replace(microsecond=0)
    with tempfile.TemporaryDirectory(prefix="dbkeeper-bench-dashboard-") as tmp:
        store_dir = Path(tmp) / "backups"
        t0 = time.perf_counter()
        plant_store(store_dir, args.count, now)
        print(f"planted {args.count} backups in {time.perf_counter() - t0:.1f} s", flush=True)

        scans = []
        for _ in range(max(args.rounds, 1)):
            t0 = time.perf_counter()
            found = catalog.scan(LocalStore(store_dir), datetime.now(UTC))
            scans.append(time.perf_counter() - t0)
        assert len(found.entries) == args.count, len(found.entries)
        scan = statistics.median(scans)

        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        log = open(Path(tmp) / "serve.log", "w")  # noqa: SIM115 - closed below
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dbkeeper",
                "serve",
                "--store",
                str(store_dir),
                "--listen",
                f"127.0.0.1:{port}",
                "--drill-log",
                str(Path(tmp) / "drills.md"),
                "--refresh",
                args.refresh,
            ],
            env=env,
            cwd=tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    get(base + "/healthz")
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        why = (Path(tmp) / "serve.log").read_text()
                        raise SystemExit(f"dbkeeper serve did not start: {why}") from None
                    time.sleep(0.1)
            newest = found.entries[-1].name
            pages = {
                "overview /": "/",
                f"source /source/{SOURCE}": f"/source/{SOURCE}",
                "backup /backup/…": f"/backup/{newest}",
                "/metrics": "/metrics",
            }
            print(
                f"{args.count} backups, {os.cpu_count()} cores, serve --refresh {args.refresh};"
                f" catalog scan (every manifest read): median {scan * 1000:.0f} ms"
            )
            print(f"{'page':<28} {'first':>9} {'median':>9} {'size':>10} {'median / scan':>14}")
            for label, path in pages.items():
                first, size = get(base + path)
                times = [get(base + path)[0] for _ in range(args.rounds)]
                median = statistics.median(times)
                print(
                    f"{label:<28} {first * 1000:7.0f} ms {median * 1000:7.0f} ms {size / 1024:8.0f} kB"
                    f" {median / scan:14.2f}"
                )
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()


if __name__ == "__main__":
    main()
