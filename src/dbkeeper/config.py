"""dbkeeper.toml and the environment, loaded and validated once into frozen dataclasses.

Lookup: ``--config FILE``, else ``$DBKEEPER_CONFIG``, else ``./dbkeeper.toml`` when it exists, else defaults.
An error names the file, the key and what is allowed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dbkeeper.errors import ConfigError, UsageError
from dbkeeper.units import parse_duration

DEFAULT_STORE = "backups"


@dataclass(frozen=True)
class SourceConfig:
    """A ``[[sources]]`` entry. ``name`` is the source's id in the store (its directory, its retention group); a
    source without one gets an id derived from its host, port and database (or file path).

    ``all = true`` makes the entry a whole PostgreSQL server: every connectable non-template database, less
    ``exclude_db`` (shell patterns), each with an id derived from host, port and database (``name`` then only
    selects the entry on the command line), and the server's roles and tablespaces unless ``globals = false``.
    ``tables``, ``exclude_tables``, ``schemas``, ``exclude_schemas``, ``exclude_table_data`` and
    ``pg_dump_options`` are pg_dump's selection (see engines/postgres/dumpopts.py)."""

    name: str | None
    url: str
    all: bool = False
    exclude_db: tuple[str, ...] = ()
    globals: bool | None = None  # None: the default (with all: true)
    tables: tuple[str, ...] = ()
    exclude_tables: tuple[str, ...] = ()
    schemas: tuple[str, ...] = ()
    exclude_schemas: tuple[str, ...] = ()
    exclude_table_data: tuple[str, ...] = ()
    pg_dump_options: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        from dbkeeper.engines import redact

        return self.name or redact(self.url)


@dataclass(frozen=True)
class RetentionConfig:
    """``[retention]``: each rule a count, -1 for unlimited; None when the table does not set it."""

    keep_last: int | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None
    keep_yearly: int | None = None
    keep_min: int | None = None

    def rules(self) -> dict[str, int]:
        """The rules the table sets (not keep_min, a floor rather than a rule), by name."""
        named = {
            "keep_last": self.keep_last,
            "keep_daily": self.keep_daily,
            "keep_weekly": self.keep_weekly,
            "keep_monthly": self.keep_monthly,
            "keep_yearly": self.keep_yearly,
        }
        return {name: value for name, value in named.items() if value is not None}


@dataclass(frozen=True)
class S3Config:
    """``[s3]``: options for every s3:// store; None when not set (the flags and boto3's defaults apply)."""

    endpoint_url: str | None = None
    sse: str | None = None
    sse_kms_key_id: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class DrillConfig:
    """``[drill]``: defaults for ``dbkeeper drill``'s options; None when not set."""

    max_age: timedelta | None = None
    smoke: str | None = None
    log: str | None = None
    target: str | None = None


@dataclass(frozen=True)
class ScheduleConfig:
    """``[schedule]``: a cron expression (checked at load) or ``"off"`` per job; None when not set (the default)."""

    backup: str | None = None
    prune: str | None = None
    copy: str | None = None
    drill: str | None = None
    basebackup: str | None = None  # with [pitr] source: its base backups
    pitr_drill: str | None = None  # ``pitr-drill``, with [pitr] source: drill --pitr (and the ledger it needs)


NOTIFY_JOBS = ("backup", "prune", "copy", "verify", "drill", "basebackup", "pitr-drill", "wal")  # wal: WAL archiving
NOTIFY_ON = ("failure", "always", "never")


@dataclass(frozen=True)
class JobNotify:
    """``[notify.<job>]``: that job's own policy and dead-man's switch; None: the ``[notify]`` defaults."""

    on: str | None = None
    ping_url: str | None = None


