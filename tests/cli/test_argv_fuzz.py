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
from helpers import make_sqlite_app

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


def _tree(root: Path) -> list[tuple[str, int]]:
    return sorted((p.relative_to(root).as_posix(), p.stat().st_size) for p in root.rglob("*"))


UNREADABLE = st.one_of(
    st.text(max_size=6).map(lambda t: t[: len(t) // 2] + "\x00" + t[len(t) // 2 :]),
    st.binary(min_size=1, max_size=8)
    .map(lambda b: (b + b"\xff").decode("utf-8", "surrogateescape"))  # what Python makes of non-UTF-8 argv
    .filter(lambda w: not w.isascii()),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(WORDS, max_size=4), UNREADABLE, st.integers(min_value=0, max_value=4), st.sampled_from(COMMANDS))
def test_a_nul_byte_or_non_utf8_argument_is_one_usage_error_and_touches_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], words: list[str], bad: str, at: int, command: str
) -> None:
    before = _tree(tmp_path)
    argv = [command, *words[:at], bad, *words[at:]]
    code, text = run(argv, capsys)
    assert code == 2, (argv, text)
    lines = text.splitlines()
    first = next(i for i, w in enumerate(argv) if "\x00" in w or w != w.encode("utf-8", "replace").decode())
    assert lines[0].startswith(f"dbkeeper: error: argument {first + 1} "), (argv, text)
    assert len(lines) == 2 and lines[1].startswith("  Try: "), (argv, text)
    assert _tree(tmp_path) == before


BAD_INPUT = [
    # (argv, exit code, what the one error line says)
    ([b"verify", b"\xff\xfe", b"--store", b"store"], 2, "argument 2 is not valid UTF-8: \\xff\\xfe"),
    ([b"backup", b"sqlite:///\xff.db", b"--store", b"store"], 2, "argument 2 is not valid UTF-8"),
    ([b"--config", b"caf\xe9.toml", b"list"], 2, "argument 2 is not valid UTF-8: caf\\xe9.toml"),
    ([b"restore", b"latest", b"t\xff.db", b"--store", b"store"], 2, "argument 3 is not valid UTF-8"),
    (["drill", "--target", "postgresql://[::1", "--store", "store"], 2, "is not a valid URL"),
    (["drill", "--target", "postgresql://app@h:99999", "--store", "store"], 2, "bad port in postgresql://app@h:99999"),
    (
        ["drill", "--target", "postgresql://app:pa/ss@h/x", "--store", "store"],
        2,
        "bad port in postgresql://app:***@h/x",
    ),
    (["drill", "--target", "sqlite://", "--store", "store"], 2, "'sqlite://' has no path"),
    (["drill", "--target", "ftp://backup.example/x", "--store", "store"], 2, "cannot tell what kind of place"),
    (["backup", "sqlite:///app.db", "--name", ".hidden", "--store", "store"], 2, "cannot name a source in a store"),
    (["backup", "sqlite:///app.db", "--name", "a/b", "--store", "store"], 2, "cannot name a source in a store"),
    (["verify", "latest", "--database", ".hidden", "--store", "store"], 2, "no complete backup found of database"),
    (["verify", "latest", "--database", "a/b", "--store", "store"], 2, "no complete backup found of database a/b"),
    (["verify", "../x", "--store", "store"], 2, "../x does not exist"),
    (["restore", "../x", "sqlite:///t.db", "--store", "store"], 2, "../x does not exist"),
    (["verify", "store/../../etc/passwd"], 2, "does not exist"),
    (["restore", "../../../../etc/passwd", "sqlite:///t.db"], 3, "failed verification (manifest: not found"),
]


@pytest.mark.parametrize("argv,code,says", BAD_INPUT)
def test_bad_input_gets_one_error_line_and_touches_nothing(
    argv: list[str] | list[bytes], code: int, says: str, tmp_path: Path
) -> None:
    """As a real process (non-UTF-8 bytes reach Python as they would from a shell): the exit code, exactly one
    error line and its hint, no traceback, and not a file created or changed (no store, no target)."""
    make_sqlite_app(tmp_path / "app.db", users=3, sessions=1)
    before = _tree(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBKEEPER_", "AWS_", "PG"))}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    done = subprocess.run(
        [sys.executable, "-m", "dbkeeper", *argv], cwd=tmp_path, env=env, capture_output=True, timeout=60
    )
    err = done.stderr.decode("utf-8", "replace")
    assert done.returncode == code, err
    assert "Traceback" not in err and done.stdout == b""
    [line] = [line for line in err.splitlines() if line.startswith("dbkeeper: error:")]
    assert says in line, err
    assert err.splitlines()[-1].startswith("  Try: "), err
    assert _tree(tmp_path) == before


@pytest.mark.parametrize(
    "argv",
    [
        ["restore", "store/app/app_20261127_020000.db.gz", "sqlite:///copy.db", "--drop"],  # --drop-existing
        ["prune", "--keep", "1"],  # --keep-last, --keep-min ...
        ["status", "--log", "x.md"],  # --log-format, --drill-log
    ],
)
def test_an_abbreviated_option_is_refused_not_guessed(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """argparse would read `restore --drop` as --drop-existing, which replaces a database: options are spelled out."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code in (2, 3)  # status: UNKNOWN
    assert f"unrecognized arguments: {argv[-2] if argv[-1][0] != '-' else argv[-1]}" in capsys.readouterr().err
