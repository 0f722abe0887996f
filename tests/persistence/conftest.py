"""Every persistence test runs twice: on a SQLite file and on a real PostgreSQL.

PostgreSQL: ``ATELIER_TEST_PG`` (default ``postgresql://postgres@127.0.0.1:5432``, trust
auth). One throwaway database per test session, migrated once and emptied before each
test; dropped at the end. Unreachable server: the PostgreSQL params skip, saying why.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.ext.asyncio import AsyncEngine

from server.persistence.db import create_engine, run_migrations
from server.persistence.models import metadata
from tests.support.services import service_missing

PG_SERVER = os.environ.get("ATELIER_TEST_PG", "postgresql://postgres@127.0.0.1:5432")


def _admin_connect() -> psycopg.Connection:
    last: Exception | None = None
    for dbname in ("postgres", "test"):
        try:
            return psycopg.connect(f"{PG_SERVER}/{dbname}", autocommit=True, connect_timeout=3)
        except psycopg.OperationalError as exc:
            last = exc
    raise last  # type: ignore[misc]


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str | None]:
    """The name of this session's migrated throwaway database, or None if unreachable."""
    try:
        admin = _admin_connect()
    except psycopg.OperationalError:
        yield None
        return
    name = f"atelier_t_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            run_migrations(pg_url(name))
            yield name
        finally:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def pg_url(dbname: str, driver: str = "postgresql+psycopg") -> str:
    return PG_SERVER.replace("postgresql", driver, 1) + f"/{dbname}"


def _truncate_all(dbname: str) -> None:
    tables = ", ".join(t.name for t in metadata.sorted_tables)
    with psycopg.connect(pg_url(dbname, "postgresql"), autocommit=True) as conn:
        conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database URL of each dialect."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'db' / 'atelier.db'}"
        run_migrations(url)
        return url
    dbname = request.getfixturevalue("pg_database")
    if dbname is None:
        service_missing(f"PostgreSQL not reachable at {PG_SERVER} (set ATELIER_TEST_PG)")
    _truncate_all(dbname)
    return pg_url(dbname)


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(db_url)
    yield eng
    await eng.dispose()


@pytest.fixture
async def engine2(db_url: str) -> AsyncIterator[AsyncEngine]:
    """A second engine on the same database: another node."""
    eng = create_engine(db_url)
    yield eng
    await eng.dispose()
