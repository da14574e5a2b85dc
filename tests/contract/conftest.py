"""The ``case`` fixture: the contract suite runs once per Store kind."""

from pathlib import Path

import pytest

from store_cases import StoreCase, make_case


@pytest.fixture(params=["local", "s3"])
def case(request: pytest.FixtureRequest, tmp_path: Path) -> StoreCase:
    return make_case(request.param, request, tmp_path)
