"""dbkeeper wal-verify: is the WAL archive whole from the oldest base backup on? Exit 0, or 3 with what is not."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

from dbkeeper.cli.common import (
    add_identity,
    add_json,
    add_sse,
    add_store,
    add_verify_key,
    add_wal_source,
    emit_json,
    load_config,
    wal_archive,
)
from dbkeeper.errors import EXIT_CHECK, UsageError
from dbkeeper.units import format_duration, parse_duration


def register(sub: Any) -> None:
    p = sub.add_parser(
        "wal-verify",
        help="check the WAL archive for gaps, duplicates and a broken timeline history",
        description="For each archive (cluster) of the source: every segment from the oldest base backup's start"
        " (or the first archived segment) to the newest archived one, per timeline, classified FOUND, DELAYED"
        " (still on its way: .ready on the server, or just behind segments the store received in the last --delay)"
        " or LOST (a hole before newer segments); files archived twice with different contents; each timeline's"
        " history file and its parent. --deep reads every object back (decrypt, decompress, hash, signature,"
        " header). Exit 3 when anything is LOST, duplicated or inconsistent.",
    )
    add_wal_source(p)
    p.add_argument("--archive-id", metavar="ID", help="only this archive (<system id>-<major>)")
    p.add_argument(
        "--server",
        metavar="URL",
        help="the running server (postgresql://…): check up to its current segment, its .ready files and timeline",
    )
    p.add_argument("--deep", action="store_true", help="read every object back and check it")
    p.add_argument(
        "--delay",
        metavar="AGE",
        default="1m",
        help="a hole just before segments the store received this recently is DELAYED, not LOST (default 1m)",
    )
    add_store(p)
    add_sse(p)
    add_identity(p)
    add_verify_key(p)
    add_json(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dbkeeper.pitr import walverify

    cfg = load_config(args)
    delay = timedelta(0) if args.delay.strip() in ("0", "0s") else parse_duration(args.delay, "--delay")
    arch, _cluster = wal_archive(args, pushing=False)
    server = None
    settings = None
    if args.server:
        from dbkeeper.engines.postgres.conn import PgConn
        from dbkeeper.pitr.check import server_state

        settings, server = server_state(PgConn.from_url(args.server), cfg.pg_bin)
    ids = [info.archive_id for info in arch.ids()]
    if args.archive_id:
        ids = [a for a in ids if a == args.archive_id]
    elif settings is not None:
        ids = [a for a in ids if a == settings.archive_id] or ids
    if not ids:
        raise UsageError(
            f"the store holds no WAL archive for source {arch.source_id}"
            + (f" with id {args.archive_id}" if args.archive_id else ""),
            "check --source and --store; archive_command creates the archive with the first segment",
        )
    now = datetime.now(UTC)
    reports = []
    for aid in ids:
        on_server = server if settings is not None and settings.archive_id == aid else None
        reports.append(
            walverify.verify(
                arch,
                aid,
                now=now,
                server=on_server,
                deep=args.deep,
                delay=delay,
                read_history=arch.identities is not None or not _encrypted(arch, aid),
            )
        )
    ok = all(r.ok for r in reports)
    if args.json:
        emit_json({"ok": ok, "source": arch.source_id, "archives": [r.to_json() for r in reports]})
        return 0 if ok else EXIT_CHECK
    for r in reports:
        head = "OK" if r.ok else "PROBLEM"
        newest = r.newest.name.text if r.newest else "nothing"
        age = f", received {format_duration(now - r.newest.stored)} ago" if r.newest and r.newest.stored else ""
        print(f"{head} {arch.source_id}/{r.info.archive_id}: from {r.start or '-'} ({r.start_from}) to {newest}{age}")
        for t in r.timelines:
            parts = [f"{t.found} FOUND"]
            if t.delayed:
                parts.append(f"{len(t.delayed)} DELAYED ({t.delayed[0]}…)")
            if t.lost:
                parts.append(f"{len(t.lost)} LOST ({', '.join(t.lost[:3])}{'…' if len(t.lost) > 3 else ''})")
            print(f"  timeline {t.timeline}: {t.first} .. {t.last}: {', '.join(parts)}")
        for problem in r.problems:
            print(f"  problem: {problem}")
        for note in r.notes:
            print(f"  note: {note}")
        if r.deep and not r.damaged:
            print("  every object read back and checked")
    return 0 if ok else EXIT_CHECK


def _encrypted(arch: Any, aid: str) -> bool:
    return any(entry.encrypted for entry in arch.files(aid) if entry.name.kind == "history")
