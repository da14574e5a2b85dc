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


# -- libpq connection strings ---------------------------------------------------------------------------------

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from dbkeeper.engines.postgres.conn import conninfo_url, is_conninfo  # noqa: E402

_VALUE = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20)


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@given(host=_VALUE.filter(lambda h: "," not in h), db=_VALUE, user=_VALUE, password=_VALUE)
def test_a_connection_string_means_what_libpq_reads(host: str, db: str, user: str, password: str) -> None:
    text = f"host={_quoted(host)} port=5433 dbname={_quoted(db)} user={_quoted(user)} password={_quoted(password)}"
    assert is_conninfo(text)
    conn = PgConn.from_url(conninfo_url(text))
    assert (conn.host, conn.port, conn.dbname, conn.user, conn.password) == (host, 5433, db, user, password)


def test_a_connection_string_with_parameters_and_without_quotes() -> None:
    conn = PgConn.from_url(conninfo_url("host=db1 dbname=casino sslmode=require connect_timeout=5"))
    assert conn.host == "db1" and conn.dbname == "casino"
    assert dict(conn.params) == {"sslmode": "require", "connect_timeout": "5"}
    assert not is_conninfo("postgresql://db1/casino?sslmode=require") and not is_conninfo("casino")
    with pytest.raises(UsageError, match="unknown connection parameter"):
        PgConn.from_url(conninfo_url("host=db1 dbname=x evil=1"))
    with pytest.raises(UsageError, match="several hosts"):
        conninfo_url("host=a,b dbname=x")
