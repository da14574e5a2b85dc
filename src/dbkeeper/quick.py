"""The program's entry point: ``wal-push`` and ``wal-fetch`` answered from the WAL daemon's spool when they can be,
everything else (and those, when they cannot) handed to ``dbkeeper.cli``.

PostgreSQL runs archive_command and restore_command once per WAL file and waits for each, so their fast answer
must cost little more than the interpreter's start: this module and what it imports (pitr.spool,
pitr.datadir) use only ``os``, ``json``, ``hashlib``, ``fcntl``, ``struct`` and ``time``; not argparse, not the
configuration, not the store. Only the plain forms are answered here::

    [--config F] wal-push PATH [--source S] [--data-dir D] [--store S] [--spool D]
    [--config F] wal-fetch NAME DEST [--source S] [--data-dir D] [--store S] [--spool D] [--archive-id ID]

Any other option (--json, keys, S3 options) or anything unexpected goes to the full command, which checks and
reports it. The full command is also what runs when the spool has no answer: a synchronous push or fetch.
"""

from __future__ import annotations

import os
import sys

DAEMON_WAIT = 30.0  # how long wal-push waits for a running daemon's acknowledgement before pushing it itself
_PUSH_OPTIONS = ("--config", "--source", "--data-dir", "--store", "--spool")
_FETCH_OPTIONS = (*_PUSH_OPTIONS, "--archive-id")


def main() -> int:
    words = sys.argv[1:]
    answer = None
    if "wal-push" in words or "wal-fetch" in words:
        try:
            answer = wal_push(words) if "wal-push" in words else wal_fetch(words)
        except Exception:  # the full command reports whatever is wrong, after trying for real
            answer = None
    if answer is not None:
        return answer
    from dbkeeper.cli import main as full

    return full(words)


def wal_push(words: list[str]) -> int | None:
    """0 when a running ``wal-daemon`` pushed this file's exact bytes (size and SHA-256, to the --source and
    --store given, if any); None otherwise."""
    found = options(words, "wal-push", ("path",), _PUSH_OPTIONS)
    if found is None:
        return None
    from dbkeeper.pitr import datadir, spool

    data_dir = found.get("--data-dir") or os.getcwd()
    cluster = datadir.cluster_of(data_dir)
    if cluster is None:
        return None
    box = spool.Spool(spool.root(found.get("--spool")), cluster.archive_id)
    path = found["path"]
    if not box.answer(
        path, source=found.get("--source"), store=found.get("--store"), wait=DAEMON_WAIT, datadir=data_dir
    ):
        return None
    box.forget(os.path.basename(path))
    return 0


def wal_fetch(words: list[str]) -> int | None:
    """0 when the WAL daemon prefetched NAME (now moved to DEST); None otherwise."""
    found = options(words, "wal-fetch", ("name", "dest"), _FETCH_OPTIONS)
    if found is None:
        return None
    from dbkeeper.pitr import datadir, spool

    cluster = datadir.cluster_of(found.get("--data-dir") or os.getcwd())
    aid = found.get("--archive-id") or (cluster.archive_id if cluster else None)
    name = found["name"]
    if not aid or "/" in aid or "/" in name or name.startswith("."):
        return None
    box = spool.Spool(spool.root(found.get("--spool")), aid)
    return 0 if box.take_prefetched(name, found["dest"]) else None


def options(
    words: list[str], command: str, positionals: tuple[str, ...], values: tuple[str, ...]
) -> dict[str, str] | None:
    """``{"--opt": value, positional: value}`` for ``[--config F] COMMAND POSITIONALS… [--opt V | --opt=V]…`` when
    every option is one of ``values`` (given once) and every positional is there; None for anything else."""
    out: dict[str, str] = {}
    command_seen = False
    wanted = list(positionals)
    i = 0
    while i < len(words):
        word = words[i]
        key, eq, value = word.partition("=")
        if key in values:
            if not eq:
                if i + 1 >= len(words):
                    return None
                i, value = i + 1, words[i + 1]
            if key in out or (key == "--config") == command_seen:  # --config before the command, the rest after
                return None
            out[key] = value
        elif word.startswith("-"):
            return None
        elif not command_seen and word == command:
            command_seen = True
        elif command_seen and wanted:
            out[wanted.pop(0)] = word
        else:
            return None
        i += 1
    return out if command_seen and not wanted else None
