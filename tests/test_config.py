"""Config validation: an error names the file, the key and what is allowed; nothing else ever escapes load."""

from __future__ import annotations

import os
import re
import tempfile
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbkeeper import config
from dbkeeper.errors import ConfigError, UsageError


def load(tmp_path: Path, text: str) -> config.Config:
    path = tmp_path / "dbkeeper.toml"
    path.write_text(text)
    return config.load(str(path))


def test_valid_schedule_and_notify(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        '[schedule]\nbackup = "30 1 * * *"\nprune = "off"\ndrill = "@weekly"\n'
        '[notify]\nwebhook_url = "https://hooks.slack.com/services/T/B/X"\nping_url = "https://hc-ping.com/u"\n'
        "on_success = true\n",
    )
    assert cfg.schedule == config.ScheduleConfig(backup="30 1 * * *", prune="off", drill="@weekly")
    assert cfg.notify == config.NotifyConfig(
        webhook_url="https://hooks.slack.com/services/T/B/X", ping_url="https://hc-ping.com/u", on="always"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[schedule]\nbackup = "0 25 * * *"', "schedule.backup: hour: 25 is out of range 0-23"),
        ('[schedule]\ndrill = "0 4 1 * 0"', "schedule.drill: '0 4 1 * 0' sets both a day of month and a day of week"),
        ("[schedule]\nbackup = 2", 'schedule.backup: must be a cron expression in UTC such as "0 2 * * *", or "off"'),
        ('[schedule]\nprune = "daily"', "schedule.prune: 'daily' has 1 fields"),
        ('[schedule]\nrestore = "0 2 * * *"', "unknown key schedule.restore"),
        ('[schedule]\ncopy = "0 5 * * *"', "schedule.copy is set but copy_to names no store"),
        ('[notify]\nwebhook_url = "hooks.slack.com/x"', "notify.webhook_url: must be an http:// or https:// URL"),
        ('[notify]\nping_url = "file:///etc/passwd"', "notify.ping_url: must be an http:// or https:// URL"),
        ('[notify]\non_success = "yes"', "notify.on_success: must be true or false"),
        ('[notify]\non = "sometimes"', "notify.on: must be one of failure, always, never"),
        ('[notify]\nurls = "nosuch://tok-SECRET@x"', "notify.urls[0]: not an Apprise URL that this Apprise can use"),
        ("[notify]\nurls = [1]", "notify.urls: must be a list of Apprise URLs"),
        ('[notify.drill]\non = "weekly"', "notify.drill.on: must be one of failure, always, never"),
        ('[notify.drill]\nping_url = "ftp://x/y"', "notify.drill.ping_url: must be an http:// or https:// URL"),
        ('[notify.drill]\nurls = ["json://x"]', "unknown key notify.drill.urls"),
        ('[notify]\nrestore = "x"', "unknown key notify.restore"),
        ('[notify]\ndrill = "x"', "notify.drill: must be a table [notify.drill]"),
        ('[schedule]\nbackup = "\u00b2 2 * * *"', "schedule.backup: minute: '\u00b2' is not supported"),
        ('[schedule]\nbackup = "*/\u00b2 2 * * *"', "schedule.backup: minute: step '\u00b2' in '*/\u00b2' must be"),
        pytest.param(
            f'[schedule]\nbackup = "{"9" * 5000} 2 * * *"',
            "schedule.backup: minute: 99999999999999999999… is out of range 0-59",
            id="5000-digit-minute",
        ),
        ('[drill]\nmax_age = "99999999999d"', "drill.max_age: max_age '99999999999d' is too long; write at most"),
        pytest.param(f'[drill]\nmax_age = "{"9" * 400}w"', "9w' is too long", id="400-digit-max_age"),
        ('[signing]\nverify_key = "age1xyz"', "signing.verify_key is not a dbkeeper verify key"),
        ('[signing]\nverify_key = "dbkeeper-ed25519-secret:AAAA"', "signing.verify_key is a secret key"),
        ("[signing]\nverify_key = 1", "signing.verify_key: must be a dbkeeper-ed25519:… verify key"),
        ('[signing]\nkey = ""', "signing.key: must be the path of a signing key file"),
        ('[signing]\nsecret = "k"', "unknown key signing.secret"),
        ('[schedule]\nbasebackup = "0 1 * * *"', "schedule.basebackup is set but [pitr] names no source"),
        ("[schedule]\nbasebackup = 5", 'schedule.basebackup: must be a cron expression in UTC such as "0 2 * * *"'),
        ('[pitr]\nsource = "db"\nmax_base_age = 8', 'pitr.max_base_age: must be a string; such as "8d"'),
        ('[pitr]\nsource = "db"\nmax_base_age = "soon"', "pitr.max_base_age: "),
    ],
)
def test_invalid_values_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert info.value.message.startswith(f"{tmp_path / 'dbkeeper.toml'}: ")
    assert message in info.value.message
    assert "SECRET" not in info.value.message  # a notification URL holds a token: never quoted


