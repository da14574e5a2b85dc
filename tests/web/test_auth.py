"""The dashboard's gate: listen addresses, credentials, CSRF tokens, path prefixes; fuzzed where it parses."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dbkeeper.errors import ConfigError, UsageError
from dbkeeper.web.auth import (
    Credentials,
    Csrf,
    Listen,
    PrefixMiddleware,
    clean_prefix,
    load_credentials,
    parse_listen,
    require_safe,
    same_origin,
)


@pytest.mark.parametrize(
    ("text", "host", "port", "loopback"),
    [
        ("127.0.0.1:8090", "127.0.0.1", 8090, True),
        (":8090", "127.0.0.1", 8090, True),
        ("localhost:1", "localhost", 1, True),
        ("[::1]:8090", "::1", 8090, True),
        ("127.0.0.2:80", "127.0.0.2", 80, True),
        ("0.0.0.0:8090", "0.0.0.0", 8090, False),
        ("[::]:8090", "::", 8090, False),
        ("10.1.2.3:8090", "10.1.2.3", 8090, False),
        ("db.example:8090", "db.example", 8090, False),  # a name may resolve anywhere
    ],
)
def test_listen_addresses(text: str, host: str, port: int, loopback: bool) -> None:
    listen = parse_listen(text)
    assert (listen.host, listen.port, listen.loopback) == (host, port, loopback)


@pytest.mark.parametrize("text", ["8090", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "::1:8090", "a:b", ""])
def test_bad_listen_addresses_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_listen(text)


def test_only_loopback_may_go_without_credentials() -> None:
    require_safe(Listen("127.0.0.1", 1), None)
    require_safe(Listen("0.0.0.0", 1), Credentials("t"))
    with pytest.raises(UsageError, match="reachable from other machines"):
        require_safe(Listen("0.0.0.0", 1), None)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_a_token_as_bearer_or_basic_password() -> None:
    creds = Credentials.parse("tok3n\n", "env")
    assert creds.accepts("Bearer tok3n") and creds.accepts("bearer tok3n")
    assert creds.accepts(basic("whoever", "tok3n"))
    for wrong in (None, "", "Bearer tok3", "Bearer tok3nn", basic("x", "nope"), "Token tok3n", "Basic !!!"):
        assert not creds.accepts(wrong)


def test_user_and_password() -> None:
    creds = Credentials.parse("ops:pass:with:colons", "file")
    assert (creds.user, creds.secret) == ("ops", "pass:with:colons")
    assert creds.accepts(basic("ops", "pass:with:colons"))
    assert not creds.accepts(basic("root", "pass:with:colons"))
    assert not creds.accepts("Bearer pass:with:colons")  # a password is not a token


@pytest.mark.parametrize("text", ["", "\n", "a\nb", ":pw", "user:"])
def test_bad_credentials_are_refused(text: str) -> None:
    with pytest.raises(ConfigError):
        Credentials.parse(text, "DBKEEPER_WEB_AUTH")


@given(st.text(max_size=80))
def test_no_header_but_the_right_one_passes(header: str) -> None:
    if Credentials("the-token").accepts(header):
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            assert value.strip() == "the-token"
        else:
            assert base64.b64decode(value.strip()).decode().partition(":")[2] == "the-token"


@given(st.binary(max_size=60))
def test_basic_headers_of_any_bytes_never_crash(raw: bytes) -> None:
    creds = Credentials("pw", "u")
    header = "Basic " + base64.b64encode(raw).decode()
    assert creds.accepts(header) == (raw == b"u:pw")


def test_credentials_from_a_file_only_its_owner_reads(tmp_path: Path) -> None:
    path = tmp_path / "auth"
    path.write_text("tok\n")
    path.chmod(0o640)
    with pytest.raises(ConfigError, match="may be read by others") as refused:
        load_credentials(str(path), {})
    assert refused.value.hint == f"chmod 600 {path}"
    path.chmod(0o600)
    assert load_credentials(str(path), {"DBKEEPER_WEB_AUTH": "other"}) == Credentials("tok")
    assert load_credentials(None, {"DBKEEPER_WEB_AUTH": "u:p"}) == Credentials("p", "u")
    assert load_credentials(None, {}) is None
    with pytest.raises(ConfigError, match="cannot read"):
        load_credentials(str(tmp_path / "missing"), {})


def test_csrf_tokens_are_tied_to_the_cookie_and_the_process() -> None:
    csrf = Csrf()
    cookie = Csrf.new_cookie()
    token = csrf.token(cookie)
    assert csrf.valid(cookie, token)
    assert not csrf.valid(Csrf.new_cookie(), token)
    assert not csrf.valid(cookie, None) and not csrf.valid(None, token) and not csrf.valid("", "")
    assert not Csrf().valid(cookie, token)  # another process (a restart) has another secret


def test_same_origin() -> None:
    assert same_origin(None, "127.0.0.1:8090")
    assert same_origin("http://127.0.0.1:8090", "127.0.0.1:8090")
    assert not same_origin("http://evil.example", "127.0.0.1:8090")
    assert not same_origin("null", "127.0.0.1:8090")


@pytest.mark.parametrize(("raw", "clean"), [("", ""), ("/", ""), ("/dbk/", "/dbk"), ("dbk", "/dbk"), ("/a/b", "/a/b")])
def test_prefixes(raw: str, clean: str) -> None:
    assert clean_prefix(raw) == clean


@given(st.text(max_size=30))
def test_a_prefix_is_a_plain_path_or_refused(raw: str) -> None:
    try:
        prefix = clean_prefix(raw)
    except UsageError:
        return
    assert prefix == "" or (
        prefix.startswith("/") and all(c.isalnum() or c in "/._~-" for c in prefix) and '"' not in prefix
    )


def test_the_middleware_sets_script_name_and_strips_the_prefix() -> None:
    seen: dict[str, str] = {}

    def app(environ: dict[str, str], start_response: object) -> list[bytes]:
        seen.update(script=environ.get("SCRIPT_NAME", ""), path=environ["PATH_INFO"])
        return []

    mw = PrefixMiddleware(app, "/dbk")
    mw({"PATH_INFO": "/dbk/source/app"}, None)
    assert seen == {"script": "/dbk", "path": "/source/app"}
    mw({"PATH_INFO": "/source/app"}, None)  # a proxy that strips the prefix
    assert seen == {"script": "/dbk", "path": "/source/app"}
    mw({"PATH_INFO": "/", "HTTP_X_FORWARDED_PREFIX": "/ops"}, None)
    assert seen == {"script": "/ops", "path": "/"}
    mw({"PATH_INFO": "/", "HTTP_X_FORWARDED_PREFIX": "/<x>"}, None)  # not a plain path: the configured one stays
    assert seen == {"script": "/dbk", "path": "/"}
