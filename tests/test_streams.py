import hashlib

import pytest

from dbkeeper.streams import Tap, then, threaded


def test_tap_counts_hashes_and_reports_progress() -> None:
    seen: list[int] = []
    tap = Tap(seen.append)
    assert b"".join(tap.tap([b"ab", b"", b"cde"])) == b"abcde"
    assert tap.size == 5 and seen == [2, 2, 5]  # running totals, never a chunk's own size
    assert tap.hexdigest() == hashlib.sha256(b"abcde").hexdigest()


def test_a_counting_tap_does_not_hash() -> None:
    tap = Tap(digest=False)
    assert list(tap.tap([b"abc"])) == [b"abc"] and tap.size == 3
    with pytest.raises(ValueError):
        tap.hexdigest()


def test_threaded_passes_chunks_and_errors_through() -> None:
    def failing() -> object:
        yield b"a"
        raise RuntimeError("boom")

    out = []
    with pytest.raises(RuntimeError, match="boom"):
        for chunk in threaded(failing()):  # type: ignore[arg-type]
            out.append(chunk)
    assert out == [b"a"]
    assert list(then(iter([b"x"]), lambda: out.append(b"after"))) == [b"x"] and out[-1] == b"after"
