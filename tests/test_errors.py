"""The error tree's contract: exit codes as the README's table gives them, and hints that name only flags that
exist (a hint is what a user types next)."""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

from dbkeeper import errors
from dbkeeper.cli import build_parser

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "src" / "dbkeeper"
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*[a-z0-9]")
# Flags of other programs that hints name, with the program: never dbkeeper's.
FOREIGN = {
    "--collector": "node_exporter --collector.textfile.directory",
    "--force": "pipx install --force",
    "--lock-wait-timeout": "pg_dump's own, passed through --pg-dump-option",
    "--globals-only": "pg_dumpall --globals-only",
}
ERROR_CLASSES = {n for n in dir(errors) if isinstance(getattr(errors, n), type)}


def dbkeeper_flags() -> set[str]:
    flags: set[str] = set()

    def walk(parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            flags.update(action.option_strings)
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    walk(child)

    walk(build_parser())
    return flags


def hint_texts() -> list[tuple[str, str]]:
    """Every string written into an error's message or hint: the arguments of a call of an error class (or of a
    helper named ``fail``), assignments to ``….hint`` and to names holding "hint"; with where it is."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            parts: list[ast.AST] = []
            if isinstance(node, ast.Call):
                fn = node.func
                name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else ""
                if name in ERROR_CLASSES or name == "fail":
                    parts = [*node.args, *(k.value for k in node.keywords)]
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    label = t.attr if isinstance(t, ast.Attribute) else t.id if isinstance(t, ast.Name) else ""
                    if "hint" in label.lower() and node.value is not None:
                        parts = [node.value]
            for part in parts:
                for const in ast.walk(part):
                    if isinstance(const, ast.Constant) and isinstance(const.value, str):
                        found.append((f"{path.relative_to(REPO)}:{const.lineno}", const.value))
    return found


def test_every_flag_a_hint_names_exists() -> None:
    known = dbkeeper_flags()
    texts = hint_texts()
    assert len(texts) > 200  # the scan sees the hints (a broken scan would pass on nothing)
    named = {(where, flag) for where, text in texts for flag in FLAG.findall(text)}
    assert len({flag for _, flag in named}) > 20
    missing = sorted((where, flag) for where, flag in named if flag not in known and flag not in FOREIGN)
    assert missing == [], f"hints name flags dbkeeper does not have: {missing}"


def test_a_planted_wrong_flag_would_be_found(tmp_path: Path) -> None:
    """The scan itself: the hint this test was written for (an S3 hint naming --endpoint-url) is caught."""
    tree = ast.parse('raise Transient("x", "check the endpoint (--endpoint-url or AWS_ENDPOINT_URL)")')
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call))
    texts = [c.value for c in ast.walk(call) if isinstance(c, ast.Constant) and isinstance(c.value, str)]
    assert {f for t in texts for f in FLAG.findall(t)} - dbkeeper_flags() == {"--endpoint-url"}


def test_exit_codes_are_the_readme_table() -> None:
    readme = (REPO / "README.md").read_text()
    rows = dict(re.findall(r"^\| (\d) \| (.+?) \|", readme, re.M))
    assert set(rows) == {"0", "1", "2", "3"}
    assert errors.EXIT_OK == 0 and rows["0"] == "done"
    assert errors.EXIT_FAILED == 1 and rows["1"].startswith("the operation failed")
    assert errors.EXIT_USAGE == 2 and "does not exist" in rows["2"]
    assert errors.EXIT_CHECK == 3 and rows["3"].startswith("a check ran and found a problem")
    nagios = dict(re.findall(r"^\| (\d) \| .+? \| (OK|WARNING|CRITICAL|UNKNOWN):", readme, re.M))
    assert {int(k): v for k, v in nagios.items()} == {v: k for k, v in errors.NAGIOS.items()}


def test_each_error_class_exits_as_documented() -> None:
    assert errors.UsageError("x").exit_code == errors.ConfigError("x").exit_code == 2
    assert errors.NoSuchBackup("x").exit_code == errors.StoreMissing("x").exit_code == 2  # named, not there
    assert issubclass(errors.NoSuchBackup, errors.NotFound) and issubclass(errors.StoreMissing, errors.NotFound)
    assert errors.CheckFailed("x").exit_code == errors.ContentRefused("x").exit_code == 3
    failed = ("ToolError", "ToolNotFound", "SourceError", "RestoreError", "StoreError", "NotFound", "AlreadyExists")
    for name in (*failed, "PermissionDenied", "Transient", "NoSpace", "LockHeld", "EncryptionError"):
        assert getattr(errors, name)("x").exit_code == 1, name
