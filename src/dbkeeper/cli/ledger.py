"""dbkeeper ledger SOURCE: commit a row every few seconds into dbkeeper.ledger, the oracle of PITR drills."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from datetime import timedelta
from typing import Any

from dbkeeper.cli.common import add_json, emit_json, load_config
from dbkeeper.errors import DbkeeperError, UsageError
from dbkeeper.units import parse_duration


def register(sub: Any) -> None:
    p = sub.add_parser(
        "ledger",
        help="write the ledger that point-in-time drills check a restore against",
        description="Commit one row (an id and the time) into dbkeeper.ledger in SOURCE every --every, creating"
        " the table on first use. `drill --pitr` restores to a random time T and checks that the newest ledger"
        " row is at most one interval before T and none is after it. Runs until stopped (`schedule install"
        " --systemd` writes its unit when the PITR drill is scheduled), or once with --once (from cron, with"
        " --every set to the cron line's interval).",
    )
    p.add_argument(
        "source",
        nargs="?",
        metavar="SOURCE",
        help="postgresql:// URL, or a source name from the config (default: the [pitr] source's entry)",
    )
    p.add_argument("--every", metavar="DURATION", default="10s", help="time between rows (default 10s)")
    p.add_argument("--once", action="store_true", help="write one row and exit")
    p.add_argument("--pg-bin", metavar="DIR", help="directory of psql (config pg_bin)")
    add_json(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dbkeeper.engines.postgres.conn import PgConn
    from dbkeeper.pitr import ledger

    cfg = load_config(args)
    every = parse_duration(args.every, "--every")
    if every < timedelta(seconds=1):
        raise UsageError("--every must be at least 1s", "the ledger needs one commit per interval, not a load test")
    given = args.source or cfg.pitr.source
    if not given:
        raise UsageError(
            "no source to write the ledger into", "pass SOURCE (a postgresql:// URL) or set [pitr] source in the config"
        )
    named = cfg.source(given)
    url = named.url if named else given
    if not url.startswith(("postgresql://", "postgres://")):
        raise UsageError(
            f"{given!r} is no PostgreSQL source",
            "give a postgresql:// URL or the name of a config source"
            + ("" if args.source else f" (add a [[sources]] entry named {given!r}, as basebackup uses)"),
        )
    conn = PgConn.from_url(url)
    pg_bin = args.pg_bin or cfg.pg_bin
    if args.once:
        ledger.setup(conn, pg_bin)
        row = ledger.tick(conn, every, pg_bin)
        if args.json:
            emit_json({"ok": True, "id": row.id, "at": row.at.isoformat().replace("+00:00", "Z")})
        return 0
    # Until stopped: SIGTERM (systemd, schedule run) or Ctrl-C end it cleanly, exit 0, between two rows. A
    # database that does not answer (down at boot, restarting) is tried again every interval, table setup included.
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    ready = False
    while not stop.is_set():
        started = time.monotonic()
        try:
            if not ready:
                ledger.setup(conn, pg_bin)
                ready = True
            ledger.tick(conn, every, pg_bin)
        except DbkeeperError as exc:
            sys.stderr.write(f"dbkeeper: ledger: {exc.message}; trying again in {args.every}\n")
            sys.stderr.flush()
        stop.wait(max(0.0, every.total_seconds() - (time.monotonic() - started)))
    return 0
