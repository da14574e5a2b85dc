"""``check_name`` on arbitrary text: it accepts only names that stay inside a store (no empty, dot, dot-dot or
hidden part, no backslash or control character) and refuses the rest with StoreError, never anything else."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbkeeper.errors import StoreError
from dbkeeper.storage import MAX_NAME, TEMP_MARK, check_name
from dbkeeper.storage.local import LocalStore

PARTS = st.one_of(
    st.sampled_from(["", ".", "..", "...", ".x", "a", "app-1", "é", "\\", "a\\..\\b", "\x00", "\n", TEMP_MARK]),
    st.text(max_size=10),
)
NAMES = st.one_of(st.text(max_size=40), st.lists(PARTS, min_size=1, max_size=5).map("/".join))


@settings(max_examples=500, deadline=None)
@given(NAMES)
def test_check_name_accepts_only_names_inside_the_store(name: str) -> None:
    try:
        assert check_name(name) == name
    except StoreError:
        return
    parts = name.split("/")
    assert all(p and not p.startswith(".") and TEMP_MARK not in p for p in parts)
    assert not any(c in name for c in "\\\0\r\n") and all(ord(c) >= 32 for c in name)
    assert len(name.encode("utf-8", "surrogateescape")) <= MAX_NAME
    root = Path("/store")
    assert os.path.normpath(LocalStore(root)._path(name)).startswith("/store/")


@pytest.mark.parametrize("name", ["a/../../b", "../x", "a/./b", "/abs", "a//b", "a/", ".hidden/x", "a\\b"])
def test_escaping_names_are_refused(name: str) -> None:
    with pytest.raises(StoreError):
        check_name(name)
