"""``dbkeeper restore --pitr DATADIR``: a new data directory, replayed from a base backup and the WAL archive to a
point (a time, an LSN, a named restore point, or the archive's end), checked while paused there, then promoted.

Order, so that a refusal costs nothing and a failure leaves nothing:

1. Plan (no writes): the newest good base backup (backup.json present and, with a verify key, signed) that
   ended before the target, on the target timeline's ancestry; the WAL it needs, from its start segment through
   each timeline switch to the target's segment (or the archive's last one), checked present. A gap is refused
   naming the first missing segment; so are a target before every backup's end and one past the archive's end.
2. Unpack into DATADIR (empty or absent; 0700; owned by the server's user), through ``pg_combinebackup`` for an
   incremental backup, then ``pg_verifybackup -n`` (the WAL comes from the archive at replay).
3. Recovery settings appended to ``postgresql.auto.conf`` (``restore_command`` = ``dbkeeper wal-fetch``, the
   target, ``recovery_target_action = 'pause'``, the timeline, ``archive_mode = off``) and ``recovery.signal``.
4. Start the server (socket only), wait for the pause at the target: not ``pg_ctl -w``, which returns 0 although
   recovery may still end in "recovery ended before configured recovery target was reached".
5. At the pause: the smoke file, the point reached (last replayed LSN and commit time), then promote, or leave it
   paused with ``--action pause``. The server is stopped afterwards unless ``--keep-running``.

Any failure after step 1 stops the server and removes what was written into DATADIR.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dbkeeper.engines.postgres import basebackup as pgbb
from dbkeeper.engines.postgres.clients import pick
from dbkeeper.engines.postgres.recovery import RecoveryServer, conf_line, give_to_server_user
from dbkeeper.errors import DbkeeperError, RestoreError, UsageError
from dbkeeper.pitr import walfile
from dbkeeper.pitr.archive import WalArchive
from dbkeeper.pitr.basebackup import BaseBackup, Listed, list_backups, open_object

NOT_REACHED = "recovery ended before configured recovery target was reached"
STORE_SLACK = timedelta(seconds=1)


@dataclass(frozen=True)
class Target:
    kind: str  # time | lsn | name | latest
    time: datetime | None = None
    lsn: int | None = None
    name: str | None = None

    def describe(self) -> str:
        if self.kind == "time" and self.time is not None:
            return f"time {self.time.isoformat()}"
        if self.kind == "lsn" and self.lsn is not None:
            return f"LSN {walfile.format_lsn(self.lsn)}"
        if self.kind == "name":
            return f"restore point {self.name!r}"
        return "the end of the archive"


def parse_time(text: str) -> datetime:
    """An ISO 8601 time; one without a zone is UTC (the store's and the logs' zone)."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{text!r} is not a time", "write it as 2026-11-30T03:00:00Z (ISO 8601, UTC)") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class PitrRequest:
    datadir: Path
    target: Target
    timeline: str = "current"  # current | latest | a number
    action: str = "promote"  # promote | pause
    backup: str | None = None  # a base backup id, else the newest that fits
    port: int = 5432
    socket_dir: Path | None = None
    smoke: Path | None = None
    smoke_db: str = "postgres"
    keep_running: bool = False
    fetch_command: str = "dbkeeper"  # what restore_command runs: the dbkeeper PostgreSQL's user can run
    fetch_args: tuple[str, ...] = ()  # --source, --store, --config for wal-fetch
    pg_bin: str | None = None
    identities: list[Any] | None = None
    timeout: float = 3600.0
    sandbox: bool = False  # a drill's throwaway cluster: trust on its private socket, whatever the source's hba said


@dataclass(frozen=True)
class Plan:
    backup: BaseBackup
    chain: tuple[Listed, ...]  # the full backup, then the incremental when there is one
    timeline: int  # the target timeline resolved to a number
    segments: tuple[tuple[int, int, int], ...]  # (timeline, first, last segno) to replay
    history: dict[int, bytes] = field(default_factory=dict)

    @property
    def segment_count(self) -> int:
        return sum(b - a + 1 for _t, a, b in self.segments)


@dataclass
class PitrResult:
    datadir: str
    backup: str
    target: str
    action: str
    timeline: int
    segments: int
    reached_lsn: str | None = None
    reached_time: str | None = None
    unpack_s: float = 0.0
    replay_s: float = 0.0
    rto_s: float = 0.0
    replay_bytes: int = 0
    smoke: str | None = None
    running: bool = False
    socket_dir: str | None = None
    port: int | None = None

    @property
    def replay_rate(self) -> float:
        """Bytes of WAL replayed per second of replay."""
        return self.replay_bytes / self.replay_s if self.replay_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "replay_rate_bytes_per_s": round(self.replay_rate)}


# -- 1. the plan ----------------------------------------------------------------------------------------------


