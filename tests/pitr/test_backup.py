"""dbkeeper basebackup: what it writes, and what it leaves when the store goes away half way (no backup.json)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from archiving import archiving_cluster
from conftest import _pg15_bindir
from pitr_harness import PITR_SETTINGS, basebackup, dbk, pgbench

pytestmark = pytest.mark.slow


class CuttingProxy:
    """A TCP proxy to ``upstream`` that, after ``budget`` bytes from the client, drops every connection and
    refuses new ones: the store going away in the middle of an upload."""

    def __init__(self, upstream: tuple[str, int], budget: int) -> None:
        self.upstream = upstream
        self.budget = budget
        self.sent = 0
        self.cut = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.cut.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self.conns += [client, server]
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, counted: bool) -> None:
        try:
            while data := src.recv(65536):
                if counted:
                    self.sent += len(data)
                    if self.sent > self.budget:
                        self.close()
                        return
                dst.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self.cut.set()
        for s in [self.listener, *self.conns]:
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


@contextmanager
def cutting_proxy(endpoint: str, budget: int) -> Iterator[CuttingProxy]:
    host, port = endpoint.removeprefix("http://").split(":")
    proxy = CuttingProxy((host, int(port.rstrip("/"))), budget)
    try:
        yield proxy
    finally:
        proxy.close()


def test_a_base_backup_lists_its_objects_and_wal_range(tmp_path: Path) -> None:
    with archiving_cluster(_pg15_bindir(), settings=PITR_SETTINGS) as ac:
        pgbench(ac, "-i", "-s", "1", "-q")
        doc = basebackup(ac)
        prefix = Path(ac.store) / "pitr" / "main" / doc["archive_id"] / "base" / doc["id"]
        names = sorted(p.name for p in prefix.iterdir())
        assert names == ["backup.json", "backup_manifest.zst", "base.tar.zst"]
        stored = json.loads((prefix / "backup.json").read_text())
        assert stored == doc
        assert doc["start_segment"] <= doc["stop_segment"] and doc["wal_verified"] is True
        assert doc["system_identifier"] == ac.cluster.psql("SELECT system_identifier FROM pg_control_system()")
        sizes = {o["name"]: o["size"] for o in doc["objects"]}
        assert sizes == {n: (prefix / n).stat().st_size for n in names if n != "backup.json"}
        # The WAL range is in the archive: every segment from start to stop.
        for seg in {doc["start_segment"], doc["stop_segment"]}:
            assert list(Path(ac.store).rglob(f"{seg}-*")), seg
        listing = dbk(ac, "list")
        assert f"pitr/main/{doc['archive_id']}/base/{doc['id']}" in listing.stdout
        assert f"full, WAL {doc['start_segment']}..{doc['stop_segment']}  ok" in listing.stdout, listing.stdout

        # Without its backup.json it is an interrupted base backup: listed as such, never restored from.
        (prefix / "backup.json").unlink()
        listing = dbk(ac, "list", "--json")
        bases = json.loads(listing.stdout)["base_backups"]
        assert [(b["id"], b["status"]) for b in bases] == [(doc["id"], "incomplete")]
        assert "INCOMPLETE: no backup.json" in dbk(ac, "list").stdout
        done = dbk(ac, "restore", "--pitr", str(tmp_path / "x"), "--to-latest")
        assert done.returncode == 1 and "no good base backup" in done.stderr, done.stderr


def test_the_store_going_away_during_a_base_backup_leaves_no_backup_json(
    s3_env: dict[str, str], s3_store_url: str, s3_client: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {k: v for k, v in s3_env.items() if k not in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")}
    env.update(AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with archiving_cluster(_pg15_bindir(), store=s3_store_url, env=env, settings=PITR_SETTINGS) as ac:
        pgbench(ac, "-i", "-s", "2", "-q")
        ac.wait_archived(ac.switch())
        with cutting_proxy(env["AWS_ENDPOINT_URL"], 256 * 1024) as proxy:
            done = dbk(
                ac, "basebackup", ac.cluster.url(), "--json", env={"AWS_ENDPOINT_URL": f"http://127.0.0.1:{proxy.port}"}
            )
        assert proxy.cut.is_set()
        assert done.returncode != 0, done.stdout
        assert json.loads(done.stdout)["ok"] is False
        bucket, _, prefix = s3_store_url.removeprefix("s3://").partition("/")
        keys = [
            o["Key"]
            for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)  # type: ignore[attr-defined]
            for o in page.get("Contents", [])
        ]
        assert keys, "the WAL archive should be there"
        assert not [k for k in keys if k.endswith("backup.json")], keys
        assert not [k for k in keys if "/base/" in k], keys  # what it wrote was removed (the store came back)
        # A retry with the store back works, and is the only base backup.
        doc = basebackup(ac)
        listing = dbk(ac, "restore", "--pitr", "/nonexistent/x", "--to-latest", "--action", "pause")
        assert listing.returncode == 2 and "cannot pause" in listing.stderr
        assert doc["kind"] == "full"
