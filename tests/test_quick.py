"""The fast path's own parsing (dbkeeper.quick, pitr.spool's acknowledgements), fuzzed: it never raises, and what it
answers agrees with the full parser; anything it does not understand goes to the full command."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dbkeeper.cli import build_parser
from dbkeeper.pitr.spool import Ack
from dbkeeper.quick import _PUSH_OPTIONS, options

WORDS = st.sampled_from(
    [
        "wal-push",
        "wal-fetch",
        "--source",
        "--store",
        "--spool",
        "--config",
        "--json",
        "--data-dir",
        "-x",
        "a",
        "b",
        "--source=s",
        "--store=",
        "pg_wal/000000010000000000000001",
        "--",
        "%p",
    ]
)


@settings(deadline=None)  # the first call imports the full parser's modules
@given(st.lists(WORDS, max_size=8))
def test_options_never_raise_and_agree_with_the_full_parser(words: list[str]) -> None:
    found = options(words, "wal-push", ("path",), _PUSH_OPTIONS)
    if found is None:
        return
    args = build_parser("wal-push").parse_args(words)  # the full parser takes the same words
    assert args.path == found["path"]
    assert args.source == found.get("--source") and args.store == found.get("--store")
    assert args.spool == found.get("--spool") and args.config == found.get("--config")


def test_known_forms() -> None:
    assert options(["wal-push", "p", "--source", "s"], "wal-push", ("path",), _PUSH_OPTIONS) == {
        "path": "p",
        "--source": "s",
    }
    assert options(["--config", "c", "wal-push", "p"], "wal-push", ("path",), _PUSH_OPTIONS) == {
        "--config": "c",
        "path": "p",
    }
    for refused in (["wal-push", "p", "--json"], ["wal-push"], ["wal-push", "p", "q"], ["wal-push", "p", "--source"]):
        assert options(refused, "wal-push", ("path",), _PUSH_OPTIONS) is None


@given(st.text(max_size=300))
def test_an_acknowledgement_that_does_not_read_is_none(text: str) -> None:
    ack = Ack.from_text(text)
    if ack is not None:
        assert Ack.from_text(ack.to_text()) is not None


def test_acknowledgements_round_trip() -> None:
    ack = Ack("000000010000000000000001", 16 << 20, "ab" * 32, "pitr/x", "main", "/store", "1:2:3:4:5")
    back = Ack.from_text(ack.to_text())
    assert back is not None and back.to_text() == ack.to_text()
    assert Ack.from_text(ack.to_text().replace("16777216", "sixteen")) is None