def ancestry(history: dict[int, bytes], timeline: int) -> list[tuple[int, int | None]]:
    """(timeline, the LSN where it ends, None for the last) from the oldest ancestor to ``timeline``."""
    if timeline == 1:
        return [(1, None)]
    if timeline not in history:
        raise UsageError(f"the archive holds no history file for timeline {timeline}", "give --timeline current")
    entries = walfile.history_entries(history[timeline])
    return [*entries, (timeline, None)]


def resolve_timeline(spec: str, backup: BaseBackup, history: dict[int, bytes]) -> int:
    if spec == "current":
        return backup.timeline
    if spec == "latest":
        newest = max(history, default=backup.timeline)
        return max(newest, backup.timeline)
    if spec.isdigit() and int(spec) >= 1:
        return int(spec)
    raise UsageError(f"--timeline {spec!r}", "give current, latest or a timeline number")


def plan(archive: WalArchive, request: PitrRequest, now: datetime) -> Plan:
    target = request.target
    if target.kind == "time" and target.time is not None and target.time > now:
        raise UsageError(
            f"the target {target.time.isoformat()} is in the future",
            "give a time in the past, or --to-latest for everything archived",
        )
    listed = list_backups(archive, None, archive.verify_key)
    good = [e for e in listed if e.good and e.backup is not None]
    if not good:
        broken = [e for e in listed if e.status == "broken"]
        raise RestoreError(
            f"no good base backup of {archive.source_id} in {archive.store.url}"
            + (f" ({len(broken)} broken: {broken[0].id}: {broken[0].problem})" if broken else ""),
            "take one with `dbkeeper basebackup` (restore to a time needs a base backup before it)",
        )
    by_id = {(e.archive_id, e.id): e for e in good}
    if request.backup:
        chosen = [e for e in good if e.id == request.backup]
        if not chosen:
            raise UsageError(f"no good base backup {request.backup!r}", "pick an id `dbkeeper list --pitr` shows")
        candidates = chosen
    else:
        candidates = [e for e in good if _ends_before(e.backup, target)]  # type: ignore[arg-type]
        if not candidates:
            oldest = min(good, key=lambda e: e.backup.stop_time)  # type: ignore[union-attr]
            assert oldest.backup is not None
            raise RestoreError(
                f"the target {target.describe()} is before the end of every base backup (the oldest, {oldest.id},"
                f" is consistent from {oldest.backup.stop_time.isoformat()} / LSN"
                f" {walfile.format_lsn(oldest.backup.stop_lsn)})",
                "a base backup can only be rolled forward: pick a later target, or restore a logical backup",
            )
    histories: dict[str, dict[int, bytes]] = {}
    errors: list[DbkeeperError] = []
    for entry in sorted(candidates, key=lambda e: e.backup.stop_time, reverse=True):  # type: ignore[union-attr]
        assert entry.backup is not None
        if entry.archive_id not in histories:
            histories[entry.archive_id] = archive.history(entry.archive_id)
        history = histories[entry.archive_id]
        tli = resolve_timeline(request.timeline, entry.backup, history)
        path = ancestry(history, tli)
        if entry.backup.timeline not in [t for t, _end in path]:
            errors.append(UsageError(f"{entry.id} is on timeline {entry.backup.timeline}, not an ancestor of {tli}"))
            continue
        chain = [entry]
        if entry.backup.parent is not None:
            parent = by_id.get((entry.archive_id, entry.backup.parent))
            if parent is None:
                errors.append(RestoreError(f"{entry.id} is incremental and its parent {entry.backup.parent} is gone"))
                continue
            chain.insert(0, parent)
        segments = _segments(archive, entry.backup, path, target)
        return Plan(entry.backup, tuple(chain), tli, tuple(segments), history)
    raise errors[0] if errors else RestoreError("no base backup fits the target")


def _ends_before(backup: BaseBackup, target: Target) -> bool:
    if target.kind == "time":
        assert target.time is not None
        return backup.stop_time <= target.time
    if target.kind == "lsn":
        assert target.lsn is not None
        return backup.stop_lsn <= target.lsn
    return True


