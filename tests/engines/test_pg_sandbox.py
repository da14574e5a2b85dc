"""The drill's throwaway cluster: who its server runs as, and where it listens."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from dbkeeper.engines.postgres.psql import query
from dbkeeper.engines.postgres.sandbox import Sandbox
from pg import Cluster


def _ids(pid: int) -> dict[str, list[int]]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {
        k: [int(x) for x in v.split()]
        for k, _, v in (line.partition(":") for line in status)
        if k in ("Uid", "Gid", "Groups")
    }


def test_the_server_runs_as_the_unprivileged_user_with_its_own_group_only(pg15: Cluster) -> None:
    """Code a restored dump runs (a CHECK calling COPY … TO PROGRAM) runs as the server's OS user: as root, that is
    ``postgres`` with its own group, never root's group or groups."""
    if os.geteuid() != 0:
        pytest.fail("this test checks what a drill run as root drops; the suite runs as root", pytrace=False)
    box = Sandbox.start(15, pg_bin=str(pg15.bindir))
    try:
        pid = int((box.root / "data" / "postmaster.pid").read_text().split()[0])
        entry = pwd.getpwnam("postgres")
        ids = _ids(pid)
        assert set(ids["Uid"]) == {entry.pw_uid} and set(ids["Gid"]) == {entry.pw_gid}, ids
        assert ids["Groups"] in ([], [entry.pw_gid]), ids
        assert query(
            box.conn("postgres"),
            "SELECT current_setting('listen_addresses') = ''",
            pg_bin=str(pg15.bindir),
            doing="asking",
        ) == [["t"]]
    finally:
        box.stop()
    assert not box.root.exists()
