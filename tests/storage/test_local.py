import os
from pathlib import Path

import pytest

from dbkeeper.storage import local
from dbkeeper.storage.local import LocalStore


def test_a_large_put_starts_writeback_as_it_goes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    advised: list[tuple[int, int, int]] = []
    monkeypatch.setattr(local, "WRITE_BEHIND", 1000)
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, off, n, advice: advised.append((off, n, advice)))
    chunks = [bytes([i]) * 300 for i in range(10)]
    assert LocalStore(tmp_path).put("obj", chunks) == 3000
    assert (tmp_path / "obj").read_bytes() == b"".join(chunks)
    # every range written is handed to writeback once, in order, before the final fsync waits for the rest
    assert [(off, n) for off, n, _ in advised] == [(0, 1200), (1200, 1200)]
    assert {advice for *_, advice in advised} == {os.POSIX_FADV_DONTNEED}


def test_writeback_advice_that_fails_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(local, "WRITE_BEHIND", 10)
    monkeypatch.setattr(os, "posix_fadvise", refuse)
    assert LocalStore(tmp_path).put("obj", [b"x" * 100] * 3) == 300
    assert (tmp_path / "obj").read_bytes() == b"x" * 300
