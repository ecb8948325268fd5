"""Compiled reads run on PostgreSQL only."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def postgres_only(backend: Any) -> None:
    if not backend.is_postgres:
        pytest.skip("compiled reads run on PostgreSQL")
