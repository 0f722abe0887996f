"""The importer's tests run on a SQLite file and on a real PostgreSQL (a throwaway
database for the session, migrated once, emptied before each test)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from server.persistence.db import create_engine, run_migrations
from server.persistence.models import metadata
from tests.support.services import postgres_database


@pytest.fixture(scope="session")
def roster_pg() -> Iterator[str]:
    with postgres_database("atelier_roster") as url:
        run_migrations(url)
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'atelier.db'}"
        run_migrations(url)
        return url
    url: str = request.getfixturevalue("roster_pg")
    plain = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    tables = ", ".join(t.name for t in metadata.sorted_tables)
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")  # type: ignore[arg-type]
    return url


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(db_url)
    yield eng
    await eng.dispose()
