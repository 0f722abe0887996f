"""Engines, readiness, migrations: the one place that knows SQLite from PostgreSQL.

SQLite (the embedded default) is tuned on every new connection: WAL so that readers never
wait for the writer, ``synchronous=NORMAL`` (safe with WAL: a power cut may lose the last
commits, never corrupt), a 5 s busy timeout and foreign keys on.

SQLite writers: a plain ``BEGIN`` is *deferred*; two deferred transactions that both read
and then write deadlock, and SQLite answers one of them "database is locked" at once,
without waiting for the busy timeout. So pysqlite's own transaction handling is turned off
and SQLAlchemy's ``begin`` event emits the ``BEGIN`` itself: ``BEGIN IMMEDIATE`` on engines
made by :func:`writer` (the writer lock is taken up front, and waits politely under the
busy timeout), a deferred ``BEGIN`` elsewhere so that reads run beside the writer.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, make_url, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

#: Execution option that makes SQLite transactions start with BEGIN IMMEDIATE.
_IMMEDIATE = "atelier_begin_immediate"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"

_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=5000",
    "PRAGMA foreign_keys=ON",
)


def create_engine(url: str) -> AsyncEngine:
    """An async engine for ``sqlite+aiosqlite://`` or ``postgresql+psycopg://`` URLs.

    ``hide_parameters``: a database error's message leaves out the statement's values,
    so the traceback of a failed chat post or doc append never puts what a user typed
    in the log."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # pool_size: SQLAlchemy's default of 5 is under the doc loads admission lets run
        # at once (ADMISSION_LOADS, 8) plus the writer: in a storm the overflow
        # connections were opened, tuned and closed over and over (aiosqlite starts a
        # thread for each; py-spy). Idle, an aiosqlite connection is a parked thread.
        on_disk = bool(database) and database != ":memory:" and "mode=memory" not in url
        pool: dict[str, Any] = {"pool_size": 12} if on_disk else {}
        engine = create_async_engine(url, hide_parameters=True, **pool)
        _tune_sqlite(engine)
        return engine
    return create_async_engine(
        url,
        hide_parameters=True,
        pool_pre_ping=True,  # a node outlives a database restart or a failover
        pool_size=10,
        max_overflow=20,
        pool_recycle=1800,  # under typical idle timeouts of proxies (PgBouncer, LBs)
        pool_timeout=10,
    )


def _tune_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # We emit BEGIN ourselves (see module docstring).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            for pragma in _SQLITE_PRAGMAS:
                cursor.execute(pragma)
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def writer(engine: AsyncEngine) -> AsyncEngine:
    """The same engine (same pool) whose transactions are write transactions.

    Use it for every transaction that writes: ``async with writer(engine).begin()``. On
    SQLite it takes the write lock at BEGIN; on PostgreSQL it changes nothing.
    """
    return engine.execution_options(**{_IMMEDIATE: True})


def is_postgres(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"


async def ping(engine: AsyncEngine) -> None:
    """Raise if the database does not answer (``/readyz``)."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


def run_migrations(url: str) -> None:
    """``alembic upgrade head`` on ``url``, from the migrations shipped in the package.

    Synchronous, for the CLI and ``make run``: ``env.py`` runs its own event loop, so this
    must not be called from inside a running one (it raises ``RuntimeError`` there).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("run_migrations() runs its own event loop; call it outside one")
    command.upgrade(alembic_config(url), "head")


def alembic_config(url: str) -> Config:
    """An Alembic config without an ini file. The URL goes in ``attributes``, not in the
    ini options, where ``%`` in a password would be read as interpolation."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["url"] = url
    return cfg
