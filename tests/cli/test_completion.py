"""dbkeeper completion: scripts generated from the parser; the bash one is sourced in a real bash and asked."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dbkeeper.cli import COMMANDS, build_parser
from dbkeeper.cli.completion import script, tree
from helpers import run_dbkeeper

BASH = shutil.which("bash") or "/bin/bash"


def complete(line: str, tmp_path: Path) -> list[str]:
    """What bash offers for the last word of ``line`` (empty when ``line`` ends with a space), with the script
    dbkeeper printed sourced as a user would: ``source <(dbkeeper completion bash)``."""
    words = line.split(" ")
    probe = tmp_path / "probe.sh"
    probe.write_text(
        f"source <({sys.executable} -m dbkeeper completion bash) || exit 9\n"
        "complete -p dbkeeper >/dev/null || exit 8\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        f'COMP_LINE="{line}"\n'
        "_dbkeeper\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run([BASH, "--norc", "--noprofile", str(probe)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return [w for w in done.stdout.splitlines() if w]


def test_bash_completes_commands_subcommands_flags_and_choices(tmp_path: Path) -> None:
    assert complete("dbkeeper re", tmp_path) == ["restore"]
    assert sorted(complete("dbkeeper ", tmp_path)) == sorted(COMMANDS)
    assert complete("dbkeeper schedule ", tmp_path) == ["install", "run", "show"]
    assert complete("dbkeeper --config my.toml schedule r", tmp_path) == ["run"]  # an option's value is skipped
    assert complete("dbkeeper backup --compress ", tmp_path) == ["gzip", "zstd", "none"]
    assert complete("dbkeeper backup --compress zstd --st", tmp_path) == ["--store", "--stall-timeout"]
    assert "--keep-daily" in complete("dbkeeper prune --keep-", tmp_path)
    assert complete("dbkeeper schedule run --n", tmp_path) == ["--now"]
    assert complete("dbkeeper schedule run --now ", tmp_path) == [
        "backup",
        "prune",
        "copy",
        "drill",
        "basebackup",
        "pitr-drill",
    ]
    assert complete("dbkeeper completion ", tmp_path) == ["bash", "zsh", "fish"]
    assert complete("dbkeeper list --store ", tmp_path) == []  # a path: bash's default (file names) takes over


def test_every_flag_of_every_command_is_in_every_script() -> None:
    root = tree(build_parser())
    for shell in ("bash", "zsh", "fish"):
        text = script(shell, build_parser())
        for node in root.walk():
            for flag in node.flags:
                fish = f"-l {flag[2:]}" if flag.startswith("--") else f"-s {flag[1:]}"
                assert (fish if shell == "fish" else flag) in text, (shell, node.path, flag)
            for sub in node.subs:
                assert sub.path.split()[-1] in text
    assert {n.path for n in root.walk()} >= {"", *COMMANDS, "schedule run", "key generate"}


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts(shell: str, tmp_path: Path) -> None:
    done = run_dbkeeper("completion", shell)
    assert done.returncode == 0 and done.stderr == ""
    if shell == "zsh":
        assert done.stdout.startswith("#compdef dbkeeper\n") and "compdef _dbkeeper dbkeeper" in done.stdout
    else:
        assert "complete -c dbkeeper -f -n __fish_use_subcommand -a restore" in done.stdout
        assert "complete -c dbkeeper -n '__fish_seen_subcommand_from backup' -l compress -x -a 'gzip zstd none'" in (
            done.stdout
        )
    binary = shutil.which(shell)
    if binary:  # where the shell is installed, it must at least parse the script
        (tmp_path / "c").write_text(done.stdout)
        check = [binary, "-n", str(tmp_path / "c")] if shell == "zsh" else [binary, "--no-execute", str(tmp_path / "c")]
        assert subprocess.run(check, capture_output=True).returncode == 0


def test_an_unknown_shell_is_a_usage_error() -> None:
    done = run_dbkeeper("completion", "tcsh")
    assert done.returncode == 2 and "invalid choice: 'tcsh'" in done.stderr and "Traceback" not in done.stderr
