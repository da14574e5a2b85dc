"""Where a drill's scratch database goes (engines.scratch_for), and how an engine names a database for people:
no server is needed, nothing is created."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbkeeper.engines import engine_for, scratch_for
from dbkeeper.engines.postgres import PgConn, PostgresEngine
from dbkeeper.engines.sqlite import SqliteEngine
from dbkeeper.errors import UsageError


def test_display_keeps_the_url_but_never_the_password() -> None:
    engine = engine_for("postgresql://app:s3cret@db.example:5433/shop?sslmode=require")
    assert engine.display() == "postgresql://app:***@db.example:5433/shop?sslmode=require"
    assert engine_for("postgresql://app@[::1]:5432/shop").display() == "postgresql://app@[::1]:5432/shop"
    socket = engine_for("postgresql:///shop?host=/run/postgresql")
    assert socket.display() == "postgresql://%2Frun%2Fpostgresql/shop"  # libpq's spelling of a socket directory
    assert engine_for("sqlite:///data/app.db").display() == "data/app.db"


def test_scratch_is_beside_the_database() -> None:
    pg = engine_for("postgresql://app:s3cret@db.example:5433/shop?sslmode=require", pg_bin="/opt/pg/bin")
    scratch = pg.scratch("shop_drill_1")
    assert isinstance(scratch, PostgresEngine) and isinstance(pg, PostgresEngine)
    assert scratch.conn == PgConn("shop_drill_1", "db.example", 5433, "app", "s3cret", (("sslmode", "require"),))
    assert scratch.pg_bin == "/opt/pg/bin"
    assert engine_for("/srv/app.db").scratch("app_drill_1").display() == "/srv/app_drill_1.db"


def test_a_postgresql_scratch_goes_to_the_target_server_and_nowhere_else() -> None:
    on_target = scratch_for("postgresql", "x_drill", near="postgresql://ops@drills.example/ignored?sslmode=disable")
    assert on_target is not None
    assert on_target.display() == "postgresql://ops@drills.example/x_drill?sslmode=disable"
    server_only = scratch_for("postgresql", "x_drill", near="postgresql://ops@drills.example:6000")
    assert server_only is not None and server_only.display() == "postgresql://ops@drills.example:6000/x_drill"
    for near in (None, "/tmp/drills", "sqlite:///drills/a.db"):  # no target, or one of the other kind
        with pytest.raises(UsageError, match="never connects to a server named by a file in the store"):
            scratch_for("postgresql", "x_drill", near=near)


def test_a_sqlite_scratch_goes_to_the_target_directory_else_nowhere(tmp_path: Path) -> None:
    def path_of(near: str | None) -> Path | None:
        engine = scratch_for("sqlite", "app_drill", near=near)
        if engine is None:
            return None
        assert isinstance(engine, SqliteEngine)
        return engine.path

    assert path_of(str(tmp_path)) == tmp_path / "app_drill.db"  # a directory
    assert path_of(f"sqlite:///{tmp_path}/anything.db") == tmp_path / "app_drill.db"  # a file: its directory
    assert path_of(str(tmp_path / "anything.sqlite3")) == tmp_path / "app_drill.db"
    assert path_of(None) is None and path_of("postgresql://db.example/x") is None  # the caller picks a place
    with pytest.raises(UsageError, match="no scratch database for mysql"):
        scratch_for("mysql", "x")
