"""``dbkeeper`` with arbitrary arguments: every run ends with exit code 0, 1, 2 or 3 and an error message, never an
uncaught exception or a traceback. In-process (``main``), in an empty directory with no config and no store
variables, so nothing outside the test's directory is read or written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbkeeper.cli import main

COMMANDS = ["backup", "list", "cleanup", "verify", "restore", "copy", "prune", "drill", "status"]
OPTIONS = [
    "--store", "--json", "--dry-run", "--older-than", "--config", "--source", "--database", "--keep-last",
    "--keep-daily", "--keep-min", "--to", "--target", "--name", "--jobs", "--compression", "--level", "--prune",
    "--globals", "--identity", "--recipient", "--drop-existing", "--stall-timeout", "--all", "--help", "-h",
    "--version", "--", "-",
]  # fmt: skip
VALUES = [
    "latest", "0", "-1", "1e9", "99999999999999999999", "0s", "2h", "-5m", "1x", "", " ", "..", "../..", "/",
    "s3://", "s3:///x", "s3://bucket", "s3://b/../x", "store", "store/app/app_20261127_020000.db.gz",
    "app_20261127_020000.db.gz", "app/../../etc/passwd", "sqlite:///nonexistent.db", "postgresql://127.0.0.1:1/x",
    "postgresql://[::1", "nonexistent.toml", "\x00", "é", "a\nb", "gzip", "zstd", "none", "x" * 300,
]  # fmt: skip
WORDS = st.one_of(st.sampled_from(COMMANDS + OPTIONS + VALUES), st.text(max_size=12))


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in list(os.environ):
        if name.startswith(("DBKEEPER_", "AWS_", "PG")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")  # an s3:// store fails at once, offline
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    (tmp_path / "store").mkdir()


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    out, err = capsys.readouterr()
    return code, out + err


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(WORDS, max_size=6), st.sampled_from(COMMANDS))
def test_any_arguments_end_in_a_known_exit_code(
    capsys: pytest.CaptureFixture[str], words: list[str], command: str
) -> None:
    for argv in (words, [command, *words]):
        code, text = run(argv, capsys)
        assert code in (0, 1, 2, 3), (argv, code, text)
        assert "Traceback" not in text, (argv, text)


@pytest.mark.parametrize(
    "argv",
    [
        ["list", "--store", "a\nb/../x"],
        ["verify", "app/../../etc/passwd", "--store", "store"],
        ["restore", "s3://", "--target", "sqlite:///t.db"],
        ["cleanup", "--store", "store", "--older-than", "-5m"],
        ["prune", "--store", "store", "--keep-last", "99999999999999999999"],
    ],
)
def test_hostile_arguments_as_a_real_process(argv: list[str], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBKEEPER_", "AWS_"))}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    done = subprocess.run(
        [sys.executable, "-m", "dbkeeper", *argv], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode in (0, 1, 2, 3), done
    assert "Traceback" not in done.stderr + done.stdout
