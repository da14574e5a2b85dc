"""PostgreSQL URLs a user can type: a malformed one is a usage error with the URL (password hidden), never a
ValueError from deep inside urllib."""

from __future__ import annotations

import pytest

from dbkeeper.engines.postgres.conn import PgConn
from dbkeeper.errors import UsageError


@pytest.mark.parametrize(
    "url,error",
    [
        ("postgresql://[::1", "not a valid URL"),
        ("postgresql://u:secret@[::1/db", "not a valid URL"),
        ("postgresql://h:99999/db", "bad port"),
        ("postgresql://h:x/db", "bad port"),
        ("postgresql://h/", "names no database"),
    ],
)
def test_malformed_urls_are_usage_errors(url: str, error: str) -> None:
    with pytest.raises(UsageError, match=error) as info:
        PgConn.from_url(url)
    assert "secret" not in str(info.value)
