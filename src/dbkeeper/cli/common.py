"""What the commands share: the store option, JSON output, sizes, the progress line and the metrics file."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from dbkeeper import config, log, signing
from dbkeeper.config import Config
from dbkeeper.errors import DbkeeperError
from dbkeeper.repo import Repository
from dbkeeper.runs import configured
from dbkeeper.storage import Store
from dbkeeper.units import human_size as human_size  # re-exported for the commands


def add_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", metavar="S", help="directory or s3://bucket/prefix (env DBKEEPER_STORE)")


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def load_config(args: argparse.Namespace) -> Config:
    return config.load(getattr(args, "config", None))


def store_url(args: argparse.Namespace, cfg: Config) -> str:
    return str(getattr(args, "store", None) or cfg.store)


def add_sse(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sse", choices=["AES256", "aws:kms"], help="S3 server-side encryption (config [s3] sse)")
    parser.add_argument("--sse-kms-key-id", metavar="ID", help="KMS key for --sse aws:kms (config [s3] sse_kms_key_id)")


def open_store_for(url: str, cfg: Config, args: argparse.Namespace | None = None) -> Store:
    """Every command opens its stores here: S3 options come from the flags, else the config's ``[s3]`` table
    (the endpoint also from AWS_ENDPOINT_URL, credentials from boto3's usual chain)."""
    return configured.store(
        url, cfg, sse=getattr(args, "sse", None), sse_kms_key_id=getattr(args, "sse_kms_key_id", None)
    )


def open_repo_for(url: str, cfg: Config, args: argparse.Namespace | None = None) -> Repository:
    """The repository over the store ``url`` (see ``open_store_for``), checking signatures when a verify key is
    given (see ``verify_key``)."""
    return Repository(open_store_for(url, cfg, args), verify_key(args, cfg))


def add_verify_key(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--verify-key",
        metavar="KEY",
        help="treat backups not signed by this key (dbkeeper-ed25519:…) as broken"
        " (env DBKEEPER_VERIFY_KEY, config [signing] verify_key)",
    )


def verify_key(args: argparse.Namespace | None, cfg: Config) -> signing.VerifyKey | None:
    """The verify key: --verify-key, else $DBKEEPER_VERIFY_KEY, else the config's; None when none is given."""
    return configured.verify_key(cfg, getattr(args, "verify_key", None))


def add_sign_key(p: argparse.ArgumentParser, what: str = "each backup") -> None:
    p.add_argument(
        "--sign-key",
        metavar="FILE",
        help=f"sign {what} with this key file (`dbkeeper key generate`; config [signing] key)",
    )


def signer(args: argparse.Namespace, cfg: Config) -> signing.Signer | None:
    return configured.signer(cfg, getattr(args, "sign_key", None))


def add_identity(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--identity",
        metavar="FILE",
        help="age identity file for encrypted backups (env DBKEEPER_AGE_IDENTITY)",
    )


def identities(args: argparse.Namespace, cfg: Config) -> list[Any] | None:
    return configured.identities(cfg, getattr(args, "identity", None))


def locate_backup(args: argparse.Namespace, cfg: Config) -> tuple[Repository, str]:
    """The repository and set name a BACKUP argument (``args.backup``) points at (see ``repo.locate``)."""
    from datetime import UTC, datetime

    from dbkeeper.repo import locate

    def opener(url: str | None) -> Repository:
        return open_repo_for(url or store_url(args, cfg), cfg, args)

    return locate(args.backup, opener, datetime.now(UTC), source=getattr(args, "source", None), database=args.database)


def add_selection(parser: argparse.ArgumentParser, what: str = "only") -> None:
    """--source ID and --database NAME: which series a command looks at."""
    parser.add_argument("--source", metavar="ID", help=f"{what} this source's backups (its id: `dbkeeper list`)")
    parser.add_argument("--database", metavar="NAME", help=f"{what} this database's backups")


# Every JSON document a command prints starts with this; it changes only when a field changes meaning or goes
# away (new fields may appear without it). Each command's documents are described by docs/json/<command>.schema.json.
FORMAT_VERSION = 1


def emit_json(doc: dict[str, Any], *, lines: bool = False) -> None:
    """Print one JSON document, ``format_version`` first; ``lines``: on one line (a stream of events)."""
    out = {"format_version": FORMAT_VERSION, **doc}
    print(json.dumps(out, default=str) if lines else json.dumps(out, indent=2, default=str), flush=lines)


def table(rows: list[tuple[str, ...]]) -> list[str]:
    """Rows as left-aligned columns two spaces apart (the first row is usually the header)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


class ProgressLine:
    """progress.Progress on a terminal: one line on stderr, redrawn in place at most ten times a second, fit to
    the terminal's real width (the label is shortened, never the numbers): ``restore app/…: 45% 62.1 MB of
    138.0 MB, 12.3 MB/s, ETA 7s``; without a total, bytes, rate and time so far; in a phase that moves no bytes
    (``building indexes``), the phase and how long it has taken, ticking. Silent off a terminal (cron, a pipe),
    with ``--json``, ``-q`` or ``--log-format json``; phases then go to the log at the debug level (``-v``).
    """

    def __init__(self, label: str, enabled: bool = True, total: int | None = None) -> None:
        self.label = label
        self.enabled = enabled and log.settings.progress and sys.stderr.isatty()
        self.total = total
        self.t0 = time.monotonic()
        self._last = 0.0
        self._drawn = 0  # the width of what is on the line now
        self._done = 0
        self._stored: int | None = None
        self._phase: str | None = None
        self._phase_t0 = 0.0
        self._lock = threading.Lock()
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()

    def expect(self, total: int | None) -> None:
        self.total = total if total and total > 0 else None

    def update(self, done: int, stored: int | None = None) -> None:
        self._done, self._stored = done, stored
        self._phase = None  # bytes move again: the ticker stops redrawing the phase
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and not (self.total and done >= self.total):  # the end is always drawn
            return
        self._last = now
        self._draw(self._bytes_line(now))

    def phase(self, text: str) -> None:
        log.debug(f"{self.label}: {text}", phase=text)
        if not self.enabled:
            return
        self._phase, self._phase_t0 = text, time.monotonic()
        self._draw(self._phase_line())
        if self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="dbkeeper-progress", daemon=True)
            self._ticker.start()

    def done(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2)
        if self.enabled and self._drawn:
            with self._lock:
                sys.stderr.write("\r" + " " * self._drawn + "\r")
                sys.stderr.flush()
                self._drawn = 0

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            if self._phase is not None:
                self._draw(self._phase_line())

    def _bytes_line(self, now: float) -> list[str]:
        """The line's parts, most important first: the narrower the terminal, the fewer of them are drawn."""
        elapsed = max(now - self.t0, 1e-6)
        done, total = self._done, self.total
        rate = done / elapsed
        stored = f"{human_size(self._stored)} stored" if self._stored is not None else ""
        if total:
            share = min(done / total, 0.999) if done < total else 1.0  # an estimate: never "100%" before the end
            eta = format_seconds(max(total - done, 0) / rate) if rate > 0 else "-"
            about = "~" if self._stored is not None else ""  # a backup's total is the database's size
            return [
                f"{share:4.0%} {human_size(done)} of {about}{human_size(total)}",
                f"ETA {eta}",
                f"{human_size(rate)}/s",
                stored,
            ]
        return [human_size(done), format_seconds(elapsed), f"{human_size(rate)}/s", stored]

    def _phase_line(self) -> list[str]:
        phase = self._phase or ""
        return [f"{phase}, {format_seconds(time.monotonic() - self._phase_t0)}"]

    def _draw(self, parts: list[str]) -> None:
        width = _terminal_width() - 1  # the last column would wrap on some terminals
        parts = [p for p in parts if p]
        order = parts[:1] + parts[3:] + parts[2:3] + parts[1:2]  # shown as: main, stored, rate, ETA
        while True:
            shown = [p for p in order if p in parts]
            stats = ", ".join(shown)
            room = width - len(stats) - 2
            if room >= min(len(self.label), 16) or len(parts) == 1:
                break
            parts = parts[:-1]  # the least important part goes first
        label = self.label if len(self.label) <= room else self.label[: max(room - 1, 0)] + "…"
        line = (f"{label}: {stats}" if room > 1 else stats)[:width]
        with self._lock:
            sys.stderr.write("\r" + line + " " * max(self._drawn - len(line), 0))
            sys.stderr.flush()
            self._drawn = len(line)


def _terminal_width() -> int:
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns or 80
    except (OSError, ValueError):
        return shutil.get_terminal_size().columns


def format_seconds(seconds: float) -> str:
    """``7s``, ``3m05s``, ``1h02m``: short enough for a progress line."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def add_global_options(parser: argparse.ArgumentParser, default: Any = None) -> None:
    """-q, -v and --log-format: before the command (``dbkeeper -q backup``) or after it (``default`` SUPPRESS)."""
    parser.add_argument("-q", "--quiet", action="store_true", default=default, help="no progress lines, no notes")
    parser.add_argument(
        "-v", "--verbose", action="count", default=default, help="more detail on stderr (each phase, each notice)"
    )
    parser.add_argument(
        "--log-format",
        choices=log.FORMATS,
        default=default,
        help="stderr as text lines (default) or one JSON object per line",
    )


def add_metrics_file(parser: argparse.ArgumentParser) -> None:
    from dbkeeper import state

    parser.add_argument(
        "--metrics-file",
        metavar="PATH",
        nargs="?",
        const=str(state.metrics_path()),
        help="after the run, write Prometheus metrics here (node_exporter textfile collector; config metrics_file;"
        " with no PATH: metrics/dbkeeper.prom in the state directory)",
    )


def pg_servers(cfg: Config, extra: Sequence[str] = ()) -> list[str]:
    """The URLs in ``extra``, then those of the config's PostgreSQL sources, one per server (host and port)."""
    from dbkeeper.engines import is_sqlite, server_key

    seen: dict[str, str] = {}
    for url in [*extra, *(s.url for s in cfg.sources if not is_sqlite(s.url))]:
        seen.setdefault(server_key(url), url)
    return list(seen.values())


def drill_log_path(cfg: Config) -> str:
    return configured.drill_log_path(cfg)


def print_error(exc: DbkeeperError, context: str = "") -> None:
    """The two lines every error gets on stderr: what failed (after ``context``, if any) and what to do."""
    log.error(f"{context + ': ' if context else ''}{exc.message}", exc.hint, exit_code=exc.exit_code)


def update_metrics(args: argparse.Namespace, cfg: Config, repo: Repository, log: str | None = None) -> bool:
    """Rewrite the metrics file if one is configured; a failure is reported here and returns False."""
    path = getattr(args, "metrics_file", None) or cfg.metrics_file
    if not path:
        return True
    try:
        from dbkeeper import metrics, state

        if path == str(state.metrics_path()):  # the state directory's own: made here (a named one must exist)
            state.metrics_path().parent.mkdir(parents=True, exist_ok=True)
        metrics.update(path, repo, log or drill_log_path(cfg), servers=pg_servers(cfg), pg_bin=cfg.pg_bin)
    except DbkeeperError as exc:
        print_error(exc)
        return False
    return True


def add_wal_source(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", metavar="ID", help="the source whose WAL archive this is (config [pitr] source)")


def add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="the cluster's data directory (default: the working directory, as PostgreSQL runs it)",
    )


def wal_archive(args: argparse.Namespace, *, pushing: bool, fetching: bool | None = None) -> tuple[Any, Any]:
    """The WAL archive and the cluster (from the data directory; None when it is not one) a wal command works on:
    with the encryption recipients and signing key when ``pushing``, the identities and verify key when
    ``fetching`` (default: when not pushing)."""
    from pathlib import Path

    from dbkeeper.errors import UsageError
    from dbkeeper.pitr.archive import WalArchive, cluster_of

    cfg = load_config(args)
    source = wal_source(args, cfg)
    datadir = Path(args.data_dir) if getattr(args, "data_dir", None) else Path.cwd()
    cluster = cluster_of(datadir)
    if getattr(args, "data_dir", None) and cluster is None:
        raise UsageError(f"{datadir} is not a PostgreSQL data directory", "--data-dir names the cluster's PGDATA")
    store = open_store_for(store_url(args, cfg), cfg, args)
    fetching = not pushing if fetching is None else fetching
    recipients: list[Any] = []
    if pushing:
        wanted = getattr(args, "encrypt_to", None) or cfg.encryption_recipients
        from dbkeeper import crypto

        recipients = crypto.parse_recipients(wanted) if wanted else []
    arch = WalArchive(
        store,
        source,
        recipients=recipients,
        signer=signer(args, cfg) if pushing else None,
        identities=identities(args, cfg) if fetching else None,
        verify_key=verify_key(args, cfg) if fetching else None,
        on_refusal=_refusal_alert(cfg, store.url) if pushing else None,
    )
    return arch, cluster


def _refusal_alert(cfg: Config, store: str) -> Callable[[Any], None]:
    """Alert the config's ``wal`` job (``[notify]`` urls and webhook) of a push refused for different bytes."""

    def alert(conflict: Any) -> None:
        from dbkeeper.notify import Notifier

        Notifier.for_job(cfg, "wal").alert(conflict.message, conflict.hint, store=store)

    return alert


def wal_source(args: argparse.Namespace, cfg: Config) -> str:
    """The source whose WAL archive a command works on: --source, else the config's [pitr] source."""
    from dbkeeper.errors import UsageError

    source = getattr(args, "source", None) or cfg.pitr.source
    if not source:
        raise UsageError("no source names the WAL archive", "pass --source ID or set [pitr] source in the config")
    return str(source)


def add_spool(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--spool",
        metavar="DIR",
        help="the WAL daemon's spool directory (default: $DBKEEPER_STATE_DIR/wal, else the user's state directory)",
    )


def pitr_archive(args: argparse.Namespace, cfg: Config, source_id: str, *, writing: bool) -> Any:
    """The WAL archive (pitr.archive.WalArchive) of ``source_id`` in the store, for base backups (``writing``:
    recipients and the signing key) or restores (identities and the verify key)."""
    from dbkeeper.pitr.archive import WalArchive

    store = open_store_for(store_url(args, cfg), cfg, args)
    if writing:
        return WalArchive(store, source_id, signer=signer(args, cfg))
    return WalArchive(store, source_id, identities=identities(args, cfg), verify_key=verify_key(args, cfg))


def add_wal_fetch_command(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--wal-fetch-command",
        metavar="CMD",
        help="the dbkeeper PostgreSQL's OS user runs as restore_command (default: this one)",
    )


def wal_fetch_command(args: argparse.Namespace, cfg: Config, source_id: str) -> tuple[str, tuple[str, ...]]:
    """What a restored cluster's restore_command runs, and the arguments after ``wal-fetch %f %p``: this dbkeeper
    (or --wal-fetch-command), with the same config, store, source and keys, as absolute paths (the server runs
    it from its data directory)."""
    import shlex
    from pathlib import Path

    from dbkeeper.schedule.install import dbkeeper_argv

    store = store_url(args, cfg)
    if not store.startswith("s3://"):
        store = str(Path(store).absolute())
    fetch_args = ["--source", source_id, "--store", store]
    if getattr(args, "identity", None):
        fetch_args += ["--identity", str(Path(args.identity).absolute())]
    if getattr(args, "verify_key", None):
        fetch_args += ["--verify-key", args.verify_key]
    fetch = getattr(args, "wal_fetch_command", None) or " ".join(shlex.quote(a) for a in dbkeeper_argv(None))
    if getattr(args, "config", None):  # a global option: it goes before the command
        fetch += f" --config {shlex.quote(str(Path(args.config).absolute()))}"
    return fetch, tuple(shlex.quote(a) for a in fetch_args)
