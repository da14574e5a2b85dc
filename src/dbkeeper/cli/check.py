"""dbkeeper check SOURCE_URL: switch a WAL segment on the server and see it arrive in the archive; exit 0 or 3."""

from __future__ import annotations

import argparse
from typing import Any

from dbkeeper.cli.common import (
    add_json,
    add_spool,
    add_sse,
    add_store,
    add_wal_source,
    emit_json,
    load_config,
    store_url,
    wal_archive,
)
from dbkeeper.errors import EXIT_CHECK


def register(sub: Any) -> None:
    p = sub.add_parser(
        "check",
        help="prove WAL archiving works: switch a segment on the server and wait for it in the store",
        description="Connect to the server as SOURCE_URL says, read its archiving settings (archive_mode,"
        " wal_level, archive_command calling dbkeeper wal-push for this source, archive_library,"
        " archive_timeout), create a restore point named dbkeeper-check-<time>, switch to a new WAL segment and"
        " wait until that segment is in the store. Needs a role allowed to run pg_create_restore_point and"
        " pg_switch_wal (a superuser, or granted). A wal-daemon running here for the cluster must push to the same"
        " source and store (wal-push answers from its spool without reading the config). Exit 3 when something is"
        " wrong.",
    )
    p.add_argument("url", metavar="SOURCE_URL", help="the server, postgresql://user@host:port/db")
    add_wal_source(p)
    p.add_argument("--timeout", metavar="SECONDS", type=float, default=60.0, help="wait this long (default 60)")
    add_store(p)
    add_sse(p)
    add_spool(p)
    add_json(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dbkeeper.engines.postgres.conn import PgConn
    from dbkeeper.pitr.check import check

    cfg = load_config(args)
    arch, _cluster = wal_archive(args, pushing=False)
    report = check(
        PgConn.from_url(args.url),
        arch,
        timeout=args.timeout,
        pg_bin=cfg.pg_bin,
        store=store_url(args, cfg),
        spool_root=args.spool,
    )
    if args.json:
        emit_json(report.to_json())
        return 0 if report.ok else EXIT_CHECK
    s = report.settings
    print(
        f"archive_mode={s.archive_mode} wal_level={s.wal_level} archive_timeout={s.archive_timeout}s"
        f" archive_command={s.archive_command!r}"
    )
    if report.archived_after is not None:
        print(f"{report.segment} (restore point {report.restore_point}) archived after {report.archived_after:.1f}s")
    for w in report.warnings:
        print(f"warning: {w}")
    for problem in report.problems:
        print(f"problem: {problem}")
    print(("OK" if report.ok else "PROBLEM") + f" {report.source_id}/{s.archive_id}")
    return 0 if report.ok else EXIT_CHECK