def test_notify_policy_per_job_and_pings(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        '[notify]\nurls = ["ntfy://ntfy.sh/topic", "json://127.0.0.1:9/x"]\nping_url = "https://hc-ping.com/b"\n'
        '[notify.drill]\non = "always"\nping_url = "https://hc-ping.com/d"\n[notify.prune]\non = "never"\n',
    )
    n = cfg.notify
    assert n.urls == ("ntfy://ntfy.sh/topic", "json://127.0.0.1:9/x")
    assert [n.on_for(j) for j in ("backup", "drill", "prune", "copy", "verify", "wal")] == [
        "failure",
        "always",
        "never",
        "failure",
        "failure",
        "failure",
    ]
    assert [n.ping_for(j) for j in ("backup", "drill", "prune")] == [
        "https://hc-ping.com/b",
        "https://hc-ping.com/d",
        None,
    ]


def test_valid_signing(tmp_path: Path) -> None:
    cfg = load(tmp_path, f'[signing]\nkey = "/etc/dbkeeper/sign.key"\nverify_key = "{VERIFY_KEY}"\n')
    assert cfg.signing == config.SigningConfig(key="/etc/dbkeeper/sign.key", verify_key=VERIFY_KEY)
    assert load(tmp_path, "").signing == config.SigningConfig()


def test_an_integer_too_long_for_python_is_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "dbkeeper.toml"
    path.write_text(f"[retention]\nkeep_last = {'9' * 5000}\n")
    with pytest.raises(ConfigError, match="is not valid TOML") as info:
        config.load(str(path))
    assert info.value.message.startswith(f"{path} is not valid TOML: ")


def test_notify_urls_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBKEEPER_WEBHOOK_URL", "https://example.com/hook/SECRET")
    monkeypatch.setenv("DBKEEPER_PING_URL", "https://hc-ping.com/SECRET")
    cfg = load(tmp_path, '[notify]\nwebhook_url = "https://other.example/x"\n')
    assert cfg.notify.webhook_url == "https://example.com/hook/SECRET"
    assert cfg.notify.ping_url == "https://hc-ping.com/SECRET"
    monkeypatch.setenv("DBKEEPER_PING_URL", "hc-ping.com/SECRET")
    with pytest.raises(ConfigError, match="DBKEEPER_PING_URL: must be an http") as info:
        load(tmp_path, "")
    assert "SECRET" not in info.value.message


# Fuzzing: any document TOML can hold either loads or is refused with a ConfigError naming the file.

URLS = ["https://example.com/hook", "http://[::1", "http://h:99999/x", "file:///etc/passwd", "hooks.slack.com/x"]
SAMPLES = ["", "off", "casino", "-bad name", "s3://bucket/prefix", "sqlite:///app.db", "AES256", "7d", *URLS]

text = st.text(max_size=20)
scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=-2, max_value=30),
    st.booleans(),
    text,
    st.sampled_from(SAMPLES),
)
keys = st.one_of(st.sampled_from(["store", "sources", "drill", "keep_last", "url", "max_age"]), text)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=12,
)
strings = st.one_of(st.text(min_size=1, max_size=20), st.sampled_from(SAMPLES))
durations = st.one_of(
    st.from_regex(r"[0-9]{1,25}(\.[0-9]{1,3})?(s|m|h|d|w|days|weeks)", fullmatch=True),
    st.sampled_from(["0s", "26 h", "1d12h", "99999999999d", "9" * 400 + "w", "26", "7x"]),
)
cron_fields = st.sampled_from(
    ["*", "0", "5", "59", "60", "*/15", "*/0", "1-5", "5-1", "mon", "jan", "1,2", "\u00b2", "L"]
)
crons = st.one_of(
    st.lists(cron_fields, min_size=5, max_size=5).map(" ".join),
    st.lists(cron_fields, min_size=1, max_size=6).map(" ".join),
    st.sampled_from(["off", "0 2 * * *", "@weekly", "@nope", "0 4 1 * 0"]),
)
counts = st.integers(min_value=-3, max_value=400)
urls = st.one_of(st.sampled_from(URLS), text)


