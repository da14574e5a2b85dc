"""The smoke file format: statements split at ';' line ends, '-- expect:' comments, and their verdicts."""

import re
import sqlite3
from pathlib import Path

import pytest

from dbkeeper import smoke
from dbkeeper.errors import UsageError
from helpers import cli

SAMPLE = """\
-- The casino's smoke test.
-- expect: rows >= 1000
SELECT count(*) FROM users;

-- expect: orphans = 0
SELECT count(*)
  FROM game_sessions  -- a trailing comment
 WHERE user_id NOT IN (SELECT id FROM users)
;
SELECT 'a;--b';  -- quotes hide ; and --
-- expect: value > 1
-- expect: value <= 5
SELECT 3
"""


def test_parse_splits_statements_and_attaches_expectations() -> None:
    statements = smoke.parse(SAMPLE)
    assert [s.sql for s in statements] == [
        "SELECT count(*) FROM users;",
        "SELECT count(*)\n  FROM game_sessions\n WHERE user_id NOT IN (SELECT id FROM users);",
        "SELECT 'a;--b';",
        "SELECT 3;",
    ]
    assert [s.line for s in statements] == [3, 6, 10, 13]
    assert [[str(e) for e in s.expect] for s in statements] == [
        ["rows >= 1000"],
        ["orphans = 0"],
        [],
        ["value > 1", "value <= 5"],
    ]
    assert statements[0].label == "SELECT count(*) FROM users"
    assert statements[1].label == "SELECT count(*) FROM game_sessions WHERE user_id NOT IN (SELECT id ..."


@pytest.mark.parametrize(
    "expect,rows,ok",
    [
        ("rows >= 1000", [["3000"]], True),
        ("rows >= 1000", [["999"]], False),
        ("rows >= 1000", [], False),  # no row: fails
        ("value = 0", [["0"]], True),
        ("value = 0", [[None]], False),  # NULL is not 0
        ("value = 0", [["0.0"]], True),  # numbers compare as numbers
        ("value != 0", [["3"]], True),
        ("value <> 3", [["3"]], False),
        ("value < 2.5", [["2.49"]], True),
        ("value = 7", [["7", "other"], ["8"]], True),  # first column of the first row
        ("ok = true", [["t"]], True),  # psql's booleans
        ("ok = true", [["1"]], True),  # SQLite's
        ("ok = false", [["t"]], False),
        ("ok != false", [["t"]], True),
        ("name = casino", [["casino"]], True),
        ("name = 'a b'", [["a b"]], True),
        ("name = '10'", [["10.0"]], False),  # quoted: compared as text
        ("value >= 10", [["abc"]], False),  # not a number
    ],
)
def test_expectations(expect: str, rows: list[list[str | None]], ok: bool) -> None:
    [statement] = smoke.parse(f"-- expect: {expect}\nSELECT x;")
    outcome = smoke.evaluate(statement, rows)
    assert outcome.ok is ok, outcome.detail
    assert outcome.detail.startswith("SELECT x -> ")


def test_a_statement_without_expectation_only_has_to_run() -> None:
    [statement] = smoke.parse("SELECT * FROM users LIMIT 3;")
    assert smoke.evaluate(statement, [["1"], ["2"]]).detail == "SELECT * FROM users LIMIT 3 -> ran, 2 row(s)"
    assert smoke.evaluate(statement, []).ok


def test_failed_detail_says_what_was_found_and_wanted() -> None:
    [statement] = smoke.parse("-- expect: rows >= 1000\nSELECT count(*) FROM users;")
    assert smoke.evaluate(statement, [["12"]]).detail == "SELECT count(*) FROM users -> 12, expected rows >= 1000"


@pytest.mark.parametrize(
    "text,message",
    [
        ("-- expect: rows > lots\nSELECT 1;", "f.sql:1: > needs a number"),
        ("-- expect: nonsense\nSELECT 1;", "f.sql:1: cannot read the expectation 'nonsense'"),
        ("SELECT 1;\n-- expect: rows = 1\n", "f.sql: an expectation at the end of the file has no statement"),
    ],
)
def test_malformed_files_are_usage_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        smoke.parse(text, "f.sql")
    assert info.value.message.startswith(message)


def test_load_refuses_a_missing_or_empty_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read the smoke file"):
        smoke.load(tmp_path / "nope.sql")
    (tmp_path / "empty.sql").write_text("-- only a comment\n")
    with pytest.raises(UsageError, match="holds no SQL statement"):
        smoke.load(tmp_path / "empty.sql")


def test_the_sample_smoke_file_passes_on_the_example_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = Path(__file__).resolve().parent.parent
    monkeypatch.chdir(tmp_path)
    with sqlite3.connect(tmp_path / "test_app.db") as conn:
        conn.executescript((repo / "examples" / "test_app.sql").read_text())
    assert cli(capsys, "backup", "sqlite:///test_app.db")[0] == 0
    code, out, _ = cli(capsys, "drill", "--smoke", str(repo / "drill" / "smoke.sql"))
    assert code == 0, out
    checks = [re.match(r"  (OK|FAILED) +(\w+(?: \d)?) ", line) for line in out.splitlines()[1:-1]]
    assert [(m.group(1), m.group(2)) if m else None for m in checks] == [
        ("OK", name) for name in ["backup", "restore", "smoke 1", "smoke 2", "smoke 3", "smoke 4", "smoke 5", "cleanup"]
    ]
