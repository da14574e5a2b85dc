"""``dbkeeper basebackup``: one physical base backup of a cluster into its WAL archive's ``base/`` directory.

pg_basebackup's tar stream is read on its own thread, split (engines.postgres.basebackup.TarSplit), compressed
with zstd, encrypted when recipients are given, hashed and stored as ``base.tar.zst``; the manifest it carried is
stored after it. Then the WAL range the manifest names must be in the archive (pg_backup_stop already waited for
the archiver; a slow or failing archive_command is caught here), and only then is ``backup.json`` written, signed
when a signing key is given. Any failure, the store going away included, removes what was written and leaves no
backup.json.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dbkeeper import crypto
from dbkeeper.engines.postgres import basebackup as pgbb
from dbkeeper.engines.postgres.conn import PgConn
from dbkeeper.engines.postgres.psql import query
from dbkeeper.errors import CheckFailed, DbkeeperError, UsageError
from dbkeeper.pitr import walfile
from dbkeeper.pitr.archive import WalArchive, archive_id
from dbkeeper.pitr.basebackup import (
    BaseBackup,
    check_incremental_parent,
    list_backups,
    new_writer,
    read_manifest,
    wait_for_wal,
)
from dbkeeper.signing import Signer
from dbkeeper.streams import threaded


@dataclass(frozen=True)
class BaseBackupOptions:
    incremental: bool = False
    recipients: tuple[str, ...] = ()  # age recipients (age1…)
    identities: list[Any] | None = None  # to read an encrypted parent's manifest
    signer: Signer | None = None
    pg_bin: str | None = None
    wal_timeout: float = 120.0


def take(conn: PgConn, archive: WalArchive, options: BaseBackupOptions) -> BaseBackup:
    facts = pgbb.server_facts(conn, options.pg_bin)
    if facts.tablespaces:
        raise UsageError(
            f"the cluster has tablespaces ({', '.join(facts.tablespaces)}): dbkeeper basebackup streams one tar and"
            " takes clusters with pg_default and pg_global only",
            "move those tables into pg_default, or back this cluster up with pg_basebackup -Ft into a directory",
        )
    if facts.archive_mode == "off":
        raise UsageError(
            "the cluster does not archive its WAL (archive_mode = off): a base backup without its WAL restores nothing",
            f"set archive_mode = on and archive_command = 'dbkeeper wal-push %p --source {archive.source_id}'"
            " (a restart), then back up",
        )
    aid = archive_id(facts.sysid, facts.major)
    _wait_for_archive(conn, archive, aid, options)
    client = pgbb.basebackup_client(facts.major, options.pg_bin)
    kind = "incremental" if options.incremental else "full"
    parent = None
    with tempfile.TemporaryDirectory(prefix="dbkeeper-basebackup-") as tmp:
        parent_manifest = None
        if options.incremental:
            if facts.major < 17:
                raise UsageError(f"incremental base backups need PostgreSQL 17 or later, this is {facts.version}")
            if not facts.summarize_wal:
                raise UsageError(
                    "incremental base backups need summarize_wal = on", "set it in postgresql.conf and reload"
                )
            parent = check_incremental_parent(list_backups(archive, aid, archive.verify_key), aid)
            parent_manifest = Path(tmp) / "parent_manifest"
            parent_manifest.write_bytes(read_manifest(archive, parent, options.identities))
        started = _server_now(conn, options.pg_bin)
        t0 = time.monotonic()
        writer = new_writer(
            archive, aid, started, kind, crypto.parse_recipients(options.recipients) if options.recipients else []
        )
        try:
            split = pgbb.TarSplit()
            label = f"dbkeeper {archive.source_id} {writer.id}"
            with pgbb.run(conn, client, label=label, incremental=parent_manifest) as tar:
                base = writer.put("base.tar", split.split(threaded(tar)), "zstd")
            manifest = pgbb.BackupManifest.parse(bytes(split.manifest))
            if manifest.system_identifier not in (None, facts.sysid):
                raise UsageError("pg_basebackup backed up another cluster than the one dbkeeper asked about")
            stored_manifest = writer.put("backup_manifest", [bytes(split.manifest)], "zstd")
            seg = facts.wal_segment_size
            ranges = [
                (r.timeline, walfile.parse_lsn(r.start_lsn), walfile.parse_lsn(r.end_lsn)) for r in manifest.wal_ranges
            ]
            seg_ranges = [(t, a // seg, max(b - 1, a) // seg) for t, a, b in ranges]
            wait_for_wal(archive, aid, seg_ranges, seg, options.wal_timeout)
            info = archive.info(aid)
            if info is None or info.seg_size != seg:
                raise CheckFailed(f"the archive {aid} does not describe this cluster's {seg}-byte segments")
            stopped = _server_now(conn, options.pg_bin)
            doc = BaseBackup(
                id=writer.id,
                kind=kind,
                parent=parent.id if parent else None,
                label=label,
                source_id=archive.source_id,
                archive_id=aid,
                pg_version=facts.version,
                pg_major=facts.major,
                system_identifier=facts.sysid,
                wal_segment_size=seg,
                timeline=ranges[0][0],
                start_lsn=ranges[0][1],
                stop_lsn=ranges[-1][2],
                start_time=started,
                stop_time=stopped,
                created_at=datetime.now(UTC).replace(microsecond=0),  # to the second, like a dump's manifest
                duration_s=round(time.monotonic() - t0, 3),
                wal_ranges=tuple(ranges),
                objects=(base, stored_manifest),
                manifest_checksum=manifest.checksum,
                compression="zstd",
                recipients=options.recipients,
                wal_verified=True,
            )
            writer.commit(doc, options.signer)
        except BaseException:
            writer.abandon()
            raise
    return doc


def _server_now(conn: PgConn, pg_bin: str | None) -> datetime:
    """The server's clock (the one commit timestamps and recovery targets use), to the microsecond."""
    text = query(
        conn, "SELECT extract(epoch FROM clock_timestamp())", pg_bin=pg_bin, doing="reading the server's clock"
    )
    return datetime.fromtimestamp(float(text[0][0]), UTC)


def _wait_for_archive(conn: PgConn, archive: WalArchive, aid: str, options: BaseBackupOptions) -> None:
    """The archive must exist before the backup writes beside it: on a new cluster nothing was archived yet, so
    a segment switch starts it. (A directory store then keeps the archive's directories as wal-push made them,
    for the server's OS user, whoever runs the base backup.)"""
    if archive.info(aid) is not None:
        return
    with contextlib.suppress(DbkeeperError):  # without the privilege, wait for the archiver anyway
        query(conn, "SELECT pg_switch_wal()", pg_bin=options.pg_bin, doing="switching to a new WAL segment")
    deadline = time.monotonic() + options.wal_timeout
    while archive.info(aid) is None:
        if time.monotonic() > deadline:
            raise CheckFailed(
                f"the store holds no WAL archive of this cluster ({aid}) under source {archive.source_id}, and none"
                f" appeared within {options.wal_timeout:g} s",
                f"check archive_command = 'dbkeeper wal-push %p --source {archive.source_id}' and the server log",
            )
        time.sleep(0.5)