def _segments(
    archive: WalArchive, backup: BaseBackup, path: list[tuple[int, int | None]], target: Target
) -> list[tuple[int, int, int]]:
    """The WAL to replay, per timeline, checked present; RestoreError naming the first gap or the archive's end."""
    seg = backup.wal_segment_size
    aid = backup.archive_id
    files = archive.files(aid)
    out: list[tuple[int, int, int]] = []
    cur = backup.start_segno
    on_path = False
    for tli, end in path:
        if tli == backup.timeline:
            on_path = True
        if not on_path:
            continue
        if end is not None:
            last = walfile.lsn_segno(end, seg) - 1
            if last >= cur:
                out.append((tli, cur, last))
            cur = max(cur, walfile.lsn_segno(end, seg))
            continue
        have = [f.name.segno(seg) for f in files if f.name.kind == "segment" and f.name.timeline == tli]
        newest = max(have, default=cur - 1)
        if target.kind == "lsn":
            assert target.lsn is not None
            wanted = walfile.lsn_segno(target.lsn, seg)
            if wanted > newest:
                raise RestoreError(
                    f"the target LSN {walfile.format_lsn(target.lsn)} is past the archive's end (its last segment on"
                    f" timeline {tli} is {walfile.segment_name(tli, newest, seg) if have else 'none'})",
                    "pick an earlier target, or --to-latest; check that archive_command still runs",
                )
            newest = wanted
        out.append((tli, cur, max(newest, cur)))
    if target.kind == "time":
        assert target.time is not None
        stored = [f.stored for f in files if f.stored is not None]
        if stored and max(stored) + STORE_SLACK < target.time:
            raise RestoreError(
                f"the target {target.time.isoformat()} is past the archive's end: its newest WAL was stored at"
                f" {max(stored).isoformat()}, so no transaction after the target can be replayed to stop at it",
                "pick an earlier time, or --to-latest; check that archive_command still runs (archive_timeout)",
            )
    for tli, a, b in out:
        missing = archive.missing(aid, tli, a, b, seg)
        if missing:
            raise RestoreError(
                f"WAL segment {missing[0]} is missing from the archive"
                + (f" ({len(missing)} segments missing)" if len(missing) > 1 else "")
                + f": base backup {backup.id} cannot be replayed past it; nothing was restored",
                "run `dbkeeper wal-verify`; restore to a time before the gap (--to-time), or from a later base backup",
            )
    return out


# -- 2-5. the restore --------------------------------------------------------------------------------------------


def restore_to_point(
    archive: WalArchive,
    request: PitrRequest,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    say: Callable[[str], None] = lambda _line: None,
) -> PitrResult:
    t0 = time.monotonic()
    datadir = request.datadir.absolute()
    if request.target.kind == "latest" and request.action == "pause":
        raise UsageError("--to-latest ends recovery at the archive's end: it cannot pause there", "drop --action pause")
    existed = datadir.exists()
    if existed and (not datadir.is_dir() or any(datadir.iterdir())):
        raise UsageError(f"{datadir} is not empty", "restore into an empty or new directory")
    p = plan(archive, request, clock())
    say(f"base backup {p.backup.id} ({p.backup.kind}), then {p.segment_count} WAL segments to timeline {p.timeline}")
    result = PitrResult(
        str(datadir), p.backup.id, request.target.describe(), request.action, p.timeline, p.segment_count
    )
    server: RecoveryServer | None = None
    own_socket: Path | None = None
    try:
        _unpack(archive, p, datadir, request)
        result.unpack_s = round(time.monotonic() - t0, 3)
        say(f"unpacked and verified in {result.unpack_s:.1f}s")
        _configure(datadir, request, p)
        give_to_server_user(datadir)
        datadir.chmod(0o700)
        socket_dir = request.socket_dir
        if socket_dir is None:
            own_socket = socket_dir = Path(tempfile.mkdtemp(prefix="dbkeeper-pitr-"))
            give_to_server_user(socket_dir)
        pg_ctl = pick("pg_ctl", p.backup.pg_major, request.pg_bin)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        server = RecoveryServer.for_datadir(datadir, pg_ctl, socket_dir, request.port, env)
        t_start = time.monotonic()
        server.start()
        state = _wait(server, request, p)
        result.replay_s = round(time.monotonic() - t_start, 3)
        result.reached_lsn, result.reached_time = state.replay_lsn, state.replay_time
        if state.replay_lsn:
            result.replay_bytes = max(walfile.parse_lsn(state.replay_lsn) - p.backup.start_lsn, 0)
        if request.smoke is not None:
            result.smoke = server.sql_file(request.smoke, request.smoke_db)
        if request.action == "promote" and state.in_recovery:
            server.promote()
        result.rto_s = round(time.monotonic() - t0, 3)
        if request.keep_running:
            result.running, result.socket_dir, result.port = True, str(socket_dir), request.port
            own_socket = None
        else:
            server.stop()
    except BaseException:
        if server is not None:
            with contextlib.suppress(DbkeeperError, OSError):
                server.stop("immediate")
        _remove_contents(datadir, existed)
        raise
    finally:
        if own_socket is not None:
            shutil.rmtree(own_socket, ignore_errors=True)
    return result


