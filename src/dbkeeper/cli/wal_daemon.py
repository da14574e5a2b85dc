"""dbkeeper wal-daemon: push WAL ahead of PostgreSQL's archiver (and fetch it ahead of recovery with --prefetch).

Runs until SIGTERM or Ctrl-C (systemd: ``dbkeeper schedule install --systemd`` writes ``dbkeeper-wal-daemon.service``
when ``[pitr] daemon = true``), as the user PostgreSQL runs as. See pitr/daemon.py for what it does and why a
daemon killed at any moment loses nothing.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from dbkeeper.cli.common import (
    add_identity,
    add_json,
    add_spool,
    add_sse,
    add_store,
    add_verify_key,
    add_wal_source,
    emit_json,
    load_config,
    store_url,
    wal_archive,
)
from dbkeeper.errors import UsageError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "wal-daemon",
        help="push WAL files ahead of archive_command, fetch them ahead of restore_command (runs until stopped)",
        description="Watch the data directory's pg_wal/archive_status/*.ready files and push them to the WAL"
        " archive in parallel, writing an acknowledgement to the spool after the store has each one: `dbkeeper"
        " wal-push` (archive_command) then answers from the spool in milliseconds. It never renames a .ready"
        " file itself. With --prefetch N during a restore, it fetches and checks the N segments after the one"
        " restore_command last asked for, and `dbkeeper wal-fetch` serves them by a rename.",
    )
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="the cluster's data directory (default: config [pitr] data_dir, else $PGDATA, else the working directory)",
    )
    add_wal_source(p)
    add_store(p)
    add_sse(p)
    add_spool(p)
    p.add_argument("--parallel", metavar="N", type=int, default=4, help="pushes at once (default 4)")
    p.add_argument(
        "--prefetch", metavar="N", type=int, default=0, help="during recovery, fetch N segments ahead (default 0)"
    )
    p.add_argument("--poll", metavar="SECONDS", type=float, default=0.05, help=argparse.SUPPRESS)
    p.add_argument("--sign-key", metavar="FILE", help="sign each file with this key (config [signing] key)")
    p.add_argument(
        "--encrypt-to", metavar="RECIPIENT", action="append", help="age recipient (config [encryption] recipients)"
    )
    add_identity(p)
    add_verify_key(p)
    add_json(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dbkeeper.pitr.daemon import Daemon
    from dbkeeper.pitr.spool import root, store_key

    if not 0 < args.poll <= 10:
        raise UsageError("--poll must be between 0 and 10 seconds")
    cfg = load_config(args)
    if not args.data_dir:
        args.data_dir = cfg.pitr.data_dir or os.environ.get("PGDATA") or os.getcwd()
    arch, _cluster = wal_archive(args, pushing=True, fetching=True)
    daemon = Daemon(
        arch,
        Path(args.data_dir),
        root(args.spool),
        store_key(store_url(args, cfg)),
        parallel=args.parallel,
        prefetch=args.prefetch,
        poll=args.poll,
        log=_log,
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    sys.stderr.write(
        f"dbkeeper wal-daemon: watching {daemon.data_dir} for source {arch.source_id} ({daemon.aid}),"
        f" {args.parallel} at once, spool {daemon.spool.dir}\n"
    )
    sys.stderr.flush()
    daemon.run(stop)
    s = daemon.stats
    if args.json:
        emit_json({"ok": True, "pushed": s.pushed, "failed": s.failed, "prefetched": s.prefetched})
    else:
        sys.stderr.write(f"dbkeeper wal-daemon: stopped after {s.pushed} pushed, {s.failed} failed\n")
    return 0


def _log(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
