"""What the commands share: the store option, JSON output, sizes, the progress line and the metrics file."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from dbkeeper import config, crypto, signing
from dbkeeper.config import Config
from dbkeeper.errors import DbkeeperError
from dbkeeper.repo import Repository
from dbkeeper.storage import Store, open_store
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
    sse = getattr(args, "sse", None) or cfg.s3.sse
    kms = getattr(args, "sse_kms_key_id", None) or cfg.s3.sse_kms_key_id
    if kms and not sse:
        sse = "aws:kms"
    return open_store(url, endpoint_url=cfg.s3.endpoint_url, sse=sse, sse_kms_key_id=kms, region=cfg.s3.region)


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
    flag = getattr(args, "verify_key", None)
    if flag:
        return signing.parse_verify_key(flag, "--verify-key")
    env = os.environ.get("DBKEEPER_VERIFY_KEY")
    if env:
        return signing.parse_verify_key(env, "DBKEEPER_VERIFY_KEY")
    if cfg.signing.verify_key:
        return signing.parse_verify_key(cfg.signing.verify_key, "signing.verify_key")
    return None


def add_sign_key(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--sign-key",
        metavar="FILE",
        help="sign each backup with this key file (`dbkeeper key generate`; config [signing] key)",
    )


def signer(args: argparse.Namespace, cfg: Config) -> signing.Signer | None:
    path = getattr(args, "sign_key", None) or cfg.signing.key
    return signing.load_signer(path) if path else None


def add_identity(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--identity",
        metavar="FILE",
        help="age identity file for encrypted backups (env DBKEEPER_AGE_IDENTITY)",
    )


def identities(args: argparse.Namespace, cfg: Config) -> list[Any] | None:
    path = getattr(args, "identity", None) or os.environ.get("DBKEEPER_AGE_IDENTITY") or cfg.identity
    return crypto.load_identities(path) if path else None


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


def emit_json(doc: Any) -> None:
    print(json.dumps(doc, indent=2, default=str))


class ProgressLine:
    """A one-line progress display on a terminal (bytes, rate, elapsed); silent under cron and with --json."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.label = label
        self.enabled = enabled and sys.stderr.isatty()
        self.t0 = time.monotonic()
        self._last = 0.0

    def update(self, done: int, stored: int | None = None) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.2:
            return
        self._last = now
        elapsed = max(now - self.t0, 1e-6)
        extra = f", {human_size(stored)} stored" if stored is not None else ""
        line = f"{self.label}: {human_size(done)}{extra}, {human_size(done / elapsed)}/s, {elapsed:5.1f}s"
        sys.stderr.write("\r" + line.ljust(78)[:78])
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled and self._last:
            sys.stderr.write("\r" + " " * 78 + "\r")
            sys.stderr.flush()


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


def drill_log_path(cfg: Config) -> str:
    from dbkeeper import drill_log

    return cfg.drill.log or str(drill_log.default_path())


def print_error(exc: DbkeeperError, context: str = "") -> None:
    """The two lines every error gets on stderr: what failed (after ``context``, if any) and what to do."""
    sys.stderr.write(f"dbkeeper: error: {context + ': ' if context else ''}{exc.message}\n")
    if exc.hint:
        sys.stderr.write(f"  Try: {exc.hint}\n")


def update_metrics(args: argparse.Namespace, cfg: Config, repo: Repository, log: str | None = None) -> bool:
    """Rewrite the metrics file if one is configured; a failure is reported here and returns False."""
    path = getattr(args, "metrics_file", None) or cfg.metrics_file
    if not path:
        return True
    try:
        from dbkeeper import metrics

        metrics.update(path, repo, log or drill_log_path(cfg))
    except DbkeeperError as exc:
        print_error(exc)
        return False
    return True
