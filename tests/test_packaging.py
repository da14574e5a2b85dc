"""The package as users get it: built from a copy of this checkout with `python -m build` (no warning), its metadata
(SPDX license, LICENSE file, bounded dependencies, boto3 and numpy only in extras), the changelog, and
docs/INSTALL.md's commands run for real (pipx installs of the built wheel, with and without [s3], and the shell
completion lines)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
INSTALL = REPO / "docs" / "INSTALL.md"


@dataclass
class Dist:
    wheel: Path
    sdist: Path
    log: str


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dist]:
    """sdist and wheel of this checkout's files (tracked, and new ones not ignored), built in a copy."""
    work = tmp_path_factory.mktemp("build")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    src = work / "src"
    for rel in filter(None, listed.split("\0")):
        if (REPO / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, src / rel)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # byte-compiling as pip does
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(work / "dist"), str(src)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [wheel] = (work / "dist").glob("*.whl")
    [sdist] = (work / "dist").glob("*.tar.gz")
    yield Dist(wheel, sdist, done.stdout + done.stderr)


def test_build_does_not_warn(dist: Dist) -> None:
    warnings = [line for line in dist.log.splitlines() if re.search(r"warn|deprecat", line, re.I)]
    assert warnings == []


def metadata(dist: Dist) -> list[tuple[str, str]]:
    with zipfile.ZipFile(dist.wheel) as whl:
        text = whl.read(f"dbkeeper-{VERSION}.dist-info/METADATA").decode()
        assert f"dbkeeper-{VERSION}.dist-info/licenses/LICENSE" in whl.namelist()
    head = text.split("\n\n", 1)[0]
    return [(k, v) for k, _, v in (line.partition(": ") for line in head.splitlines())]


def test_license_and_bounded_dependencies(dist: Dist) -> None:
    meta = metadata(dist)
    assert ("License-Expression", "MIT") in meta and ("License-File", "LICENSE") in meta
    assert not [v for k, v in meta if k == "Classifier" and v.startswith("License ::")]  # one way to say it
    requires = [v for k, v in meta if k == "Requires-Dist"]
    for req in requires:
        name = re.match(r"[A-Za-z0-9_.-]+", req)
        assert name, req
        if name.group(0) != "dbkeeper":  # the test extra names dbkeeper's own extras
            assert re.search(r"<\d", req) and re.search(r">=\d", req), f"not bounded both ways: {req}"
    base = [r for r in requires if "extra ==" not in r]
    assert not [r for r in base if r.startswith(("boto3", "botocore", "numpy"))], base
    assert [r for r in requires if r.startswith("boto3")] == ['boto3<2,>=1.28; extra == "s3"']
    assert [r for r in requires if r.startswith("numpy")] == ['numpy<3,>=1.24; extra == "fast"']
    assert "license" not in PYPROJECT["project"] or PYPROJECT["project"]["license"] == "MIT"


def test_license_file() -> None:
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License\n\nCopyright (c) 2026 the dbkeeper authors\n")
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in text


def test_changelog_keeps_a_changelog() -> None:
    text = (REPO / "CHANGELOG.md").read_text()
    assert text.startswith("# Changelog\n") and "keepachangelog.com" in text
    versions = re.findall(r"^## \[([^\]]+)\](?: - (\d{4}-\d\d-\d\d))?$", text, re.M)
    assert versions[0] == ("Unreleased", "") and (VERSION, versions[1][1]) == versions[1] and versions[1][1]
    sections = set(re.findall(r"^### (.+)$", text, re.M))
    assert sections and sections <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


def install_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", INSTALL.read_text(), re.S)
    return [line.split("  #")[0].strip() for block in blocks for line in block.splitlines() if line.strip()]


@pytest.mark.slow
def test_install_md_commands_run(dist: Dist, tmp_path: Path) -> None:
    """Each pipx line in a pipx home of its own, with the package name swapped for the built wheel; then the
    --version and completion lines with that install's dbkeeper on PATH."""
    commands = install_commands()
    assert commands == [
        "pipx install dbkeeper",
        "pipx install --force 'dbkeeper[s3]'",
        "dbkeeper --version",
        "source <(dbkeeper completion bash)",
        "dbkeeper completion fish > ~/.config/fish/completions/dbkeeper.fish",
    ]
    home = tmp_path / "home"
    (home / ".config" / "fish" / "completions").mkdir(parents=True)
    bin_dir = tmp_path / "bin"
    env = {
        **os.environ,
        "HOME": str(home),
        "PIPX_HOME": str(tmp_path / "pipx"),
        "PIPX_BIN_DIR": str(bin_dir),
        "PIPX_MAN_DIR": str(tmp_path / "man"),
        "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    env.pop("PYTHONPATH", None)  # the installed package, not this checkout's src/
    pipx = [sys.executable, "-m", "pipx"]
    venv_python = tmp_path / "pipx" / "venvs" / "dbkeeper" / "bin" / "python"

    def importable(module: str) -> bool:
        probe = [str(venv_python), "-c", f"import {module}"]
        return subprocess.run(probe, capture_output=True, env=env).returncode == 0

    for line in commands[:2]:
        argv = [w.replace("dbkeeper", str(dist.wheel), 1) for w in shlex.split(line)][1:]
        done = subprocess.run([*pipx, *argv], capture_output=True, text=True, env=env)
        assert done.returncode == 0, (line, done.stdout[-2000:], done.stderr[-2000:])
        if line == commands[0]:  # without the extra: no boto3 (nor numpy), a directory store works
            assert not importable("boto3") and not importable("numpy") and importable("dbkeeper")
            s3 = subprocess.run([bin_dir / "dbkeeper", "list", "--store", "s3://b/p"], capture_output=True, text=True)
            assert s3.returncode == 2 and "pip install 'dbkeeper[s3]'" in s3.stderr, s3.stderr
            local = subprocess.run(
                [bin_dir / "dbkeeper", "backup", "sqlite:///nothing.db"], capture_output=True, text=True, cwd=tmp_path
            )
            assert "boto3" not in local.stderr and "Traceback" not in local.stderr
        else:
            assert importable("boto3")
    version = subprocess.run(shlex.split(commands[2]), capture_output=True, text=True, env=env)
    assert version.stdout == f"dbkeeper {VERSION}\n"
    script = f"{commands[3]}\ncomplete -p dbkeeper\n{commands[4]}\n"
    shell = subprocess.run(["bash", "--norc", "-c", script], capture_output=True, text=True, env=env)
    assert shell.returncode == 0 and shell.stdout.strip() == "complete -o default -F _dbkeeper dbkeeper", shell.stderr
    fish = (home / ".config" / "fish" / "completions" / "dbkeeper.fish").read_text()
    assert "complete -c dbkeeper" in fish and "-a restore" in fish
