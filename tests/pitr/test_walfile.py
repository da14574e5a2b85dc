from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dbkeeper.pitr import walfile
from dbkeeper.pitr.walfile import WalName, WalRefused
from walgen import SEG, SYSID, segment


def test_names_parse_into_their_parts() -> None:
    seg = WalName.parse("000000020000000A000000FF")
    assert (seg.kind, seg.timeline, seg.log, seg.seg, seg.directory) == ("segment", 2, 10, 255, "000000020000000A")
    assert WalName.parse("000000010000000000000003.partial").kind == "partial"
    backup = WalName.parse("000000010000000000000002.00000028.backup")
    assert (backup.kind, backup.segment, backup.offset) == ("backup", "000000010000000000000002", 0x28)
    hist = WalName.parse("00000003.history")
    assert (hist.kind, hist.timeline, hist.directory) == ("history", 3, "history")


@pytest.mark.parametrize(
    "name",
    [
        "",
        "00000001000000000000000",  # 23 digits
        "000000010000000000000003x",
        "000000000000000000000003",  # timeline 0 does not exist
        "00000001.history",  # timeline 1 has no history file
        "0000000100000000000000ab",  # PostgreSQL writes upper case
        "../000000010000000000000003",
        "000000010000000000000003.partial.tmp",
        "RECOVERYXLOG",
    ],
)
def test_names_postgresql_never_archives_are_refused(name: str) -> None:
    with pytest.raises(WalRefused):
        WalName.parse(name)


@given(st.text(max_size=60))
def test_any_text_parses_or_is_refused_cleanly(text: str) -> None:
    try:
        name = WalName.parse(text)
    except WalRefused as exc:
        assert "\n" not in exc.message
        return
    assert name.text == text


@given(st.integers(min_value=1, max_value=0xFFFFFFFF), st.integers(min_value=0, max_value=(1 << 40)))
def test_segment_names_round_trip(tli: int, segno: int) -> None:
    for seg_size in (SEG, 16 << 20, 1 << 30):
        segno_here = segno % ((1 << 64) // seg_size)
        name = walfile.segment_name(tli, segno_here, seg_size)
        assert WalName.parse(name).segno(seg_size) == segno_here


def test_lsns_parse_and_format() -> None:
    assert walfile.parse_lsn("0/3000028") == 0x3000028
    assert walfile.parse_lsn("1A/FF") == (0x1A << 32) | 0xFF
    assert walfile.format_lsn(0x1A000000FF) == "1A/FF"
    assert walfile.lsn_segno(0x3000028, 16 << 20) == 3
    with pytest.raises(ValueError):
        walfile.parse_lsn("3000028")


def test_a_segment_matching_its_name_passes() -> None:
    name = WalName.parse("000000010000000000000005")
    header = walfile.check_segment(name, segment(name.text), SYSID)
    assert (header.sysid, header.seg_size, header.timeline) == (SYSID, SEG, 1)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (segment("000000010000000000000006"), "not this segment's"),  # stored under the wrong name
        (segment("000000010000000000000005", sysid=SYSID + 1), "system identifier"),
        (segment("000000010000000000000005")[:-1], "bytes, but its header says"),
        (segment("000000010000000000000005") + b"\0", "bytes, but its header says"),
        (b"\0" * SEG, "no WAL page magic"),
        (segment("000000010000000000000005", tli=2), "timeline 2"),
        (segment("000000010000000000000005", seg_size=3 << 20), "segment size"),
        (b"short", "too short"),
    ],
)
def test_a_segment_that_disagrees_with_its_name_is_refused(data: bytes, says: str) -> None:
    with pytest.raises(WalRefused, match=says):
        walfile.check_segment(WalName.parse("000000010000000000000005"), data, SYSID)


def test_a_new_timelines_first_segment_may_carry_its_parents_header() -> None:
    # At promotion PostgreSQL copies the parent's segment up to the switch point into the new timeline's file.
    walfile.check_segment(WalName.parse("000000020000000000000005"), segment("000000020000000000000005", tli=1))


def test_text_files_are_checked_for_their_shape() -> None:
    walfile.check_text(WalName.parse("00000002.history"), b"1\t0/3000060\tno recovery target specified\n")
    walfile.check_text(
        WalName.parse("000000010000000000000002.00000028.backup"), b"START WAL LOCATION: 0/2000028 (file x)\n"
    )
    with pytest.raises(WalRefused):
        walfile.check_text(WalName.parse("00000002.history"), b"rm -rf /\n")
    with pytest.raises(WalRefused):
        walfile.check_text(WalName.parse("00000002.history"), b"\xff\xfe")
    with pytest.raises(WalRefused):
        walfile.check_text(WalName.parse("000000010000000000000002.00000028.backup"), b"hello")
    assert walfile.history_entries(b"1\t0/3000060\tx\n2\t0/5000000\ty\n") == [(1, 0x3000060), (2, 0x5000000)]