def mostly(common: st.SearchStrategy[Any], rare: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``common`` about seven times in eight, else ``rare``."""
    return st.integers(min_value=0, max_value=7).flatmap(lambda i: rare if i == 0 else common)


names = mostly(st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True), strings)


def likely(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a value of the right kind, sometimes anything at all."""
    return mostly(plausible, values)


def table(
    fields: dict[str, st.SearchStrategy[Any]], strays: bool, required: tuple[str, ...] = ()
) -> st.SearchStrategy[dict[str, Any]]:
    """The keys of ``fields`` (each maybe, but ``required``); with ``strays``, now and then a key the table does
    not know."""
    known = st.fixed_dictionaries(
        {k: likely(v) for k, v in fields.items() if k in required},
        optional={k: likely(v) for k, v in fields.items() if k not in required},
    )
    if not strays:
        return known
    stray = mostly(st.just({}), st.dictionaries(keys, values, min_size=1, max_size=2))
    return st.builds(lambda a, b: {**b, **a}, known, stray)


VERIFY_KEY = "dbkeeper-ed25519:" + "A" * 43 + "="  # 32 zero bytes: well formed
verify_keys = mostly(
    st.just(VERIFY_KEY),
    st.one_of(strings, st.sampled_from(["dbkeeper-ed25519:", "dbkeeper-ed25519-secret:" + "A" * 43 + "="])),
)


def document(strays: bool) -> st.SearchStrategy[dict[str, Any]]:
    keep = ["keep_last", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly", "keep_min"]
    return table(
        {
            "store": strings,
            "copy_to": st.one_of(strings, st.lists(strings, max_size=3)),
            "pg_bin": strings,
            "metrics_file": strings,
            "sources": st.lists(table({"name": names, "url": strings}, strays, required=("url",)), max_size=3),
            "retention": table({k: counts for k in keep}, strays),
            "encryption": table({"recipients": st.one_of(strings, st.lists(strings)), "identity": strings}, strays),
            "s3": table({k: strings for k in ["endpoint_url", "sse", "sse_kms_key_id", "region"]}, strays),
            "drill": table({"max_age": durations, "smoke": strings, "log": strings, "target": strings}, strays),
            "schedule": table(
                {k: crons for k in ["backup", "prune", "copy", "drill", "basebackup", "pitr-drill"]}, strays
            ),
            "pitr": table(
                {"source": names, "max_wal_age": durations, "max_base_age": durations, "data_dir": strings}, strays
            ),
            "notify": table(
                {
                    "webhook_url": urls,
                    "ping_url": urls,
                    "on_success": st.booleans(),
                    "on": st.sampled_from(["failure", "always", "never", "sometimes", ""]),
                    "urls": st.lists(st.sampled_from(["json://127.0.0.1:1/x", "ntfy://h/t", "nope://x", "x"])),
                    "drill": table({"on": st.sampled_from(["always", "never", "often"]), "ping_url": urls}, strays),
                },
                strays,
            ),
            "signing": table({"key": strings, "verify_key": verify_keys}, strays),
        },
        strays,
    )


documents = mostly(document(strays=False), document(strays=True))


def toml_string(value: str) -> str:
    """A TOML basic string: printable ASCII as is, everything else (and the quote and backslash) escaped."""
    return '"' + "".join(c if " " <= c <= "~" and c not in '"\\' else f"\\U{ord(c):08X}" for c in value) + '"'


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_document(doc: dict[str, Any]) -> str:
    return "".join(f"{toml_string(k)} = {toml_value(v)}\n" for k, v in doc.items())


@contextmanager
def no_config_environment() -> Iterator[None]:
    with mock.patch.dict(os.environ):
        for var in (
            "DBKEEPER_CONFIG",
            "DBKEEPER_STORE",
            "DBKEEPER_WEBHOOK_URL",
            "DBKEEPER_PING_URL",
            "DBKEEPER_NOTIFY_URLS",
        ):
            os.environ.pop(var, None)
        yield


def check_loaded(cfg: config.Config) -> None:
    """What a loaded config promises its users, whatever the document was."""
    assert isinstance(cfg.store, str) and cfg.store
    assert all(isinstance(s, str) for s in cfg.copy_to)
    assert all(isinstance(s.url, str) for s in cfg.sources)
    for value in (*cfg.retention.rules().values(), cfg.retention.keep_min):
        assert value is None or (type(value) is int and value >= -1)
    assert cfg.drill.max_age is None or cfg.drill.max_age > timedelta(0)
    assert all(v is None or (isinstance(v, str) and v) for v in (cfg.drill.smoke, cfg.drill.log, cfg.drill.target))
    schedule = cfg.schedule
    assert all(
        v is None or isinstance(v, str)
        for v in (schedule.backup, schedule.prune, schedule.copy, schedule.drill, schedule.basebackup)
    )
    assert (schedule.basebackup or "off") == "off" or cfg.pitr.source  # a PITR job needs its source
    assert (schedule.pitr_drill or "off") == "off" or cfg.pitr.source
    assert all(v is None or v > timedelta(0) for v in (cfg.pitr.max_wal_age, cfg.pitr.max_base_age))
    assert all(cfg.notify.on_for(j) in config.NOTIFY_ON for j in config.NOTIFY_JOBS)
    assert all(isinstance(u, str) and "://" in u for u in cfg.notify.urls)
    assert cfg.signing.key is None or (isinstance(cfg.signing.key, str) and cfg.signing.key)
    if cfg.signing.verify_key is not None:
        from dbkeeper.signing import parse_verify_key

        parse_verify_key(cfg.signing.verify_key)


@settings(max_examples=300, deadline=None)
@given(documents)
def test_parse_accepts_or_refuses_naming_the_file(doc: dict[str, Any]) -> None:
    where = "/etc/dbkeeper/dbkeeper.toml"
    try:
        cfg = config._parse(doc, where)
    except UsageError as exc:
        assert exc.message.startswith(f"{where}: ")
    else:
        check_loaded(cfg)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_load_accepts_or_refuses_naming_the_file(doc: dict[str, Any]) -> None:
    text = toml_document(doc)
    assert tomllib.loads(text) == doc  # the writer is right, so the fuzzing reaches the parser
    with tempfile.TemporaryDirectory() as tmp, no_config_environment():
        path = Path(tmp) / "dbkeeper.toml"
        path.write_text(text)
        try:
            cfg = config.load(str(path))
        except UsageError as exc:
            assert exc.message.startswith(f"{path}: ")
        else:
            check_loaded(cfg)
            assert cfg.path == str(path)


def _doc_config_examples() -> list[tuple[str, int, str]]:
    repo = Path(__file__).resolve().parent.parent
    docs = [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]
    return [
        (path.relative_to(repo).as_posix(), i, block)
        for path in docs
        for i, block in enumerate(re.findall(r"```toml\n(.*?)```", path.read_text(), re.S))
    ]


@pytest.mark.parametrize(("doc", "index", "block"), _doc_config_examples(), ids=lambda v: str(v)[:24])
def test_every_config_example_in_the_docs_loads(doc: str, index: int, block: str, tmp_path: Path) -> None:
    """What the README and docs/ show as dbkeeper.toml is a config dbkeeper takes (placeholders filled in: the
    README's own example once named a key that does not exist)."""
    from dbkeeper.signing import generate

    public = generate(tmp_path / "sign.key").public
    path = tmp_path / "dbkeeper.toml"
    path.write_text(block.replace('"dbkeeper-ed25519:…"', f'"{public}"'))
    config.load(str(path))


def test_the_docs_show_config_examples() -> None:
    found = _doc_config_examples()
    assert len(found) >= 6 and any("[[sources]]" in block and "metrics_file" in block for _, _, block in found)
