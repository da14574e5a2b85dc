"""The ``case`` fixture: the Store contract suite runs once per Store kind; ``engine_case``: the Engine suite
runs once per engine (SQLite, PostgreSQL 15 and 17)."""

from pathlib import Path

import pytest

from engine_cases import EngineCase, make_engine_case
from store_cases import StoreCase, make_case


@pytest.fixture(params=["local", "s3"])
def case(request: pytest.FixtureRequest, tmp_path: Path) -> StoreCase:
    return make_case(request.param, request, tmp_path)


@pytest.fixture(params=["sqlite", "pg15", "pg17"])
def engine_case(request: pytest.FixtureRequest, tmp_path: Path) -> EngineCase:
    return make_engine_case(request.param, request, tmp_path)
