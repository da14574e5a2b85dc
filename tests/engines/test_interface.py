"""What crosses the engine interface: a URL shown to people never holds its password, however it is spelled."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dbkeeper.engines import redact
from helpers import run_dbkeeper


@given(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=4, max_size=30))
def test_a_password_never_survives_redaction(password: str) -> None:
    for url in (
        f"postgresql://app:{password}@db1:5432/casino",
        f"postgresql://app:{password}@db1/casino?sslmode=require",
        f"postgresql://db1/casino?password={password.replace('&', '').replace('#', '')}",
    ):
        shown = redact(url)
        assert password.replace("&", "").replace("#", "") not in shown.replace("postgresql://", "").replace(
            "db1:5432/casino", ""
        ).replace("db1/casino", "").replace("sslmode=require", "")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:p@ss/w@rd:x@127.0.0.1:1/casino",  # '@', '/' and ':' in the password, not encoded
        "postgresql://app:p@ss/w@rd:x@127.0.0.1:99999/casino",  # and a bad port
    ],
)
def test_a_password_with_at_and_slash_appears_nowhere(url: str) -> None:
    done = run_dbkeeper("backup", url, "--json")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "p@ss" not in done.stdout + done.stderr and "w@rd" not in done.stdout + done.stderr
