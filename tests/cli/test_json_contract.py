"""The scripting contract: every --json document a command prints carries format_version and matches its schema in
docs/json/<command>.schema.json, in success and in failure; every leaf command takes --json."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import pytest

from dbkeeper.cli import COMMANDS, build_parser
from helpers import SCHEMAS, make_sqlite_app, run_dbkeeper, schema
from helpers import check_json as check


def run_json(tmp: Path, *argv: str, schema_name: str, codes: tuple[int, ...] = (0,)) -> dict[str, Any]:
    done = run_dbkeeper(*argv, "--json", cwd=tmp)
    assert done.returncode in codes, (argv, done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    # A failure to run prints the error document; a check that ran and failed (verify, drill) keeps its own.
    check(doc, "error" if "error" in doc and doc.get("ok") is False else schema_name)
    return doc


def leaf_parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    """Every command that runs something, with its parser: ``list``, ``schedule run``, ``key generate`` …"""
    out = []

    def walk(prefix: str, parser: argparse.ArgumentParser) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            out.append((prefix, parser))
        for action in subs:
            for name, child in action.choices.items():
                walk(f"{prefix} {name}".strip(), child)

    walk("", build_parser())
    return out


# Commands whose output is for a program that reads only their exit status, not for scripts.
NO_JSON = {"wal-fetch": "restore_command: PostgreSQL reads its exit status and the file it writes, nothing else"}


@pytest.mark.parametrize("command", [name for name, _ in leaf_parsers() if name not in NO_JSON])
def test_every_command_takes_json_and_has_a_schema(command: str) -> None:
    parser = dict(leaf_parsers())[command]
    assert any("--json" in a.option_strings for a in parser._actions), f"{command} takes no --json"
    top = command.split()[0]
    name = "-".join(command.split()) if top == "schedule" else top
    assert (SCHEMAS / f"{name}.schema.json").is_file(), f"no docs/json/{name}.schema.json"
    schema(name)


def test_schema_files_are_for_commands() -> None:
    known = {n.split()[0] if n.split()[0] != "schedule" else "-".join(n.split()) for n, _ in leaf_parsers()}
    files = {p.name.removesuffix(".schema.json") for p in SCHEMAS.glob("*.schema.json")}
    assert files - {"error"} == known - set(NO_JSON) and set(COMMANDS) <= known | {"schedule"}


def test_every_command_real_output_matches_its_schema(tmp_path: Path) -> None:
    make_sqlite_app(tmp_path / "app.db", users=40, sessions=4)
    (tmp_path / "dbkeeper.toml").write_text(
        '[[sources]]\nname = "app"\nurl = "sqlite:///app.db"\n[schedule]\nbackup = "0 2 * * *"\ndrill = "off"\n'
    )
    backup = run_json(tmp_path, "backup", schema_name="backup")
    assert backup["ok"] and backup["backups"][0]["manifest"]["row_counts"]["users"] == 40
    listed = run_json(tmp_path, "list", schema_name="list")
    [entry] = listed["backups"]
    assert entry["state"] == "unverified" and entry["checked"] == ["manifest", "size", "sidecar"]
    run_json(tmp_path, "verify", "latest", schema_name="verify")
    run_json(tmp_path, "restore", "latest", "sqlite:///copy.db", schema_name="restore")
    run_json(tmp_path, "copy", "latest", "--to", "offsite", schema_name="copy")
    run_json(tmp_path, "prune", "--keep-last", "1", "--dry-run", schema_name="prune")
    run_json(tmp_path, "drill", "--log", "drills.md", schema_name="drill")
    status = run_json(tmp_path, "status", "--drill-log", "drills.md", schema_name="status")
    assert status["databases"][0]["newest_backup"]["state"] == "drilled"
    run_json(tmp_path, "cleanup", schema_name="cleanup")
    run_json(tmp_path, "key", "generate", "signing.key", schema_name="key")
    run_json(tmp_path, "key", "public", "signing.key", schema_name="key")
    run_json(tmp_path, "schedule", "show", schema_name="schedule-show")
    run_json(tmp_path, "schedule", "install", "--cron", "--dry-run", schema_name="schedule-install")
    run_json(tmp_path, "completion", "bash", schema_name="completion")

    # Failures: the error document, with the exit code it exits with; a check that failed keeps its own shape.
    err = run_json(tmp_path, "verify", "nonexist", schema_name="verify", codes=(2,))
    assert err == {**err, "ok": False, "exit_code": 2} and "no backup nonexist" in err["error"]
    err = run_json(tmp_path, "list", "--store", "nowhere", schema_name="list", codes=(2,))
    assert err["error"] == "store nowhere does not exist" and err["exit_code"] == 2
    err = run_json(tmp_path, "status", "--store", "nowhere", schema_name="status", codes=(3,))
    assert err["state"] == "UNKNOWN"
    data = tmp_path / "backups" / entry["name"]
    data.write_bytes(data.read_bytes()[:-1] + bytes([data.read_bytes()[-1] ^ 1]))  # a flipped byte: size is right
    failed = run_json(tmp_path, "verify", "latest", schema_name="verify", codes=(3,))
    assert not failed["ok"] and any(c["name"] == "checksum" and not c["ok"] for c in failed["checks"])
    failed_backup = run_json(tmp_path, "backup", "sqlite:///missing.db", schema_name="backup", codes=(1, 2))
    assert failed_backup["ok"] is False


def test_schedule_run_json_is_one_document_per_line(tmp_path: Path) -> None:
    make_sqlite_app(tmp_path / "app.db", users=10, sessions=1)
    (tmp_path / "dbkeeper.toml").write_text(
        '[[sources]]\nname = "app"\nurl = "sqlite:///app.db"\n[schedule]\nbackup = "0 2 * * *"\ndrill = "off"\n'
    )
    done = run_dbkeeper("schedule", "run", "--now", "backup", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]  # nothing else on stdout: the step's output
    for event in events:  # went to stderr
        check(event, "schedule-run")
    assert [(e["event"], e["job"]) for e in events] == [("start", "backup"), ("finish", "backup")]
    assert events[-1]["exit_code"] == 0 and events[-1]["seconds"] > 0
    assert "backups/app/app_" in done.stderr
    assert os.path.isdir(tmp_path / "backups" / "app")