def _unpack(archive: WalArchive, p: Plan, datadir: Path, request: PitrRequest) -> None:
    verify = pick("pg_verifybackup", p.backup.pg_major, request.pg_bin)
    if len(p.chain) == 1:
        _unpack_one(archive, p.chain[0], datadir, request.identities)
    else:
        combine = pick("pg_combinebackup", p.backup.pg_major, request.pg_bin)
        with tempfile.TemporaryDirectory(prefix=".dbkeeper-combine-", dir=datadir.parent) as tmp:
            dirs = []
            for entry in p.chain:
                d = Path(tmp) / entry.id
                _unpack_one(archive, entry, d, request.identities)
                dirs.append(d)
            if datadir.exists():
                datadir.rmdir()
            pgbb.combine(dirs, datadir, combine)
    pgbb.verify(datadir, verify)


def _unpack_one(archive: WalArchive, entry: Listed, into: Path, identities: list[Any] | None) -> None:
    assert entry.backup is not None
    into.mkdir(mode=0o700, parents=True, exist_ok=True)
    pgbb.TarUnpack(into).run(open_object(archive, entry, entry.backup.object("base.tar"), identities))
    manifest = b"".join(open_object(archive, entry, entry.backup.object("backup_manifest"), identities))
    fd = os.open(into / "backup_manifest", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(manifest)


def _configure(datadir: Path, request: PitrRequest, p: Plan) -> None:
    fetch = " ".join([request.fetch_command, "wal-fetch", "%f", "%p", *request.fetch_args])
    lines = [f"\n# dbkeeper restore --pitr: replay base backup {p.backup.id} to {request.target.describe()}\n"]
    lines.append(conf_line("restore_command", fetch))
    t = request.target
    if t.kind == "time" and t.time is not None:
        lines.append(conf_line("recovery_target_time", t.time.isoformat(sep=" ")))
    elif t.kind == "lsn" and t.lsn is not None:
        lines.append(conf_line("recovery_target_lsn", walfile.format_lsn(t.lsn)))
    elif t.kind == "name" and t.name is not None:
        lines.append(conf_line("recovery_target_name", t.name))
    if t.kind != "latest":
        lines.append(conf_line("recovery_target_action", "pause"))
    lines.append(conf_line("recovery_target_timeline", str(p.timeline)))
    lines.append(conf_line("archive_mode", "off"))
    if request.sandbox:
        # Only the private socket directory (0700, the server's user) reaches it: the source's pg_hba.conf (passwords
        # this host does not have) has no say in a throwaway copy.
        (datadir / "pg_hba_sandbox.conf").write_text("local all all trust\n")
        lines.append(conf_line("hba_file", str(datadir / "pg_hba_sandbox.conf")))
    with open(datadir / "postgresql.auto.conf", "a") as f:
        f.writelines(lines)
    (datadir / "recovery.signal").touch(mode=0o600)
    if not (datadir / "postgresql.conf").exists():  # Debian keeps it in /etc: the server needs one to start
        (datadir / "postgresql.conf").write_text("# written by dbkeeper restore --pitr: defaults\n")
    if not (datadir / "pg_hba.conf").exists():
        (datadir / "pg_hba.conf").write_text("local all all peer\n")


def _wait(server: RecoveryServer, request: PitrRequest, p: Plan) -> Any:
    """Until replay pauses at the target (or, for --to-latest, recovery ends); RestoreError as soon as the log
    says recovery ended short of the target or the server stopped."""
    started = time.monotonic()
    deadline = started + request.timeout
    while True:
        log = server.log_text()
        if NOT_REACHED in log:
            raise RestoreError(
                f"recovery ended before it reached the target {request.target.describe()}: the archive holds no WAL"
                " that far" + (" (no transaction after that time)" if request.target.kind == "time" else ""),
                "pick an earlier target, or --to-latest; `dbkeeper wal-verify` shows the archive's end",
            )
        state = server.state()
        if state is not None and (state.paused or not state.in_recovery):
            return state
        # pg_ctl start -W returns before the server writes its pid file: a server not running yet is not dead.
        if state is None and time.monotonic() - started > 3 and not server.running():
            fatal = [line for line in log.splitlines() if "FATAL" in line or "PANIC" in line]
            raise RestoreError(
                "the restored cluster stopped during recovery" + (f": {fatal[-1].strip()}" if fatal else ""),
                f"read its log: {_keep_log(log)}",
            )
        if time.monotonic() > deadline:
            raise RestoreError(
                f"recovery did not reach the target within {request.timeout:g} s", f"read its log: {_keep_log(log)}"
            )
        time.sleep(0.2)


def _keep_log(text: str) -> str:
    """The server log, saved where it outlives the data directory a failed restore removes."""
    fd, path = tempfile.mkstemp(prefix="dbkeeper-recovery-", suffix=".log")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def _remove_contents(datadir: Path, existed: bool) -> None:
    if not datadir.exists():
        return
    if existed:
        for child in datadir.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
    else:
        shutil.rmtree(datadir, ignore_errors=True)