@dataclass(frozen=True)
class NotifyConfig:
    """``[notify]``: Apprise ``urls`` (``$DBKEEPER_NOTIFY_URLS`` over them) told of each job as ``on`` says
    (``failure``, ``always``, ``never``; ``[notify.<job>] on`` for one job); ``ping_url`` the backup job's
    dead-man's switch (``[notify.<job>] ping_url`` another job's); ``webhook_url`` a Slack-shaped JSON POST (kept
    from before Apprise; ``on_success = true`` means ``on = "always"``). ``$DBKEEPER_WEBHOOK_URL`` and
    ``$DBKEEPER_PING_URL`` override the two http(s) URLs."""

    webhook_url: str | None = None
    ping_url: str | None = None
    urls: tuple[str, ...] = ()
    on: str = "failure"
    jobs: dict[str, JobNotify] = field(default_factory=dict)

    def on_for(self, job: str) -> str:
        own = self.jobs.get(job)
        return own.on if own is not None and own.on else self.on

    def ping_for(self, job: str) -> str | None:
        own = self.jobs.get(job)
        if own is not None and own.ping_url:
            return own.ping_url
        return self.ping_url if job == "backup" else None


@dataclass(frozen=True)
class SigningConfig:
    """``[signing]``: the secret key file backups are signed with, and the verify key (``dbkeeper-ed25519:…``)
    restore hosts check them against; None when not set."""

    key: str | None = None
    verify_key: str | None = None


@dataclass(frozen=True)
class PitrConfig:
    """``[pitr]``: the source id whose WAL archive ``wal-push``/``wal-fetch`` use, and how old the newest archived
    WAL (``max_wal_age``) and the newest base backup (``max_base_age``) may be before ``status`` warns; None when
    not set."""

    source: str | None = None
    max_wal_age: timedelta | None = None
    data_dir: str | None = None  # the cluster's PGDATA: wal-daemon's (and its systemd unit's), status's backlog
    max_base_age: timedelta | None = None  # status warns when the newest good base backup is older


@dataclass(frozen=True)
class Config:
    path: str | None = None
    store: str = DEFAULT_STORE
    copy_to: tuple[str, ...] = ()
    pg_bin: str | None = None
    sources: tuple[SourceConfig, ...] = ()
    retention: RetentionConfig = RetentionConfig()
    encryption_recipients: tuple[str, ...] = ()
    identity: str | None = None
    s3: S3Config = S3Config()
    drill: DrillConfig = DrillConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    notify: NotifyConfig = NotifyConfig()
    metrics_file: str | None = None
    signing: SigningConfig = SigningConfig()
    pitr: PitrConfig = PitrConfig()

    def source(self, name: str) -> SourceConfig | None:
        return next((s for s in self.sources if s.name == name), None)


