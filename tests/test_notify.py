"""Notifications against a real HTTP server on loopback: pings, webhook bodies, retries, and failures that
must never become the job's failure."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from dbkeeper.errors import SourceError
from dbkeeper.notify import Notifier, safe_url, with_path_suffix
from httpd import Recorder, closed_port_url


@pytest.fixture
def server() -> Iterator[Recorder]:
    with Recorder() as recorder:
        yield recorder


def notifier(server: Recorder, warnings: list[str], on_success: bool = False, timeout: float = 0.5) -> Notifier:
    return Notifier(
        webhook_url=f"{server.url}/hook/T000/B000/SECRET",
        ping_url=f"{server.url}/ping/uuid-SECRET",
        on="always" if on_success else "failure",
        timeout=timeout,
        warn=warnings.append,
    )


def test_success_pings_start_then_success_and_sends_no_webhook(server: Recorder) -> None:
    warnings: list[str] = []
    with notifier(server, warnings).run("backup") as run:
        run.summary = "1 of 1 backed up (casino)"
    assert server.paths() == ["/ping/uuid-SECRET/start", "/ping/uuid-SECRET"]
    assert "dbkeeper backup OK" in server.requests[1].text and "casino" in server.requests[1].text
    assert warnings == []


def test_success_webhook_when_asked(server: Recorder) -> None:
    with notifier(server, [], on_success=True).run("backup") as run:
        run.details.update(databases=["casino"], store="backups")
    hook = server.requests[-1]
    assert hook.path == "/hook/T000/B000/SECRET" and hook.headers["Content-Type"] == "application/json"
    doc = hook.json()
    assert doc["ok"] is True and doc["job"] == "backup" and doc["databases"] == ["casino"]
    assert doc["text"].startswith("dbkeeper backup OK on ")


def test_failure_pings_fail_with_the_error_and_posts_a_slack_compatible_webhook(server: Recorder) -> None:
    with pytest.raises(SourceError), notifier(server, []).run("backup") as run:
        run.details.update(databases=["casino"], store="s3://b/p")
        raise SourceError("authentication failed for app at db1:5432", "check the password in ~/.pgpass")
    assert server.paths() == ["/ping/uuid-SECRET/start", "/ping/uuid-SECRET/fail", "/hook/T000/B000/SECRET"]
    assert "authentication failed for app at db1:5432" in server.requests[1].text
    doc = server.requests[2].json()
    assert doc["ok"] is False and doc["store"] == "s3://b/p" and doc["databases"] == ["casino"]
    assert "FAILED" in doc["text"] and "authentication failed" in doc["text"]
    assert "Try: check the password in ~/.pgpass" in doc["text"]
    assert doc["errors"] == [
        {
            "source": None,
            "error": "authentication failed for app at db1:5432",
            "hint": "check the password in ~/.pgpass",
        }
    ]


def test_recorded_failures_without_an_exception_still_fail(server: Recorder) -> None:
    with notifier(server, []).run("backup") as run:
        run.fail("disk full", None, source="casino")
        run.fail("no such file", "check the path", source="dev")
    text = server.requests[-1].json()["text"]
    assert "casino: disk full; dev: no such file" in text
    assert server.paths()[1] == "/ping/uuid-SECRET/fail"


def test_interrupt_is_reported_as_a_failure(server: Recorder) -> None:
    with pytest.raises(KeyboardInterrupt), notifier(server, []).run("backup"):
        raise KeyboardInterrupt
    assert server.paths()[1:] == ["/ping/uuid-SECRET/fail", "/hook/T000/B000/SECRET"]
    assert "interrupted" in server.requests[1].text


def test_5xx_is_retried_then_delivered(server: Recorder) -> None:
    server.answers["/hook"] = [500, 503, 200]
    warnings: list[str] = []
    notifier(server, warnings).webhook({"text": "x"})
    assert server.paths() == ["/hook/T000/B000/SECRET"] * 3
    assert warnings == []


def test_persistent_500_gives_up_with_one_warning_that_hides_the_secret(server: Recorder) -> None:
    server.answers["/hook"] = 500
    warnings: list[str] = []
    notifier(server, warnings).webhook({"text": "x"})
    assert len(server.requests) == 3
    assert warnings == [f"could not notify {server.url}: HTTP 500 after 3 tries; the job itself is not affected"]


def test_4xx_is_not_retried(server: Recorder) -> None:
    server.answers["/hook"] = 404
    warnings: list[str] = []
    notifier(server, warnings).webhook({"text": "x"})
    assert len(server.requests) == 1 and warnings == [
        f"could not notify {server.url}: HTTP 404; the job itself is not affected"
    ]


def test_a_hanging_server_costs_one_timeout_and_is_not_retried(server: Recorder) -> None:
    server.answers["/ping"] = "hang"
    warnings: list[str] = []
    t0 = time.monotonic()
    notifier(server, warnings, timeout=0.3).ping("/start")
    assert time.monotonic() - t0 < 2
    assert len(server.requests) == 1
    assert warnings == [f"could not notify {server.url}: no answer within 0.3s; the job itself is not affected"]


def test_a_server_that_is_down_is_retried_then_warned_about() -> None:
    url = closed_port_url()
    warnings: list[str] = []
    Notifier(webhook_url=f"{url}/hook/SECRET", timeout=0.5, warn=warnings.append).webhook({"text": "x"})
    assert warnings == [f"could not notify {url}: connection refused after 3 tries; the job itself is not affected"]


def test_nothing_configured_sends_nothing(server: Recorder) -> None:
    with Notifier().run("backup") as run:
        run.fail("boom")
    assert server.requests == []


def test_ping_body_is_capped_at_10_kB(server: Recorder) -> None:
    notifier(server, []).ping("/fail", "x" * 50_000)
    assert len(server.requests[0].body) == 10_000


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.slack.com/services/T0/B0/SECRET", "https://hooks.slack.com"),
        ("https://user:pw@hc-ping.com/uuid?x=1", "https://hc-ping.com"),
        ("http://127.0.0.1:8080/p/SECRET", "http://127.0.0.1:8080"),
    ],
)
def test_safe_url_shows_scheme_and_host_only(url: str, shown: str) -> None:
    assert safe_url(url) == shown


@pytest.mark.parametrize(
    ("url", "suffix", "result"),
    [
        ("https://hc-ping.com/uuid", "/start", "https://hc-ping.com/uuid/start"),
        ("https://hc-ping.com/uuid/", "/fail", "https://hc-ping.com/uuid/fail"),
        ("https://hc-ping.com/uuid?rid=1", "/start", "https://hc-ping.com/uuid/start?rid=1"),
        ("https://hc-ping.com/uuid", "", "https://hc-ping.com/uuid"),
    ],
)
def test_ping_suffix(url: str, suffix: str, result: str) -> None:
    assert with_path_suffix(url, suffix) == result


# -- Apprise URLs: a real HTTP server on loopback as the JSON webhook and the ntfy server ----------------------


def host(server: Recorder) -> str:
    return server.url.removeprefix("http://")


def apprise_notifier(server: Recorder, warnings: list[str], on: str = "failure") -> Notifier:
    urls = (f"json://{host(server)}/json/SECRET", f"ntfy://{host(server)}/backups-SECRET")
    return Notifier(urls=urls, on=on, warn=warnings.append, timeout=2)


def test_a_failure_reaches_json_and_ntfy_with_title_error_hint_and_store(server: Recorder) -> None:
    warnings: list[str] = []
    with pytest.raises(SourceError), apprise_notifier(server, warnings).run("drill") as run:
        run.details["store"] = "s3://acme/backups"
        raise SourceError("authentication failed for app at db1:5432", "check the password in ~/.pgpass")
    assert warnings == []
    by_path = {r.path: r for r in server.requests}
    assert set(by_path) == {"/json/SECRET", "/"}  # ntfy posts to the server's root, the topic in the body
    doc = by_path["/json/SECRET"].json()
    assert doc["type"] == "failure" and doc["title"].startswith("dbkeeper drill FAILED on ")
    assert doc["message"] == (
        "authentication failed for app at db1:5432\n  Try: check the password in ~/.pgpass\nstore: s3://acme/backups"
    )
    ntfy = by_path["/"].json()
    assert ntfy["topic"] == "backups-SECRET" and ntfy["title"] == doc["title"] and ntfy["message"] == doc["message"]


@pytest.mark.parametrize(
    ("on", "ok", "told"),
    [
        ("failure", True, False),
        ("failure", False, True),
        ("always", True, True),
        ("always", False, True),
        ("never", False, False),
    ],
)
def test_the_policy_says_when_urls_are_told(server: Recorder, on: str, ok: bool, told: bool) -> None:
    with apprise_notifier(server, [], on=on).run("prune") as run:
        run.summary = "kept 3, removed 1"
        if not ok:
            run.fail("could not delete x", None, source="app")
    assert len(server.requests) == (2 if told else 0)
    if told and ok:
        doc = next(r for r in server.requests if r.path.startswith("/json")).json()
        assert doc["type"] == "success" and doc["title"].startswith("dbkeeper prune OK on ")
        assert doc["message"] == "kept 3, removed 1"


def test_passwords_never_leave_in_a_notification_ping_or_webhook(server: Recorder) -> None:
    notifier = Notifier(
        urls=(f"json://{host(server)}/json",),
        webhook_url=f"{server.url}/hook",
        ping_url=f"{server.url}/ping",
        warn=[].append,
        timeout=2,
    )
    with notifier.run("backup") as run:
        run.fail(
            "could not connect to postgresql://app:hunter2@db1:5432/casino (host=db1 password=swordfish)",
            "check https://admin:letmein@example.com/docs",
            source="postgresql://app:hunter2@db1/casino",
        )
    assert len(server.requests) == 4  # start, fail, the webhook, the json URL
    for request in server.requests:
        for secret in ("hunter2", "swordfish", "letmein"):
            assert secret not in request.text, (request.path, request.text)
    assert "postgresql://app:***@db1:5432/casino" in server.requests[-1].json()["message"]
    assert server.requests[2].json()["errors"][0]["source"] == "postgresql://app:***@db1/casino"  # still JSON


def test_a_url_that_fails_is_one_warning_naming_it_privately_and_the_others_are_told(server: Recorder) -> None:
    server.answers["/json/broken"] = 500
    warnings: list[str] = []
    urls = (f"json://{host(server)}/json/broken", f"json://{host(server)}/json/fine")
    with Notifier(urls=urls, warn=warnings.append, timeout=2).run("copy") as run:
        run.fail("no space left on device")
    assert [r.path for r in server.requests] == ["/json/broken", "/json/fine"]
    assert len(warnings) == 1 and warnings[0].startswith("could not notify json:// (notify.urls[0]): ")
    assert "broken" not in warnings[0]  # the path may be the secret: scheme and host only
    assert "the job itself is not affected" in warnings[0]


def test_a_server_that_is_down_does_not_fail_the_job() -> None:
    port = closed_port_url().rpartition(":")[2]
    warnings: list[str] = []
    with Notifier(urls=(f"ntfy://127.0.0.1:{port}/topic",), warn=warnings.append, timeout=1).run("verify") as run:
        run.fail("checksum differs")
    assert len(warnings) == 1 and warnings[0].startswith("could not notify ntfy:// (notify.urls[0]): ")


def test_verbose_says_whom_it_told_without_the_secret(server: Recorder, capsys: pytest.CaptureFixture[str]) -> None:
    from dbkeeper import log

    log.configure(verbose=1)
    try:
        with apprise_notifier(server, [], on="always").run("copy"):
            pass
    finally:
        log.configure()
    err = capsys.readouterr().err
    assert err.count("dbkeeper: debug: notified ") == 2 and "SECRET" not in err
