"""dbkeeper wal-fetch NAME DEST: PostgreSQL's restore_command.

PostgreSQL reads exit status 1 as "this file is not in the archive": recovery then ends at the last file it
found and the server comes up there. So 1 is said only when the archive does not hold the file. Any other
failure (the store unreachable after retries, a damaged or unsigned object, a missing key) exits 126, which
makes PostgreSQL abort recovery instead of ending it early at the wrong point; nothing is ever left at DEST.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from dbkeeper.cli.common import (
    add_data_dir,
    add_identity,
    add_sse,
    add_store,
    add_verify_key,
    add_wal_source,
    print_error,
    wal_archive,
)
from dbkeeper.errors import DbkeeperError

NOT_ARCHIVED = 1
ABORT = 126


def register(sub: Any) -> None:
    p = sub.add_parser(
        "wal-fetch",
        help="restore one WAL file from the archive (restore_command = 'dbkeeper wal-fetch %%f %%p')",
        description="Write the archived WAL file NAME to DEST, checked against its hash, header and signature."
        " Exit 1 means only that the archive does not hold NAME; any other failure exits 126 so that"
        " PostgreSQL stops recovery rather than ending it at the wrong point.",
    )
    p.add_argument("name", metavar="NAME", help="the WAL file's name (%%f)")
    p.add_argument("dest", metavar="DEST", help="where to write it (%%p)")
    add_wal_source(p)
    add_data_dir(p)
    p.add_argument(
        "--archive-id", metavar="ID", help="the archive (<system id>-<major>); default: the data directory's"
    )
    add_store(p)
    add_sse(p)
    add_identity(p)
    add_verify_key(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dbkeeper.pitr.archive import WalMissing

    try:
        arch, cluster = wal_archive(args, pushing=False)
        aid = args.archive_id or (cluster.archive_id if cluster else None)
        if aid is None:
            raise DbkeeperError(
                "wal-fetch cannot tell which cluster's archive to read",
                "run it from the data directory (restore_command does), or pass --data-dir or --archive-id",
            )
        arch.fetch(aid, args.name, Path(args.dest), cluster)
    except WalMissing:
        return NOT_ARCHIVED
    except DbkeeperError as exc:
        print_error(exc)
        return ABORT
    except Exception as exc:  # anything unforeseen must stop recovery, not end it early as "not archived"
        sys.stderr.write(f"dbkeeper: wal-fetch {args.name} failed: {type(exc).__name__}: {exc}\n")
        return ABORT
    return 0
