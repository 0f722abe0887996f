"""Persistence: the roster, the doc store (snapshot + update log), engines and migrations.

SQLite (embedded default) or PostgreSQL (several nodes), with the same code; the schema
is owned by the Alembic migrations shipped in ``migrations/``.
"""

from server.persistence.db import create_engine, ping, run_migrations
from server.persistence.docs import DocStore, StoredDoc
from server.persistence.roster import RoomInfo, Roster, UserInfo
from server.persistence.seed import is_empty, seed_demo

__all__ = [
    "DocStore",
    "RoomInfo",
    "Roster",
    "StoredDoc",
    "UserInfo",
    "create_engine",
    "is_empty",
    "ping",
    "run_migrations",
    "seed_demo",
]
