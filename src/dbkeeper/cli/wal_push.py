"""dbkeeper wal-push PATH: PostgreSQL's archive_command.

PostgreSQL reads the exit status alone: 0 means "archived, you may recycle the file", anything else "try again
later". A status above 125 or a signal would also restart the archiver process and hide the failure from
``pg_stat_archiver``, so every failure here, a usage error included, exits 1 with one line in the server's log.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from dbkeeper.cli.common import add_data_dir, add_json, add_sse, add_store, add_wal_source, emit_json, wal_archive

EXIT_ONLY = (0, 1)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "wal-push",
        help="archive one WAL file (archive_command = 'dbkeeper wal-push %%p')",
        description="Check a WAL file against its name and cluster, hash, compress (zstd), optionally encrypt and"
        " sign it, and store it under pitr/<source>/ in the store. Exits 0 only once the store has it; an"
        " identical file already archived is success, different bytes under an archived name are refused.",
    )
    p.add_argument("path", metavar="PATH", help="the WAL file (%%p: relative to the data directory)")
    add_wal_source(p)
    add_data_dir(p)
    add_store(p)
    add_sse(p)
    p.add_argument("--sign-key", metavar="FILE", help="sign each file with this key (config [signing] key)")
    p.add_argument(
        "--encrypt-to", metavar="RECIPIENT", action="append", help="age recipient (config [encryption] recipients)"
    )
    add_json(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    arch, cluster = wal_archive(args, pushing=True)
    result = arch.push(Path(args.path), cluster)
    if args.json:
        emit_json(
            {
                "ok": True,
                "file": result.file,
                "object": result.object,
                "duplicate": result.duplicate,
                "raw_bytes": result.raw_bytes,
                "stored_bytes": result.stored_bytes,
            }
        )
    elif result.duplicate:
        sys.stderr.write(f"dbkeeper: {result.file} was already archived with the same contents\n")
    return 0
