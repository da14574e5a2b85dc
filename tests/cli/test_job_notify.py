"""prune, copy and verify report to the [notify] URLs like backup and drill (a real JSON endpoint on loopback)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import backup_files, cli, make_sqlite_app
from httpd import Recorder


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    monkeypatch.chdir(tmp_path)
    make_sqlite_app(tmp_path / "app.db", users=10, sessions=10)
    with Recorder() as recorder:
        where = recorder.url.removeprefix("http://")
        (tmp_path / "dbkeeper.toml").write_text(
            '[[sources]]\nname = "app"\nurl = "sqlite:///app.db"\n[retention]\nkeep_last = 1\n'
            f'[notify]\nurls = ["json://{where}/hook"]\n[notify.prune]\non = "always"\n[notify.backup]\non = "never"\n'
        )
        yield recorder


def titles(server: Recorder) -> list[str]:
    return [r.json()["title"].split(" on ")[0] for r in server.requests]


def test_prune_copy_and_verify_each_report(
    tmp_path: Path, server: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, "backup")[0] == 0 and cli(capsys, "backup")[0] == 0
    assert server.requests == []  # backup: never
    assert cli(capsys, "prune")[0] == 0
    assert titles(server) == ["dbkeeper prune OK"]  # prune: always
    assert "removed 1" in server.requests[0].json()["message"]

    server.requests.clear()
    assert cli(capsys, "copy", "latest", "--to", str(tmp_path / "offsite"))[0] == 0
    assert cli(capsys, "verify", "latest")[0] == 0
    assert server.requests == []  # the default: failures only

    [data] = [f for f in backup_files(tmp_path / "backups") if f.endswith(".gz")]
    path = tmp_path / "backups" / data
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert cli(capsys, "verify", "latest")[0] == 3
    assert titles(server) == ["dbkeeper verify FAILED"]
    assert f"{data}: {data} failed verification: " in server.requests[0].json()["message"]

    server.requests.clear()
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the store's directory would go")
    assert cli(capsys, "copy", "latest", "--to", str(blocked))[0] != 0
    assert titles(server) == ["dbkeeper copy FAILED"]


def test_a_refused_base_backup_reports_as_the_basebackup_job(
    tmp_path: Path, server: Recorder, pgdb: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cluster that does not archive its WAL: `basebackup` refuses before taking anything, and its own job in
    [notify] hears of it (its policy is the default, failures only)."""
    for key, value in pgdb.cluster.env().items():
        monkeypatch.setenv(key, value)
    code, _out, err = cli(capsys, "basebackup", pgdb.url, "--source", "casino", "--pg-bin", str(pgdb.cluster.bindir))
    assert code != 0 and "archive_mode = off" in err
    assert titles(server) == ["dbkeeper basebackup FAILED"]
    assert "the cluster does not archive its WAL" in server.requests[0].json()["message"]
    assert not (tmp_path / "backups" / "pitr").exists()
