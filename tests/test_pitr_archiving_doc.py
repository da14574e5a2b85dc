"""docs/PITR.md's archiving sections (between the ``archiving: begin``/``archiving: end`` markers), run: every
``dbkeeper …`` line of their ``sh`` blocks against a real PostgreSQL 15 cluster archiving with wal-push, and their
dbkeeper.toml read by the config loader.

The doc's names are swapped for this test's (``SUBSTITUTIONS``); the daemon, which runs until stopped, is started
as the server's user, seen to take its lock, and stopped. Every other line must exit 0.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from archiving import SOURCE, archiving_cluster
from conftest import _pg15_bindir
from dbkeeper import config

DOC = Path(__file__).resolve().parent.parent / "docs" / "PITR.md"
MIN_COMMANDS = 7


def sections() -> str:
    """The archiving sections of the document."""
    text = DOC.read_text()
    return text[text.index("<!-- archiving: begin -->") : text.index("<!-- archiving: end -->")]


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, flags=re.M | re.S)


def commands(text: str) -> list[str]:
    return [line.strip() for block in blocks(text, "sh") for line in block.splitlines() if line.startswith("dbkeeper ")]


def test_the_archiving_sections_commands_run(tmp_path: Path) -> None:
    text = sections()
    found = commands(text)
    assert len(found) >= MIN_COMMANDS, found
    [toml] = blocks(text, "toml")
    bindir = _pg15_bindir()
    assert bindir is not None
    with archiving_cluster(bindir, settings={"archive_timeout": "30s"}) as ac:
        subs = {
            "/var/lib/postgresql/15/main": str(ac.cluster.datadir),
            "postgresql://postgres@db1:5432/postgres": ac.cluster.url("postgres"),
            "s3://acme-backups/casino": ac.store,
            "casino-pg": SOURCE,
        }

        def swap(line: str) -> str:
            for old, new in subs.items():
                line = line.replace(old, new)
            return line

        # The doc's config, as written (with this test's names): the loader takes it.
        doc_config = tmp_path / "doc.toml"
        doc_config.write_text(swap(toml))
        loaded = config.load(str(doc_config))
        assert loaded.pitr.source == SOURCE and loaded.pitr.data_dir == str(ac.cluster.datadir)
        # Commands read the same settings, plus a [[sources]] entry schedule install wants.
        ac.config.write_text(
            f'store = "{ac.store}"\n\n[[sources]]\nname = "{SOURCE}"\nurl = "{ac.cluster.url("postgres")}"\n\n'
            + swap(toml[toml.index("[pitr]") :])
        )
        closed = ac.switch()
        ac.wait_archived(closed)
        # The monitoring section's status is of a source with a base backup (before the first, it is CRITICAL: the
        # doc says so), taken as its Base backups section shows.
        done = subprocess.run(
            ac.dbkeeper_argv("basebackup", ac.cluster.url("postgres"), "--pg-bin", str(bindir)),
            capture_output=True,
            text=True,
            env=ac.cluster.env(),
        )
        assert done.returncode == 0, done.stderr
        for line in found:
            argv = swap(line).split()[1:]
            if argv[0] == "wal-daemon":
                with ac.daemon(*argv[1:]):
                    time.sleep(1)
                    assert ac.daemon_pid() is not None
                continue
            result = subprocess.run(ac.dbkeeper_argv(*argv), capture_output=True, text=True, env=ac.cluster.env())
            assert result.returncode == 0, f"{line}\n{result.stdout}{result.stderr}"
            assert "Traceback" not in result.stderr