_TOP = {
    "store",
    "copy_to",
    "pg_bin",
    "sources",
    "retention",
    "encryption",
    "s3",
    "drill",
    "schedule",
    "notify",
    "metrics_file",
    "signing",
    "pitr",
}
_SOURCE_LISTS = (
    "exclude_db",
    "tables",
    "exclude_tables",
    "schemas",
    "exclude_schemas",
    "exclude_table_data",
    "pg_dump_options",
)
_SOURCE = {"name", "url", "all", "globals", *_SOURCE_LISTS}
_RETENTION = {"keep_last", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly", "keep_min"}
_ENCRYPTION = {"recipients", "identity"}
_S3 = {"endpoint_url", "sse", "sse_kms_key_id", "region"}
_DRILL = {"max_age", "smoke", "log", "target"}
_SCHEDULE = {"backup", "prune", "copy", "drill", "basebackup", "pitr-drill"}  # job names
_NOTIFY = {"webhook_url", "ping_url", "on_success", "urls", "on", *NOTIFY_JOBS}
_JOB_NOTIFY = {"on", "ping_url"}
_SIGNING = {"key", "verify_key"}
_PITR = {"source", "max_wal_age", "data_dir", "max_base_age"}


def load(path: str | None = None) -> Config:
    explicit = path or os.environ.get("DBKEEPER_CONFIG")
    candidate = Path(explicit) if explicit else Path("dbkeeper.toml")
    if not candidate.exists():
        if explicit:
            raise ConfigError(f"config file {candidate} does not exist")
        return _with_env(Config())
    import tomllib  # only when there is a file to read

    try:
        doc = tomllib.loads(candidate.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {candidate}: {exc}") from exc
    except ValueError as exc:  # a TOMLDecodeError, or an integer of more digits than int() takes
        raise ConfigError(f"{candidate} is not valid TOML: {exc}") from exc
    return _with_env(_parse(doc, str(candidate)))


def _with_env(cfg: Config) -> Config:
    store = os.environ.get("DBKEEPER_STORE")
    if store:
        cfg = replace(cfg, store=store)
    notify = cfg.notify
    if os.environ.get("DBKEEPER_WEBHOOK_URL"):
        notify = replace(notify, webhook_url=_http_url(os.environ["DBKEEPER_WEBHOOK_URL"], "DBKEEPER_WEBHOOK_URL"))
    if os.environ.get("DBKEEPER_PING_URL"):
        notify = replace(notify, ping_url=_http_url(os.environ["DBKEEPER_PING_URL"], "DBKEEPER_PING_URL"))
    if os.environ.get("DBKEEPER_NOTIFY_URLS"):
        urls = os.environ["DBKEEPER_NOTIFY_URLS"].split()
        notify = replace(notify, urls=_apprise_urls(urls, "DBKEEPER_NOTIFY_URLS"))
    return replace(cfg, notify=notify) if notify != cfg.notify else cfg


def _http_url(value: Any, where: str) -> str:
    """A notification URL; the error never quotes it (it may hold a token)."""
    try:
        parts = urlsplit(value) if isinstance(value, str) else None
        ok = parts is not None and parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(f"{where}: must be an http:// or https:// URL")
    return str(value)


def _parse(doc: dict[str, Any], where: str) -> Config:
    def fail(key: str, allowed: str) -> ConfigError:
        return ConfigError(f"{where}: {key}: {allowed}")

    _only(doc, _TOP, where, "")
    store = doc.get("store", DEFAULT_STORE)
    if not isinstance(store, str) or not store:
        raise fail("store", "must be a directory path or s3://bucket/prefix")
    copy_to = doc.get("copy_to", [])
    if isinstance(copy_to, str):
        copy_to = [copy_to]
    if not isinstance(copy_to, list) or not all(isinstance(s, str) for s in copy_to):
        raise fail("copy_to", "must be a list of stores")
    sources = []
    raw_sources = doc.get("sources", [])
    if not isinstance(raw_sources, list):
        raise fail("sources", 'must be an array of tables: [[sources]] name = "…" url = "…"')
    for i, src in enumerate(raw_sources):
        if not isinstance(src, dict):
            raise fail(f"sources[{i}]", "must be a table with name and url")
        _only(src, _SOURCE, where, f"sources[{i}].")
        if not isinstance(src.get("url"), str):
            raise fail(f"sources[{i}].url", "is required (postgresql://… or sqlite:///…)")
        lists = {}
        for key in _SOURCE_LISTS:
            value = src.get(key, [])
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise fail(f"sources[{i}].{key}", "must be a list of patterns (strings)")
            lists[key] = tuple(value)
        for key in ("all", "globals"):
            if key in src and not isinstance(src[key], bool):
                raise fail(f"sources[{i}].{key}", "must be true or false")
        if lists["exclude_db"] and not src.get("all"):
            raise fail(f"sources[{i}].exclude_db", "needs all = true (it filters a whole server's databases)")
        if lists["pg_dump_options"]:
            from dbkeeper.engines.postgres.dumpopts import check_options

            try:
                check_options(lists["pg_dump_options"], "pg_dump_options")
            except UsageError as exc:
                raise ConfigError(f"{where}: sources[{i}].{exc.message}", exc.hint) from None
        name = src.get("name")
        if name is not None and (not isinstance(name, str) or not _is_source_id(name)):
            raise fail(
                f"sources[{i}].name",
                "must be 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit (it names the"
                " source's directory in the store)",
            )
        sources.append(SourceConfig(name, src["url"], all=src.get("all", False), globals=src.get("globals"), **lists))
    names = [s.name for s in sources if s.name]
    if len(set(names)) != len(names):
        raise fail("sources", "names must be unique")
    retention = _table(doc, "retention", _RETENTION, where)
    for key, value in retention.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < -1:
            raise fail(f"retention.{key}", "must be a whole number (-1 means unlimited)")
    enc = _table(doc, "encryption", _ENCRYPTION, where)
    recipients = enc.get("recipients", [])
    if isinstance(recipients, str):
        recipients = [recipients]
    if not isinstance(recipients, list) or not all(isinstance(r, str) for r in recipients):
        raise fail("encryption.recipients", "must be an age recipient (age1…) or a list of them")
    identity = enc.get("identity")
    if identity is not None and not isinstance(identity, str):
        raise fail("encryption.identity", "must be the path of an age identity file")
    pg_bin = doc.get("pg_bin")
    if pg_bin is not None and not isinstance(pg_bin, str):
        raise fail("pg_bin", "must be a directory path")
    drill = _drill(doc, where)
    metrics = doc.get("metrics_file")
    if metrics is not None and not isinstance(metrics, str):
        raise fail("metrics_file", "must be a file path")
    pitr = _pitr(doc, where)
    return Config(
        path=where,
        store=store,
        copy_to=tuple(copy_to),
        pg_bin=pg_bin,
        sources=tuple(sources),
        retention=RetentionConfig(**retention),
        encryption_recipients=tuple(recipients),
        identity=identity,
        s3=S3Config(**{k: str(v) for k, v in _table(doc, "s3", _S3, where).items()}),
        drill=drill,
        schedule=_schedule(doc, where, bool(copy_to), bool(pitr.source)),
        notify=_notify(doc, where),
        metrics_file=metrics,
        signing=_signing(doc, where),
        pitr=pitr,
    )


def _pitr(doc: dict[str, Any], where: str) -> PitrConfig:
    table = _table(doc, "pitr", _PITR, where)
    source = table.get("source")
    if source is not None and (not isinstance(source, str) or not _is_source_id(source)):
        raise ConfigError(
            f"{where}: pitr.source: must be a source id",
            "use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    ages: dict[str, timedelta] = {}
    for key, example in (("max_wal_age", "5m"), ("max_base_age", "8d")):
        if key in table:
            value = table[key]
            try:
                if not isinstance(value, str):
                    raise UsageError("must be a string", f'such as "{example}"')
                ages[key] = parse_duration(value, key)
            except UsageError as exc:
                raise ConfigError(f"{where}: pitr.{key}: {exc.message}; {exc.hint}") from None
    data_dir = table.get("data_dir")
    if data_dir is not None and (not isinstance(data_dir, str) or not data_dir.startswith("/")):
        raise ConfigError(f"{where}: pitr.data_dir: must be the absolute path of the cluster's data directory")
    return PitrConfig(source, ages.get("max_wal_age"), data_dir, ages.get("max_base_age"))


def _signing(doc: dict[str, Any], where: str) -> SigningConfig:
    table = _table(doc, "signing", _SIGNING, where)
    key = table.get("key")
    if key is not None and (not isinstance(key, str) or not key):
        raise ConfigError(f"{where}: signing.key: must be the path of a signing key file")
    verify_key = table.get("verify_key")
    if verify_key is not None:
        from dbkeeper.signing import parse_verify_key

        if not isinstance(verify_key, str):
            raise ConfigError(f"{where}: signing.verify_key: must be a dbkeeper-ed25519:… verify key")
        try:
            parse_verify_key(verify_key, "signing.verify_key")
        except UsageError as exc:
            raise ConfigError(f"{where}: {exc.message}", exc.hint) from None
    return SigningConfig(key, verify_key)


def _drill(doc: dict[str, Any], where: str) -> DrillConfig:
    table = _table(doc, "drill", _DRILL, where)
    for key, value in table.items():
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: drill.{key}: must be a string" + (' such as "7d"' if key == "max_age" else ""))
    max_age = None
    if "max_age" in table:
        try:
            max_age = parse_duration(table["max_age"], "max_age")
        except UsageError as exc:
            raise ConfigError(f"{where}: drill.max_age: {exc.message}; {exc.hint}") from exc
    return DrillConfig(max_age, table.get("smoke"), table.get("log"), table.get("target"))


def _schedule(doc: dict[str, Any], where: str, copy_to: bool, pitr_source: bool) -> ScheduleConfig:
    table = _table(doc, "schedule", _SCHEDULE, where)
    for key, value in table.items():
        allowed = 'a cron expression in UTC such as "0 2 * * *", or "off"'
        if not isinstance(value, str):
            raise ConfigError(f"{where}: schedule.{key}: must be {allowed}")
        if value != "off":
            from dbkeeper import cron

            try:
                cron.parse(value)
            except cron.CronError as exc:
                raise ConfigError(f"{where}: schedule.{key}: {exc}", f"write {allowed}") from None
    if table.get("copy", "off") != "off" and not copy_to:
        raise ConfigError(
            f"{where}: schedule.copy is set but copy_to names no store",
            'add copy_to = ["s3://bucket/prefix"] or remove schedule.copy',
        )
    for job in ("basebackup", "pitr-drill"):
        if table.get(job, "off") != "off" and not pitr_source:
            raise ConfigError(
                f"{where}: schedule.{job} is set but [pitr] names no source",
                f'add [pitr] source = "<the id wal-push archives under>", or remove schedule.{job}',
            )
    return ScheduleConfig(**{key.replace("-", "_"): value for key, value in table.items()})


def _notify(doc: dict[str, Any], where: str) -> NotifyConfig:
    table = _table(doc, "notify", _NOTIFY, where)
    urls = {key: _http_url(table[key], f"{where}: notify.{key}") for key in ("webhook_url", "ping_url") if key in table}
    on_success = table.get("on_success", False)
    if not isinstance(on_success, bool):
        raise ConfigError(f"{where}: notify.on_success: must be true or false")
    on = _policy(table.get("on", "always" if on_success else "failure"), f"{where}: notify.on")
    raw = table.get("urls", [])
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(u, str) for u in raw):
        raise ConfigError(
            f"{where}: notify.urls: must be a list of Apprise URLs", 'e.g. urls = ["ntfy://ntfy.sh/topic"]'
        )
    jobs = {}
    for job in NOTIFY_JOBS:
        if job in table:
            own = table[job]
            if not isinstance(own, dict):
                raise ConfigError(f"{where}: notify.{job}: must be a table [notify.{job}]")
            _only(own, _JOB_NOTIFY, where, f"notify.{job}.")
            jobs[job] = JobNotify(
                _policy(own["on"], f"{where}: notify.{job}.on") if "on" in own else None,
                _http_url(own["ping_url"], f"{where}: notify.{job}.ping_url") if "ping_url" in own else None,
            )
    return NotifyConfig(
        urls.get("webhook_url"), urls.get("ping_url"), _apprise_urls(raw, f"{where}: notify.urls"), on, jobs
    )


def _policy(value: Any, where: str) -> str:
    if value not in NOTIFY_ON:
        raise ConfigError(f"{where}: must be one of {', '.join(NOTIFY_ON)}")
    return str(value)


def _apprise_urls(urls: list[str], where: str) -> tuple[str, ...]:
    """Apprise URLs, each checked by Apprise itself (imported only when some are configured); an error names the
    URL's position and scheme, never the URL (it holds a token)."""
    if not urls:
        return ()
    from dbkeeper.notify import load_apprise

    apprise = load_apprise()
    for i, url in enumerate(urls):
        if apprise.Apprise.instantiate(url, suppress_exceptions=True) is None:
            scheme = url.partition("://")[0] if "://" in url else "(no scheme)"
            raise ConfigError(
                f"{where}[{i}]: not an Apprise URL that this Apprise can use (scheme {scheme[:20]})",
                "see https://github.com/caronc/apprise/wiki for the URL of each service (ntfy://, mailto://, …)",
            )
    return tuple(urls)


def _table(doc: dict[str, Any], key: str, allowed: set[str], where: str) -> dict[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {key}: must be a table [{key}]")
    _only(value, allowed, where, f"{key}.")
    return dict(value)


def _only(doc: dict[str, Any], allowed: set[str], where: str, prefix: str) -> None:
    for key in doc:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key {prefix}{key}", f"allowed here: {', '.join(sorted(allowed))}")


def _is_source_id(name: str) -> bool:
    from dbkeeper.repo.names import SOURCE_ID_RE  # the store's rule; loaded only for a config that names sources

    return bool(SOURCE_ID_RE.match(name))
