"""Real clusters whose archive_command is ``dbkeeper wal-push``, run by the server as PostgreSQL runs it.

The store (a directory the server's OS user may write, or an S3 bucket) and the config live in a directory that
user can read; the command is this checkout's code under an interpreter that user can run (pg.server_dbkeeper).
"""

from __future__ import annotations

import shlex
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pg import Cluster, ClusterError, _RunAs, server_dbkeeper

SOURCE = "main"


@dataclass
class ArchivingCluster:
    cluster: Cluster
    home: Path  # readable by the server's user: the config, and the store when it is a directory
    config: Path
    store: str
    command: str  # the shell prefix that runs dbkeeper as the server does, with its environment

    def current_segment(self) -> str:
        return self.cluster.psql("SELECT pg_walfile_name(pg_current_wal_lsn())").strip()

    def switch(self) -> str:
        """Write a little, force a segment switch, and return the name of the segment that was closed."""
        self.cluster.psql("CREATE TABLE IF NOT EXISTS wal_tick (n int); INSERT INTO wal_tick VALUES (1)")
        name = self.current_segment()
        self.cluster.psql("SELECT pg_switch_wal()")
        return name

    def wait_archived(self, name: str, timeout: float = 60, *, fail_fast: bool = True) -> None:
        """Until pg_stat_archiver says ``name`` (or a later file) was archived; ClusterError with the log if not
        (at once when an archive_command failed, with ``fail_fast``)."""
        deadline = time.monotonic() + timeout
        while True:
            row = self.cluster.psql(
                "SELECT coalesce(last_archived_wal, ''), failed_count, coalesce(last_failed_wal, '')"
                " FROM pg_stat_archiver"
            )
            last, failed, _last_failed = row.split("|")
            if last and last[:24] >= name[:24] and len(last) >= 24:
                return
            if time.monotonic() > deadline or (fail_fast and int(failed) > 0):
                raise ClusterError(f"{name} was not archived within {timeout}s ({row})\n{self.cluster.server_log()}")
            time.sleep(0.1)

    def dbkeeper_argv(self, *args: str) -> list[str]:
        """Argv for a shell that runs dbkeeper as the archive_command does (same env, same config)."""
        return [
            "sh",
            "-c",
            f"{self.command} --config {shlex.quote(str(self.config))} " + " ".join(map(shlex.quote, args)),
        ]


@contextmanager
def archiving_cluster(
    bindir: Path,
    *,
    store: str | None = None,
    env: Mapping[str, str] | None = None,
    settings: Mapping[str, str] | None = None,
    config_extra: str = "",
) -> Iterator[ArchivingCluster]:
    """A new cluster archiving every WAL file with ``dbkeeper wal-push`` into ``store`` (default: a directory)."""
    run_as = _RunAs.detect()
    home = Path(tempfile.mkdtemp(prefix="dbkeeper-archiving-"))
    home.chmod(0o755)
    try:
        store_url = store or str(home / "store")
        if store is None:
            (home / "store").mkdir(mode=0o700)
            run_as.own(home / "store")
        config = home / "dbkeeper.toml"
        config.write_text(f'store = "{store_url}"\n\n[pitr]\nsource = "{SOURCE}"\n{config_extra}')
        config.chmod(0o644)
        prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
        command = f"{prefix} {server_dbkeeper()}".strip()
        archive_command = f"{command} --config {shlex.quote(str(config))} wal-push %p"
        cluster = Cluster.start(
            bindir,
            home / "pg",
            {"archive_mode": "on", "archive_command": archive_command, "wal_level": "replica", **(settings or {})},
        )
        try:
            yield ArchivingCluster(cluster, home, config, store_url, command)
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(home, ignore_errors=True)
