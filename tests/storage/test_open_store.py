"""open_store without the [s3] extra: a directory store needs no boto3; an s3:// store says which extra to install.

dbkeeper runs as a real process on this interpreter with boto3 and botocore made unimportable (tests/without.py),
as a ``pip install dbkeeper`` without ``[s3]`` leaves it; tests/test_packaging.py does the same through a real
install of the built wheel.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers import make_sqlite_app
from without import dbkeeper_without, hide_modules_prelude


def run(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*dbkeeper_without("boto3", "botocore", "s3transfer"), *argv], capture_output=True, text=True, cwd=tmp_path
    )


def test_a_directory_store_needs_no_boto3(tmp_path: Path) -> None:
    make_sqlite_app(tmp_path / "app.db", users=20, sessions=2)
    for argv in (["backup", "app.db"], ["list"], ["verify", "latest"], ["restore", "latest", "sqlite:///r.db"]):
        done = run(tmp_path, *argv)
        assert done.returncode == 0, (argv, done.stderr)
    # the prelude really hides it: importing boto3 after it fails as a missing package does
    hidden = subprocess.run(
        [sys.executable, "-c", hide_modules_prelude("boto3") + "import boto3"], capture_output=True, text=True
    )
    assert hidden.returncode == 1 and "ModuleNotFoundError: No module named 'boto3'" in hidden.stderr


def test_an_s3_store_without_boto3_names_the_extra(tmp_path: Path) -> None:
    for argv in (["list", "--store", "s3://bucket/prefix"], ["backup", "x.db", "--store", "s3://b/p"]):
        done = run(tmp_path, *argv)
        assert done.returncode == 2, (argv, done.stdout, done.stderr)
        lines = done.stderr.splitlines()
        assert lines[-2].startswith("dbkeeper: error: s3://b") and "need boto3, which is not installed" in lines[-2]
        assert lines[-1] == "  Try: install the s3 extra: pip install 'dbkeeper[s3]'" + (
            " (pipx: pipx install --force 'dbkeeper[s3]')"
        )
        assert "Traceback" not in done.stderr
