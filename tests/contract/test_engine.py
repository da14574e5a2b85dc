"""One suite that every engine runs, on SQLite, PostgreSQL 15 and PostgreSQL 17: the Engine contract in
engines/interface.py, through the engines' own interfaces (engine_for, dump, check_for, restore_target) and,
where a whole backup is needed, run_backup and run_restore. Nothing is mocked: the dumps are real, the loads
are real, a killed pg_dump is killed with SIGKILL."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbkeeper.engines import Engine, RestoreOptions, RestoreSpec, check_for
from dbkeeper.errors import CheckFailed, DbkeeperError, RestoreError
from dbkeeper.pipeline import BackupOptions, run_backup
from dbkeeper.repo import Repository
from dbkeeper.restore import run_restore
from dbkeeper.storage.local import LocalStore
from engine_cases import EngineCase, Interrupted

ROWS = 500
BIG = 300_000  # about 12 MB of dump: far more than a pipe and a read hold, so a kill lands mid-stream


def pieces(data: bytes, size: int = 64 * 1024 + 7) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def dump(engine: Engine) -> tuple[bytes, dict[str, int]]:
    with engine.dump() as running:
        data = b"".join(running.chunks())
        return data, running.finish()


def spec_for(engine: Engine, counts: dict[str, int]) -> RestoreSpec:
    """What restore.py builds from a manifest, built from what the manifest is built from."""
    info = engine.inspect()
    return RestoreSpec(
        dump_format=info.dump_format,
        encoding=info.server_encoding,
        lc_collate=info.extra.get("lc_collate"),
        lc_ctype=info.extra.get("lc_ctype"),
        row_counts=counts,
    )


def restore(
    engine: Engine, chunks: Iterator[bytes], spec: RestoreSpec, options: RestoreOptions, data: bytes | None = None
) -> dict[str, int]:
    """Load, count, commit; discard on any failure (what restore.py does around the engine)."""
    target = engine.restore_target(spec, options)
    try:
        target.load(chunks, reopen=(lambda: pieces(data)) if data is not None else None)
        counts = target.row_counts(spec.row_counts)
        target.commit()
    except BaseException:
        target.discard()
        raise
    return counts


def rows(engine: Engine) -> list[list[str | None]]:
    return [list(r) for r in engine.query("SELECT id, payload FROM t ORDER BY id")]


def check(kind: str, dump_format: str, data: bytes) -> tuple[dict[str, int], list[str]]:
    checker = check_for(kind, dump_format)
    try:
        for chunk in pieces(data):
            checker.feed(chunk)
        return checker.result()
    finally:
        checker.close()


def settled(case: EngineCase, timeout: float = 10) -> list[str]:
    """The leftovers once they stop changing (an ended server session takes a moment to go)."""
    deadline = time.monotonic() + timeout
    while (left := case.leftovers()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.mark.parametrize("jobs", [1, 2])
def test_round_trip(engine_case: EngineCase, jobs: int) -> None:
    source = engine_case.create("src", ROWS)
    data, counts = dump(source)
    assert counts == dict(zip(engine_case.tables, (ROWS, 3), strict=True))
    spec = spec_for(source, counts)
    assert check(source.name, spec.dump_format, data) == (counts, [])

    target = engine_case.engine("dst")
    assert restore(target, pieces(data), spec, RestoreOptions(jobs=jobs), data=data) == counts
    assert rows(target) == rows(source)
    assert target.query("SELECT count(*) FROM u") == [["3"]]
    assert settled(engine_case) == []


def test_an_existing_target_is_refused_and_left_alone(engine_case: EngineCase) -> None:
    source = engine_case.create("src", ROWS)
    _, counts = dump(source)
    existing = engine_case.create("dst", 7)
    before = rows(existing)
    with pytest.raises(RestoreError, match="already exists") as refused:
        existing.restore_target(spec_for(source, counts), RestoreOptions())
    assert "--drop-existing" in (refused.value.hint or "")
    assert rows(existing) == before
    assert settled(engine_case) == []


def test_drop_existing_replaces_the_target(engine_case: EngineCase) -> None:
    source = engine_case.create("src", ROWS)
    data, counts = dump(source)
    existing = engine_case.create("dst", 7)
    assert restore(existing, pieces(data), spec_for(source, counts), RestoreOptions(drop_existing=True)) == counts
    assert rows(engine_case.engine("dst")) == rows(source)
    assert settled(engine_case) == []


@pytest.mark.parametrize("failure", ["stream breaks", "load error"])
@pytest.mark.parametrize("existed", [True, False], ids=["over an existing target", "new target"])
def test_a_failed_load_leaves_the_target_as_it_was(engine_case: EngineCase, failure: str, existed: bool) -> None:
    source = engine_case.create("src", ROWS)
    data, counts = dump(source)
    before = rows(engine_case.create("dst", 7)) if existed else None

    def breaking() -> Iterator[bytes]:
        yield data[: len(data) // 2]
        raise CheckFailed("the backup is damaged halfway")  # what restore's content check raises mid-stream

    chunks = breaking() if failure == "stream breaks" else pieces(engine_case.corrupt(data))
    with pytest.raises(DbkeeperError):
        restore(engine_case.engine("dst"), chunks, spec_for(source, counts), RestoreOptions(drop_existing=True))
    if existed:
        assert rows(engine_case.engine("dst")) == before
    else:
        assert not engine_case.exists("dst")
    assert settled(engine_case) == []


def test_a_dump_killed_midway_raises_and_leaves_nothing(engine_case: EngineCase) -> None:
    source = engine_case.create("src", BIG)
    got = 0
    with pytest.raises((DbkeeperError, Interrupted)) as stopped, source.dump() as running:
        chunks = running.chunks()
        got += len(next(chunks))
        engine_case.kill_dump()
        got += sum(len(c) for c in chunks)
        running.finish()
    assert got > 0
    if isinstance(stopped.value, DbkeeperError):
        assert "pg_dump" in stopped.value.message and "signal 9" in stopped.value.message
    assert settled(engine_case) == []


def test_a_truncated_dump_is_refused_by_the_checker_and_by_restore(engine_case: EngineCase, tmp_path: Path) -> None:
    source = engine_case.create("src", ROWS)
    data, counts = dump(source)
    spec = spec_for(source, counts)
    _, problems = check(source.name, spec.dump_format, engine_case.truncate(data))
    assert problems

    # The same cut in a stored backup whose checksums were rewritten to match: only the content can tell.
    store = LocalStore(tmp_path / "store")
    repo = Repository(store)
    doc = run_backup(source, repo, "src", BackupOptions(compression="none"))
    path = store.local_path(doc.name)
    cut = engine_case.truncate(path.read_bytes())
    digest = hashlib.sha256(cut).hexdigest()
    path.write_bytes(cut)
    Path(f"{path}.sha256").write_text(f"{digest}  {doc.file}\n")
    manifest = json.loads(Path(f"{path}.json").read_text())
    manifest.update(sha256=digest, size_bytes=len(cut), raw_size_bytes=len(cut))
    Path(f"{path}.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckFailed, match="nothing was restored") as refused:
        run_restore(repo, doc.name, engine_case.url("dst"), RestoreOptions(), pg_bin=engine_case.pg_bin)
    assert problems[0].split(": ")[-1] in refused.value.message  # the checker's finding, said by restore
    assert not engine_case.exists("dst")
    assert settled(engine_case) == []


def test_a_scratch_database_beside_the_source_is_restored_into_and_dropped(engine_case: EngineCase) -> None:
    source = engine_case.create("src", ROWS)
    data, counts = dump(source)
    scratch = source.scratch(engine_case.db_name("scratch"))
    assert scratch.display() == engine_case.url("scratch")
    restore(scratch, pieces(data), spec_for(source, counts), RestoreOptions())
    assert rows(scratch) == rows(source) and engine_case.exists("scratch")
    scratch.drop()
    assert not engine_case.exists("scratch")
    assert settled(engine_case) == []
